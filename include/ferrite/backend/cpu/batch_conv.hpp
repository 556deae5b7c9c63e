#pragma once
// Fast CPU f32 kernels of the batch convolution family on the channel-major batch layout
// x[C, N, H, W] (ops/batch_conv.hpp says why that layout). Oracles: reference/batch_conv.hpp.
//
// 3x3 stride-1 "same" convolutions with >= 4 channels run Winograd F(2x2, 3x3) over the whole batch
// in all three directions (use_winograd below; backend/cpu/winograd.hpp). The others are GEMMs over
// the whole batch, cut into column bands of ~kBandFloats of im2col:
//   forward   Y[:, band]   = W[Cout, Cin k k] · cols[Cin k k, band]
//   data grad dcols        = Wᵀ · dY[:, band];  dX += col2im(dcols)
//   weight    dW          += dY[:, band] · colsᵀ    (each band's GEMM in float, the bands added in double)
// im2col fills rows in parallel (one task per patch row), col2im input channels in parallel (a
// channel owns its k*k rows of dcols and its plane of dX, so no two tasks write one element), and
// the SGEMM splits its output over the threads without ever splitting K (backend/cpu/gemm.hpp). The
// bands depend on the shapes alone, so every element is the same sequence of roundings for any
// thread count: bit-identical results with 1 or N threads. A 1x1 stride-1 convolution is one GEMM on
// x itself.
//
// BatchNorm: one task per channel (a channel is one contiguous row of M = N*H*W values): two passes
// in double for the statistics (8 lanes in a fixed order), one fused pass for scale, shift, the
// residual add and ReLU. The arithmetic is the one documented for the CUDA kernels of the same name
// (backend/cuda/kernels.hpp), so both backends round alike.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "ferrite/backend/cpu/gemm.hpp"
#include "ferrite/backend/cpu/winograd.hpp"
#include "ferrite/core/op_params.hpp"

