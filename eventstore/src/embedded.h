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
/* The Lua scripts of projections/src (apply, switch). */
extern const struct esc__embedded esc__lua_scripts[];
#endif
