#pragma once
// The caching device allocator (one per GPU) and pinned host buffers (nvcc only). Policy and
// statistics: see backend/cuda/memory.hpp. Only impl/runtime.cuh (src/cuda_runtime.cu) includes it:
// every other unit allocates through cuda::DeviceBuffer.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/memory.hpp"
#include "ferrite/core/result.hpp"

namespace ferrite::cuda::detail {

inline constexpr std::size_t kSmallBlock = 512;               // granularity below 1 MiB
inline constexpr std::size_t kSmallLimit = std::size_t{1} << 20;
inline constexpr std::size_t kLargeBlock = std::size_t{2} << 20;  // granularity above

inline std::size_t round_block_size(std::size_t bytes) noexcept {
  if (bytes <= kSmallLimit) return bytes < kSmallBlock ? kSmallBlock : (bytes + kSmallBlock - 1) / kSmallBlock * kSmallBlock;
  return (bytes + kLargeBlock - 1) / kLargeBlock * kLargeBlock;
}

inline std::string bytes_text(std::int64_t bytes) {
  return std::to_string(bytes) + " bytes (" + std::to_string(bytes_to_mib(bytes)).substr(0, 10) + " MiB)";
}

class CachingAllocator {
 public:
  explicit CachingAllocator(int device) : device_(device) {}

  Result<void*> allocate(std::int64_t requested) {
    if (requested < 0)
      return make_error(ErrorCode::invalid_argument, "cuda::allocate",
                        "negative size " + std::to_string(requested) + " requested on cuda:" + std::to_string(device_));
    if (requested == 0) return static_cast<void*>(nullptr);
    if (static_cast<std::uint64_t>(requested) > std::numeric_limits<std::size_t>::max() / 2)
      return out_of_memory(requested, requested, "size out of range");
    const std::size_t size = round_block_size(static_cast<std::size_t>(requested));
    std::lock_guard<std::mutex> lock(mutex_);
    // Best fit among cached blocks, accepting at most 25% more than asked (a large block must not
    // be pinned down by a small request).
    auto it = free_blocks_.lower_bound(size);
    if (it != free_blocks_.end() && it->first - size <= size / 4) {
      void* ptr = it->second;
      const std::size_t block = it->first;
      free_blocks_.erase(it);
      live_[ptr] = block;
      note_allocated(block);
      return ptr;
    }
    FE_TRY_ASSIGN(auto guard, DeviceGuard::make(device_));
    void* ptr = nullptr;
    cudaError_t status = cudaMalloc(&ptr, size);
    if (status == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      release_cached_locked();  // give the cache back to the driver and try once more
      status = cudaMalloc(&ptr, size);
    }
    if (status == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      return out_of_memory(requested, static_cast<std::int64_t>(size), cudaGetErrorString(status));
    }
    FE_TRY(check_cuda("cudaMalloc(" + std::to_string(size) + " bytes on cuda:" + std::to_string(device_) + ")", status));
    live_[ptr] = size;
    stats_.device_mallocs += 1;
    stats_.reserved_bytes += static_cast<std::int64_t>(size);
    stats_.peak_reserved_bytes = std::max(stats_.peak_reserved_bytes, stats_.reserved_bytes);
    note_allocated(size);
    return ptr;
  }

  // Back to the cache; the caller has synchronized the stream that last used the block.
  void release(void* ptr) noexcept {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(ptr);
    if (it == live_.end()) return;  // not ours: a programmer bug, ignored rather than corrupting the cache
    stats_.allocated_bytes -= static_cast<std::int64_t>(it->second);
    free_blocks_.emplace(it->second, ptr);
    live_.erase(it);
  }

  Status empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    FE_TRY_ASSIGN(auto guard, DeviceGuard::make(device_));
    release_cached_locked();
    return ok_status();
  }

  MemoryStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  void reset_peaks() {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_allocated_bytes = stats_.allocated_bytes;
    stats_.peak_reserved_bytes = stats_.reserved_bytes;
  }

 private:
  void note_allocated(std::size_t block) {
    stats_.allocations += 1;
    stats_.allocated_bytes += static_cast<std::int64_t>(block);
    stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  }

