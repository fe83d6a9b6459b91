/**
 * @file bnn_protocol.c
 * @brief Deferral protocol: CRC-32, COBS, message build/parse, byte receiver, device link.
 *
 * Mirrors bnnembed/protocol.py byte for byte (tests/test_protocol.py checks both directions).
 */
#include "bnn_protocol.h"

#include <string.h>

#include "bnn_io.h"

typedef char bnn_float_is_32_bits[(sizeof(float) == 4u) ? 1 : -1];

/* ------------------------------------------------------------------------------------ CRC */

uint32_t bnn_crc32(const uint8_t *data, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    size_t i;
    for (i = 0; i < n; ++i) {
        unsigned k;
        crc ^= data[i];
        for (k = 0; k < 8u; ++k) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return crc ^ 0xFFFFFFFFu;
}

/* ----------------------------------------------------------------------------------- COBS */

/** Where encoded bytes go: a bounded buffer, or the port's putc. */
typedef struct {
    uint8_t *out; /**< NULL: send through bnn_io_putc */
    size_t cap;
    size_t len;
    int overflow;
} bnn_sink;

static void sink_put(bnn_sink *s, uint8_t b)
{
    if (s->out == NULL) {
        bnn_io_putc(b);
    } else if (s->len < s->cap) {
        s->out[s->len] = b;
    } else {
        s->overflow = 1;
    }
    s->len++;
}

/* Blocks of up to 254 non-zero bytes, each prefixed by its length + 1; a block shorter than
 * 254 stands for "these bytes, then a zero" (except at the very end). */
static void cobs_emit(const uint8_t *in, size_t n, bnn_sink *s)
{
    size_t i = 0;
    for (;;) {
        size_t run = 0;
        size_t k;
        while (i + run < n && in[i + run] != 0u && run < 254u) {
            run++;
        }
        sink_put(s, (uint8_t)(run + 1u));
        for (k = 0; k < run; ++k) {
            sink_put(s, in[i + k]);
        }
        i += run;
        if (run == 254u) {
            continue;
        }
        if (i >= n) {
            break;
        }
        i++; /* the zero this block stands for */
    }
}

size_t bnn_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    bnn_sink s;
    s.out = out;
    s.cap = cap;
    s.len = 0;
    s.overflow = 0;
    if (out == NULL) {
        return 0;
    }
    cobs_emit(in, n, &s);
    return s.overflow ? 0u : s.len;
}

bnn_proto_status bnn_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t i = 0;
    size_t o = 0;
    while (i < n) {
        size_t code = in[i];
        size_t k;
        if (code == 0u || code > n - i) {
            return BNN_PROTO_E_COBS;
        }
        /* o <= i always holds, so copying forward is safe when out == in */
        for (k = 1; k < code; ++k) {
            uint8_t b = in[i + k];
            if (b == 0u) {
                return BNN_PROTO_E_COBS;
            }
            if (o >= cap) {
                return BNN_PROTO_E_OVERSIZE;
            }
            out[o++] = b;
        }
        i += code;
        if (code != 0xFFu && i < n) {
            if (o >= cap) {
                return BNN_PROTO_E_OVERSIZE;
            }
            out[o++] = 0u;
        }
    }
    *out_len = o;
    return BNN_PROTO_OK;
}

