#pragma once
// Scalar reference implementations (oracles) of the small neural-network ops in ops/nn_ops.hpp.
// Written for clarity, accumulating in double; the fast versions are tested against these.
#include <cmath>
#include <cstdint>
#include <limits>

#include "ferrite/core/view.hpp"

namespace ferrite::cpu::reference {

// y[i, j] = act(y[i, j] + bias[j]); act is identity or ReLU.
template <class T>
void bias_activation(MatView<T> y, const T* bias, bool relu) {
  for (std::int64_t i = 0; i < y.rows; ++i)
    for (std::int64_t j = 0; j < y.cols; ++j) {
      T v = y(i, j) + (bias ? bias[j] : T(0));
      y(i, j) = relu ? (v > T(0) ? v : T(0)) : v;
    }
}

// dx = dy where y > 0, else 0 (PyTorch's threshold_backward on the ReLU output).
template <class T>
void relu_backward(MatView<const T> y, MatView<const T> dy, MatView<T> dx) {
  for (std::int64_t i = 0; i < y.rows; ++i)
    for (std::int64_t j = 0; j < y.cols; ++j) dx(i, j) = y(i, j) > T(0) ? dy(i, j) : T(0);
}

// out[j] = sum_i x[i, j]  (the bias gradient).
template <class T>
void column_sums(MatView<const T> x, T* out) {
  for (std::int64_t j = 0; j < x.cols; ++j) {
    double acc = 0;
    for (std::int64_t i = 0; i < x.rows; ++i) acc += x(i, j);
    out[j] = static_cast<T>(acc);
  }
}

// Mean over rows of -log softmax(logits)[label]; probs receives softmax(logits).
template <class T>
double softmax_cross_entropy(MatView<const T> logits, const std::int32_t* labels, MatView<T> probs) {
  double total = 0;
  for (std::int64_t i = 0; i < logits.rows; ++i) {
    double mx = -std::numeric_limits<double>::infinity();
    for (std::int64_t j = 0; j < logits.cols; ++j) mx = std::fmax(mx, logits(i, j));
    double sum = 0;
    for (std::int64_t j = 0; j < logits.cols; ++j) sum += std::exp(double(logits(i, j)) - mx);
    for (std::int64_t j = 0; j < logits.cols; ++j)
      probs(i, j) = static_cast<T>(std::exp(double(logits(i, j)) - mx) / sum);
    total += std::log(sum) + mx - double(logits(i, labels[i]));
  }
  return logits.rows ? total / double(logits.rows) : 0.0;
}

// d(mean loss)/d logits = (softmax - onehot(label)) / rows.
template <class T>
void softmax_cross_entropy_backward(MatView<const T> probs, const std::int32_t* labels, MatView<T> dlogits) {
  const double scale = probs.rows ? 1.0 / double(probs.rows) : 0.0;
  for (std::int64_t i = 0; i < probs.rows; ++i)
    for (std::int64_t j = 0; j < probs.cols; ++j)
      dlogits(i, j) = static_cast<T>((double(probs(i, j)) - (j == labels[i] ? 1.0 : 0.0)) * scale);
}

}  // namespace ferrite::cpu::reference
