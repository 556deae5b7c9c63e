#pragma once
// ReLU as a module. Standalone it computes max(x, 0) into the workspace; when Sequential fuses it
// into the preceding Linear (bias + ReLU in one pass, mask applied inside Linear::backward) it
// becomes a pass-through, keeping its index so parameter names stay PyTorch's ("0.", "2.", "4.").
#include <string>

#include "ferrite/nn/module.hpp"
#include "ferrite/ops/activation.hpp"
#include "ferrite/ops/fill.hpp"

namespace ferrite::nn {

class ReLU final : public Module {
 public:
  Result<ConstTensorRef> forward(Context& ctx, ConstTensorRef x) override {
    if (fused_) return x;
    FE_TRY_ASSIGN(TensorRef y, ctx.workspace().allocate(x.shape, x.dtype));
    FE_TRY(ops::copy(ctx, x, y));
    FE_TRY(ops::bias_activation(ctx, y, {}, Activation::relu));
    output_ = y;
    return ConstTensorRef(y);
  }

  Result<ConstTensorRef> backward(Context& ctx, ConstTensorRef dy) override {
    if (fused_) return dy;
    if (!output_.defined())
      return make_error(ErrorCode::invalid_argument, "ReLU::backward", "backward called before forward");
    FE_TRY_ASSIGN(TensorRef dx, ctx.workspace().allocate(dy.shape, dy.dtype));
    FE_TRY(ops::relu_backward(ctx, output_, dy, dx));
    return ConstTensorRef(dx);
  }

  std::string describe() const override { return fused_ ? "ReLU() (fused into previous Linear)" : "ReLU()"; }
  void set_fused_into_previous(bool fused) noexcept { fused_ = fused; }
  bool fused_into_previous() const noexcept { return fused_; }

 private:
  bool fused_ = false;
  ConstTensorRef output_{};
};

}  // namespace ferrite::nn
