// check_wire.c - the wire codec: round trips, chunking, malformed input.
#include <stddef.h>

#include "testutil.h"

static const ra_pid_t pid_a = {1, 2, 3, 4};
static const ra_pid_t pid_b = {5, 6, 7, UINT32_MAX};

// encode_ok encodes f and returns the buffer, failing the test otherwise.
static uint8_t *
encode_ok(const ra_wire_frame_t *f, size_t *len)
{
    uint8_t *buf = NULL;

    RA_CK_OK(ra_wire_encode(f, 0, &buf, len));
    ck_assert_ptr_nonnull(buf);
    return buf;
}

// round_trip encodes f, decodes the result into *g and checks the fields
// every kind shares.  Returns the buffer, which *g borrows from.
static uint8_t *
round_trip(const ra_wire_frame_t *f, ra_wire_frame_t *g)
{
    ra_wire_stats_t st = {0};
    size_t len = 0;
    uint8_t *buf = encode_ok(f, &len);

    RA_CK_OK(ra_wire_decode(buf, len, 0, g, &st));
    ck_assert_uint_eq(st.decoded, 1);
    ck_assert_int_eq(g->version, RA_WIRE_VERSION);
    ck_assert_int_eq(g->kind, f->kind);
    ck_assert_int_eq(g->seq, f->seq);
    return buf;
}

static ra_wire_frame_t
msg_frame(void)
{
    ra_wire_frame_t f;

    memset(&f, 0, sizeof(f));
    f.kind = RA_WIRE_MSG;
    f.seq = 17;
    f.from = pid_a;
    f.to = pid_b;
    f.tag = -42;
    f.cref = INT64_MAX;
    f.body_kind = RA_WIRE_BODY_BYTES;
    f.body = (const uint8_t *)"payload";
    f.body_len = 7;
    return f;
}

START_TEST(test_wire_msg_bytes_round_trip)
{
    ra_wire_frame_t f = msg_frame();
    ra_wire_frame_t g;
    uint8_t *buf = round_trip(&f, &g);
    ra_msg_t *msg = NULL;

    RA_CK_PID_EQ(g.from, pid_a);
    RA_CK_PID_EQ(g.to, pid_b);
    ck_assert_int_eq(g.tag, -42);
    ck_assert_int_eq(g.cref, INT64_MAX);
    ck_assert_int_eq(g.body_kind, RA_WIRE_BODY_BYTES);
    RA_CK_OK(ra_wire_frame_msg(&g, &msg));
    ra_wire_free(buf); // the message copied its payload
    ra_test_msg_is(msg, "payload");
    ck_assert_int_eq(ra_msg_tag(msg), -42);
    ra_msg_unref(&msg);
}
END_TEST

START_TEST(test_wire_msg_bson_round_trip)
{
    bson_t *doc = BCON_NEW("op", "add", "args", "[", BCON_INT32(1),
                           BCON_INT32(2), "]");
    ra_msg_t *msg = NULL;
    ra_msg_t *back = NULL;
    ra_wire_frame_t g;
    uint8_t *buf = NULL;
    size_t len = 0;
    bson_iter_t it;

    RA_CK_OK(ra_msg_new_bson(&msg, 9, doc));
    RA_CK_OK(ra_wire_encode_msg(msg, RA_PID_NIL, pid_b, 1, 0, 0, &buf,
                                &len));
    RA_CK_OK(ra_wire_decode(buf, len, 0, &g, NULL));
    ck_assert_int_eq(g.kind, RA_WIRE_MSG);
    ck_assert_int_eq(g.body_kind, RA_WIRE_BODY_BSON);
    ck_assert(ra_pid_is_nil(g.from)); // nil travels by omission
    ck_assert_int_eq(g.cref, 0);
    RA_CK_OK(ra_wire_frame_msg(&g, &back));
    ra_wire_free(buf);
    ck_assert_int_eq(ra_msg_kind(back), RA_MSG_BSON);
    ck_assert_int_eq(ra_msg_tag(back), 9);
    ck_assert(bson_equal(ra_msg_bson(back), doc));
    ck_assert(bson_iter_init_find(&it, ra_msg_bson(back), "op"));
    ck_assert_str_eq(bson_iter_utf8(&it, NULL), "add");
    ra_msg_unref(&back);
    ra_msg_unref(&msg);
    bson_destroy(doc);
}
END_TEST

START_TEST(test_wire_msg_empty_body)
{
    ra_msg_t *msg = NULL;
    ra_msg_t *back = NULL;
    ra_wire_frame_t g;
    uint8_t *buf = NULL;
    size_t len = 0;

    RA_CK_OK(ra_msg_new_bytes(&msg, 0, NULL, 0));
    RA_CK_OK(ra_wire_encode_msg(msg, pid_a, pid_b, 3, 5, 0, &buf, &len));
    RA_CK_OK(ra_wire_decode(buf, len, 0, &g, NULL));
    ck_assert_uint_eq(g.body_len, 0);
    ck_assert_int_eq(g.cref, 5);
    RA_CK_OK(ra_wire_frame_msg(&g, &back));
    ra_test_msg_is(back, "");
    ra_msg_unref(&back);
    ra_msg_unref(&msg);
    ra_wire_free(buf);
}
END_TEST

START_TEST(test_wire_sig_round_trip)
{
    for (int s = RA_WIRE_SIG_EXIT; s <= RA_WIRE_SIG_DOWN; s++) {
        ra_wire_frame_t f;
        ra_wire_frame_t g;
        bool reason = s == RA_WIRE_SIG_EXIT || s == RA_WIRE_SIG_DOWN;
        bool ref = s == RA_WIRE_SIG_MONITOR || s == RA_WIRE_SIG_DEMONITOR ||
                   s == RA_WIRE_SIG_DOWN;

        memset(&f, 0, sizeof(f));
        f.kind = RA_WIRE_SIG;
        f.seq = 100 + s;
        f.from = pid_a;
        f.to = pid_b;
        f.sig = (ra_wire_sig_t)s;
        f.reason = reason ? RA_EINVAL : 0;
        f.ref = ref ? (int64_t)1 << 40 : 0;
        uint8_t *buf = round_trip(&f, &g);
        ck_assert_int_eq(g.sig, s);
        RA_CK_PID_EQ(g.from, pid_a);
        RA_CK_PID_EQ(g.to, pid_b);
        ck_assert_int_eq(g.reason, f.reason);
        ck_assert_int_eq(g.ref, f.ref);
        ra_wire_free(buf);
    }
}
END_TEST