  // Caller holds the mutex and has made the device current.
  void release_cached_locked() noexcept {
    for (auto& [size, ptr] : free_blocks_) {
      (void)cudaFree(ptr);
      stats_.device_frees += 1;
      stats_.reserved_bytes -= static_cast<std::int64_t>(size);
    }
    free_blocks_.clear();
  }

  Error out_of_memory(std::int64_t requested, std::int64_t rounded, const std::string& why) {
    std::size_t free_bytes = 0, total_bytes = 0;
    const bool known = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess;
    if (!known) (void)cudaGetLastError();
    return make_error(
        ErrorCode::out_of_memory, "cuda::allocate",
        "cannot allocate " + bytes_text(requested) + " on cuda:" + std::to_string(device_) +
            (rounded != requested ? " (rounded to " + std::to_string(rounded) + ")" : std::string()) + ": " + why +
            "; the device has " +
            (known ? bytes_text(static_cast<std::int64_t>(free_bytes)) + " free of " +
                         bytes_text(static_cast<std::int64_t>(total_bytes))
                   : std::string("an unknown amount free")) +
            "; ferrite holds " + bytes_text(stats_.allocated_bytes) + " allocated, " +
            bytes_text(stats_.reserved_bytes) + " reserved");
  }

  int device_;
  std::mutex mutex_;
  std::multimap<std::size_t, void*> free_blocks_;  // cached: block size -> address
  std::unordered_map<void*, std::size_t> live_;    // handed out: address -> block size
  MemoryStats stats_;
};

// One allocator per device, created on first use and never destroyed: blocks may be released from
// static destructors after main, and cudaFree during the runtime's own teardown would fail anyway
// (the driver reclaims everything at exit).
inline Result<CachingAllocator*> allocator_for(int device) {
  static std::mutex mutex;
  static auto* allocators = new std::vector<std::unique_ptr<CachingAllocator>>();
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    count = 0;
  }
  if (device < 0 || device >= count)
    return make_error(ErrorCode::device_unavailable, "cuda::allocate",
                      "cuda:" + std::to_string(device) + " is not available: " +
                          (count ? "the machine has " + std::to_string(count) + " CUDA device(s)"
                                 : std::string("no CUDA device was found")));
  std::lock_guard<std::mutex> lock(mutex);
  if (allocators->size() < static_cast<std::size_t>(count)) allocators->resize(static_cast<std::size_t>(count));
  auto& slot = (*allocators)[static_cast<std::size_t>(device)];
  if (!slot) slot = std::make_unique<CachingAllocator>(device);
  return slot.get();
}

// Page-locked host memory: asynchronous copies from and to it overlap with kernels and run at
// full PCIe / NVLink speed (pageable memory goes through a staging buffer).
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  PinnedBuffer(PinnedBuffer&& o) noexcept : data_(o.data_), bytes_(o.bytes_) {
    o.data_ = nullptr;
    o.bytes_ = 0;
  }
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      data_ = o.data_;
      bytes_ = o.bytes_;
      o.data_ = nullptr;
      o.bytes_ = 0;
    }
    return *this;
  }
  ~PinnedBuffer() { reset(); }

  static Result<PinnedBuffer> allocate(std::int64_t bytes) {
    PinnedBuffer b;
    if (bytes <= 0) return b;
    const cudaError_t status = cudaMallocHost(&b.data_, static_cast<std::size_t>(bytes));
    if (status == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      return make_error(ErrorCode::out_of_memory, "cudaMallocHost",
                        "cannot pin " + bytes_text(bytes) + " of host memory: " + cudaGetErrorString(status));
    }
    FE_TRY(check_cuda("cudaMallocHost(" + std::to_string(bytes) + " bytes)", status));
    b.bytes_ = bytes;
    return b;
  }

  void reset() noexcept {
    if (data_) (void)cudaFreeHost(data_);
    data_ = nullptr;
    bytes_ = 0;
  }
  template <class T>
  T* as() const noexcept { return static_cast<T*>(data_); }
  std::int64_t bytes() const noexcept { return bytes_; }

 private:
  void* data_ = nullptr;
  std::int64_t bytes_ = 0;
};

}  // namespace ferrite::cuda::detail
