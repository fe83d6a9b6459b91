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

#ifndef BNN_CRC32_BITWISE
/** CRC-32/IEEE of every byte value (reflected polynomial 0xEDB88320): 1 KiB of flash that makes
 *  the CRC a table lookup per byte instead of eight shift-and-xor steps (about 6 instead of 40
 *  instructions per byte). Define BNN_CRC32_BITWISE to trade it for the bitwise loop. */
static const uint32_t bnn_crc32_table[256] = {
    0x00000000u, 0x77073096u, 0xEE0E612Cu, 0x990951BAu, 0x076DC419u, 0x706AF48Fu,
    0xE963A535u, 0x9E6495A3u, 0x0EDB8832u, 0x79DCB8A4u, 0xE0D5E91Eu, 0x97D2D988u,
    0x09B64C2Bu, 0x7EB17CBDu, 0xE7B82D07u, 0x90BF1D91u, 0x1DB71064u, 0x6AB020F2u,
    0xF3B97148u, 0x84BE41DEu, 0x1ADAD47Du, 0x6DDDE4EBu, 0xF4D4B551u, 0x83D385C7u,
    0x136C9856u, 0x646BA8C0u, 0xFD62F97Au, 0x8A65C9ECu, 0x14015C4Fu, 0x63066CD9u,
    0xFA0F3D63u, 0x8D080DF5u, 0x3B6E20C8u, 0x4C69105Eu, 0xD56041E4u, 0xA2677172u,
    0x3C03E4D1u, 0x4B04D447u, 0xD20D85FDu, 0xA50AB56Bu, 0x35B5A8FAu, 0x42B2986Cu,
    0xDBBBC9D6u, 0xACBCF940u, 0x32D86CE3u, 0x45DF5C75u, 0xDCD60DCFu, 0xABD13D59u,
    0x26D930ACu, 0x51DE003Au, 0xC8D75180u, 0xBFD06116u, 0x21B4F4B5u, 0x56B3C423u,
    0xCFBA9599u, 0xB8BDA50Fu, 0x2802B89Eu, 0x5F058808u, 0xC60CD9B2u, 0xB10BE924u,
    0x2F6F7C87u, 0x58684C11u, 0xC1611DABu, 0xB6662D3Du, 0x76DC4190u, 0x01DB7106u,
    0x98D220BCu, 0xEFD5102Au, 0x71B18589u, 0x06B6B51Fu, 0x9FBFE4A5u, 0xE8B8D433u,
    0x7807C9A2u, 0x0F00F934u, 0x9609A88Eu, 0xE10E9818u, 0x7F6A0DBBu, 0x086D3D2Du,
    0x91646C97u, 0xE6635C01u, 0x6B6B51F4u, 0x1C6C6162u, 0x856530D8u, 0xF262004Eu,
    0x6C0695EDu, 0x1B01A57Bu, 0x8208F4C1u, 0xF50FC457u, 0x65B0D9C6u, 0x12B7E950u,
    0x8BBEB8EAu, 0xFCB9887Cu, 0x62DD1DDFu, 0x15DA2D49u, 0x8CD37CF3u, 0xFBD44C65u,
    0x4DB26158u, 0x3AB551CEu, 0xA3BC0074u, 0xD4BB30E2u, 0x4ADFA541u, 0x3DD895D7u,
    0xA4D1C46Du, 0xD3D6F4FBu, 0x4369E96Au, 0x346ED9FCu, 0xAD678846u, 0xDA60B8D0u,
    0x44042D73u, 0x33031DE5u, 0xAA0A4C5Fu, 0xDD0D7CC9u, 0x5005713Cu, 0x270241AAu,
    0xBE0B1010u, 0xC90C2086u, 0x5768B525u, 0x206F85B3u, 0xB966D409u, 0xCE61E49Fu,
    0x5EDEF90Eu, 0x29D9C998u, 0xB0D09822u, 0xC7D7A8B4u, 0x59B33D17u, 0x2EB40D81u,
    0xB7BD5C3Bu, 0xC0BA6CADu, 0xEDB88320u, 0x9ABFB3B6u, 0x03B6E20Cu, 0x74B1D29Au,
    0xEAD54739u, 0x9DD277AFu, 0x04DB2615u, 0x73DC1683u, 0xE3630B12u, 0x94643B84u,
    0x0D6D6A3Eu, 0x7A6A5AA8u, 0xE40ECF0Bu, 0x9309FF9Du, 0x0A00AE27u, 0x7D079EB1u,
    0xF00F9344u, 0x8708A3D2u, 0x1E01F268u, 0x6906C2FEu, 0xF762575Du, 0x806567CBu,
    0x196C3671u, 0x6E6B06E7u, 0xFED41B76u, 0x89D32BE0u, 0x10DA7A5Au, 0x67DD4ACCu,
    0xF9B9DF6Fu, 0x8EBEEFF9u, 0x17B7BE43u, 0x60B08ED5u, 0xD6D6A3E8u, 0xA1D1937Eu,
    0x38D8C2C4u, 0x4FDFF252u, 0xD1BB67F1u, 0xA6BC5767u, 0x3FB506DDu, 0x48B2364Bu,
    0xD80D2BDAu, 0xAF0A1B4Cu, 0x36034AF6u, 0x41047A60u, 0xDF60EFC3u, 0xA867DF55u,
    0x316E8EEFu, 0x4669BE79u, 0xCB61B38Cu, 0xBC66831Au, 0x256FD2A0u, 0x5268E236u,
    0xCC0C7795u, 0xBB0B4703u, 0x220216B9u, 0x5505262Fu, 0xC5BA3BBEu, 0xB2BD0B28u,
    0x2BB45A92u, 0x5CB36A04u, 0xC2D7FFA7u, 0xB5D0CF31u, 0x2CD99E8Bu, 0x5BDEAE1Du,
    0x9B64C2B0u, 0xEC63F226u, 0x756AA39Cu, 0x026D930Au, 0x9C0906A9u, 0xEB0E363Fu,
    0x72076785u, 0x05005713u, 0x95BF4A82u, 0xE2B87A14u, 0x7BB12BAEu, 0x0CB61B38u,
    0x92D28E9Bu, 0xE5D5BE0Du, 0x7CDCEFB7u, 0x0BDBDF21u, 0x86D3D2D4u, 0xF1D4E242u,
    0x68DDB3F8u, 0x1FDA836Eu, 0x81BE16CDu, 0xF6B9265Bu, 0x6FB077E1u, 0x18B74777u,
    0x88085AE6u, 0xFF0F6A70u, 0x66063BCAu, 0x11010B5Cu, 0x8F659EFFu, 0xF862AE69u,
    0x616BFFD3u, 0x166CCF45u, 0xA00AE278u, 0xD70DD2EEu, 0x4E048354u, 0x3903B3C2u,
    0xA7672661u, 0xD06016F7u, 0x4969474Du, 0x3E6E77DBu, 0xAED16A4Au, 0xD9D65ADCu,
    0x40DF0B66u, 0x37D83BF0u, 0xA9BCAE53u, 0xDEBB9EC5u, 0x47B2CF7Fu, 0x30B5FFE9u,
    0xBDBDF21Cu, 0xCABAC28Au, 0x53B39330u, 0x24B4A3A6u, 0xBAD03605u, 0xCDD70693u,
    0x54DE5729u, 0x23D967BFu, 0xB3667A2Eu, 0xC4614AB8u, 0x5D681B02u, 0x2A6F2B94u,
    0xB40BBE37u, 0xC30C8EA1u, 0x5A05DF1Bu, 0x2D02EF8Du,
};
#endif

