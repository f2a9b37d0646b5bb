#include "client/receive_buffer.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <new>
#include <utility>

#include "protocol/huge_pages.hpp"

namespace mrd::client {
namespace {

std::size_t whole_pages(std::size_t bytes) {
  static const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

}  // namespace

ReceiveBuffer::~ReceiveBuffer() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

ReceiveBuffer::ReceiveBuffer(ReceiveBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

ReceiveBuffer& ReceiveBuffer::operator=(ReceiveBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) ::munmap(data_, size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void ReceiveBuffer::grow(std::size_t bytes) {
  if (bytes <= size_) return;
  const auto size = whole_pages(bytes);
  void* grown = data_ == nullptr ? ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                                 : ::mremap(data_, size_, size, MREMAP_MAYMOVE);
  if (grown == MAP_FAILED) throw std::bad_alloc();
  data_ = static_cast<char*>(grown);
  size_ = size;
  protocol::prefer_huge_pages(data_, size_);
}

}  // namespace mrd::client
