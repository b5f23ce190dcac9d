// fuzz_wire.c - libFuzzer target for the wire decoder and reassembler.
//
// The input is read as a sequence of frames, each taking as many bytes as
// its leading little-endian int32 claims (clamped to what is left), so that
// one input can carry several chunks of one message.  Every frame goes
// through ra_wire_decode; chunks go to a reassembler with small limits, and
// whatever it completes is decoded in turn.  A frame that decodes must
// encode again and decode to the same kind: the encoder and the decoder
// apply the same rules.  Build and run with tests/fuzz/run_fuzz.sh.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ra_error.h"
#include "ra_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_MSG (1u << 20)

static void
check_round_trip(const ra_wire_frame_t *f)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    ra_wire_frame_t g;

    if (ra_wire_encode(f, 0, &buf, &len) != 0) {
        abort(); // a frame the decoder accepted must encode
    }
    if (ra_wire_decode(buf, len, 0, &g, NULL) != 0 || g.kind != f->kind ||
        g.seq != f->seq || !ra_pid_eq(g.from, f->from) ||
        !ra_pid_eq(g.to, f->to) || g.body_len != f->body_len ||
        g.data_len != f->data_len) {
        abort();
    }
    ra_wire_free(buf);
}

static void
consume(const ra_wire_frame_t *f, int depth, ra_wire_reasm_t *r,
        uint64_t now)
{
    ra_msg_t *msg = NULL;
    uint8_t *whole = NULL;
    size_t whole_len = 0;
    ra_wire_frame_t inner;

    check_round_trip(f);
    if (f->kind == RA_WIRE_MSG) {
        if (ra_wire_frame_msg(f, &msg) != 0) {
            abort();
        }
        ra_msg_unref(&msg);
    } else if (f->kind == RA_WIRE_HELLO) {
        int32_t v = 0;
        (void)ra_wire_negotiate(&f->hello, &v);
    } else if (f->kind == RA_WIRE_CHUNK && depth == 0) {
        if (ra_wire_reasm_add(r, f, now, &whole, &whole_len) == 0 &&
            whole != NULL) {
            if (ra_wire_decode(whole, whole_len, FUZZ_MAX_MSG, &inner,
                               NULL) == 0) {
                consume(&inner, depth + 1, r, now);
            }
            ra_wire_free(whole);
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ra_wire_stats_t stats;
    ra_wire_reasm_t *r = NULL;
    ra_wire_frame_t f;
    uint64_t now = 0;

    memset(&stats, 0, sizeof(stats));
    if (ra_wire_reasm_new(&r, 64 * 1024, 3, 50, &stats) != 0) {
        return 0;
    }
    while (size > 0) {
        size_t take = size;
        if (size >= 4) {
            uint32_t claim = (uint32_t)data[0] | (uint32_t)data[1] << 8 |
                             (uint32_t)data[2] << 16 |
                             (uint32_t)data[3] << 24;
            if (claim >= 1 && claim < size) {
                take = claim;
            }
        }
        if (ra_wire_decode(data, take, FUZZ_MAX_MSG, &f, &stats) == 0) {
            consume(&f, 0, r, now);
        }
        // Time moves with the input so that expiry is exercised too.
        now += take % 37;
        data += take;
        size -= take;
    }
    ra_wire_reasm_destroy(&r);
    return 0;
}