/* The hot helpers of the frame builders are inlined (GCC would otherwise call them per word). */
#if defined(__GNUC__)
#define BNN_PROTO_INLINE static inline __attribute__((always_inline))
#else
#define BNN_PROTO_INLINE static
#endif

/* The CRC register's low byte as a table index. Thumb-1 (Cortex-M0/M0+) has `uxtb`, but GCC 12
 * copies the register and masks it with a 0xFF it keeps in another (two instructions per byte). */
#if defined(__GNUC__) && defined(__thumb__) && !defined(__thumb2__)
BNN_PROTO_INLINE uint32_t crc_index(uint32_t crc)
{
    uint32_t b;
    __asm__("uxtb %0, %1" : "=l"(b) : "l"(crc));
    return b;
}
#else
#define crc_index(crc) ((crc) & 0xFFu)
#endif

/** One byte into the CRC-32 register (not inverted). */
BNN_PROTO_INLINE uint32_t crc32_update(uint32_t crc, uint32_t byte)
{
#ifdef BNN_CRC32_BITWISE
    unsigned k;
    crc ^= byte & 0xFFu;
    for (k = 0; k < 8u; ++k) {
        crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return crc;
#else
    return bnn_crc32_table[crc_index(crc ^ byte)] ^ (crc >> 8);
#endif
}

uint32_t bnn_crc32(const uint8_t *data, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    size_t i;
    for (i = 0; i < n; ++i) {
        crc = crc32_update(crc, data[i]);
    }
    return crc ^ 0xFFFFFFFFu;
}

/* ----------------------------------------------------------------------------------- COBS */

/** Where encoded bytes go: a bounded buffer that records an overflow. */
typedef struct {
    uint8_t *out;
    size_t cap;
    size_t len;
    int overflow;
} bnn_sink;

static void sink_put(bnn_sink *s, uint8_t b)
{
    if (s->len < s->cap) {
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

/** A word with a zero byte (the classic "has zero byte" test): nonzero iff some byte of v is 0. */
static uint32_t has_zero_byte(uint32_t v)
{
    return (v - 0x01010101u) & ~v & 0x80808080u;
}

/*
 * Into a buffer big enough for the worst case: the same blocks as cobs_emit(), built without
 * per-byte bounds checks, and four bytes at a time while a word holds no zero and its block has
 * room for it (the word is moved with memcpy: one unaligned load/store where the core has them).
 */
static size_t cobs_encode_fast(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t i = 0, o = 1, code_at = 0;
    uint32_t code = 1u; /* length of the current block + 1 */
    while (i < n) {
        uint32_t w;
        if (i + 4u <= n && code + 4u < 0xFFu) {
            memcpy(&w, in + i, 4u);
            if (has_zero_byte(w) == 0u) {
                memcpy(out + o, &w, 4u);
                o += 4u;
                i += 4u;
                code += 4u;
                continue;
            }
        }
        if (in[i] == 0u) {
            out[code_at] = (uint8_t)code;
            code_at = o++;
            code = 1u;
        } else {
            out[o++] = in[i];
            if (++code == 0xFFu) {
                out[code_at] = 0xFFu;
                code_at = o++;
                code = 1u;
            }
        }
        ++i;
    }
    out[code_at] = (uint8_t)code;
    return o;
}

size_t bnn_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    bnn_sink s;
    if (out == NULL) {
        return 0;
    }
    if (cap >= BNN_COBS_MAX_ENCODED(n)) {
        return cobs_encode_fast(in, n, out);
    }
    s.out = out;
    s.cap = cap;
    s.len = 0;
    s.overflow = 0;
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

/* The bits of the float at p: memcpy() told that p is aligned as a float is, so it is one load
 * even on cores without unaligned access, where an unannotated memcpy() may become a library
 * call. */
#if defined(__GNUC__)
#define BNN_ALIGNED_FLOAT(p) ((const float *)__builtin_assume_aligned((p), __alignof__(float)))
#else
#define BNN_ALIGNED_FLOAT(p) (p)
#endif
static uint32_t float_bits(const float *p)
{
    uint32_t bits;
    memcpy(&bits, BNN_ALIGNED_FLOAT(p), sizeof bits);
    return bits;
}

/* The value of the float with bits @p bits (not +0.0) if it is a whole number 1..255, else 0 (the
 * uint8 width's test, shared by the payload and the frame builders; exact_width() draws the same
 * line with its own test, and a hypothesis test checks that the frame agrees with the payload).
 * bits >> 23 keeps the sign bit, so a negative value fails e <= 134; the shifts run only for e in
 * 127..134. */
static uint32_t whole_byte(uint32_t bits)
{
    uint32_t e = bits >> 23;
    if (e - 127u > 7u || (bits << (e - 118u)) != 0u) { /* below 1, 256 or more, a fraction */
        return 0u;
    }
    return ((bits << 8) | 0x80000000u) >> (158u - e);
}

/* The narrowest width that carries every feature exactly (bnnembed.link.protocol.exact_width):
 * 1 (uint8) if each is +0.0 or a whole number up to 255, 2 (int16) if each is +0.0 or a whole number
 * of magnitude up to 32767, else 4 (float32; also -0.0, NaN, infinities, fractions). Integer tests on
 * the float's bits only, so a core without an FPU makes no soft-float call. */
static uint8_t exact_width(const float *x, uint16_t n)
{
    uint8_t width = 1u;
    uint16_t i;
    for (i = 0; i < n; ++i) {
        uint32_t bits;
        uint32_t e;
        bits = float_bits(&x[i]);
        if (bits == 0u) {
            continue;
        }
        e = (bits >> 23) & 0xFFu;
        if (e < 127u || e > 141u) { /* below 1 in magnitude, 32768 or more, infinite or NaN */
            return 4u;
        }
        if ((bits & ((1u << (150u - e)) - 1u)) != 0u) { /* a fraction */
            return 4u;
        }
        if ((bits >> 31) != 0u || e > 134u) { /* negative, or 256 or more */
            width = 2u;
        }
    }
    return width;
}

/* The whole number a float holds that exact_width() accepted (magnitude below 32768). */
static int32_t whole_value(float v)
{
    uint32_t bits;
    uint32_t e;
    int32_t m;
    bits = float_bits(&v);
    if ((bits & 0x7FFFFFFFu) == 0u) {
        return 0;
    }
    e = (bits >> 23) & 0xFFu;
    m = (int32_t)(((bits & 0x7FFFFFu) | 0x800000u) >> (150u - e));
    return (bits >> 31) != 0u ? -m : m;
}

/* A DEFER or REPORT of 1..BNN_PROTO_MAX_FEATURES features into a buffer that exists. */
static int request_ok(const uint8_t *out, uint8_t type, uint16_t n)
{
    return out != NULL && (type == BNN_MSG_DEFER || type == BNN_MSG_REPORT) && n != 0u &&
           n <= BNN_PROTO_MAX_FEATURES;
}

/* Header, model tag, the REPORT's decision and the feature count; returns the bytes written (the
 * width byte and the features follow). */
static size_t put_request_head(uint8_t *out, uint8_t type, uint32_t session, uint32_t seq, uint32_t model_tag,
                               uint8_t decision, uint16_t n)
{
    size_t len = put_header(out, type, session, seq);
    put_u32(out + len, model_tag);
    len += 4u;
    if (type == BNN_MSG_REPORT) {
        out[len++] = decision;
    }
    put_u16(out + len, n);
    return len + 2u;
}

size_t bnn_proto_build_request(uint8_t *out, size_t cap, uint8_t type, uint32_t session, uint32_t seq,
                               uint32_t model_tag, uint8_t decision, const float *x, uint16_t n)
{
    size_t len;
    uint16_t i;
    uint8_t width;
    if (!request_ok(out, type, n) || cap < BNN_PROTO_REQUEST_SIZE(n)) {
        return 0;
    }
    len = put_request_head(out, type, session, seq, model_tag, decision, n);
    /* one optimistic pass for the common case, 8-bit values: pack each as a byte while it is +0.0
     * or a whole number 1..255 (whole_byte()) */
    for (i = 0; i < n; ++i) {
        uint32_t bits;
        uint32_t b;
        bits = float_bits(&x[i]);
        if (bits == 0u) {
            out[len + 1u + i] = 0u;
            continue;
        }
        b = whole_byte(bits);
        if (b == 0u) {
            break;
        }
        out[len + 1u + i] = (uint8_t)b;
    }
    width = i == n ? 1u : exact_width(x, n);
    out[len++] = width;
    if (width == 1u) {
        len += n;
    } else if (width == 2u) {
        for (i = 0; i < n; ++i) {
            put_u16(out + len, (uint16_t)(whole_value(x[i]) & 0xFFFF));
            len += 2u;
        }
    } else {
        for (i = 0; i < n; ++i) {
            uint32_t bits;
            bits = float_bits(&x[i]);
            put_u32(out + len, bits);
            len += 4u;
        }
    }
    return put_crc(out, len);
}

/* ------------------------------------------------------------------------- request frames */

/* One little-endian 32-bit word from 4-byte-aligned memory, first byte lowest (the order the
 * reflected CRC and the wire take bytes in). */
static uint32_t load_le32_aligned(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
    uint32_t w;
#if defined(__GNUC__)
    memcpy(&w, __builtin_assume_aligned(p, 4), sizeof w);
#else
    memcpy(&w, p, sizeof w);
#endif
    return w;
#else
    return get_u32(p);
#endif
}

/* A 32-bit word to any byte address, first byte lowest: one store on cores with unaligned access
 * (Cortex-M3 and up), four byte stores elsewhere (Cortex-M0, where memcpy() would be a call). */
static void store_le32(uint8_t *p, uint32_t v)
{
#if defined(__BYTE_ORDER__) && (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) && \
    (defined(__ARM_FEATURE_UNALIGNED) || defined(__x86_64__) || defined(__i386__))
    memcpy(p, &v, sizeof v);
#else
    put_u32(p, v);
#endif
}

/* Four bytes into the CRC-32 register at once: XOR the whole word in, then one table step per
 * byte (three instructions each on Cortex-M3/M4 instead of four). */
BNN_PROTO_INLINE uint32_t crc32_word(uint32_t crc, uint32_t w)
{
#ifdef BNN_CRC32_BITWISE
    crc = crc32_update(crc, w & 0xFFu);
    crc = crc32_update(crc, (w >> 8) & 0xFFu);
    crc = crc32_update(crc, (w >> 16) & 0xFFu);
    return crc32_update(crc, w >> 24);
#else
    crc ^= w;
    crc = bnn_crc32_table[crc_index(crc)] ^ (crc >> 8);
    crc = bnn_crc32_table[crc_index(crc)] ^ (crc >> 8);
    crc = bnn_crc32_table[crc_index(crc)] ^ (crc >> 8);
    return bnn_crc32_table[crc_index(crc)] ^ (crc >> 8);
#endif
}

/* COBS of one word whose block cannot fill up within it: stored whole, and each zero byte's place
 * becomes the next block's code (written when that block closes), tested without a loop. */
BNN_PROTO_INLINE uint8_t *cobs_word(uint8_t *p, uint8_t **code_pp, uint32_t v)
{
    uint8_t *code_p = *code_pp;
    store_le32(p, v);
    if ((v & 0x000000FFu) == 0u) {
        *code_p = (uint8_t)(p - code_p);
        code_p = p;
    }
    if ((v & 0x0000FF00u) == 0u) {
        *code_p = (uint8_t)(p + 1 - code_p);
        code_p = p + 1;
    }
    if ((v & 0x00FF0000u) == 0u) {
        *code_p = (uint8_t)(p + 2 - code_p);
        code_p = p + 2;
    }
    if ((v & 0xFF000000u) == 0u) {
        *code_p = (uint8_t)(p + 3 - code_p);
        code_p = p + 3;
    }
    *code_pp = code_p;
    return p + 4;
}

/* COBS of one byte whose block cannot fill up with it: stored, or, if zero, its place becomes the
 * next block's code. */
BNN_PROTO_INLINE uint8_t *cobs_byte(uint8_t *p, uint8_t **code_pp, uint32_t b)
{
    if (b == 0u) {
        **code_pp = (uint8_t)(p - *code_pp);
        *code_pp = p;
    } else {
        *p = (uint8_t)b;
    }
    return p + 1;
}

/* COBS of any byte: cobs_byte(), then the block-fill rule (254 bytes without a zero close a block
 * with code 0xFF). */
BNN_PROTO_INLINE uint8_t *cobs_byte_fill(uint8_t *p, uint8_t **code_pp, uint32_t b)
{
    p = cobs_byte(p, code_pp, b);
    if (p - *code_pp == 0xFF) {
        **code_pp = 0xFFu;
        *code_pp = p++;
    }
    return p;
}

/* Words the current block can still take whole without filling up: while (p - code_p) + 4 < 0xFF.
 * A zero byte only starts a new block, so the bound stays safe across zeros. */
BNN_PROTO_INLINE size_t block_room_words(const uint8_t *p, const uint8_t *code_p)
{
    const size_t used = (size_t)(p - code_p);
    return used + 4u < 0xFFu ? (0xFFu - 4u - used + 3u) / 4u : 0u;
}

/* A COBS encoder that folds each payload byte into the CRC-32 as it writes it, so a frame is one
 * pass over the features (the payload is never stored). The blocks are cobs_encode_fast()'s; a
 * block's code is the distance from its code byte. The hot loops copy the state into locals. */
typedef struct {
    uint8_t *out;    /* the frame's first byte (its leading 0x00) */
    uint8_t *p;      /* next output byte */
    uint8_t *code_p; /* the current block's code byte */
    uint32_t crc;    /* CRC-32 register of the payload so far (not inverted) */
} frame_writer;

BNN_PROTO_INLINE void frame_begin(frame_writer *w, uint8_t *out)
{
    out[0] = 0u; /* ends any partial frame the host holds from a garbled earlier send */
    w->out = out;
    w->code_p = out + 1;
    w->p = out + 2;
    w->crc = 0xFFFFFFFFu;
}

/* One payload byte: CRC, then COBS. */
BNN_PROTO_INLINE void put_byte(frame_writer *w, uint32_t b)
{
    w->crc = crc32_update(w->crc, b);
    w->p = cobs_byte_fill(w->p, &w->code_p, b);
}

/* Four payload bytes, first byte lowest: whole when the block has room, else byte by byte. */
BNN_PROTO_INLINE void put_word(frame_writer *w, uint32_t v)
{
    if (block_room_words(w->p, w->code_p) != 0u) {
        w->crc = crc32_word(w->crc, v);
        w->p = cobs_word(w->p, &w->code_p, v);
    } else {
        put_byte(w, v & 0xFFu);
        put_byte(w, (v >> 8) & 0xFFu);
        put_byte(w, (v >> 16) & 0xFFu);
        put_byte(w, v >> 24);
    }
}

/* Two payload bytes: without the block-fill tests when the block has room for a word. */
BNN_PROTO_INLINE void put_pair(frame_writer *w, uint32_t a, uint32_t b)
{
    if (block_room_words(w->p, w->code_p) != 0u) {
        w->crc = crc32_update(crc32_update(w->crc, a), b);
        w->p = cobs_byte(w->p, &w->code_p, a);
        w->p = cobs_byte(w->p, &w->code_p, b);
    } else {
        put_byte(w, a);
        put_byte(w, b);
    }
}

/* n payload bytes. */
static void frame_bytes(frame_writer *w, const uint8_t *in, size_t n)
{
    for (; n != 0u; --n) {
        put_byte(w, *in++);
    }
}

/* Appends the CRC field (not folded into itself), closes the last block and the frame; returns
 * the frame's length. */
BNN_PROTO_INLINE size_t frame_end(frame_writer *w, uint32_t *payload_crc)
{
    const uint32_t crc = w->crc ^ 0xFFFFFFFFu;
    unsigned i;
    if (payload_crc != NULL) {
        *payload_crc = crc;
    }
    if (block_room_words(w->p, w->code_p) != 0u) { /* little-endian, as put_u32() lays it out */
        w->p = cobs_word(w->p, &w->code_p, crc);
    } else {
        for (i = 0; i < 4u; ++i) {
            w->p = cobs_byte_fill(w->p, &w->code_p, (crc >> (8u * i)) & 0xFFu);
        }
    }
    *w->code_p = (uint8_t)(w->p - w->code_p);
    *w->p++ = 0u;
    return (size_t)(w->p - w->out);
}

/* The uint8 case in one loop, the writer's state in locals: per feature, the float's bits are tested and shifted as in
 * bnn_proto_build_request(), then CRC and COBS take the byte. Returns how many features it wrote
 * (n: all of them were whole numbers 0..255). */
static uint16_t frame_uint8_features(frame_writer *w, const float *x, uint16_t n)
{
    uint8_t *p = w->p;
    uint8_t *code_p = w->code_p;
    uint32_t crc = w->crc;
    const float *xi = x;
    const float *end = x + n;
    while (xi != end) {
        uint32_t bits;
        uint32_t b;
        bits = float_bits(xi);
        while (bits == 0u) { /* a run of +0.0: each ends a block (its code: the distance) */
            crc = crc32_update(crc, 0u);
            *code_p = (uint8_t)(p - code_p);
            code_p = p++;
            if (++xi == end) {
                goto done;
            }
            bits = float_bits(xi);
        }
        b = whole_byte(bits);
        if (b == 0u) { /* not a whole number 1..255 */
            break;
        }
        crc = crc32_update(crc, b);
        p = cobs_byte_fill(p, &code_p, b);
        ++xi;
    }
done:
    w->p = p;
    w->code_p = code_p;
    w->crc = crc;
    return (uint16_t)(xi - x);
}

size_t bnn_proto_build_request_frame(uint8_t *out, size_t cap, uint8_t type, uint32_t session, uint32_t seq,
                                     uint32_t model_tag, uint8_t decision, const float *x, uint16_t n,
                                     uint32_t *payload_crc)
{
    uint8_t head[BNN_PROTO_HEADER_SIZE + 8u];
    size_t hl;
    uint16_t i;
    uint8_t width;
    frame_writer w;
    if (!request_ok(out, type, n) || x == NULL || cap < BNN_PROTO_FRAME_SIZE(n)) {
        return 0;
    }
    hl = put_request_head(head, type, session, seq, model_tag, decision, n);
    head[hl++] = 1u; /* optimistic: uint8 */
    frame_begin(&w, out);
    frame_bytes(&w, head, hl);
    if (frame_uint8_features(&w, x, n) == n) {
        return frame_end(&w, payload_crc);
    }
    width = exact_width(x, n); /* 2 or 4 (the same test as the loop above): start over at that width */
    head[hl - 1u] = width;
    frame_begin(&w, out);
    frame_bytes(&w, head, hl);
    for (i = 0; i < n; ++i) {
        uint8_t v[4];
        if (width == 1u) {
            v[0] = (uint8_t)whole_value(x[i]);
        } else if (width == 2u) {
            put_u16(v, (uint16_t)(whole_value(x[i]) & 0xFFFF));
        } else {
            put_u32(v, float_bits(&x[i]));
        }
        frame_bytes(&w, v, width);
    }
    return frame_end(&w, payload_crc);
}

/* ------------------------------------------------------------------- uint8 request frames */

/* Word k of the row, first byte lowest: one load when the row is word-aligned. */
BNN_PROTO_INLINE uint32_t row_word(const uint8_t *x, int aligned)
{
    return aligned ? load_le32_aligned(x) : get_u32(x);
}

/*
 * The features as zero runs (docs/protocol.md; bnnembed.link.protocol.u8_runs() lays out the same
 * bytes): in units of 4 features, up to 63 all-zero units then up to 63 others per segment
 * (zeros, count, the others' bytes), the last n % 4 features as a final segment. A zero unit costs
 * a load and a test; only the others' words go through CRC and COBS.
 */
BNN_PROTO_INLINE void put_runs(frame_writer *w, const uint8_t *x, uint16_t n, int aligned)
{
    const uint8_t *u = x;
    const uint8_t *units_end = x + 4u * ((size_t)n / 4u);
    uint32_t k;
    while (u != units_end) {
        const uint8_t *start = u;
        const uint8_t *lim = ((size_t)(units_end - u) > 4u * BNN_PROTO_MAX_RUN_GROUPS)
                                 ? u + 4u * BNN_PROTO_MAX_RUN_GROUPS : units_end;
        const uint8_t *first;
        if (aligned) { /* two words a test while both are zero */
            const uint8_t *pairs_end = u + ((size_t)(lim - u) & ~(size_t)7u);
            while (u != pairs_end && (load_le32_aligned(u) | load_le32_aligned(u + 4)) == 0u) {
                u += 8;
            }
        }
        while (u != lim && row_word(u, aligned) == 0u) {
            u += 4;
        }
        first = u;
        lim = ((size_t)(units_end - u) > 4u * BNN_PROTO_MAX_RUN_GROUPS) ? u + 4u * BNN_PROTO_MAX_RUN_GROUPS
                                                                         : units_end;
        while (u != lim && row_word(u, aligned) != 0u) {
            u += 4;
        }
        put_pair(w, (uint32_t)(first - start), (uint32_t)(u - first)); /* zeros, count */
        for (; first != u; first += 4) {
            put_word(w, row_word(first, aligned));
        }
    }
    if ((n & 3u) != 0u) {
        put_byte(w, 0u);
        put_byte(w, n & 3u);
        for (k = 0; k < (n & 3u); ++k) {
            put_byte(w, u[k]);
        }
    }
}

/* The features of a long uint8 row as zero runs, out of line (the short rows' word loop keeps its
 * registers). */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void put_row_runs(frame_writer *w, const uint8_t *x, uint16_t n)
{
    frame_writer r = *w; /* a local copy GCC keeps in registers */
    if (((uintptr_t)x & 3u) == 0u) {
        put_runs(&r, x, n, 1);
    } else {
        put_runs(&r, x, n, 0);
    }
    *w = r;
}

/* The features of a short uint8 row a word at a time: byte by byte up to the row's word boundary
 * and after its last whole word; per word one CRC step of four table lookups and one COBS case. A
 * run of zero words is a run of codes 1 (one store each); any other word is stored whole and each
 * zero byte's place becomes the next block's code (cobs_word()). Words go in stretches the current
 * block has room for, so no word is tested for a full block; the word that may fill one goes byte
 * by byte. The writer's state lives in locals. */
BNN_PROTO_INLINE void put_row_words(frame_writer *w, const uint8_t *x, uint16_t n)
{
    uint8_t *p = w->p;
    uint8_t *code_p = w->code_p;
    uint32_t crc = w->crc;
    const uint8_t *end = x + n;
    const uint8_t *words_end;
    unsigned i;
    while (((uintptr_t)x & 3u) != 0u && x != end) {
        crc = crc32_update(crc, *x);
        p = cobs_byte_fill(p, &code_p, *x++);
    }
    words_end = x + ((size_t)(end - x) & ~(size_t)3u);
    while (x != words_end) {
        const size_t room = block_room_words(p, code_p);
        const uint8_t *stop = ((size_t)(words_end - x) / 4u > room) ? x + 4u * room : words_end;
        while (x != stop) {
            const uint32_t v = load_le32_aligned(x);
            x += 4;
            if (v != 0u) {
                crc = crc32_word(crc, v);
                p = cobs_word(p, &code_p, v);
                continue;
            }
            /* a run of zero words: the first closes the block, then codes 1 (the run's last byte is
             * the next block's code place) */
            *code_p = (uint8_t)(p - code_p);
            for (;;) {
                crc = crc32_word(crc, 0u);
                store_le32(p, 0x01010101u);
                p += 4;
                if (x == stop || load_le32_aligned(x) != 0u) {
                    break;
                }
                x += 4;
            }
            code_p = p - 1;
        }
        if (x != words_end && block_room_words(p, code_p) == 0u) { /* a word that may fill the block */
            for (i = 0; i < 4u; ++i) {
                crc = crc32_update(crc, *x);
                p = cobs_byte_fill(p, &code_p, *x++);
            }
        }
    }
    while (x != end) {
        crc = crc32_update(crc, *x);
        p = cobs_byte_fill(p, &code_p, *x++);
    }
    w->p = p;
    w->code_p = code_p;
    w->crc = crc;
}

/*
 * The uint8 request frame in one pass: the head as four words and one or two bytes (the bytes
 * put_request_head() lays out, then the width), the features, the CRC field. A row of
 * BNN_PROTO_RUNS_MIN_FEATURES or more goes as zero runs (put_runs()), a shorter one as uint8
 * (put_row_words()).
 */
size_t bnn_proto_build_request_frame_u8(uint8_t *out, size_t cap, uint8_t type, uint32_t session, uint32_t seq,
                                        uint32_t model_tag, uint8_t decision, const uint8_t *x, uint16_t n,
                                        uint32_t *payload_crc)
{
    uint32_t head[4];
    uint32_t tail; /* the head's last bytes, first byte lowest: n's high byte on a REPORT, the width */
    unsigned tail_bytes;
    const int runs = n >= BNN_PROTO_RUNS_MIN_FEATURES;
    const uint32_t width = runs ? BNN_PROTO_WIDTH_U8_RUNS : 1u;
    frame_writer w;
    unsigned i;
    if (!request_ok(out, type, n) || x == NULL || cap < BNN_PROTO_FRAME_SIZE_U8(n)) {
        return 0;
    }
    head[0] = (uint32_t)BNN_PROTO_VERSION | ((uint32_t)type << 8) | (session << 16);
    head[1] = (session >> 16) | (seq << 16);
    head[2] = (seq >> 16) | (model_tag << 16);
    if (type == BNN_MSG_REPORT) {
        head[3] = (model_tag >> 16) | ((uint32_t)decision << 16) | ((uint32_t)(n & 0xFFu) << 24);
        tail = ((uint32_t)n >> 8) | (width << 8);
        tail_bytes = 2u;
    } else {
        head[3] = (model_tag >> 16) | ((uint32_t)n << 16);
        tail = width;
        tail_bytes = 1u;
    }
    frame_begin(&w, out);
    for (i = 0; i < 4u; ++i) { /* 16 bytes: the first block cannot fill */
        w.crc = crc32_word(w.crc, head[i]);
        w.p = cobs_word(w.p, &w.code_p, head[i]);
    }
    for (i = 0; i < tail_bytes; ++i, tail >>= 8) {
        w.crc = crc32_update(w.crc, tail & 0xFFu);
        w.p = cobs_byte(w.p, &w.code_p, tail & 0xFFu);
    }
    if (runs) {
        frame_writer r = w; /* only this copy's address leaves the function: w stays in registers */
        put_row_runs(&r, x, n);
        w = r;
    } else {
        put_row_words(&w, x, n);
    }
    return frame_end(&w, payload_crc);
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

/* Zero runs (version 3): segments zeros u8, count u8, count bytes that give exactly n features and
 * end the body; a segment of 0 and 0 is refused (it would say nothing). */
static bnn_proto_status parse_runs(const uint8_t *body, size_t body_len, size_t offset, uint16_t n, bnn_msg *msg)
{
    size_t pos = offset;
    uint32_t i = 0u;
    while (i < n) {
        uint32_t zeros, count;
        if (pos + 2u > body_len) {
            return BNN_PROTO_E_LENGTH;
        }
        zeros = body[pos];
        count = body[pos + 1u];
        pos += 2u;
        if (zeros + count == 0u) {
            return BNN_PROTO_E_VALUE;
        }
        if (i + zeros + count > n || pos + count > body_len) {
            return BNN_PROTO_E_LENGTH;
        }
        i += zeros + count;
        pos += count;
    }
    if (pos != body_len) {
        return BNN_PROTO_E_LENGTH;
    }
    msg->n_features = n;
    msg->feature_width = BNN_PROTO_WIDTH_U8_RUNS;
    msg->features = body + offset;
    return BNN_PROTO_OK;
}

static bnn_proto_status parse_features(const uint8_t *body, size_t body_len, size_t offset, uint16_t n,
                                       uint8_t version, bnn_msg *msg)
{
    uint8_t width = 4u;
    if (n == 0u || n > BNN_PROTO_MAX_FEATURES) {
        return BNN_PROTO_E_VALUE;
    }
    if (version >= 2u) { /* a width byte follows the count */
        if (body_len <= offset) {
            return BNN_PROTO_E_LENGTH;
        }
        width = body[offset++];
        if (width == BNN_PROTO_WIDTH_U8_RUNS && version >= 3u) {
            return parse_runs(body, body_len, offset, n, msg);
        }
        if (width != 1u && width != 2u && width != 4u) {
            return BNN_PROTO_E_VALUE;
        }
    }
    if (body_len != offset + (size_t)width * (size_t)n) {
        return BNN_PROTO_E_LENGTH;
    }
    msg->n_features = n;
    msg->feature_width = width;
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
    if (payload[0] < BNN_PROTO_OLDEST_VERSION || payload[0] > BNN_PROTO_VERSION) {
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
        return parse_features(body, body_len, 6u, get_u16(body + 4), payload[0], msg);
    case BNN_MSG_REPORT:
        if (body_len < 7u) {
            return BNN_PROTO_E_LENGTH;
        }
        msg->model_tag = get_u32(body);
        msg->decision = body[4];
        if (msg->decision > 1u && msg->decision != BNN_PROTO_DECISION_INVALID) {
            return BNN_PROTO_E_VALUE;
        }
        return parse_features(body, body_len, 7u, get_u16(body + 5), payload[0], msg);
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
    if (msg->feature_width == 1u) {
        return (float)msg->features[i];
    }
    if (msg->feature_width == BNN_PROTO_WIDTH_U8_RUNS) { /* walk the segments (checked by the parser) */
        const uint8_t *seg = msg->features;
        uint32_t at = 0u;
        for (;;) {
            const uint32_t zeros = seg[0], count = seg[1];
            if (i < at + zeros) {
                return 0.0f;
            }
            if (i < at + zeros + count) {
                return (float)seg[2u + (i - at - zeros)];
            }
            at += zeros + count;
            seg += 2u + count;
        }
    }
    if (msg->feature_width == 2u) {
        return (float)(int16_t)get_u16(msg->features + 2u * (size_t)i);
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

static void send_frame(const uint8_t *frame, size_t len)
{
    size_t i;
    for (i = 0; i < len; ++i) {
        bnn_io_putc(frame[i]);
    }
}

/* Features as the caller holds them: float32 or uint8 (at most one pointer is set). */
typedef struct {
    const float *f;
    const uint8_t *u8;
} link_features;

static bnn_link_status transact(bnn_link *link, uint8_t type, link_features x, uint16_t n, uint8_t *decision)
{
    size_t len;
    uint32_t crc;
    uint8_t want = (type == BNN_MSG_DEFER) ? (uint8_t)BNN_MSG_DECISION : (uint8_t)BNN_MSG_ACK;
    unsigned attempt;
    if (x.u8 != NULL) { /* both builders refuse a NULL x: TOO_BIG below */
        len = bnn_proto_build_request_frame_u8(link->tx, link->tx_cap, type, link->session, link->seq + 1u,
                                               link->model_tag, *decision, x.u8, n, &crc);
    } else {
        len = bnn_proto_build_request_frame(link->tx, link->tx_cap, type, link->session, link->seq + 1u,
                                            link->model_tag, *decision, x.f, n, &crc);
    }
    if (len == 0u) {
        return BNN_LINK_TOO_BIG;
    }
    link->seq++;
    link->requests++;
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

static link_features as_float(const float *x)
{
    link_features f = {NULL, NULL};
    f.f = x;
    return f;
}

static link_features as_u8(const uint8_t *x)
{
    link_features f = {NULL, NULL};
    f.u8 = x;
    return f;
}

static bnn_link_status defer(bnn_link *link, link_features x, uint16_t n, uint8_t *decision)
{
    uint8_t d = 0u;
    bnn_link_status st = transact(link, (uint8_t)BNN_MSG_DEFER, x, n, &d);
    if (st == BNN_LINK_OK && decision != NULL) {
        *decision = d;
    }
    return st;
}

bnn_link_status bnn_link_defer(bnn_link *link, const float *x, uint16_t n, uint8_t *decision)
{
    return defer(link, as_float(x), n, decision);
}

bnn_link_status bnn_link_defer_u8(bnn_link *link, const uint8_t *x, uint16_t n, uint8_t *decision)
{
    return defer(link, as_u8(x), n, decision);
}

bnn_link_status bnn_link_report(bnn_link *link, const float *x, uint16_t n, uint8_t decision)
{
    uint8_t d = decision;
    return transact(link, (uint8_t)BNN_MSG_REPORT, as_float(x), n, &d);
}

bnn_link_status bnn_link_report_u8(bnn_link *link, const uint8_t *x, uint16_t n, uint8_t decision)
{
    uint8_t d = decision;
    return transact(link, (uint8_t)BNN_MSG_REPORT, as_u8(x), n, &d);
}
