#pragma once
// kernels::group_norm (backend/cuda/kernels.hpp) on a planar image x[C, P] of one sample, with the
// affine gamma/beta and ELU fused (nvcc only; included by src/cuda_norm.cu alone). Formulas from the
// former QCA stepper's plan. CPU oracle: group_norm of ops/norm.hpp.
//
// A group's C/groups channels are contiguous: one range of (C/groups)*P floats, cut into chunks of
// kGroupChunk floats. Pass 1: one block per (chunk, group) adds its chunk's (sum, sum of squares) in
// double, thread t over elements t, t + 256, ... in order, then through a fixed shared-memory tree;
// the block writes them to partials[(g * chunks + k) * 2 + {0, 1}]. Pass 2: for each channel, thread 0
// of every block adds the channel's group's partials in chunk order and derives
//   mean = s / n,  var = max(q / n - mean^2, 0),  rstd = 1 / sqrt(var + eps)      (double)
//   scale = float(rstd * gamma[c]),  shift = beta[c]                                (as the CPU)
// and the block applies y = act(fma(x - float(mean), scale, shift)), act = ELU (alpha 1) or identity,
// as the CPU's scale_shift_act. No atomics: the order depends on the sizes alone, so runs are
// bit-identical. Every rounding is spelled out (__dadd_rn & co.): nvcc would otherwise contract
// q / n - mean * mean into an FMA. Against the CPU (two passes: mean, then squared deviations) the
// results agree to float rounding while a group's |mean| / std stays below ~1e4; beyond that the
// single pass's q / n - mean^2 loses digits that the CPU's second pass keeps. expm1f and the CPU's
// expm1 may differ in the last bit.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/impl/planar.cuh"
#include "ferrite/backend/cuda/impl/stream.cuh"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/core/result.hpp"

