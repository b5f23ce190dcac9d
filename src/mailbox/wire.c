// wire.c - envelopes as BSON documents: encode, decode, chunk, reassemble.
//
// The decoder makes three passes over a frame: a depth-bounded walk, then
// bson_validate, then one pass over the top-level keys.  The walk comes
// first because libbson's validator recurses once per nesting level, and a
// 16 MiB frame can nest a million documents deep.
#include <stdlib.h>
#include <string.h>

#include "ra_error.h"
#include "ra_log.h"
#include "ra_wire.h"

// Fields of an envelope, in the order the encoder writes them.  The index
// is the field's bit in the masks below.
enum {
    F_V, F_K, F_SEQ, F_FROM, F_TO, F_TAG, F_CREF, F_BODY, F_S, F_R, F_REF,
    F_ACK, F_CODE, F_ESEQ, F_TEXT, F_NODE, F_PROC, F_VMIN, F_VMAX, F_CAPS,
    F_ID, F_IDX, F_CNT, F_CSZ, F_TOT, F_DATA, F_INC, F_SESS, F_REP, F_IDLE,
    F_HOST, F_OSPID, F_OSTART, F_IPC, F_COUNT
};

static const char *const field_names[F_COUNT] = {
    "v", "k", "seq", "from", "to", "tag", "cref", "body", "s", "r", "ref",
    "ack", "code", "eseq", "text", "node", "proc", "vmin", "vmax", "caps",
    "id", "idx", "cnt", "csz", "tot", "data", "inc", "sess", "rep", "idle",
    "host", "ospid", "ostart", "ipc"
};

#define B(f) ((uint64_t)1 << (f))
#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *const kind_names[] = {
    NULL, "msg", "sig", "ack", "hello", "err", "chunk", "bye", "batch"
};

// Fields each kind may carry and must carry, indexed by ra_wire_kind_t.
// Keys outside field_names are ignored, so that a later revision of a
// version can add optional fields; a known field on the wrong kind is an
// error, because it means the sender and receiver disagree on the kind.
static const uint64_t allowed[] = {
    0,
    B(F_V) | B(F_K) | B(F_SEQ) | B(F_FROM) | B(F_TO) | B(F_TAG) |
        B(F_CREF) | B(F_BODY) | B(F_REP),
    B(F_V) | B(F_K) | B(F_SEQ) | B(F_FROM) | B(F_TO) | B(F_S) | B(F_R) |
        B(F_REF),
    B(F_V) | B(F_K) | B(F_ACK) | B(F_SEQ) | B(F_ESEQ),
    B(F_V) | B(F_K) | B(F_NODE) | B(F_PROC) | B(F_VMIN) | B(F_VMAX) |
        B(F_CAPS) | B(F_INC) | B(F_SESS) | B(F_ACK) | B(F_HOST) |
        B(F_OSPID) | B(F_OSTART) | B(F_IPC),
    B(F_V) | B(F_K) | B(F_FROM) | B(F_TO) | B(F_CREF) | B(F_CODE) |
        B(F_ESEQ) | B(F_TEXT),
    B(F_V) | B(F_K) | B(F_SEQ) | B(F_ID) | B(F_IDX) | B(F_CNT) | B(F_CSZ) |
        B(F_TOT) | B(F_DATA),
    B(F_V) | B(F_K) | B(F_IDLE),
    B(F_V) | B(F_K) | B(F_SEQ) | B(F_CNT) | B(F_DATA)
};

static const uint64_t required[] = {
    0,
    B(F_V) | B(F_K) | B(F_SEQ) | B(F_TO) | B(F_BODY),
    B(F_V) | B(F_K) | B(F_SEQ) | B(F_FROM) | B(F_TO) | B(F_S),
    B(F_V) | B(F_K) | B(F_ACK),
    B(F_V) | B(F_K) | B(F_NODE) | B(F_PROC) | B(F_VMIN) | B(F_VMAX),
    B(F_V) | B(F_K) | B(F_CODE),
    B(F_V) | B(F_K) | B(F_SEQ) | B(F_ID) | B(F_IDX) | B(F_CNT) | B(F_CSZ) |
        B(F_TOT) | B(F_DATA),
    B(F_V) | B(F_K),
    B(F_V) | B(F_K) | B(F_SEQ) | B(F_CNT) | B(F_DATA)
};

static const char *const sig_names[] = {
    NULL, "exit", "link", "unlink", "monitor", "demonitor", "down"
};

// Signals that carry a reason (r) and a monitor reference (ref).
#define SIG_HAS_REASON(s) ((s) == RA_WIRE_SIG_EXIT || (s) == RA_WIRE_SIG_DOWN)
#define SIG_HAS_REF(s)                                                      \
    ((s) == RA_WIRE_SIG_MONITOR || (s) == RA_WIRE_SIG_DEMONITOR ||          \
     (s) == RA_WIRE_SIG_DOWN)

void
ra_wire_free(void *buf)
{
    free(buf);
}

const char *
ra_wire_kind_name(ra_wire_kind_t kind)
{
    if (kind < RA_WIRE_MSG || kind > RA_WIRE_BATCH) {
        return NULL;
    }
    return kind_names[kind];
}

static size_t
limit_or_default(size_t max_msg)
{
    return max_msg == 0 ? RA_WIRE_MAX_MSG : max_msg;
}

// A capability is a short printable ASCII word, so that it can be logged
// and compared bytewise without any normalisation.
static bool
cap_ok(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > RA_WIRE_MAX_CAP_LEN) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

// chunk_ok checks that a chunk's numbers describe one way of cutting tot
// bytes: every chunk but the last holds csz bytes and the last holds the
// rest, between 1 and csz bytes.  The products cannot overflow: both
// factors are below 2^31.
static bool
chunk_ok(int32_t idx, int32_t cnt, int32_t csz, int64_t tot, size_t len)
{
    if (cnt < 1 || idx < 0 || idx >= cnt || csz < 1 || tot < 1) {
        return false;
    }
    int64_t before_last = (int64_t)(cnt - 1) * csz;
    if (tot <= before_last || tot > before_last + csz) {
        return false;
    }
    int64_t want = idx < cnt - 1 ? csz : tot - before_last;
    return (uint64_t)want == len;
}

// ---------------------------------------------------------------- decoding

// What went wrong, for the counter and the log line.
enum cause { C_BSON, C_VERSION, C_KIND, C_FIELD, C_SIZE };

typedef struct dec {
    enum cause cause;
    const char *why;   // static text
    const char *field; // static field name, or NULL
} dec_t;

static int
fail(dec_t *d, enum cause cause, const char *why, int field)
{
    d->cause = cause;
    d->why = why;
    d->field = field >= 0 ? field_names[field] : NULL;
    switch (cause) {
    case C_VERSION:
        return RA_ENOTSUP;
    case C_SIZE:
        return RA_EFULL;
    default:
        return RA_EBADMSG;
    }
}

