#pragma once
// Fast CPU f32 kernels of the batch convolution family on the channel-major batch layout
// x[C, N, H, W] (ops/batch_conv.hpp says why that layout). Oracles: reference/batch_conv.hpp.
//
// Convolution as GEMMs over the whole batch, cut into column bands of ~kBandFloats of im2col:
//   forward   Y[:, band]   = W[Cout, Cin k k] · cols[Cin k k, band]
//   data grad dcols        = Wᵀ · dY[:, band];  dX += col2im(dcols)
//   weight    dW (+)=        dY[:, band] · colsᵀ          (bands added in order)
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

#include <tbb/parallel_for.h>

#include "ferrite/backend/cpu/gemm.hpp"
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

// The band's scratch: a growing 64-byte aligned buffer of the calling thread (not the GEMM's).
inline float* band_scratch(int which, std::size_t floats) {
  thread_local gemm_detail::PackBuffer buffers[2];
  return buffers[which].reserve(floats);
}

// cols[r, j - c0] for columns j in [c0, c0 + nc) (row r = (ci*k + ky)*k + kx; see ConvGeometry).
inline void im2col(const ConvGeometry& g, const float* x, std::int64_t c0, std::int64_t nc, float* cols) {
  const std::int64_t k = g.kernel, Ho = g.out_height(), Wo = g.out_width(), plane = g.out_plane();
  const std::int64_t s = g.stride;
  tbb::parallel_for(std::int64_t{0}, g.patch(), [&](std::int64_t r) {
    const std::int64_t ci = r / (k * k), ky = (r / k) % k, kx = r % k;
    float* row = cols + r * nc;
    std::int64_t j = c0;
    while (j < c0 + nc) {
      const std::int64_t n = j / plane, oy = (j % plane) / Wo, ox0 = j % Wo;
      const std::int64_t ox1 = std::min(Wo, ox0 + (c0 + nc - j));  // this output row's run
      float* out = row + (j - c0);
      const std::int64_t iy = oy * s + ky - g.pad;
      if (iy < 0 || iy >= g.height) {
        std::memset(out, 0, sizeof(float) * std::size_t(ox1 - ox0));
      } else {
        const float* src = x + ((ci * g.batch + n) * g.height + iy) * g.width;
        // valid ox: 0 <= ox*s + kx - pad < W
        for (std::int64_t ox = ox0; ox < ox1; ++ox) {
          const std::int64_t ix = ox * s + kx - g.pad;
          out[ox - ox0] = (ix >= 0 && ix < g.width) ? src[ix] : 0.f;
        }
      }
      j += ox1 - ox0;
    }
    (void)Ho;
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
            float* dst = dx + ((ci * g.batch + n) * g.height + iy) * g.width;
            const float* in = row + (j - c0);
            for (std::int64_t ox = ox0; ox < ox1; ++ox) {
              const std::int64_t ix = ox * s + kx - g.pad;
              if (ix >= 0 && ix < g.width) dst[ix] += in[ox - ox0];
            }
          }
          j += ox1 - ox0;
        }
      }
  });
}

// y[Cout, N, Ho, Wo] = conv(x[Cin, N, H, W], w[Cout, Cin, k, k]).
inline void conv2d_forward(const ConvGeometry& g, const float* x, const float* w, float* y) {
  const std::int64_t K = g.patch(), cols = g.columns();
  if (g.pointwise()) {
    sgemm(Trans::no, Trans::no, g.cout, cols, K, 1.f, w, K, x, cols, 0.f, y, cols);
    return;
  }
  const std::int64_t band = band_columns(g);
  for (std::int64_t c0 = 0; c0 < cols; c0 += band) {
    const std::int64_t nc = std::min(band, cols - c0);
    float* c = band_scratch(0, std::size_t(K * nc));
    im2col(g, x, c0, nc, c);
    sgemm(Trans::no, Trans::no, g.cout, nc, K, 1.f, w, K, c, nc, 0.f, y + c0, cols);
  }
}

