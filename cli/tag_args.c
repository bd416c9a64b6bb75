/* --tag, --condition-tag, --condition-type and --after, shared by
 * esc append and esc read. */
#include "cli.h"

bool cli_tag_arg(const cli_ctx *ctx, const char *opt, const char *arg,
                 bool is_type, const char **list, size_t *n) {
  esc_error err = ESC_ERROR_INIT;
  if (*n == ESC_TAGS_MAX) {
    cli_usage(ctx, "%s: at most %d of them", opt, ESC_TAGS_MAX);
    return false;
  }
  if (is_type ? !esc_type_name_valid(arg, &err) : !esc_tag_valid(arg, &err)) {
    cli_usage(ctx, "%s: %s", opt, err.msg);
    return false;
  }
  list[(*n)++] = arg;
  return true;
}

/* The CALL parsers of the tag options (options.h): each adds its
 * value to one list of the cli_tagging it is given. */
static int add(const cli_ctx *ctx, const char *option, const char *value,
               bool is_type, const char **list, size_t *n) {
  return cli_tag_arg(ctx, option, value, is_type, list, n) ? CLI_CONTINUE
                                                           : CLI_EXIT_USAGE;
}

int cli_opt_tag(cli_ctx *ctx, const char *option, const char *value,
                void *target) {
  cli_tagging *t = target;
  return add(ctx, option, value, false, t->tags, &t->ntags);
}

int cli_opt_cond_tag(cli_ctx *ctx, const char *option, const char *value,
                     void *target) {
  cli_tagging *t = target;
  return add(ctx, option, value, false, t->cond_tags, &t->ncond_tags);
}

int cli_opt_cond_type(cli_ctx *ctx, const char *option, const char *value,
                      void *target) {
  cli_tagging *t = target;
  return add(ctx, option, value, true, t->cond_types, &t->ncond_types);
}

bool cli_tag_condition(const cli_ctx *ctx, cli_tagging *t,
                       const esc_tag_query **out) {
  *out = NULL;
  if (!t->after && t->ncond_tags == 0 && t->ncond_types == 0)
    return true;
  if (!t->after || t->ncond_tags == 0) {
    cli_usage(ctx, "a condition is --condition-tag (at least one, any "
                   "--condition-type) with --after TOKEN from esc read "
                   "--tag ... --json");
    return false;
  }
  t->item = (esc_tag_query_item){t->cond_tags, t->ncond_tags, t->cond_types,
                                 t->ncond_types};
  t->query = (esc_tag_query){&t->item, 1};
  *out = &t->query;
  return true;
}
