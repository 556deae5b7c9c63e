#pragma once
// Adam and AdamW: torch.optim.Adam / AdamW's formulas and float rounding sequence (the default
// single-tensor, non-capturable path on CPU), fused into one pass over (p, g, m, v).
//
//   t += 1                                                  (step count, exact)
//   g = maximize ? -grad : grad
//   Adam:  g = g + wd * p                                   (one FMA: add(alpha=) kernel)
//   AdamW: p = p * float(1 - lr * wd)                       (rounded: its own mul_ kernel)
//   m = lerp(m, g, 1 - b1)                                  (torch.lerp_: one FMA, see below)
//   v = fma((1 - b2) * g, g, v * b2)                        (mul_ then addcmul_, see below)
//   vmax = max(vmax, v)                                     (amsgrad only; denominator uses vmax)
//   denom = sqrt(v) / float(sqrt(1 - b2^t)) + eps           (eps AFTER the bias correction)
//   p = p + (float(-lr / (1 - b1^t)) * m) / denom           (addcdiv_)
//
// Where double and where float, exactly as PyTorch: the scalars bias_correction1 = 1 - b1^t,
// bias_correction2 = 1 - b2^t, step_size = lr / bc1, sqrt(bc2) = bc2^0.5, 1 - b1, 1 - b2, 1 - lr*wd
// are Python floats, i.e. computed in double (std::pow like Python's **), then each is rounded to
// float once where it enters a float kernel. Everything per element is float.
//
// lerp: PyTorch's lerp_ with weight w = float(1 - b1) computes m + w * (g - m) as one FMA when
// |w| < 0.5 and g + (w - 1) * (g - m) otherwise (w - 1 in float). The algorithm box's
// b1 * m + (1 - b1) * g is the same number up to float rounding.
// addcmul: PyTorch's release build (GCC, default -ffp-contract=fast) contracts its addcmul kernel
// `self + value * t1 * t2` into one FMA; we write that FMA explicitly.
//
// Parity, measured against torch 2.5.1 (PyPI wheel, CPU capability AVX512) over 6 steps on 1037
// elements, 5 Adam/AdamW configurations: exp_avg, exp_avg_sq, max_exp_avg_sq equal bit for bit.
// The weights differ in 5-9% of elements, by at most 6e-6 * lr after 6 steps (float rounding of the
// update), all traced to torch's CPU sqrt, which is MKL VML's (1 ulp from the correctly rounded
// root in ~16% of elements); ours is IEEE sqrt. With torch's sqrt substituted, a numpy replay of
// the formula above equals torch bit for bit. Literal torch numbers are in
// tests/optim/test_optim.cpp.
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>
#include "ferrite/backend/optim_coefficients.hpp"
#include "ferrite/ops/optimizer.hpp"
#include "ferrite/optim/optimizer.hpp"

namespace ferrite::optim {

// AdamW's defaults differ from Adam's only in weight_decay, which is decoupled (shrinks the
// weights).
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  bool amsgrad = false;
  bool maximize = false;
};

class Adam : public Optimizer {
 public:
  // Validates like torch.optim.Adam: lr, eps, weight_decay >= 0 (and finite), 0 <= beta < 1.
  // With `store` holding exactly `params`, the state is flat and a step is one fused op.
  static Result<Adam> create(nn::ParameterList params, const AdamOptions& options = {},
                             const nn::ParameterStore* store = nullptr) {
    Adam adam;
    FE_TRY(adam.init("Adam", std::move(params), options, /*decoupled=*/false, store));
    return adam;
  }

  using Optimizer::step;
  Status step(Context& ctx) override {
    FE_TRY(prepare_step(ctx));
    const auto c = detail::adam_coefficients(options_, lr_, decoupled_, step_ + 1);
    FE_TRY_ASSIGN(const void* planned, planned_entry(ctx));
    FE_TRY(for_each_range([&](TensorRef p, ConstTensorRef g, std::vector<TensorRef>& st) {
      return ops::adam_update(ctx, p, g, st[0], st[1], c.amsgrad ? st[2] : TensorRef{}, c, planned);
    }));
    ++step_;
    return ok_status();
  }

  // The options in force (lr is the current one, see set_lr).
  AdamOptions options() const noexcept {
    AdamOptions o = options_;
    o.lr = lr_;
    return o;
  }
  // True for AdamW: weight decay shrinks the weights instead of adding to the gradient.
  bool decoupled_weight_decay() const noexcept { return decoupled_; }

  static Status validate(std::string_view op, const AdamOptions& o) {
    FE_TRY(detail::check_non_negative(op, "learning rate", o.lr));
    FE_TRY(detail::check_non_negative(op, "epsilon", o.eps));
    FE_TRY(detail::check_non_negative(op, "weight_decay", o.weight_decay));
    for (double beta : {o.beta1, o.beta2})
      if (!(beta >= 0.0 && beta < 1.0))
        return make_error(ErrorCode::invalid_argument, std::string(op),
                          "invalid beta: " + std::to_string(beta) + " (must be in [0, 1))");
    return ok_status();
  }

 protected:
  Adam() = default;

  Result<std::int64_t> step_entry_bytes(int device) const override {
    return FE_DETAIL_CUDA_RESULT(std::int64_t, "Adam::plan_steps", device,
                                 Result<std::int64_t>(cuda::kernels::adam_step_bytes()));
  }
  Status encode_step(int device, std::int64_t t, double lr, void* entry) const override {
    const auto c = detail::adam_coefficients(options_, lr, decoupled_, t);
    return FE_DETAIL_CUDA("Adam::plan_steps", device, (cuda::kernels::encode_adam_step(c, entry), ok_status()));
  }

  Status init(std::string op, nn::ParameterList params, const AdamOptions& options, bool decoupled,
              const nn::ParameterStore* store) {
    FE_TRY(validate(op, options));
    options_ = options;
    decoupled_ = decoupled;
    std::vector<std::string> keys{"exp_avg", "exp_avg_sq"};
    if (options.amsgrad) keys.emplace_back("max_exp_avg_sq");
    return bind(std::move(op), std::move(params), std::move(keys), options.lr, store);
  }

 private:
  AdamOptions options_;
  bool decoupled_ = false;
};

// AdamW (Loshchilov & Hutter): Adam with decoupled weight decay, p *= 1 - lr * wd before the
// update.
class AdamW : public Adam {
 public:
  static Result<AdamW> create(nn::ParameterList params, const AdamWOptions& options = {},
                              const nn::ParameterStore* store = nullptr) {
    AdamW adamw;
    FE_TRY(adamw.init("AdamW", std::move(params), to_adam_options(options), /*decoupled=*/true, store));
    return adamw;
  }

  static AdamOptions to_adam_options(const AdamWOptions& o) {
    return {o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.amsgrad, o.maximize};
  }

 private:
  AdamW() = default;
};

}  // namespace ferrite::optim