namespace ferrite::cpu::batch_conv {

// Target floats of one band's im2col block (4 MiB: large enough for long GEMM K in the weight
// gradient, small enough to stay in the last-level cache with the band of dY).
inline constexpr std::int64_t kBandFloats = 1 << 20;

inline std::int64_t band_columns(const ConvGeometry& g) {
  const std::int64_t cols = g.columns();
  std::int64_t n = std::max<std::int64_t>(64, kBandFloats / std::max<std::int64_t>(1, g.patch()));
  n = n / 32 * 32;  // the SGEMM's NR
  return std::min(cols, n);
}

// Growing 64-byte aligned buffers of the calling thread (not the GEMM's): 0 im2col, 1 dcols,
// 2 Winograd weights, 3 flipped weights.
enum Scratch : int { kCols = 0, kDcols = 1, kWinogradWeights = 2, kFlippedWeights = 3, kScratchCount };
inline float* band_scratch(int which, std::size_t floats) {
  thread_local gemm_detail::PackBuffer buffers[kScratchCount];
  return buffers[which].reserve(floats);
}

namespace detail {
// The output columns [lo, hi) of one output row whose tap kx reads inside the image:
// 0 <= ox * s + kx - pad < W.
struct ValidRange {
  std::int64_t lo, hi;
};
inline ValidRange valid_columns(const ConvGeometry& g, std::int64_t kx, std::int64_t ox0, std::int64_t ox1) {
  const std::int64_t off = kx - g.pad, s = g.stride;
  const std::int64_t first = off >= 0 ? 0 : (-off + s - 1) / s;
  const std::int64_t end = g.width - 1 - off >= 0 ? (g.width - 1 - off) / s + 1 : 0;
  const std::int64_t lo = std::clamp(first, ox0, ox1);
  return {lo, std::clamp(end, lo, ox1)};
}
}  // namespace detail

// cols[r, j - c0] for columns j in [c0, c0 + nc) (row r = (ci*k + ky)*k + kx; see ConvGeometry).
// Each output row's run is zeros, a copy (stride 1: memcpy; stride 2: every other pixel), zeros.
inline void im2col(const ConvGeometry& g, const float* x, std::int64_t c0, std::int64_t nc, float* cols) {
  const std::int64_t k = g.kernel, Wo = g.out_width(), plane = g.out_plane();
  const std::int64_t s = g.stride;
  tbb::parallel_for(std::int64_t{0}, g.patch(), [&](std::int64_t r) {
    const std::int64_t ci = r / (k * k), ky = (r / k) % k, kx = r % k;
    float* row = cols + r * nc;
    std::int64_t j = c0;
    while (j < c0 + nc) {
      const std::int64_t n = j / plane, oy = (j % plane) / Wo, ox0 = j % Wo;
      const std::int64_t ox1 = std::min(Wo, ox0 + (c0 + nc - j));  // this output row's run
      float* out = row + (j - c0);  // out[ox - ox0] for ox in [ox0, ox1)
      const std::int64_t iy = oy * s + ky - g.pad;
      if (iy < 0 || iy >= g.height) {
        std::memset(out, 0, sizeof(float) * std::size_t(ox1 - ox0));
      } else {
        const float* src = x + ((ci * g.batch + n) * g.height + iy) * g.width;  // src[ox * s + off]
        const std::int64_t off = kx - g.pad;
        const auto [lo, hi] = detail::valid_columns(g, kx, ox0, ox1);
        for (std::int64_t ox = ox0; ox < lo; ++ox) out[ox - ox0] = 0.f;
        if (s == 1) {
          if (hi > lo) std::memcpy(out + (lo - ox0), src + (lo + off), sizeof(float) * std::size_t(hi - lo));
        } else {
          for (std::int64_t ox = lo; ox < hi; ++ox) out[ox - ox0] = src[ox * s + off];
        }
        for (std::int64_t ox = hi; ox < ox1; ++ox) out[ox - ox0] = 0.f;
      }
      j += ox1 - ox0;
    }
  });
}

// dx[ci, n, ...] += the band's dcols scattered back (ky, kx in order), input channels in parallel.
inline void col2im_add(const ConvGeometry& g, const float* dcols, std::int64_t c0, std::int64_t nc, float* dx) {
  const std::int64_t k = g.kernel, Wo = g.out_width(), plane = g.out_plane(), s = g.stride;
  tbb::parallel_for(std::int64_t{0}, g.cin, [&](std::int64_t ci) {
    for (std::int64_t ky = 0; ky < k; ++ky)
      for (std::int64_t kx = 0; kx < k; ++kx) {
        const float* row = dcols + ((ci * k + ky) * k + kx) * nc;
        std::int64_t j = c0;
        while (j < c0 + nc) {
          const std::int64_t n = j / plane, oy = (j % plane) / Wo, ox0 = j % Wo;
          const std::int64_t ox1 = std::min(Wo, ox0 + (c0 + nc - j));
          const std::int64_t iy = oy * s + ky - g.pad;
          if (iy >= 0 && iy < g.height) {
            float* dst = dx + ((ci * g.batch + n) * g.height + iy) * g.width;  // dst[ox * s + off]
            const float* in = row + (j - c0);                                   // in[ox - ox0]
            const std::int64_t off = kx - g.pad;
            const auto [lo, hi] = detail::valid_columns(g, kx, ox0, ox1);
            for (std::int64_t ox = lo; ox < hi; ++ox) dst[ox * s + off] += in[ox - ox0];
          }
          j += ox1 - ox0;
        }
      }
  });
}

// Whether a convolution runs as Winograd F(2x2, 3x3) (backend/cpu/winograd.hpp) over the whole batch:
// 3x3, stride 1, "same" padding, at least 4 input and output channels (below, the direct GEMM's K = 9 Cin is the
// better GEMM: see winograd_pays in ops/conv.hpp). Its tiles run over all samples, so even ResNet's
// 4 x 4 stage fills the GEMM panels (128 images x 4 tiles). The data gradient of such a convolution is
// again one (of dy with the weights flipped and transposed), and the weight gradient has its own
// Winograd form (conv3x3_f23_weight_grad: 16 GEMMs over the tiles), so all three use it.
inline bool use_winograd(const ConvGeometry& g, std::int64_t in_channels, std::int64_t out_channels) {
  return g.kernel == 3 && g.stride == 1 && g.pad == 1 && in_channels >= 4 && out_channels >= 4;
}

namespace detail {
inline winograd::PlanarBatch<const float> planes(const float* data, std::int64_t channels, const ConvGeometry& g) {
  return {data, channels, g.height, g.width, g.batch, g.batch * g.in_plane(), g.in_plane()};
}
inline winograd::PlanarBatch<float> planes(float* data, std::int64_t channels, const ConvGeometry& g) {
  return {data, channels, g.height, g.width, g.batch, g.batch * g.in_plane(), g.in_plane()};
}
}  // namespace detail

// y[Cout, N, Ho, Wo] = conv(x[Cin, N, H, W], w[Cout, Cin, k, k]).
inline void conv2d_forward(const ConvGeometry& g, const float* x, const float* w, float* y) {
  const std::int64_t K = g.patch(), cols = g.columns();
  if (use_winograd(g, g.cin, g.cout)) {
    using F23 = winograd::F23<>;
    float* u = band_scratch(kWinogradWeights, std::size_t(F23::packed_weight_floats(g.cout, g.cin)));
    winograd::transform_weights(w, g.cout, g.cin, u);
    winograd::conv3x3_f23(detail::planes(x, g.cin, g), u, nullptr, detail::planes(y, g.cout, g));
    return;
  }
  if (g.pointwise()) {
    sgemm(Trans::no, Trans::no, g.cout, cols, K, 1.f, w, K, x, cols, 0.f, y, cols);
    return;
  }
  const std::int64_t band = band_columns(g);
  for (std::int64_t c0 = 0; c0 < cols; c0 += band) {
    const std::int64_t nc = std::min(band, cols - c0);
    float* c = band_scratch(kCols, std::size_t(K * nc));
    im2col(g, x, c0, nc, c);
    sgemm(Trans::no, Trans::no, g.cout, nc, K, 1.f, w, K, c, nc, 0.f, y + c0, cols);
  }
}

// dx[Cin, N, H, W] = the data gradient, or dx += it when accumulate (a block's two input paths).
inline void conv2d_backward_data(const ConvGeometry& g, const float* dy, const float* w, bool accumulate, float* dx) {
  const std::int64_t K = g.patch(), cols = g.columns();
  if (use_winograd(g, g.cout, g.cin)) {
    // dx = conv3x3(dy, w') with w'[ci, co, ky, kx] = w[co, ci, 2 - ky, 2 - kx] ("same" padding 1).
    using F23 = winograd::F23<>;
    float* flipped = band_scratch(kFlippedWeights, std::size_t(g.cin * g.cout * 9));
    tbb::parallel_for(std::int64_t{0}, g.cin, [&](std::int64_t ci) {
      for (std::int64_t co = 0; co < g.cout; ++co)
        for (int t = 0; t < 9; ++t) flipped[(ci * g.cout + co) * 9 + t] = w[(co * g.cin + ci) * 9 + (8 - t)];
    });
    float* u = band_scratch(kWinogradWeights, std::size_t(F23::packed_weight_floats(g.cin, g.cout)));
    winograd::transform_weights(flipped, g.cin, g.cout, u);
    winograd::conv3x3_f23(detail::planes(dy, g.cout, g), u, nullptr, detail::planes(dx, g.cin, g), accumulate);
    return;
  }
  if (g.pointwise()) {
    sgemm(Trans::yes, Trans::no, K, cols, g.cout, 1.f, w, K, dy, cols, accumulate ? 1.f : 0.f, dx, cols);
    return;
  }
  if (!accumulate) std::memset(dx, 0, sizeof(float) * std::size_t(g.cin * g.batch * g.in_plane()));
  const std::int64_t band = band_columns(g);
  for (std::int64_t c0 = 0; c0 < cols; c0 += band) {
    const std::int64_t nc = std::min(band, cols - c0);
    float* dcols = band_scratch(kDcols, std::size_t(K * nc));
    sgemm(Trans::yes, Trans::no, K, nc, g.cout, 1.f, w, K, dy + c0, cols, 0.f, dcols, nc);
    col2im_add(g, dcols, c0, nc, dx);
  }
}

// dw[Cout, Cin, k, k] = the weight gradient + beta * dw (beta 0: overwrite, 1: accumulate).
// The weight gradient sums over every output pixel of the batch (K = N Ho Wo: 131,072 in ResNet's
// first stage). One float FMA chain that long loses digits (its error grows with K), so the sum is
// cut into bands of at most kWeightGradBand columns: each band's GEMM sums in float, the bands are
// added in double (a fixed order), and dw is rounded once. Measured on a ResNet-18 step, a single
// chain put the 3rd step's loss 8x further from a float64 reference than PyTorch's fp32 run.
inline constexpr std::int64_t kWeightGradBand = 2048;

inline void conv2d_backward_weight(const ConvGeometry& g, const float* x, const float* dy, float beta, float* dw) {
  const std::int64_t K = g.patch(), cols = g.columns();
  if (use_winograd(g, g.cin, g.cout)) {
    winograd::conv3x3_f23_weight_grad(detail::planes(x, g.cin, g), detail::planes(dy, g.cout, g), beta, dw);
    return;
  }
  const std::int64_t n = g.cout * K;
  // (A named reference: the tasks below must use this thread's buffer, not their own thread's.)
  thread_local std::vector<double> calling_thread_acc;
  std::vector<double>& acc = calling_thread_acc;
  acc.assign(std::size_t(n), 0.0);
  float* part = band_scratch(kDcols, std::size_t(n));
  const auto add_part = [&] {
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n, 4096), [&](const tbb::blocked_range<std::int64_t>& r) {
      for (std::int64_t i = r.begin(); i < r.end(); ++i) acc[std::size_t(i)] += double(part[i]);
    });
  };
  // Bands: the im2col bands (also cache-sized), cut again to at most kWeightGradBand columns.
  const std::int64_t band = std::min(g.pointwise() ? cols : band_columns(g), kWeightGradBand);
  for (std::int64_t c0 = 0; c0 < cols; c0 += band) {
    const std::int64_t nc = std::min(band, cols - c0);
    if (g.pointwise()) {  // x is already the matrix [Cin, N H W]
      sgemm(Trans::no, Trans::yes, g.cout, K, nc, 1.f, dy + c0, cols, x + c0, cols, 0.f, part, K);
    } else {
      float* c = band_scratch(kCols, std::size_t(K * nc));
      im2col(g, x, c0, nc, c);
      sgemm(Trans::no, Trans::yes, g.cout, K, nc, 1.f, dy + c0, cols, c, nc, 0.f, part, K);
    }
    add_part();
  }
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n, 4096), [&](const tbb::blocked_range<std::int64_t>& r) {
    for (std::int64_t i = r.begin(); i < r.end(); ++i)
      dw[i] = float(acc[std::size_t(i)] + (beta != 0.f ? double(beta) * double(dw[i]) : 0.0));
  });
}

