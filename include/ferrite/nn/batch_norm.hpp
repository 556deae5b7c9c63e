#pragma once
// BatchNorm2d over the channel-major batch layout x[C, N, H, W] (ops/batch_norm.hpp), with
// torch.nn.BatchNorm2d's parameters, buffers and names: weight (gamma, init 1), bias (beta, init 0),
// running_mean (0), running_var (1), num_batches_tracked (int64, 0); momentum 0.1, eps 1e-5.
//   train(): batch statistics; running_mean/var move by momentum (running_var with the unbiased
//            batch variance); num_batches_tracked += 1 per forward
//   eval():  the running statistics
// forward_fused(ctx, x, residual, relu) computes act(bn(x) + residual) in one pass (a ResNet block's
// tail); backward_fused returns dx and hands out the residual's gradient (the ReLU-masked dy).
// num_batches_tracked stays a host tensor on every device (a counter the host increments: no
// kernel launch); move_buffers(buffers, device) moves the floating-point buffers.
#include <cstdint>
#include <string>

#include "ferrite/nn/module.hpp"
#include "ferrite/ops/batch_norm.hpp"

namespace ferrite::nn {

// Moves every floating-point buffer to `device` (integer counters stay on the host).
inline Status move_buffers(const BufferList& buffers, Device device) {
  for (const auto& b : buffers) {
    if (!b.value || (b.value->dtype() != DType::f32 && b.value->dtype() != DType::f64)) continue;
    if (b.value->device() == device) continue;
    FE_TRY_ASSIGN(Tensor moved, b.value->to(device));
    *b.value = std::move(moved);
  }
  return ok_status();
}

class BatchNorm2d final : public Module {
 public:
  static Result<BatchNorm2d> create(std::int64_t channels, double eps = 1e-5, double momentum = 0.1,
                                    DType dtype = DType::f32) {
    if (channels <= 0)
      return make_error(ErrorCode::invalid_argument, "BatchNorm2d", fe_format("channels must be positive, got {}", channels));
    if (dtype != DType::f32 && dtype != DType::f64)
      return make_error(ErrorCode::unsupported, "BatchNorm2d", fe_format("dtype {} (expected f32 or f64)", dtype_name(dtype)));
    if (!(eps > 0) || !(momentum >= 0 && momentum <= 1))
      return make_error(ErrorCode::invalid_argument, "BatchNorm2d",
                        fe_format("eps must be > 0 and momentum in [0, 1], got eps={} momentum={}", eps, momentum));
    BatchNorm2d b;
    b.channels_ = channels;
    b.eps_ = eps;
    b.momentum_ = momentum;
    FE_TRY_ASSIGN(b.weight_.value, b.constant(1.0, dtype));
    FE_TRY_ASSIGN(b.weight_.grad, Tensor::zeros({channels}, dtype));
    FE_TRY_ASSIGN(b.bias_.value, Tensor::zeros({channels}, dtype));
    FE_TRY_ASSIGN(b.bias_.grad, Tensor::zeros({channels}, dtype));
    FE_TRY_ASSIGN(b.running_mean_, Tensor::zeros({channels}, dtype));
    FE_TRY_ASSIGN(b.running_var_, b.constant(1.0, dtype));
    FE_TRY_ASSIGN(b.num_batches_tracked_, Tensor::zeros({}, DType::i64));
    return b;
  }

  Result<ConstTensorRef> forward(Context& ctx, ConstTensorRef x) override { return forward_fused(ctx, x, {}, false); }
  Result<ConstTensorRef> backward(Context& ctx, ConstTensorRef dy) override { return backward_fused(ctx, dy, nullptr); }

