/**
 * @file bnn_protocol.h
 * @brief Deferral protocol: framed binary messages between the device and the host DNN.
 *
 * A frame on the wire is 0x00, COBS(payload), 0x00 (receivers skip empty frames). The payload (integers
 * little-endian) is: version u8, type u8, session u32, seq u32, a type-specific body, and a
 * CRC-32/IEEE (check value 0xCBF43926) of every byte before it. The Python side is
 * bnnembed/link/protocol.py; docs/protocol.md is the reference. Portable C99, no malloc: every buffer
 * is owned by the caller.
 *
 * Device side in three calls: bnn_link_init() once, then bnn_link_defer() for an input the
 * bounds left UNKNOWN and (optionally) bnn_link_report() for a decision the device made itself
 * (the _u8 variants for features that are uint8 at the source: the same frames, cheaper to build).
 * The byte I/O comes from the port functions declared in bnn_io.h.
 */
#ifndef BNN_PROTOCOL_H
#define BNN_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "bnn_codes.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Payload bytes of a DEFER or REPORT with @p n features at most (a REPORT of float32 features; a
 *  frame of whole numbers is smaller: one or two bytes a feature). */
#define BNN_PROTO_REQUEST_SIZE(n) (BNN_PROTO_HEADER_SIZE + 8u + 4u * (size_t)(n) + BNN_PROTO_CRC_SIZE)
/** Bytes of a whole DEFER or REPORT frame with @p n features at most, both 0x00 delimiters included
 *  (bnn_proto_build_request_frame(); the link's transmit buffer). */
#define BNN_PROTO_FRAME_SIZE(n) (BNN_COBS_MAX_ENCODED(BNN_PROTO_REQUEST_SIZE(n)) + 2u)
/** Payload bytes of a DEFER or REPORT of @p n uint8 features at most (bnn_proto_build_request_frame_u8();
 *  a row of BNN_PROTO_RUNS_MIN_FEATURES or more goes as zero runs, at most 2 bytes per 63 words and a
 *  tail segment more than plain; a shorter row needs no more than n bytes, so the frame never needs
 *  more than BNN_PROTO_FRAME_SIZE(n)). */
#define BNN_PROTO_REQUEST_SIZE_U8(n)                                                              \
    (BNN_PROTO_HEADER_SIZE + 8u + (size_t)(n) +                                                   \
     ((size_t)(n) >= BNN_PROTO_RUNS_MIN_FEATURES ? 2u * ((size_t)(n) / 252u) + 4u : 0u) + BNN_PROTO_CRC_SIZE)
/** Bytes of a whole DEFER or REPORT frame of @p n uint8 features, both 0x00 delimiters included. */
#define BNN_PROTO_FRAME_SIZE_U8(n) (BNN_COBS_MAX_ENCODED(BNN_PROTO_REQUEST_SIZE_U8(n)) + 2u)
/** Payload bytes of the longest reply (DECISION or NACK). */
#define BNN_PROTO_REPLY_SIZE (BNN_PROTO_HEADER_SIZE + 5u + BNN_PROTO_CRC_SIZE)
/** Worst-case COBS-encoded size (without delimiter) of a payload of @p n bytes. */
#define BNN_COBS_MAX_ENCODED(n) ((size_t)(n) + (size_t)(n) / 254u + 1u)
/** A receive buffer big enough for any reply frame. */
#define BNN_PROTO_RX_BUFFER_SIZE (BNN_COBS_MAX_ENCODED(BNN_PROTO_REPLY_SIZE) + 1u)

/* Message types (bnn_msg_type), NACK reasons (bnn_nack_reason) and why a frame was dropped
 * (bnn_proto_status): bnn_codes.h, generated from bnnembed.link.protocol. */

/** A parsed message; pointers refer into the caller's payload buffer. */
typedef struct {
    uint8_t type;            /**< a bnn_msg_type */
    uint32_t session;        /**< device boot session */
    uint32_t seq;            /**< request number (a reply carries its request's) */
    uint32_t model_tag;      /**< DEFER/REPORT: first 32 bits of the model hash */
    uint8_t decision;        /**< REPORT: 0 = NO, 1 = YES, 3 = INVALID; DECISION: 0 = NO, 1 = YES */
    uint16_t n_features;     /**< DEFER/REPORT: feature count */
    uint8_t feature_width;   /**< DEFER/REPORT: bytes a feature: 1 uint8, 2 int16, 4 float32; or
                                  BNN_PROTO_WIDTH_U8_RUNS: zero runs (read them with bnn_proto_feature()) */
    const uint8_t *features; /**< DEFER/REPORT: n_features of feature_width bytes, little-endian */
    uint32_t req_crc;        /**< replies: CRC of the request answered */
    uint8_t reason;          /**< NACK: a reason code (a bnn_nack_reason, see docs/protocol.md) */
} bnn_msg;

