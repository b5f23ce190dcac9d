// check_mailbox.c - tests of messages, mailboxes and error names.
//
// One Suite, "mailbox", with one TCase per behaviour group.  Only the
// public header is used.
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "rayo.h"
#include "testutil.h"

// new_tagged returns a bytes message with tag holding the 4 bytes of v.
static ra_msg_t *
new_tagged(int32_t tag, uint32_t v)
{
    ra_msg_t *msg = NULL;

    RA_CK_OK(ra_msg_new_bytes(&msg, tag, &v, sizeof v));
    return msg;
}

// pop_tag pops one message, asserts it exists and returns its tag.
static int32_t
pop_tag(ra_mailbox_t *mb)
{
    ra_msg_t *msg = NULL;
    int32_t tag;

    RA_CK_OK(ra_mailbox_pop(mb, &msg));
    ck_assert_ptr_nonnull(msg);
    tag = ra_msg_tag(msg);
    ra_msg_unref(&msg);
    ck_assert_ptr_null(msg);
    return tag;
}

// ---- push / pop ---------------------------------------------------------

START_TEST(test_mailbox_new_and_destroy)
{
    ra_mailbox_t *mb = NULL;
    ra_msg_t *msg = NULL;

    RA_CK_ERR(ra_mailbox_new(NULL, 0, RA_FULL_FAIL), RA_EINVAL);
    RA_CK_OK(ra_mailbox_new(&mb, 0, RA_FULL_FAIL));
    ck_assert_ptr_nonnull(mb);
    ck_assert_uint_eq(ra_mailbox_dropped(mb), 0);
    RA_CK_ERR(ra_mailbox_pop(mb, &msg), RA_EAGAIN);
    ck_assert_ptr_null(msg);
    ra_mailbox_destroy(&mb);
    ck_assert_ptr_null(mb);
    ra_mailbox_destroy(&mb);    // safe twice
    ra_mailbox_destroy(NULL);   // and on NULL
}
END_TEST

START_TEST(test_mailbox_push_pop_fifo)
{
    ra_mailbox_t *mb = NULL;
    ra_msg_t *msg = NULL;

    RA_CK_OK(ra_mailbox_new(&mb, 0, RA_FULL_FAIL));
    for (int32_t i = 0; i < 1000; i++) {
        msg = new_tagged(i, (uint32_t)i * 7u);
        RA_CK_OK(ra_mailbox_push(mb, &msg));
        ck_assert_ptr_null(msg);    // the mailbox owns it now
    }
    for (int32_t i = 0; i < 1000; i++) {
        size_t len = 0;
        uint32_t v;

        RA_CK_OK(ra_mailbox_pop(mb, &msg));
        ck_assert_int_eq(ra_msg_tag(msg), i);
        ck_assert_int_eq(ra_msg_kind(msg), RA_MSG_BYTES);
        memcpy(&v, ra_msg_data(msg, &len), sizeof v);
        ck_assert_uint_eq(len, sizeof v);
        ck_assert_uint_eq(v, (uint32_t)i * 7u);
        ra_msg_unref(&msg);
    }
    RA_CK_ERR(ra_mailbox_pop(mb, &msg), RA_EAGAIN);
    ra_mailbox_destroy(&mb);
}
END_TEST

START_TEST(test_mailbox_pop_after_empty_then_push)
{
    ra_mailbox_t *mb = NULL;
    ra_msg_t *msg = NULL;

    // The queue must work again after it was drained (stub-node reuse).
    RA_CK_OK(ra_mailbox_new(&mb, 0, RA_FULL_FAIL));
    for (int32_t round = 0; round < 100; round++) {
        RA_CK_ERR(ra_mailbox_pop(mb, &msg), RA_EAGAIN);
        msg = new_tagged(round, 0);
        RA_CK_OK(ra_mailbox_push(mb, &msg));
        ck_assert_int_eq(pop_tag(mb), round);
    }
    ra_mailbox_destroy(&mb);
}
END_TEST

START_TEST(test_mailbox_destroy_frees_queued)
{
    ra_mailbox_t *mb = NULL;
    ra_msg_t *msg;

    // valgrind/ASan verify that destroy frees what is still queued.
    RA_CK_OK(ra_mailbox_new(&mb, 0, RA_FULL_FAIL));
    for (int i = 0; i < 10; i++) {
        msg = ra_test_msg("queued");
        RA_CK_OK(ra_mailbox_push(mb, &msg));
        msg = ra_test_msg("system");
        RA_CK_OK(ra_mailbox_push_system(mb, &msg));
    }
    ra_mailbox_destroy(&mb);
    ck_assert_ptr_null(mb);
}
END_TEST

// ---- system lane --------------------------------------------------------