// utf8_ok checks a NUL-terminated string or, with len, a counted one;
// embedded NULs are refused so that C readers see the whole string.
static bool
utf8_ok(const char *s, size_t len)
{
    return s != NULL && bson_utf8_validate(s, len, false);
}

// strings_ok checks the UTF-8 of the element's key and of any string in
// its value: libbson 1.23's bson_validate passes invalid UTF-8 in values
// even when asked to check it (the fuzzer found one in an err's text).
static bool
strings_ok(const bson_iter_t *it)
{
    const char *s = NULL;
    const char *opts = NULL;
    uint32_t len = 0;

    if (!utf8_ok(bson_iter_key(it), bson_iter_key_len(it))) {
        return false;
    }
    switch (bson_iter_type(it)) {
    case BSON_TYPE_UTF8:
        s = bson_iter_utf8(it, &len);
        return utf8_ok(s, len);
    case BSON_TYPE_CODE:
        s = bson_iter_code(it, &len);
        return utf8_ok(s, len);
    case BSON_TYPE_REGEX:
        s = bson_iter_regex(it, &opts);
        return utf8_ok(s, strlen(s)) && utf8_ok(opts, strlen(opts));
    default:
        return true;
    }
}

// walk checks nesting depth without recursing deeper than
// RA_WIRE_MAX_DEPTH, strings, and that each nested document ends in its NUL
// byte, which libbson 1.23 neither checks when iterating nor when
// validating (the fuzzer found a body whose last byte was not 0).  The
// deprecated types are refused: nobody should send them, and code with
// scope hides a document that libbson's validator would descend into
// unchecked.
static bool
walk(bson_iter_t *it, int depth)
{
    while (bson_iter_next(it)) {
        bson_type_t t = bson_iter_type(it);
        const uint8_t *data = NULL;
        uint32_t len = 0;
        bson_iter_t child;

        if (t == BSON_TYPE_CODEWSCOPE || t == BSON_TYPE_UNDEFINED ||
            t == BSON_TYPE_DBPOINTER || t == BSON_TYPE_SYMBOL ||
            !strings_ok(it)) {
            return false;
        }
        if (t != BSON_TYPE_DOCUMENT && t != BSON_TYPE_ARRAY) {
            continue;
        }
        if (t == BSON_TYPE_DOCUMENT) {
            bson_iter_document(it, &len, &data);
        } else {
            bson_iter_array(it, &len, &data);
        }
        if (depth >= RA_WIRE_MAX_DEPTH || data == NULL || len < 5 ||
            data[len - 1] != 0 || !bson_iter_recurse(it, &child) ||
            !walk(&child, depth + 1)) {
            return false;
        }
    }
    return true;
}

// doc_ok says whether doc, found at nesting depth depth, is well-formed
// BSON with valid UTF-8 and no embedded NULs in strings.
static bool
doc_ok(const bson_t *doc, int depth)
{
    bson_iter_t it;
    size_t off = 0;

    if (!bson_iter_init(&it, doc) || !walk(&it, depth)) {
        return false;
    }
    return bson_validate(doc, BSON_VALIDATE_UTF8, &off);
}

// get_int reads an integer field stored as int32 or int64 and checks it
// against [lo, hi].  Either width is accepted so that clients in languages
// that pick the width for them need not care; range is what matters.
static int
get_int(dec_t *d, const bson_iter_t *it, int field, int64_t lo, int64_t hi,
        int64_t *out)
{
    int64_t v;

    if (BSON_ITER_HOLDS_INT32(it)) {
        v = bson_iter_int32(it);
    } else if (BSON_ITER_HOLDS_INT64(it)) {
        v = bson_iter_int64(it);
    } else {
        return fail(d, C_FIELD, "not an integer", field);
    }
    if (v < lo || v > hi) {
        return fail(d, C_FIELD, "out of range", field);
    }
    *out = v;
    return 0;
}

// get_pid reads a pid document {n, p, i, g}: exactly these four keys, each
// once, each an integer in uint32 range, and i at least 1 (slot 0 is never
// used, so a pid with i = 0 could only be nil, which is sent by omission).
static int
get_pid(dec_t *d, const bson_iter_t *it, int field, ra_pid_t *out)
{
    static const char keys[] = "npig";
    bson_iter_t child;
    uint32_t vals[4] = {0, 0, 0, 0};
    unsigned seen = 0;

    if (!BSON_ITER_HOLDS_DOCUMENT(it) || !bson_iter_recurse(it, &child)) {
        return fail(d, C_FIELD, "not a pid document", field);
    }
    while (bson_iter_next(&child)) {
        const char *key = bson_iter_key(&child);
        const char *at = key[0] != '\0' && key[1] == '\0'
                             ? strchr(keys, key[0])
                             : NULL;
        if (at == NULL) {
            return fail(d, C_FIELD, "unknown key in pid", field);
        }
        unsigned k = (unsigned)(at - keys);
        if (seen & (1u << k)) {
            return fail(d, C_FIELD, "repeated key in pid", field);
        }
        seen |= 1u << k;
        int64_t v = 0;
        int rc = get_int(d, &child, field, k == 2 ? 1 : 0, UINT32_MAX, &v);
        if (rc != 0) {
            return rc;
        }
        vals[k] = (uint32_t)v;
    }
    if (seen != 0xf) {
        return fail(d, C_FIELD, "pid lacks n, p, i or g", field);
    }
    *out = (ra_pid_t){vals[0], vals[1], vals[2], vals[3]};
    return 0;
}

