/*
 * esc-bench: benchmarks that print one JSON object per line.
 *
 *   esc-bench [--pg URL] [--redis URL] [--seconds S] [--schema NAME]
 *             [--events N] [--refill] [SCENARIO...]
 *
 * Every figure is a ratio to a raw baseline measured in the same run on the
 * same server; see docs/benchmarks.md. Progress goes to stderr, results to
 * stdout.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "bench.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2
#define EXIT_CONN 5
#define MAX_SELECTED 64

/* Every group; a new group adds its table here. */
static const bench_group *const groups[] = {
    &bench_append_group, &bench_command_group, &bench_project_group,
    &bench_process_group, &bench_read_group};
#define N_GROUPS (sizeof(groups) / sizeof(groups[0]))

/* ------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------ */

void bench_log(const char *fmt, ...) {
  va_list ap;
  fputs("esc-bench: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

void bench_errf(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (!err || errlen == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static void usage(FILE *f) {
  fputs("usage: esc-bench [options] [SCENARIO...]\n"
        "\n"
        "Runs each scenario (or every scenario of a group; `all` or no\n"
        "scenario at all: every group) against esc and against its baseline\n"
        "in the same run, and prints one JSON object per scenario on\n"
        "stdout. Progress goes to stderr.\n"
        "\n"
        "options:\n"
        "  --pg URL        PostgreSQL (default: ESC_PG_URL, else the local\n"
        "                  server of scripts/servers)\n"
        "  --redis URL     Redis for the project group (default:\n"
        "                  ESC_REDIS_URL, else the local server of\n"
        "                  scripts/servers); unused by append, command and\n"
        "                  process\n"
        "  --seconds S     measured seconds per side and scenario (default 5)\n"
        "  --rounds N      baseline/esc alternations the seconds are split\n"
        "                  over (default 2: raw esc esc raw)\n"
        "  --schema NAME   esc schema to drop and re-create (default\n"
        "                  esc_bench); the baseline uses NAME_raw\n"
        "  --no-checkpoint do not CHECKPOINT before each phase\n"
        "  --events N      events project-catchup replays (default\n"
        "                  1000000); kept in NAME_proj_N between runs\n"
        "  --refill        append project-catchup's events afresh even\n"
        "                  when NAME_proj_N already holds them\n"
        "  --list          list groups and scenarios\n"
        "  --show-ddl      print the baseline table's DDL\n"
        "  --help          this text\n"
        "\n"
        "Scenarios are dropped and re-created in the schema: never point\n"
        "--schema at data you want to keep.\n",
        f);
}

static void list_scenarios(void) {
  for (size_t g = 0; g < N_GROUPS; g++) {
    printf("%s\n", groups[g]->name);
    for (size_t i = 0; i < groups[g]->count; i++)
      printf("  %-26s %s\n", groups[g]->scenarios[i].name,
             groups[g]->scenarios[i].summary);
  }
}

/* ------------------------------------------------------------------------
 * Output
 * ------------------------------------------------------------------------ */

void bench_output_init(bench_output *out) {
  memset(out, 0, sizeof(*out));
  out->value = out->baseline = out->target_ratio = NAN;
  out->p50_ms = out->p99_ms = NAN;
  out->baseline_p50_ms = out->baseline_p99_ms = NAN;
  out->unit = "";
  out->baseline_name = "";
}

void bench_output_add(bench_output *out, const char *key, double value,
                      bool is_int) {
  if (out->n_fields == BENCH_MAX_FIELDS)
    return;
  out->fields[out->n_fields].key = key;
  out->fields[out->n_fields].value = value;
  out->fields[out->n_fields].is_int = is_int;
  out->n_fields++;
}

static void json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20)
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

static void json_key(const char *key) {
  fputs(", ", stdout);
  json_string(key);
  fputs(": ", stdout);
}

/* A number with `decimals` digits after the point, or null. */
static void json_number(const char *key, double v, int decimals) {
  json_key(key);
  if (isfinite(v))
    printf("%.*f", decimals, v);
  else
    fputs("null", stdout);
}

static void print_result(const bench_scenario *sc, const bench_output *o) {
  double ratio = o->baseline > 0 ? o->value / o->baseline : NAN;

  fputs("{\"scenario\": ", stdout);
  json_string(sc->name);
  /* rates to 0.1; latencies (unit "ms") to the microsecond */
  int decimals = strcmp(o->unit, "ms") == 0 ? 3 : 1;
  json_number("value", o->value, decimals);
  json_key("unit");
  json_string(o->unit);
  json_number("baseline", o->baseline, decimals);
  json_key("baseline_name");
  json_string(o->baseline_name);
  json_number("ratio", ratio, 3);
  json_number("target_ratio", o->target_ratio, 2);
  for (size_t i = 0; i < o->n_fields; i++)
    json_number(o->fields[i].key, o->fields[i].value,
                o->fields[i].is_int ? 0 : 3);
  json_number("seconds", o->seconds, 2);
  json_number("rounds", o->rounds, 0);
  json_number("p50_ms", o->p50_ms, 3);
  json_number("p99_ms", o->p99_ms, 3);
  json_number("baseline_p50_ms", o->baseline_p50_ms, 3);
  json_number("baseline_p99_ms", o->baseline_p99_ms, 3);
  fputs("}\n", stdout);
  fflush(stdout);
}

/* {"scenario": ..., "<key>": msg}: why it failed, or why it was skipped. */
static void print_note(const bench_scenario *sc, const char *key,
                       const char *msg) {
  fputs("{\"scenario\": ", stdout);
  json_string(sc->name);
  json_key(key);
  json_string(msg);
  fputs("}\n", stdout);
  fflush(stdout);
}

/* ------------------------------------------------------------------------
 * Arguments
 * ------------------------------------------------------------------------ */

struct args {
  bench_config cfg;
  const bench_scenario *selected[MAX_SELECTED];
  size_t n_selected;
  bool list;
  bool show_ddl;
};

/* The schema is dropped with CASCADE: refuse names that look like real
 * data, and keep to plain lower-case identifiers. */
static bool schema_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 50 || strcmp(s, "esc") == 0 || strcmp(s, "public") == 0 ||
      strncmp(s, "pg_", 3) == 0 || strcmp(s, "information_schema") == 0)
    return false;
  if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
      return false;
  }
  return true;
}

