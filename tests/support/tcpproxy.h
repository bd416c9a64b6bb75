/*
 * A loopback TCP proxy for fault tests: clients connect to the proxy's
 * port on 127.0.0.1 and it forwards each connection to a target port on
 * 127.0.0.1 (a PostgreSQL or Redis server), until told to misbehave:
 *
 *   ESC_PROXY_PASS    forward bytes both ways (the start mode)
 *   ESC_PROXY_RESET   reset every open connection (RST to the client, close
 *                     towards the server); new ones are reset on accept
 *   ESC_PROXY_REFUSE  stop listening, so new connections are refused; open
 *                     ones keep passing
 *   ESC_PROXY_STALL   forward nothing and close nothing: open connections
 *                     hang, new ones are accepted and hang too (a paused
 *                     server, a network dropping packets). Back to PASS,
 *                     what was held flows on.
 *
 * "Server down" is RESET then REFUSE; "server back" is PASS.
 *
 * The proxy runs in a thread of the test process, so child processes (the
 * CLI, workers) can connect through it. Not thread-safe beyond this: call
 * the functions below from one thread. Nothing here uses cmocka, so a
 * soak or a benchmark can use it too.
 */
#ifndef ESC_TEST_TCPPROXY_H
#define ESC_TEST_TCPPROXY_H

#include <stddef.h>

typedef struct esc_test_proxy esc_test_proxy;

typedef enum esc_test_proxy_mode {
  ESC_PROXY_PASS,
  ESC_PROXY_RESET,
  ESC_PROXY_REFUSE,
  ESC_PROXY_STALL
} esc_test_proxy_mode;

/*
 * Listens on a free port of 127.0.0.1 (chosen by the kernel) and forwards
 * to 127.0.0.1:target_port, starting in PASS. Returns NULL when it cannot
 * (a socket or thread error), with the reason in why (why_size bytes; why
 * may be NULL).
 */
esc_test_proxy *esc_test_proxy_start(int target_port, char *why,
                                     size_t why_size);

/* The port clients connect to; it stays the same across REFUSE. */
int esc_test_proxy_port(const esc_test_proxy *p);

/* Switches mode; when it returns, the proxy acts on it (connections reset,
 * listener closed or open again, forwarding stopped or resumed). */
void esc_test_proxy_set_mode(esc_test_proxy *p, esc_test_proxy_mode mode);

/* Client connections the proxy holds open now. */
int esc_test_proxy_connections(esc_test_proxy *p);

/* Connections accepted since the start (reset ones included). */
long esc_test_proxy_accepted(esc_test_proxy *p);

/* Closes every connection and the listener, ends the thread, frees p.
 * Accepts NULL. */
void esc_test_proxy_stop(esc_test_proxy *p);

#endif