// get_name reads a string field and maps it to its index in names[1..n).
static int
get_name(dec_t *d, const bson_iter_t *it, int field,
         const char *const *names, int n, enum cause unknown, int *out)
{
    if (!BSON_ITER_HOLDS_UTF8(it)) {
        return fail(d, C_FIELD, "not a string", field);
    }
    const char *s = bson_iter_utf8(it, NULL);
    for (int i = 1; i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return fail(d, unknown, "unknown name", field);
}

// get_caps reads the capability array: keys "0", "1", ... in order, as
// BSON requires of arrays and as a strict reader checks.
static int
get_caps(dec_t *d, const bson_iter_t *it, ra_wire_hello_t *h)
{
    bson_iter_t child;

    if (!BSON_ITER_HOLDS_ARRAY(it) || !bson_iter_recurse(it, &child)) {
        return fail(d, C_FIELD, "not an array", F_CAPS);
    }
    while (bson_iter_next(&child)) {
        char want[16];
        const char *key;
        uint32_t len = 0;

        if (h->ncaps == RA_WIRE_MAX_CAPS) {
            return fail(d, C_FIELD, "too many capabilities", F_CAPS);
        }
        bson_uint32_to_string((uint32_t)h->ncaps, &key, want, sizeof(want));
        if (strcmp(bson_iter_key(&child), key) != 0) {
            return fail(d, C_FIELD, "array keys out of order", F_CAPS);
        }
        if (!BSON_ITER_HOLDS_UTF8(&child)) {
            return fail(d, C_FIELD, "capability not a string", F_CAPS);
        }
        const char *s = bson_iter_utf8(&child, &len);
        if (!cap_ok(s, len)) {
            return fail(d, C_FIELD, "bad capability name", F_CAPS);
        }
        h->caps[h->ncaps++] = s;
    }
    return 0;
}

static int
get_binary(dec_t *d, const bson_iter_t *it, int field, const uint8_t **data,
           size_t *len)
{
    bson_subtype_t sub;
    uint32_t n = 0;

    if (!BSON_ITER_HOLDS_BINARY(it)) {
        return fail(d, C_FIELD, "not binary", field);
    }
    bson_iter_binary(it, &sub, &n, data);
    if (sub != BSON_SUBTYPE_BINARY) {
        return fail(d, C_FIELD, "binary subtype not 0", field);
    }
    *len = n;
    return 0;
}

static int
get_body(dec_t *d, const bson_iter_t *it, ra_wire_frame_t *f)
{
    if (BSON_ITER_HOLDS_DOCUMENT(it)) {
        uint32_t n = 0;
        bson_iter_document(it, &n, &f->body);
        f->body_len = n;
        f->body_kind = RA_WIRE_BODY_BSON;
        return 0;
    }
    f->body_kind = RA_WIRE_BODY_BYTES;
    return get_binary(d, it, F_BODY, &f->body, &f->body_len);
}

// get_field reads one field of a frame whose kind is known and allowed to
// carry it.
static int
get_field(dec_t *d, const bson_iter_t *it, int field, ra_wire_frame_t *f,
          size_t max_msg)
{
    int64_t v = 0;
    int sig = 0;
    int rc = 0;

    switch (field) {
    case F_SEQ:
        rc = get_int(d, it, field, 1, INT64_MAX, &f->seq);
        break;
    case F_FROM:
        rc = get_pid(d, it, field, &f->from);
        break;
    case F_TO:
        rc = get_pid(d, it, field, &f->to);
        break;
    case F_TAG:
        rc = get_int(d, it, field, INT32_MIN, INT32_MAX, &v);
        f->tag = (int32_t)v;
        break;
    case F_CREF:
        rc = get_int(d, it, field, 0, INT64_MAX, &f->cref);
        break;
    case F_BODY:
        rc = get_body(d, it, f);
        break;
    case F_S:
        rc = get_name(d, it, field, sig_names, NELEM(sig_names), C_FIELD,
                      &sig);
        f->sig = (ra_wire_sig_t)sig;
        break;
    case F_R:
        rc = get_int(d, it, field, INT64_MIN, INT64_MAX, &f->reason);
        break;
    case F_REF:
        rc = get_int(d, it, field, 1, INT64_MAX, &f->ref);
        break;
    case F_ACK:
        rc = get_int(d, it, field, 0, INT64_MAX, &f->ack);
        break;
    case F_CODE:
        rc = get_int(d, it, field, INT32_MIN, -1, &v);
        f->code = (int32_t)v;
        break;
    case F_ESEQ:
        rc = get_int(d, it, field, 0, INT64_MAX, &f->eseq);
        break;
    case F_TEXT: {
        uint32_t len = 0;
        if (!BSON_ITER_HOLDS_UTF8(it)) {
            return fail(d, C_FIELD, "not a string", field);
        }
        f->text = bson_iter_utf8(it, &len);
        if (len > RA_WIRE_MAX_TEXT) {
            return fail(d, C_FIELD, "too long", field);
        }
        break;
    }
    case F_NODE:
    case F_PROC:
        rc = get_int(d, it, field, 0, UINT32_MAX, &v);
        *(field == F_NODE ? &f->hello.node : &f->hello.proc) = (uint32_t)v;
        break;
    case F_VMIN:
    case F_VMAX:
        rc = get_int(d, it, field, 1, INT32_MAX, &v);
        *(field == F_VMIN ? &f->hello.vmin : &f->hello.vmax) = (int32_t)v;
        break;
    case F_CAPS:
        rc = get_caps(d, it, &f->hello);
        break;
    case F_ID:
        rc = get_int(d, it, field, 1, INT64_MAX, &f->chunk_id);
        break;
    case F_IDX:
    case F_CNT:
    case F_CSZ:
        rc = get_int(d, it, field, field == F_IDX ? 0 : 1, INT32_MAX, &v);
        *(field == F_IDX   ? &f->chunk_idx
          : field == F_CNT ? &f->chunk_cnt
                           : &f->chunk_size) = (int32_t)v;
        break;
    case F_TOT:
        rc = get_int(d, it, field, 1, INT64_MAX, &f->chunk_total);
        if (rc == 0 && (uint64_t)f->chunk_total > max_msg) {
            rc = fail(d, C_SIZE, "chunked total over the limit", field);
        }
        break;
    case F_DATA:
        rc = get_binary(d, it, field, &f->data, &f->data_len);
        break;
    case F_INC:
        rc = get_int(d, it, field, 1, INT64_MAX, &f->hello.inc);
        break;
    case F_SESS:
        rc = get_int(d, it, field, 1, INT64_MAX, &f->hello.sess);
        break;
    case F_REP:
    case F_IDLE:
    case F_IPC:
        rc = get_int(d, it, field, 0, 1, &v);
        *(field == F_REP ? &f->rep : field == F_IDLE ? &f->idle
                                                      : &f->hello.ipc) = v != 0;
        break;
    case F_HOST: {
        uint32_t len = 0;
        if (!BSON_ITER_HOLDS_UTF8(it)) {
            return fail(d, C_FIELD, "not a string", field);
        }
        f->hello.host = bson_iter_utf8(it, &len);
        if (!cap_ok(f->hello.host, len) || len > RA_WIRE_MAX_HOST) {
            return fail(d, C_FIELD, "bad machine identity", field);
        }
        break;
    }
    case F_OSPID:
        rc = get_int(d, it, field, 1, INT32_MAX, &f->hello.ospid);
        break;
    case F_OSTART:
        rc = get_int(d, it, field, 0, INT64_MAX, &f->hello.ostart);
        break;
    default:
        break;
    }
    return rc;
}

// slot_t wraps an iterator because libbson over-aligns bson_iter_t, which
// makes a bare array of them invalid.
typedef struct slot {
    bson_iter_t it;
} slot_t;

// index_fields records where each known top-level key is, refusing
// repeats: BSON allows a key twice, and two readers that pick different
// copies would disagree about the frame.
static int
index_fields(dec_t *d, const bson_t *doc, slot_t *at, uint64_t *seen)
{
    bson_iter_t it;

    *seen = 0;
    if (!bson_iter_init(&it, doc)) {
        return fail(d, C_BSON, "not a document", -1);
    }
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);
        for (int i = 0; i < F_COUNT; i++) {
            if (strcmp(key, field_names[i]) != 0) {
                continue;
            }
            if (*seen & B(i)) {
                return fail(d, C_FIELD, "repeated field", i);
            }
            *seen |= B(i);
            at[i].it = it;
            break;
        }
    }
    return 0;
}