namespace detail {
// Sum of f(i) over i in [0, n) in double: 8 lanes (vectorizable without reassociation), then the
// lanes and the tail in a fixed order.
template <class F>
inline double lane_sum(std::int64_t n, F f) {
  double lanes[8] = {};
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) lanes[l] += f(i + l);
  double s = 0;
  for (; i < n; ++i) s += f(i);
  for (int l = 0; l < 8; ++l) s += lanes[l];
  return s;
}
inline float relu_if(float v, bool relu) { return relu ? (v > 0.f ? v : 0.f) : v; }
}  // namespace detail

inline void batch_norm_train(const float* x, std::int64_t C, std::int64_t M, const float* gamma, const float* beta,
                             double eps, double momentum, float* running_mean, float* running_var, float* save_mean,
                             float* save_rstd, const float* residual, bool relu, float* y) {
  tbb::parallel_for(std::int64_t{0}, C, [&](std::int64_t c) {
    const float* __restrict xc = x + c * M;
    const double mean = detail::lane_sum(M, [&](std::int64_t i) { return double(xc[i]); }) / double(M);
    const double var = detail::lane_sum(M, [&](std::int64_t i) {
                         const double d = double(xc[i]) - mean;
                         return d * d;
                       }) / double(M);
    const float m = float(mean), r = float(1.0 / std::sqrt(var + eps));
    save_mean[c] = m;
    save_rstd[c] = r;
    if (running_mean) running_mean[c] = float((1 - momentum) * double(running_mean[c]) + momentum * mean);
    if (running_var)
      running_var[c] = float((1 - momentum) * double(running_var[c]) + momentum * var * double(M) / double(M - 1));
    const float scale = float(double(gamma[c]) * double(r)), shift = beta[c];
    float* __restrict yc = y + c * M;
    if (residual) {
      const float* __restrict rc = residual + c * M;
      for (std::int64_t i = 0; i < M; ++i) yc[i] = detail::relu_if(std::fma(xc[i] - m, scale, shift) + rc[i], relu);
    } else {
      for (std::int64_t i = 0; i < M; ++i) yc[i] = detail::relu_if(std::fma(xc[i] - m, scale, shift), relu);
    }
  });
}

