#pragma once
// The batch convolution and normalization family of backend/cuda/kernels.hpp on activations in the
// channel-major batch layout [C, N, H, W] of ops/batch_conv.hpp (nvcc only; included by
// src/cuda_batch_conv.cu alone): im2col and its adjoint col2im for one GEMM over the whole batch
// (core/op_params.hpp's ConvGeometry), the NCHW <-> CNHW transpose, BatchNorm2d (training, eval,
// backward; residual add and ReLU fused) and global average pooling.
//
// Deterministic: no atomics anywhere, every sum has an order fixed by the sizes alone, so runs are
// bit-identical run to run and a CPU doing the same operations in the same order gets the same bits:
//   im2col, swap_leading_dims       copies: bit for bit
//   col2im                          a gather, not a scatter: one thread per dx element adds the dcols
//                                   entries that read it, ky then kx increasing, from 0.f (__fadd_rn;
//                                   from dx's value when accumulating)
//   batch_norm_train / _backward    one block (256 threads) per channel; every per-channel sum in
//                                   double, thread t over elements t, t + 256, ... in order, then a
//                                   fixed shared-memory tree (halving); mean and variance in two passes
//   global_avg_pool                 one thread per (n, c), a sequential double sum over the plane
// Every rounding is spelled out (__fadd_rn, __fmaf_rn, __dmul_rn & co.): nvcc would otherwise
// contract products and sums into FMAs that a CPU does not do. ReLU here is v > 0.f ? v : 0.f (NaN and
// -0 become +0), and the backward masks by y > 0, which matches it. gamma / beta null: 1 / 0.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/impl/planar.cuh"
#include "ferrite/backend/cuda/impl/stream.cuh"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/core/op_params.hpp"
#include "ferrite/core/result.hpp"

