#pragma once
// A named trainable tensor and its gradient, as optimizers and serializers see it.
// Names follow PyTorch's state_dict ("0.weight", "2.bias"), so weights cross to PyTorch by name.
//
// Gradients accumulate, as in PyTorch: backward adds to a parameter's gradient unless the gradient
// was reset since the last update (zero_grad), in which case the first backward writes it. The
// reset is a flag, not a memset — PyTorch's zero_grad(set_to_none=True) — so a training step costs
// no zero-fill, and a parameter used twice in one step (a tied embedding and LM head) gets the sum.
#include <string>
#include <vector>

#include "ferrite/tensor/tensor.hpp"

namespace ferrite::nn {

// What a module owns for one parameter.
struct ParamSlot {
  Tensor value;
  Tensor grad;                // same shape, dtype and device as value
  bool grad_written = false;  // false: the next backward writes grad instead of adding to it

  // beta for "grad = grad_op + beta * grad" (0: write, 1: accumulate); marks the gradient written.
  double take_grad_beta() noexcept {
    const double beta = grad_written ? 1.0 : 0.0;
    grad_written = true;
    return beta;
  }
};

struct Parameter {
  std::string name;
  Tensor* value = nullptr;    // owned by the module (possibly an alias into a ParameterStore)
  Tensor* grad = nullptr;     // same shape as value
  ParamSlot* slot = nullptr;  // the module's slot (null for hand-made parameter lists)
};

using ParameterList = std::vector<Parameter>;

// The list's gradients are reset: the next backward writes them. Hand-made parameters (no slot)
// get zero-filled gradients.
inline Status reset_gradients(const ParameterList& params) {
  for (const auto& p : params) {
    if (p.slot) {
      p.slot->grad_written = false;
    } else if (p.grad && p.grad->nbytes()) {
      FE_TRY(detail::zero_bytes(p.grad->raw_data(), p.grad->device(), p.grad->nbytes()));
    }
  }
  return ok_status();
}

}  // namespace ferrite::nn
