#pragma once
// Scalar oracles for the optimizers: plain loops, one PyTorch tensor op per statement, written
// independently of the fused kernels (which must match them bit for bit, see tests/optim).
// The per-step scalars are derived here again from the options, in double, as PyTorch's Python
// does.
#include <cmath>
#include <cstdint>

#include "ferrite/optim/adam.hpp"
#include "ferrite/optim/optimizer.hpp"
#include "ferrite/optim/sgd.hpp"

namespace ferrite::optim::reference {

using detail::rounded;
// PyTorch's vec::fmadd: std::fma on FMA hardware (see detail::fused_mul_add).
inline float fmadd(float a, float b, float c) { return detail::fused_mul_add(a, b, c); }

// torch.optim.SGD, one step over n elements. first_step: the momentum buffer does not exist yet.
inline void sgd_step(float* p, const float* grad, float* buf, std::int64_t n, const SGDOptions& o,
                     double lr, bool first_step) {
  const float wd = static_cast<float>(o.weight_decay);
  const float momentum = static_cast<float>(o.momentum);
  const float alpha = static_cast<float>(1.0 - o.dampening);
  const float neg_lr = static_cast<float>(-lr);
  for (std::int64_t i = 0; i < n; ++i) {
    float g = o.maximize ? -grad[i] : grad[i];
    if (o.weight_decay != 0.0) g = fmadd(p[i], wd, g);  // grad.add(param, alpha=wd)
    if (o.momentum != 0.0) {
      if (first_step) {
        buf[i] = g;  // torch.clone(grad)
      } else {
        const float scaled = rounded(buf[i] * momentum);  // buf.mul_(momentum)
        buf[i] = fmadd(g, alpha, scaled);                 // .add_(grad, alpha=1 - dampening)
      }
      g = o.nesterov ? fmadd(buf[i], momentum, g) : buf[i];  // grad.add(buf, alpha=momentum)
    }
    p[i] = fmadd(g, neg_lr, p[i]);  // param.add_(grad, alpha=-lr)
  }
}

// torch.optim.Adam (decoupled = false) or AdamW (true), one step over n elements. `step` is the
// 1-based step being taken; max_exp_avg_sq is used only with amsgrad.
inline void adam_step(float* p, const float* grad, float* exp_avg, float* exp_avg_sq,
                      float* max_exp_avg_sq, std::int64_t n, const AdamOptions& o, double lr,
                      bool decoupled, std::int64_t step) {
  const double bias_correction1 = 1.0 - std::pow(o.beta1, static_cast<double>(step));
  const double bias_correction2 = 1.0 - std::pow(o.beta2, static_cast<double>(step));
  const double step_size = lr / bias_correction1;
  const float bias_correction2_sqrt = static_cast<float>(std::pow(bias_correction2, 0.5));
  const float neg_step_size = static_cast<float>(-step_size);
  const float wd = static_cast<float>(o.weight_decay);
  const float decay = static_cast<float>(1.0 - lr * o.weight_decay);
  const float w = static_cast<float>(1.0 - o.beta1);
  const float beta2 = static_cast<float>(o.beta2);
  const float one_minus_beta2 = static_cast<float>(1.0 - o.beta2);
  const float eps = static_cast<float>(o.eps);
  for (std::int64_t i = 0; i < n; ++i) {
    float g = o.maximize ? -grad[i] : grad[i];
    if (decoupled) {
      if (o.weight_decay != 0.0) p[i] = rounded(p[i] * decay);  // param.mul_(1 - lr * wd)
    } else if (o.weight_decay != 0.0) {
      g = fmadd(p[i], wd, g);  // grad.add(param, alpha=wd)
    }
    // exp_avg.lerp_(grad, 1 - beta1)
    const float m = exp_avg[i];
    exp_avg[i] = std::abs(w) < 0.5f ? fmadd(w, g - m, m) : fmadd(w - 1.f, g - m, g);
    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    const float v_scaled = rounded(exp_avg_sq[i] * beta2);
    const float g_scaled = one_minus_beta2 * g;
    exp_avg_sq[i] = fmadd(g_scaled, g, v_scaled);
    float second = exp_avg_sq[i];
    if (o.amsgrad) {
      // torch.maximum (NaN if either is NaN)
      if (max_exp_avg_sq[i] < second || std::isnan(second)) max_exp_avg_sq[i] = second;
      second = max_exp_avg_sq[i];
    }
    // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    const float root = std::sqrt(second);
    const float denom = root / bias_correction2_sqrt + eps;
    // param.addcdiv_(exp_avg, denom, value=-step_size)
    const float numer = neg_step_size * exp_avg[i];
    p[i] = p[i] + numer / denom;
  }
}

}  // namespace ferrite::optim::reference