START_TEST(test_wire_ack_err_round_trip)
{
    ra_wire_frame_t f;
    ra_wire_frame_t g;
    uint8_t *buf;

    memset(&f, 0, sizeof(f));
    f.kind = RA_WIRE_ACK;
    f.ack = 123456789012;
    buf = round_trip(&f, &g);
    ck_assert_int_eq(g.ack, 123456789012);
    ra_wire_free(buf);

    memset(&f, 0, sizeof(f));
    f.kind = RA_WIRE_ERR;
    f.to = pid_a;
    f.cref = 77;
    f.code = RA_ENOPROC;
    f.eseq = 12;
    f.text = "no actor <5.6.7.8>";
    buf = round_trip(&f, &g);
    RA_CK_ERR(g.code, RA_ENOPROC);
    RA_CK_PID_EQ(g.to, pid_a);
    ck_assert(ra_pid_is_nil(g.from));
    ck_assert_int_eq(g.cref, 77);
    ck_assert_int_eq(g.eseq, 12);
    ck_assert_str_eq(g.text, "no actor <5.6.7.8>");
    ra_wire_free(buf);

    // The smallest err: a code and nothing else.
    memset(&f, 0, sizeof(f));
    f.kind = RA_WIRE_ERR;
    f.code = RA_EFULL;
    buf = round_trip(&f, &g);
    RA_CK_ERR(g.code, RA_EFULL);
    ck_assert_ptr_null(g.text);
    ra_wire_free(buf);
}
END_TEST

START_TEST(test_wire_hello_round_trip)
{
    ra_wire_hello_t h = {.node = 7, .proc = 3, .vmin = 1, .vmax = 1,
                         .ncaps = 2, .caps = {"chunk", "bson.v1"}};
    ra_wire_hello_t back;
    ra_wire_stats_t st = {0};
    uint8_t *buf = NULL;
    size_t len = 0;
    int32_t v = 0;

    RA_CK_OK(ra_wire_encode_hello(&h, &buf, &len));
    RA_CK_OK(ra_wire_decode_hello(buf, len, &back, &st));
    ck_assert_uint_eq(st.decoded, 1);
    ck_assert_uint_eq(back.node, 7);
    ck_assert_uint_eq(back.proc, 3);
    ck_assert_int_eq(back.vmin, 1);
    ck_assert_int_eq(back.vmax, 1);
    ck_assert_uint_eq(back.ncaps, 2);
    ck_assert_str_eq(back.caps[0], "chunk");
    ck_assert_str_eq(back.caps[1], "bson.v1");
    RA_CK_OK(ra_wire_negotiate(&back, &v));
    ck_assert_int_eq(v, 1);
    ra_wire_free(buf);

    // A newer peer that still speaks 1 gets 1; one that does not, no link.
    h.vmax = 5;
    RA_CK_OK(ra_wire_negotiate(&h, &v));
    ck_assert_int_eq(v, 1);
    h.vmin = 2;
    RA_CK_ERR(ra_wire_negotiate(&h, &v), RA_ENOTSUP);

    // decode_hello refuses a valid envelope of another kind.
    ra_wire_frame_t f;
    memset(&f, 0, sizeof(f));
    f.kind = RA_WIRE_ACK;
    buf = encode_ok(&f, &len);
    RA_CK_ERR(ra_wire_decode_hello(buf, len, &back, &st), RA_EBADMSG);
    ck_assert_uint_eq(st.decoded, 1);
    ck_assert_uint_eq(st.bad_kind, 1);
    ra_wire_free(buf);
}
END_TEST

START_TEST(test_wire_session_fields_round_trip)
{
    // hello's session numbers, a reply, and both kinds of bye.
    ra_wire_frame_t f, g;
    memset(&f, 0, sizeof(f));
    f.kind = RA_WIRE_HELLO;
    f.hello = (ra_wire_hello_t){.node = 4, .proc = 2, .vmin = 1, .vmax = 1,
                                .inc = INT64_MAX, .sess = 9, .ack = 123};
    uint8_t *buf = round_trip(&f, &g);
    ck_assert_int_eq(g.hello.inc, INT64_MAX);
    ck_assert_int_eq(g.hello.sess, 9);
    ck_assert_int_eq(g.hello.ack, 123);
    ck_assert_int_eq(g.ack, 0);
    ck_assert_ptr_null(g.hello.host);
    ck_assert_int_eq(g.hello.ospid, 0);
    ck_assert(!g.hello.ipc);
    ra_wire_free(buf);

    // The process the sender is, for peers on the same machine.
    f.hello.host = "0b7f5e2c-1d2e-4f00-9a61-3c2d1e0f9a8b";
    f.hello.ospid = 4242;
    f.hello.ostart = 987654321;
    f.hello.ipc = true;
    buf = round_trip(&f, &g);
    ck_assert_str_eq(g.hello.host, f.hello.host);
    ck_assert_int_eq(g.hello.ospid, 4242);
    ck_assert_int_eq(g.hello.ostart, 987654321);
    ck_assert(g.hello.ipc);
    ra_wire_free(buf);
    size_t hlen = 0;
    f.hello.host = "not printable\n";
    RA_CK_ERR(ra_wire_encode(&f, 0, &buf, &hlen), RA_EINVAL);
    f.hello.host = NULL;
    f.hello.ipc = false;

    f = msg_frame();
    f.rep = true;
    buf = round_trip(&f, &g);
    ck_assert(g.rep);
    ck_assert_int_eq(g.cref, INT64_MAX);
    ra_wire_free(buf);
    f.cref = 0; // a reply to no call cannot be encoded
    size_t len = 0;
    RA_CK_ERR(ra_wire_encode(&f, 0, &buf, &len), RA_EINVAL);

    memset(&f, 0, sizeof(f));
    f.kind = RA_WIRE_BYE;
    buf = round_trip(&f, &g);
    ck_assert(!g.idle);
    ra_wire_free(buf);
    f.idle = true;
    buf = round_trip(&f, &g);
    ck_assert(g.idle);
    ra_wire_free(buf);
    ck_assert_str_eq(ra_wire_kind_name(RA_WIRE_BYE), "bye");
}
END_TEST