/* ------------------------------------------------------------------------------- messages */

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)(v >> 24);
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] | ((unsigned)p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static size_t put_header(uint8_t *out, uint8_t type, uint32_t session, uint32_t seq)
{
    out[0] = (uint8_t)BNN_PROTO_VERSION;
    out[1] = type;
    put_u32(out + 2, session);
    put_u32(out + 6, seq);
    return BNN_PROTO_HEADER_SIZE;
}

static size_t put_crc(uint8_t *out, size_t len)
{
    put_u32(out + len, bnn_crc32(out, len));
    return len + BNN_PROTO_CRC_SIZE;
}

size_t bnn_proto_build_request(uint8_t *out, size_t cap, uint8_t type, uint32_t session, uint32_t seq,
                               uint32_t model_tag, uint8_t decision, const float *x, uint16_t n)
{
    size_t len;
    uint16_t i;
    if (out == NULL || (type != BNN_MSG_DEFER && type != BNN_MSG_REPORT) || n == 0u ||
        n > BNN_PROTO_MAX_FEATURES || cap < BNN_PROTO_REQUEST_SIZE(n)) {
        return 0;
    }
    len = put_header(out, type, session, seq);
    put_u32(out + len, model_tag);
    len += 4u;
    if (type == BNN_MSG_REPORT) {
        out[len++] = decision;
    }
    put_u16(out + len, n);
    len += 2u;
    for (i = 0; i < n; ++i) {
        uint32_t bits;
        memcpy(&bits, &x[i], sizeof bits);
        put_u32(out + len, bits);
        len += 4u;
    }
    return put_crc(out, len);
}

size_t bnn_proto_build_reply(uint8_t *out, size_t cap, uint8_t type, uint32_t session, uint32_t seq,
                             uint32_t req_crc, uint8_t value)
{
    size_t len;
    if (out == NULL || cap < BNN_PROTO_REPLY_SIZE ||
        (type != BNN_MSG_DECISION && type != BNN_MSG_ACK && type != BNN_MSG_NACK)) {
        return 0;
    }
    len = put_header(out, type, session, seq);
    put_u32(out + len, req_crc);
    len += 4u;
    if (type != BNN_MSG_ACK) {
        out[len++] = value;
    }
    return put_crc(out, len);
}

uint32_t bnn_proto_payload_crc(const uint8_t *payload, size_t n)
{
    return n < BNN_PROTO_CRC_SIZE ? 0u : get_u32(payload + n - BNN_PROTO_CRC_SIZE);
}

static bnn_proto_status parse_features(const uint8_t *body, size_t body_len, size_t offset, uint16_t n,
                                       bnn_msg *msg)
{
    if (n == 0u || n > BNN_PROTO_MAX_FEATURES) {
        return BNN_PROTO_E_VALUE;
    }
    if (body_len != offset + 4u * (size_t)n) {
        return BNN_PROTO_E_LENGTH;
    }
    msg->n_features = n;
    msg->features = body + offset;
    return BNN_PROTO_OK;
}

bnn_proto_status bnn_proto_parse(const uint8_t *payload, size_t n, bnn_msg *msg)
{
    const uint8_t *body;
    size_t body_len;
    if (n < BNN_PROTO_HEADER_SIZE + BNN_PROTO_CRC_SIZE) {
        return BNN_PROTO_E_SHORT;
    }
    if (bnn_crc32(payload, n - BNN_PROTO_CRC_SIZE) != get_u32(payload + n - BNN_PROTO_CRC_SIZE)) {
        return BNN_PROTO_E_CRC;
    }
    if (payload[0] != BNN_PROTO_VERSION) {
        return BNN_PROTO_E_VERSION;
    }
    memset(msg, 0, sizeof *msg);
    msg->type = payload[1];
    msg->session = get_u32(payload + 2);
    msg->seq = get_u32(payload + 6);
    body = payload + BNN_PROTO_HEADER_SIZE;
    body_len = n - BNN_PROTO_HEADER_SIZE - BNN_PROTO_CRC_SIZE;
    switch (msg->type) {
    case BNN_MSG_DEFER:
        if (body_len < 6u) {
            return BNN_PROTO_E_LENGTH;
        }
        msg->model_tag = get_u32(body);
        return parse_features(body, body_len, 6u, get_u16(body + 4), msg);
    case BNN_MSG_REPORT:
        if (body_len < 7u) {
            return BNN_PROTO_E_LENGTH;
        }
        msg->model_tag = get_u32(body);
        msg->decision = body[4];
        if (msg->decision > 1u && msg->decision != BNN_PROTO_DECISION_INVALID) {
            return BNN_PROTO_E_VALUE;
        }
        return parse_features(body, body_len, 7u, get_u16(body + 5), msg);
    case BNN_MSG_DECISION:
        if (body_len != 5u) {
            return BNN_PROTO_E_LENGTH;
        }
        msg->req_crc = get_u32(body);
        msg->decision = body[4];
        return msg->decision > 1u ? BNN_PROTO_E_VALUE : BNN_PROTO_OK;
    case BNN_MSG_ACK:
        if (body_len != 4u) {
            return BNN_PROTO_E_LENGTH;
        }
        msg->req_crc = get_u32(body);
        return BNN_PROTO_OK;
    case BNN_MSG_NACK:
        if (body_len != 5u) {
            return BNN_PROTO_E_LENGTH;
        }
        msg->req_crc = get_u32(body);
        msg->reason = body[4];
        return BNN_PROTO_OK;
    default:
        return BNN_PROTO_E_TYPE;
    }
}

float bnn_proto_feature(const bnn_msg *msg, uint16_t i)
{
    uint32_t bits;
    float v;
    if (msg->features == NULL || i >= msg->n_features) {
        return 0.0f;
    }
    bits = get_u32(msg->features + 4u * (size_t)i);
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* ------------------------------------------------------------------------------- receiver */

void bnn_proto_rx_init(bnn_proto_rx *rx, uint8_t *buf, size_t cap)
{
    memset(rx, 0, sizeof *rx);
    rx->buf = buf;
    rx->cap = cap;
}

int bnn_proto_rx_push(bnn_proto_rx *rx, uint8_t byte, bnn_msg *msg)
{
    bnn_proto_status st;
    size_t n;
    if (byte != 0u) {
        if (rx->overflow) {
            return 0;
        }
        if (rx->len >= rx->cap) {
            rx->overflow = 1u;
            return 0;
        }
        rx->buf[rx->len++] = byte;
        return 0;
    }
    /* delimiter: a frame (or an idle line) ends here */
    if (rx->overflow) {
        rx->overflow = 0u;
        rx->len = 0;
        rx->dropped[BNN_PROTO_E_OVERSIZE]++;
        return 0;
    }
    if (rx->len == 0u) {
        return 0;
    }
    st = bnn_cobs_decode(rx->buf, rx->len, rx->buf, rx->cap, &n);
    rx->len = 0;
    if (st == BNN_PROTO_OK) {
        st = bnn_proto_parse(rx->buf, n, msg);
    }
    if (st != BNN_PROTO_OK) {
        rx->dropped[st]++;
        return 0;
    }
    rx->frames_ok++;
    return 1;
}

/* ----------------------------------------------------------------------------- device link */

void bnn_link_init(bnn_link *link, uint32_t session, uint32_t model_tag, uint8_t *tx, size_t tx_cap,
                   uint8_t *rx, size_t rx_cap)
{
    memset(link, 0, sizeof *link);
    link->session = session;
    link->model_tag = model_tag;
    link->timeout_ms = BNN_LINK_TIMEOUT_MS;
    link->max_attempts = (uint8_t)BNN_LINK_MAX_ATTEMPTS;
    link->tx = tx;
    link->tx_cap = tx_cap;
    bnn_proto_rx_init(&link->rx, rx, rx_cap);
}

static void send_frame(const uint8_t *payload, size_t len)
{
    bnn_sink s;
    s.out = NULL;
    s.cap = 0;
    s.len = 0;
    s.overflow = 0;
    bnn_io_putc(0u); /* ends any partial frame the host holds from a garbled earlier send */
    cobs_emit(payload, len, &s);
    bnn_io_putc(0u);
}

static bnn_link_status transact(bnn_link *link, uint8_t type, const float *x, uint16_t n, uint8_t *decision)
{
    size_t len;
    uint32_t crc;
    uint8_t want = (type == BNN_MSG_DEFER) ? (uint8_t)BNN_MSG_DECISION : (uint8_t)BNN_MSG_ACK;
    unsigned attempt;
    len = bnn_proto_build_request(link->tx, link->tx_cap, type, link->session, link->seq + 1u,
                                  link->model_tag, *decision, x, n);
    if (len == 0u) {
        return BNN_LINK_TOO_BIG;
    }
    link->seq++;
    link->requests++;
    crc = bnn_proto_payload_crc(link->tx, len);
    for (attempt = 0; attempt < link->max_attempts; ++attempt) {
        uint32_t start;
        if (attempt > 0u) {
            link->retries++;
        }
        send_frame(link->tx, len);
        start = bnn_io_millis();
        for (;;) {
            bnn_msg m;
            uint32_t elapsed = bnn_io_millis() - start;
            int c;
            if (elapsed >= link->timeout_ms) {
                break;
            }
            c = bnn_io_getc(link->timeout_ms - elapsed);
            if (c < 0) {
                break;
            }
            if (!bnn_proto_rx_push(&link->rx, (uint8_t)c, &m)) {
                continue;
            }
            if (m.session != link->session || m.seq != link->seq || m.req_crc != crc) {
                link->stale++;
                continue;
            }
            if (m.type == BNN_MSG_NACK) {
                link->refused++;
                link->last_reason = m.reason;
                return BNN_LINK_REFUSED;
            }
            if (m.type == want) {
                *decision = m.decision;
                return BNN_LINK_OK;
            }
            link->stale++;
        }
    }
    link->no_reply++;
    return BNN_LINK_NO_REPLY;
}

bnn_link_status bnn_link_defer(bnn_link *link, const float *x, uint16_t n, uint8_t *decision)
{
    uint8_t d = 0u;
    bnn_link_status st = transact(link, (uint8_t)BNN_MSG_DEFER, x, n, &d);
    if (st == BNN_LINK_OK && decision != NULL) {
        *decision = d;
    }
    return st;
}

bnn_link_status bnn_link_report(bnn_link *link, const float *x, uint16_t n, uint8_t decision)
{
    uint8_t d = decision;
    return transact(link, (uint8_t)BNN_MSG_REPORT, x, n, &d);
}
