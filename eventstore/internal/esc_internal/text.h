/*
 * <esc_internal/text.h> - text helpers every module's messages and codecs
 * share: caller text quoted for messages, hex digits both ways.
 * Internal: not installed (docs/architecture.md).
 */
#ifndef ESC_INTERNAL_TEXT_H
#define ESC_INTERNAL_TEXT_H

#include <stddef.h>

/* Room for a quoted piece of caller text: all of its 48 printable bytes,
 * fewer escaped ones, so messages keep their tail within esc_error.msg. */
#define ESC__QUOTE_SIZE 104

/* Writes text into out (out_size >= 4) as it may appear between double
 * quotes in a message: printable ASCII as is, '"' and '\' escaped, other
 * bytes as \xNN, cut with "..." when too long. */
void esc__quote(char *out, size_t out_size, const char *text);

/* Writes the 2 * len lowercase hex digits of data[0..len) to out, then a
 * NUL (out holds 2 * len + 1 bytes). */
void esc__hex_encode(const void *data, size_t len, char *out);

/* The value of hex digit c (either case), or -1. */
int esc__hex_value(char c);

/* Copies text into out (size > 0), cut to size - 1 bytes when longer, and
 * NUL-terminates it: for messages and names whose cut is expected (an
 * snprintf "%s" there makes -Wformat-truncation noise). */
void esc__copy_text(char *out, size_t size, const char *text);

#endif
