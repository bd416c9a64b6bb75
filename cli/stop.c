/*
 * Commands that run until stopped (tail --follow, projections --watch):
 * SIGINT and SIGTERM ask them to finish, and a pause ends early when one
 * comes; a reader that goes away (| head) is a write error, not SIGPIPE.
 */
#define _POSIX_C_SOURCE 200809L /* sigaction */

#include "cli.h"

#include <signal.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

/* Without SA_RESTART, so a blocking wait returns early when it can. */
void cli_catch_stop_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

bool cli_stop_requested(void) { return stop_requested != 0; }

void cli_pause_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

void cli_ignore_sigpipe(void) {
  signal(SIGPIPE, SIG_IGN);
}

int64_t cli_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