inline void batch_norm_eval(const float* x, std::int64_t C, std::int64_t M, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var, double eps, const float* residual,
                            bool relu, float* y) {
  tbb::parallel_for(std::int64_t{0}, C, [&](std::int64_t c) {
    const float m = running_mean[c], shift = beta[c];
    const float scale = float(double(gamma[c]) / std::sqrt(double(running_var[c]) + eps));
    const float* __restrict xc = x + c * M;
    float* __restrict yc = y + c * M;
    for (std::int64_t i = 0; i < M; ++i) {
      float v = std::fma(xc[i] - m, scale, shift);
      if (residual) v += residual[c * M + i];
      yc[i] = detail::relu_if(v, relu);
    }
  });
}

namespace detail {
// One channel of batch_norm_backward; Relu: g = dy masked by y > 0 (branch-free, so both loops vectorize).
template <bool Relu>
inline void batch_norm_backward_channel(const float* __restrict xc, const float* __restrict yc, const float* dyc, std::int64_t M,
                                        float gamma, float m, float r_f, float* __restrict dxc, float* drc, float& dgamma,
                                        float& dbeta, bool accumulate) {
  const auto g = [&](std::int64_t i) { return Relu ? (yc[i] > 0.f ? dyc[i] : 0.f) : dyc[i]; };
  // Both sums in one pass: 8 lanes each, added in a fixed order at the end.
  double sg_l[8] = {}, sgx_l[8] = {};
  std::int64_t i = 0;
  for (; i + 8 <= M; i += 8)
    for (int l = 0; l < 8; ++l) {
      const double gi = g(i + l);
      sg_l[l] += gi;
      sgx_l[l] += gi * (double(xc[i + l]) - double(m));
    }
  double sg = 0, sgx = 0;
  for (; i < M; ++i) {
    sg += double(g(i));
    sgx += double(g(i)) * (double(xc[i]) - double(m));
  }
  for (int l = 0; l < 8; ++l) {
    sg += sg_l[l];
    sgx += sgx_l[l];
  }
  const double r = double(r_f);
  dgamma = accumulate ? dgamma + float(sgx * r) : float(sgx * r);
  dbeta = accumulate ? dbeta + float(sg) : float(sg);
  const float a = float(double(gamma) * r), mg = float(sg / double(M)), k = float(sgx * r * r / double(M));
  // dresidual may alias dy: each element's g is read before it is written.
  if (dxc && drc) {
    for (std::int64_t j = 0; j < M; ++j) {
      const float gj = g(j);
      dxc[j] = a * std::fma(-(xc[j] - m), k, gj - mg);
      drc[j] = gj;
    }
  } else if (dxc) {
    for (std::int64_t j = 0; j < M; ++j) dxc[j] = a * std::fma(-(xc[j] - m), k, g(j) - mg);
  } else if (drc) {
    for (std::int64_t j = 0; j < M; ++j) drc[j] = g(j);
  }
}
}  // namespace detail

