// msg.c - reference-counted messages, pids and reasons.
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailbox_impl.h"
#include "ra_error.h"

static ra_msg_t *
msg_alloc(size_t inline_len)
{
    ra_msg_t *m;
    unsigned cls = ra__pool_class(sizeof(*m) + inline_len);
    m = cls != 0 ? ra__pool_alloc(cls) : malloc(sizeof(*m) + inline_len);
    if (m == NULL) {
        return NULL;
    }
    atomic_init(&m->refs, 1);
    atomic_init(&m->env_busy, false);
    m->kind = RA_MSG_BYTES;
    m->sig = 0;
    m->pool = (uint8_t)cls;
    m->tag = 0;
    m->len = 0;
    m->env.cref = 0;
    return m;
}

// The payload of a bytes message whose bytes live elsewhere (sig ==
// RA__MSG_EXT): a buffer received from the network, released by fn.
typedef struct ext {
    const void *data;
    void (*fn)(void *arg);
    void *arg;
} ext_t;

#define RA__MSG_EXT 1

static const ext_t *
msg_ext(const ra_msg_t *m)
{
    return (const ext_t *)(const void *)m->inl;
}

static void
msg_free(ra_msg_t *m)
{
    if (m->kind == RA_MSG_BSON) {
        bson_t *b = ra__msg_bson(m);
        bson_destroy(b);
    } else if (m->kind == RA_MSG_BYTES && m->sig == RA__MSG_EXT) {
        const ext_t *e = msg_ext(m);
        e->fn(e->arg);
    }
    if (m->pool != 0) {
        ra__pool_free(m, m->pool);
    } else {
        free(m);
    }
}

int
ra_msg_new_bytes(ra_msg_t **out, int32_t tag, const void *data, size_t len)
{
    if (out == NULL || len > UINT32_MAX) {
        return RA_EINVAL;
    }
    // Large payloads get room around them, so that the link layer can
    // frame them for the wire in place instead of copying them.
    bool room = len >= RA__ROOM_MIN;
    ra_msg_t *m = msg_alloc(room ? len + RA__HEADROOM + RA__TAILROOM : len);
    if (m == NULL) {
        return RA_ENOMEM;
    }
    m->tag = tag;
    m->len = (uint32_t)len;
    if (room) {
        m->sig = RA__MSG_ROOM;
        uint8_t *p = m->inl + RA__HEADROOM;
        if (data != NULL) {
            memcpy(p, data, len);
        } else {
            memset(p, 0, len);
        }
        *out = m;
        return 0;
    }
    if (len > 0) {
        if (data != NULL && len <= 16) {
            // Most messages are a word or two: skip the call to memcpy.
            const uint8_t *src = data;
            for (size_t i = 0; i < len; i++) {
                m->inl[i] = src[i];
            }
        } else if (data != NULL) {
            memcpy(m->inl, data, len);
        } else {
            memset(m->inl, 0, len);
        }
    }
    *out = m;
    return 0;
}

int
ra__msg_new_ext(ra_msg_t **out, int32_t tag, const void *data, size_t len,
                void (*fn)(void *arg), void *arg)
{
    if (out == NULL || fn == NULL || len > UINT32_MAX) {
        return RA_EINVAL;
    }
    ra_msg_t *m = msg_alloc(sizeof(ext_t));
    if (m == NULL) {
        return RA_ENOMEM;
    }
    m->tag = tag;
    m->len = (uint32_t)len;
    m->sig = RA__MSG_EXT;
    ext_t e = {data, fn, arg};
    memcpy(m->inl, &e, sizeof(e));
    *out = m;
    return 0;
}

int
ra_msg_new_bson(ra_msg_t **out, int32_t tag, const bson_t *doc)
{
    if (out == NULL || doc == NULL) {
        return RA_EINVAL;
    }
    ra_msg_t *m = msg_alloc(sizeof(bson_t *));
    if (m == NULL) {
        return RA_ENOMEM;
    }
    bson_t *b = bson_copy(doc);
    if (b == NULL) {
        msg_free(m);
        return RA_ENOMEM;
    }
    memcpy(m->inl, &b, sizeof(b));
    m->kind = RA_MSG_BSON;
    m->tag = tag;
    m->len = b->len;
    *out = m;
    return 0;
}

ra_msg_t *
ra__msg_new_signal(uint8_t kind, uint8_t sig, ra_pid_t pid,
                   ra_reason_t reason, uint64_t ref)
{
    ra_msg_t *m = msg_alloc(sizeof(ra__sigdata_t));
    if (m != NULL) {
        m->kind = kind;
        m->sig = sig;
        *ra__sig(m) = (ra__sigdata_t){pid, reason, ref};
    }
    return m;
}

ra_msg_t *
ra_msg_ref(ra_msg_t *msg)
{
    atomic_fetch_add_explicit(&msg->refs, 1, memory_order_relaxed);
    return msg;
}

