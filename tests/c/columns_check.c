/*
 * Host driver for the COLUMNS kernel's layer function (firmware/bnn_popcount_columns.h): reads
 * "n_in n_out table_words rows" as four uint32, the table, then `rows` packed inputs from stdin,
 * and writes each row's packed output words to stdout. tests/render/test_columns.py compares
 * them with the numpy arithmetic and the row-wise definition.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bnn_popcount.h"

#if BNN_POPCOUNT_STRATEGY != BNN_POPCOUNT_COLUMNS
#error "build with -DBNN_POPCOUNT_STRATEGY=BNN_POPCOUNT_COLUMNS"
#endif

static uint32_t read_word(void)
{
    uint32_t w;
    if (fread(&w, sizeof w, 1, stdin) != 1) {
        exit(2);
    }
    return w;
}

int main(void)
{
    const uint32_t n_in = read_word(), n_out = read_word(), n_table = read_word(), rows = read_word();
    const uint32_t in_words = (n_in + 31u) / 32u, out_words = (n_out + 31u) / 32u;
    uint32_t *table = malloc(4u * n_table), *a = malloc(4u * in_words), *out = malloc(4u * out_words);
    uint32_t *items = malloc(4u * (n_in < 2u ? 1u : n_in / 2u)); /* exactly the generated scratch: ASan sees more */
    uint32_t i, r;
    if (table == NULL || a == NULL || out == NULL || items == NULL) {
        return 3;
    }
    for (i = 0; i < n_table; ++i) {
        table[i] = read_word();
    }
    for (r = 0; r < rows; ++r) {
        for (i = 0; i < in_words; ++i) {
            a[i] = read_word();
        }
        for (i = 0; i < out_words; ++i) {
            out[i] = 0xA5A5A5A5u; /* every word must be written */
        }
        bnn_layer_columns(n_in, n_out, table, a, out, items);
        fwrite(out, 4u, out_words, stdout);
    }
    free(table);
    free(a);
    free(out);
    free(items);
    return 0;
}