// Backward of batch_norm_train (the arithmetic of cuda::kernels::batch_norm_backward): per channel
// sg = sum g, sgx = sum g (x - mean) in double, then dgamma, dbeta, dx = a fma(-(x - mean), k, g - mg),
// dresidual = g.
inline void batch_norm_backward(const float* x, const float* y, const float* dy, std::int64_t C, std::int64_t M,
                                const float* gamma, const float* save_mean, const float* save_rstd, float* dx,
                                float* dresidual, float* dgamma, float* dbeta, bool accumulate) {
  tbb::parallel_for(std::int64_t{0}, C, [&](std::int64_t c) {
    float* dxc = dx ? dx + c * M : nullptr;
    float* drc = dresidual ? dresidual + c * M : nullptr;
    if (y)
      detail::batch_norm_backward_channel<true>(x + c * M, y + c * M, dy + c * M, M, gamma[c], save_mean[c], save_rstd[c], dxc,
                                                drc, dgamma[c], dbeta[c], accumulate);
    else
      detail::batch_norm_backward_channel<false>(x + c * M, nullptr, dy + c * M, M, gamma[c], save_mean[c], save_rstd[c], dxc,
                                                 drc, dgamma[c], dbeta[c], accumulate);
  });
}

inline void global_avg_pool_cnhw(const float* x, std::int64_t C, std::int64_t N, std::int64_t P, float* y) {
  tbb::parallel_for(std::int64_t{0}, C, [&](std::int64_t c) {
    for (std::int64_t n = 0; n < N; ++n) {
      const float* xs = x + (c * N + n) * P;
      double s = 0;
      for (std::int64_t p = 0; p < P; ++p) s += double(xs[p]);
      y[n * C + c] = float(s / double(P));
    }
  });
}

inline void global_avg_pool_cnhw_backward(const float* dy, std::int64_t C, std::int64_t N, std::int64_t P, float* dx) {
  tbb::parallel_for(std::int64_t{0}, C, [&](std::int64_t c) {
    for (std::int64_t n = 0; n < N; ++n) std::fill_n(dx + (c * N + n) * P, P, dy[n * C + c] / float(P));
  });
}

// y[j, i, p] = x[i, j, p] for x[A, B, P] (NCHW <-> CNHW).
inline void swap_leading_dims(const float* x, std::int64_t A, std::int64_t B, std::int64_t P, float* y) {
  tbb::parallel_for(std::int64_t{0}, A, [&](std::int64_t i) {
    for (std::int64_t j = 0; j < B; ++j) std::memcpy(y + (j * A + i) * P, x + (i * B + j) * P, sizeof(float) * std::size_t(P));
  });
}

}  // namespace ferrite::cpu::batch_conv