static void select_scenario(struct args *a, const bench_scenario *sc) {
  for (size_t i = 0; i < a->n_selected; i++)
    if (a->selected[i] == sc)
      return;
  if (a->n_selected < MAX_SELECTED)
    a->selected[a->n_selected++] = sc;
}

/* A group name, "all", or a scenario name. */
static bool select_name(struct args *a, const char *name) {
  bool found = false;
  for (size_t g = 0; g < N_GROUPS; g++) {
    const bench_group *grp = groups[g];
    bool whole = strcmp(name, "all") == 0 || strcmp(name, grp->name) == 0;
    for (size_t i = 0; i < grp->count; i++) {
      if (whole || strcmp(name, grp->scenarios[i].name) == 0) {
        select_scenario(a, &grp->scenarios[i]);
        found = true;
      }
    }
  }
  return found;
}

/* "--opt VALUE" or "--opt=VALUE": *value is set and *i advanced. */
static bool take_value(int argc, char **argv, int *i, const char *opt,
                       const char **value) {
  size_t n = strlen(opt);
  const char *arg = argv[*i];
  if (strncmp(arg, opt, n) != 0)
    return false;
  if (arg[n] == '=') {
    *value = arg + n + 1;
    return true;
  }
  if (arg[n] != '\0')
    return false;
  if (*i + 1 >= argc) {
    fprintf(stderr, "esc-bench: %s needs a value\n", opt);
    exit(EXIT_USAGE);
  }
  *value = argv[++*i];
  return true;
}

static double parse_number(const char *opt, const char *s, double lo,
                           double hi) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || !(v >= lo && v <= hi)) {
    fprintf(stderr, "esc-bench: %s wants a number in [%g, %g], not '%s'\n", opt,
            lo, hi, s);
    exit(EXIT_USAGE);
  }
  return v;
}

