/*
 * Malformed-frame fuzz of the C receiver and parser, for a host build with
 * -fsanitize=address,undefined. Usage: proto_fuzz SEED ITERATIONS
 *
 * Each iteration builds a valid frame (random type and fields), mutates it (bit flips, byte
 * changes, inserted/deleted bytes, truncation, inserted delimiters, random garbage, on the
 * payload or on the COBS wire bytes), pushes the wire bytes through a bnn_proto_rx whose buffer
 * is an exact-size heap block (so an overrun is an ASan error), and also parses the raw payload.
 * Any frame accepted while differing from the frame sent is a misread. Prints counts and the
 * sentinel BNN-FUZZ-OK (exit 0) or BNN-FUZZ-FAIL (exit 1).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bnn_io.h"
#include "bnn_protocol.h"

void bnn_io_init(void) {}
void bnn_io_putc(uint8_t c) { (void)c; }
int bnn_io_getc(uint32_t timeout_ms) { (void)timeout_ms; return -1; }
uint32_t bnn_io_millis(void) { return 0; }

static uint64_t rng_state;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static uint32_t below(uint32_t n) { return n ? rnd() % n : 0u; }

#define MAX_N 64u
#define CAP (BNN_PROTO_REQUEST_SIZE(MAX_N) + 64u)

static size_t make_valid(uint8_t *out)
{
    static const uint8_t types[5] = {BNN_MSG_DEFER, BNN_MSG_REPORT, BNN_MSG_DECISION, BNN_MSG_ACK,
                                     BNN_MSG_NACK};
    uint8_t t = types[below(5)];
    if (t == BNN_MSG_DEFER || t == BNN_MSG_REPORT) {
        float x[MAX_N];
        uint16_t n = (uint16_t)(1u + below(MAX_N));
        uint16_t i;
        for (i = 0; i < n; ++i) {
            uint32_t b = below(4) == 0 ? 0u : rnd();
            memcpy(&x[i], &b, 4);
        }
        return bnn_proto_build_request(out, CAP, t, rnd(), rnd(), rnd(), (uint8_t)below(2), x, n);
    }
    return bnn_proto_build_reply(out, CAP, t, rnd(), rnd(), rnd(), (uint8_t)below(2));
}

static size_t mutate(uint8_t *buf, size_t n, size_t cap)
{
    unsigned k, rounds = 1u + below(4);
    for (k = 0; k < rounds; ++k) {
        switch (below(7)) {
        case 0: /* flip a bit */
            if (n) buf[below((uint32_t)n)] ^= (uint8_t)(1u << below(8));
            break;
        case 1: /* set a byte */
            if (n) buf[below((uint32_t)n)] = (uint8_t)rnd();
            break;
        case 2: /* truncate */
            n = below((uint32_t)n + 1u);
            break;
        case 3: /* delete a byte */
            if (n) {
                size_t i = below((uint32_t)n);
                memmove(buf + i, buf + i + 1, n - i - 1);
                n--;
            }
            break;
        case 4: /* insert a byte (sometimes a delimiter) */
            if (n < cap) {
                size_t i = below((uint32_t)n + 1u);
                memmove(buf + i + 1, buf + i, n - i);
                buf[i] = below(3) == 0 ? 0u : (uint8_t)rnd();
                n++;
            }
            break;
        case 5: /* random garbage of random length */
            n = below((uint32_t)cap);
            {
                size_t i;
                for (i = 0; i < n; ++i) buf[i] = (uint8_t)rnd();
            }
            break;
        default: /* zero a byte */
            if (n) buf[below((uint32_t)n)] = 0u;
            break;
        }
    }
    return n;
}

