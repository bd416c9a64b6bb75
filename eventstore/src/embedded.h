/* A file compiled into the library (see cmake/EmbedFiles.cmake). */
#ifndef ESC_EMBEDDED_H
#define ESC_EMBEDDED_H
#include <stddef.h>
struct esc__embedded {
  const char *name;
  const char *data;
  size_t len;
};
extern const struct esc__embedded esc__migrations[];
#endif
