// gen_corpus.c - writes the seed corpus of fuzz_wire.
//
// Usage: gen_corpus DIR.  Writes a dozen valid and invalid frames, one per
// file, into DIR.  The committed files in tests/fuzz/corpus/wire came from
// it; rebuild it like run_fuzz.sh builds the target (without -fsanitize)
// when the format changes.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ra_error.h"
#include "ra_wire.h"

static const char *dir;

static void
put(const char *name, const void *data, size_t len)
{
    char path[4096];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "wb");
    if (fp == NULL || fwrite(data, 1, len, fp) != len || fclose(fp) != 0) {
        perror(path);
        exit(1);
    }
}

static void
put_frame(const char *name, const ra_wire_frame_t *f)
{
    uint8_t *buf = NULL;
    size_t len = 0;

    if (ra_wire_encode(f, 0, &buf, &len) != 0) {
        fprintf(stderr, "gen_corpus: cannot encode %s\n", name);
        exit(1);
    }
    put(name, buf, len);
    ra_wire_free(buf);
}

static void
put_bson(const char *name, const bson_t *doc)
{
    put(name, bson_get_data(doc), doc->len);
}

int
main(int argc, char **argv)
{
    static const char payload[] = "hello, actor";
    ra_pid_t a = {1, 2, 3, 4};
    ra_pid_t b = {5, 6, 7, 8};
    ra_wire_frame_t f;
    bson_t *doc;

    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus DIR\n");
        return 2;
    }
    dir = argv[1];

    memset(&f, 0, sizeof(f));
    f.kind = RA_WIRE_MSG;
    f.seq = 1;
    f.from = a;
    f.to = b;
    f.tag = 7;
    f.cref = 99;
    f.body_kind = RA_WIRE_BODY_BYTES;
    f.body = (const uint8_t *)payload;
    f.body_len = strlen(payload);
    put_frame("msg_bytes", &f);

    doc = BCON_NEW("x", BCON_INT32(1), "y", "[", BCON_UTF8("z"), "]");
    f.body_kind = RA_WIRE_BODY_BSON;
    f.body = bson_get_data(doc);
    f.body_len = doc->len;
    put_frame("msg_bson", &f);
    bson_destroy(doc);

    memset(&f, 0, sizeof(f));
    f.kind = RA_WIRE_SIG;
    f.seq = 2;
    f.from = a;
    f.to = b;
    f.sig = RA_WIRE_SIG_EXIT;
    f.reason = RA_KILLED;
    put_frame("sig_exit", &f);
    f.sig = RA_WIRE_SIG_MONITOR;
    f.ref = 12;
    put_frame("sig_monitor", &f);

    memset(&f, 0, sizeof(f));
    f.kind = RA_WIRE_ACK;
    f.ack = 41;
    put_frame("ack", &f);

    memset(&f, 0, sizeof(f));
    f.kind = RA_WIRE_ERR;
    f.to = a;
    f.cref = 99;
    f.code = RA_ENOPROC;
    f.eseq = 3;
    f.text = "no such actor";
    put_frame("err", &f);

    memset(&f, 0, sizeof(f));
    f.kind = RA_WIRE_HELLO;
    f.hello = (ra_wire_hello_t){.node = 1, .proc = 2, .vmin = 1, .vmax = 1,
                                .ncaps = 2, .caps = {"chunk", "bson"},
                                .host = "0b7f5e2c-1d2e-4f00-9a61-3c2d1e0f9a8b",
                                .ospid = 4242, .ostart = 1000, .ipc = true};
    put_frame("hello", &f);

    // The link layer's session fields.
    f.hello.inc = 77;
    f.hello.sess = 91;
    f.hello.ack = 12;
    put_frame("hello_session", &f);

    memset(&f, 0, sizeof(f));
    f.kind = RA_WIRE_BYE;
    put_frame("bye", &f);
    f.idle = true;
    put_frame("bye_idle", &f);

    memset(&f, 0, sizeof(f));
    f.kind = RA_WIRE_MSG;
    f.seq = 4;
    f.to = a;
    f.cref = 123;
    f.rep = true;
    f.body_kind = RA_WIRE_BODY_BYTES;
    f.body = (const uint8_t *)"reply";
    f.body_len = 5;
    put_frame("msg_reply", &f);

    {
        // A batch of two small messages.
        ra_msg_t *m1 = NULL, *m2 = NULL;
        uint8_t recs[128];
        size_t off = 0;
        if (ra_msg_new_bytes(&m1, 1, "one", 3) != 0 ||
            ra_msg_new_bytes(&m2, 2, "two!", 4) != 0) {
            return 1;
        }
        ra_wire_batch_put(recs, m1, a, b);
        off += ra_wire_batch_rec_size(3);
        ra_wire_batch_put(recs + off, m2, RA_PID_NIL, b);
        off += ra_wire_batch_rec_size(4);
        memset(&f, 0, sizeof(f));
        f.kind = RA_WIRE_BATCH;
        f.seq = 9;
        f.chunk_cnt = 2;
        f.data = recs;
        f.data_len = off;
        put_frame("batch", &f);
        ra_msg_unref(&m1);
        ra_msg_unref(&m2);
    }

    // Three chunks of one message, back to back in one input, the way
    // fuzz_wire reads a sequence of frames.
    {
        static char big[300];
        uint8_t *env = NULL;
        size_t env_len = 0;
        ra_wire_buf_t *chunks = NULL;
        size_t n = 0;
        ra_msg_t *msg = NULL;
        char *all;
        size_t all_len = 0;

        memset(big, 'q', sizeof(big));
        if (ra_msg_new_bytes(&msg, 0, big, sizeof(big)) != 0 ||
            ra_wire_encode_msg(msg, a, b, 5, 0, 0, &env, &env_len) != 0 ||
            ra_wire_split(env, env_len, 1, 6, 128, &chunks, &n) != 0) {
            fprintf(stderr, "gen_corpus: cannot chunk\n");
            return 1;
        }
        all = malloc(env_len + n * 256);
        for (size_t i = 0; i < n; i++) {
            memcpy(all + all_len, chunks[i].data, chunks[i].len);
            all_len += chunks[i].len;
        }
        put("chunks", all, all_len);
        put("chunk_one", chunks[0].data, chunks[0].len);
        free(all);
        ra_wire_bufs_free(&chunks, n);
        ra_wire_free(env);
        ra_msg_unref(&msg);
    }

    // Invalid frames.
    doc = BCON_NEW("v", BCON_INT32(2), "k", "msg");
    put_bson("bad_version", doc);
    bson_destroy(doc);
    doc = BCON_NEW("v", BCON_INT32(1), "k", "gossip");
    put_bson("bad_kind", doc);
    bson_destroy(doc);
    doc = BCON_NEW("v", BCON_INT32(1), "k", "msg", "seq", BCON_INT64(1),
                   "to", "{", "n", BCON_INT32(0), "p", BCON_INT32(0), "i",
                   BCON_INT32(-3), "g", BCON_INT32(0), "}", "body",
                   BCON_BIN(BSON_SUBTYPE_BINARY, (const uint8_t *)"x", 1));
    put_bson("negative_id", doc);
    put("truncated", bson_get_data(doc), doc->len - 3);
    {
        uint8_t *tail = malloc(doc->len + 4);
        memcpy(tail, bson_get_data(doc), doc->len);
        memcpy(tail + doc->len, "junk", 4);
        put("trailing", tail, doc->len + 4);
        free(tail);
    }
    bson_destroy(doc);
    put("not_bson", "GET / HTTP/1.1\r\n\r\n", 18);
    return 0;
}
