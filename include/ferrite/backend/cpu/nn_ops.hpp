#pragma once
// The small per-element and per-row kernels of neural-network layers on the CPU, for T = float (the
// fast path) and T = double (the f64 reference of the op layer; also the scalar oracles in
// backend/cpu/reference/nn_ops.hpp check them). The op layer (ops/) checks shapes first. These loops are written so that
// the compiler vectorizes them (contiguous inner loops, no aliasing through the views' rows) and
// keep a fixed accumulation order, so results never depend on the thread count.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "ferrite/core/result.hpp"
#include "ferrite/core/op_params.hpp"
#include "ferrite/core/view.hpp"

namespace ferrite::cpu {

namespace detail {
template <class A, class B>
Status check_same_shape(const char* op, const A& a, const B& b) {
  if (a.rows != b.rows || a.cols != b.cols)
    return make_error(ErrorCode::shape_mismatch, op, "operands must have the same shape",
                      a.shape().to_string() + " vs " + b.shape().to_string());
  return {};
}
template <class T>
Status check_labels(const char* op, const std::int32_t* labels, std::int64_t rows, std::int64_t classes) {
  for (std::int64_t i = 0; i < rows; ++i)
    if (labels[i] < 0 || labels[i] >= classes)
      return make_error(ErrorCode::invalid_argument, op,
                        "label " + std::to_string(labels[i]) + " at row " + std::to_string(i) +
                            " is outside [0, " + std::to_string(classes) + ")");
  return {};
}
}  // namespace detail

// y[B, N] = act(y + bias[N]) in place. bias may be null.
template <class T>
void bias_activation(MatView<T> y, const T* bias, Activation act) {
  for (std::int64_t i = 0; i < y.rows; ++i) {
    T* __restrict row = y.row(i);
    if (bias) {
      if (act == Activation::relu)
        for (std::int64_t j = 0; j < y.cols; ++j) row[j] = std::max(row[j] + bias[j], T(0));
      else
        for (std::int64_t j = 0; j < y.cols; ++j) row[j] += bias[j];
    } else if (act == Activation::relu) {
      for (std::int64_t j = 0; j < y.cols; ++j) row[j] = std::max(row[j], T(0));
    }
  }
}

// dx[B, N] = dy where y > 0 else 0. dx may alias dy.
template <class T>
Status relu_backward(MatView<const T> y, MatView<const T> dy, MatView<T> dx) {
  FE_TRY(detail::check_same_shape("relu_backward", y, dy));
  FE_TRY(detail::check_same_shape("relu_backward", y, dx));
  for (std::int64_t i = 0; i < y.rows; ++i) {
    const T* yr = y.row(i);
    const T* dyr = dy.row(i);
    T* dxr = dx.row(i);
    for (std::int64_t j = 0; j < y.cols; ++j) dxr[j] = yr[j] > T(0) ? dyr[j] : T(0);
  }
  return {};
}

// out[N] = sum over rows of x[B, N]; rows are added in order 0..B-1 (vectorized across columns).
// accumulate: out[N] += the sums (added after the sums are formed, so += of a zeroed out equals =).
template <class T>
void column_sums(MatView<const T> x, T* __restrict out, bool accumulate = false) {
  if (accumulate) {
    for (std::int64_t j = 0; j < x.cols; ++j) {
      T s = T(0);
      for (std::int64_t i = 0; i < x.rows; ++i) s += x(i, j);
      out[j] += s;
    }
    return;
  }
  for (std::int64_t j = 0; j < x.cols; ++j) out[j] = T(0);
  for (std::int64_t i = 0; i < x.rows; ++i) {
    const T* __restrict r = x.row(i);
    for (std::int64_t j = 0; j < x.cols; ++j) out[j] += r[j];
  }
}

// Fused softmax + cross-entropy (mean over rows), like torch.nn.functional.cross_entropy.
//   logits [B, C], labels [B] in [0, C) → returns the mean loss; probs [B, C] = softmax(logits).
// Per row, as PyTorch's log_softmax: m = max, logp = (x - m) - log(sum exp(x - m)), loss = -logp[label],
// p = exp(logp) (the value PyTorch's backward uses). Subtracting m first keeps log(sum) from being
// absorbed by a huge m.
template <class T>
Result<double> softmax_cross_entropy(MatView<const T> logits, const std::int32_t* labels, MatView<T> probs) {
  FE_TRY(detail::check_same_shape("softmax_cross_entropy", logits, probs));
  FE_TRY(detail::check_labels<T>("softmax_cross_entropy", labels, logits.rows, logits.cols));
  if (logits.cols == 0)
    return make_error(ErrorCode::invalid_argument, "softmax_cross_entropy", "zero classes",
                      logits.shape().to_string());
  T total = 0;  // summed in T, in row order, like PyTorch's per-element nll then mean
  for (std::int64_t i = 0; i < logits.rows; ++i) {
    const T* x = logits.row(i);
    T* p = probs.row(i);
    T m = x[0];
    for (std::int64_t j = 1; j < logits.cols; ++j) m = std::max(m, x[j]);
    T sum = 0;
    for (std::int64_t j = 0; j < logits.cols; ++j) sum += std::exp(x[j] - m);
    const T log_sum = std::log(sum);
    for (std::int64_t j = 0; j < logits.cols; ++j) p[j] = std::exp((x[j] - m) - log_sum);
    total -= (x[labels[i]] - m) - log_sum;
  }
  return logits.rows ? double(total) / double(logits.rows) : 0.0;
}

// dlogits[B, C] = (probs - onehot(labels)) / B.
template <class T>
Status softmax_cross_entropy_backward(MatView<const T> probs, const std::int32_t* labels, MatView<T> dlogits) {
  FE_TRY(detail::check_same_shape("softmax_cross_entropy_backward", probs, dlogits));
  FE_TRY(detail::check_labels<T>("softmax_cross_entropy_backward", labels, probs.rows, probs.cols));
  const T scale = probs.rows ? T(1) / T(probs.rows) : T(0);
  for (std::int64_t i = 0; i < probs.rows; ++i) {
    const T* p = probs.row(i);
    T* d = dlogits.row(i);
    for (std::int64_t j = 0; j < probs.cols; ++j) d[j] = p[j] * scale;
    d[labels[i]] -= scale;
  }
  return {};
}

}  // namespace ferrite::cpu