// ---- batches: many small messages in one envelope ----

#define REC_HEAD 28

static uint32_t
get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void
put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

int
ra_wire_batch_next(const uint8_t **pos, size_t *left, ra_wire_rec_t *rec)
{
    const uint8_t *p = *pos;
    if (*left < REC_HEAD) {
        return RA_EBADMSG;
    }
    rec->to_id = get_u32(p);
    rec->to_gen = get_u32(p + 4);
    rec->from_id = get_u32(p + 8);
    rec->from_gen = get_u32(p + 12);
    rec->tag = (int32_t)get_u32(p + 16);
    uint8_t body = p[20];
    uint32_t len = get_u32(p + 24);
    if (rec->to_id == 0 || p[21] != 0 || p[22] != 0 || p[23] != 0 ||
        (body != RA_WIRE_BODY_BYTES && body != RA_WIRE_BODY_BSON) ||
        len > *left - REC_HEAD) {
        return RA_EBADMSG;
    }
    rec->body_kind = (ra_wire_body_t)body;
    rec->body = p + REC_HEAD;
    rec->body_len = len;
    if (body == RA_WIRE_BODY_BSON) {
        bson_t doc;
        if (len < 5 || !bson_init_static(&doc, rec->body, len) ||
            !doc_ok(&doc, 2)) {
            return RA_EBADMSG;
        }
    }
    *pos = p + REC_HEAD + len;
    *left -= REC_HEAD + len;
    return 0;
}

size_t
ra_wire_batch_rec_size(size_t body_len)
{
    return REC_HEAD + body_len;
}

void
ra_wire_batch_put(uint8_t *out, const ra_msg_t *msg, ra_pid_t from,
                  ra_pid_t to)
{
    size_t len = 0;
    const void *data = ra_msg_data(msg, &len);
    put_u32(out, to.id);
    put_u32(out + 4, to.gen);
    put_u32(out + 8, from.id);
    put_u32(out + 12, from.gen);
    put_u32(out + 16, (uint32_t)ra_msg_tag(msg));
    out[20] = ra_msg_kind(msg) == RA_MSG_BSON ? RA_WIRE_BODY_BSON
                                              : RA_WIRE_BODY_BYTES;
    out[21] = out[22] = out[23] = 0;
    put_u32(out + 24, (uint32_t)len);
    memcpy(out + REC_HEAD, data, len);
}

// batch_ok checks that data holds exactly cnt well-formed records.
static bool
batch_ok(const uint8_t *data, size_t len, int32_t cnt)
{
    ra_wire_rec_t rec;
    for (int32_t i = 0; i < cnt; i++) {
        if (ra_wire_batch_next(&data, &len, &rec) != 0) {
            return false;
        }
    }
    return len == 0;
}

// check_kind applies the rules that involve more than one field.
static int
check_kind(dec_t *d, ra_wire_frame_t *f, uint64_t seen)
{
    switch (f->kind) {
    case RA_WIRE_SIG:
        if (SIG_HAS_REASON(f->sig) != ((seen & B(F_R)) != 0)) {
            return fail(d, C_FIELD, "reason present iff exit or down", F_R);
        }
        if (SIG_HAS_REF(f->sig) != ((seen & B(F_REF)) != 0)) {
            return fail(d, C_FIELD, "ref present iff monitor signal", F_REF);
        }
        break;
    case RA_WIRE_HELLO:
        if (f->hello.vmin > f->hello.vmax) {
            return fail(d, C_FIELD, "vmin above vmax", F_VMIN);
        }
        f->hello.ack = f->ack;
        f->ack = 0;
        break;
    case RA_WIRE_MSG:
        if (f->rep && f->cref == 0) {
            return fail(d, C_FIELD, "a reply needs cref", F_REP);
        }
        break;
    case RA_WIRE_CHUNK:
        if (!chunk_ok(f->chunk_idx, f->chunk_cnt, f->chunk_size,
                      f->chunk_total, f->data_len)) {
            return fail(d, C_FIELD, "inconsistent chunk numbers", F_DATA);
        }
        break;
    case RA_WIRE_BATCH:
        if (!batch_ok(f->data, f->data_len, f->chunk_cnt)) {
            return fail(d, C_FIELD, "malformed batch records", F_DATA);
        }
        break;
    default:
        break;
    }
    return 0;
}

static int
decode(dec_t *d, const void *buf, size_t len, size_t max_msg,
       ra_wire_frame_t *f)
{
    bson_t doc;
    slot_t at[F_COUNT];
    uint64_t seen = 0;
    int64_t v = 0;
    int kind = 0;
    int rc;

    if (len > max_msg) {
        return fail(d, C_SIZE, "frame over the limit", -1);
    }
    // bson_init_static also refuses a length prefix that disagrees with
    // len, which is how trailing bytes and truncation are caught.
    if (buf == NULL || len < 5 || len > INT32_MAX ||
        !bson_init_static(&doc, buf, len)) {
        return fail(d, C_BSON, "not one BSON document", -1);
    }
    if (!doc_ok(&doc, 1)) {
        return fail(d, C_BSON, "invalid BSON or nested too deep", -1);
    }
    if ((rc = index_fields(d, &doc, at, &seen)) != 0) {
        return rc;
    }
    // The version comes first: under another version the other fields may
    // mean something else.
    if (!(seen & B(F_V))) {
        return fail(d, C_FIELD, "missing", F_V);
    }
    if ((rc = get_int(d, &at[F_V].it, F_V, INT64_MIN, INT64_MAX, &v)) != 0) {
        return rc;
    }
    if (v < RA_WIRE_VERSION_MIN || v > RA_WIRE_VERSION) {
        return fail(d, C_VERSION, "unsupported version", F_V);
    }
    f->version = (int32_t)v;
    if (!(seen & B(F_K))) {
        return fail(d, C_FIELD, "missing", F_K);
    }
    rc = get_name(d, &at[F_K].it, F_K, kind_names, NELEM(kind_names),
                  C_KIND, &kind);
    if (rc != 0) {
        return rc;
    }
    f->kind = (ra_wire_kind_t)kind;
    uint64_t extra = seen & ~allowed[kind];
    uint64_t missing = required[kind] & ~seen;
    if (extra != 0) {
        return fail(d, C_FIELD, "not allowed for this kind",
                    __builtin_ctzll(extra));
    }
    if (missing != 0) {
        return fail(d, C_FIELD, "missing", __builtin_ctzll(missing));
    }
    for (int i = F_SEQ; i < F_COUNT; i++) {
        if ((seen & B(i)) &&
            (rc = get_field(d, &at[i].it, i, f, max_msg)) != 0) {
            return rc;
        }
    }
    return check_kind(d, f, seen);
}