START_TEST(test_wire_encode_around)
{
    // Framing around a body gives the very bytes ra_wire_encode gives.
    enum { ROOM = 256, BODY = 1000 };
    uint8_t *mem = malloc(ROOM + BODY + 1);
    uint8_t *body = mem + ROOM;
    for (int i = 0; i < BODY; i++) {
        body[i] = (uint8_t)(i * 13);
    }
    ra_wire_frame_t f = msg_frame();
    f.body = body;
    f.body_len = BODY;
    size_t len = 0, alen = 0;
    uint8_t *want = encode_ok(&f, &len);
    uint8_t *start = NULL;
    RA_CK_OK(ra_wire_encode_around(&f, body, ROOM, 0, &start, &alen));
    ck_assert_uint_eq(alen, len);
    ck_assert(start >= mem && start < body);
    ck_assert_int_eq(memcmp(start, want, len), 0);
    ra_wire_free(want);
    // Too little room, or a body that is not bytes: refused.
    RA_CK_ERR(ra_wire_encode_around(&f, body, 16, 0, &start, &alen),
              RA_EFULL);
    f.body_kind = RA_WIRE_BODY_BSON;
    RA_CK_ERR(ra_wire_encode_around(&f, body, ROOM, 0, &start, &alen),
              RA_EINVAL);
    free(mem);
}
END_TEST

START_TEST(test_wire_batch_round_trip)
{
    ra_msg_t *m1 = NULL, *m2 = NULL, *m3 = NULL;
    RA_CK_OK(ra_msg_new_bytes(&m1, 5, "abc", 3));
    bson_t *doc = BCON_NEW("x", BCON_INT32(7));
    RA_CK_OK(ra_msg_new_bson(&m2, -9, doc));
    bson_destroy(doc);
    RA_CK_OK(ra_msg_new_bytes(&m3, 0, NULL, 0));
    ra_msg_t *ms[3] = {m1, m2, m3};
    size_t total = 0;
    for (int i = 0; i < 3; i++) {
        size_t len = 0;
        ra_msg_data(ms[i], &len);
        total += ra_wire_batch_rec_size(len);
    }
    uint8_t *data = malloc(total);
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        size_t len = 0;
        ra_msg_data(ms[i], &len);
        ra_wire_batch_put(data + off, ms[i], i == 2 ? RA_PID_NIL : pid_a,
                          pid_b);
        off += ra_wire_batch_rec_size(len);
    }
    ra_wire_frame_t f, g;
    memset(&f, 0, sizeof(f));
    f.kind = RA_WIRE_BATCH;
    f.seq = 3;
    f.chunk_cnt = 3;
    f.data = data;
    f.data_len = total;
    uint8_t *buf = round_trip(&f, &g);
    ck_assert_int_eq(g.chunk_cnt, 3);
    const uint8_t *pos = g.data;
    size_t left = g.data_len;
    ra_wire_rec_t rec;
    RA_CK_OK(ra_wire_batch_next(&pos, &left, &rec));
    ck_assert_uint_eq(rec.to_id, pid_b.id);
    ck_assert_uint_eq(rec.from_id, pid_a.id);
    ck_assert_int_eq(rec.tag, 5);
    ck_assert_int_eq(rec.body_kind, RA_WIRE_BODY_BYTES);
    ck_assert_uint_eq(rec.body_len, 3);
    RA_CK_OK(ra_wire_batch_next(&pos, &left, &rec));
    ck_assert_int_eq(rec.body_kind, RA_WIRE_BODY_BSON);
    ck_assert_int_eq(rec.tag, -9);
    RA_CK_OK(ra_wire_batch_next(&pos, &left, &rec));
    ck_assert_uint_eq(rec.from_id, 0);
    ck_assert_uint_eq(rec.body_len, 0);
    ck_assert_uint_eq(left, 0);
    ra_wire_free(buf);

    // A count that disagrees, a truncated record, a bad body kind and a
    // BSON body that is not a document are all refused.
    ra_wire_stats_t st = {0};
    size_t len = 0;
    f.chunk_cnt = 4;
    RA_CK_ERR(ra_wire_encode(&f, 0, &buf, &len), RA_EINVAL);
    f.chunk_cnt = 3;
    f.data_len = total - 1;
    RA_CK_ERR(ra_wire_encode(&f, 0, &buf, &len), RA_EINVAL);
    f.data_len = total;
    buf = encode_ok(&f, &len);
    uint8_t *d = (uint8_t *)memmem(buf, len, data, total);
    ck_assert_ptr_nonnull(d);
    d[20] = 3; // body kind of the first record
    RA_CK_ERR(ra_wire_decode(buf, len, 0, &g, &st), RA_EBADMSG);
    d[20] = 1;
    size_t second = ra_wire_batch_rec_size(3);
    d[second + 28] = 0x7f; // the BSON body's length prefix
    RA_CK_ERR(ra_wire_decode(buf, len, 0, &g, &st), RA_EBADMSG);
    ck_assert_uint_eq(st.bad_field, 2);
    ra_wire_free(buf);
    free(data);
    for (int i = 0; i < 3; i++) {
        ra_msg_unref(&ms[i]);
    }
}
END_TEST