START_TEST(test_mailbox_system_lane_overtakes_user)
{
    ra_mailbox_t *mb = NULL;
    ra_msg_t *msg;

    RA_CK_OK(ra_mailbox_new(&mb, 0, RA_FULL_FAIL));
    for (int32_t i = 1; i <= 3; i++) {
        msg = new_tagged(i, 0);
        RA_CK_OK(ra_mailbox_push(mb, &msg));
    }
    msg = new_tagged(100, 0);
    RA_CK_OK(ra_mailbox_push_system(mb, &msg));
    ck_assert_ptr_null(msg);
    msg = new_tagged(101, 0);
    RA_CK_OK(ra_mailbox_push_system(mb, &msg));

    // Both system messages first, in their own order, then the users.
    ck_assert_int_eq(pop_tag(mb), 100);
    ck_assert_int_eq(pop_tag(mb), 101);
    ck_assert_int_eq(pop_tag(mb), 1);
    msg = new_tagged(102, 0);
    RA_CK_OK(ra_mailbox_push_system(mb, &msg));
    ck_assert_int_eq(pop_tag(mb), 102);
    ck_assert_int_eq(pop_tag(mb), 2);
    ck_assert_int_eq(pop_tag(mb), 3);
    RA_CK_ERR(ra_mailbox_pop(mb, &msg), RA_EAGAIN);
    ra_mailbox_destroy(&mb);
}
END_TEST

START_TEST(test_mailbox_push_system_null_einval)
{
    ra_mailbox_t *mb = NULL;
    ra_msg_t *msg = NULL;

    RA_CK_OK(ra_mailbox_new(&mb, 0, RA_FULL_FAIL));
    RA_CK_ERR(ra_mailbox_push_system(mb, &msg), RA_EINVAL);
    RA_CK_ERR(ra_mailbox_push_system(mb, NULL), RA_EINVAL);
    ra_mailbox_destroy(&mb);
}
END_TEST

// ---- close --------------------------------------------------------------

START_TEST(test_mailbox_push_after_close_fails)
{
    ra_mailbox_t *mb = NULL;
    ra_msg_t *msg = ra_test_msg("ping");

    RA_CK_OK(ra_mailbox_new(&mb, 0, RA_FULL_FAIL));
    ra_mailbox_close(mb);
    RA_CK_ERR(ra_mailbox_push(mb, &msg), RA_ECLOSED);
    ck_assert_ptr_nonnull(msg); // the failure left ownership with us
    ra_test_msg_is(msg, "ping");
    RA_CK_ERR(ra_mailbox_push_system(mb, &msg), RA_ECLOSED);
    ck_assert_ptr_nonnull(msg);
    ra_mailbox_close(mb);       // idempotent
    RA_CK_ERR(ra_mailbox_push(mb, &msg), RA_ECLOSED);
    ck_assert_ptr_nonnull(msg);
    ra_msg_unref(&msg);
    ck_assert_ptr_null(msg);
    ra_mailbox_destroy(&mb);
}
END_TEST

START_TEST(test_mailbox_close_keeps_queued_poppable)
{
    ra_mailbox_t *mb = NULL;
    ra_msg_t *msg;

    RA_CK_OK(ra_mailbox_new(&mb, 4, RA_FULL_FAIL));
    msg = new_tagged(1, 0);
    RA_CK_OK(ra_mailbox_push(mb, &msg));
    msg = new_tagged(2, 0);
    RA_CK_OK(ra_mailbox_push_system(mb, &msg));
    ra_mailbox_close(mb);
    ck_assert_int_eq(pop_tag(mb), 2);
    ck_assert_int_eq(pop_tag(mb), 1);
    RA_CK_ERR(ra_mailbox_pop(mb, &msg), RA_EAGAIN);
    ra_mailbox_destroy(&mb);
}
END_TEST

// ---- bounded ------------------------------------------------------------

START_TEST(test_mailbox_bounded_fail_gives_efull)
{
    ra_mailbox_t *mb = NULL;
    ra_msg_t *msg;

    RA_CK_OK(ra_mailbox_new(&mb, 2, RA_FULL_FAIL));
    msg = new_tagged(1, 0);
    RA_CK_OK(ra_mailbox_push(mb, &msg));
    ck_assert_uint_eq(ra_mailbox_size(mb), 1);
    msg = new_tagged(2, 0);
    RA_CK_OK(ra_mailbox_push(mb, &msg));
    ck_assert_uint_eq(ra_mailbox_size(mb), 2);

    msg = new_tagged(3, 0);
    RA_CK_ERR(ra_mailbox_push(mb, &msg), RA_EFULL);
    ck_assert_ptr_nonnull(msg);         // still ours
    ck_assert_int_eq(ra_msg_tag(msg), 3);
    ck_assert_uint_eq(ra_mailbox_size(mb), 2);
    ck_assert_uint_eq(ra_mailbox_dropped(mb), 0);

    // The system lane is never bounded: a full mailbox stays killable.
    {
        ra_msg_t *sys = new_tagged(50, 0);

        RA_CK_OK(ra_mailbox_push_system(mb, &sys));
        ck_assert_ptr_null(sys);
        ck_assert_int_eq(pop_tag(mb), 50);
    }

    // Popping makes room again, and the retry succeeds.
    ck_assert_int_eq(pop_tag(mb), 1);
    ck_assert_uint_eq(ra_mailbox_size(mb), 1);
    RA_CK_OK(ra_mailbox_push(mb, &msg));
    ck_assert_ptr_null(msg);
    ck_assert_int_eq(pop_tag(mb), 2);
    ck_assert_int_eq(pop_tag(mb), 3);
    ck_assert_uint_eq(ra_mailbox_size(mb), 0);
    ra_mailbox_destroy(&mb);
}
END_TEST

