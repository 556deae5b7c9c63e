#pragma once
// Module: a layer with an explicit forward and backward (llm.c style, no autograd tape).
//
// Contract:
// - forward(x) computes the output into a buffer the module owns and returns a view of it; the next
//   forward overwrites it. Buffers keep their capacity: they are allocated for the largest batch seen
//   and a smaller batch uses their first rows, so the view's storage is freed only by a forward with a
//   batch larger than any before (or the module's destruction). The module keeps a view of `x` for
//   backward, so `x` must stay alive and unchanged until backward has run.
// - backward(dy) writes the parameter gradients (overwriting them, like zero_grad + backward) and
//   returns d loss / d x, unless the module was told it needs no input gradient (first layer).
// - T is float for training; double runs the same code on the scalar oracles, for finite-difference
//   gradient checks.
#include <memory>
#include <string>

#include "ferrite/core/result.hpp"
#include "ferrite/core/tensor.hpp"
#include "ferrite/nn/parameter.hpp"

namespace ferrite::nn {

template <class T>
class ModuleT {
 public:
  virtual ~ModuleT() = default;
  virtual Result<MatView<const T>> forward(MatView<const T> x) = 0;
  virtual Result<MatView<const T>> backward(MatView<const T> dy) = 0;
  // Appends this module's parameters, named prefix + local name ("0." + "weight").
  virtual void collect_parameters(const std::string& prefix, ParameterList& out) { (void)prefix, (void)out; }
  // Whether backward must compute d loss / d input (false for the first layer of a network).
  void set_input_grad(bool needed) noexcept { input_grad_ = needed; }
  bool input_grad() const noexcept { return input_grad_; }
  virtual std::string describe() const = 0;  // "Linear(in_features=784, out_features=128, bias=True)"

 protected:
  bool input_grad_ = true;
};

namespace detail {
// The first `rows` rows of a [capacity, cols] scratch buffer of T. The buffer keeps its storage across
// batch sizes: it is (re)allocated only when it has fewer than `rows` rows (then to exactly `rows`, the
// largest batch seen so far), or another column count or dtype; a smaller batch uses its leading rows.
// The view starts at the buffer's (64-byte aligned) base with ld == cols, the same layout a tensor of
// exactly [rows, cols] has, so kernels see the same pointers and strides and compute the same bits.
template <class T>
Result<MatView<T>> ensure_rows(Tensor& buffer, std::int64_t rows, std::int64_t cols) {
  const bool fits = buffer.defined() && buffer.dtype() == dtype_of<T>::value && buffer.shape().rank() == 2 &&
                    buffer.dim(1) == cols && buffer.dim(0) >= rows;
  if (!fits) {
    FE_TRY_ASSIGN(buffer, Tensor::empty({rows, cols}, dtype_of<T>::value));
  }
  return buffer.mat<T>().row_slice(0, rows);
}
}  // namespace detail

}  // namespace ferrite::nn
