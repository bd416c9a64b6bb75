/*
 * <esc_internal/embedded.h> - a file compiled into the library
 * (cmake/EmbedFiles.cmake): the store's migrations, the projections' Lua
 * scripts. Each module declares its own table. Internal: not installed.
 */
#ifndef ESC_INTERNAL_EMBEDDED_H
#define ESC_INTERNAL_EMBEDDED_H
#include <stddef.h>
struct esc__embedded {
  const char *name;
  const char *data;
  size_t len;
};
#endif