START_TEST(test_mailbox_bounded_drop_counts)
{
    ra_mailbox_t *mb = NULL;
    ra_msg_t *msg;

    RA_CK_OK(ra_mailbox_new(&mb, 2, RA_FULL_DROP));
    for (int32_t i = 1; i <= 5; i++) {
        msg = new_tagged(i, 0);
        RA_CK_OK(ra_mailbox_push(mb, &msg));
        ck_assert_ptr_null(msg);    // dropped or queued, it is not ours
    }
    ck_assert_uint_eq(ra_mailbox_dropped(mb), 3);
    ck_assert_uint_eq(ra_mailbox_size(mb), 2);
    // The messages pushed into a full lane are the ones dropped.
    ck_assert_int_eq(pop_tag(mb), 1);
    ck_assert_int_eq(pop_tag(mb), 2);
    RA_CK_ERR(ra_mailbox_pop(mb, &msg), RA_EAGAIN);

    msg = new_tagged(6, 0);
    RA_CK_OK(ra_mailbox_push(mb, &msg));
    ck_assert_int_eq(pop_tag(mb), 6);
    ck_assert_uint_eq(ra_mailbox_dropped(mb), 3);
    ra_mailbox_destroy(&mb);
}
END_TEST

START_TEST(test_mailbox_bounded_drop_keeps_other_refs)
{
    ra_mailbox_t *mb = NULL;
    ra_msg_t *mine = ra_test_msg("shared");
    ra_msg_t *msg;

    // Dropping must release only the pushed reference, not the message.
    RA_CK_OK(ra_mailbox_new(&mb, 1, RA_FULL_DROP));
    msg = new_tagged(1, 0);
    RA_CK_OK(ra_mailbox_push(mb, &msg));
    msg = ra_msg_ref(mine);
    RA_CK_OK(ra_mailbox_push(mb, &msg));
    ck_assert_ptr_null(msg);
    ck_assert_uint_eq(ra_mailbox_dropped(mb), 1);
    ra_test_msg_is(mine, "shared");     // still alive (ASan/valgrind)
    ra_msg_unref(&mine);
    ra_mailbox_destroy(&mb);
}
END_TEST

typedef struct block_pusher {
    ra_mailbox_t *mb;
    ra_msg_t *msg;
    atomic_int started;
    atomic_int done;
    int rc;
} block_pusher_t;

static void *
block_pusher_main(void *arg)
{
    block_pusher_t *bp = arg;

    atomic_store(&bp->started, 1);
    bp->rc = ra_mailbox_push(bp->mb, &bp->msg);
    atomic_store(&bp->done, 1);
    return NULL;
}

START_TEST(test_mailbox_bounded_block_waits_for_room)
{
    ra_mailbox_t *mb = NULL;
    block_pusher_t bp = {0};
    pthread_t th;
    ra_msg_t *msg;

    RA_CK_OK(ra_mailbox_new(&mb, 1, RA_FULL_BLOCK));
    msg = new_tagged(1, 0);
    RA_CK_OK(ra_mailbox_push(mb, &msg));

    bp.mb = mb;
    bp.msg = new_tagged(2, 0);
    ck_assert_int_eq(pthread_create(&th, NULL, block_pusher_main, &bp), 0);
    RA_CK_WAIT(atomic_load(&bp.started), 5000);
    // Give a wrong (non-blocking) implementation time to return.
    ra_test_sleep_ms(150);
    ck_assert_msg(!atomic_load(&bp.done), "push into a full BLOCK mailbox "
                  "returned %s instead of waiting", ra_err_name(bp.rc));
    ck_assert_uint_eq(ra_mailbox_size(mb), 1);

    ck_assert_int_eq(pop_tag(mb), 1);   // make room: the pusher is released
    RA_CK_WAIT(atomic_load(&bp.done), 5000);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    RA_CK_OK(bp.rc);
    ck_assert_ptr_null(bp.msg);
    ck_assert_int_eq(pop_tag(mb), 2);
    ck_assert_uint_eq(ra_mailbox_dropped(mb), 0);
    ra_mailbox_destroy(&mb);
}
END_TEST

