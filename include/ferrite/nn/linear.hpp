#pragma once
// Linear: y[.., out] = x[.., in] · Wᵀ + b, W stored [out, in] like torch.nn.Linear.
//   backward: dW[out, in] += dyᵀ[out, B] · x[B, in]   (TN gemm; B = all leading dimensions)
//             db[out]     += column sums of dy
//             dx[.., in]   = dy[B, out] · W[out, in]  (NN gemm, skipped for the first layer)
// An optional fused activation (ReLU) is applied with the bias in one pass (ops::bias_activation);
// a model built by make_mlp keeps PyTorch's layout (Linear, ReLU, Linear, …) and fuses where a ReLU
// follows. Runs on the device of the context it is given (its parameters must be there too).
#include <cstdint>
#include <string>

#include "ferrite/nn/init.hpp"
#include "ferrite/nn/module.hpp"
#include "ferrite/ops/activation.hpp"
#include "ferrite/ops/gemm.hpp"
#include "ferrite/ops/reduce.hpp"

namespace ferrite::nn {

namespace detail {
// x[.., F] as [rows, F] (leading dimensions collapsed; a 2-D view is kept as is, strides and all).
inline Result<ConstTensorRef> as_rows(const char* op, ConstTensorRef x) {
  if (x.rank() == 2) return x;
  if (x.rank() < 1) return make_error(ErrorCode::shape_mismatch, op, "input must have at least one dimension", x.describe());
  const std::int64_t f = x.dim(-1);
  return x.reshape({f ? x.numel() / f : 0, f});
}
inline Shape with_last(Shape s, std::int64_t last) {
  s[s.rank() - 1] = last;
  return s;
}
}  // namespace detail

class Linear final : public Module {
 public:
  static Result<Linear> create(std::int64_t in_features, std::int64_t out_features, bool bias = true,
                               DType dtype = DType::f32) {
    if (in_features <= 0 || out_features <= 0)
      return make_error(ErrorCode::invalid_argument, "Linear",
                        fe_format("features must be positive, got in={} out={}", in_features, out_features));
    if (dtype != DType::f32 && dtype != DType::f64)
      return make_error(ErrorCode::unsupported, "Linear", fe_format("dtype {} (expected f32 or f64)", dtype_name(dtype)));
    Linear l;
    l.in_ = in_features;
    l.out_ = out_features;
    FE_TRY_ASSIGN(l.weight_.value, Tensor::zeros({out_features, in_features}, dtype));
    FE_TRY_ASSIGN(l.weight_.grad, Tensor::zeros({out_features, in_features}, dtype));
    if (bias) {
      FE_TRY_ASSIGN(l.bias_.value, Tensor::zeros({out_features}, dtype));
      FE_TRY_ASSIGN(l.bias_.grad, Tensor::zeros({out_features}, dtype));
    }
    return l;
  }

  // PyTorch's default init from Philox(seed): weight on stream `stream`, bias on `stream + 1`.
  // Host parameters (initialize, then move the model with a ParameterStore).
  void reset_parameters(std::uint64_t seed, std::uint64_t stream) {
    const double bound = init::default_bound(in_);
    init::uniform(weight_.value, bound, seed, stream);
    if (has_bias()) init::uniform(bias_.value, bound, seed, stream + 1);
  }

  void set_activation(Activation act) noexcept { activation_ = act; }
  Activation activation() const noexcept { return activation_; }

  Result<ConstTensorRef> forward(Context& ctx, ConstTensorRef x) override {
    if (x.rank() < 1 || x.dim(-1) != in_)
      return make_error(ErrorCode::shape_mismatch, "Linear::forward",
                        fe_format("input has {} features, expected {}", x.rank() ? x.dim(-1) : 0, in_),
                        x.describe() + " x weight " + weight_.value.describe());
    FE_TRY_ASSIGN(input_, detail::as_rows("Linear::forward", x));
    FE_TRY_ASSIGN(TensorRef y, ctx.workspace().allocate({input_.dim(0), out_}, weight_.value.dtype()));
    FE_TRY(ops::gemm(ctx, Trans::no, Trans::yes, 1.0, input_, weight_.value.cref(), 0.0, y));
    FE_TRY(ops::bias_activation(ctx, y, has_bias() ? bias_.value.cref() : ConstTensorRef{}, activation_));
    output_ = y;
    if (x.rank() == 2) return ConstTensorRef(y);
    return ConstTensorRef(y).reshape(detail::with_last(x.shape, out_));
  }

  Result<ConstTensorRef> backward(Context& ctx, ConstTensorRef dy_in) override {
    if (!input_.defined())
      return make_error(ErrorCode::invalid_argument, "Linear::backward", "backward called before forward");
    FE_TRY_ASSIGN(ConstTensorRef dy, detail::as_rows("Linear::backward", dy_in));
    if (dy.shape != output_.shape)
      return make_error(ErrorCode::shape_mismatch, "Linear::backward",
                        "gradient shape does not match the output of the last forward",
                        dy_in.describe() + " vs " + output_.describe());
    ConstTensorRef g = dy;
    if (activation_ == Activation::relu) {  // fused ReLU: mask the incoming gradient by the output
      FE_TRY_ASSIGN(TensorRef masked, ctx.workspace().allocate(dy.shape, dy.dtype));
      FE_TRY(ops::relu_backward(ctx, output_, dy, masked));
      g = masked;
    }
    FE_TRY(ops::gemm(ctx, Trans::yes, Trans::no, 1.0, g, input_, weight_.take_grad_beta(), weight_.grad.ref()));
    if (has_bias()) FE_TRY(ops::column_sums(ctx, g, bias_.grad.ref(), bias_.take_grad_beta() != 0.0));
    if (!this->input_grad_) return ConstTensorRef{};
    FE_TRY_ASSIGN(TensorRef dx, ctx.workspace().allocate(input_.shape, input_.dtype));
    FE_TRY(ops::gemm(ctx, Trans::no, Trans::no, 1.0, g, weight_.value.cref(), 0.0, dx));
    if (dy_in.rank() == 2) return ConstTensorRef(dx);
    return ConstTensorRef(dx).reshape(detail::with_last(dy_in.shape, in_));
  }

  void collect_parameters(const std::string& prefix, ParameterList& out) override {
    out.push_back({prefix + "weight", &weight_.value, &weight_.grad, &weight_});
    if (has_bias()) out.push_back({prefix + "bias", &bias_.value, &bias_.grad, &bias_});
  }

  std::string describe() const override {
    return fe_format("Linear(in_features={}, out_features={}, bias={}){}", in_, out_, has_bias() ? "True" : "False",
                     activation_ == Activation::relu ? " + fused ReLU" : "");
  }

  std::int64_t in_features() const noexcept { return in_; }
  std::int64_t out_features() const noexcept { return out_; }
  bool has_bias() const noexcept { return bias_.value.defined(); }
  Tensor& weight() noexcept { return weight_.value; }
  Tensor& bias() noexcept { return bias_.value; }
  Tensor& grad_weight() noexcept { return weight_.grad; }
  Tensor& grad_bias() noexcept { return bias_.grad; }

 private:
  Linear() = default;

  std::int64_t in_ = 0, out_ = 0;
  Activation activation_ = Activation::none;
  ParamSlot weight_, bias_;
  ConstTensorRef input_{};   // [rows, in], borrowed from the caller between forward and backward
  ConstTensorRef output_{};  // [rows, out] in the workspace
};

}  // namespace ferrite::nn
