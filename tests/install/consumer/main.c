/*
 * Built against an installed esc (through find_package and through
 * pkg-config): calls a few pure functions of <esc/store.h> and checks
 * their results, so headers, library and link dependencies all resolve.
 */
#include <esc/store.h>

#include <stdio.h>
#include <string.h>

static int failures;

static void check(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "consumer: FAILED: %s\n", what);
    failures++;
  }
}

int main(void) {
  const char *conflict = esc_strerror(ESC_ECONFLICT);
  check(conflict != NULL && conflict[0] != '\0',
        "esc_strerror(ESC_ECONFLICT) names the code");

  check(esc_stream_id_valid("order-1", NULL),
        "\"order-1\" is a valid stream id");
  esc_error err = ESC_ERROR_INIT;
  check(!esc_stream_id_valid("$bad", &err),
        "\"$bad\" is not a valid stream id");
  check(err.code != ESC_OK && err.msg[0] != '\0',
        "an invalid stream id fills esc_error with a code and a message");

  esc_uuid a = esc_uuid_v4();
  esc_uuid b = esc_uuid_v4();
  char text[37];
  memset(text, 'x', sizeof text);
  esc_uuid_format(&a, text);
  check(strlen(text) == 36, "esc_uuid_format writes 36 characters");
  check(text[8] == '-' && text[13] == '-' && text[18] == '-' && text[23] == '-',
        "esc_uuid_format writes the 8-4-4-4-12 form");
  check(text[14] == '4', "esc_uuid_v4 makes version 4 ids");
  check(memcmp(a.bytes, b.bytes, sizeof a.bytes) != 0,
        "two esc_uuid_v4 ids differ");

  if (failures) {
    return 1;
  }
  printf("consumer ok: esc_strerror(ESC_ECONFLICT)=\"%s\", uuid %s\n", conflict,
         text);
  return 0;
}
