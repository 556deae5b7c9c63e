#pragma once
// Launch geometry of the kernels on planar images [C, H, W] of one sample (nvcc only; included by
// impl/conv.cuh, impl/norm.cuh and impl/complex.cuh). No non-inline definitions.
//
// A per-channel kernel runs on grid (ceil(n / 256), min(rows, 65535)): a thread's in-plane index
// comes from blockIdx.x (32-bit: per-plane sizes up to INT_MAX, so the divisions by the width are
// 32-bit), its row (channel, im2col row, ...) from blockIdx.y, and a warp touches 32 consecutive
// floats of one plane. Rows beyond CUDA's gridDim.y limit are covered by a loop with stride
// gridDim.y; offsets of whole planes are 64-bit.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>

#include "ferrite/backend/cuda/impl/stream.cuh"
#include "ferrite/core/result.hpp"

namespace ferrite::cuda::detail {

inline constexpr std::int64_t kMaxGridY = 65535;  // CUDA's limit on gridDim.y

// The thread's index along x (64-bit, so that it cannot wrap before the bounds check).
__device__ __forceinline__ std::int64_t thread_x() {
  return std::int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
}

// n items per row (kBlock threads per block along x), `rows` rows (>= 1).
inline dim3 planar_grid(std::int64_t n, std::int64_t rows) {
  return dim3(static_cast<unsigned>((n + kBlock - 1) / kBlock),
              static_cast<unsigned>(std::clamp<std::int64_t>(rows, 1, kMaxGridY)));
}

// The kernels' in-plane indices are 32-bit: `n` floats of one plane (or tiles of one image) at most
// INT_MAX, else unsupported naming the op.
inline Status check_plane(const char* op, const char* what, std::int64_t n) {
  if (n <= INT_MAX) return ok_status();
  return make_error(ErrorCode::unsupported, op,
                    std::string(what) + " of " + std::to_string(n) +
                        " exceeds the kernels' 32-bit in-plane indexing (max " + std::to_string(INT_MAX) + ")");
}

}  // namespace ferrite::cuda::detail
