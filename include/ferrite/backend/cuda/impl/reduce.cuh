#pragma once
// kernels::column_sums (backend/cuda/kernels.hpp), plain or fused with the ReLU mask: the bias
// gradient of Linear; kernels::sum_of_squares and clip_by_norm (gradient clipping by global norm)
// (nvcc only; included by src/cuda_reduce.cu alone). CPU oracle:
// cpu::column_sums (backend/cpu/nn_ops.hpp) and, for the mask, cpu::relu_backward.
//
// Determinism: no atomics. Block (32, 8) covers 32 columns: thread (tx, ty) adds rows ty, ty + 8,
// ty + 16, ... of column tx in that order (__fadd_rn, never contracted), then thread ty = 0 adds
// the 8 partial sums in index order; accumulate adds the finished sum to out (out + s, as the CPU).
// The order depends on the sizes alone, so runs are bit-identical; against the CPU (rows added
// 0..B-1) the sums differ by float rounding only.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/impl/stream.cuh"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/core/result.hpp"

namespace ferrite::cuda::kernels {

namespace {

// One block per 32 columns, 32 row lanes (1024 threads); each lane keeps 4 partial sums (rows
// lane, lane+32, lane+64, lane+96, then every 128th) so that 4 loads are in flight, and the lanes
// are added in lane order: a fixed order, the same on every run. (8 lanes and one sum per lane, the
// first version, took ~100 us at batch 4,096: 512 dependent loads per thread on 4 multiprocessors.)
inline constexpr int kSumCols = 32, kSumRows = 32, kSumIlp = 4;

// g = x (kRelu = false) or g = x * (y > 0) (kRelu = true; then g is also stored to masked when it is
// not null; masked may alias x: each element is read and written by the same thread).
template <bool kRelu>
__global__ void column_sums_kernel(const float* x, i64 ldx, i64 rows, i64 cols, float* __restrict__ out,
                                   bool accumulate, const float* __restrict__ y, i64 ldy, float* masked, i64 ldm) {
  __shared__ float partial[kSumRows][kSumCols + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const i64 j = blockIdx.x * i64{kSumCols} + tx;
  auto term = [&](i64 i) {
    float g = x[i * ldx + j];
    if constexpr (kRelu) {
      g = y[i * ldy + j] > 0.f ? g : 0.f;
      if (masked) masked[i * ldm + j] = g;
    }
    return g;
  };
  float acc = 0.f;
  if (j < cols) {
    float a[kSumIlp] = {0.f, 0.f, 0.f, 0.f};
    i64 i = ty;
    for (; i + (kSumIlp - 1) * kSumRows < rows; i += kSumIlp * kSumRows) {
#pragma unroll
      for (int k = 0; k < kSumIlp; ++k) a[k] = __fadd_rn(a[k], term(i + k * kSumRows));
    }
    for (; i < rows; i += kSumRows) a[0] = __fadd_rn(a[0], term(i));
    acc = __fadd_rn(__fadd_rn(a[0], a[1]), __fadd_rn(a[2], a[3]));
  }
  partial[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && j < cols) {
    float s = partial[0][tx];
    for (int k = 1; k < kSumRows; ++k) s = __fadd_rn(s, partial[k][tx]);
    out[j] = accumulate ? __fadd_rn(out[j], s) : s;
  }
}

}  // namespace

Status column_sums(const Stream& s, const float* x, i64 ldx, i64 rows, i64 cols, float* out, bool accumulate,
                   const float* relu_y, i64 ldy, float* masked, i64 ldm) {
  if (cols <= 0) return ok_status();
  if (rows < 0) rows = 0;  // sums of no rows: out = 0 (or unchanged with accumulate)
  const i64 grid = (cols + kSumCols - 1) / kSumCols;
  if (grid > 0x7fffffff)
    return make_error(ErrorCode::unsupported, "cuda::kernels::column_sums",
                      std::to_string(cols) + " columns exceed the launch grid");
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  const dim3 block(kSumCols, kSumRows);
  if (relu_y)
    column_sums_kernel<true><<<static_cast<unsigned>(grid), block, 0, detail::raw_stream(s)>>>(
        x, ldx, rows, cols, out, accumulate, relu_y, ldy, masked, ldm);
  else
    column_sums_kernel<false><<<static_cast<unsigned>(grid), block, 0, detail::raw_stream(s)>>>(
        x, ldx, rows, cols, out, accumulate, nullptr, 0, nullptr, 0);
  return detail::check_launch("column_sums_kernel");
}

namespace {
inline constexpr int kNormThreads = 256;

__global__ void sum_of_squares_kernel(const float* __restrict__ x, i64 n, double* __restrict__ out) {
  __shared__ double partial[kNormThreads];
  double acc = 0.0;
  for (i64 i = threadIdx.x; i < n; i += kNormThreads) {
    const double v = x[i];
    acc = __fma_rn(v, v, acc);
  }
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int stride = kNormThreads / 2; stride > 0; stride >>= 1) {  // fixed tree: deterministic
    if (threadIdx.x < stride) partial[threadIdx.x] = __dadd_rn(partial[threadIdx.x], partial[threadIdx.x + stride]);
    __syncthreads();
  }
  if (threadIdx.x == 0) out[0] = partial[0];
}

__global__ void clip_by_norm_kernel(float* __restrict__ x, i64 n, const double* __restrict__ sum_sq, double max_norm) {
  const double coef = max_norm / (sqrt(*sum_sq) + 1e-6);
  if (!(coef < 1.0)) return;  // within the norm (or NaN): unchanged, like torch's clamp(max=1)
  const float c = static_cast<float>(coef);
  for (i64 i = blockIdx.x * i64{blockDim.x} + threadIdx.x; i < n; i += i64{gridDim.x} * blockDim.x)
    x[i] = __fmul_rn(x[i], c);
}
}  // namespace

Status sum_of_squares(const Stream& s, const float* x, i64 n, double* out) {
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  sum_of_squares_kernel<<<1, kNormThreads, 0, detail::raw_stream(s)>>>(x, n < 0 ? 0 : n, out);
  return detail::check_launch("sum_of_squares_kernel");
}

Status clip_by_norm(const Stream& s, float* x, i64 n, const double* sum_sq, double max_norm) {
  if (n <= 0) return ok_status();
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  const i64 blocks = std::min<i64>((n + 255) / 256, 4096);
  clip_by_norm_kernel<<<static_cast<unsigned>(blocks), 256, 0, detail::raw_stream(s)>>>(x, n, sum_sq, max_norm);
  return detail::check_launch("clip_by_norm_kernel");
}

}  // namespace ferrite::cuda::kernels