/* The same message, field by field (features bit for bit). */
static int same_message(const bnn_msg *a, const bnn_msg *b)
{
    uint16_t i;
    if (a->type != b->type || a->session != b->session || a->seq != b->seq || a->model_tag != b->model_tag ||
        a->decision != b->decision || a->n_features != b->n_features || a->req_crc != b->req_crc ||
        a->reason != b->reason) {
        return 0;
    }
    for (i = 0; i < a->n_features; ++i) {
        float fa = bnn_proto_feature(a, i), fb = bnn_proto_feature(b, i);
        if (memcmp(&fa, &fb, sizeof fa) != 0) return 0;
    }
    return 1;
}

/* Rebuild a parsed message: it must parse back to the same message, and come back byte for byte
 * when the payload was in the canonical form (this version; requests at the narrowest exact width). */
static int rebuild_equals(const bnn_msg *m, const uint8_t *payload, size_t n)
{
    uint8_t out[CAP];
    size_t len;
    bnn_msg back;
    if (m->type == BNN_MSG_DEFER || m->type == BNN_MSG_REPORT) {
        float x[BNN_PROTO_MAX_FEATURES];
        uint16_t i;
        for (i = 0; i < m->n_features; ++i) x[i] = bnn_proto_feature(m, i);
        if (BNN_PROTO_REQUEST_SIZE(m->n_features) > CAP) return 0;
        len = bnn_proto_build_request(out, CAP, m->type, m->session, m->seq, m->model_tag, m->decision, x,
                                      m->n_features);
    } else {
        len = bnn_proto_build_reply(out, CAP, m->type, m->session, m->seq, m->req_crc,
                                    m->type == BNN_MSG_NACK ? m->reason : m->decision);
    }
    if (len == 0u || bnn_proto_parse(out, len, &back) != BNN_PROTO_OK || !same_message(m, &back)) {
        return 0;
    }
    if (payload[0] != BNN_PROTO_VERSION || ((m->type == BNN_MSG_DEFER || m->type == BNN_MSG_REPORT) &&
                                            back.feature_width != m->feature_width)) {
        return 1; /* an older version or a wider width than needed: equal in meaning, not in bytes */
    }
    return len == n && memcmp(out, payload, n) == 0;
}

/* Recompute the CRC after a mutation, so the parser's later checks are exercised. */
static void fix_crc(uint8_t *p, size_t n)
{
    uint32_t c;
    if (n < BNN_PROTO_CRC_SIZE) return;
    c = bnn_crc32(p, n - BNN_PROTO_CRC_SIZE);
    p[n - 4] = (uint8_t)c;
    p[n - 3] = (uint8_t)(c >> 8);
    p[n - 2] = (uint8_t)(c >> 16);
    p[n - 1] = (uint8_t)(c >> 24);
}