int
ra_wire_decode(const void *buf, size_t len, size_t max_msg,
               ra_wire_frame_t *f, ra_wire_stats_t *stats)
{
    dec_t d = {C_BSON, NULL, NULL};
    ra_wire_stats_t dummy;

    if (f == NULL) {
        return RA_EINVAL;
    }
    if (stats == NULL) {
        stats = &dummy;
    }
    memset(f, 0, sizeof(*f));
    int rc = decode(&d, buf, len, limit_or_default(max_msg), f);
    if (rc == 0) {
        stats->decoded++;
        return 0;
    }
    memset(f, 0, sizeof(*f));
    uint64_t *counter[] = {&stats->bad_bson, &stats->bad_version,
                           &stats->bad_kind, &stats->bad_field,
                           &stats->oversized};
    (*counter[d.cause])++;
    ra_log_debug("wire", "dropped %zu-byte frame: %s%s%s", len, d.why,
                 d.field != NULL ? " in field " : "",
                 d.field != NULL ? d.field : "");
    return rc;
}

int
ra_wire_decode_hello(const void *buf, size_t len, ra_wire_hello_t *h,
                     ra_wire_stats_t *stats)
{
    ra_wire_frame_t f;

    if (h == NULL) {
        return RA_EINVAL;
    }
    int rc = ra_wire_decode(buf, len, 0, &f, stats);
    if (rc != 0) {
        return rc;
    }
    if (f.kind != RA_WIRE_HELLO) {
        // Decoding counted it as good; it is not good here.
        if (stats != NULL) {
            stats->decoded--;
            stats->bad_kind++;
        }
        ra_log_debug("wire", "dropped %s frame: expected hello",
                     ra_wire_kind_name(f.kind));
        return RA_EBADMSG;
    }
    *h = f.hello;
    return 0;
}

int
ra_wire_negotiate(const ra_wire_hello_t *peer, int32_t *version)
{
    if (peer == NULL || version == NULL || peer->vmin < 1 ||
        peer->vmin > peer->vmax) {
        return RA_EINVAL;
    }
    int32_t lo = peer->vmin > RA_WIRE_VERSION_MIN ? peer->vmin
                                                  : RA_WIRE_VERSION_MIN;
    int32_t hi = peer->vmax < RA_WIRE_VERSION ? peer->vmax : RA_WIRE_VERSION;
    if (lo > hi) {
        return RA_ENOTSUP;
    }
    *version = hi;
    return 0;
}

int
ra_wire_frame_msg(const ra_wire_frame_t *f, ra_msg_t **out)
{
    if (f == NULL || out == NULL) {
        return RA_EINVAL;
    }
    if (f->kind != RA_WIRE_MSG) {
        return RA_EBADMSG;
    }
    if (f->body_kind == RA_WIRE_BODY_BYTES) {
        return ra_msg_new_bytes(out, f->tag, f->body, f->body_len);
    }
    bson_t doc;
    if (f->body_kind != RA_WIRE_BODY_BSON ||
        !bson_init_static(&doc, f->body, f->body_len)) {
        return RA_EBADMSG;
    }
    return ra_msg_new_bson(out, f->tag, &doc);
}

// ---------------------------------------------------------------- encoding

// The encoder builds the document in a buffer it allocates itself, through
// this realloc, so that running out of memory is an error code rather than
// libbson's abort, and an envelope far over the limit stops growing early.
typedef struct grow {
    size_t limit;
    bool refused;
} grow_t;

static void *
grow_realloc(void *mem, size_t num_bytes, void *ctx)
{
    grow_t *g = ctx;
    if (num_bytes > g->limit) {
        g->refused = true;
        return NULL;
    }
    return realloc(mem, num_bytes);
}

static bool
pid_ok(ra_pid_t p)
{
    return p.id >= 1;
}

static bool
append_pid(bson_t *doc, const char *key, ra_pid_t p)
{
    bson_t child;

    return bson_append_document_begin(doc, key, -1, &child) &&
           BSON_APPEND_INT64(&child, "n", p.node) &&
           BSON_APPEND_INT64(&child, "p", p.proc) &&
           BSON_APPEND_INT64(&child, "i", p.id) &&
           BSON_APPEND_INT64(&child, "g", p.gen) &&
           bson_append_document_end(doc, &child);
}

static bool
hello_ok(const ra_wire_hello_t *h)
{
    if (h->vmin < 1 || h->vmin > h->vmax || h->ncaps > RA_WIRE_MAX_CAPS ||
        h->inc < 0 || h->sess < 0 || h->ack < 0 || h->ospid < 0 ||
        h->ospid > INT32_MAX || h->ostart < 0 ||
        (h->host != NULL &&
         !cap_ok(h->host, strnlen(h->host, RA_WIRE_MAX_HOST + 1)))) {
        return false;
    }
    for (size_t i = 0; i < h->ncaps; i++) {
        if (h->caps[i] == NULL ||
            !cap_ok(h->caps[i], strnlen(h->caps[i], RA_WIRE_MAX_CAP_LEN + 1))) {
            return false;
        }
    }
    return true;
}

// frame_ok applies to f the rules the decoder applies to the wire, so that
// a frame this side encodes is one the other side accepts.
static bool
frame_ok(const ra_wire_frame_t *f)
{
    bool seq_ok = f->seq >= 1;

    switch (f->kind) {
    case RA_WIRE_MSG: {
        bson_t body;
        if (!seq_ok || !pid_ok(f->to) || f->cref < 0 ||
            (f->rep && f->cref == 0) ||
            (f->body == NULL && f->body_len > 0) ||
            f->body_len > INT32_MAX) {
            return false;
        }
        if (f->body_kind == RA_WIRE_BODY_BSON) {
            return f->body != NULL &&
                   bson_init_static(&body, f->body, f->body_len) &&
                   doc_ok(&body, 2);
        }
        return f->body_kind == RA_WIRE_BODY_BYTES;
    }
    case RA_WIRE_SIG:
        return seq_ok && pid_ok(f->from) && pid_ok(f->to) &&
               f->sig >= RA_WIRE_SIG_EXIT && f->sig <= RA_WIRE_SIG_DOWN &&
               (!SIG_HAS_REF(f->sig) || f->ref >= 1);
    case RA_WIRE_ACK:
        return f->ack >= 0 && f->seq >= 0 && f->eseq >= 0;
    case RA_WIRE_HELLO:
        return hello_ok(&f->hello);
    case RA_WIRE_ERR:
        return f->code < 0 && f->eseq >= 0 && f->cref >= 0 &&
               (f->text == NULL ||
                (strnlen(f->text, RA_WIRE_MAX_TEXT + 1) <= RA_WIRE_MAX_TEXT &&
                 bson_utf8_validate(f->text, strlen(f->text), false)));
    case RA_WIRE_CHUNK:
        return seq_ok && f->chunk_id >= 1 &&
               (f->data != NULL || f->data_len == 0) &&
               chunk_ok(f->chunk_idx, f->chunk_cnt, f->chunk_size,
                        f->chunk_total, f->data_len);
    case RA_WIRE_BYE:
        return true;
    case RA_WIRE_BATCH:
        return seq_ok && f->chunk_cnt >= 1 && f->data != NULL &&
               batch_ok(f->data, f->data_len, f->chunk_cnt);
    default:
        return false;
    }
}

