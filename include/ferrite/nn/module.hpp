#pragma once
// Module: a layer with an explicit forward and backward (llm.c style, no autograd tape), written once
// for every device: it calls ops/ with the Context it is given, and the context says where they run.
//
// Contract:
// - forward(ctx, x) computes the output into the context's workspace and returns a view of it; the
//   view lives until the workspace is reset (ctx.begin_step()). The module keeps views of what its
//   backward needs (x, the output), so `x` must stay alive and unchanged until backward has run.
// - backward(ctx, dy) adds the parameter gradients (writes them after a zero_grad: see
//   nn/parameter.hpp) and returns d loss / d x, unless the module was told it needs no input gradient
//   (first layer: an empty view).
// - train()/eval(): layers whose forward differs (BatchNorm, dropout) read training().
// - Tensors are f32 (the fast kernels) or f64 (the scalar reference, for finite-difference checks):
//   the dtype of the parameters and the input picks the kernel, not a template parameter.
#include <string>

#include "ferrite/core/result.hpp"
#include "ferrite/nn/parameter.hpp"
#include "ferrite/tensor/context.hpp"
#include "ferrite/tensor/tensor.hpp"

namespace ferrite::nn {

// A named buffer of the state_dict that is not trained (BatchNorm's running statistics).
struct Buffer {
  std::string name;
  Tensor* value = nullptr;
};
using BufferList = std::vector<Buffer>;

class Module {
 public:
  virtual ~Module() = default;
  virtual Result<ConstTensorRef> forward(Context& ctx, ConstTensorRef x) = 0;
  virtual Result<ConstTensorRef> backward(Context& ctx, ConstTensorRef dy) = 0;
  // Appends this module's parameters, named prefix + local name ("0." + "weight").
  virtual void collect_parameters(const std::string& prefix, ParameterList& out) { (void)prefix, (void)out; }
  // Appends this module's non-trained state (state_dict buffers), named like parameters.
  virtual void collect_buffers(const std::string& prefix, BufferList& out) { (void)prefix, (void)out; }
  virtual std::string describe() const = 0;  // "Linear(in_features=784, out_features=128, bias=True)"

  // Whether backward must compute d loss / d input (false for the first layer of a network).
  void set_input_grad(bool needed) noexcept { input_grad_ = needed; }
  bool input_grad() const noexcept { return input_grad_; }

  void train(bool on = true) {
    training_ = on;
    on_mode_change(on);
  }
  void eval() { train(false); }
  bool training() const noexcept { return training_; }

  ParameterList parameters() {
    ParameterList list;
    collect_parameters("", list);
    return list;
  }
  BufferList buffers() {
    BufferList list;
    collect_buffers("", list);
    return list;
  }

 protected:
  // Containers forward the mode to their children.
  virtual void on_mode_change(bool training) { (void)training; }
  bool input_grad_ = true;
  bool training_ = true;
};

}  // namespace ferrite::nn
