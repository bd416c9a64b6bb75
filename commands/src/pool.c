/*
 * A pool of stores: an esc_store is one connection and not thread-safe, so
 * threads that execute commands borrow one for the duration of a call.
 */
#include "command_int.h"

#include <pthread.h>
#include <stdlib.h>

struct esc_store_pool {
  pthread_mutex_t lock;
  pthread_cond_t freed;
  esc_store **all;
  esc_store **idle; /* a stack of free stores */
  size_t size;
  size_t idle_count;
};

esc_store_pool *esc_store_pool_new(const char *conninfo,
                                   const esc_store_options *opts, size_t size,
                                   esc_error *err) {
  if (size == 0) {
    esc_error_set(err, ESC_EINVAL, "store pool: size must be at least 1");
    return NULL;
  }
  esc_store_pool *p = calloc(1, sizeof *p);
  if (p) {
    p->all = calloc(size, sizeof *p->all);
    p->idle = calloc(size, sizeof *p->idle);
  }
  if (!p || !p->all || !p->idle) {
    esc_error_set(err, ESC_ENOMEM, "store pool: out of memory");
    goto fail;
  }
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->freed, NULL);
  for (; p->size < size; p->size++) {
    p->all[p->size] = esc_store_open(conninfo, opts, err);
    if (!p->all[p->size])
      goto fail;
    p->idle[p->idle_count++] = p->all[p->size];
  }
  return p;

fail:
  esc_store_pool_free(p);
  return NULL;
}

void esc_store_pool_free(esc_store_pool *pool) {
  if (!pool)
    return;
  for (size_t i = 0; i < pool->size; i++)
    esc_store_free(pool->all[i]);
  if (pool->all) {
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->freed);
  }
  free(pool->all);
  free(pool->idle);
  free(pool);
}

esc_store *esc_store_pool_acquire(esc_store_pool *pool) {
  pthread_mutex_lock(&pool->lock);
  while (pool->idle_count == 0)
    pthread_cond_wait(&pool->freed, &pool->lock);
  esc_store *st = pool->idle[--pool->idle_count];
  pthread_mutex_unlock(&pool->lock);
  return st;
}

void esc_store_pool_release(esc_store_pool *pool, esc_store *store) {
  pthread_mutex_lock(&pool->lock);
  pool->idle[pool->idle_count++] = store;
  pthread_cond_signal(&pool->freed);
  pthread_mutex_unlock(&pool->lock);
}

esc_status esc_execute_pooled(esc_store_pool *pool, const esc_decider *decider,
                              const char *stream_id, const void *command,
                              const esc_command_options *opts,
                              esc_command_result *result, esc_error *err) {
  esc_store *st = esc_store_pool_acquire(pool);
  esc_status rc =
      esc_execute(st, decider, stream_id, command, opts, result, err);
  esc_store_pool_release(pool, st);
  return rc;
}