static bool
append_caps(bson_t *doc, const ra_wire_hello_t *h)
{
    bson_t child;

    if (!bson_append_array_begin(doc, "caps", -1, &child)) {
        return false;
    }
    for (size_t i = 0; i < h->ncaps; i++) {
        char buf[16];
        const char *key;
        size_t klen = bson_uint32_to_string((uint32_t)i, &key, buf,
                                            sizeof(buf));
        if (!bson_append_utf8(&child, key, (int)klen, h->caps[i], -1)) {
            return false;
        }
    }
    return bson_append_array_end(doc, &child);
}

// append_fields writes the fields of f's kind after v and k; a field that
// is optional and at its default is left out.
static bool
append_fields(bson_t *doc, const ra_wire_frame_t *f)
{
    static const uint8_t empty[1] = {0}; // libbson wants a non-NULL pointer
    bson_t body;

    switch (f->kind) {
    case RA_WIRE_MSG:
        if (!BSON_APPEND_INT64(doc, "seq", f->seq) ||
            (pid_ok(f->from) && !append_pid(doc, "from", f->from)) ||
            !append_pid(doc, "to", f->to) ||
            (f->tag != 0 && !BSON_APPEND_INT32(doc, "tag", f->tag)) ||
            (f->cref != 0 && !BSON_APPEND_INT64(doc, "cref", f->cref)) ||
            (f->rep && !BSON_APPEND_INT32(doc, "rep", 1))) {
            return false;
        }
        if (f->body_kind == RA_WIRE_BODY_BSON) {
            return bson_init_static(&body, f->body, f->body_len) &&
                   BSON_APPEND_DOCUMENT(doc, "body", &body);
        }
        return bson_append_binary(doc, "body", -1, BSON_SUBTYPE_BINARY,
                                  f->body != NULL ? f->body : empty,
                                  (uint32_t)f->body_len);
    case RA_WIRE_SIG:
        return BSON_APPEND_INT64(doc, "seq", f->seq) &&
               append_pid(doc, "from", f->from) &&
               append_pid(doc, "to", f->to) &&
               BSON_APPEND_UTF8(doc, "s", sig_names[f->sig]) &&
               (!SIG_HAS_REASON(f->sig) ||
                BSON_APPEND_INT64(doc, "r", f->reason)) &&
               (!SIG_HAS_REF(f->sig) || BSON_APPEND_INT64(doc, "ref", f->ref));
    case RA_WIRE_ACK:
        return BSON_APPEND_INT64(doc, "ack", f->ack) &&
               (f->seq == 0 || BSON_APPEND_INT64(doc, "seq", f->seq)) &&
               (f->eseq == 0 || BSON_APPEND_INT64(doc, "eseq", f->eseq));
    case RA_WIRE_HELLO:
        return BSON_APPEND_INT64(doc, "node", f->hello.node) &&
               BSON_APPEND_INT64(doc, "proc", f->hello.proc) &&
               BSON_APPEND_INT32(doc, "vmin", f->hello.vmin) &&
               BSON_APPEND_INT32(doc, "vmax", f->hello.vmax) &&
               append_caps(doc, &f->hello) &&
               (f->hello.inc == 0 ||
                BSON_APPEND_INT64(doc, "inc", f->hello.inc)) &&
               (f->hello.sess == 0 ||
                BSON_APPEND_INT64(doc, "sess", f->hello.sess)) &&
               (f->hello.ack == 0 ||
                BSON_APPEND_INT64(doc, "ack", f->hello.ack)) &&
               (f->hello.host == NULL ||
                BSON_APPEND_UTF8(doc, "host", f->hello.host)) &&
               (f->hello.ospid == 0 ||
                (BSON_APPEND_INT64(doc, "ospid", f->hello.ospid) &&
                 BSON_APPEND_INT64(doc, "ostart", f->hello.ostart))) &&
               (!f->hello.ipc || BSON_APPEND_INT32(doc, "ipc", 1));
    case RA_WIRE_BYE:
        return !f->idle || BSON_APPEND_INT32(doc, "idle", 1);
    case RA_WIRE_BATCH:
        return BSON_APPEND_INT64(doc, "seq", f->seq) &&
               BSON_APPEND_INT32(doc, "cnt", f->chunk_cnt) &&
               bson_append_binary(doc, "data", -1, BSON_SUBTYPE_BINARY,
                                  f->data, (uint32_t)f->data_len);
    case RA_WIRE_ERR:
        return (!pid_ok(f->from) || append_pid(doc, "from", f->from)) &&
               (!pid_ok(f->to) || append_pid(doc, "to", f->to)) &&
               (f->cref == 0 || BSON_APPEND_INT64(doc, "cref", f->cref)) &&
               BSON_APPEND_INT32(doc, "code", f->code) &&
               (f->eseq == 0 || BSON_APPEND_INT64(doc, "eseq", f->eseq)) &&
               (f->text == NULL || BSON_APPEND_UTF8(doc, "text", f->text));
    case RA_WIRE_CHUNK:
        return BSON_APPEND_INT64(doc, "seq", f->seq) &&
               BSON_APPEND_INT64(doc, "id", f->chunk_id) &&
               BSON_APPEND_INT32(doc, "idx", f->chunk_idx) &&
               BSON_APPEND_INT32(doc, "cnt", f->chunk_cnt) &&
               BSON_APPEND_INT32(doc, "csz", f->chunk_size) &&
               BSON_APPEND_INT64(doc, "tot", f->chunk_total) &&
               bson_append_binary(doc, "data", -1, BSON_SUBTYPE_BINARY,
                                  f->data != NULL ? f->data : empty,
                                  (uint32_t)f->data_len);
    default:
        return false;
    }
}