/** CRC-32/IEEE of @p n bytes (reflected, polynomial 0xEDB88320, init/xorout 0xFFFFFFFF). */
uint32_t bnn_crc32(const uint8_t *data, size_t n);

/**
 * COBS-encode @p n bytes into @p out (no delimiter added).
 * @return the encoded length, or 0 if @p cap is too small.
 */
size_t bnn_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

/**
 * COBS-decode @p n bytes (without delimiter) into @p out; @p out may equal @p in (in place).
 * @return BNN_PROTO_OK with *out_len set, BNN_PROTO_E_COBS or BNN_PROTO_E_OVERSIZE.
 */
bnn_proto_status bnn_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len);

/**
 * Build a DEFER (@p type = BNN_MSG_DEFER, @p decision ignored) or REPORT payload, each feature at
 * the narrowest width that carries every one exactly (uint8, int16 or float32; docs/protocol.md).
 * @return the payload length including CRC, or 0 if @p cap is too small or @p n is out of range.
 */
size_t bnn_proto_build_request(uint8_t *out, size_t cap, uint8_t type, uint32_t session, uint32_t seq,
                               uint32_t model_tag, uint8_t decision, const float *x, uint16_t n);

/**
 * Build the whole DEFER or REPORT frame that goes on the wire: 0x00, COBS(payload), 0x00, with the
 * payload bnn_proto_build_request() builds, in one pass over the features (CRC and COBS as each
 * byte is made; the payload is never stored). @p cap >= BNN_PROTO_FRAME_SIZE(n).
 * @param payload_crc if not NULL, set to the payload's CRC field (what a reply echoes).
 * @return the frame length, or 0 if @p cap is too small, @p n is out of range or @p x is NULL.
 */
size_t bnn_proto_build_request_frame(uint8_t *out, size_t cap, uint8_t type, uint32_t session, uint32_t seq,
                                     uint32_t model_tag, uint8_t decision, const float *x, uint16_t n,
                                     uint32_t *payload_crc);

/**
 * bnn_proto_build_request_frame() for features that are uint8 at the source (camera pixels, 8-bit
 * ADC readings), built a 32-bit word at a time with no float in sight. Rows of fewer than
 * BNN_PROTO_RUNS_MIN_FEATURES go as uint8 (the same frame, byte for byte, as for the floats
 * 0.0f..255.0f of the same values); longer rows as zero runs (width BNN_PROTO_WIDTH_U8_RUNS,
 * docs/protocol.md), so the all-zero words of an image cost neither CRC, COBS nor wire time.
 * @p cap >= BNN_PROTO_FRAME_SIZE_U8(n).
 * @return the frame length, or 0 if @p cap is too small, @p n is out of range or @p x is NULL.
 */
size_t bnn_proto_build_request_frame_u8(uint8_t *out, size_t cap, uint8_t type, uint32_t session, uint32_t seq,
                                        uint32_t model_tag, uint8_t decision, const uint8_t *x, uint16_t n,
                                        uint32_t *payload_crc);

/**
 * Build a DECISION, ACK or NACK payload (@p value = decision, unused, or reason).
 * @return the payload length including CRC, or 0 if @p cap is too small or @p type is not a reply.
 */
size_t bnn_proto_build_reply(uint8_t *out, size_t cap, uint8_t type, uint32_t session, uint32_t seq,
                             uint32_t req_crc, uint8_t value);

/** The CRC field of a payload built by bnn_proto_build_request() (what a reply echoes). */
uint32_t bnn_proto_payload_crc(const uint8_t *payload, size_t n);

/**
 * Parse a COBS-decoded payload. Never reads outside [payload, payload + n).
 * @return BNN_PROTO_OK with *msg filled, or the reason the frame must be dropped.
 */
bnn_proto_status bnn_proto_parse(const uint8_t *payload, size_t n, bnn_msg *msg);

/** Feature @p i of a parsed DEFER/REPORT (decoded from its width: uint8, int16 or float32). For
 *  zero runs it walks the segments from the first (the parser checked them), so reading a whole
 *  row costs O(n x segments): meant for tests and host tools (a device never parses requests).
 *  Valid while the parsed payload is. */
