/*
 * Arbitrary lines as a soak history or follower output (tests/soak): the
 * files a killed process leaves half-written are read back by the
 * checker, so its parsers must refuse garbage cleanly.
 */
#include "fuzz.h"

#include <stdlib.h>

#include "history.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_cstring(data, size);
  char why[128];
  soak_history h = {0};
  soak_history_add_text(&h, text, why, sizeof why);
  soak_history_release(&h);
  soak_deliveries d = {0};
  soak_deliveries_add_text(&d, text, why, sizeof why);
  soak_deliveries_release(&d);
  soak_model m;
  if (soak_model_parse(text, &m, why, sizeof why))
    soak_model_release(&m);
  soak_stream_version sv;
  soak_stream_version_parse(text, &sv, why, sizeof why);
  free(text);
  return 0;
}