int
ra_wire_encode(const ra_wire_frame_t *f, size_t max_msg, uint8_t **out,
               size_t *out_len)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    bson_t *doc = NULL;
    int rc;

    if (f == NULL || out == NULL || out_len == NULL || !frame_ok(f)) {
        return RA_EINVAL;
    }
    max_msg = limit_or_default(max_msg);
    // BSON documents stop at 2 GiB, whatever the limit says.
    if (f->body_len > max_msg || f->data_len > max_msg ||
        f->body_len > INT32_MAX - 1024 || f->data_len > INT32_MAX - 1024) {
        return RA_EFULL;
    }
    // libbson doubles its buffer as it grows, so the buffer may reach
    // twice the document before the final length is known.
    grow_t g = {max_msg > SIZE_MAX / 2 - 64 ? SIZE_MAX : 2 * max_msg + 64,
                false};
    // Start with room for the whole envelope, so that it is written
    // without a single realloc in the common case.
    cap = f->body_len + f->data_len + 320;
    if ((buf = malloc(cap)) == NULL) {
        rc = RA_ENOMEM;
        goto fail;
    }
    memcpy(buf, "\x05\0\0\0\0", 5); // an empty document, as libbson expects
    doc = bson_new_from_buffer(&buf, &cap, grow_realloc, &g);
    if (doc == NULL) {
        rc = RA_ENOMEM;
        goto fail;
    }
    if (!BSON_APPEND_INT32(doc, "v", RA_WIRE_VERSION) ||
        !BSON_APPEND_UTF8(doc, "k", kind_names[f->kind]) ||
        !append_fields(doc, f)) {
        rc = g.refused ? RA_EFULL : RA_ENOMEM;
        goto fail;
    }
    if (doc->len > max_msg) {
        rc = RA_EFULL;
        goto fail;
    }
    *out_len = doc->len;
    bson_destroy(doc);
    *out = buf;
    return 0;
fail:
    if (doc != NULL) {
        bson_destroy(doc);
    }
    free(buf);
    return rc;
}

int
ra_wire_encode_msg(const ra_msg_t *msg, ra_pid_t from, ra_pid_t to,
                   int64_t seq, int64_t cref, size_t max_msg, uint8_t **out,
                   size_t *out_len)
{
    ra_wire_frame_t f;

    if (msg == NULL) {
        return RA_EINVAL;
    }
    memset(&f, 0, sizeof(f));
    ra_msg_kind_t kind = ra_msg_kind(msg);
    if (kind != RA_MSG_BYTES && kind != RA_MSG_BSON) {
        return RA_EINVAL;
    }
    f.kind = RA_WIRE_MSG;
    f.seq = seq;
    f.from = from;
    f.to = to;
    f.tag = ra_msg_tag(msg);
    f.cref = cref;
    f.body_kind = kind == RA_MSG_BSON ? RA_WIRE_BODY_BSON : RA_WIRE_BODY_BYTES;
    f.body = ra_msg_data(msg, &f.body_len);
    return ra_wire_encode(&f, max_msg, out, out_len);
}

int
ra_wire_encode_around(const ra_wire_frame_t *f, uint8_t *body,
                      size_t headroom, size_t max_msg, uint8_t **start,
                      size_t *len)
{
    if (f == NULL || body == NULL || start == NULL || len == NULL ||
        f->kind != RA_WIRE_MSG || f->body_kind != RA_WIRE_BODY_BYTES) {
        return RA_EINVAL;
    }
    size_t blen = f->body_len;
    if (blen + headroom + 1 > limit_or_default(max_msg)) {
        return RA_EFULL;
    }
    // The body is the envelope's last field, so the envelope is [the other
    // fields, the body's header][body][the document's 0]: encode it with
    // an empty body and move all but its last byte in front of body.
    ra_wire_frame_t head = *f;
    head.body = NULL;
    head.body_len = 0;
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc = ra_wire_encode(&head, 0, &buf, &n);
    if (rc != 0) {
        return rc;
    }
    // An empty binary body: 0x05 "body" 0, length 0, subtype 0, then 0.
    size_t pre = n - 1;
    if (pre > headroom || pre <= 11 || buf[pre - 11] != 0x05 ||
        memcmp(buf + pre - 10, "body", 5) != 0) {
        ra_wire_free(buf);
        return RA_EFULL;
    }
    uint8_t *dst = body - pre;
    memcpy(dst, buf, pre);
    ra_wire_free(buf);
    put_u32(dst, (uint32_t)(pre + blen + 1));
    put_u32(dst + pre - 5, (uint32_t)blen);
    body[blen] = 0;
    *start = dst;
    *len = pre + blen + 1;
    return 0;
}

int
ra_wire_encode_hello(const ra_wire_hello_t *h, uint8_t **out,
                     size_t *out_len)
{
    ra_wire_frame_t f;

    if (h == NULL) {
        return RA_EINVAL;
    }
    memset(&f, 0, sizeof(f));
    f.kind = RA_WIRE_HELLO;
    f.hello = *h;
    return ra_wire_encode(&f, 0, out, out_len);
}

// ---------------------------------------------------------------- chunking

void
ra_wire_bufs_free(ra_wire_buf_t **bufs, size_t count)
{
    if (bufs == NULL || *bufs == NULL) {
        return;
    }
    for (size_t i = 0; i < count; i++) {
        free((*bufs)[i].data);
    }
    free(*bufs);
    *bufs = NULL;
}

int
ra_wire_split(const void *env, size_t len, int64_t msg_id, int64_t seq,
              size_t chunk_size, ra_wire_buf_t **out, size_t *count)
{
    ra_wire_buf_t *bufs = NULL;
    size_t n = 0;
    size_t i = 0;
    int rc = 0;

    if (env == NULL || len == 0 || len > INT64_MAX || msg_id < 1 ||
        seq < 1 || chunk_size == 0 || chunk_size > INT32_MAX ||
        out == NULL || count == NULL) {
        return RA_EINVAL;
    }
    n = len / chunk_size + (len % chunk_size != 0);
    if (n > INT32_MAX || (uint64_t)(n - 1) > (uint64_t)(INT64_MAX - seq)) {
        return RA_EFULL;
    }
    bufs = calloc(n, sizeof(*bufs));
    if (bufs == NULL) {
        return RA_ENOMEM;
    }
    ra_wire_frame_t f;
    memset(&f, 0, sizeof(f));
    f.kind = RA_WIRE_CHUNK;
    f.chunk_id = msg_id;
    f.chunk_cnt = (int32_t)n;
    f.chunk_size = (int32_t)chunk_size;
    f.chunk_total = (int64_t)len;
    for (i = 0; i < n; i++) {
        size_t off = i * chunk_size;
        f.seq = seq + (int64_t)i;
        f.chunk_idx = (int32_t)i;
        f.data = (const uint8_t *)env + off;
        f.data_len = len - off < chunk_size ? len - off : chunk_size;
        // A chunk is its data plus under a hundred bytes of envelope.
        rc = ra_wire_encode(&f, f.data_len + 256, &bufs[i].data,
                            &bufs[i].len);
        if (rc != 0) {
            goto fail;
        }
    }
    *out = bufs;
    *count = n;
    return 0;
fail:
    ra_wire_bufs_free(&bufs, i);
    return rc;
}

