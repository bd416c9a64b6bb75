/*
 * fuzz.h - every fuzz target is one libFuzzer entry point over bytes esc
 * did not produce (docs/fuzzing.md). Built with clang and -DESC_FUZZ=ON it
 * links libFuzzer; otherwise replay.c drives it over its seed corpus and
 * seeded mutations of it, as a unit test under the sanitizers.
 */
#ifndef ESC_FUZZ_H
#define ESC_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated malloc'ed copy, for parsers of C strings; aborts when
 * out of memory (a fuzz target has no one to report to). */
char *fuzz_cstring(const uint8_t *data, size_t size);

#endif
