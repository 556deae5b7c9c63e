#pragma once
// Module: a layer with an explicit forward and backward (llm.c style, no autograd tape).
//
// Contract:
// - forward(x) computes the output into a buffer the module owns and returns a view of it; the view
//   stays valid until the next forward with a different batch size. The module keeps a view of `x`
//   for backward, so `x` must stay alive and unchanged until backward has run.
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
// (Re)allocates `buffer` to [rows, cols] when its shape differs; keeps it otherwise (no per-step allocation).
template <class T>
Status ensure_shape(Tensor& buffer, std::int64_t rows, std::int64_t cols) {
  const Shape want{rows, cols};
  if (buffer.defined() && buffer.shape() == want && buffer.dtype() == dtype_of<T>::value) return {};
  FE_TRY_ASSIGN(buffer, Tensor::empty(want, dtype_of<T>::value));
  return {};
}
}  // namespace detail

}  // namespace ferrite::nn