START_TEST(test_wire_encode_rejects_bad_frames)
{
    ra_wire_frame_t f = msg_frame();
    uint8_t *buf = NULL;
    size_t len = 0;
    static uint8_t big[4096];
    ra_msg_t *msg = NULL;

    f.to = RA_PID_NIL;
    RA_CK_ERR(ra_wire_encode(&f, 0, &buf, &len), RA_EINVAL);
    f = msg_frame();
    f.seq = 0;
    RA_CK_ERR(ra_wire_encode(&f, 0, &buf, &len), RA_EINVAL);
    f = msg_frame();
    f.kind = (ra_wire_kind_t)99;
    RA_CK_ERR(ra_wire_encode(&f, 0, &buf, &len), RA_EINVAL);
    f = msg_frame();
    f.body = big;
    f.body_len = sizeof(big);
    RA_CK_ERR(ra_wire_encode(&f, 1024, &buf, &len), RA_EFULL);
    ck_assert_ptr_null(buf);
    RA_CK_OK(ra_wire_encode(&f, 8192, &buf, &len));
    ra_wire_free(buf);
    buf = NULL;

    ra_wire_hello_t h = {.vmin = 1, .vmax = 1, .ncaps = 1,
                         .caps = {"has space"}};
    RA_CK_ERR(ra_wire_encode_hello(&h, &buf, &len), RA_EINVAL);
    h = (ra_wire_hello_t){.vmin = 2, .vmax = 1};
    RA_CK_ERR(ra_wire_encode_hello(&h, &buf, &len), RA_EINVAL);

    // Signals and down messages are not sent as msg envelopes.
    RA_CK_ERR(ra_wire_encode_msg(NULL, pid_a, pid_b, 1, 0, 0, &buf, &len),
              RA_EINVAL);
    RA_CK_OK(ra_msg_new_bytes(&msg, 0, "x", 1));
    RA_CK_ERR(ra_wire_encode_msg(msg, pid_a, pid_b, 0, 0, 0, &buf, &len),
              RA_EINVAL);
    RA_CK_ERR(ra_wire_encode_msg(msg, pid_a, pid_b, 1, -1, 0, &buf, &len),
              RA_EINVAL);
    ra_msg_unref(&msg);
    ck_assert_ptr_null(buf);
}
END_TEST

// ------------------------------------------------------------ chunking

// big_envelope encodes a bytes message of n patterned bytes.
static uint8_t *
big_envelope(size_t n, size_t *len)
{
    uint8_t *data = malloc(n);
    ra_msg_t *msg = NULL;
    uint8_t *buf = NULL;

    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < n; i++) {
        data[i] = (uint8_t)(i * 31 + 7);
    }
    RA_CK_OK(ra_msg_new_bytes(&msg, 5, data, n));
    RA_CK_OK(ra_wire_encode_msg(msg, pid_a, pid_b, 1, 0, 0, &buf, len));
    ra_msg_unref(&msg);
    free(data);
    return buf;
}

// decode_chunk decodes one chunk buffer, which must be valid.
static ra_wire_frame_t
decode_chunk(const ra_wire_buf_t *b)
{
    ra_wire_frame_t f;

    RA_CK_OK(ra_wire_decode(b->data, b->len, 0, &f, NULL));
    ck_assert_int_eq(f.kind, RA_WIRE_CHUNK);
    return f;
}

// feed adds chunks in the given order and checks the result is env.
static void
feed(const ra_wire_buf_t *chunks, const size_t *order, size_t n,
     const uint8_t *env, size_t env_len)
{
    ra_wire_stats_t st = {0};
    ra_wire_reasm_t *r = NULL;
    uint8_t *out = NULL;
    size_t out_len = 0;

    RA_CK_OK(ra_wire_reasm_new(&r, 1 << 20, 4, 1000, &st));
    for (size_t k = 0; k < n; k++) {
        ra_wire_frame_t f = decode_chunk(&chunks[order[k]]);
        RA_CK_OK(ra_wire_reasm_add(r, &f, 10, &out, &out_len));
        if (k + 1 < n) {
            ck_assert_ptr_null(out);
            ck_assert_uint_eq(ra_wire_reasm_pending(r), 1);
        }
    }
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(out_len, env_len);
    ck_assert(memcmp(out, env, env_len) == 0);
    ck_assert_uint_eq(st.reasm_done, 1);
    ck_assert_uint_eq(ra_wire_reasm_pending(r), 0);

    // The reassembled envelope decodes to the original message.
    ra_wire_frame_t m;
    ra_msg_t *msg = NULL;
    RA_CK_OK(ra_wire_decode(out, out_len, 0, &m, NULL));
    RA_CK_OK(ra_wire_frame_msg(&m, &msg));
    ck_assert_int_eq(ra_msg_tag(msg), 5);
    ra_msg_unref(&msg);
    ra_wire_free(out);
    ra_wire_reasm_destroy(&r);
    ck_assert_ptr_null(r);
}

START_TEST(test_wire_chunks_in_order)
{
    size_t env_len = 0;
    uint8_t *env = big_envelope(10000, &env_len);
    ra_wire_buf_t *chunks = NULL;
    size_t n = 0;
    size_t order[64];

    RA_CK_OK(ra_wire_split(env, env_len, 1, 50, 1000, &chunks, &n));
    ck_assert_uint_eq(n, (env_len + 999) / 1000);
    for (size_t i = 0; i < n; i++) {
        ra_wire_frame_t f = decode_chunk(&chunks[i]);
        ck_assert_int_eq(f.seq, 50 + (int64_t)i);
        ck_assert_int_eq(f.chunk_idx, (int32_t)i);
        order[i] = i;
    }
    feed(chunks, order, n, env, env_len);
    ra_wire_bufs_free(&chunks, n);
    ck_assert_ptr_null(chunks);
    ra_wire_free(env);
}
END_TEST

START_TEST(test_wire_chunks_out_of_order)
{
    size_t env_len = 0;
    uint8_t *env = big_envelope(5000, &env_len);
    ra_wire_buf_t *chunks = NULL;
    size_t n = 0;
    size_t order[64];

    RA_CK_OK(ra_wire_split(env, env_len, 2, 1, 700, &chunks, &n));
    for (size_t i = 0; i < n; i++) {
        order[i] = n - 1 - i; // the short last chunk comes first
    }
    feed(chunks, order, n, env, env_len);
    // A message that fits one chunk is a chunk too.
    ra_wire_bufs_free(&chunks, n);
    RA_CK_OK(ra_wire_split(env, env_len, 3, 1, env_len, &chunks, &n));
    ck_assert_uint_eq(n, 1);
    order[0] = 0;
    feed(chunks, order, n, env, env_len);
    ra_wire_bufs_free(&chunks, n);
    ra_wire_free(env);
}
END_TEST