namespace ferrite::cuda::kernels {

namespace {

using detail::thread_x;

inline constexpr int kBatchNormThreads = 256;  // a power of two (the partial-sum tree halves it)
static_assert(kBatchNormThreads == detail::kBlock, "the elementwise launches use kBlock threads as well");

// Grid-stride loops: x over n items (capped at kMaxGrid blocks), y over `rows` rows (<= 65535).
inline dim3 grid_2d(i64 n, i64 rows) {
  return dim3(detail::grid_for(n), static_cast<unsigned>(std::clamp<i64>(rows, 1, detail::kMaxGridY)));
}

__device__ __forceinline__ i64 stride_x() { return i64{gridDim.x} * blockDim.x; }

// The sum of every thread's v over the block, through a fixed tree: all threads return it. Every
// thread of the block must call it (it synchronizes); s holds kBatchNormThreads doubles.
__device__ double block_sum(double* s, double v) {
  const int t = threadIdx.x;
  s[t] = v;
  __syncthreads();
  for (int half = kBatchNormThreads / 2; half > 0; half >>= 1) {
    if (t < half) s[t] = __dadd_rn(s[t], s[t + half]);
    __syncthreads();
  }
  const double r = s[0];
  __syncthreads();  // every thread has read the root before the next call overwrites it
  return r;
}

// Two sums at once (the same tree for both).
__device__ void block_sum2(double* sa, double* sb, double& a, double& b) {
  const int t = threadIdx.x;
  sa[t] = a;
  sb[t] = b;
  __syncthreads();
  for (int half = kBatchNormThreads / 2; half > 0; half >>= 1) {
    if (t < half) {
      sa[t] = __dadd_rn(sa[t], sa[t + half]);
      sb[t] = __dadd_rn(sb[t], sb[t + half]);
    }
    __syncthreads();
  }
  a = sa[0];
  b = sb[0];
  __syncthreads();
}

__device__ __forceinline__ float relu_if(float v, bool relu) { return (!relu || v > 0.f) ? v : 0.f; }

// ConvGeometry with its derived sizes computed on the host (its member functions are host-only
// constexpr), passed to the kernels by value.
struct ConvShape {
  i64 cin, batch, height, width, kernel, stride, pad, out_height, out_width, columns, rows;
};

ConvShape conv_shape(const ConvGeometry& g) {
  return ConvShape{g.cin,    g.batch,        g.height,      g.width,     g.kernel, g.stride,
                   g.pad,    g.out_height(), g.out_width(), g.columns(), g.patch()};
}

// cols[row, col] = x[ci, n, oy*stride + ky - pad, ox*stride + kx - pad] (0 outside), row = (ci*k + ky)*k + kx,
// col = (n*Ho + oy)*Wo + ox: grid (columns, rows).
__global__ void im2col_cnhw_kernel(const float* __restrict__ x, ConvShape g, float* __restrict__ cols) {
  const i64 k = g.kernel, ho = g.out_height, wo = g.out_width, columns = g.columns, rows = g.rows;
  for (i64 col = thread_x(); col < columns; col += stride_x()) {
    const i64 n = col / (ho * wo), q = col - n * (ho * wo), oy = q / wo, ox = q - oy * wo;
    const i64 y0 = oy * g.stride - g.pad, x0 = ox * g.stride - g.pad;
    for (i64 row = blockIdx.y; row < rows; row += gridDim.y) {
      const i64 ci = row / (k * k), tap = row - ci * (k * k), ky = tap / k, kx = tap - ky * k;
      const i64 iy = y0 + ky, ix = x0 + kx;
      cols[row * columns + col] = (iy >= 0 && iy < g.height && ix >= 0 && ix < g.width)
                                      ? x[((ci * g.batch + n) * g.height + iy) * g.width + ix]
                                      : 0.f;
    }
  }
}

// dx[ci, n, y, x] = sum over (ky, kx) in increasing order of dcols[(ci*k + ky)*k + kx, (n*Ho + oy)*Wo + ox]
// for the (oy, ox) with oy*stride + ky - pad == y, ox*stride + kx - pad == x: grid (N*H*W, Cin).
__global__ void col2im_cnhw_kernel(const float* __restrict__ dcols, ConvShape g, bool accumulate, float* __restrict__ dx) {
  const i64 k = g.kernel, ho = g.out_height, wo = g.out_width, columns = g.columns;
  const i64 plane = g.height * g.width, m = g.batch * plane;
  for (i64 e = thread_x(); e < m; e += stride_x()) {
    const i64 n = e / plane, q = e - n * plane, y = q / g.width, xx = q - y * g.width;
    for (i64 ci = blockIdx.y; ci < g.cin; ci += gridDim.y) {
      float acc = accumulate ? dx[ci * m + e] : 0.f;
      for (i64 ky = 0; ky < k; ++ky) {
        const i64 ty = y + g.pad - ky;
        if (ty < 0 || ty % g.stride != 0) continue;
        const i64 oy = ty / g.stride;
        if (oy >= ho) continue;
        for (i64 kx = 0; kx < k; ++kx) {
          const i64 tx = xx + g.pad - kx;
          if (tx < 0 || tx % g.stride != 0) continue;
          const i64 ox = tx / g.stride;
          if (ox >= wo) continue;
          acc = __fadd_rn(acc, dcols[((ci * k + ky) * k + kx) * columns + (n * ho + oy) * wo + ox]);
        }
      }
      dx[ci * m + e] = acc;
    }
  }
}

// y[j, i, p] = x[i, j, p], x[A, B, P]: one thread per y element (writes coalesced, reads in runs of P).
__global__ void swap_leading_dims_kernel(const float* __restrict__ x, i64 a, i64 b, i64 p, float* __restrict__ y) {
  const i64 total = a * b * p;
  for (i64 e = thread_x(); e < total; e += stride_x()) {
    const i64 r = e / p, q = e - r * p, j = r / a, i = r - j * a;
    y[e] = x[(i * b + j) * p + q];
  }
}

// BatchNorm2d training mode over x[C, M]: grid (min(C, 65535)), kBatchNormThreads threads.
__global__ void batch_norm_train_kernel(const float* __restrict__ x, i64 channels, i64 m,
                                        const float* __restrict__ gamma, const float* __restrict__ beta, double eps,
                                        double momentum, float* __restrict__ running_mean,
                                        float* __restrict__ running_var, float* __restrict__ save_mean,
                                        float* __restrict__ save_rstd, const float* __restrict__ residual,
                                        bool relu, float* __restrict__ y) {
  __shared__ double s_tree[kBatchNormThreads];
  const int t = threadIdx.x;
  const double count = static_cast<double>(m);
  for (i64 c = blockIdx.x; c < channels; c += gridDim.x) {  // the same trip count for every thread
    const float* in = x + c * m;
    double sum = 0;
    for (i64 i = t; i < m; i += kBatchNormThreads) sum = __dadd_rn(sum, static_cast<double>(in[i]));
    const double mean = __ddiv_rn(block_sum(s_tree, sum), count);
    double ss = 0;
    for (i64 i = t; i < m; i += kBatchNormThreads) {
      const double d = __dsub_rn(static_cast<double>(in[i]), mean);
      ss = __dadd_rn(ss, __dmul_rn(d, d));
    }
    const double var = __ddiv_rn(block_sum(s_tree, ss), count);
    const double rstd = __ddiv_rn(1.0, __dsqrt_rn(__dadd_rn(var, eps)));
    // Every thread derives the same statistics from the same sums: no broadcast needed.
    const float mean_f = static_cast<float>(mean), rstd_f = static_cast<float>(rstd);
    if (t == 0) {
      save_mean[c] = mean_f;
      save_rstd[c] = rstd_f;
      const double keep = __dsub_rn(1.0, momentum);
      if (running_mean)
        running_mean[c] = static_cast<float>(
            __dadd_rn(__dmul_rn(keep, static_cast<double>(running_mean[c])), __dmul_rn(momentum, mean)));
      if (running_var) {  // momentum * var * M / (M - 1), left to right (as the CPU)
        const double step = __ddiv_rn(__dmul_rn(__dmul_rn(momentum, var), count), __dsub_rn(count, 1.0));
        running_var[c] = static_cast<float>(__dadd_rn(__dmul_rn(keep, static_cast<double>(running_var[c])), step));
      }
    }
    const float scale =
        gamma ? static_cast<float>(__dmul_rn(static_cast<double>(gamma[c]), static_cast<double>(rstd_f))) : rstd_f;
    const float shift = beta ? beta[c] : 0.f;
    float* out = y + c * m;
    const float* res = residual ? residual + c * m : nullptr;
    for (i64 i = t; i < m; i += kBatchNormThreads) {
      float v = __fmaf_rn(__fsub_rn(in[i], mean_f), scale, shift);
      if (res) v = __fadd_rn(v, res[i]);
      out[i] = relu_if(v, relu);
    }
  }
}

// BatchNorm2d eval mode, elementwise over x[C, M]: grid (M, C).
__global__ void batch_norm_eval_kernel(const float* __restrict__ x, i64 channels, i64 m,
                                       const float* __restrict__ gamma, const float* __restrict__ beta,
                                       const float* __restrict__ running_mean, const float* __restrict__ running_var,
                                       double eps, const float* __restrict__ residual, bool relu,
                                       float* __restrict__ y) {
  const i64 first = thread_x();
  if (first >= m) return;
  for (i64 c = blockIdx.y; c < channels; c += gridDim.y) {
    const double g = gamma ? static_cast<double>(gamma[c]) : 1.0;
    const float scale =
        static_cast<float>(__ddiv_rn(g, __dsqrt_rn(__dadd_rn(static_cast<double>(running_var[c]), eps))));
    const float mean = running_mean[c], shift = beta ? beta[c] : 0.f;
    for (i64 i = first; i < m; i += stride_x()) {
      const i64 e = c * m + i;
      float v = __fmaf_rn(__fsub_rn(x[e], mean), scale, shift);
      if (residual) v = __fadd_rn(v, residual[e]);
      y[e] = relu_if(v, relu);
    }
  }
}

// Backward of batch_norm_train over x[C, M]: grid (min(C, 65535)), kBatchNormThreads threads.
// dresidual may alias dy (and dx may): every element of dy is read by the thread that writes it,
// after the reduction pass's last read of dy (block_sum2 synchronizes the block), so no __restrict__.
__global__ void batch_norm_backward_kernel(const float* __restrict__ x, const float* __restrict__ y, const float* dy,
                                           i64 channels, i64 m, const float* __restrict__ gamma,
                                           const float* __restrict__ save_mean, const float* __restrict__ save_rstd,
                                           float* dx, float* dresidual, float* __restrict__ dgamma,
                                           float* __restrict__ dbeta, bool accumulate) {
  __shared__ double s_g[kBatchNormThreads], s_gx[kBatchNormThreads];
  const int t = threadIdx.x;
  const double count = static_cast<double>(m);
  for (i64 c = blockIdx.x; c < channels; c += gridDim.x) {  // the same trip count for every thread
    const i64 base = c * m;
    const float mean_f = save_mean[c];
    const double mean = static_cast<double>(mean_f), r = static_cast<double>(save_rstd[c]);
    double sg = 0, sgx = 0;
    for (i64 i = t; i < m; i += kBatchNormThreads) {
      const i64 e = base + i;
      const double g = static_cast<double>((!y || y[e] > 0.f) ? dy[e] : 0.f);
      sg = __dadd_rn(sg, g);
      sgx = __dadd_rn(sgx, __dmul_rn(g, __dsub_rn(static_cast<double>(x[e]), mean)));
    }
    block_sum2(s_g, s_gx, sg, sgx);
    if (t == 0) {
      const float dg = static_cast<float>(__dmul_rn(sgx, r)), db = static_cast<float>(sg);
      if (dgamma) dgamma[c] = accumulate ? __fadd_rn(dgamma[c], dg) : dg;
      if (dbeta) dbeta[c] = accumulate ? __fadd_rn(dbeta[c], db) : db;
    }
    if (!dx && !dresidual) continue;  // uniform across the block
    const float a = static_cast<float>(gamma ? __dmul_rn(static_cast<double>(gamma[c]), r) : r);
    const float mg = static_cast<float>(__ddiv_rn(sg, count));
    const float k = static_cast<float>(__ddiv_rn(__dmul_rn(__dmul_rn(sgx, r), r), count));
    for (i64 i = t; i < m; i += kBatchNormThreads) {
      const i64 e = base + i;
      const float g = (!y || y[e] > 0.f) ? dy[e] : 0.f;  // read before dx / dresidual (may alias dy) are written
      if (dx) dx[e] = __fmul_rn(a, __fmaf_rn(-__fsub_rn(x[e], mean_f), k, __fsub_rn(g, mg)));
      if (dresidual) dresidual[e] = g;
    }
  }
}

// y[n*C + c] = float(sum_p x[(c*N + n)*P + p] / P), the sum in double in p order: one thread per (n, c).
__global__ void global_avg_pool_cnhw_kernel(const float* __restrict__ x, i64 channels, i64 batch, i64 plane,
                                            float* __restrict__ y) {
  const i64 total = batch * channels;
  const double count = static_cast<double>(plane);
  for (i64 o = thread_x(); o < total; o += stride_x()) {
    const i64 n = o / channels, c = o - n * channels;
    const float* in = x + (c * batch + n) * plane;
    double sum = 0;
    for (i64 p = 0; p < plane; ++p) sum = __dadd_rn(sum, static_cast<double>(in[p]));
    y[o] = static_cast<float>(__ddiv_rn(sum, count));
  }
}

// dx[(c*N + n)*P + p] = dy[n*C + c] / float(P): one thread per dx element.
__global__ void global_avg_pool_cnhw_backward_kernel(const float* __restrict__ dy, i64 channels, i64 batch,
                                                     i64 plane, float* __restrict__ dx) {
  const i64 total = channels * batch * plane;
  const float count = static_cast<float>(plane);
  for (i64 e = thread_x(); e < total; e += stride_x()) {
    const i64 r = e / plane, c = r / batch, n = r - c * batch;
    dx[e] = __fdiv_rn(dy[n * channels + c], count);
  }
}

// The geometry must describe a convolution whose kernel fits the padded image (the op checks it; a
// kernel larger than the padded image would give out_height() >= 1 by truncating division).
Status check_geometry(const char* op, const ConvGeometry& g) {
  if (g.kernel < 1 || g.stride < 1 || g.pad < 0 || g.height + 2 * g.pad < g.kernel || g.width + 2 * g.pad < g.kernel)
    return make_error(ErrorCode::invalid_argument, op,
                      "kernel " + std::to_string(g.kernel) + ", stride " + std::to_string(g.stride) + ", pad " +
                          std::to_string(g.pad) + " do not fit a " + std::to_string(g.height) + "x" +
                          std::to_string(g.width) + " image");
  return ok_status();
}

bool geometry_empty(const ConvGeometry& g) { return g.cin <= 0 || g.batch <= 0 || g.height <= 0 || g.width <= 0; }

}  // namespace

Status im2col_cnhw(const Stream& s, const ConvGeometry& g, const float* x, float* cols) {
  static constexpr const char* kOp = "cuda::kernels::im2col_cnhw";
  if (geometry_empty(g)) return ok_status();
  FE_TRY(check_geometry(kOp, g));
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  im2col_cnhw_kernel<<<grid_2d(g.columns(), g.patch()), detail::kBlock, 0, detail::raw_stream(s)>>>(
      x, conv_shape(g), cols);
  return detail::check_launch("im2col_cnhw_kernel");
}

Status col2im_cnhw(const Stream& s, const ConvGeometry& g, const float* dcols, bool accumulate, float* dx) {
  static constexpr const char* kOp = "cuda::kernels::col2im_cnhw";
  if (geometry_empty(g)) return ok_status();
  FE_TRY(check_geometry(kOp, g));
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  col2im_cnhw_kernel<<<grid_2d(g.batch * g.in_plane(), g.cin), detail::kBlock, 0, detail::raw_stream(s)>>>(
      dcols, conv_shape(g), accumulate, dx);
  return detail::check_launch("col2im_cnhw_kernel");
}

Status swap_leading_dims(const Stream& s, const float* x, i64 a, i64 b, i64 p, float* y) {
  if (a <= 0 || b <= 0 || p <= 0) return ok_status();
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  swap_leading_dims_kernel<<<detail::grid_for(a * b * p), detail::kBlock, 0, detail::raw_stream(s)>>>(x, a, b, p, y);
  return detail::check_launch("swap_leading_dims_kernel");
}

Status batch_norm_train(const Stream& s, const float* x, i64 channels, i64 m, const float* gamma, const float* beta,
                        double eps, double momentum, float* running_mean, float* running_var, float* save_mean,
                        float* save_rstd, const float* residual, bool relu, float* y) {
  if (channels <= 0 || m <= 0) return ok_status();
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  const unsigned blocks = static_cast<unsigned>(std::min(channels, detail::kMaxGridY));
  batch_norm_train_kernel<<<blocks, kBatchNormThreads, 0, detail::raw_stream(s)>>>(
      x, channels, m, gamma, beta, eps, momentum, running_mean, running_var, save_mean, save_rstd, residual, relu, y);
  return detail::check_launch("batch_norm_train_kernel");
}

Status batch_norm_eval(const Stream& s, const float* x, i64 channels, i64 m, const float* gamma, const float* beta,
                       const float* running_mean, const float* running_var, double eps, const float* residual,
                       bool relu, float* y) {
  if (channels <= 0 || m <= 0) return ok_status();
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  batch_norm_eval_kernel<<<grid_2d(m, channels), detail::kBlock, 0, detail::raw_stream(s)>>>(
      x, channels, m, gamma, beta, running_mean, running_var, eps, residual, relu, y);
  return detail::check_launch("batch_norm_eval_kernel");
}

Status batch_norm_backward(const Stream& s, const float* x, const float* y, const float* dy, i64 channels, i64 m,
                           const float* gamma, const float* save_mean, const float* save_rstd, float* dx,
                           float* dresidual, float* dgamma, float* dbeta, bool accumulate) {
  if (channels <= 0 || m <= 0) return ok_status();
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  const unsigned blocks = static_cast<unsigned>(std::min(channels, detail::kMaxGridY));
  batch_norm_backward_kernel<<<blocks, kBatchNormThreads, 0, detail::raw_stream(s)>>>(
      x, y, dy, channels, m, gamma, save_mean, save_rstd, dx, dresidual, dgamma, dbeta, accumulate);
  return detail::check_launch("batch_norm_backward_kernel");
}

Status global_avg_pool_cnhw(const Stream& s, const float* x, i64 channels, i64 batch, i64 plane, float* y) {
  if (channels <= 0 || batch <= 0 || plane <= 0) return ok_status();
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  global_avg_pool_cnhw_kernel<<<detail::grid_for(channels * batch), detail::kBlock, 0, detail::raw_stream(s)>>>(
      x, channels, batch, plane, y);
  return detail::check_launch("global_avg_pool_cnhw_kernel");
}

Status global_avg_pool_cnhw_backward(const Stream& s, const float* dy, i64 channels, i64 batch, i64 plane, float* dx) {
  if (channels <= 0 || batch <= 0 || plane <= 0) return ok_status();
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  global_avg_pool_cnhw_backward_kernel<<<detail::grid_for(channels * batch * plane), detail::kBlock, 0,
                                         detail::raw_stream(s)>>>(dy, channels, batch, plane, dx);
  return detail::check_launch("global_avg_pool_cnhw_backward_kernel");
}

}  // namespace ferrite::cuda::kernels
