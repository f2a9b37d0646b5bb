/* mrd plugin SDK, version 1: write your own mapper and reducer, load them with
 * `mrd --plugin FILE.so`, and run them like the built-in jobs.
 *
 * A plugin job counts keys. Its mapper reads one document at a time and emits (key, value) pairs;
 * mrd combines the values of equal keys with the job's combine function, first inside each map
 * task (a combiner), then across tasks in the reduce, and returns the keys sorted by value,
 * largest first (ties by key in byte order), as a "counts" result (docs/protocol.md, section 8).
 *
 * The interface is plain C, so a plugin built by another compiler, or in C, still loads: nothing
 * but pointers, sizes and integers crosses it. docs/plugins.md walks through writing one.
 *
 * Rules a plugin must keep:
 *  - map() may be called for many documents, from one thread at a time per process; it must not
 *    keep pointers to the text after it returns (the bytes belong to mrd).
 *  - combine() must be associative and commutative, and combine(0, x) == x (sum, max, bitwise
 *    or...), because mrd combines in any order, starting from 0.
 *  - Everything runs in mrd's worker processes: a plugin that crashes fails its job with
 *    JOB_CRASHED, not the server.
 */
#ifndef MRD_PLUGIN_H
#define MRD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The SDK version this header describes. mrd refuses a plugin built against another one. */
#define MRD_PLUGIN_SDK_VERSION 1

/* Called by a mapper for each pair it emits. `key` is copied before this returns. */
typedef void (*mrd_emit_fn)(void* emit_context, const char* key, size_t key_size, uint64_t value);

/* One mapper/reducer pair. */
typedef struct mrd_plugin_job {
  const char* mapper;  /* the name a SUBMIT uses, e.g. "log-levels"; at most 64 bytes */
  const char* reducer; /* e.g. "sum" */

  /* Maps one document (a named text). Emits pairs through `emit`. Returns 0, or non-zero after
   * writing a message (NUL-terminated, at most error_size bytes) into `error`: the job then fails
   * with JOB_FAILED and that message. */
  int (*map)(const char* name, size_t name_size, const char* text, size_t text_size,
             mrd_emit_fn emit, void* emit_context, char* error, size_t error_size);

  /* Combines two values of the same key. */
  uint64_t (*combine)(uint64_t a, uint64_t b);
} mrd_plugin_job;

/* What a plugin exports: its SDK version and its jobs. The two functions below are the only
 * symbols mrd looks up; MRD_PLUGIN_EXPORT makes them visible. */
#define MRD_PLUGIN_EXPORT __attribute__((visibility("default")))

/* Returns MRD_PLUGIN_SDK_VERSION, as the plugin was compiled. */
typedef uint32_t (*mrd_plugin_sdk_version_fn)(void);
/* Returns the plugin's jobs and sets *count to how many there are. The array must stay valid
 * for the life of the process (a static array). */
typedef const mrd_plugin_job* (*mrd_plugin_jobs_fn)(size_t* count);

#define MRD_PLUGIN_SDK_VERSION_SYMBOL "mrd_plugin_sdk_version"
#define MRD_PLUGIN_JOBS_SYMBOL "mrd_plugin_jobs"

#ifdef __cplusplus
}
#endif

#endif /* MRD_PLUGIN_H */
