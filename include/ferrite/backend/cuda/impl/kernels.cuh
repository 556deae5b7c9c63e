#pragma once
// The CUDA kernels of the MLP training step and their launchers (nvcc only; part of
// implementation.cuh). Each kernel has a CPU oracle it is tested against (tests/backend/cuda):
//   gather_rows            data::gather_batch
//   bias_activation        ops/nn_ops.hpp bias_activation        (bit-identical: one add, one max)
//   relu_backward          ops/nn_ops.hpp relu_backward          (bit-identical)
//   column_sums[+ReLU]     cpu::reference::column_sums / relu_backward
//   softmax_xent           cpu::reference::softmax_cross_entropy(+_backward)
//   adam / sgd             optim/adam.hpp, optim/sgd.hpp          (bit-identical where the CPU has FMA)
//   philox_*               core/rng.hpp Philox                    (words and uniforms bit-identical)
//
// Rounding: nvcc contracts a * b + c into one FMA by default (-fmad=true). Where the CPU code (and
// PyTorch) rounds the product first, these kernels say so with __fmul_rn / __fadd_rn, which are
// never contracted, and write deliberate FMAs as __fmaf_rn. expf / logf / sqrtf / division are the
// accurate versions (no -use_fast_math).
//
// Determinism: no atomics. Every reduction has an order fixed by the sizes alone: column sums add
// rows in a fixed strided order and combine 8 partial sums in index order; the softmax kernel runs
// in one block whose warps each own fixed rows.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/impl/philox.cuh"
#include "ferrite/core/result.hpp"