START_TEST(test_mailbox_bounded_block_close_wakes_sender)
{
    ra_mailbox_t *mb = NULL;
    block_pusher_t bp = {0};
    pthread_t th;
    ra_msg_t *msg;

    RA_CK_OK(ra_mailbox_new(&mb, 1, RA_FULL_BLOCK));
    msg = new_tagged(1, 0);
    RA_CK_OK(ra_mailbox_push(mb, &msg));
    bp.mb = mb;
    bp.msg = new_tagged(2, 0);
    ck_assert_int_eq(pthread_create(&th, NULL, block_pusher_main, &bp), 0);
    RA_CK_WAIT(atomic_load(&bp.started), 5000);
    ra_test_sleep_ms(100);
    ck_assert(!atomic_load(&bp.done));

    ra_mailbox_close(mb);
    RA_CK_WAIT(atomic_load(&bp.done), 5000);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    RA_CK_ERR(bp.rc, RA_ECLOSED);
    ck_assert_ptr_nonnull(bp.msg);      // the blocked sender kept it
    ck_assert_int_eq(ra_msg_tag(bp.msg), 2);
    ra_msg_unref(&bp.msg);
    ck_assert_int_eq(pop_tag(mb), 1);
    ra_mailbox_destroy(&mb);
}
END_TEST

// ---- messages -----------------------------------------------------------

START_TEST(test_mailbox_msg_bytes_basics)
{
    ra_msg_t *msg = NULL;
    size_t len = 99;
    const char *data;

    RA_CK_OK(ra_msg_new_bytes(&msg, 42, "abc", 3));
    ck_assert_int_eq(ra_msg_kind(msg), RA_MSG_BYTES);
    ck_assert_int_eq(ra_msg_tag(msg), 42);
    data = ra_msg_data(msg, &len);
    ck_assert_uint_eq(len, 3);
    ck_assert_mem_eq(data, "abc", 3);
    ck_assert_ptr_eq(ra_msg_data(msg, NULL), data); // len may be NULL
    ck_assert_ptr_null(ra_msg_bson(msg));
    RA_CK_ERR(ra_msg_exit_info(msg, NULL, NULL), RA_EBADMSG);
    RA_CK_ERR(ra_msg_down_info(msg, NULL, NULL, NULL), RA_EBADMSG);
    ra_msg_unref(&msg);
    ck_assert_ptr_null(msg);
    ra_msg_unref(&msg);     // safe on *msg == NULL
    ra_msg_unref(NULL);     // and on NULL

    // An empty payload is a valid message.
    RA_CK_OK(ra_msg_new_bytes(&msg, -1, NULL, 0));
    ck_assert_int_eq(ra_msg_tag(msg), -1);
    ra_msg_data(msg, &len);
    ck_assert_uint_eq(len, 0);
    ra_msg_unref(&msg);

    RA_CK_ERR(ra_msg_new_bytes(NULL, 0, "x", 1), RA_EINVAL);
}
END_TEST

START_TEST(test_mailbox_msg_wdata_null_once_shared)
{
    ra_msg_t *msg = NULL;
    ra_msg_t *other;
    unsigned char *w;
    size_t len = 0;
    const unsigned char *r;

    RA_CK_OK(ra_msg_new_bytes(&msg, 0, NULL, 16));
    r = ra_msg_data(msg, &len);
    ck_assert_uint_eq(len, 16);
    for (size_t i = 0; i < len; i++) {
        ck_assert_uint_eq(r[i], 0); // zeroed when data is NULL
    }
    w = ra_msg_wdata(msg);
    ck_assert_ptr_nonnull(w);
    for (size_t i = 0; i < 16; i++) {
        w[i] = (unsigned char)(i + 1);
    }
    r = ra_msg_data(msg, NULL);
    ck_assert_uint_eq(r[0], 1);
    ck_assert_uint_eq(r[15], 16);

    other = ra_msg_ref(msg);
    ck_assert_ptr_eq(other, msg);
    ck_assert_ptr_null(ra_msg_wdata(msg));      // shared now: read-only
    ck_assert_ptr_null(ra_msg_wdata(other));
    ra_msg_unref(&other);
    ra_msg_unref(&msg);
}
END_TEST

START_TEST(test_mailbox_msg_wdata_null_for_bson)
{
    bson_t *doc = BCON_NEW("k", BCON_INT32(1));
    ra_msg_t *msg = NULL;

    RA_CK_OK(ra_msg_new_bson(&msg, 0, doc));
    ck_assert_ptr_null(ra_msg_wdata(msg));
    ra_msg_unref(&msg);
    bson_destroy(doc);
}
END_TEST