// dx[Cin, N, H, W] = the data gradient, or dx += it when accumulate (a block's two input paths).
inline void conv2d_backward_data(const ConvGeometry& g, const float* dy, const float* w, bool accumulate, float* dx) {
  const std::int64_t K = g.patch(), cols = g.columns();
  if (g.pointwise()) {
    sgemm(Trans::yes, Trans::no, K, cols, g.cout, 1.f, w, K, dy, cols, accumulate ? 1.f : 0.f, dx, cols);
    return;
  }
  if (!accumulate) std::memset(dx, 0, sizeof(float) * std::size_t(g.cin * g.batch * g.in_plane()));
  const std::int64_t band = band_columns(g);
  for (std::int64_t c0 = 0; c0 < cols; c0 += band) {
    const std::int64_t nc = std::min(band, cols - c0);
    float* dcols = band_scratch(1, std::size_t(K * nc));
    sgemm(Trans::yes, Trans::no, K, nc, g.cout, 1.f, w, K, dy + c0, cols, 0.f, dcols, nc);
    col2im_add(g, dcols, c0, nc, dx);
  }
}

// dw[Cout, Cin, k, k] = the weight gradient + beta * dw (beta 0: overwrite, 1: accumulate).
inline void conv2d_backward_weight(const ConvGeometry& g, const float* x, const float* dy, float beta, float* dw) {
  const std::int64_t K = g.patch(), cols = g.columns();
  if (g.pointwise()) {
    sgemm(Trans::no, Trans::yes, g.cout, K, cols, 1.f, dy, cols, x, cols, beta, dw, K);
    return;
  }
  const std::int64_t band = band_columns(g);
  for (std::int64_t c0 = 0; c0 < cols; c0 += band) {
    const std::int64_t nc = std::min(band, cols - c0);
    float* c = band_scratch(0, std::size_t(K * nc));
    im2col(g, x, c0, nc, c);
    sgemm(Trans::no, Trans::yes, g.cout, K, nc, 1.f, dy + c0, cols, c, nc, c0 == 0 ? beta : 1.f, dw, K);
  }
  if (cols == 0 && beta == 0.f) std::fill_n(dw, g.cout * K, 0.f);
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

inline void batch_norm_backward(const float* x, const float* y, const float* dy, std::int64_t C, std::int64_t M,
                                const float* gamma, const float* save_mean, const float* save_rstd, float* dx,
                                float* dresidual, float* dgamma, float* dbeta, bool accumulate) {
  tbb::parallel_for(std::int64_t{0}, C, [&](std::int64_t c) {
    const float* __restrict xc = x + c * M;
    const float* __restrict dyc = dy + c * M;
    const float* __restrict yc = y ? y + c * M : nullptr;
    const float m = save_mean[c];
    const auto g = [&](std::int64_t i) { return yc && !(yc[i] > 0.f) ? 0.f : dyc[i]; };
    const double sg = detail::lane_sum(M, [&](std::int64_t i) { return double(g(i)); });
    const double sgx = detail::lane_sum(M, [&](std::int64_t i) { return double(g(i)) * (double(xc[i]) - double(m)); });
    const double r = double(save_rstd[c]);
    dgamma[c] = accumulate ? dgamma[c] + float(sgx * r) : float(sgx * r);
    dbeta[c] = accumulate ? dbeta[c] + float(sg) : float(sg);
    const float a = float(double(gamma[c]) * r), mg = float(sg / double(M)), k = float(sgx * r * r / double(M));
    // dresidual may alias dy: each element's g is read before it is written.
    float* dxc = dx ? dx + c * M : nullptr;
    float* drc = dresidual ? dresidual + c * M : nullptr;
    for (std::int64_t i = 0; i < M; ++i) {
      const float gi = g(i);
      if (dxc) dxc[i] = a * std::fma(-(xc[i] - m), k, gi - mg);
      if (drc) drc[i] = gi;
    }
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
