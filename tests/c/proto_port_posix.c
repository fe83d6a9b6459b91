/*
 * Host build of the deferral link for tests: bnn_io.h over a TCP socket, plus a few flat
 * helpers that tests/test_protocol.py and tests/test_host.py call through ctypes.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bnn_io.h"
#include "bnn_protocol.h"

static int bnn_test_fd = -1;
static int bnn_test_port = -1;

static int try_connect(void);

void bnn_io_init(void) {}

uint32_t bnn_io_millis(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

static void drop(void)
{
    if (bnn_test_fd >= 0) {
        close(bnn_test_fd);
    }
    bnn_test_fd = -1;
}

/* Like a UART whose cable is unplugged while the host is down: bytes sent then are lost, and the
 * link reconnects (as QEMU's reconnect=1 does) when the host is back. */
void bnn_io_putc(uint8_t c)
{
    if (bnn_test_fd < 0) {
        (void)try_connect();
    }
    if (bnn_test_fd >= 0 && send(bnn_test_fd, &c, 1, MSG_NOSIGNAL) != 1) {
        drop();
    }
}

int bnn_io_getc(uint32_t timeout_ms)
{
    uint32_t start = bnn_io_millis();
    for (;;) {
        struct pollfd p;
        uint8_t c;
        uint32_t elapsed = bnn_io_millis() - start;
        if (elapsed >= timeout_ms) {
            return -1;
        }
        if (bnn_test_fd < 0 && try_connect() != 0) {
            struct timespec ts = {0, 20000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        p.fd = bnn_test_fd;
        p.events = POLLIN;
        p.revents = 0;
        if (poll(&p, 1, (int)(timeout_ms - elapsed)) <= 0) {
            return -1;
        }
        if (read(bnn_test_fd, &c, 1) != 1) {
            drop();
            continue;
        }
        return c;
    }
}

int bnn_test_connect(int port)
{
    bnn_test_port = port;
    return try_connect();
}

static int try_connect(void)
{
    struct sockaddr_in a;
    int one = 1;
    int port = bnn_test_port;
    if (port < 0) {
        return -1;
    }
    bnn_test_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (bnn_test_fd < 0) {
        return -1;
    }
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(0x7F000001u);
    if (connect(bnn_test_fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(bnn_test_fd);
        bnn_test_fd = -1;
        return -1;
    }
    setsockopt(bnn_test_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return 0;
}

void bnn_test_close(void)
{
    drop();
    bnn_test_port = -1;
}

#define BNN_TEST_MAX_FEATURES 1024u
static uint8_t bnn_test_tx[BNN_PROTO_FRAME_SIZE(BNN_TEST_MAX_FEATURES)];
static uint8_t bnn_test_rx[BNN_PROTO_RX_BUFFER_SIZE];
static bnn_link bnn_test_link;

void bnn_test_link_setup(uint32_t session, uint32_t model_tag, uint32_t timeout_ms, uint32_t attempts)
{
    bnn_link_init(&bnn_test_link, session, model_tag, bnn_test_tx, sizeof bnn_test_tx, bnn_test_rx,
                  sizeof bnn_test_rx);
    bnn_test_link.timeout_ms = timeout_ms;
    bnn_test_link.max_attempts = (uint8_t)attempts;
}

int bnn_test_defer(const float *x, uint16_t n, uint8_t *decision)
{
    return (int)bnn_link_defer(&bnn_test_link, x, n, decision);
}

int bnn_test_report(const float *x, uint16_t n, uint8_t decision)
{
    return (int)bnn_link_report(&bnn_test_link, x, n, decision);
}

int bnn_test_defer_u8(const uint8_t *x, uint16_t n, uint8_t *decision)
{
    return (int)bnn_link_defer_u8(&bnn_test_link, x, n, decision);
}

int bnn_test_report_u8(const uint8_t *x, uint16_t n, uint8_t decision)
{
    return (int)bnn_link_report_u8(&bnn_test_link, x, n, decision);
}

/* requests, retries, no_reply, refused, stale, rx frames_ok, rx dropped total, seq */
void bnn_test_link_stats(uint32_t out[8])
{
    unsigned i;
    out[0] = bnn_test_link.requests;
    out[1] = bnn_test_link.retries;
    out[2] = bnn_test_link.no_reply;
    out[3] = bnn_test_link.refused;
    out[4] = bnn_test_link.stale;
    out[5] = bnn_test_link.rx.frames_ok;
    out[6] = 0;
    for (i = 1; i < BNN_PROTO_N_STATUS; ++i) {
        out[6] += bnn_test_link.rx.dropped[i];
    }
    out[7] = bnn_test_link.seq;
}

/* Parse a payload; out = type, session, seq, model_tag, decision, n_features, req_crc, reason. */
/* The features of a parsed DEFER/REPORT through bnn_proto_feature() (zero runs included); returns
 * the parse status. */
int bnn_test_parse_features(const uint8_t *payload, size_t n, float *out, size_t cap)
{
    bnn_msg m;
    bnn_proto_status st = bnn_proto_parse(payload, n, &m);
    uint16_t i;
    if (st == BNN_PROTO_OK) {
        for (i = 0; i < m.n_features && i < cap; ++i) {
            out[i] = bnn_proto_feature(&m, i);
        }
    }
    return (int)st;
}

/* The two frame-size macros for n features: [0] float (the link's transmit buffer), [1] uint8. */
void bnn_test_frame_sizes(uint32_t n, uint32_t out[2])
{
    out[0] = (uint32_t)BNN_PROTO_FRAME_SIZE(n);
    out[1] = (uint32_t)BNN_PROTO_FRAME_SIZE_U8(n);
}

int bnn_test_parse(const uint8_t *payload, size_t n, uint32_t out[8])
{
    bnn_msg m;
    bnn_proto_status st = bnn_proto_parse(payload, n, &m);
    if (st == BNN_PROTO_OK) {
        out[0] = m.type;
        out[1] = m.session;
        out[2] = m.seq;
        out[3] = m.model_tag;
        out[4] = m.decision;
        out[5] = m.n_features;
        out[6] = m.req_crc;
        out[7] = m.reason;
    }
    return (int)st;
}