namespace ferrite::cuda::kernels {

using i64 = std::int64_t;

inline constexpr int kBlock = 256;
inline constexpr i64 kMaxGrid = i64{1} << 20;  // grid-stride loops beyond this many blocks

// Blocks for n items at one item per thread, capped (the kernels loop with a grid stride).
inline unsigned grid_for(i64 n, int block = kBlock) {
  const i64 blocks = (n + block - 1) / block;
  return static_cast<unsigned>(std::clamp<i64>(blocks, 1, kMaxGrid));
}

// ---------------------------------------------------------------------------------------------
// Batch gather from the resident dataset.
//   out[r, :] = images[order[base + r], :],  out_labels[r] = labels[order[base + r]],  r < rows
// base = (*step) * batch when `step` is given (the graph's step counter), else 0. One block per row;
// kVec4 moves 16 bytes per thread (features, out_ld multiples of 4, 16-byte aligned buffers).
template <bool kVec4>
__global__ void gather_rows_kernel(const float* __restrict__ images, const std::int32_t* __restrict__ labels,
                                   i64 features, const std::int32_t* __restrict__ order,
                                   const i64* __restrict__ step, i64 batch, float* __restrict__ out,
                                   i64 out_ld, std::int32_t* __restrict__ out_labels) {
  const i64 r = blockIdx.x;
  const i64 base = step ? *step * batch : 0;
  const i64 src = order[base + r];
  const float* s = images + src * features;
  float* d = out + r * out_ld;
  if constexpr (kVec4) {
    const auto* s4 = reinterpret_cast<const float4*>(s);
    auto* d4 = reinterpret_cast<float4*>(d);
    for (i64 q = threadIdx.x; q < features / 4; q += blockDim.x) d4[q] = s4[q];
  } else {
    for (i64 j = threadIdx.x; j < features; j += blockDim.x) d[j] = s[j];
  }
  if (out_labels && threadIdx.x == 0) out_labels[r] = labels[src];
}

// ---------------------------------------------------------------------------------------------
// y[rows, cols] = act(y + bias[cols]) in place; bias may be null. ReLU as std::max(v, 0.f) on the
// CPU: (v < 0) ? 0 : v, so NaN stays NaN and -0 stays -0, bit for bit.
__global__ void bias_activation_kernel(float* __restrict__ y, i64 rows, i64 cols, i64 ld,
                                       const float* __restrict__ bias, bool relu) {
  const i64 n = rows * cols;
  for (i64 idx = blockIdx.x * i64{blockDim.x} + threadIdx.x; idx < n; idx += i64{gridDim.x} * blockDim.x) {
    const i64 i = idx / cols, j = idx - i * cols;
    float v = y[i * ld + j];
    if (bias) v = __fadd_rn(v, bias[j]);
    if (relu) v = v < 0.f ? 0.f : v;
    y[i * ld + j] = v;
  }
}

// dx = dy where y > 0 else 0 (dx may alias dy).
__global__ void relu_backward_kernel(const float* __restrict__ y, i64 ldy, const float* dy, i64 lddy, float* dx,
                                     i64 lddx, i64 rows, i64 cols) {
  const i64 n = rows * cols;
  for (i64 idx = blockIdx.x * i64{blockDim.x} + threadIdx.x; idx < n; idx += i64{gridDim.x} * blockDim.x) {
    const i64 i = idx / cols, j = idx - i * cols;
    dx[i * lddx + j] = y[i * ldy + j] > 0.f ? dy[i * lddy + j] : 0.f;
  }
}

// out[cols] = column sums of g, where g = dy (kRelu = false) or g = dy * (y > 0) (kRelu = true:
// ReLU backward fused with the bias gradient). g is also stored to dx when dx is not null (dx may
// alias dy: each element is read and written by the same thread).
// Block (32, 8) covers 32 columns: thread (tx, ty) sums rows ty, ty + 8, ... of column tx in order,
// then thread ty = 0 adds the 8 partial sums in order. Deterministic for given rows.
inline constexpr int kSumCols = 32, kSumRows = 8;
template <bool kRelu>
__global__ void column_sums_kernel(const float* __restrict__ y, i64 ldy, const float* dy, i64 lddy, float* dx,
                                   i64 lddx, i64 rows, i64 cols, float* __restrict__ out) {
  __shared__ float partial[kSumRows][kSumCols + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const i64 j = blockIdx.x * i64{kSumCols} + tx;
  float acc = 0.f;
  if (j < cols) {
    for (i64 i = ty; i < rows; i += kSumRows) {
      float g = dy[i * lddy + j];
      if constexpr (kRelu) g = y[i * ldy + j] > 0.f ? g : 0.f;
      if (dx) dx[i * lddx + j] = g;
      acc = __fadd_rn(acc, g);
    }
  }
  partial[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && j < cols) {
    float s = partial[0][tx];
    for (int k = 1; k < kSumRows; ++k) s = __fadd_rn(s, partial[k][tx]);
    out[j] = s;
  }
}

// ---------------------------------------------------------------------------------------------
// Fused softmax + cross-entropy, forward and backward, as ops/nn_ops.hpp (PyTorch's log_softmax):
//   m = max_j x,  lse = log(sum_j exp(x - m)),  p = exp((x - m) - lse),  loss_i = -((x[y] - m) - lse)
//   dlogits = p / B - onehot(y) / B   (two roundings, as the CPU: p * (1/B), then - 1/B at the label)
// One block for the whole batch: warp w owns rows w, w + warps, ...; lanes split the classes.
// loss_out[*step or 0] = the sum of the rows' losses (the host divides by B in double, like the CPU),
// dbias (optional) = column sums of dlogits in row order: the last layer's bias gradient.
__device__ inline float warp_max_broadcast(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, offset));
  return __shfl_sync(0xffffffffu, v, 0);
}
__device__ inline float warp_sum_broadcast(float v) {
  // Tree order fixed by lane numbers; lane 0's result is broadcast so all lanes use one value.
  for (int offset = 16; offset > 0; offset >>= 1) v = __fadd_rn(v, __shfl_down_sync(0xffffffffu, v, offset));
  return __shfl_sync(0xffffffffu, v, 0);
}

