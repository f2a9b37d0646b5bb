#include "server/idle_trim.hpp"

#include <malloc.h>

namespace mrd::server {

void IdleTrim::keep_freed_memory() {
  // Blocks of any size up to 32 MiB (glibc's own highest threshold) come from the heap, not
  // from mappings of their own, and the heap keeps up to 256 MiB free at its top.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

void IdleTrim::trim_if_due(Clock::time_point now) {
  if (!due_ || now < last_busy_ + kIdleBefore) return;
  malloc_trim(0);  // every arena: the threads' as well as the main heap
  due_ = false;
}

}  // namespace mrd::server
