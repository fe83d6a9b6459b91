/*
 * Host harness for the device link (firmware/bnn_protocol.c) on a virtual clock, for
 * tests/test_link_wraparound.py through ctypes.
 *
 * bnn_io_millis() returns clock_base + t (mod 2^32), t being virtual milliseconds since
 * wrap_reset(); the test picks clock_base near 0xFFFFFFFF so the clock wraps mid-request.
 * bnn_io_getc(timeout) returns the next scheduled host byte if it arrives within the timeout
 * (advancing t to its arrival), else advances t by the whole timeout and returns -1: a request
 * costs exactly the virtual time the link asks to wait, so every wait can be checked to the
 * millisecond. Each frame the device sends (bytes between delimiters) goes to a Python callback
 * with the time it was sent; the callback schedules reply bytes with wrap_schedule().
 *
 * A timeout that never fires would loop forever: after getc_limit calls or when t passes
 * t_limit, bnn_io_getc() jumps back to wrap_defer()/wrap_report(), which return WRAP_RUNAWAY.
 */
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bnn_io.h"
#include "bnn_protocol.h"

#define WRAP_RUNAWAY (-1)
#define WRAP_MAX_FEATURES 256u
#define WRAP_RXQ 65536u

typedef void (*wrap_host_fn)(const uint8_t *frame, size_t n, uint64_t sent_at_ms);

static uint64_t t_now;
static uint32_t t_base;
static uint64_t t_limit;
static unsigned long getc_calls;
static unsigned long getc_limit;
static uint32_t max_wait_asked; /* largest timeout the link passed to bnn_io_getc() */
static jmp_buf runaway;
static int armed;
static wrap_host_fn host_cb;

static uint8_t txframe[2u * BNN_PROTO_REQUEST_SIZE(WRAP_MAX_FEATURES)];
static size_t txlen;
static uint8_t rxq[WRAP_RXQ];
static uint64_t rxat[WRAP_RXQ];
static size_t rxhead;
static size_t rxtail;

static uint8_t link_tx[BNN_PROTO_FRAME_SIZE(WRAP_MAX_FEATURES)];
static uint8_t link_rx[BNN_PROTO_RX_BUFFER_SIZE];
static bnn_link wrap_link;

void bnn_io_init(void) {}

uint32_t bnn_io_millis(void) { return t_base + (uint32_t)t_now; }

void bnn_io_putc(uint8_t c)
{
    if (c == 0u) {
        if (txlen > 0u && host_cb != NULL) {
            host_cb(txframe, txlen, t_now);
        }
        txlen = 0;
        return;
    }
    if (txlen < sizeof txframe) {
        txframe[txlen++] = c;
    }
}

int bnn_io_getc(uint32_t timeout_ms)
{
    if (++getc_calls > getc_limit || t_now > t_limit) {
        if (armed) {
            longjmp(runaway, 1);
        }
        return -1;
    }
    if (timeout_ms > max_wait_asked) {
        max_wait_asked = timeout_ms;
    }
    if (rxhead < rxtail && rxat[rxhead] <= t_now + timeout_ms) {
        if (rxat[rxhead] > t_now) {
            t_now = rxat[rxhead];
        }
        return rxq[rxhead++];
    }
    t_now += timeout_ms;
    return -1;
}

void wrap_reset(uint32_t clock_base, uint64_t limit_ms, unsigned long max_getc, wrap_host_fn cb)
{
    t_now = 0;
    t_base = clock_base;
    t_limit = limit_ms;
    getc_calls = 0;
    getc_limit = max_getc;
    max_wait_asked = 0;
    host_cb = cb;
    txlen = 0;
    rxhead = rxtail = 0;
}

/* Host bytes arriving at virtual time at_ms (kept in order: a byte never overtakes another). */
int wrap_schedule(const uint8_t *bytes, size_t n, uint64_t at_ms)
{
    size_t i;
    if (rxtail + n > WRAP_RXQ) {
        return -1;
    }
    for (i = 0; i < n; ++i) {
        uint64_t prev = rxtail > rxhead ? rxat[rxtail - 1u] : 0u;
        rxq[rxtail] = bytes[i];
        rxat[rxtail] = at_ms > prev ? at_ms : prev;
        rxtail++;
    }
    return 0;
}

uint64_t wrap_now(void) { return t_now; }

uint32_t wrap_millis(void) { return bnn_io_millis(); }

void wrap_link_setup(uint32_t session, uint32_t model_tag, uint32_t seq, uint32_t timeout_ms, uint32_t attempts)
{
    bnn_link_init(&wrap_link, session, model_tag, link_tx, sizeof link_tx, link_rx, sizeof link_rx);
    wrap_link.seq = seq; /* the number of the last request sent: the next one is seq + 1 */
    wrap_link.timeout_ms = timeout_ms;
    wrap_link.max_attempts = (uint8_t)attempts;
}

int wrap_defer(const float *x, uint16_t n, uint8_t *decision)
{
    volatile int st = WRAP_RUNAWAY;
    armed = 1;
    if (setjmp(runaway) == 0) {
        st = (int)bnn_link_defer(&wrap_link, x, n, decision);
    }
    armed = 0;
    return st;
}

int wrap_report(const float *x, uint16_t n, uint8_t decision)
{
    volatile int st = WRAP_RUNAWAY;
    armed = 1;
    if (setjmp(runaway) == 0) {
        st = (int)bnn_link_report(&wrap_link, x, n, decision);
    }
    armed = 0;
    return st;
}

/* requests, retries, no_reply, refused, stale, seq, getc calls, largest wait asked */
void wrap_stats(uint32_t out[8])
{
    out[0] = wrap_link.requests;
    out[1] = wrap_link.retries;
    out[2] = wrap_link.no_reply;
    out[3] = wrap_link.refused;
    out[4] = wrap_link.stale;
    out[5] = wrap_link.seq;
    out[6] = (uint32_t)getc_calls;
    out[7] = max_wait_asked;
}
