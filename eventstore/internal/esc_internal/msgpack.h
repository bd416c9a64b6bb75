/*
 * <esc_internal/msgpack.h> - msgpack helpers the store's codecs and the
 * events module's declared fields share. Internal: not installed.
 */
#ifndef ESC_INTERNAL_MSGPACK_H
#define ESC_INTERNAL_MSGPACK_H

#include <msgpack.h>

/* What a value of type t is, for messages: "a string", "nil", "a map". */
const char *esc__msgpack_type_name(msgpack_object_type t);

#endif