// ------------------------------------------------------------- reassembly

typedef struct pending {
    int64_t id;
    int32_t cnt;
    int32_t csz;
    int64_t tot;
    int32_t got;      // distinct chunks received
    uint8_t *seen;    // one bit per chunk index
    uint8_t *buf;     // tot bytes
    uint64_t last_ms; // when the latest chunk came
} pending_t;

struct ra_wire_reasm {
    size_t max_total;
    size_t max_pending;
    uint64_t timeout_ms;
    ra_wire_stats_t *stats;
    ra_wire_stats_t own; // counts when the caller gave no stats
    size_t n;
    pending_t *p; // max_pending slots, the first n in use
};

int
ra_wire_reasm_new(ra_wire_reasm_t **out, size_t max_total,
                  size_t max_pending, uint64_t timeout_ms,
                  ra_wire_stats_t *stats)
{
    ra_wire_reasm_t *r = NULL;

    if (out == NULL || max_pending == 0) {
        return RA_EINVAL;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return RA_ENOMEM;
    }
    r->p = calloc(max_pending, sizeof(*r->p));
    if (r->p == NULL) {
        free(r);
        return RA_ENOMEM;
    }
    r->max_total = limit_or_default(max_total);
    r->max_pending = max_pending;
    r->timeout_ms = timeout_ms;
    r->stats = stats != NULL ? stats : &r->own;
    *out = r;
    return 0;
}

// drop forgets slot i, moving the last slot into its place; order among
// slots does not matter, as eviction looks at times, not positions.
static void
drop(ra_wire_reasm_t *r, size_t i)
{
    free(r->p[i].seen);
    free(r->p[i].buf);
    r->p[i] = r->p[--r->n];
    memset(&r->p[r->n], 0, sizeof(r->p[r->n]));
}

void
ra_wire_reasm_destroy(ra_wire_reasm_t **r)
{
    if (r == NULL || *r == NULL) {
        return;
    }
    while ((*r)->n > 0) {
        drop(*r, 0);
    }
    free((*r)->p);
    free(*r);
    *r = NULL;
}

size_t
ra_wire_reasm_pending(const ra_wire_reasm_t *r)
{
    return r != NULL ? r->n : 0;
}

size_t
ra_wire_reasm_expire(ra_wire_reasm_t *r, uint64_t now_ms)
{
    size_t dropped = 0;

    if (r == NULL || r->timeout_ms == 0) {
        return 0;
    }
    for (size_t i = 0; i < r->n;) {
        // A clock that went backwards must not expire everything.
        if (now_ms > r->p[i].last_ms &&
            now_ms - r->p[i].last_ms > r->timeout_ms) {
            ra_log_debug("wire", "dropped incomplete message %lld: "
                         "%d of %d chunks after %llu ms",
                         (long long)r->p[i].id, (int)r->p[i].got,
                         (int)r->p[i].cnt,
                         (unsigned long long)(now_ms - r->p[i].last_ms));
            drop(r, i);
            r->stats->reasm_expired++;
            dropped++;
        } else {
            i++;
        }
    }
    return dropped;
}

static size_t
find(const ra_wire_reasm_t *r, int64_t id)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->p[i].id == id) {
            return i;
        }
    }
    return SIZE_MAX;
}

// start makes a slot for the first chunk of message f->chunk_id, evicting
// the slot idle longest if all are taken.
static int
start(ra_wire_reasm_t *r, const ra_wire_frame_t *f, uint64_t now_ms,
      size_t *slot)
{
    if (r->n == r->max_pending) {
        size_t old = 0;
        for (size_t i = 1; i < r->n; i++) {
            if (r->p[i].last_ms < r->p[old].last_ms) {
                old = i;
            }
        }
        ra_log_debug("wire", "evicted incomplete message %lld",
                     (long long)r->p[old].id);
        drop(r, old);
        r->stats->reasm_evicted++;
    }
    pending_t *p = &r->p[r->n];
    p->seen = calloc((size_t)f->chunk_cnt / 8 + 1, 1);
    p->buf = malloc((size_t)f->chunk_total);
    if (p->seen == NULL || p->buf == NULL) {
        free(p->seen);
        free(p->buf);
        memset(p, 0, sizeof(*p));
        return RA_ENOMEM;
    }
    p->id = f->chunk_id;
    p->cnt = f->chunk_cnt;
    p->csz = f->chunk_size;
    p->tot = f->chunk_total;
    p->got = 0;
    p->last_ms = now_ms;
    *slot = r->n++;
    return 0;
}

int
ra_wire_reasm_add(ra_wire_reasm_t *r, const ra_wire_frame_t *f,
                  uint64_t now_ms, uint8_t **out, size_t *out_len)
{
    size_t i;
    int rc;

    if (r == NULL || f == NULL || out == NULL || out_len == NULL) {
        return RA_EINVAL;
    }
    *out = NULL;
    *out_len = 0;
    // The frame may have been built by hand rather than decoded, so its
    // numbers are checked again before they size an allocation.
    if (f->kind != RA_WIRE_CHUNK || f->chunk_id < 1 ||
        (f->data == NULL && f->data_len > 0) ||
        !chunk_ok(f->chunk_idx, f->chunk_cnt, f->chunk_size,
                  f->chunk_total, f->data_len)) {
        r->stats->chunk_bad++;
        return RA_EBADMSG;
    }
    ra_wire_reasm_expire(r, now_ms);
    if ((uint64_t)f->chunk_total > r->max_total) {
        r->stats->oversized++;
        return RA_EFULL;
    }
    i = find(r, f->chunk_id);
    if (i != SIZE_MAX &&
        (r->p[i].cnt != f->chunk_cnt || r->p[i].csz != f->chunk_size ||
         r->p[i].tot != f->chunk_total)) {
        ra_log_debug("wire", "dropped message %lld: chunks disagree",
                     (long long)f->chunk_id);
        drop(r, i);
        r->stats->chunk_bad++;
        return RA_EBADMSG;
    }
    if (i == SIZE_MAX && (rc = start(r, f, now_ms, &i)) != 0) {
        return rc;
    }
    pending_t *p = &r->p[i];
    size_t idx = (size_t)f->chunk_idx;
    if (p->seen[idx / 8] & (1u << (idx % 8))) {
        r->stats->chunk_dup++;
        return RA_EEXIST;
    }
    p->seen[idx / 8] |= (uint8_t)(1u << (idx % 8));
    if (f->data_len > 0) {
        memcpy(p->buf + idx * (size_t)p->csz, f->data, f->data_len);
    }
    p->got++;
    p->last_ms = now_ms;
    if (p->got < p->cnt) {
        return 0;
    }
    *out = p->buf;
    *out_len = (size_t)p->tot;
    p->buf = NULL;
    drop(r, i);
    r->stats->reasm_done++;
    return 0;
}
