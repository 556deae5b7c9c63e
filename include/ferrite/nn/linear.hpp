#pragma once
// Linear: y[B, out] = x[B, in] · Wᵀ + b, W stored [out, in] like torch.nn.Linear.
//   backward: dW[out, in] = dyᵀ[out, B] · x[B, in]   (TN gemm)
//             db[out]     = column sums of dy
//             dx[B, in]   = dy[B, out] · W[out, in] (NN gemm, skipped for the first layer)
// An optional fused activation (ReLU) is applied with the bias in one pass; a model built by
// make_mlp keeps PyTorch's layout (Linear, ReLU, Linear, …) and fuses where a ReLU follows.
#include <cstdint>
#include <string>

#include "ferrite/nn/init.hpp"
#include "ferrite/nn/module.hpp"
#include "ferrite/ops/gemm.hpp"
#include "ferrite/ops/nn_ops.hpp"

namespace ferrite::nn {

template <class T>
class LinearT final : public ModuleT<T> {
 public:
  static Result<LinearT> create(std::int64_t in_features, std::int64_t out_features, bool bias = true) {
    if (in_features <= 0 || out_features <= 0)
      return make_error(ErrorCode::invalid_argument, "Linear",
                        "features must be positive, got in=" + std::to_string(in_features) +
                            " out=" + std::to_string(out_features));
    LinearT l;
    l.in_ = in_features;
    l.out_ = out_features;
    FE_TRY_ASSIGN(l.weight_, Tensor::zeros({out_features, in_features}, dtype_of<T>::value));
    FE_TRY_ASSIGN(l.grad_weight_, Tensor::zeros({out_features, in_features}, dtype_of<T>::value));
    if (bias) {
      FE_TRY_ASSIGN(l.bias_, Tensor::zeros({out_features}, dtype_of<T>::value));
      FE_TRY_ASSIGN(l.grad_bias_, Tensor::zeros({out_features}, dtype_of<T>::value));
    }
    return l;
  }

  // PyTorch's default init from Philox(seed): weight on stream `stream`, bias on `stream + 1`.
  void reset_parameters(std::uint64_t seed, std::uint64_t stream) {
    const double bound = init::default_bound(in_);
    init::uniform<T>(weight_, bound, seed, stream);
    if (bias_.defined()) init::uniform<T>(bias_, bound, seed, stream + 1);
  }

  void set_activation(Activation act) noexcept { activation_ = act; }
  Activation activation() const noexcept { return activation_; }

  Result<MatView<const T>> forward(MatView<const T> x) override {
    if (x.cols != in_)
      return make_error(ErrorCode::shape_mismatch, "Linear::forward",
                        "input has " + std::to_string(x.cols) + " features, expected " + std::to_string(in_),
                        x.shape().to_string() + " x weight" + weight_.shape().to_string());
    FE_TRY_ASSIGN(MatView<T> y, detail::ensure_rows<T>(output_, x.rows, out_));
    FE_TRY(gemm<T>(Trans::no, Trans::yes, T(1), x, weight_.mat<T>(), T(0), y));
    bias_activation<T>(y, bias_.defined() ? bias_.data<T>() : nullptr, activation_);
    input_ = x;
    output_view_ = y;
    return MatView<const T>(y);
  }

  Result<MatView<const T>> backward(MatView<const T> dy) override {
    if (!input_.data)
      return make_error(ErrorCode::invalid_argument, "Linear::backward", "backward called before forward");
    if (dy.rows != input_.rows || dy.cols != out_)
      return make_error(ErrorCode::shape_mismatch, "Linear::backward",
                        "gradient shape does not match the output of the last forward",
                        dy.shape().to_string() + " vs " + output_view_.shape().to_string());
    MatView<const T> g = dy;
    if (activation_ == Activation::relu) {  // fused ReLU: mask the incoming gradient by the output
      FE_TRY_ASSIGN(MatView<T> masked, detail::ensure_rows<T>(masked_grad_, dy.rows, out_));
      FE_TRY(relu_backward<T>(output_view_, dy, masked));
      g = masked;
    }
    FE_TRY(gemm<T>(Trans::yes, Trans::no, T(1), g, input_, T(0), grad_weight_.mat<T>()));
    if (bias_.defined()) column_sums<T>(g, grad_bias_.data<T>());
    if (!this->input_grad_) return MatView<const T>{};
    FE_TRY_ASSIGN(MatView<T> dx, detail::ensure_rows<T>(grad_input_, dy.rows, in_));
    FE_TRY(gemm<T>(Trans::no, Trans::no, T(1), g, weight_.mat<T>(), T(0), dx));
    return MatView<const T>(dx);
  }

  void collect_parameters(const std::string& prefix, ParameterList& out) override {
    out.push_back({prefix + "weight", &weight_, &grad_weight_});
    if (bias_.defined()) out.push_back({prefix + "bias", &bias_, &grad_bias_});
  }

  std::string describe() const override {
    return "Linear(in_features=" + std::to_string(in_) + ", out_features=" + std::to_string(out_) +
           ", bias=" + (bias_.defined() ? "True" : "False") + ")" +
           (activation_ == Activation::relu ? " + fused ReLU" : "");
  }

  std::int64_t in_features() const noexcept { return in_; }
  std::int64_t out_features() const noexcept { return out_; }
  Tensor& weight() noexcept { return weight_; }
  Tensor& bias() noexcept { return bias_; }
  Tensor& grad_weight() noexcept { return grad_weight_; }
  Tensor& grad_bias() noexcept { return grad_bias_; }

 private:
  LinearT() = default;

  std::int64_t in_ = 0, out_ = 0;
  Activation activation_ = Activation::none;
  Tensor weight_, bias_, grad_weight_, grad_bias_;
  Tensor output_, masked_grad_, grad_input_;  // sized for the largest batch seen (detail::ensure_rows)
  MatView<T> output_view_{};                  // the rows of output_ the last forward wrote
  MatView<const T> input_{};                  // borrowed from the caller between forward and backward
};

using Linear = LinearT<float>;

}  // namespace ferrite::nn
