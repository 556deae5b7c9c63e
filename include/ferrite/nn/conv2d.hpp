#pragma once
// Conv2d without bias (ResNet's: a BatchNorm follows every convolution) over the channel-major batch
// layout x[Cin, N, H, W] -> y[Cout, N, Ho, Wo] (ops/batch_conv.hpp says why that layout). The
// weight is [Cout, Cin, k, k] as torch.nn.Conv2d's, so state_dicts cross unchanged.
//   forward:  y  = conv2d_cnhw(x, W)
//   backward: dW (+)= conv2d_cnhw_backward_weight(x, dy)      (accumulates after the first backward)
//             dx  = conv2d_cnhw_backward_data(dy, W)          (skipped for the first layer; or added
//                   into a caller's buffer by backward_into: a residual block's two paths)
#include <cstdint>
#include <string>

#include "ferrite/nn/init.hpp"
#include "ferrite/nn/module.hpp"
#include "ferrite/ops/batch_conv.hpp"

namespace ferrite::nn {

class Conv2d final : public Module {
 public:
  static Result<Conv2d> create(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel,
                               std::int64_t stride = 1, std::int64_t padding = 0, DType dtype = DType::f32) {
    if (in_channels <= 0 || out_channels <= 0 || kernel <= 0 || stride <= 0 || padding < 0)
      return make_error(ErrorCode::invalid_argument, "Conv2d",
                        fe_format("channels and kernel must be positive, stride >= 1, padding >= 0; got in={} out={} "
                                  "kernel={} stride={} padding={}",
                                  in_channels, out_channels, kernel, stride, padding));
    if (dtype != DType::f32 && dtype != DType::f64)
      return make_error(ErrorCode::unsupported, "Conv2d", fe_format("dtype {} (expected f32 or f64)", dtype_name(dtype)));
    Conv2d c;
    c.in_ = in_channels;
    c.out_ = out_channels;
    c.k_ = kernel;
    c.stride_ = stride;
    c.pad_ = padding;
    const Shape ws{out_channels, in_channels, kernel, kernel};
    FE_TRY_ASSIGN(c.weight_.value, Tensor::zeros(ws, dtype));
    FE_TRY_ASSIGN(c.weight_.grad, Tensor::zeros(ws, dtype));
    return c;
  }

  // torch.nn.Conv2d's default: kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
  // fan_in = Cin k k; from Philox(seed, stream). Host parameters.
  void reset_parameters(std::uint64_t seed, std::uint64_t stream) {
    init::uniform(weight_.value, init::default_bound(in_ * k_ * k_), seed, stream);
  }

  Result<ConstTensorRef> forward(Context& ctx, ConstTensorRef x) override {
    if (x.rank() != 4 || x.dim(0) != in_)
      return make_error(ErrorCode::shape_mismatch, "Conv2d::forward",
                        fe_format("expected x[{}, N, H, W] (channel-major batch)", in_), x.describe());
    const std::int64_t ho = (x.dim(2) + 2 * pad_ - k_) / stride_ + 1, wo = (x.dim(3) + 2 * pad_ - k_) / stride_ + 1;
    FE_TRY_ASSIGN(TensorRef y, ctx.workspace().allocate({out_, x.dim(1), ho, wo}, weight_.value.dtype()));
    FE_TRY(ops::conv2d_cnhw(ctx, x, weight_.value.cref(), stride_, pad_, y));
    input_ = x;
    output_shape_ = y.shape;
    return ConstTensorRef(y);
  }

  // The weight gradient, and dx = the data gradient into a new workspace tensor (none for the first layer).
  Result<ConstTensorRef> backward(Context& ctx, ConstTensorRef dy) override {
    FE_TRY(weight_backward(ctx, dy));
    if (!input_grad_) return ConstTensorRef{};
    FE_TRY_ASSIGN(TensorRef dx, ctx.workspace().allocate(input_.shape, input_.dtype));
    FE_TRY(ops::conv2d_cnhw_backward_data(ctx, dy, weight_.value.cref(), stride_, pad_, dx));
    return ConstTensorRef(dx);
  }

  // The weight gradient, and dx (+)= the data gradient into the caller's tensor.
  Status backward_into(Context& ctx, ConstTensorRef dy, TensorRef dx, bool accumulate) {
    FE_TRY(weight_backward(ctx, dy));
    return ops::conv2d_cnhw_backward_data(ctx, dy, weight_.value.cref(), stride_, pad_, dx, accumulate);
  }

  void collect_parameters(const std::string& prefix, ParameterList& out) override {
    out.push_back({prefix + "weight", &weight_.value, &weight_.grad, &weight_});
  }

  std::string describe() const override {
    return fe_format("Conv2d({}, {}, kernel_size=({}, {}), stride=({}, {}), padding=({}, {}), bias=False)", in_, out_, k_,
                     k_, stride_, stride_, pad_, pad_);
  }

  // Multiply-adds of one forward per sample for an input of h x w (the FLOP count of a benchmark).
  std::int64_t macs_per_sample(std::int64_t h, std::int64_t w) const noexcept {
    const std::int64_t ho = (h + 2 * pad_ - k_) / stride_ + 1, wo = (w + 2 * pad_ - k_) / stride_ + 1;
    return out_ * ho * wo * in_ * k_ * k_;
  }
  std::int64_t out_size(std::int64_t size) const noexcept { return (size + 2 * pad_ - k_) / stride_ + 1; }
  std::int64_t in_channels() const noexcept { return in_; }
  std::int64_t out_channels() const noexcept { return out_; }
  Tensor& weight() noexcept { return weight_.value; }
  Tensor& grad_weight() noexcept { return weight_.grad; }

 private:
  Conv2d() = default;

  Status weight_backward(Context& ctx, ConstTensorRef dy) {
    if (!input_.defined())
      return make_error(ErrorCode::invalid_argument, "Conv2d::backward", "backward called before forward");
    if (dy.shape != output_shape_)
      return make_error(ErrorCode::shape_mismatch, "Conv2d::backward",
                        "gradient shape does not match the output of the last forward",
                        dy.describe() + " vs " + output_shape_.to_string());
    return ops::conv2d_cnhw_backward_weight(ctx, input_, dy, stride_, pad_, weight_.take_grad_beta(), weight_.grad.ref());
  }

  std::int64_t in_ = 0, out_ = 0, k_ = 1, stride_ = 1, pad_ = 0;
  ParamSlot weight_;
  ConstTensorRef input_{};  // borrowed from the caller between forward and backward
  Shape output_shape_;
};

}  // namespace ferrite::nn