  // y = act(bn(x) [+ residual]), act = ReLU when relu. x (and the residual) must stay alive until backward.
  Result<ConstTensorRef> forward_fused(Context& ctx, ConstTensorRef x, ConstTensorRef residual, bool relu) {
    if (x.rank() < 2 || x.dim(0) != channels_)
      return make_error(ErrorCode::shape_mismatch, "BatchNorm2d::forward",
                        fe_format("expected x[{}, N, H, W] (channel-major batch)", channels_), x.describe());
    const DType dt = weight_.value.dtype();
    FE_TRY_ASSIGN(TensorRef y, ctx.workspace().allocate(x.shape, dt));
    if (training_) {
      FE_TRY_ASSIGN(save_mean_, ctx.workspace().allocate({channels_}, dt));
      FE_TRY_ASSIGN(save_rstd_, ctx.workspace().allocate({channels_}, dt));
      FE_TRY(ops::batch_norm_train(ctx, x, weight_.value.cref(), bias_.value.cref(), eps_, momentum_, running_mean_.ref(),
                                   running_var_.ref(), save_mean_, save_rstd_, residual, relu, y));
      num_batches_tracked_.data<std::int64_t>()[0] += 1;
    } else {
      FE_TRY(ops::batch_norm_eval(ctx, x, weight_.value.cref(), bias_.value.cref(), running_mean_.cref(), running_var_.cref(),
                                  eps_, residual, relu, y));
      save_mean_ = {};
    }
    input_ = x;
    output_ = y;
    relu_ = relu;
    has_residual_ = residual.defined();
    return ConstTensorRef(y);
  }

  // dx, and (when dresidual is non-null and the forward had a residual) the residual's gradient, a
  // workspace tensor the caller may add into (a block adds its other path's dx there).
  Result<ConstTensorRef> backward_fused(Context& ctx, ConstTensorRef dy, TensorRef* dresidual) {
    if (!input_.defined() || !save_mean_.defined())
      return make_error(ErrorCode::invalid_argument, "BatchNorm2d::backward",
                        "backward needs a forward in training mode before it");
    if (dy.shape != output_.shape)
      return make_error(ErrorCode::shape_mismatch, "BatchNorm2d::backward",
                        "gradient shape does not match the output of the last forward",
                        dy.describe() + " vs " + output_.describe());
    TensorRef dx, dr;
    if (input_grad_) {
      FE_TRY_ASSIGN(dx, ctx.workspace().allocate(input_.shape, input_.dtype));
    }
    if (dresidual && has_residual_) {
      FE_TRY_ASSIGN(dr, ctx.workspace().allocate(input_.shape, input_.dtype));
    }
    const bool accumulate = weight_.take_grad_beta() != 0.0;
    bias_.take_grad_beta();
    FE_TRY(ops::batch_norm_backward(ctx, input_, relu_ ? ConstTensorRef(output_) : ConstTensorRef{}, dy, weight_.value.cref(),
                                    save_mean_, save_rstd_, dx, dr, weight_.grad.ref(), bias_.grad.ref(), accumulate));
    if (dresidual) *dresidual = dr;
    return ConstTensorRef(dx);
  }

  void collect_parameters(const std::string& prefix, ParameterList& out) override {
    out.push_back({prefix + "weight", &weight_.value, &weight_.grad, &weight_});
    out.push_back({prefix + "bias", &bias_.value, &bias_.grad, &bias_});
  }
  void collect_buffers(const std::string& prefix, BufferList& out) override {
    out.push_back({prefix + "running_mean", &running_mean_});
    out.push_back({prefix + "running_var", &running_var_});
    out.push_back({prefix + "num_batches_tracked", &num_batches_tracked_});
  }

  std::string describe() const override {
    return fe_format("BatchNorm2d({}, eps={}, momentum={}, affine=True, track_running_stats=True)", channels_, eps_, momentum_);
  }

  std::int64_t channels() const noexcept { return channels_; }
  Tensor& weight() noexcept { return weight_.value; }
  Tensor& bias() noexcept { return bias_.value; }
  Tensor& running_mean() noexcept { return running_mean_; }
  Tensor& running_var() noexcept { return running_var_; }
  std::int64_t num_batches_tracked() const noexcept { return num_batches_tracked_.data<std::int64_t>()[0]; }

 private:
  BatchNorm2d() = default;

  Result<Tensor> constant(double v, DType dtype) const {
    if (dtype == DType::f64) return Tensor::full<double>({channels_}, v);
    return Tensor::full<float>({channels_}, float(v));
  }

  std::int64_t channels_ = 0;
  double eps_ = 1e-5, momentum_ = 0.1;
  ParamSlot weight_, bias_;
  Tensor running_mean_, running_var_, num_batches_tracked_;
  ConstTensorRef input_{};
  TensorRef output_{}, save_mean_{}, save_rstd_{};
  bool relu_ = false, has_residual_ = false;
};

}  // namespace ferrite::nn