__global__ void softmax_xent_kernel(const float* __restrict__ logits, i64 ld, i64 rows, i64 cols,
                                    const std::int32_t* __restrict__ labels, float* __restrict__ probs, i64 ldp,
                                    float* dlogits, i64 ldd, float* __restrict__ loss_out,
                                    const i64* __restrict__ step, float* __restrict__ dbias) {
  __shared__ float warp_losses[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const float scale = rows ? __fdiv_rn(1.f, static_cast<float>(rows)) : 0.f;
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
    for (i64 j = lane; j < cols; j += 32) {
      const float p = expf(__fsub_rn(__fsub_rn(x[j], m), log_sum));
      if (probs) probs[i * ldp + j] = p;
      if (dlogits) {
        float d = __fmul_rn(p, scale);
        if (j == label) d = __fsub_rn(d, scale);
        dlogits[i * ldd + j] = d;
      }
    }
    if (lane == 0) warp_loss = __fsub_rn(warp_loss, __fsub_rn(__fsub_rn(x[label], m), log_sum));
  }
  if (lane == 0) warp_losses[warp] = warp_loss;
  __syncthreads();  // also makes this block's dlogits stores visible to all its threads
  if (threadIdx.x == 0 && loss_out) {
    float total = 0.f;
    for (int w = 0; w < warps; ++w) total = __fadd_rn(total, warp_losses[w]);
    loss_out[step ? *step : 0] = total;
  }
  if (dbias && dlogits) {
    for (i64 j = threadIdx.x; j < cols; j += blockDim.x) {
      float s = 0.f;
      for (i64 i = 0; i < rows; ++i) s = __fadd_rn(s, dlogits[i * ldd + j]);
      dbias[j] = s;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Optimizer updates over flat buffers of n floats (n a multiple of 4, 16-byte aligned: the
// trainer pads each tensor to 64 floats; padding stays 0 under every update). The step's constants
// come from table[*step] (the host fills one entry per step of the epoch with PyTorch's double ->
// float roundings), so a captured graph serves every step.
enum OptimFlags : unsigned {
  kMaximize = 1u << 0,
  kL2 = 1u << 1,           // Adam: g += wd * p
  kDecoupled = 1u << 2,    // AdamW: p *= 1 - lr * wd
  kAmsgrad = 1u << 3,
  kLerpSmall = 1u << 4,    // |1 - beta1| < 0.5: lerp as m + w * (g - m)
  kWeightDecay = 1u << 5,  // SGD
  kMomentum = 1u << 6,
  kNesterov = 1u << 7,
  kFirstStep = 1u << 8,    // SGD: momentum buffer := g
};

struct OptimStep {
  // Adam / AdamW (optim::detail::AdamCoefficients)
  float weight_decay = 0.f, decay = 1.f, lerp_weight = 0.1f, lerp_weight_minus_one = -0.9f;
  float beta2 = 0.999f, one_minus_beta2 = 0.001f, bias_correction2_sqrt = 1.f, eps = 1e-8f, neg_step_size = 0.f;
  // SGD (optim::detail::SGDCoefficients)
  float momentum = 0.f, one_minus_dampening = 1.f, neg_lr = 0.f;
  unsigned flags = 0;
};

// torch.maximum: the larger, NaN if either is NaN (optim::detail::max_of).
__device__ inline float max_of(float a, float b) { return (a < b || b != b) ? b : a; }

// optim::detail::adam_update, operation for operation.
__device__ inline void adam_element(float& p, float g, float& m, float& v, float& vmax, const OptimStep& c) {
  if (c.flags & kMaximize) g = -g;
  if (c.flags & kL2) g = __fmaf_rn(p, c.weight_decay, g);
  if (c.flags & kDecoupled) p = __fmul_rn(p, c.decay);
  const float diff = __fsub_rn(g, m);
  m = (c.flags & kLerpSmall) ? __fmaf_rn(c.lerp_weight, diff, m) : __fmaf_rn(c.lerp_weight_minus_one, diff, g);
  v = __fmaf_rn(__fmul_rn(c.one_minus_beta2, g), g, __fmul_rn(v, c.beta2));
  float second = v;
  if (c.flags & kAmsgrad) {
    vmax = max_of(vmax, v);
    second = vmax;
  }
  const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(second), c.bias_correction2_sqrt), c.eps);
  p = __fadd_rn(p, __fdiv_rn(__fmul_rn(c.neg_step_size, m), denom));
}

// optim::detail::sgd_update, operation for operation.
__device__ inline void sgd_element(float& p, float g, float& buf, const OptimStep& c) {
  if (c.flags & kMaximize) g = -g;
  if (c.flags & kWeightDecay) g = __fmaf_rn(p, c.weight_decay, g);
  if (c.flags & kMomentum) {
    if (c.flags & kFirstStep)
      buf = g;
    else
      buf = __fmaf_rn(g, c.one_minus_dampening, __fmul_rn(buf, c.momentum));
    g = (c.flags & kNesterov) ? __fmaf_rn(buf, c.momentum, g) : buf;
  }
  p = __fmaf_rn(g, c.neg_lr, p);
}

__global__ void adam_kernel(float4* __restrict__ p, const float4* __restrict__ g, float4* __restrict__ m,
                            float4* __restrict__ v, float4* __restrict__ vmax, i64 n4,
                            const OptimStep* __restrict__ table, const i64* __restrict__ step) {
  const OptimStep c = table[step ? *step : 0];
  const bool ams = (c.flags & kAmsgrad) && vmax;
  for (i64 q = blockIdx.x * i64{blockDim.x} + threadIdx.x; q < n4; q += i64{gridDim.x} * blockDim.x) {
    float4 pv = p[q], mv = m[q], vv = v[q];
    const float4 gv = g[q];
    float4 xv = ams ? vmax[q] : make_float4(0.f, 0.f, 0.f, 0.f);
    adam_element(pv.x, gv.x, mv.x, vv.x, xv.x, c);
    adam_element(pv.y, gv.y, mv.y, vv.y, xv.y, c);
    adam_element(pv.z, gv.z, mv.z, vv.z, xv.z, c);
    adam_element(pv.w, gv.w, mv.w, vv.w, xv.w, c);
    p[q] = pv;
    m[q] = mv;
    v[q] = vv;
    if (ams) vmax[q] = xv;
  }
}

__global__ void sgd_kernel(float4* __restrict__ p, const float4* __restrict__ g, float4* __restrict__ buf, i64 n4,
                           const OptimStep* __restrict__ table, const i64* __restrict__ step) {
  const OptimStep c = table[step ? *step : 0];
  const bool mom = (c.flags & kMomentum) && buf;
  for (i64 q = blockIdx.x * i64{blockDim.x} + threadIdx.x; q < n4; q += i64{gridDim.x} * blockDim.x) {
    float4 pv = p[q];
    const float4 gv = g[q];
    float4 bv = mom ? buf[q] : make_float4(0.f, 0.f, 0.f, 0.f);
    sgd_element(pv.x, gv.x, bv.x, c);
    sgd_element(pv.y, gv.y, bv.y, c);
    sgd_element(pv.z, gv.z, bv.z, c);
    sgd_element(pv.w, gv.w, bv.w, c);
    p[q] = pv;
    if (mom) buf[q] = bv;
  }
}

// The step counter of a captured graph: the last node of every step.
__global__ void advance_step_kernel(i64* step) {
  if (threadIdx.x == 0 && blockIdx.x == 0) *step += 1;
}

// ---------------------------------------------------------------------------------------------
// Philox streams (core/rng.hpp): element i = element offset + i of the stream.
enum class PhiloxKind { words, uniform, normal };

__device__ inline float philox_normal(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  // Philox::normal: Box-Muller on the lane pair (index % 2) * 2 of block index / 2.
  const cuda::detail::PhiloxBlock b = cuda::detail::philox_block(seed, stream, index / 2);
  const bool second = (index % 2) != 0;
  const float u1 = cuda::detail::philox_open_unit(second ? b.w[2] : b.w[0]);
  const float u2 = cuda::detail::philox_unit(second ? b.w[3] : b.w[1]);
  const float r = __fsqrt_rn(__fmul_rn(-2.0f, logf(u1)));
  constexpr float kTwoPi = 2.0f * 3.14159265358979323846f;  // 2 * pi_v<float>, exact doubling
  return __fmul_rn(r, cosf(__fmul_rn(kTwoPi, u2)));
}

template <PhiloxKind kKind>
__global__ void philox_kernel(void* __restrict__ out, i64 n, std::uint64_t seed, std::uint64_t stream,
                              std::uint64_t offset) {
  for (i64 i = blockIdx.x * i64{blockDim.x} + threadIdx.x; i < n; i += i64{gridDim.x} * blockDim.x) {
    const std::uint64_t index = offset + static_cast<std::uint64_t>(i);
    if constexpr (kKind == PhiloxKind::words)
      static_cast<std::uint32_t*>(out)[i] = cuda::detail::philox_word(seed, stream, index);
    else if constexpr (kKind == PhiloxKind::uniform)
      static_cast<float*>(out)[i] = cuda::detail::philox_unit(cuda::detail::philox_word(seed, stream, index));
    else
      static_cast<float*>(out)[i] = philox_normal(seed, stream, index);
  }
}

__global__ void fill_kernel(float* __restrict__ out, i64 n, float value) {
  for (i64 i = blockIdx.x * i64{blockDim.x} + threadIdx.x; i < n; i += i64{gridDim.x} * blockDim.x) out[i] = value;
}

// =============================================================================================
// Launchers: host functions that enqueue one kernel on `stream` and check the launch. Pointers are
// device pointers; shapes were validated by the caller.

inline Status launch_gather(cudaStream_t stream, const float* images, const std::int32_t* labels, i64 features,
                            const std::int32_t* order, const i64* step, i64 batch, i64 rows, float* out, i64 out_ld,
                            std::int32_t* out_labels) {
  if (rows <= 0) return ok_status();
  const bool vec4 = features % 4 == 0 && out_ld % 4 == 0 && reinterpret_cast<std::uintptr_t>(images) % 16 == 0 &&
                    reinterpret_cast<std::uintptr_t>(out) % 16 == 0;
  const int threads = static_cast<int>(std::clamp<i64>(((vec4 ? features / 4 : features) + 31) & ~i64{31}, 32, 256));
  if (vec4)
    gather_rows_kernel<true><<<static_cast<unsigned>(rows), threads, 0, stream>>>(images, labels, features, order, step,
                                                                                  batch, out, out_ld, out_labels);
  else
    gather_rows_kernel<false><<<static_cast<unsigned>(rows), threads, 0, stream>>>(images, labels, features, order, step,
                                                                                   batch, out, out_ld, out_labels);
  return cuda::detail::check_launch("gather_rows_kernel");
}

inline Status launch_bias_activation(cudaStream_t stream, float* y, i64 rows, i64 cols, i64 ld, const float* bias,
                                     bool relu) {
  if (rows <= 0 || cols <= 0 || (!bias && !relu)) return ok_status();
  bias_activation_kernel<<<grid_for(rows * cols), kBlock, 0, stream>>>(y, rows, cols, ld, bias, relu);
  return cuda::detail::check_launch("bias_activation_kernel");
}

inline Status launch_relu_backward(cudaStream_t stream, const float* y, i64 ldy, const float* dy, i64 lddy, float* dx,
                                   i64 lddx, i64 rows, i64 cols) {
  if (rows <= 0 || cols <= 0) return ok_status();
  relu_backward_kernel<<<grid_for(rows * cols), kBlock, 0, stream>>>(y, ldy, dy, lddy, dx, lddx, rows, cols);
  return cuda::detail::check_launch("relu_backward_kernel");
}

// relu: out = column sums of dy * (y > 0) (and dx = that product); otherwise of dy (dx = dy copy if given).
inline Status launch_column_sums(cudaStream_t stream, bool relu, const float* y, i64 ldy, const float* dy, i64 lddy,
                                 float* dx, i64 lddx, i64 rows, i64 cols, float* out) {
  if (cols <= 0) return ok_status();
  const dim3 block(kSumCols, kSumRows);
  const auto grid = static_cast<unsigned>((cols + kSumCols - 1) / kSumCols);
  if (relu)
    column_sums_kernel<true><<<grid, block, 0, stream>>>(y, ldy, dy, lddy, dx, lddx, rows, cols, out);
  else
    column_sums_kernel<false><<<grid, block, 0, stream>>>(y, ldy, dy, lddy, dx, lddx, rows, cols, out);
  return cuda::detail::check_launch("column_sums_kernel");
}

// The block size of the softmax kernel: one warp per row up to 32 warps (fixed by rows alone).
inline int softmax_threads(i64 rows) { return static_cast<int>(32 * std::clamp<i64>(rows, 1, 32)); }

inline Status launch_softmax_xent(cudaStream_t stream, const float* logits, i64 ld, i64 rows, i64 cols,
                                  const std::int32_t* labels, float* probs, i64 ldp, float* dlogits, i64 ldd,
                                  float* loss_out, const i64* step, float* dbias) {
  softmax_xent_kernel<<<1, softmax_threads(rows), 0, stream>>>(logits, ld, rows, cols, labels, probs, ldp, dlogits,
                                                               ldd, loss_out, step, dbias);
  return cuda::detail::check_launch("softmax_xent_kernel");
}

// Buffers of n floats, n % 4 == 0, 16-byte aligned; state2 (vmax) only with amsgrad; sgd uses state0.
inline Status launch_adam(cudaStream_t stream, float* p, const float* g, float* m, float* v, float* vmax, i64 n,
                          const OptimStep* table, const i64* step) {
  if (n <= 0) return ok_status();
  const i64 n4 = n / 4;
  adam_kernel<<<grid_for(n4), kBlock, 0, stream>>>(reinterpret_cast<float4*>(p), reinterpret_cast<const float4*>(g),
                                                   reinterpret_cast<float4*>(m), reinterpret_cast<float4*>(v),
                                                   reinterpret_cast<float4*>(vmax), n4, table, step);
  return cuda::detail::check_launch("adam_kernel");
}

inline Status launch_sgd(cudaStream_t stream, float* p, const float* g, float* buf, i64 n, const OptimStep* table,
                         const i64* step) {
  if (n <= 0) return ok_status();
  const i64 n4 = n / 4;
  sgd_kernel<<<grid_for(n4), kBlock, 0, stream>>>(reinterpret_cast<float4*>(p), reinterpret_cast<const float4*>(g),
                                                  reinterpret_cast<float4*>(buf), n4, table, step);
  return cuda::detail::check_launch("sgd_kernel");
}

inline Status launch_advance(cudaStream_t stream, i64* step) {
  advance_step_kernel<<<1, 32, 0, stream>>>(step);
  return cuda::detail::check_launch("advance_step_kernel");
}

template <PhiloxKind kKind>
inline Status launch_philox(cudaStream_t stream, void* out, i64 n, std::uint64_t seed, std::uint64_t stream_id,
                            std::uint64_t offset) {
  if (n <= 0) return ok_status();
  philox_kernel<kKind><<<grid_for(n), kBlock, 0, stream>>>(out, n, seed, stream_id, offset);
  return cuda::detail::check_launch("philox_kernel");
}

inline Status launch_fill(cudaStream_t stream, float* out, i64 n, float value) {
  if (n <= 0) return ok_status();
  fill_kernel<<<grid_for(n), kBlock, 0, stream>>>(out, n, value);
  return cuda::detail::check_launch("fill_kernel");
}

}  // namespace ferrite::cuda::kernels
