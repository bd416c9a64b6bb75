/*
 * Arbitrary bytes from "Redis": parsed as RESP by hiredis's own reader,
 * then every reply handed to each way the query layer reads one
 * (queries/src/reply.h). Nothing may crash, read out of bounds or leak,
 * whatever the server sent.
 */
#include "fuzz.h"

#include <stdlib.h>

#include <hiredis/hiredis.h>

#include "reply.h"

static void interpret(const redisReply *r) {
  const redisReply *inner = NULL;
  esc_error err = ESC_ERROR_INIT;
  char value[32];
  bool exists, yes;
  esc_query_items items = ESC_QUERY_ITEMS_INIT;
  esc_position token = {5, 5};
  if (esc__query_unwrap(r, "fuzz", &inner, &err) == ESC_OK) {
    esc__query_value(inner, "fuzz", value, sizeof value, &exists, &err);
    esc__query_items(inner, "fuzz", 2, false, &items, &err);
    esc_query_items_release(&items);
    esc__query_items(inner, "fuzz", 2, true, &items, &err);
    esc_query_items_release(&items);
    esc__query_items(inner, "fuzz", 1, false, &items, &err);
    esc_query_items_release(&items);
  }
  esc__query_passed(r, "fuzz", 0, &token, &yes, &err);
  esc__query_passed(r, "fuzz", 2, &token, &yes, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  redisReader *reader = redisReaderCreate();
  if (!reader)
    return 0;
  if (redisReaderFeed(reader, (const char *)data, size) == REDIS_OK) {
    void *reply = NULL;
    /* Every complete reply in the bytes, until the reader stops. */
    for (int i = 0; i < 64; i++) {
      if (redisReaderGetReply(reader, &reply) != REDIS_OK || !reply)
        break;
      interpret(reply);
      freeReplyObject(reply);
      reply = NULL;
    }
  }
  redisReaderFree(reader);
  return 0;
}