namespace ferrite::cuda::kernels {

namespace {

using detail::thread_x;

inline constexpr int kNormThreads = 256;          // a power of two (the partial-sum tree halves it)
inline constexpr i64 kGroupChunk = 4096;          // floats per partial sum of a group
inline constexpr i64 kMaxApplyBlocks = 64;        // per channel: the grid-stride loop covers the rest
static_assert(kNormThreads == detail::kBlock, "planar_grid sizes x by kBlock threads");

i64 group_chunks(i64 group_floats) { return std::max<i64>(1, (group_floats + kGroupChunk - 1) / kGroupChunk); }

// partials[(g * chunks + k) * 2 + {0, 1}] = (sum, sum of squares) of chunk k of group g: grid (chunks, groups).
__global__ void group_partials_kernel(const float* __restrict__ x, i64 groups, i64 group_floats, i64 chunks,
                                      double* __restrict__ partials) {
  __shared__ double s_sum[kNormThreads], s_sq[kNormThreads];
  const int t = threadIdx.x;
  const i64 k = blockIdx.x, begin = k * kGroupChunk;
  const i64 end = begin + kGroupChunk < group_floats ? begin + kGroupChunk : group_floats;
  for (i64 g = blockIdx.y; g < groups; g += gridDim.y) {  // the same trip count for every thread
    const float* base = x + g * group_floats;
    double s = 0, q = 0;
    for (i64 i = begin + t; i < end; i += kNormThreads) {
      const double v = base[i];
      s = __dadd_rn(s, v);
      q = __dadd_rn(q, __dmul_rn(v, v));  // v * v is exact (a float's square fits a double)
    }
    s_sum[t] = s;
    s_sq[t] = q;
    __syncthreads();
    for (int half = kNormThreads / 2; half > 0; half >>= 1) {
      if (t < half) {
        s_sum[t] = __dadd_rn(s_sum[t], s_sum[t + half]);
        s_sq[t] = __dadd_rn(s_sq[t], s_sq[t + half]);
      }
      __syncthreads();
    }
    if (t == 0) {
      partials[(g * chunks + k) * 2] = s_sum[0];
      partials[(g * chunks + k) * 2 + 1] = s_sq[0];
    }
    __syncthreads();  // thread 0 has read the tree's root before the next group overwrites it
  }
}

// y[c, :] = act((x[c, :] - mean_g) * scale_c + shift_c), y may alias x: grid (<= 64, C).
__global__ void group_apply_kernel(const float* x, float* y, i64 channels, int plane, i64 per_group, i64 chunks,
                                   double count, double eps, const double* __restrict__ partials,
                                   const float* __restrict__ gamma, const float* __restrict__ beta, bool elu) {
  __shared__ float s_mean, s_scale, s_shift;
  for (i64 c = blockIdx.y; c < channels; c += gridDim.y) {
    if (threadIdx.x == 0) {
      const double* p = partials + (c / per_group) * chunks * 2;
      double s = 0, q = 0;
      for (i64 k = 0; k < chunks; ++k) {
        s = __dadd_rn(s, p[2 * k]);
        q = __dadd_rn(q, p[2 * k + 1]);
      }
      const double mean = __ddiv_rn(s, count);
      double var = __dsub_rn(__ddiv_rn(q, count), __dmul_rn(mean, mean));
      var = var > 0 ? var : 0;
      const double rstd = __ddiv_rn(1.0, __dsqrt_rn(__dadd_rn(var, eps)));
      s_mean = static_cast<float>(mean);
      s_scale = static_cast<float>(gamma ? __dmul_rn(rstd, static_cast<double>(gamma[c])) : rstd);
      s_shift = beta ? beta[c] : 0.f;
    }
    __syncthreads();
    const float mean = s_mean, scale = s_scale, shift = s_shift;
    const float* in = x + c * plane;
    float* out = y + c * plane;
    for (i64 i = thread_x(); i < plane; i += i64{gridDim.x} * blockDim.x) {
      const float v = __fmaf_rn(__fsub_rn(in[i], mean), scale, shift);
      out[i] = (!elu || v > 0.f) ? v : expm1f(v);
    }
    __syncthreads();  // every thread has read the statistics before thread 0 writes the next channel's
  }
}

}  // namespace

i64 group_norm_scratch_bytes(i64 channels, i64 plane, i64 groups) noexcept {
  if (channels <= 0 || plane <= 0 || groups <= 0 || channels % groups != 0) return 0;
  return groups * group_chunks(channels / groups * plane) * 2 * i64{sizeof(double)};
}

Status group_norm(const Stream& s, const float* x, i64 channels, i64 plane, i64 groups, const float* gamma,
                  const float* beta, double eps, bool elu, float* y, void* partials) {
  static constexpr const char* kOp = "cuda::kernels::group_norm";
  if (groups <= 0 || (channels > 0 && channels % groups != 0))
    return make_error(ErrorCode::invalid_argument, kOp,
                      std::to_string(groups) + " groups do not divide " + std::to_string(channels) + " channels");
  if (channels <= 0 || plane <= 0) return ok_status();
  FE_TRY(detail::check_plane(kOp, "a plane", plane));
  if (!partials || reinterpret_cast<std::uintptr_t>(partials) % alignof(double) != 0)
    return make_error(ErrorCode::invalid_argument, kOp,
                      "the partials scratch must be non-null and 8-byte aligned (group_norm_scratch_bytes bytes)");
  const i64 per_group = channels / groups, group_floats = per_group * plane, chunks = group_chunks(group_floats);
  if (chunks > 0x7fffffff)
    return make_error(ErrorCode::unsupported, kOp,
                      "a group of " + std::to_string(group_floats) + " floats exceeds the launch grid");
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  cudaStream_t stream = detail::raw_stream(s);
  double* sums = static_cast<double*>(partials);
  const dim3 partial_grid(static_cast<unsigned>(chunks), static_cast<unsigned>(std::min(groups, detail::kMaxGridY)));
  group_partials_kernel<<<partial_grid, kNormThreads, 0, stream>>>(x, groups, group_floats, chunks, sums);
  FE_TRY(detail::check_launch("group_partials_kernel"));
  const dim3 apply_grid(static_cast<unsigned>(std::min((plane + kNormThreads - 1) / kNormThreads, kMaxApplyBlocks)),
                        static_cast<unsigned>(std::min(channels, detail::kMaxGridY)));
  group_apply_kernel<<<apply_grid, kNormThreads, 0, stream>>>(x, y, channels, static_cast<int>(plane), per_group,
                                                               chunks, static_cast<double>(group_floats), eps, sums,
                                                               gamma, beta, elu);
  return detail::check_launch("group_apply_kernel");
}

}  // namespace ferrite::cuda::kernels
