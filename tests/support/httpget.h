/*
 * A minimal HTTP/1.0 client against 127.0.0.1, for tests of the metrics
 * endpoint, of the Prometheus they start and of the console's actions,
 * and esc-bench's scraper: enough of HTTP for servers that answer one
 * request and close.
 */
#ifndef ESC_TEST_HTTPGET_H
#define ESC_TEST_HTTPGET_H

#include <stddef.h>

/* GETs path (already URL-encoded) from 127.0.0.1:port, waiting up to
 * timeout_ms. Returns the status code and puts the body (malloc'ed,
 * NUL-terminated; the caller frees) in *body; -1 (and *body NULL) when
 * nothing answered in time. Never fails a test: callers poll with it. */
int esc_test_http_get(int port, const char *path, int timeout_ms, char **body);

/* The same for any method: headers (NULL: none) are extra header lines,
 * each ending in "\r\n" ("Authorization: Bearer T\r\n"); body (NULL:
 * none) is sent with its Content-Length. */
int esc_test_http_request(int port, const char *method, const char *path,
                          const char *headers, const char *body,
                          int timeout_ms, char **resp_body);

/* Percent-encodes s for a URL query value into out (size bytes);
 * returns out, or NULL when it is too small. */
char *esc_test_url_encode(const char *s, char *out, size_t size);

#endif
