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
    FE_TRY_ASSIGN(MatView<T> y, detail::ensure_rows<T>(output_, x.rows, x.cols));
    for (std::int64_t i = 0; i < x.rows; ++i) {
      const T* xr = x.row(i);
      T* yr = y.row(i);
      for (std::int64_t j = 0; j < x.cols; ++j) yr[j] = std::max(xr[j], T(0));
    }
    output_view_ = y;
    return MatView<const T>(y);
  }

  Result<MatView<const T>> backward(MatView<const T> dy) override {
    if (fused_) return dy;
    if (!output_.defined())
      return make_error(ErrorCode::invalid_argument, "ReLU::backward", "backward called before forward");
    FE_TRY_ASSIGN(MatView<T> dx, detail::ensure_rows<T>(grad_input_, dy.rows, dy.cols));
    FE_TRY(relu_backward<T>(output_view_, dy, dx));
    return MatView<const T>(dx);
  }

  std::string describe() const override { return fused_ ? "ReLU() (fused into previous Linear)" : "ReLU()"; }
  void set_fused_into_previous(bool fused) noexcept { fused_ = fused; }
  bool fused_into_previous() const noexcept { return fused_; }

 private:
  bool fused_ = false;
  Tensor output_, grad_input_;  // sized for the largest batch seen (detail::ensure_rows)
  MatView<T> output_view_{};    // the rows of output_ the last forward wrote
};

using ReLU = ReLUT<float>;

}  // namespace ferrite::nn
