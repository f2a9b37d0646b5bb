// ReceiveBuffer: where a connection's replies arrive, grown as their bytes come.
//
// An anonymous mapping, grown with mremap: growing it moves no bytes and touches no page again,
// so each page of a big reply is touched once, by the bytes that arrive in it. From 2 MiB on it
// asks the kernel for huge pages (MADV_HUGEPAGE): a fresh 4 KiB page costs a fault, and on a
// virtual machine the faults of a 32 MiB product can cost more than receiving its bytes
// (docs/benchmarks.md, "Fresh pages"). A std::vector would zero-fill what it grows, then copy
// all of it into a new block at each doubling.
#pragma once

#include <cstddef>

namespace mrd::client {

class ReceiveBuffer {
 public:
  ReceiveBuffer() = default;
  ~ReceiveBuffer();
  ReceiveBuffer(ReceiveBuffer&& other) noexcept;
  ReceiveBuffer& operator=(ReceiveBuffer&& other) noexcept;
  ReceiveBuffer(const ReceiveBuffer&) = delete;
  ReceiveBuffer& operator=(const ReceiveBuffer&) = delete;

  char* data() { return data_; }
  const char* data() const { return data_; }
  /// Bytes it can hold (whole pages); none before the first grow().
  std::size_t size() const { return size_; }

  /// Makes room for at least `bytes`, keeping what it holds. Throws std::bad_alloc.
  void grow(std::size_t bytes);

 private:
  char* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace mrd::client