START_TEST(test_mailbox_msg_broadcast_refcount)
{
    ra_mailbox_t *mb[3] = {NULL, NULL, NULL};
    ra_msg_t *msg = ra_test_msg("broadcast payload");
    const void *payload = ra_msg_data(msg, NULL);

    for (int i = 0; i < 3; i++) {
        ra_msg_t *r;

        RA_CK_OK(ra_mailbox_new(&mb[i], 0, RA_FULL_FAIL));
        r = ra_msg_ref(msg);
        ck_assert_ptr_eq(r, msg);
        RA_CK_OK(ra_mailbox_push(mb[i], &r));
        ck_assert_ptr_null(r);
    }
    for (int i = 0; i < 3; i++) {
        ra_msg_t *got = NULL;

        RA_CK_OK(ra_mailbox_pop(mb[i], &got));
        ck_assert_ptr_eq(got, msg);                  // the same message
        ck_assert_ptr_eq(ra_msg_data(got, NULL), payload); // never copied
        ra_test_msg_is(got, "broadcast payload");
        ra_msg_unref(&got);
        ra_mailbox_destroy(&mb[i]);
    }
    // Three references dropped; ours must still be valid (ASan/valgrind
    // catch a use after free here, and a leak or double free below).
    ra_test_msg_is(msg, "broadcast payload");
    ra_msg_unref(&msg);
}
END_TEST

START_TEST(test_mailbox_msg_bson_round_trip)
{
    bson_t *doc = BCON_NEW("n", BCON_INT32(41), "s", BCON_UTF8("hello"),
                           "sub", "{", "x", BCON_DOUBLE(1.5), "}");
    ra_mailbox_t *mb = NULL;
    ra_msg_t *msg = NULL;
    ra_msg_t *got = NULL;
    const bson_t *back;
    bson_iter_t it;
    size_t len = 0;
    const void *raw;

    RA_CK_OK(ra_msg_new_bson(&msg, 7, doc));
    ck_assert_int_eq(ra_msg_kind(msg), RA_MSG_BSON);
    ck_assert_int_eq(ra_msg_tag(msg), 7);
    back = ra_msg_bson(msg);
    ck_assert_ptr_nonnull(back);
    ck_assert_ptr_ne(back, doc);        // a copy
    raw = ra_msg_data(msg, &len);
    ck_assert_uint_eq(len, doc->len);
    ck_assert_mem_eq(raw, bson_get_data(doc), doc->len);
    bson_destroy(doc);                  // the message does not need it

    RA_CK_OK(ra_mailbox_new(&mb, 0, RA_FULL_FAIL));
    RA_CK_OK(ra_mailbox_push(mb, &msg));
    RA_CK_OK(ra_mailbox_pop(mb, &got));
    back = ra_msg_bson(got);
    ck_assert_ptr_nonnull(back);
    ck_assert(bson_iter_init_find(&it, back, "n"));
    ck_assert_int_eq(bson_iter_int32(&it), 41);
    ck_assert(bson_iter_init_find(&it, back, "s"));
    ck_assert_str_eq(bson_iter_utf8(&it, NULL), "hello");
    ck_assert(bson_iter_init(&it, back));
    ck_assert(bson_iter_find_descendant(&it, "sub.x", &it));
    ck_assert(bson_iter_double(&it) == 1.5);
    ra_msg_unref(&got);
    ra_mailbox_destroy(&mb);

    RA_CK_ERR(ra_msg_new_bson(&msg, 0, NULL), RA_EINVAL);
}
END_TEST

// ---- names --------------------------------------------------------------

