#pragma once
// CrossEntropyLoss (mean), fused with softmax like torch.nn.CrossEntropyLoss on logits. In training
// mode forward also computes d loss / d logits in the same pass (ops::softmax_cross_entropy), so
// backward only hands it out; in eval mode it computes the loss alone.
#include <cstdint>

#include "ferrite/nn/module.hpp"
#include "ferrite/ops/loss.hpp"

namespace ferrite::nn {

class CrossEntropyLoss {
 public:
  // logits [B, C], labels i32 [B] (on the context's device) → the mean loss, a one-element f32 view
  // (in the workspace unless `loss_out` is given: e.g. a slot of a per-epoch device buffer, so that a
  // GPU run reads its losses back once per epoch).
  Result<ConstTensorRef> forward(Context& ctx, ConstTensorRef logits, ConstTensorRef labels, TensorRef loss_out = {}) {
    if (!loss_out.defined()) {
      FE_TRY_ASSIGN(loss_out, ctx.workspace().allocate({1}, DType::f32));
    }
    return forward_into(ctx, logits, labels, loss_out, -1);
  }
  // The same with the loss in entry `step` of a per-step table f32[S] (the device step counter's
  // entry in graph mode, see Context::step_counter); returns that entry.
  Result<ConstTensorRef> forward(Context& ctx, ConstTensorRef logits, ConstTensorRef labels, TensorRef losses,
                                 std::int64_t step) {
    if (step < 0)
      return make_error(ErrorCode::invalid_argument, "CrossEntropyLoss::forward", fe_format("negative step {}", step));
    return forward_into(ctx, logits, labels, losses, step);
  }

  // d mean-loss / d logits [B, C] of the last (training-mode) forward.
  Result<ConstTensorRef> backward() const {
    if (!dlogits_.defined())
      return make_error(ErrorCode::invalid_argument, "CrossEntropyLoss::backward",
                        "backward needs a forward in training mode first");
    return dlogits_;
  }

  void train(bool on = true) noexcept { training_ = on; }
  void eval() noexcept { training_ = false; }
  bool training() const noexcept { return training_; }

 private:
  Result<ConstTensorRef> forward_into(Context& ctx, ConstTensorRef logits, ConstTensorRef labels, TensorRef loss,
                                      std::int64_t step) {
    TensorRef dlogits{};
    if (training_) {
      FE_TRY_ASSIGN(dlogits, ctx.workspace().allocate(logits.shape, logits.dtype));
    }
    FE_TRY(ops::softmax_cross_entropy(ctx, logits, labels, loss, {}, dlogits, step));
    dlogits_ = dlogits;
    return step >= 0 ? ConstTensorRef(loss.rows(step, 1)) : ConstTensorRef(loss);
  }

  bool training_ = true;
  ConstTensorRef dlogits_{};
};

}  // namespace ferrite::nn