void
ra_msg_unref(ra_msg_t **msg)
{
    if (msg == NULL || *msg == NULL) {
        return;
    }
    ra_msg_t *m = *msg;
    *msg = NULL;
    // The sole holder may free without a read-modify-write: nobody else can
    // take a new reference to a message they do not hold.
    if (atomic_load_explicit(&m->refs, memory_order_acquire) != 1 &&
        atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    msg_free(m);
}

ra_msg_kind_t
ra_msg_kind(const ra_msg_t *msg)
{
    return (ra_msg_kind_t)msg->kind;
}

int32_t
ra_msg_tag(const ra_msg_t *msg)
{
    return msg->tag;
}

const void *
ra_msg_data(const ra_msg_t *msg, size_t *len)
{
    if (len != NULL) {
        *len = msg->len;
    }
    if (msg->kind == RA_MSG_BSON) {
        return bson_get_data(ra__msg_bson(msg));
    }
    if (msg->sig == RA__MSG_ROOM) {
        return msg->inl + RA__HEADROOM;
    }
    return msg->sig == RA__MSG_EXT ? msg_ext(msg)->data : msg->inl;
}

void *
ra_msg_wdata(ra_msg_t *msg)
{
    if (msg->kind != RA_MSG_BYTES || msg->sig == RA__MSG_EXT ||
        atomic_load(&msg->refs) != 1) {
        return NULL;
    }
    return msg->sig == RA__MSG_ROOM ? msg->inl + RA__HEADROOM : msg->inl;
}

const bson_t *
ra_msg_bson(const ra_msg_t *msg)
{
    return msg->kind == RA_MSG_BSON ? ra__msg_bson(msg) : NULL;
}

int
ra_msg_exit_info(const ra_msg_t *msg, ra_pid_t *from, ra_reason_t *reason)
{
    if (msg == NULL || msg->kind != RA_MSG_EXIT) {
        return RA_EBADMSG;
    }
    if (from != NULL) {
        *from = ra__sig(msg)->pid;
    }
    if (reason != NULL) {
        *reason = ra__sig(msg)->reason;
    }
    return 0;
}

int
ra_msg_down_info(const ra_msg_t *msg, uint64_t *mref, ra_pid_t *pid,
                 ra_reason_t *reason)
{
    if (msg == NULL || msg->kind != RA_MSG_DOWN) {
        return RA_EBADMSG;
    }
    if (mref != NULL) {
        *mref = ra__sig(msg)->ref;
    }
    if (pid != NULL) {
        *pid = ra__sig(msg)->pid;
    }
    if (reason != NULL) {
        *reason = ra__sig(msg)->reason;
    }
    return 0;
}

ra__env_t *
ra__env_claim(ra_msg_t *msg)
{
    // A message whose only reference is ours is in no queue (a queued
    // message holds a reference), so its embedded envelope is free and a
    // plain store claims it; otherwise race for it.
    if (atomic_load_explicit(&msg->refs, memory_order_acquire) == 1) {
        atomic_store_explicit(&msg->env_busy, true, memory_order_relaxed);
        msg->env.cref = 0;
        return &msg->env;
    }
    if (!atomic_exchange_explicit(&msg->env_busy, true,
                                  memory_order_acquire)) {
        msg->env.cref = 0;
        return &msg->env;
    }
    ra__henv_t *h = malloc(sizeof(*h));
    if (h == NULL) {
        return NULL;
    }
    h->msg = msg;
    h->env.cref = RA__CREF_HEAP;
    return &h->env;
}

void
ra__env_release(ra__env_t *env)
{
    if (env->cref & RA__CREF_HEAP) {
        free(env);
    } else {
        ra_msg_t *m = ra__env_msg(env);
        atomic_store_explicit(&m->env_busy, false, memory_order_release);
    }
}

char *
ra_pid_str(ra_pid_t pid, char *buf)
{
    snprintf(buf, RA_PID_STRLEN, "<%" PRIu32 ".%" PRIu32 ".%" PRIu32
             ".%" PRIu32 ">", pid.node, pid.proc, pid.id, pid.gen);
    return buf;
}

char *
ra_reason_str(ra_reason_t reason, char *buf, size_t len)
{
    static const char *names[] = {"normal", "shutdown", "kill", "killed",
                                  "noproc", "noconnection"};
    if (reason >= 0 && reason <= RA_NOCONNECTION) {
        snprintf(buf, len, "%s", names[reason]);
    } else if (reason < 0 && reason >= INT32_MIN) {
        snprintf(buf, len, "%s", ra_err_name((int)reason));
    } else if (reason >= RA_REASON_USER) {
        snprintf(buf, len, "user:%" PRId64, reason);
    } else {
        snprintf(buf, len, "reason:%" PRId64, reason);
    }
    return buf;
}
