/*
 * A hostile Redis for tests: a loopback server that answers every command
 * it receives with the bytes the test set, whatever the command was, so a
 * test can hand a client replies no real Redis would send (wrong types,
 * short arrays, nil where a string belongs). One connection at a time, in
 * a thread of the test process. Nothing here uses cmocka.
 */
#ifndef ESC_TEST_FAKEREDIS_H
#define ESC_TEST_FAKEREDIS_H

#include <stddef.h>

typedef struct esc_test_fakeredis esc_test_fakeredis;

/* Listens on a free port of 127.0.0.1; NULL when it cannot. */
esc_test_fakeredis *esc_test_fakeredis_start(void);
int esc_test_fakeredis_port(const esc_test_fakeredis *f);
/* The reply to every command from now on (RESP bytes, copied). */
void esc_test_fakeredis_reply(esc_test_fakeredis *f, const char *resp,
                              size_t len);
void esc_test_fakeredis_stop(esc_test_fakeredis *f);

#endif
