// linkutil.h - helpers shared by the link tests (check_link, check_netns):
// waiting for an EXIT or DOWN, reading a certificate's keys, and raw
// ZeroMQ clients that play a peer without the link layer.
#ifndef RA_LINKUTIL_H
#define RA_LINKUTIL_H

#include <zmq.h>

#include "testutil.h"

// ra_test_recv_kind receives on scope ctx until a message of kind arrives
// (dropping others) and returns it; fails the test after timeout_ms.
#define ra_test_recv_kind(c, k, t) ra_test_recv_kind_at(c, k, t, __LINE__)
static inline ra_msg_t *
ra_test_recv_kind_at(ra_ctx_t *ctx, ra_msg_kind_t kind, int64_t timeout_ms,
                     int line)
{
    uint64_t dl = ra_test_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        ra_msg_t *m = NULL;
        int64_t left = (int64_t)(dl - ra_test_now_ms());
        ck_assert_msg(left > 0, "line %d: no message of kind %d in %lld ms",
                      line, kind, (long long)timeout_ms);
        int rc = ra_receive(ctx, left, &m);
        if (rc == RA_ETIMEOUT) {
            continue;
        }
        RA_CK_OK(rc);
        if (ra_msg_kind(m) == kind) {
            return m;
        }
        ra_msg_unref(&m);
    }
}

// ra_test_cert_keys reads the Z85 public and secret keys (40 characters
// and a NUL each) of the certificate at path; sec may be NULL.
static inline void
ra_test_cert_keys(const char *path, char pub[41], char *sec)
{
    FILE *f = fopen(path, "r");
    char line[256];
    ck_assert_ptr_nonnull(f);
    memset(pub, 0, 41);
    while (fgets(line, sizeof line, f) != NULL) {
        char *k = strstr(line, "public-key = \"");
        if (k != NULL) {
            memcpy(pub, k + 14, 40);
        }
        k = strstr(line, "secret-key = \"");
        if (k != NULL && sec != NULL) {
            memcpy(sec, k + 14, 40);
            sec[40] = 0;
        }
    }
    fclose(f);
    ck_assert_uint_eq(strlen(pub), 40);
}

// ra_test_dealer connects a DEALER of context zc to endpoint, as a CURVE
// client (server key spub, own key pair pub/sec) when spub is not NULL.
static inline void *
ra_test_dealer(void *zc, const char *endpoint, const char *spub,
               const char *pub, const char *sec)
{
    void *s = zmq_socket(zc, ZMQ_DEALER);
    int zero = 0;
    ck_assert_ptr_nonnull(s);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (spub != NULL) {
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, spub, 40);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
    }
    ck_assert_int_eq(zmq_connect(s, endpoint), 0);
    return s;
}

#endif
