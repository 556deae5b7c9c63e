#pragma once
// Device memory: the caching allocator's statistics and an owning device buffer. No CUDA types here.
//
// Every device allocation of ferrite goes through one caching allocator per GPU (like PyTorch's):
// a freed block is kept and handed out again for a request of about its size, so a training loop
// that allocates the same buffers repeatedly calls cudaMalloc only once per buffer. Blocks are
// rounded up (512 bytes below 1 MiB, 2 MiB above) and are reused only after their owner has
// synchronized its stream (every owner in ferrite frees after a sync).
//
//   allocated  bytes in blocks handed out and not yet freed (what the program holds)
//   reserved   bytes obtained from cudaMalloc and not yet returned (allocated + cached)
//   peak_*     maxima since start or since reset_peak_memory_stats()
// "Peak device memory" in the benchmark JSON is peak_allocated, as torch.cuda.max_memory_allocated.
//
// Definitions: impl/runtime.cuh (src/cuda_runtime.cu, library ferrite_cuda). Without
// FERRITE_WITH_CUDA every function here returns device_unavailable, except copy_blocking and
// memset_blocking, which are declared but defined only with the backend (the op layer reaches them
// through FE_DETAIL_CUDA, core/macros.hpp, which never calls them in a build without it).
#include <cstdint>
#include <utility>

#include "ferrite/backend/cuda/runtime.hpp"
#include "ferrite/core/result.hpp"

namespace ferrite::cuda {

struct MemoryStats {
  std::int64_t allocated_bytes = 0;
  std::int64_t reserved_bytes = 0;
  std::int64_t peak_allocated_bytes = 0;
  std::int64_t peak_reserved_bytes = 0;
  std::int64_t allocations = 0;     // allocation requests served (cumulative, cache hits included)
  std::int64_t device_mallocs = 0;  // cudaMalloc calls that succeeded (cumulative)
  std::int64_t device_frees = 0;    // cudaFree calls (empty_cache, or a retry after out-of-memory)
  std::int64_t device_free_bytes = 0;   // cudaMemGetInfo at the time of the query
  std::int64_t device_total_bytes = 0;
};

inline constexpr double bytes_to_mib(std::int64_t bytes) noexcept {
  return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

// An owning, move-only block of device memory from the caching allocator of GPU `device`. Its
// address is opaque to host code (pass it to ferrite's CUDA entry points or your own kernels).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(DeviceBuffer&& other) noexcept { swap(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      reset();
      swap(other);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { reset(); }

  // `bytes` on GPU `device`; out_of_memory names the bytes requested and free, and what the
  // allocator holds. Zero bytes gives an empty buffer.
  static Result<DeviceBuffer> allocate(std::int64_t bytes, int device = 0);

  // Blocking copies of the first `bytes` bytes; invalid_argument when `bytes` exceeds the size.
  Status copy_from_host(const void* src, std::int64_t bytes);
  Status copy_to_host(void* dst, std::int64_t bytes) const;

  void* data() const noexcept { return data_; }
  std::int64_t bytes() const noexcept { return bytes_; }
  int device() const noexcept { return device_; }
  bool empty() const noexcept { return data_ == nullptr; }
  template <class T>
  T* as() const noexcept { return static_cast<T*>(data_); }

  // Returns the block to the cache now.
  void reset() noexcept;

  void swap(DeviceBuffer& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(bytes_, o.bytes_);
    std::swap(device_, o.device_);
  }

 private:
  void* data_ = nullptr;
  std::int64_t bytes_ = 0;
  int device_ = 0;
};

// Blocking copy of `bytes` bytes (cudaMemcpy with GPU `device` current): each side is device memory
// of ferrite's or host memory (pageable or pinned) as the flags say. Returns when the bytes have
// landed. Not ordered with any cuda::Stream: synchronize the streams that use either side first.
Status copy_blocking(void* dst, bool dst_on_device, const void* src, bool src_on_device, std::int64_t bytes,
                     int device);
// Blocking cudaMemset of `bytes` bytes of device memory on GPU `device` to the byte `value`.
Status memset_blocking(void* dst, int value, std::int64_t bytes, int device);

#if defined(FERRITE_WITH_CUDA)
Result<MemoryStats> memory_stats(int device = 0);
Status reset_peak_memory_stats(int device = 0);  // peaks := current values
Status empty_cache(int device = 0);              // cudaFree every cached (unallocated) block

#else
inline Result<MemoryStats> memory_stats(int device = 0) {
  return detail::no_cuda_backend("cuda::memory_stats", device);
}
inline Status reset_peak_memory_stats(int device = 0) {
  return detail::no_cuda_backend("cuda::reset_peak_memory_stats", device);
}
inline Status empty_cache(int device = 0) { return detail::no_cuda_backend("cuda::empty_cache", device); }

inline Result<DeviceBuffer> DeviceBuffer::allocate(std::int64_t, int device) {
  return detail::no_cuda_backend("cuda::DeviceBuffer::allocate", device);
}
inline Status DeviceBuffer::copy_from_host(const void*, std::int64_t) {
  return detail::no_cuda_backend("cuda::DeviceBuffer::copy_from_host", device_);
}
inline Status DeviceBuffer::copy_to_host(void*, std::int64_t) const {
  return detail::no_cuda_backend("cuda::DeviceBuffer::copy_to_host", device_);
}
inline void DeviceBuffer::reset() noexcept {  // nothing can have been allocated
  data_ = nullptr;
  bytes_ = 0;
}
#endif

}  // namespace ferrite::cuda