START_TEST(test_wire_chunks_duplicate_and_missing)
{
    size_t env_len = 0;
    uint8_t *env = big_envelope(3000, &env_len);
    ra_wire_buf_t *chunks = NULL;
    ra_wire_stats_t st = {0};
    ra_wire_reasm_t *r = NULL;
    uint8_t *out = NULL;
    size_t out_len = 0;
    size_t n = 0;
    ra_wire_frame_t f;

    RA_CK_OK(ra_wire_split(env, env_len, 9, 1, 1000, &chunks, &n));
    ck_assert_uint_ge(n, 3);
    RA_CK_OK(ra_wire_reasm_new(&r, 0, 4, 100, &st));
    f = decode_chunk(&chunks[0]);
    RA_CK_OK(ra_wire_reasm_add(r, &f, 1000, &out, &out_len));
    RA_CK_ERR(ra_wire_reasm_add(r, &f, 1001, &out, &out_len), RA_EEXIST);
    ck_assert_uint_eq(st.chunk_dup, 1);
    ck_assert_ptr_null(out);
    // Chunk 1 never comes; the rest do, and then the message times out.
    for (size_t i = 2; i < n; i++) {
        f = decode_chunk(&chunks[i]);
        RA_CK_OK(ra_wire_reasm_add(r, &f, 1050, &out, &out_len));
        ck_assert_ptr_null(out);
    }
    ck_assert_uint_eq(ra_wire_reasm_expire(r, 1100), 0);
    ck_assert_uint_eq(ra_wire_reasm_expire(r, 1151), 1);
    ck_assert_uint_eq(st.reasm_expired, 1);
    ck_assert_uint_eq(ra_wire_reasm_pending(r), 0);
    // A late chunk starts a new message that will never complete either;
    // destroy frees it.
    f = decode_chunk(&chunks[1]);
    RA_CK_OK(ra_wire_reasm_add(r, &f, 1200, &out, &out_len));
    ck_assert_ptr_null(out);
    ck_assert_uint_eq(st.reasm_done, 0);
    ra_wire_reasm_destroy(&r);
    ra_wire_bufs_free(&chunks, n);
    ra_wire_free(env);
}
END_TEST

START_TEST(test_wire_chunks_limits)
{
    size_t env_len = 0;
    uint8_t *env = big_envelope(3000, &env_len);
    ra_wire_buf_t *chunks = NULL;
    ra_wire_buf_t *other = NULL;
    ra_wire_stats_t st = {0};
    ra_wire_reasm_t *r = NULL;
    uint8_t *out = NULL;
    size_t out_len = 0;
    size_t n = 0;
    size_t m = 0;
    ra_wire_frame_t f;

    RA_CK_OK(ra_wire_split(env, env_len, 1, 1, 1000, &chunks, &n));
    RA_CK_OK(ra_wire_split(env, env_len, 2, 1, 500, &other, &m));

    // Oversized total: refused before any memory is reserved.
    RA_CK_OK(ra_wire_reasm_new(&r, 2048, 4, 0, &st));
    f = decode_chunk(&chunks[0]);
    RA_CK_ERR(ra_wire_reasm_add(r, &f, 0, &out, &out_len), RA_EFULL);
    ck_assert_uint_eq(st.oversized, 1);
    ck_assert_uint_eq(ra_wire_reasm_pending(r), 0);
    ra_wire_reasm_destroy(&r);

    // One pending message at most: a second id evicts the first.
    RA_CK_OK(ra_wire_reasm_new(&r, 0, 1, 0, &st));
    f = decode_chunk(&chunks[0]);
    RA_CK_OK(ra_wire_reasm_add(r, &f, 1, &out, &out_len));
    f = decode_chunk(&other[0]);
    RA_CK_OK(ra_wire_reasm_add(r, &f, 2, &out, &out_len));
    ck_assert_uint_eq(st.reasm_evicted, 1);
    ck_assert_uint_eq(ra_wire_reasm_pending(r), 1);

    // A chunk that disagrees with its id's earlier chunks drops the id.
    f = decode_chunk(&chunks[1]);
    f.chunk_id = 2;
    RA_CK_ERR(ra_wire_reasm_add(r, &f, 3, &out, &out_len), RA_EBADMSG);
    ck_assert_uint_eq(st.chunk_bad, 1);
    ck_assert_uint_eq(ra_wire_reasm_pending(r), 0);

    // A frame that is not a chunk is refused.
    f.kind = RA_WIRE_MSG;
    RA_CK_ERR(ra_wire_reasm_add(r, &f, 3, &out, &out_len), RA_EBADMSG);
    ck_assert_uint_eq(st.chunk_bad, 2);
    ra_wire_reasm_destroy(&r);
    ra_wire_reasm_destroy(&r); // safe twice

    RA_CK_ERR(ra_wire_split(env, env_len, 0, 1, 100, &other, &m),
              RA_EINVAL);
    RA_CK_ERR(ra_wire_split(env, env_len, 1, 1, 0, &other, &m), RA_EINVAL);
    RA_CK_ERR(ra_wire_reasm_new(&r, 0, 0, 0, NULL), RA_EINVAL);
    ra_wire_bufs_free(&chunks, n);
    ra_wire_bufs_free(&other, m);
    ra_wire_free(env);
}
END_TEST

// ----------------------------------------------------------- malformed

#define V1 "v", BCON_INT32(1)
#define PID(n, p, i, g)                                                     \
    "{", "n", BCON_INT64(n), "p", BCON_INT64(p), "i", BCON_INT64(i), "g",   \
        BCON_INT64(g), "}"
#define BODY "body", BCON_BIN(BSON_SUBTYPE_BINARY, (const uint8_t *)"x", 1)
#define SEQ "seq", BCON_INT64(1)
#define TO "to", PID(1, 1, 1, 1)