START_TEST(test_mailbox_err_names)
{
    static const struct {
        int rc;
        const char *name;
    } codes[] = {
        {RA_ENOPROC, "RA_ENOPROC"}, {RA_EFULL, "RA_EFULL"},
        {RA_ECLOSED, "RA_ECLOSED"}, {RA_ETIMEOUT, "RA_ETIMEOUT"},
        {RA_EINVAL, "RA_EINVAL"},   {RA_ENOMEM, "RA_ENOMEM"},
        {RA_ENOTSUP, "RA_ENOTSUP"}, {RA_EEXIT, "RA_EEXIT"},
        {RA_ENOENT, "RA_ENOENT"},   {RA_EBADMSG, "RA_EBADMSG"},
        {RA_EDEADLK, "RA_EDEADLK"}, {RA_EAGAIN, "RA_EAGAIN"},
        {RA_EEXIST, "RA_EEXIST"},
    };
    size_t n = sizeof codes / sizeof codes[0];

    for (size_t i = 0; i < n; i++) {
        const char *s = ra_strerror(codes[i].rc);

        ck_assert_str_eq(ra_err_name(codes[i].rc), codes[i].name);
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_gt(strlen(s), 0);
        for (size_t j = 0; j < i; j++) {
            ck_assert_str_ne(s, ra_strerror(codes[j].rc));
        }
    }
    ck_assert_str_eq(ra_err_name(0), "OK");
    ck_assert_str_eq(ra_err_name(-ENOMEM), "ENOMEM");
    ck_assert_str_eq(ra_err_name(-EINVAL), "EINVAL");
    ck_assert_str_eq(ra_err_name(-EAGAIN), "EAGAIN");
    ck_assert_str_eq(ra_err_name(RA_EBASE - 500), "RA_E?");
    ck_assert_uint_gt(strlen(ra_strerror(0)), 0);
    ck_assert_uint_gt(strlen(ra_strerror(-ENOMEM)), 0);
    ck_assert_str_ne(ra_strerror(-ENOMEM), ra_strerror(RA_ENOPROC));
    ck_assert_ptr_nonnull(ra_strerror(RA_EBASE - 500));
    // Our codes never collide with an errno.
    ck_assert_int_lt(RA_EBASE, -4096);
}
END_TEST

START_TEST(test_mailbox_pid_str)
{
    char buf[RA_PID_STRLEN];
    ra_pid_t p = {1, 2, 3, 4};
    ra_pid_t big = {UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX};

    ck_assert_ptr_eq(ra_pid_str(p, buf), buf);
    ck_assert_str_eq(buf, "<1.2.3.4>");
    ra_pid_str(big, buf);
    ck_assert_str_eq(buf, "<4294967295.4294967295.4294967295.4294967295>");
    ra_pid_str(RA_PID_NIL, buf);
    ck_assert_str_eq(buf, "<0.0.0.0>");
    ck_assert(ra_pid_is_nil(RA_PID_NIL));
    ck_assert(!ra_pid_is_nil(p));
    ck_assert(ra_pid_eq(p, (ra_pid_t){1, 2, 3, 4}));
    ck_assert(!ra_pid_eq(p, (ra_pid_t){1, 2, 3, 5}));
}
END_TEST

START_TEST(test_mailbox_reason_str)
{
    char buf[64];

    ck_assert_ptr_eq(ra_reason_str(RA_NORMAL, buf, sizeof buf), buf);
    ck_assert_str_eq(buf, "normal");
    ck_assert_str_eq(ra_reason_str(RA_SHUTDOWN, buf, sizeof buf),
                     "shutdown");
    ck_assert_str_eq(ra_reason_str(RA_KILL, buf, sizeof buf), "kill");
    ck_assert_str_eq(ra_reason_str(RA_KILLED, buf, sizeof buf), "killed");
    ck_assert_str_eq(ra_reason_str(RA_NOPROC, buf, sizeof buf), "noproc");
    ck_assert_str_eq(ra_reason_str(RA_NOCONNECTION, buf, sizeof buf),
                     "noconnection");
    ck_assert_str_eq(ra_reason_str(RA_EINVAL, buf, sizeof buf),
                     "RA_EINVAL");
    ck_assert_str_eq(ra_reason_str(RA_ENOPROC, buf, sizeof buf),
                     "RA_ENOPROC");
    ck_assert_str_eq(ra_reason_str(1042, buf, sizeof buf), "user:1042");
    ck_assert_str_eq(ra_reason_str(RA_REASON_USER, buf, sizeof buf),
                     "user:1000");

    // A short buffer is truncated and still terminated.
    memset(buf, 'x', sizeof buf);
    ra_reason_str(RA_NORMAL, buf, 4);
    ck_assert_uint_lt(strlen(buf), 4);
    ck_assert_str_eq(buf, "nor");
}
END_TEST

// ---- concurrency --------------------------------------------------------

enum { N_PRODUCERS = 8 };

typedef struct producer {
    ra_mailbox_t *mb;
    uint32_t id;
    uint32_t count;
    pthread_barrier_t *start;
    int failures;
} producer_t;

typedef struct payload {
    uint32_t producer;
    uint32_t seq;
} payload_t;

static void *
producer_main(void *arg)
{
    producer_t *p = arg;

    pthread_barrier_wait(p->start);
    for (uint32_t i = 0; i < p->count; i++) {
        payload_t pl = {p->id, i};
        ra_msg_t *msg = NULL;

        if (ra_msg_new_bytes(&msg, (int32_t)p->id, &pl, sizeof pl) != 0 ||
            ra_mailbox_push(p->mb, &msg) != 0) {
            p->failures++;
            ra_msg_unref(&msg);
        }
    }
    return NULL;
}

