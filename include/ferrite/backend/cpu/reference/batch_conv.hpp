#pragma once
// Scalar reference implementations (oracles) of the batch convolution family (ops/batch_conv.hpp,
// ops/batch_norm.hpp, global average pooling in ops/pool.hpp), on the channel-major batch layout
// x[C, N, H, W]. Direct loops written like PyTorch's documented formulas, accumulating in double;
// the f64 kernels of those ops and the oracles of their tests. No shape checks (the callers' job).
#include <cmath>
#include <cstdint>
#include <vector>

#include "ferrite/core/op_params.hpp"

namespace ferrite::cpu::reference {

namespace batch_detail {
// x[ci, n, iy, ix] read by output (n, oy, ox) through tap (ky, kx), or -1 when it is padding.
inline std::int64_t tap_index(const ConvGeometry& g, std::int64_t ci, std::int64_t n, std::int64_t oy,
                              std::int64_t ox, std::int64_t ky, std::int64_t kx) {
  const std::int64_t iy = oy * g.stride + ky - g.pad, ix = ox * g.stride + kx - g.pad;
  if (iy < 0 || iy >= g.height || ix < 0 || ix >= g.width) return -1;
  return ((ci * g.batch + n) * g.height + iy) * g.width + ix;
}
}  // namespace batch_detail

// y[co, n, oy, ox] = sum_{ci, ky, kx} w[co, ci, ky, kx] * x[ci, n, oy*s + ky - p, ox*s + kx - p]
// (PyTorch's Conv2d without bias, cross-correlation).
template <class T>
void conv2d_cnhw(const ConvGeometry& g, const T* x, const T* w, T* y) {
  const std::int64_t k = g.kernel, Ho = g.out_height(), Wo = g.out_width();
  for (std::int64_t co = 0; co < g.cout; ++co)
    for (std::int64_t n = 0; n < g.batch; ++n)
      for (std::int64_t oy = 0; oy < Ho; ++oy)
        for (std::int64_t ox = 0; ox < Wo; ++ox) {
          double acc = 0;
          for (std::int64_t ci = 0; ci < g.cin; ++ci)
            for (std::int64_t ky = 0; ky < k; ++ky)
              for (std::int64_t kx = 0; kx < k; ++kx) {
                const std::int64_t i = batch_detail::tap_index(g, ci, n, oy, ox, ky, kx);
                if (i >= 0) acc += double(w[((co * g.cin + ci) * k + ky) * k + kx]) * double(x[i]);
              }
          y[((co * g.batch + n) * Ho + oy) * Wo + ox] = static_cast<T>(acc);
        }
}

// dx = the adjoint of conv2d_cnhw in x: dx[i] = sum over the (co, output, tap) that read x[i] of
// w * dy; dx += that when accumulate.
template <class T>
void conv2d_cnhw_backward_data(const ConvGeometry& g, const T* dy, const T* w, bool accumulate, T* dx) {
  const std::int64_t k = g.kernel, Ho = g.out_height(), Wo = g.out_width();
  std::vector<double> acc(static_cast<std::size_t>(g.cin * g.batch * g.height * g.width), 0.0);
  for (std::int64_t co = 0; co < g.cout; ++co)
    for (std::int64_t n = 0; n < g.batch; ++n)
      for (std::int64_t oy = 0; oy < Ho; ++oy)
        for (std::int64_t ox = 0; ox < Wo; ++ox) {
          const double d = double(dy[((co * g.batch + n) * Ho + oy) * Wo + ox]);
          for (std::int64_t ci = 0; ci < g.cin; ++ci)
            for (std::int64_t ky = 0; ky < k; ++ky)
              for (std::int64_t kx = 0; kx < k; ++kx) {
                const std::int64_t i = batch_detail::tap_index(g, ci, n, oy, ox, ky, kx);
                if (i >= 0) acc[static_cast<std::size_t>(i)] += double(w[((co * g.cin + ci) * k + ky) * k + kx]) * d;
              }
        }
  for (std::size_t i = 0; i < acc.size(); ++i) dx[i] = static_cast<T>(acc[i] + (accumulate ? double(dx[i]) : 0.0));
}

// dw[co, ci, ky, kx] = sum over (n, oy, ox) of dy[co, n, oy, ox] * x[tap]; dw = that + beta * dw.
template <class T>
void conv2d_cnhw_backward_weight(const ConvGeometry& g, const T* x, const T* dy, double beta, T* dw) {
  const std::int64_t k = g.kernel, Ho = g.out_height(), Wo = g.out_width();
  for (std::int64_t co = 0; co < g.cout; ++co)
    for (std::int64_t ci = 0; ci < g.cin; ++ci)
      for (std::int64_t ky = 0; ky < k; ++ky)
        for (std::int64_t kx = 0; kx < k; ++kx) {
          double acc = 0;
          for (std::int64_t n = 0; n < g.batch; ++n)
            for (std::int64_t oy = 0; oy < Ho; ++oy)
              for (std::int64_t ox = 0; ox < Wo; ++ox) {
                const std::int64_t i = batch_detail::tap_index(g, ci, n, oy, ox, ky, kx);
                if (i >= 0) acc += double(dy[((co * g.batch + n) * Ho + oy) * Wo + ox]) * double(x[i]);
              }
          T& out = dw[((co * g.cin + ci) * k + ky) * k + kx];
          out = static_cast<T>(acc + (beta != 0.0 ? beta * double(out) : 0.0));
        }
}

// BatchNorm2d, training mode, over x[C, M]: per channel the batch mean and biased variance;
// y = (x - mean) / sqrt(var + eps) * gamma + beta (+ residual), ReLU when relu; saves mean and
// 1/sqrt(var + eps); running statistics (if given) with PyTorch's momentum and unbiased variance.
template <class T>
void batch_norm_train(const T* x, std::int64_t C, std::int64_t M, const T* gamma, const T* beta, double eps,
                      double momentum, T* running_mean, T* running_var, T* save_mean, T* save_rstd, const T* residual,
                      bool relu, T* y) {
  for (std::int64_t c = 0; c < C; ++c) {
    const T* xc = x + c * M;
    double s = 0;
    for (std::int64_t i = 0; i < M; ++i) s += double(xc[i]);
    const double mean = s / double(M);
    double q = 0;
    for (std::int64_t i = 0; i < M; ++i) q += (double(xc[i]) - mean) * (double(xc[i]) - mean);
    const double var = q / double(M), rstd = 1.0 / std::sqrt(var + eps);
    save_mean[c] = static_cast<T>(mean);
    save_rstd[c] = static_cast<T>(rstd);
    if (running_mean) running_mean[c] = static_cast<T>((1 - momentum) * double(running_mean[c]) + momentum * mean);
    if (running_var)
      running_var[c] =
          static_cast<T>((1 - momentum) * double(running_var[c]) + momentum * var * double(M) / double(M - 1));
    for (std::int64_t i = 0; i < M; ++i) {
      double v = (double(xc[i]) - mean) * rstd * double(gamma[c]) + double(beta[c]);
      if (residual) v += double(residual[c * M + i]);
      y[c * M + i] = static_cast<T>(relu && !(v > 0) ? 0.0 : v);
    }
  }
}

template <class T>
void batch_norm_eval(const T* x, std::int64_t C, std::int64_t M, const T* gamma, const T* beta, const T* running_mean,
                     const T* running_var, double eps, const T* residual, bool relu, T* y) {
  for (std::int64_t c = 0; c < C; ++c) {
    const double scale = double(gamma[c]) / std::sqrt(double(running_var[c]) + eps);
    for (std::int64_t i = 0; i < M; ++i) {
      double v = (double(x[c * M + i]) - double(running_mean[c])) * scale + double(beta[c]);
      if (residual) v += double(residual[c * M + i]);
      y[c * M + i] = static_cast<T>(relu && !(v > 0) ? 0.0 : v);
    }
  }
}

// Backward of batch_norm_train from its saved statistics: g = dy (masked by y > 0 when y is given),
// x̂ = (x - mean) rstd, dgamma (+)= sum g x̂, dbeta (+)= sum g,
// dx = gamma rstd (g - mean(g) - x̂ mean(g x̂)), dresidual = g.
template <class T>
void batch_norm_backward(const T* x, const T* y, const T* dy, std::int64_t C, std::int64_t M, const T* gamma,
                         const T* save_mean, const T* save_rstd, T* dx, T* dresidual, T* dgamma, T* dbeta,
                         bool accumulate) {
  for (std::int64_t c = 0; c < C; ++c) {
    const double mean = double(save_mean[c]), rstd = double(save_rstd[c]);
    const auto g = [&](std::int64_t i) {
      const std::int64_t j = c * M + i;
      return y && !(double(y[j]) > 0) ? 0.0 : double(dy[j]);
    };
    double sg = 0, sgx = 0;
    for (std::int64_t i = 0; i < M; ++i) {
      sg += g(i);
      sgx += g(i) * (double(x[c * M + i]) - mean) * rstd;
    }
    dgamma[c] = static_cast<T>(sgx + (accumulate ? double(dgamma[c]) : 0.0));
    dbeta[c] = static_cast<T>(sg + (accumulate ? double(dbeta[c]) : 0.0));
    for (std::int64_t i = 0; i < M; ++i) {
      const double gi = g(i), xhat = (double(x[c * M + i]) - mean) * rstd;
      if (dx) dx[c * M + i] = static_cast<T>(double(gamma[c]) * rstd * (gi - sg / double(M) - xhat * sgx / double(M)));
      if (dresidual) dresidual[c * M + i] = static_cast<T>(gi);
    }
  }
}

// y[n, c] = mean over p of x[c, n, p]; backward dx[c, n, p] = dy[n, c] / P.
template <class T>
void global_avg_pool_cnhw(const T* x, std::int64_t C, std::int64_t N, std::int64_t P, T* y) {
  for (std::int64_t c = 0; c < C; ++c)
    for (std::int64_t n = 0; n < N; ++n) {
      double s = 0;
      for (std::int64_t p = 0; p < P; ++p) s += double(x[(c * N + n) * P + p]);
      y[n * C + c] = static_cast<T>(s / double(P));
    }
}
template <class T>
void global_avg_pool_cnhw_backward(const T* dy, std::int64_t C, std::int64_t N, std::int64_t P, T* dx) {
  for (std::int64_t c = 0; c < C; ++c)
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t p = 0; p < P; ++p) dx[(c * N + n) * P + p] = static_cast<T>(double(dy[n * C + c]) / double(P));
}

// y[j, i, p] = x[i, j, p] for x[A, B, P].
template <class T>
void swap_leading_dims(const T* x, std::int64_t A, std::int64_t B, std::int64_t P, T* y) {
  for (std::int64_t i = 0; i < A; ++i)
    for (std::int64_t j = 0; j < B; ++j)
      for (std::int64_t p = 0; p < P; ++p) y[(j * A + i) * P + p] = x[(i * B + j) * P + p];
}

}  // namespace ferrite::cpu::reference