enum {
    BAD_BSON = offsetof(ra_wire_stats_t, bad_bson),
    BAD_VERSION = offsetof(ra_wire_stats_t, bad_version),
    BAD_KIND = offsetof(ra_wire_stats_t, bad_kind),
    BAD_FIELD = offsetof(ra_wire_stats_t, bad_field),
    OVERSIZED = offsetof(ra_wire_stats_t, oversized)
};

typedef struct bad_case {
    const char *name;
    int rc;
    size_t counter; // offset of the counter that must count it
    size_t max_msg;
} bad_case_t;

static const bad_case_t bad_cases[] = {
    {"empty buffer", RA_EBADMSG, BAD_BSON, 0},
    {"NULL buffer", RA_EBADMSG, BAD_BSON, 0},
    {"not BSON", RA_EBADMSG, BAD_BSON, 0},
    {"truncated", RA_EBADMSG, BAD_BSON, 0},
    {"trailing garbage", RA_EBADMSG, BAD_BSON, 0},
    {"huge length prefix", RA_EBADMSG, BAD_BSON, 0},
    {"huge binary length", RA_EBADMSG, BAD_BSON, 0},
    {"nested too deep", RA_EBADMSG, BAD_BSON, 0},
    {"invalid UTF-8", RA_EBADMSG, BAD_BSON, 0},
    {"version 2", RA_ENOTSUP, BAD_VERSION, 0},
    {"version 0", RA_ENOTSUP, BAD_VERSION, 0},
    {"version as string", RA_EBADMSG, BAD_FIELD, 0},
    {"no version", RA_EBADMSG, BAD_FIELD, 0},
    {"unknown kind", RA_EBADMSG, BAD_KIND, 0},
    {"kind as int", RA_EBADMSG, BAD_FIELD, 0},
    {"seq as string", RA_EBADMSG, BAD_FIELD, 0},
    {"seq as double", RA_EBADMSG, BAD_FIELD, 0},
    {"seq zero", RA_EBADMSG, BAD_FIELD, 0},
    {"negative id", RA_EBADMSG, BAD_FIELD, 0},
    {"id zero", RA_EBADMSG, BAD_FIELD, 0},
    {"node above uint32", RA_EBADMSG, BAD_FIELD, 0},
    {"pid without g", RA_EBADMSG, BAD_FIELD, 0},
    {"pid with extra key", RA_EBADMSG, BAD_FIELD, 0},
    {"no to", RA_EBADMSG, BAD_FIELD, 0},
    {"no body", RA_EBADMSG, BAD_FIELD, 0},
    {"body as string", RA_EBADMSG, BAD_FIELD, 0},
    {"body of subtype md5", RA_EBADMSG, BAD_FIELD, 0},
    {"repeated seq", RA_EBADMSG, BAD_FIELD, 0},
    {"ack field in msg", RA_EBADMSG, BAD_FIELD, 0},
    {"tag above int32", RA_EBADMSG, BAD_FIELD, 0},
    {"exit without reason", RA_EBADMSG, BAD_FIELD, 0},
    {"unknown signal", RA_EBADMSG, BAD_FIELD, 0},
    {"positive error code", RA_EBADMSG, BAD_FIELD, 0},
    {"hello vmin above vmax", RA_EBADMSG, BAD_FIELD, 0},
    {"hello cap not a string", RA_EBADMSG, BAD_FIELD, 0},
    {"hello 33 caps", RA_EBADMSG, BAD_FIELD, 0},
    {"chunk data too short", RA_EBADMSG, BAD_FIELD, 0},
    {"chunk total huge", RA_EFULL, OVERSIZED, 0},
    {"frame over max_msg", RA_EFULL, OVERSIZED, 64},
    {"reply without cref", RA_EBADMSG, BAD_FIELD, 0},
    {"rep out of range", RA_EBADMSG, BAD_FIELD, 0},
    {"hello inc zero", RA_EBADMSG, BAD_FIELD, 0},
    {"bye with a seq", RA_EBADMSG, BAD_FIELD, 0},
    {"bye idle a string", RA_EBADMSG, BAD_FIELD, 0},
    {"idle on an ack", RA_EBADMSG, BAD_FIELD, 0},
    {"hello host with a space", RA_EBADMSG, BAD_FIELD, 0},
    {"hello ospid zero", RA_EBADMSG, BAD_FIELD, 0},
    {"ipc on a msg", RA_EBADMSG, BAD_FIELD, 0},
};

static bson_t *
deep_doc(int depth)
{
    bson_t *doc = BCON_NEW("leaf", BCON_INT32(1));

    for (int i = 1; i < depth; i++) {
        bson_t *outer = bson_new();
        BSON_APPEND_DOCUMENT(outer, "d", doc);
        bson_destroy(doc);
        doc = outer;
    }
    return doc;
}

