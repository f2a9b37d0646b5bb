// prefer_huge_pages: a hint that a big, fresh block of memory be backed by 2 MiB pages.
//
// Every fresh 4 KiB page costs a fault when it is first touched, and on a virtual machine that
// fault is dear: filling 64 MiB of fresh pages took about 200 ms here, against 6-33 ms with huge
// pages (bench/fresh_pages.cpp; docs/benchmarks.md, "Fresh pages"). A 2000 x 2000 matrix is 32 MiB.
// The hint only helps memory not touched yet, and the kernel may ignore it (transparent huge pages
// off): nothing depends on it but speed.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>

namespace mrd::protocol {

/// Smaller blocks hold no whole huge page, so they are not worth a system call.
inline constexpr std::size_t kHugePageBytes = 2 << 20;

/// Asks for huge pages under the whole pages of [data, data + bytes), if it is big enough.
inline void prefer_huge_pages(void* data, std::size_t bytes) {
  if (bytes < kHugePageBytes) return;
  constexpr std::uintptr_t kPage = 4096;
  const auto begin = (reinterpret_cast<std::uintptr_t>(data) + kPage - 1) & ~(kPage - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(data) + bytes) & ~(kPage - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

/// Reserves room for `n` elements in `container` (a std::vector or std::string about to be
/// filled), asking for huge pages under it before anything touches it.
template <class Container>
void reserve_in_huge_pages(Container& container, std::size_t n) {
  container.reserve(n);
  prefer_huge_pages(container.data(), container.capacity() * sizeof(*container.data()));
}

}  // namespace mrd::protocol
