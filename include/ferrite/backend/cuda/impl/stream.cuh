#pragma once
// cuda::Stream::Impl (backend/cuda/stream.hpp) and what every kernel family needs to launch on a
// Stream: its raw handles, the current-device guard, the launch geometry (nvcc only). Holds no
// non-inline definitions, so every CUDA unit may include it; Stream's member functions are defined
// in impl/runtime.cuh (src/cuda_runtime.cu).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/impl/handles.cuh"
#include "ferrite/backend/cuda/stream.hpp"
#include "ferrite/core/result.hpp"

namespace ferrite::cuda {

struct Stream::Impl {
  // Declared first, destroyed last: ~Stream synchronizes the stream before the members go (the
  // cuBLAS workspace returns to the allocator's cache only after its last use has finished).
  detail::StreamHandle stream;
  detail::Blas blas;             // bound to `stream`, with its own workspace
  bool blas_tf32 = false;        // the handle's current math mode (use_tf32 switches it per call)
  std::vector<detail::Event> events;  // reused by record_event after clear_events
  std::size_t events_used = 0;
  detail::GraphExec graph;       // the last captured graph
  bool capturing = false;
};

namespace detail {

inline cudaStream_t raw_stream(const Stream& s) noexcept { return s.impl()->stream.get(); }

// Makes the stream's device current for the calling thread for the duration of one entry point
// (the runtime launches on the current device; a stream of another device would be an error).
inline Result<DeviceGuard> enter(const Stream& s) { return DeviceGuard::make(s.device()); }

// The handle's math mode for one cuBLAS call: TF32 tensor cores (tf32) or full FP32. A property of
// the handle read at call time, switched only when it changes, so a run with one setting costs
// nothing per call (and a captured graph keeps each call's kernel).
inline Status use_tf32(Stream::Impl& t, bool tf32) {
  if (t.blas_tf32 == tf32) return ok_status();
  FE_TRY(t.blas.set_tf32(tf32));
  t.blas_tf32 = tf32;
  return ok_status();
}

// `step`: the optional device step counter of kernels.hpp; entry *step of a per-step table, else 0.
__device__ inline std::int64_t step_index(const std::int64_t* step) { return step ? *step : 0; }

inline constexpr int kBlock = 256;
inline constexpr std::int64_t kMaxGrid = std::int64_t{1} << 20;  // grid-stride loops beyond this many blocks

// Blocks for n items at one item per thread, capped (the kernels loop with a grid stride).
inline unsigned grid_for(std::int64_t n, int block = kBlock) {
  const std::int64_t blocks = (n + block - 1) / block;
  return static_cast<unsigned>(std::clamp<std::int64_t>(blocks, 1, kMaxGrid));
}

}  // namespace detail
}  // namespace ferrite::cuda
