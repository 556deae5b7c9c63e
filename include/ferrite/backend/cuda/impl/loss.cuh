#pragma once
// kernels::softmax_cross_entropy (backend/cuda/kernels.hpp): fused softmax + cross-entropy forward
// and backward (nvcc only; included by src/cuda_loss.cu alone). CPU oracle:
// cpu::softmax_cross_entropy(+_backward) (backend/cpu/nn_ops.hpp), PyTorch's log_softmax:
//   m = max_j x,  lse = log(sum_j exp(x - m)),  p = exp((x - m) - lse),  loss_i = -((x[y] - m) - lse)
//   dlogits = p * grad_scale, minus grad_scale at the label (two roundings, as the CPU's
//             p * (1/B) then -= 1/B)
// expf / logf are the accurate versions (no -use_fast_math); every add is __fadd_rn / __fsub_rn.
//
// One block for the whole batch: warp w owns rows w, w + warps, ... (warps = min(rows, 32), fixed
// by rows alone); lanes split the classes and combine by a fixed shuffle tree. Warp w's lane 0 sums
// its rows' losses in row order, thread 0 adds the warps' sums in warp order and writes
// loss[*step or 0] = total / rows (f32). No atomics: bit-identical run to run.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/impl/stream.cuh"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/core/result.hpp"

namespace ferrite::cuda::kernels {

namespace {

__device__ inline float warp_max_broadcast(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, offset));
  return __shfl_sync(0xffffffffu, v, 0);
}
__device__ inline float warp_sum_broadcast(float v) {
  // Tree order fixed by lane numbers; lane 0's result is broadcast so all lanes use one value.
  for (int offset = 16; offset > 0; offset >>= 1) v = __fadd_rn(v, __shfl_down_sync(0xffffffffu, v, offset));
  return __shfl_sync(0xffffffffu, v, 0);
}

// Row i's probabilities and/or gradient, columns first, first + stride, ... (a warp's lanes or one thread).
__device__ inline void write_row_outputs(const float* x, float m, float log_sum, std::int32_t label, i64 i, i64 cols,
                                         i64 first, i64 stride, float* probs, i64 ldp, float* dlogits, i64 ldd,
                                         float grad_scale) {
  if (!probs && !dlogits) return;
  for (i64 j = first; j < cols; j += stride) {
    const float p = expf(__fsub_rn(__fsub_rn(x[j], m), log_sum));
    if (probs) probs[i * ldp + j] = p;
    if (dlogits) {
      float d = __fmul_rn(p, grad_scale);
      if (j == label) d = __fsub_rn(d, grad_scale);
      dlogits[i * ldd + j] = d;
    }
  }
}

// A label outside [0, cols) (the op layer cannot check device labels without a sync) reads nothing
// out of bounds: its row's loss is NaN, so the mean is NaN, and its dlogits have no -grad_scale.
__global__ void softmax_xent_kernel(const float* __restrict__ logits, i64 ld, i64 rows, i64 cols,
                                    const std::int32_t* __restrict__ labels, float* __restrict__ probs, i64 ldp,
                                    float* __restrict__ dlogits, i64 ldd, float grad_scale, float* __restrict__ loss,
                                    const i64* __restrict__ step) {
  __shared__ float warp_losses[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  float warp_loss = 0.f;  // lane 0: this warp's rows, in order
  for (i64 i = warp; i < rows; i += warps) {
    const float* x = logits + i * ld;
    float m = -INFINITY;
    for (i64 j = lane; j < cols; j += 32) m = fmaxf(m, x[j]);
    m = warp_max_broadcast(m);
    float s = 0.f;
    for (i64 j = lane; j < cols; j += 32) s = __fadd_rn(s, expf(__fsub_rn(x[j], m)));
    s = warp_sum_broadcast(s);
    const float log_sum = logf(s);
    const std::int32_t label = labels[i];
    const bool valid = label >= 0 && label < cols;
    write_row_outputs(x, m, log_sum, label, i, cols, lane, 32, probs, ldp, dlogits, ldd, grad_scale);
    if (lane == 0)
      warp_loss = valid ? __fsub_rn(warp_loss, __fsub_rn(__fsub_rn(x[label], m), log_sum)) : __int_as_float(0x7fc00000);
  }
  if (!loss) return;  // uniform across the block: no thread reaches the barrier
  if (lane == 0) warp_losses[warp] = warp_loss;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.f;
    for (int w = 0; w < warps; ++w) total = __fadd_rn(total, warp_losses[w]);
    loss[detail::step_index(step)] = rows > 0 ? __fdiv_rn(total, static_cast<float>(rows)) : 0.f;
  }
}