// bad_bytes makes the input of bad_cases[i] in a new buffer.
static uint8_t *
bad_bytes(int i, size_t *len)
{
    bson_t *doc = NULL;
    uint8_t *raw = NULL;

    *len = 0;
    switch (i) {
    case 0:
        return malloc(1);
    case 1:
        return NULL;
    case 2:
        raw = (uint8_t *)strdup("GET / HTTP/1.1\r\n");
        *len = strlen((char *)raw);
        return raw;
    case 3:
    case 4: {
        doc = BCON_NEW(V1, "k", "msg", SEQ, TO, BODY);
        raw = malloc(doc->len + 4);
        memcpy(raw, bson_get_data(doc), doc->len);
        memcpy(raw + doc->len, "junk", 4);
        *len = i == 3 ? doc->len - 3 : doc->len + 4;
        bson_destroy(doc);
        return raw;
    }
    case 5:
        raw = calloc(1, 16);
        memcpy(raw, "\xff\xff\xff\x7f", 4);
        *len = 16;
        return raw;
    case 6: {
        doc = BCON_NEW(V1, "k", "msg", SEQ, TO, BODY);
        raw = malloc(doc->len);
        memcpy(raw, bson_get_data(doc), doc->len);
        *len = doc->len;
        // The binary's length field sits after "body\0" near the end.
        uint8_t *at = memmem(raw, *len, "body", 5);
        ck_assert_ptr_nonnull(at);
        memcpy(at + 5, "\xf0\xff\xff\x7f", 4);
        bson_destroy(doc);
        return raw;
    }
    case 7: {
        bson_t *body = deep_doc(RA_WIRE_MAX_DEPTH + 5);
        doc = BCON_NEW(V1, "k", "msg", SEQ, TO);
        BSON_APPEND_DOCUMENT(doc, "body", body);
        bson_destroy(body);
        break;
    }
    case 8:
        doc = BCON_NEW(V1, "k", "err", "code", BCON_INT32(-1));
        bson_append_utf8(doc, "text", -1, "bad \xff\xfe", -1);
        break;
    case 9:
        doc = BCON_NEW("v", BCON_INT32(2), "k", "msg", SEQ, TO, BODY);
        break;
    case 10:
        doc = BCON_NEW("v", BCON_INT32(0), "k", "msg", SEQ, TO, BODY);
        break;
    case 11:
        doc = BCON_NEW("v", "1", "k", "msg", SEQ, TO, BODY);
        break;
    case 12:
        doc = BCON_NEW("k", "msg", SEQ, TO, BODY);
        break;
    case 13:
        doc = BCON_NEW(V1, "k", "gossip", SEQ, TO, BODY);
        break;
    case 14:
        doc = BCON_NEW(V1, "k", BCON_INT32(1), SEQ, TO, BODY);
        break;
    case 15:
        doc = BCON_NEW(V1, "k", "msg", "seq", "1", TO, BODY);
        break;
    case 16:
        doc = BCON_NEW(V1, "k", "msg", "seq", BCON_DOUBLE(1.0), TO, BODY);
        break;
    case 17:
        doc = BCON_NEW(V1, "k", "msg", "seq", BCON_INT64(0), TO, BODY);
        break;
    case 18:
        doc = BCON_NEW(V1, "k", "msg", SEQ, "to", PID(1, 1, -3, 1), BODY);
        break;
    case 19:
        doc = BCON_NEW(V1, "k", "msg", SEQ, "to", PID(1, 1, 0, 1), BODY);
        break;
    case 20:
        doc = BCON_NEW(V1, "k", "msg", SEQ, "to",
                       PID((int64_t)1 << 32, 1, 1, 1), BODY);
        break;
    case 21:
        doc = BCON_NEW(V1, "k", "msg", SEQ, "to", "{", "n", BCON_INT32(1),
                       "p", BCON_INT32(1), "i", BCON_INT32(1), "}", BODY);
        break;
    case 22:
        doc = BCON_NEW(V1, "k", "msg", SEQ, "to", "{", "n", BCON_INT32(1),
                       "p", BCON_INT32(1), "i", BCON_INT32(1), "g",
                       BCON_INT32(1), "x", BCON_INT32(1), "}", BODY);
        break;
    case 23:
        doc = BCON_NEW(V1, "k", "msg", SEQ, BODY);
        break;
    case 24:
        doc = BCON_NEW(V1, "k", "msg", SEQ, TO);
        break;
    case 25:
        doc = BCON_NEW(V1, "k", "msg", SEQ, TO, "body", "x");
        break;
    case 26:
        doc = BCON_NEW(V1, "k", "msg", SEQ, TO, "body",
                       BCON_BIN(BSON_SUBTYPE_MD5, (const uint8_t *)"x", 1));
        break;
    case 27:
        doc = BCON_NEW(V1, "k", "msg", SEQ, TO, BODY, SEQ);
        break;
    case 28:
        doc = BCON_NEW(V1, "k", "msg", SEQ, TO, BODY, "ack", BCON_INT64(1));
        break;
    case 29:
        doc = BCON_NEW(V1, "k", "msg", SEQ, TO, BODY, "tag",
                       BCON_INT64((int64_t)INT32_MAX + 1));
        break;
    case 30:
        doc = BCON_NEW(V1, "k", "sig", SEQ, "from", PID(1, 1, 1, 1), TO,
                       "s", "exit");
        break;
    case 31:
        doc = BCON_NEW(V1, "k", "sig", SEQ, "from", PID(1, 1, 1, 1), TO,
                       "s", "explode");
        break;
    case 32:
        doc = BCON_NEW(V1, "k", "err", "code", BCON_INT32(5));
        break;
    case 33:
        doc = BCON_NEW(V1, "k", "hello", "node", BCON_INT64(1), "proc",
                       BCON_INT64(1), "vmin", BCON_INT32(2), "vmax",
                       BCON_INT32(1));
        break;
    case 34:
        doc = BCON_NEW(V1, "k", "hello", "node", BCON_INT64(1), "proc",
                       BCON_INT64(1), "vmin", BCON_INT32(1), "vmax",
                       BCON_INT32(1), "caps", "[", BCON_INT32(1), "]");
        break;
    case 35: {
        bson_t caps;
        doc = BCON_NEW(V1, "k", "hello", "node", BCON_INT64(1), "proc",
                       BCON_INT64(1), "vmin", BCON_INT32(1), "vmax",
                       BCON_INT32(1));
        BSON_APPEND_ARRAY_BEGIN(doc, "caps", &caps);
        for (int c = 0; c <= RA_WIRE_MAX_CAPS; c++) {
            char key[16];
            snprintf(key, sizeof(key), "%d", c);
            BSON_APPEND_UTF8(&caps, key, "cap");
        }
        bson_append_array_end(doc, &caps);
        break;
    }
    case 36:
        doc = BCON_NEW(V1, "k", "chunk", SEQ, "id", BCON_INT64(1), "idx",
                       BCON_INT32(0), "cnt", BCON_INT32(2), "csz",
                       BCON_INT32(4), "tot", BCON_INT64(6), "data",
                       BCON_BIN(BSON_SUBTYPE_BINARY, (const uint8_t *)"abc",
                                3));
        break;
    case 37:
        doc = BCON_NEW(V1, "k", "chunk", SEQ, "id", BCON_INT64(1), "idx",
                       BCON_INT32(0), "cnt", BCON_INT32(1000), "csz",
                       BCON_INT32(INT32_MAX), "tot", BCON_INT64(INT64_MAX),
                       "data", BCON_BIN(BSON_SUBTYPE_BINARY,
                                        (const uint8_t *)"abc", 3));
        break;
    case 38:
        doc = BCON_NEW(V1, "k", "msg", SEQ, TO, "body",
                       BCON_BIN(BSON_SUBTYPE_BINARY,
                                (const uint8_t *)"0123456789abcdef"
                                                 "0123456789abcdef",
                                32));
        break;
    case 39:
        doc = BCON_NEW(V1, "k", "msg", SEQ, TO, "rep", BCON_INT32(1), "body",
                       BCON_BIN(BSON_SUBTYPE_BINARY, (const uint8_t *)"r",
                                1));
        break;
    case 40:
        doc = BCON_NEW(V1, "k", "msg", SEQ, TO, "cref", BCON_INT64(5), "rep",
                       BCON_INT32(2), "body",
                       BCON_BIN(BSON_SUBTYPE_BINARY, (const uint8_t *)"r",
                                1));
        break;
    case 41:
        doc = BCON_NEW(V1, "k", "hello", "node", BCON_INT64(1), "proc",
                       BCON_INT64(1), "vmin", BCON_INT32(1), "vmax",
                       BCON_INT32(1), "inc", BCON_INT64(0));
        break;
    case 42:
        doc = BCON_NEW(V1, "k", "bye", SEQ);
        break;
    case 43:
        doc = BCON_NEW(V1, "k", "bye", "idle", "yes");
        break;
    case 44:
        doc = BCON_NEW(V1, "k", "ack", "ack", BCON_INT64(1), "idle",
                       BCON_INT32(1));
        break;
    case 45:
        doc = BCON_NEW(V1, "k", "hello", "node", BCON_INT64(1), "proc",
                       BCON_INT64(1), "vmin", BCON_INT32(1), "vmax",
                       BCON_INT32(1), "host", "a b");
        break;
    case 46:
        doc = BCON_NEW(V1, "k", "hello", "node", BCON_INT64(1), "proc",
                       BCON_INT64(1), "vmin", BCON_INT32(1), "vmax",
                       BCON_INT32(1), "ospid", BCON_INT64(0));
        break;
    case 47:
        doc = BCON_NEW(V1, "k", "msg", SEQ, TO, BODY, "ipc", BCON_INT32(1));
        break;
    default:
        ck_abort_msg("no input for case %d", i);
    }
    raw = malloc(doc->len);
    memcpy(raw, bson_get_data(doc), doc->len);
    *len = doc->len;
    bson_destroy(doc);
    return raw;
}