// run_producers pushes count messages from each of N_PRODUCERS threads
// into mb while this thread pops, and checks the total and per-producer
// FIFO order.  With a bound it also checks the user lane never overflows.
static void
run_producers(ra_mailbox_t *mb, uint32_t count, size_t cap)
{
    pthread_t th[N_PRODUCERS];
    producer_t prod[N_PRODUCERS];
    uint32_t next[N_PRODUCERS] = {0};
    pthread_barrier_t start;
    uint64_t total = 0;
    uint64_t want = (uint64_t)count * N_PRODUCERS;
    uint64_t deadline;

    ck_assert_int_eq(pthread_barrier_init(&start, NULL, N_PRODUCERS + 1), 0);
    for (uint32_t i = 0; i < N_PRODUCERS; i++) {
        prod[i] = (producer_t){mb, i, count, &start, 0};
        ck_assert_int_eq(
            pthread_create(&th[i], NULL, producer_main, &prod[i]), 0);
    }
    pthread_barrier_wait(&start);
    deadline = ra_test_now_ms() + 100000;
    // check's assertions write to a pipe each time they pass, so the hot
    // loop only records the first problem and asserts once afterwards.
    char problem[160] = "";
    while (total < want && problem[0] == '\0') {
        ra_msg_t *msg = NULL;
        payload_t pl;
        size_t len = 0;
        int rc = ra_mailbox_pop(mb, &msg);

        if (rc == RA_EAGAIN) {
            if (ra_test_now_ms() >= deadline) {
                snprintf(problem, sizeof problem,
                         "only %" PRIu64 " of %" PRIu64 " messages arrived",
                         total, want);
            }
            sched_yield();
            continue;
        }
        if (rc != 0) {
            snprintf(problem, sizeof problem, "pop: %s", ra_err_name(rc));
            break;
        }
        memcpy(&pl, ra_msg_data(msg, &len), sizeof pl);
        if (len != sizeof pl || pl.producer >= N_PRODUCERS ||
            ra_msg_tag(msg) != (int32_t)pl.producer) {
            snprintf(problem, sizeof problem, "bad message (len %zu)", len);
        } else if (pl.seq != next[pl.producer]) {
            snprintf(problem, sizeof problem,
                     "producer %u: got seq %u, expected %u", pl.producer,
                     pl.seq, next[pl.producer]);
        } else if (cap != 0 && ra_mailbox_size(mb) > cap) {
            snprintf(problem, sizeof problem, "size %zu over cap %zu",
                     ra_mailbox_size(mb), cap);
        } else {
            next[pl.producer]++;
            total++;
        }
        ra_msg_unref(&msg);
    }
    ck_assert_msg(problem[0] == '\0', "%s", problem);
    for (int i = 0; i < N_PRODUCERS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(prod[i].failures, 0);
        ck_assert_uint_eq(next[i], count);
    }
    {
        ra_msg_t *msg = NULL;

        RA_CK_ERR(ra_mailbox_pop(mb, &msg), RA_EAGAIN);   // nothing extra
    }
    ck_assert_uint_eq(ra_mailbox_dropped(mb), 0);
    pthread_barrier_destroy(&start);
}

START_TEST(test_mailbox_concurrent_producers_fifo)
{
    ra_mailbox_t *mb = NULL;
    uint32_t n = (uint32_t)ra_test_scaled(200000);

    RA_CK_OK(ra_mailbox_new(&mb, 0, RA_FULL_FAIL));
    run_producers(mb, n, 0);
    ra_mailbox_destroy(&mb);
}
END_TEST

START_TEST(test_mailbox_concurrent_producers_bounded_block)
{
    ra_mailbox_t *mb = NULL;
    uint32_t n = (uint32_t)ra_test_scaled(20000);

    // Eight senders keep hitting a small BLOCK mailbox: nothing is lost
    // and nothing is dropped.
    RA_CK_OK(ra_mailbox_new(&mb, 64, RA_FULL_BLOCK));
    run_producers(mb, n, 0);
    ra_mailbox_destroy(&mb);
}
END_TEST

START_TEST(test_mailbox_concurrent_size_within_cap)
{
    ra_mailbox_t *mb = NULL;
    uint32_t n = (uint32_t)ra_test_scaled(20000);

    // ra_mailbox_size is "exact for a bounded mailbox": while eight
    // senders wait for room it must never report more than the bound.
    RA_CK_OK(ra_mailbox_new(&mb, 64, RA_FULL_BLOCK));
    run_producers(mb, n, 64);
    ra_mailbox_destroy(&mb);
}
END_TEST

typedef struct sys_producer {
    ra_mailbox_t *mb;
    uint32_t count;
    bool system;
    int failures;
} sys_producer_t;