float bnn_proto_feature(const bnn_msg *msg, uint16_t i);

/** Byte-stream receiver: splits at 0x00, decodes COBS in place, parses, counts drops. */
typedef struct {
    uint8_t *buf;                        /**< caller-owned frame buffer */
    size_t cap;                          /**< its size */
    size_t len;                          /**< bytes of the frame being received */
    uint8_t overflow;                    /**< the current frame is too long: skip to the delimiter */
    uint32_t frames_ok;                  /**< well-formed frames */
    uint32_t dropped[BNN_PROTO_N_STATUS]; /**< dropped frames per bnn_proto_status (index 0 unused) */
} bnn_proto_rx;

/** Initialise a receiver over a caller-owned buffer. */
void bnn_proto_rx_init(bnn_proto_rx *rx, uint8_t *buf, size_t cap);

/**
 * Push one received byte.
 * @return 1 when the byte completed a well-formed frame, now parsed into *msg (valid until the
 *         next push), 0 otherwise (dropped frames are counted in rx->dropped).
 */
int bnn_proto_rx_push(bnn_proto_rx *rx, uint8_t byte, bnn_msg *msg);

/* Outcome of a request on the link (bnn_link_status): bnn_codes.h. */

/** Device end of the link: the request state, caller-owned buffers and counters. */
typedef struct {
    uint32_t session;      /**< chosen per boot; see bnn_link_init() */
    uint32_t seq;          /**< number of the last request sent */
    uint32_t model_tag;    /**< first 32 bits of the model hash */
    uint32_t timeout_ms;   /**< wait per attempt */
    uint8_t max_attempts;  /**< attempts per request (first send + retries) */
    uint8_t *tx;           /**< frame buffer, BNN_PROTO_FRAME_SIZE(n_features) bytes */
    size_t tx_cap;         /**< its size */
    bnn_proto_rx rx;       /**< reply receiver */
    uint8_t last_reason;   /**< NACK reason of the last refused request */
    uint32_t requests;     /**< requests made */
    uint32_t retries;      /**< re-sends after a timeout */
    uint32_t no_reply;     /**< requests that got no valid reply */
    uint32_t refused;      /**< requests answered with a NACK */
    uint32_t stale;        /**< valid frames that did not answer the pending request */
} bnn_link;

/** Default wait per attempt (milliseconds). */
#ifndef BNN_LINK_TIMEOUT_MS
#define BNN_LINK_TIMEOUT_MS 500u
#endif
/** Default attempts per request. */
#ifndef BNN_LINK_MAX_ATTEMPTS
#define BNN_LINK_MAX_ATTEMPTS 5u
#endif

/**
 * Initialise the device end of the link.
 * @param session a value that differs between boots of the same device (a boot counter, a
 *        hardware random number); the host keys duplicates by (session, seq, request bytes).
 */
void bnn_link_init(bnn_link *link, uint32_t session, uint32_t model_tag, uint8_t *tx, size_t tx_cap,
                   uint8_t *rx, size_t rx_cap);

/**
 * Defer an input to the host DNN: send DEFER, wait for DECISION, retry on timeout.
 * @param decision set to 0 (NO) or 1 (YES) when the result is BNN_LINK_OK.
 * @return BNN_LINK_TOO_BIG, nothing sent, when the frame cannot be built: more features than the
 *         transmit buffer holds, 0 or more than BNN_PROTO_MAX_FEATURES of them, or @p x NULL.
 */
bnn_link_status bnn_link_defer(bnn_link *link, const float *x, uint16_t n, uint8_t *decision);

/** Report a decision the device made itself (0 = NO, 1 = YES, BNN_PROTO_DECISION_INVALID), so
 *  the host log is complete. */
bnn_link_status bnn_link_report(bnn_link *link, const float *x, uint16_t n, uint8_t decision);

/** bnn_link_defer() for uint8 features (bnn_proto_build_request_frame_u8(); the link's @p tx
 *  buffer needs only BNN_PROTO_FRAME_SIZE_U8(n) bytes). */
bnn_link_status bnn_link_defer_u8(bnn_link *link, const uint8_t *x, uint16_t n, uint8_t *decision);

/** bnn_link_report() for uint8 features. */
bnn_link_status bnn_link_report_u8(bnn_link *link, const uint8_t *x, uint16_t n, uint8_t decision);

#ifdef __cplusplus
}
#endif

#endif /* BNN_PROTOCOL_H */
