#pragma once
// ReLU as a module. Standalone it computes max(x, 0) into its own buffer; when Sequential fuses it
// into the preceding Linear (bias + ReLU in one pass, mask applied inside Linear::backward) it
// becomes a pass-through, keeping its index so parameter names stay PyTorch's ("0.", "2.", "4.").
#include <algorithm>
#include <string>

#include "ferrite/nn/module.hpp"
#include "ferrite/ops/nn_ops.hpp"

namespace ferrite::nn {

template <class T>
class ReLUT final : public ModuleT<T> {
 public:
  Result<MatView<const T>> forward(MatView<const T> x) override {
    if (fused_) return x;
    FE_TRY(detail::ensure_shape<T>(output_, x.rows, x.cols));
    MatView<T> y = output_.mat<T>();
    for (std::int64_t i = 0; i < x.rows; ++i) {
      const T* xr = x.row(i);
      T* yr = y.row(i);
      for (std::int64_t j = 0; j < x.cols; ++j) yr[j] = std::max(xr[j], T(0));
    }
    return MatView<const T>(y);
  }

  Result<MatView<const T>> backward(MatView<const T> dy) override {
    if (fused_) return dy;
    if (!output_.defined())
      return make_error(ErrorCode::invalid_argument, "ReLU::backward", "backward called before forward");
    FE_TRY(detail::ensure_shape<T>(grad_input_, dy.rows, dy.cols));
    FE_TRY(relu_backward<T>(output_.mat<T>(), dy, grad_input_.mat<T>()));
    return MatView<const T>(grad_input_.mat<T>());
  }

  std::string describe() const override { return fused_ ? "ReLU() (fused into previous Linear)" : "ReLU()"; }
  void set_fused_into_previous(bool fused) noexcept { fused_ = fused; }
  bool fused_into_previous() const noexcept { return fused_; }

 private:
  bool fused_ = false;
  Tensor output_, grad_input_;
};

using ReLU = ReLUT<float>;

}  // namespace ferrite::nn