static void *
sys_producer_main(void *arg)
{
    sys_producer_t *p = arg;

    for (uint32_t i = 0; i < p->count; i++) {
        ra_msg_t *msg = NULL;
        int rc;

        if (ra_msg_new_bytes(&msg, p->system ? 1 : 0, &i, sizeof i) != 0) {
            p->failures++;
            continue;
        }
        rc = p->system ? ra_mailbox_push_system(p->mb, &msg)
                       : ra_mailbox_push(p->mb, &msg);
        if (rc != 0) {
            p->failures++;
            ra_msg_unref(&msg);
        }
    }
    return NULL;
}

START_TEST(test_mailbox_concurrent_both_lanes)
{
    ra_mailbox_t *mb = NULL;
    uint32_t n = (uint32_t)ra_test_scaled(100000);
    sys_producer_t user = {NULL, n, false, 0};
    sys_producer_t sys = {NULL, n, true, 0};
    uint32_t next[2] = {0, 0};
    pthread_t tu;
    pthread_t ts;
    uint64_t deadline = ra_test_now_ms() + 100000;

    RA_CK_OK(ra_mailbox_new(&mb, 0, RA_FULL_FAIL));
    user.mb = sys.mb = mb;
    ck_assert_int_eq(pthread_create(&tu, NULL, sys_producer_main, &user), 0);
    ck_assert_int_eq(pthread_create(&ts, NULL, sys_producer_main, &sys), 0);
    while (next[0] < n || next[1] < n) {
        ra_msg_t *msg = NULL;
        uint32_t v;
        int32_t lane;
        int rc = ra_mailbox_pop(mb, &msg);

        if (rc == RA_EAGAIN) {
            ck_assert(ra_test_now_ms() < deadline);
            sched_yield();
            continue;
        }
        RA_CK_OK(rc);
        lane = ra_msg_tag(msg);
        ck_assert(lane == 0 || lane == 1);
        memcpy(&v, ra_msg_data(msg, NULL), sizeof v);
        ck_assert_uint_eq(v, next[lane]);   // each lane stays FIFO
        next[lane]++;
        ra_msg_unref(&msg);
    }
    ck_assert_int_eq(pthread_join(tu, NULL), 0);
    ck_assert_int_eq(pthread_join(ts, NULL), 0);
    ck_assert_int_eq(user.failures + sys.failures, 0);
    ra_mailbox_destroy(&mb);
}
END_TEST

static Suite *
mailbox_suite(void)
{
    Suite *s = suite_create("mailbox");
    TCase *tc;

    tc = tcase_create("push");
    tcase_add_test(tc, test_mailbox_new_and_destroy);
    tcase_add_test(tc, test_mailbox_push_pop_fifo);
    tcase_add_test(tc, test_mailbox_pop_after_empty_then_push);
    tcase_add_test(tc, test_mailbox_destroy_frees_queued);
    suite_add_tcase(s, tc);

    tc = tcase_create("system");
    tcase_add_test(tc, test_mailbox_system_lane_overtakes_user);
    tcase_add_test(tc, test_mailbox_push_system_null_einval);
    suite_add_tcase(s, tc);

    tc = tcase_create("close");
    tcase_add_test(tc, test_mailbox_push_after_close_fails);
    tcase_add_test(tc, test_mailbox_close_keeps_queued_poppable);
    suite_add_tcase(s, tc);

    tc = tcase_create("bounded");
    tcase_add_test(tc, test_mailbox_bounded_fail_gives_efull);
    tcase_add_test(tc, test_mailbox_bounded_drop_counts);
    tcase_add_test(tc, test_mailbox_bounded_drop_keeps_other_refs);
    tcase_add_test(tc, test_mailbox_bounded_block_waits_for_room);
    tcase_add_test(tc, test_mailbox_bounded_block_close_wakes_sender);
    tcase_set_timeout(tc, 20);
    suite_add_tcase(s, tc);

    tc = tcase_create("message");
    tcase_add_test(tc, test_mailbox_msg_bytes_basics);
    tcase_add_test(tc, test_mailbox_msg_wdata_null_once_shared);
    tcase_add_test(tc, test_mailbox_msg_wdata_null_for_bson);
    tcase_add_test(tc, test_mailbox_msg_broadcast_refcount);
    tcase_add_test(tc, test_mailbox_msg_bson_round_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("names");
    tcase_add_test(tc, test_mailbox_err_names);
    tcase_add_test(tc, test_mailbox_pid_str);
    tcase_add_test(tc, test_mailbox_reason_str);
    suite_add_tcase(s, tc);

    tc = tcase_create("concurrency");
    tcase_add_test(tc, test_mailbox_concurrent_producers_fifo);
    tcase_add_test(tc, test_mailbox_concurrent_producers_bounded_block);
    tcase_add_test(tc, test_mailbox_concurrent_size_within_cap);
    tcase_add_test(tc, test_mailbox_concurrent_both_lanes);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ra_test_run(mailbox_suite());
}
