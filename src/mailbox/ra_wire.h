// ra_wire.h - the wire codec: envelopes that carry messages between nodes.
//
// Every frame that travels over a ZeroMQ link is one BSON document, the
// envelope, carried in one ZeroMQ frame.  This header turns messages,
// signals, acknowledgements, errors and handshakes into envelopes and back,
// splits large envelopes into chunks and puts them together again.  It owns
// no socket: the link layer sends and receives the bytes.  doc/protocol.md
// specifies the format for other implementations.
//
// The decoder trusts nothing.  Each frame is checked as BSON (structure,
// UTF-8, nesting depth), then every field for presence, type, range and
// whether the kind allows it.  A frame that fails is dropped: the decoder
// returns an error, counts it in a ra_wire_stats_t by cause and writes a
// debug log line naming the cause.  No input makes it crash, leak or read
// outside the buffer.
//
// Threads: the encode and decode functions are reentrant and touch only
// their arguments.  A ra_wire_stats_t or ra_wire_reasm_t belongs to one link
// and must be used by one thread at a time.
#ifndef RA_WIRE_H
#define RA_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "ra_msg.h"

#ifdef __cplusplus
extern "C" {
#endif

// RA_WIRE_VERSION is the protocol version this build writes and reads.
// RA_WIRE_VERSION_MIN is the oldest it reads.
#define RA_WIRE_VERSION 1
#define RA_WIRE_VERSION_MIN 1

// RA_WIRE_MAX_MSG is the default limit on an envelope, in bytes, used when
// a max_msg argument is 0.  Larger payloads travel as chunks, up to the
// reassembler's own limit.
#define RA_WIRE_MAX_MSG (16u * 1024u * 1024u)

// RA_WIRE_MAX_CAPS is the most capabilities a hello may list, and
// RA_WIRE_MAX_CAP_LEN the longest capability name in bytes.
#define RA_WIRE_MAX_CAPS 32
#define RA_WIRE_MAX_CAP_LEN 64
// RA_WIRE_MAX_HOST is the longest machine identity (hello "host").
#define RA_WIRE_MAX_HOST 64

// RA_WIRE_MAX_TEXT is the longest error text an err frame may carry.
#define RA_WIRE_MAX_TEXT 256

// RA_WIRE_MAX_DEPTH is the deepest nesting of documents and arrays an
// envelope may have, counting the envelope itself as 1.
#define RA_WIRE_MAX_DEPTH 64

// ra_wire_kind_t is the kind of an envelope, field "k" on the wire.
typedef enum ra_wire_kind {
    RA_WIRE_MSG = 1,   // "msg": a message to an actor
    RA_WIRE_SIG = 2,   // "sig": an exit, link or monitor signal
    RA_WIRE_ACK = 3,   // "ack": cumulative acknowledgement
    RA_WIRE_HELLO = 4, // "hello": the handshake
    RA_WIRE_ERR = 5,   // "err": an error answered to the peer
    RA_WIRE_CHUNK = 6, // "chunk": one piece of a large envelope
    RA_WIRE_BYE = 7,   // "bye": the session ends (idle: may it end?)
    RA_WIRE_BATCH = 8  // "batch": several small messages, in records
} ra_wire_kind_t;

// ra_wire_sig_t is the signal of a sig envelope, field "s" on the wire.
typedef enum ra_wire_sig {
    RA_WIRE_SIG_EXIT = 1,      // "exit": from exited (or kills) with r
    RA_WIRE_SIG_LINK = 2,      // "link": from links to to
    RA_WIRE_SIG_UNLINK = 3,    // "unlink"
    RA_WIRE_SIG_MONITOR = 4,   // "monitor": from monitors to, under ref
    RA_WIRE_SIG_DEMONITOR = 5, // "demonitor": cancels monitor ref
    RA_WIRE_SIG_DOWN = 6       // "down": monitor ref fired with reason r
} ra_wire_sig_t;

// ra_wire_body_t says what the body of a msg envelope holds.
typedef enum ra_wire_body {
    RA_WIRE_BODY_NONE = 0,
    RA_WIRE_BODY_BYTES = 1, // BSON binary, subtype 0
    RA_WIRE_BODY_BSON = 2   // an embedded BSON document
} ra_wire_body_t;

// ra_wire_hello_t is the content of a hello envelope: who is speaking, the
// versions it speaks and its optional features.  caps[i] are NUL-terminated
// names; after ra_wire_decode they point into the decoded buffer.
typedef struct ra_wire_hello {
    uint32_t node;  // node id of the sender (0: not part of a cluster)
    uint32_t proc;  // process number of the sender within its node
    int32_t vmin;   // oldest protocol version the sender speaks (>= 1)
    int32_t vmax;   // newest protocol version the sender speaks (>= vmin)
    size_t ncaps;   // entries used in caps
    const char *caps[RA_WIRE_MAX_CAPS];
    int64_t inc;    // inc: the sender's incarnation (0 = absent)
    int64_t sess;   // sess: the sender's session with the receiver (0 =
                    // absent)
    int64_t ack;    // ack: highest seq received in order in that session
    // Optional: who the sender is as an operating-system process, so that
    // a peer on the same machine can watch it exit instead of waiting for
    // heartbeats.  host is the machine's boot id (printable ASCII, at most
    // RA_WIRE_MAX_HOST bytes; NULL: absent), ospid the process id (0:
    // absent), ostart its start time (clock ticks after boot, as in
    // /proc/PID/stat).  ipc: the sender dialled over ipc://.
    const char *host;
    int64_t ospid;
    int64_t ostart;
    bool ipc;
} ra_wire_hello_t;

// ra_wire_frame_t is one envelope, as the decoder returns it and the
// encoder takes it.  Fields that the kind does not use are zero.  Pointers
// (body, data, text, hello.caps) borrow from the buffer that was decoded
// and stay valid as long as it does; the struct itself owns nothing, so it
// needs no cleanup and can be copied.
typedef struct ra_wire_frame {
    int32_t version;      // v: RA_WIRE_VERSION
    ra_wire_kind_t kind;  // k
    int64_t seq;          // seq: >= 1 on msg, sig, chunk; else 0
    ra_pid_t from;        // from: sender (nil when absent)
    ra_pid_t to;          // to: receiver (nil when absent)
    int32_t tag;          // tag (msg)
    int64_t cref;         // cref: call reference, 0 = not a call
    bool rep;             // rep: this msg is the reply to call cref
    bool idle;            // idle (bye): a request to end an idle session
    ra_wire_body_t body_kind;
    const uint8_t *body;  // body bytes (msg): binary data or BSON document
    size_t body_len;
    ra_wire_sig_t sig;    // s (sig)
    int64_t reason;       // r (sig exit, down)
    int64_t ref;          // ref: monitor reference (sig monitor, demonitor,
                          // down)
    int64_t ack;          // ack: highest contiguous seq received (ack)
    int32_t code;         // code: a negative rayo error code (err)
    int64_t eseq;         // eseq: seq of the frame in error, 0 = unknown
    const char *text;     // text: optional explanation (err), or NULL
    ra_wire_hello_t hello; // node, proc, vmin, vmax, caps (hello)
    int64_t chunk_id;     // id: message id shared by its chunks (chunk)
    int32_t chunk_idx;    // idx: 0 .. cnt - 1
    int32_t chunk_cnt;    // cnt: number of chunks (chunk) or records
                          // (batch), >= 1
    int32_t chunk_size;   // csz: bytes in every chunk but the last
    int64_t chunk_total;  // tot: bytes of the reassembled envelope
    const uint8_t *data;  // data: this chunk's bytes (chunk), the records
                          // (batch)
    size_t data_len;
} ra_wire_frame_t;

// ra_wire_stats_t counts what one link's codec accepted and dropped, by
// cause.  Zero it before use; the codec only ever adds to it.  Each drop
// counts in exactly one field.
typedef struct ra_wire_stats {
    uint64_t decoded;     // envelopes that passed every check
    uint64_t bad_bson;    // not one well-formed BSON document: empty,
                          // truncated, trailing bytes, bad UTF-8, too deep
    uint64_t bad_version; // v names a version this build does not speak
    uint64_t bad_kind;    // k names no known kind
    uint64_t bad_field;   // a field missing, of the wrong type, out of
                          // range, repeated or not allowed for the kind
    uint64_t oversized;   // frame, or announced chunked total, over the
                          // limit
    uint64_t chunk_dup;   // chunk already received (dropped, harmless)
    uint64_t chunk_bad;   // chunk disagrees with earlier chunks of its id
    uint64_t reasm_expired; // incomplete messages dropped on timeout
    uint64_t reasm_evicted; // incomplete messages dropped to make room
    uint64_t reasm_done;    // messages reassembled
} ra_wire_stats_t;

// ra_wire_free releases a buffer returned by an encoder or the reassembler.
// Safe on NULL.
void ra_wire_free(void *buf);

// ra_wire_kind_name returns the wire name of kind ("msg", "sig", ...) or
// NULL for a value outside ra_wire_kind_t.  The string is static.
const char *ra_wire_kind_name(ra_wire_kind_t kind);

// ra_wire_encode writes frame f as an envelope into a new buffer: *out
// receives it and *out_len its length.  f->version is ignored (the encoder
// writes RA_WIRE_VERSION).  Fields are checked with the rules the decoder
// applies, so whatever encodes also decodes.  max_msg limits the envelope
// (0 = RA_WIRE_MAX_MSG).  Returns 0, RA_EINVAL (NULL argument or a field
// the decoder would reject), RA_EFULL (over max_msg: send it as chunks) or
// RA_ENOMEM.  On success the caller owns *out and releases it with
// ra_wire_free; on failure *out is untouched.
int ra_wire_encode(const ra_wire_frame_t *f, size_t max_msg, uint8_t **out,
                   size_t *out_len);

// ra_wire_encode_msg writes message msg (RA_MSG_BYTES or RA_MSG_BSON) from
// from to to as a msg envelope with the given link sequence number (>= 1)
// and call reference (0 = none).  The message's tag travels with it.  The
// caller keeps its reference to msg.  Returns as ra_wire_encode, and
// RA_EINVAL for any other message kind.
int ra_wire_encode_msg(const ra_msg_t *msg, ra_pid_t from, ra_pid_t to,
                       int64_t seq, int64_t cref, size_t max_msg,
                       uint8_t **out, size_t *out_len);

// ra_wire_encode_around writes the msg frame f, whose body is the
// f->body_len bytes at body (f->body is ignored), around the body instead
// of copying it: the envelope's other fields go in the headroom bytes
// before body and the document's last byte right after it (that byte must
// be writable too).  *start receives where the envelope begins and *len
// its length; the bytes are the same as ra_wire_encode's.  Returns 0,
// RA_EINVAL (not a bytes msg, or a field the decoder would reject),
// RA_EFULL (the fields need more than headroom bytes, or over max_msg) or
// RA_ENOMEM.
int ra_wire_encode_around(const ra_wire_frame_t *f, uint8_t *body,
                          size_t headroom, size_t max_msg, uint8_t **start,
                          size_t *len);

// ra_wire_encode_hello writes the handshake h as a hello envelope.  Returns
// as ra_wire_encode.
int ra_wire_encode_hello(const ra_wire_hello_t *h, uint8_t **out,
                         size_t *out_len);

// ra_wire_decode checks the len bytes at buf as one envelope and fills *f.
// max_msg limits the envelope and the total announced by a chunk (0 =
// RA_WIRE_MAX_MSG).  Returns 0; RA_EBADMSG for anything malformed (not
// BSON, trailing bytes, a missing, mistyped, repeated or out-of-range field,
// an unknown kind or signal); RA_ENOTSUP when v is a version this build does
// not speak; RA_EFULL when over max_msg; RA_EINVAL when f is NULL.  Every
// failure but RA_EINVAL adds one to the matching counter of stats (which
// may be NULL), and success adds one to stats->decoded.  On failure *f is
// zeroed.  Pointers in *f borrow from buf.
int ra_wire_decode(const void *buf, size_t len, size_t max_msg,
                   ra_wire_frame_t *f, ra_wire_stats_t *stats);

// ra_wire_decode_hello decodes buf as ra_wire_decode does and requires a
// hello envelope, copying its content into *h (caps borrow from buf).
// Returns as ra_wire_decode, and RA_EBADMSG (counted as bad_kind) for a
// valid envelope of another kind.
int ra_wire_decode_hello(const void *buf, size_t len, ra_wire_hello_t *h,
                         ra_wire_stats_t *stats);

// ra_wire_negotiate picks the protocol version to speak with a peer whose
// hello is peer: the newest version both sides speak.  Returns 0 and sets
// *version, RA_ENOTSUP when the ranges do not overlap, or RA_EINVAL.
int ra_wire_negotiate(const ra_wire_hello_t *peer, int32_t *version);

// ra_wire_frame_msg builds the message carried by a decoded msg frame: a
// bytes message or a BSON message with the frame's tag.  The payload is
// copied, so the message outlives the buffer.  Returns 0, RA_EBADMSG for a
// frame of another kind, RA_EINVAL or RA_ENOMEM.  Caller owns *out.
int ra_wire_frame_msg(const ra_wire_frame_t *f, ra_msg_t **out);

// ---- batches ----
//
// A batch envelope ({v, k: "batch", seq, cnt, data}) carries cnt small
// messages between two processes as records packed in data, each: to id,
// to generation, from id, from generation (0 0: no sender), tag (all
// 32-bit little-endian), body kind (1 bytes, 2 BSON), three zero bytes,
// body length (32-bit), then the body.  Node and process numbers are the
// link's two ends.  The decoder checks every record (and BSON bodies as
// documents) before it accepts the envelope; cnt must match and data must
// end with the last record.

// ra_wire_rec_t is one record of a batch; body borrows from the envelope.
typedef struct ra_wire_rec {
    uint32_t to_id, to_gen, from_id, from_gen;
    int32_t tag;
    ra_wire_body_t body_kind;
    const uint8_t *body;
    size_t body_len;
} ra_wire_rec_t;

// ra_wire_batch_next reads the record at *pos (with *left bytes left in
// data) into *rec and advances both.  Returns 0 or RA_EBADMSG.
int ra_wire_batch_next(const uint8_t **pos, size_t *left, ra_wire_rec_t *rec);

// ra_wire_batch_rec_size returns the bytes a record with a body_len-byte
// body takes.
size_t ra_wire_batch_rec_size(size_t body_len);

// ra_wire_batch_put writes msg (RA_MSG_BYTES or RA_MSG_BSON) from from to
// to as a record at out, which has ra_wire_batch_rec_size bytes of room.
void ra_wire_batch_put(uint8_t *out, const ra_msg_t *msg, ra_pid_t from,
                       ra_pid_t to);

// ra_wire_buf_t is one encoded buffer in an array from ra_wire_split.
typedef struct ra_wire_buf {
    uint8_t *data;
    size_t len;
} ra_wire_buf_t;

// ra_wire_split cuts the len-byte envelope env (as made by an encoder, too
// large to send whole) into chunk envelopes carrying at most chunk_size
// bytes of it each.  All chunks carry msg_id (>= 1, unique among the
// link's messages being reassembled); chunk i gets sequence number seq + i,
// so the caller advances its sequence by *count.  Returns 0, RA_EINVAL (a
// NULL argument, empty env, chunk_size 0 or above INT32_MAX, seq or msg_id
// below 1), RA_EFULL (more than INT32_MAX chunks) or RA_ENOMEM.  On success
// the caller owns *out, an array of *count buffers, and releases it with
// ra_wire_bufs_free.
int ra_wire_split(const void *env, size_t len, int64_t msg_id, int64_t seq,
                  size_t chunk_size, ra_wire_buf_t **out, size_t *count);

// ra_wire_bufs_free frees the array *bufs of count buffers and sets *bufs
// to NULL.  Safe on NULL and on *bufs == NULL.
void ra_wire_bufs_free(ra_wire_buf_t **bufs, size_t count);

typedef struct ra_wire_reasm ra_wire_reasm_t;

// ra_wire_reasm_new creates a reassembler for one link.  max_total limits
// the size of a reassembled envelope (0 = RA_WIRE_MAX_MSG); max_pending the
// number of incomplete messages held at once (>= 1); timeout_ms how long an
// incomplete message may wait for its next chunk (0 = forever).  Drops are
// counted in stats, which may be NULL and must outlive the reassembler.
// Returns 0, RA_EINVAL or RA_ENOMEM.  Caller owns *out.
int ra_wire_reasm_new(ra_wire_reasm_t **out, size_t max_total,
                      size_t max_pending, uint64_t timeout_ms,
                      ra_wire_stats_t *stats);

// ra_wire_reasm_destroy frees the reassembler and its incomplete messages
// and sets *r to NULL.  Safe on NULL and on *r == NULL.
void ra_wire_reasm_destroy(ra_wire_reasm_t **r);

// ra_wire_reasm_add stores the chunk frame f (from ra_wire_decode) received
// at now_ms, a monotonic time in milliseconds.  It first drops incomplete
// messages that waited longer than the timeout; a new message that finds
// max_pending incomplete ones evicts the one idle longest.  When f
// completes its message, *out receives the whole envelope (decode it with
// ra_wire_decode; the caller owns it and releases it with ra_wire_free) and
// *out_len its length; otherwise *out is NULL.  Returns 0; RA_EEXIST for a
// chunk already received (counted in chunk_dup); RA_EBADMSG for a frame
// that is not a chunk or disagrees with earlier chunks of its id (counted
// in chunk_bad, and the message is dropped); RA_EFULL for a total above
// max_total (counted in oversized); RA_EINVAL; RA_ENOMEM.
int ra_wire_reasm_add(ra_wire_reasm_t *r, const ra_wire_frame_t *f,
                      uint64_t now_ms, uint8_t **out, size_t *out_len);

// ra_wire_reasm_expire drops incomplete messages that waited longer than
// the timeout at now_ms and returns how many it dropped.
size_t ra_wire_reasm_expire(ra_wire_reasm_t *r, uint64_t now_ms);

// ra_wire_reasm_pending returns the number of incomplete messages held.
size_t ra_wire_reasm_pending(const ra_wire_reasm_t *r);

#ifdef __cplusplus
}
#endif
#endif