int main(int argc, char **argv)
{
    unsigned long seed = argc > 1 ? strtoul(argv[1], NULL, 10) : 1ul;
    unsigned long iters = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000ul;
    unsigned long it, accepted = 0, misread = 0, dropped_total = 0, parse_calls = 0, roundtrip_bad = 0;
    unsigned long recrc = 0, recrc_ok = 0, noncanonical = 0;
    unsigned long raw_status[BNN_PROTO_N_STATUS] = {0};
    size_t rx_cap = BNN_COBS_MAX_ENCODED(CAP);
    uint8_t *rxbuf = malloc(rx_cap);
    uint8_t *small = malloc(BNN_PROTO_RX_BUFFER_SIZE); /* the device's reply-sized receiver */
    bnn_proto_rx rx, rx_small;
    unsigned long small_accepted = 0;
    unsigned s;
    rng_state = 0x9E3779B97F4A7C15ull ^ (uint64_t)seed;
    if (rxbuf == NULL || small == NULL) return 2;
    bnn_proto_rx_init(&rx, rxbuf, rx_cap);
    bnn_proto_rx_init(&rx_small, small, BNN_PROTO_RX_BUFFER_SIZE);
    for (it = 0; it < iters; ++it) {
        uint8_t orig[CAP], pay[CAP], wire[BNN_COBS_MAX_ENCODED(CAP) + 8u];
        size_t n_orig = make_valid(orig), n_pay, n_wire, i;
        unsigned mode = below(3); /* 0: payload mutated, 1: wire mutated, 2: payload mutated + CRC fixed */
        int on_wire = mode == 1u;
        bnn_proto_status st;
        bnn_msg m;
        uint8_t *exact;
        memcpy(pay, orig, n_orig);
        n_pay = n_orig;
        /* a valid frame round-trips: parse, rebuild, identical bytes */
        if (bnn_proto_parse(orig, n_orig, &m) != BNN_PROTO_OK || !rebuild_equals(&m, orig, n_orig)) roundtrip_bad++;
        if (!on_wire) n_pay = mutate(pay, n_pay, CAP);
        if (mode == 2u) {
            fix_crc(pay, n_pay);
            recrc++;
        }
        /* raw parser on an exact-size heap copy */
        exact = malloc(n_pay ? n_pay : 1u);
        if (exact == NULL) return 2;
        memcpy(exact, pay, n_pay);
        parse_calls++;
        st = bnn_proto_parse(exact, n_pay, &m);
        raw_status[st]++;
        if (st == BNN_PROTO_OK) {
            (void)bnn_proto_feature(&m, (uint16_t)below(70000u));
            if (mode == 2u) {
                recrc_ok++; /* a CRC-valid frame by construction: it must be canonical */
                if (!rebuild_equals(&m, exact, n_pay)) noncanonical++;
            } else if (n_pay != n_orig || memcmp(exact, orig, n_orig) != 0) {
                misread++;
            }
        }
        free(exact);
        n_wire = bnn_cobs_encode(pay, n_pay, wire, sizeof wire - 8u);
        if (on_wire) n_wire = mutate(wire, n_wire, sizeof wire - 8u);
        wire[n_wire++] = 0u;
        for (i = 0; i < n_wire; ++i) {
            if (bnn_proto_rx_push(&rx_small, wire[i], &m)) {
                small_accepted++;
                if (!rebuild_equals(&m, mode == 2u ? pay : orig, mode == 2u ? n_pay : n_orig)) misread++;
            }
            if (bnn_proto_rx_push(&rx, wire[i], &m)) {
                accepted++;
                /* whatever the receiver accepts must be the frame that was sent (or, with the CRC
                 * recomputed, the mutated payload), byte for byte */
                if (!rebuild_equals(&m, mode == 2u ? pay : orig, mode == 2u ? n_pay : n_orig)) misread++;
            }
        }
    }
    for (s = 1; s < BNN_PROTO_N_STATUS; ++s) dropped_total += rx.dropped[s];
    printf("iterations=%lu parse_calls=%lu frames_accepted=%lu frames_dropped=%lu misread=%lu roundtrip_bad=%lu "
           "crc_fixed=%lu crc_fixed_accepted=%lu noncanonical=%lu\n",
           iters, parse_calls, accepted, dropped_total, misread, roundtrip_bad, recrc, recrc_ok, noncanonical);
    printf("raw_parse ok=%lu short=%lu crc=%lu version=%lu type=%lu length=%lu value=%lu\n", raw_status[0],
           raw_status[3], raw_status[4], raw_status[5], raw_status[6], raw_status[7], raw_status[8]);
    printf("dropped_by_reason cobs=%lu oversize=%lu short=%lu crc=%lu version=%lu type=%lu length=%lu value=%lu\n",
           (unsigned long)rx.dropped[1], (unsigned long)rx.dropped[2], (unsigned long)rx.dropped[3],
           (unsigned long)rx.dropped[4], (unsigned long)rx.dropped[5], (unsigned long)rx.dropped[6],
           (unsigned long)rx.dropped[7], (unsigned long)rx.dropped[8]);
    printf("small_receiver accepted=%lu oversize=%lu\n", small_accepted, (unsigned long)rx_small.dropped[2]);
    free(rxbuf);
    free(small);
    if (misread || roundtrip_bad || noncanonical) {
        printf("BNN-FUZZ-FAIL\n");
        return 1;
    }
    printf("BNN-FUZZ-OK\n");
    return 0;
}
