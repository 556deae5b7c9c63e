#pragma once
// Scalar reference implementations (oracles) of the convolution family: ops/conv.hpp, ops/norm.hpp,
// ops/pool.hpp. Direct loops written like the PyTorch documentation's formulas, accumulating in
// double; the fast versions are tested against these. No shape checks (the callers' job).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "ferrite/core/chw.hpp"

namespace ferrite::cpu::reference {

// Conv2d, stride 1, "same" zero padding k/2 (k odd), cross-correlation like PyTorch:
//   y[co, i, j] = bias[co] + sum_{ci, ky, kx} w[co, ci, ky, kx] * x[ci, i + ky - k/2, j + kx - k/2]
// w: [Cout, Cin, k, k]; bias: [Cout] or null.
template <class T>
void conv2d_same(ChwView<const T> x, const T* w, int k, const T* bias, ChwView<T> y) {
  const int pad = k / 2;
  for (std::int64_t co = 0; co < y.channels; ++co)
    for (std::int64_t i = 0; i < y.height; ++i)
      for (std::int64_t j = 0; j < y.width; ++j) {
        double acc = bias ? double(bias[co]) : 0.0;
        for (std::int64_t ci = 0; ci < x.channels; ++ci)
          for (int ky = 0; ky < k; ++ky)
            for (int kx = 0; kx < k; ++kx) {
              const std::int64_t sy = i + ky - pad, sx = j + kx - pad;
              if (sy < 0 || sy >= x.height || sx < 0 || sx >= x.width) continue;
              acc += double(w[((co * x.channels + ci) * k + ky) * k + kx]) * double(x(ci, sy, sx));
            }
        y(co, i, j) = static_cast<T>(acc);
      }
}

// ConvTranspose2d, kernel 2, stride 2, no padding: every output pixel receives exactly one tap.
//   y[co, 2i + ky, 2j + kx] = bias[co] + sum_ci w[ci, co, ky, kx] * x[ci, i, j]
// w: [Cin, Cout, 2, 2] (PyTorch's layout for transposed convolutions); bias: [Cout] or null.
template <class T>
void conv_transpose2d_k2s2(ChwView<const T> x, const T* w, const T* bias, ChwView<T> y) {
  for (std::int64_t co = 0; co < y.channels; ++co)
    for (std::int64_t oy = 0; oy < y.height; ++oy)
      for (std::int64_t ox = 0; ox < y.width; ++ox) {
        const std::int64_t i = oy / 2, j = ox / 2, ky = oy % 2, kx = ox % 2;
        double acc = bias ? double(bias[co]) : 0.0;
        for (std::int64_t ci = 0; ci < x.channels; ++ci)
          acc += double(w[((ci * y.channels + co) * 2 + ky) * 2 + kx]) * double(x(ci, i, j));
        y(co, oy, ox) = static_cast<T>(acc);
      }
}

// GroupNorm (one sample): channels split into `groups` consecutive groups; mean and biased variance
// over (C/groups, H, W); y = (x - mean) / sqrt(var + eps) * gamma[c] + beta[c]; then ELU if asked.
// Two passes (mean, then squared deviations) in double. gamma/beta may be null (affine=False).
template <class T>
void group_norm(ChwView<const T> x, std::int64_t groups, const T* gamma, const T* beta, double eps, bool elu,
                ChwView<T> y) {
  const std::int64_t per_group = x.channels / groups;
  const std::int64_t plane = x.plane();
  for (std::int64_t g = 0; g < groups; ++g) {
    const std::int64_t c0 = g * per_group, n = per_group * plane;
    double mean = 0;
    for (std::int64_t c = c0; c < c0 + per_group; ++c)
      for (std::int64_t p = 0; p < plane; ++p) mean += double(x.channel(c)[p]);
    mean /= double(n);
    double var = 0;
    for (std::int64_t c = c0; c < c0 + per_group; ++c)
      for (std::int64_t p = 0; p < plane; ++p) {
        const double dlt = double(x.channel(c)[p]) - mean;
        var += dlt * dlt;
      }
    var /= double(n);
    const double rstd = 1.0 / std::sqrt(var + eps);
    for (std::int64_t c = c0; c < c0 + per_group; ++c)
      for (std::int64_t p = 0; p < plane; ++p) {
        double v = (double(x.channel(c)[p]) - mean) * rstd;
        v = v * (gamma ? double(gamma[c]) : 1.0) + (beta ? double(beta[c]) : 0.0);
        if (elu) v = v > 0 ? v : std::expm1(v);
        y.channel(c)[p] = static_cast<T>(v);
      }
  }
}

// ELU(alpha = 1): x if x > 0 else exp(x) - 1, element-wise over n values.
template <class T>
void elu(const T* x, std::int64_t n, T* y) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : static_cast<T>(std::expm1(double(x[i])));
}

// MaxPool2d(2, stride 2), floor: y[c, i, j] = max of x[c, 2i..2i+1, 2j..2j+1].
template <class T>
void maxpool2x2(ChwView<const T> x, ChwView<T> y) {
  for (std::int64_t c = 0; c < y.channels; ++c)
    for (std::int64_t i = 0; i < y.height; ++i)
      for (std::int64_t j = 0; j < y.width; ++j) {
        T m = -std::numeric_limits<T>::infinity();
        for (int dy = 0; dy < 2; ++dy)
          for (int dx = 0; dx < 2; ++dx) m = std::max(m, x(c, 2 * i + dy, 2 * j + dx));
        y(c, i, j) = m;
      }
}

// torch.cat([a, b], dim=channels).
template <class T>
void concat_channels(ChwView<const T> a, ChwView<const T> b, ChwView<T> y) {
  for (std::int64_t i = 0; i < a.numel(); ++i) y.data[i] = a.data[i];
  for (std::int64_t i = 0; i < b.numel(); ++i) y.data[a.numel() + i] = b.data[i];
}

}  // namespace ferrite::cpu::reference