static void parse_option(struct args *a, int argc, char **argv, int *i) {
  const char *v;
  const char *arg = argv[*i];
  if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
    usage(stdout);
    exit(0);
  } else if (strcmp(arg, "--list") == 0) {
    a->list = true;
  } else if (strcmp(arg, "--show-ddl") == 0) {
    a->show_ddl = true;
  } else if (strcmp(arg, "--no-checkpoint") == 0) {
    a->cfg.checkpoint = false;
  } else if (strcmp(arg, "--refill") == 0) {
    a->cfg.refill = true;
  } else if (take_value(argc, argv, i, "--pg", &v)) {
    a->cfg.pg_url = v;
  } else if (take_value(argc, argv, i, "--redis", &v)) {
    a->cfg.redis_url = v;
  } else if (take_value(argc, argv, i, "--schema", &v)) {
    a->cfg.schema = v;
  } else if (take_value(argc, argv, i, "--seconds", &v)) {
    a->cfg.seconds = parse_number("--seconds", v, 0.1, 86400);
  } else if (take_value(argc, argv, i, "--events", &v)) {
    a->cfg.events = (int64_t)parse_number("--events", v, 1, 100000000);
  } else if (take_value(argc, argv, i, "--rounds", &v)) {
    a->cfg.rounds = (int)parse_number("--rounds", v, 1, 100);
  } else {
    fprintf(stderr, "esc-bench: unknown option %s (try --help)\n", arg);
    exit(EXIT_USAGE);
  }
}

static void parse_args(struct args *a, int argc, char **argv) {
  memset(a, 0, sizeof(*a));
  a->cfg.schema = "esc_bench";
  a->cfg.seconds = 5.0;
  a->cfg.rounds = 2;
  a->cfg.checkpoint = true;

  for (int i = 1; i < argc; i++) {
    if (argv[i][0] == '-') {
      parse_option(a, argc, argv, &i);
    } else if (!select_name(a, argv[i])) {
      fprintf(stderr, "esc-bench: no scenario or group '%s' (try --list)\n",
              argv[i]);
      exit(EXIT_USAGE);
    }
  }
  if (!schema_ok(a->cfg.schema)) {
    fprintf(stderr,
            "esc-bench: --schema must be a lower-case identifier of at most "
            "50 characters, not esc, public or pg_*: '%s'\n",
            a->cfg.schema);
    exit(EXIT_USAGE);
  }
  if (!a->cfg.pg_url)
    a->cfg.pg_url = getenv("ESC_PG_URL");
  if (!a->cfg.pg_url || !*a->cfg.pg_url)
    a->cfg.pg_url = esc_default_pg_url();
  if (!a->cfg.redis_url)
    a->cfg.redis_url = getenv("ESC_REDIS_URL");
}

/* ------------------------------------------------------------------------
 * Main
 * ------------------------------------------------------------------------ */

static int show_ddl(const bench_config *cfg) {
  char name[128], ddl[2048];
  /* schema_ok() allows only names that need no quoting */
  snprintf(name, sizeof(name), "%s_raw", cfg->schema);
  if (bench_raw_ddl(name, ddl, sizeof(ddl)) != 0)
    return 1;
  fputs(ddl, stdout);
  return 0;
}

static int run_all(const struct args *a) {
  char err[BENCH_ERR_MAX];
  int failures = 0;
  PGconn *conn = bench_pg_connect(&a->cfg, err, sizeof(err));

  if (!conn) {
    bench_log("%s", err);
    return EXIT_CONN;
  }
  bench_pg_describe(conn);
  /* Held (with conn) until every scenario has run. */
  if (bench_pg_lock_schema(&a->cfg, conn, err, sizeof(err)) != 0) {
    bench_log("%s", err);
    PQfinish(conn);
    return 1;
  }

  for (size_t i = 0; i < a->n_selected; i++) {
    const bench_scenario *sc = a->selected[i];
    bench_output out;
    bench_output_init(&out);
    bench_log("%s: %s (%.1f s per side, %d rounds)", sc->name, sc->summary,
              a->cfg.seconds, a->cfg.rounds);
    int rc = sc->run(&a->cfg, sc, &out, err, sizeof(err));
    if (rc == BENCH_SKIPPED) {
      bench_log("%s skipped: %s", sc->name, err);
      print_note(sc, "skipped", err);
      continue;
    }
    if (rc != 0) {
      bench_log("%s failed: %s", sc->name, err);
      print_note(sc, "error", err);
      failures++;
      continue;
    }
    print_result(sc, &out);
  }
  PQfinish(conn);
  return failures ? 1 : 0;
}

int main(int argc, char **argv) {
  struct args a;
  parse_args(&a, argc, argv);

  if (a.list) {
    list_scenarios();
    return 0;
  }
  if (a.show_ddl)
    return show_ddl(&a.cfg);
  if (a.n_selected == 0)
    select_name(&a, "all"); /* no scenario: every group */
  return run_all(&a);
}