static uint64_t
stats_sum(const ra_wire_stats_t *st)
{
    const uint64_t *v = (const uint64_t *)st;
    uint64_t sum = 0;

    for (size_t i = 0; i < sizeof(*st) / sizeof(*v); i++) {
        sum += v[i];
    }
    return sum;
}

START_TEST(test_wire_malformed_table)
{
    const bad_case_t *c = &bad_cases[_i];
    ra_wire_stats_t st = {0};
    ra_wire_frame_t f;
    size_t len = 0;
    uint8_t *buf = bad_bytes(_i, &len);
    int rc;

    memset(&f, 0xa5, sizeof(f));
    rc = ra_wire_decode(buf, len, c->max_msg, &f, &st);
    ck_assert_msg(rc == c->rc, "%s: got %s, expected %s", c->name,
                  ra_err_name(rc), ra_err_name(c->rc));
    ck_assert_msg(*(uint64_t *)((char *)&st + c->counter) == 1 &&
                      stats_sum(&st) == 1,
                  "%s: counted in the wrong place", c->name);
    ck_assert_int_eq(f.kind, 0); // zeroed on failure
    free(buf);
}
END_TEST

START_TEST(test_wire_decode_null_frame)
{
    uint8_t junk[8] = {0};

    RA_CK_ERR(ra_wire_decode(junk, sizeof(junk), 0, NULL, NULL), RA_EINVAL);
}
END_TEST

// Flipping every byte of valid envelopes, one at a time, must give either
// a valid frame or an error, never a crash; run under ASan to mean it.
START_TEST(test_wire_single_byte_flips)
{
    ra_wire_frame_t f = msg_frame();
    ra_wire_frame_t g;
    ra_wire_stats_t st = {0};
    size_t len = 0;
    uint8_t *buf = encode_ok(&f, &len);
    uint8_t *copy = malloc(len);
    uint64_t total = 0;

    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, buf, len);
            copy[i] ^= (uint8_t)(1u << bit);
            (void)ra_wire_decode(copy, len, 0, &g, &st);
            total++;
        }
    }
    ck_assert_uint_eq(stats_sum(&st), total);
    free(copy);
    ra_wire_free(buf);
}
END_TEST

static Suite *
wire_suite(void)
{
    Suite *s = suite_create("wire");
    TCase *tc;

    tc = tcase_create("roundtrip");
    tcase_add_test(tc, test_wire_msg_bytes_round_trip);
    tcase_add_test(tc, test_wire_msg_bson_round_trip);
    tcase_add_test(tc, test_wire_msg_empty_body);
    tcase_add_test(tc, test_wire_sig_round_trip);
    tcase_add_test(tc, test_wire_ack_err_round_trip);
    tcase_add_test(tc, test_wire_hello_round_trip);
    tcase_add_test(tc, test_wire_session_fields_round_trip);
    tcase_add_test(tc, test_wire_batch_round_trip);
    tcase_add_test(tc, test_wire_encode_around);
    tcase_add_test(tc, test_wire_encode_rejects_bad_frames);
    suite_add_tcase(s, tc);

    tc = tcase_create("chunks");
    tcase_add_test(tc, test_wire_chunks_in_order);
    tcase_add_test(tc, test_wire_chunks_out_of_order);
    tcase_add_test(tc, test_wire_chunks_duplicate_and_missing);
    tcase_add_test(tc, test_wire_chunks_limits);
    suite_add_tcase(s, tc);

    tc = tcase_create("malformed");
    tcase_add_loop_test(tc, test_wire_malformed_table, 0,
                        (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    tcase_add_test(tc, test_wire_decode_null_frame);
    tcase_add_test(tc, test_wire_single_byte_flips);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ra_test_run(wire_suite());
}
