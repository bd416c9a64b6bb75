/*
 * history.h - the records of a soak run, as JSON lines (libjansson).
 *
 *  - Clients write two records per attempt of an append: "invoke" before
 *    the call (what is sent: stream, expected version, event ids and
 *    data) and "complete" after it (the outcome and what came back). A
 *    client killed during a call leaves the invoke alone: the attempt is
 *    pending, its effect unknown.
 *  - Followers write one delivery per event they were given (stream,
 *    version, id, position), in the order given. `esc tail --json` lines
 *    have the same keys, so they are read the same way.
 *  - After the run the driver writes the final log ($all, and the
 *    category, as read with the library), every stream's version from the
 *    streams table, and the projection's read model.
 *
 * This module turns records into lines and lines into records; it does no
 * I/O, so the checker and its unit test need no file and no server.
 */
#ifndef SOAK_HISTORY_H
#define SOAK_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <esc/store.h>

enum {
  SOAK_MAX_BATCH = 4, /* events per append */
  SOAK_NAME_MAX = 64, /* op, client and stream names */
  SOAK_ITEM_MAX = 16,
  SOAK_DETAIL_MAX = 120
};

/* The outcome of one attempt. PENDING is never written: it is what a
 * missing complete record means. */
typedef enum soak_outcome {
  SOAK_PENDING = 0,
  SOAK_OK,       /* applied, or a duplicate that returned the original */
  SOAK_CONFLICT, /* the expected version did not match: nothing written */
  SOAK_ERROR,    /* refused for another reason: nothing written */
  SOAK_UNKNOWN   /* the reply was lost: written or not */
} soak_outcome;

const char *soak_outcome_name(soak_outcome o);

/* One event as a client sent it: the tally projection's Counted {n, item}. */
typedef struct soak_sent {
  char id[37];
  int64_t n;
  char item[SOAK_ITEM_MAX];
} soak_sent;

/* One attempt of an append. The attempts of one op share stream,
 * expected version and events: a retry re-sends the same ids. */
typedef struct soak_attempt {
  char op[SOAK_NAME_MAX];
  char client[SOAK_NAME_MAX];
  int attempt;         /* 1 for the first send, then 2, 3, ... */
  int64_t invoke_us;   /* soak_now_us() before the call */
  int64_t complete_us; /* after it; INT64_MAX while pending */
  char stream[SOAK_NAME_MAX];
  int64_t expected; /* ESC_EXPECT_* or an exact version */
  size_t n;
  soak_sent events[SOAK_MAX_BATCH];
  soak_outcome outcome;
  /* What an OK attempt returned (first_global -1 when not reported, as
   * `esc append --json` does not): */
  int64_t first_version, last_version, first_global;
  esc_position position;
  bool duplicate;
  char code[24];                /* the status as named by the client */
  char detail[SOAK_DETAIL_MAX]; /* the error, for the others */
} soak_attempt;

/* An event as a follower or the final log delivered it. */
typedef struct soak_delivery {
  char stream[SOAK_NAME_MAX];
  int64_t version;
  char id[37];
  esc_position position;
  bool has_data; /* n and item known (the log and `esc tail` carry them) */
  int64_t n;
  char item[SOAK_ITEM_MAX];
} soak_delivery;

/* A growable array of deliveries, in delivery order. */
typedef struct soak_deliveries {
  soak_delivery *items;
  size_t count, cap;
} soak_deliveries;

void soak_deliveries_release(soak_deliveries *d);
/* Appends a copy; false when out of memory. */
bool soak_deliveries_push(soak_deliveries *d, const soak_delivery *e);

/* A stream's version as the streams table has it. */
typedef struct soak_stream_version {
  char stream[SOAK_NAME_MAX];
  int64_t version;
} soak_stream_version;

/* The tally projection's read model (tests/support/tally.h) as read from
 * Redis: the total, the score of every item, every stream's seq list. */
typedef struct soak_item_score {
  char item[SOAK_ITEM_MAX];
  int64_t score;
} soak_item_score;

typedef struct soak_seq {
  char stream[SOAK_NAME_MAX];
  int64_t *versions;
  size_t count;
} soak_seq;

typedef struct soak_model {
  bool present; /* a serving generation was found */
  int64_t generation, total;
  soak_item_score *items;
  size_t n_items;
  soak_seq *seqs;
  size_t n_seqs;
} soak_model;

void soak_model_release(soak_model *m);

/* ---------------------------------------------------------------------
 * Lines. Each *_line function returns a malloc'ed JSON text with a
 * trailing newline (the caller frees), NULL when out of memory. Parsers
 * return false and say why in why[size] for a line that is not such a
 * record.
 * --------------------------------------------------------------------- */

char *soak_invoke_line(const soak_attempt *a);
char *soak_complete_line(const soak_attempt *a);
char *soak_delivery_line(const soak_delivery *d);
char *soak_stream_version_line(const soak_stream_version *s);
char *soak_model_json(const soak_model *m);

/*
 * A growable array of attempts. soak_history_add_line merges a record
 * into it: an invoke adds an attempt (pending), a complete fills the
 * attempt it names, which must be there already (clients write the two
 * in that order, to one file).
 */
typedef struct soak_history {
  soak_attempt *items;
  size_t count, cap;
  size_t unmatched; /* complete records whose invoke was not seen */
} soak_history;

void soak_history_release(soak_history *h);
bool soak_history_add_line(soak_history *h, const char *line, char *why,
                           size_t size);
/* Every line of text (blank lines skipped); false at the first bad one. */
bool soak_history_add_text(soak_history *h, const char *text, char *why,
                           size_t size);

bool soak_delivery_parse(const char *line, soak_delivery *out, char *why,
                         size_t size);
/* Every line of text into d. A last line without its newline is left out
 * when it does not parse (a writer killed in the middle of it). */
bool soak_deliveries_add_text(soak_deliveries *d, const char *text, char *why,
                              size_t size);

bool soak_stream_version_parse(const char *line, soak_stream_version *out,
                               char *why, size_t size);
bool soak_model_parse(const char *text, soak_model *out, char *why,
                      size_t size);

/* "any", "no-stream", "exists" or the number; into out[24]. */
void soak_expected_format(int64_t expected, char out[24]);

#endif