// Few classes (cols <= 32, the classifiers' case): one row per thread, not per warp — a warp per
// row left 22 of 32 lanes idle at 10 classes and walked 4,096 rows 32 at a time (tens of us at
// batch 4,096). Same arithmetic per element; each thread's rows are summed in order, then the
// threads in a fixed tree (lanes) and warp order, as above.
__global__ void softmax_xent_rows_kernel(const float* __restrict__ logits, i64 ld, i64 rows, i64 cols,
                                         const std::int32_t* __restrict__ labels, float* __restrict__ probs, i64 ldp,
                                         float* __restrict__ dlogits, i64 ldd, float grad_scale,
                                         float* __restrict__ loss, const i64* __restrict__ step) {
  __shared__ float warp_losses[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  float my_loss = 0.f;
  for (i64 i = threadIdx.x; i < rows; i += blockDim.x) {
    const float* x = logits + i * ld;
    float m = -INFINITY;
    for (i64 j = 0; j < cols; ++j) m = fmaxf(m, x[j]);
    float s = 0.f;
    for (i64 j = 0; j < cols; ++j) s = __fadd_rn(s, expf(__fsub_rn(x[j], m)));
    const float log_sum = logf(s);
    const std::int32_t label = labels[i];
    const bool valid = label >= 0 && label < cols;
    write_row_outputs(x, m, log_sum, label, i, cols, 0, 1, probs, ldp, dlogits, ldd, grad_scale);
    my_loss = valid ? __fsub_rn(my_loss, __fsub_rn(__fsub_rn(x[label], m), log_sum)) : __int_as_float(0x7fc00000);
  }
  if (!loss) return;  // uniform across the block: no thread reaches the barrier
  const float w = warp_sum_broadcast(my_loss);
  if (lane == 0) warp_losses[warp] = w;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.f;
    for (int k = 0; k < warps; ++k) total = __fadd_rn(total, warp_losses[k]);
    loss[detail::step_index(step)] = rows > 0 ? __fdiv_rn(total, static_cast<float>(rows)) : 0.f;
  }
}

}  // namespace

Status softmax_cross_entropy(const Stream& s, const float* logits, i64 ld, i64 rows, i64 cols,
                             const std::int32_t* labels, float* probs, i64 ldp, float* dlogits, i64 ldd,
                             float grad_scale, float* loss, const i64* step) {
  if (rows < 0) rows = 0;
  if (!probs && !dlogits && !loss) return ok_status();
  if (rows == 0 && !loss) return ok_status();
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  if (cols <= 32) {
    const int threads = static_cast<int>(32 * std::clamp<i64>((rows + 31) / 32, 1, 32));
    softmax_xent_rows_kernel<<<1, threads, 0, detail::raw_stream(s)>>>(logits, ld, rows, cols, labels, probs, ldp,
                                                                       dlogits, ldd, grad_scale, loss, step);
    return detail::check_launch("softmax_xent_rows_kernel");
  }
  const int threads = static_cast<int>(32 * std::clamp<i64>(rows, 1, 32));
  softmax_xent_kernel<<<1, threads, 0, detail::raw_stream(s)>>>(logits, ld, rows, cols, labels, probs, ldp, dlogits,
                                                                ldd, grad_scale, loss, step);
  return detail::check_launch("softmax_xent_kernel");
}

}  // namespace ferrite::cuda::kernels
