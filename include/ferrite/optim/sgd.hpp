#pragma once
// SGD with momentum, dampening, Nesterov, L2 weight decay: torch.optim.SGD's formula and its float
// rounding sequence (the default single-tensor path on CPU), fused into one pass over (p, g, buf).
//
//   g = maximize ? -grad : grad
//   g = g + wd * p                                  (one FMA, as PyTorch's add(alpha=) kernel)
//   if momentum != 0:
//     first step:  buf = g                          (no dampening: PyTorch's clone(grad))
//     later steps: buf = fma(g, 1 - dampening, buf * momentum)   (mul_ rounded, then add_)
//     g = nesterov ? fma(buf, momentum, g) : buf
//   p = fma(g, -lr, p)                              (add_(alpha=-lr))
//
// Hyper-parameters are doubles like PyTorch's Python floats; each one is cast to float where
// PyTorch passes it to a float kernel as a Scalar: wd, momentum, float(1 - dampening), float(-lr).
// Weights and momentum buffers equal torch 2.5.1's bit for bit (AVX512 build; literal numbers in
// tests/optim/test_optim.cpp).
#include <cstdint>
#include <utility>
#include <vector>
#include "ferrite/backend/optim_coefficients.hpp"
#include "ferrite/ops/optimizer.hpp"
#include "ferrite/optim/optimizer.hpp"

namespace ferrite::optim {

class SGD : public Optimizer {
 public:
  // Validates like torch.optim.SGD: lr, momentum, weight_decay >= 0 (and finite); Nesterov needs
  // momentum > 0 and dampening == 0.
  static Result<SGD> create(nn::ParameterList params, const SGDOptions& options = {},
                            const nn::ParameterStore* store = nullptr) {
    FE_TRY(validate(options));
    SGD sgd;
    sgd.options_ = options;
    std::vector<std::string> keys;
    if (options.momentum != 0.0) keys.emplace_back("momentum_buffer");
    FE_TRY(sgd.bind("SGD", std::move(params), std::move(keys), options.lr, store));
    return sgd;
  }

  static Status validate(const SGDOptions& o) {
    FE_TRY(detail::check_non_negative("SGD", "learning rate", o.lr));
    FE_TRY(detail::check_non_negative("SGD", "momentum", o.momentum));
    FE_TRY(detail::check_non_negative("SGD", "weight_decay", o.weight_decay));
    if (!std::isfinite(o.dampening))
      return make_error(ErrorCode::invalid_argument, "SGD", "invalid dampening: must be finite");
    if (o.nesterov && (o.momentum <= 0.0 || o.dampening != 0.0))
      return make_error(
          ErrorCode::invalid_argument, "SGD",
          "Nesterov momentum requires a momentum > 0 and zero dampening (got momentum " +
              std::to_string(o.momentum) + ", dampening " + std::to_string(o.dampening) + ")");
    return ok_status();
  }

  using Optimizer::step;
  Status step(Context& ctx) override {
    FE_TRY(prepare_step(ctx));
    const auto c = detail::sgd_coefficients(options_, lr_, step_ == 0);
    FE_TRY_ASSIGN(const void* planned, planned_entry(ctx));
    FE_TRY(for_each_range([&](TensorRef p, ConstTensorRef g, std::vector<TensorRef>& st) {
      return ops::sgd_update(ctx, p, g, c.has_momentum ? st[0] : TensorRef{}, c, planned);
    }));
    ++step_;
    return ok_status();
  }

  // The options in force (lr is the current one, see set_lr).
  SGDOptions options() const noexcept {
    SGDOptions o = options_;
    o.lr = lr_;
    return o;
  }

 private:
  SGD() = default;
  Result<std::int64_t> step_entry_bytes(int device) const override {
    return FE_DETAIL_CUDA_RESULT(std::int64_t, "SGD::plan_steps", device,
                                 Result<std::int64_t>(cuda::kernels::sgd_step_bytes()));
  }
  Status encode_step(int device, std::int64_t t, double lr, void* entry) const override {
    const auto c = detail::sgd_coefficients(options_, lr, t == 1);
    return FE_DETAIL_CUDA("SGD::plan_steps", device, (cuda::kernels::encode_sgd_step(c, entry), ok_status()));
  }
  SGDOptions options_;
};

}  // namespace ferrite::optim
