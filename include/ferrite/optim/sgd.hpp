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
#include <xsimd/xsimd.hpp>

#include "ferrite/optim/optimizer.hpp"

namespace ferrite::optim {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  bool maximize = false;
};

namespace detail {

// The per-step constants, as the float kernels see them.
struct SGDCoefficients {
  float weight_decay = 0.f;
  float momentum = 0.f;
  float one_minus_dampening = 1.f;
  float neg_lr = 0.f;
  bool maximize = false;
  bool has_weight_decay = false;
  bool has_momentum = false;
  bool nesterov = false;
  bool first_step = true;  // the momentum buffer is taken from the gradient as is
};

inline SGDCoefficients sgd_coefficients(const SGDOptions& o, double lr, bool first_step) {
  SGDCoefficients c;
  c.weight_decay = static_cast<float>(o.weight_decay);
  c.momentum = static_cast<float>(o.momentum);
  c.one_minus_dampening = static_cast<float>(1.0 - o.dampening);
  c.neg_lr = static_cast<float>(-lr);
  c.maximize = o.maximize;
  c.has_weight_decay = o.weight_decay != 0.0;
  c.has_momentum = o.momentum != 0.0;
  c.nesterov = o.nesterov;
  c.first_step = first_step;
  return c;
}

// One element (V = float) or one SIMD batch (V = xsimd::batch<float>): the same operations in the
// same order, so the vector body and the scalar tail agree bit for bit.
template <class V>
inline void sgd_update(V& p, V g, V& buf, const SGDCoefficients& c) noexcept {
  if (c.maximize) g = -g;
  if (c.has_weight_decay) g = fused_mul_add(p, V(c.weight_decay), g);
  if (c.has_momentum) {
    if (c.first_step)
      buf = g;
    else
      buf = fused_mul_add(g, V(c.one_minus_dampening), rounded(buf * V(c.momentum)));
    g = c.nesterov ? fused_mul_add(buf, V(c.momentum), g) : buf;
  }
  p = fused_mul_add(g, V(c.neg_lr), p);
}

// p, g, buf: [n]. buf may be null when momentum is 0.
inline void sgd_kernel(float* p, const float* g, float* buf, std::int64_t n,
                       const SGDCoefficients& coefficients) noexcept {
  // A local copy: stores through the float pointers cannot alias it, so its fields stay in
  // registers instead of being reloaded after every store.
  const SGDCoefficients c = coefficients;
  using B = xsimd::batch<float>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  std::int64_t i = 0;
  for (; i + W <= n; i += W) {
    B pv = B::load_unaligned(p + i);
    B bv = c.has_momentum && !c.first_step ? B::load_unaligned(buf + i) : B(0.f);
    sgd_update(pv, B::load_unaligned(g + i), bv, c);
    pv.store_unaligned(p + i);
    if (c.has_momentum) bv.store_unaligned(buf + i);
  }
  for (; i < n; ++i) {
    float bs = c.has_momentum && !c.first_step ? buf[i] : 0.f;
    sgd_update(p[i], g[i], bs, c);
    if (c.has_momentum) buf[i] = bs;
  }
}

}  // namespace detail

class SGD : public Optimizer {
 public:
  // Validates like torch.optim.SGD: lr, momentum, weight_decay >= 0 (and finite); Nesterov needs
  // momentum > 0 and dampening == 0.
  static Result<SGD> create(nn::ParameterList params, const SGDOptions& options = {}) {
    FE_TRY(validate(options));
    SGD sgd;
    sgd.options_ = options;
    std::vector<std::string> keys;
    if (options.momentum != 0.0) keys.emplace_back("momentum_buffer");
    FE_TRY(sgd.bind("SGD", std::move(params), std::move(keys), options.lr));
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

  Status step() override {
    FE_TRY(check_params());
    const auto c = detail::sgd_coefficients(options_, lr_, step_ == 0);
    const bool momentum = c.has_momentum;
    for_each_chunk([&](const Chunk& ch) {
      auto& prm = params_[ch.param];
      float* buf = momentum ? state_data(ch.param, 0) + ch.begin : nullptr;
      detail::sgd_kernel(prm.value->data<float>() + ch.begin, prm.grad->data<float>() + ch.begin,
                         buf, ch.end - ch.begin, c);
    });
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
  SGDOptions options_;
};

}  // namespace ferrite::optim
