#pragma once
// The per-step constants of the optimizer kernels, computed once per step on the host with
// PyTorch's double -> float roundings, and read by the CPU kernels (backend/cpu/optim_kernels.hpp)
// and the CUDA kernels alike. Plain structs and scalar arithmetic: compiles with g++ and nvcc.
//
// Where double and where float, exactly as PyTorch: the scalars bias_correction1 = 1 - b1^t,
// bias_correction2 = 1 - b2^t, step_size = lr / bc1, sqrt(bc2) = bc2^0.5, 1 - b1, 1 - b2, 1 - lr*wd
// are Python floats, i.e. computed in double (std::pow like Python's **), then each is rounded to
// float once where it enters a float kernel. See optim/adam.hpp and optim/sgd.hpp for the formulas.
#include <cmath>
#include <cstdint>

namespace ferrite::optim {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // Adam: L2 added to the gradient; AdamW: decoupled
  bool amsgrad = false;
  bool maximize = false;
};

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  bool maximize = false;
};

namespace detail {

// Adam / AdamW constants, as the float kernels see them.
struct AdamCoefficients {
  float weight_decay = 0.f;             // Adam's L2 term
  float decay = 1.f;                    // AdamW: float(1 - lr * wd)
  float lerp_weight = 0.1f;             // float(1 - b1)
  float lerp_weight_minus_one = -0.9f;  // float(w) - 1 in float
  bool lerp_weight_small = true;        // |w| < 0.5
  float beta2 = 0.999f;
  float one_minus_beta2 = 0.001f;          // float(1 - b2), rounded from double
  float bias_correction2_sqrt = 1.f;       // float(sqrt(1 - b2^t))
  double inv_bias_correction2_sqrt = 1.0;  // 1 / double(bias_correction2_sqrt), see divide_exactly
  float eps = 1e-8f;
  float neg_step_size = 0.f;  // float(-(lr / (1 - b1^t)))
  bool maximize = false;
  bool l2 = false;
  bool decoupled = false;
  bool amsgrad = false;
};

// `step` is the 1-based index of the step being taken (PyTorch's state["step"] after += 1).
inline AdamCoefficients adam_coefficients(const AdamOptions& o, double lr, bool decoupled, std::int64_t step) {
  const double t = static_cast<double>(step);
  const double bias_correction1 = 1.0 - std::pow(o.beta1, t);
  const double bias_correction2 = 1.0 - std::pow(o.beta2, t);
  const double step_size = lr / bias_correction1;
  AdamCoefficients c;
  c.weight_decay = static_cast<float>(o.weight_decay);
  c.decay = static_cast<float>(1.0 - lr * o.weight_decay);
  c.lerp_weight = static_cast<float>(1.0 - o.beta1);
  c.lerp_weight_minus_one = c.lerp_weight - 1.f;
  c.lerp_weight_small = std::abs(c.lerp_weight) < 0.5f;
  c.beta2 = static_cast<float>(o.beta2);
  c.one_minus_beta2 = static_cast<float>(1.0 - o.beta2);
  c.bias_correction2_sqrt = static_cast<float>(std::pow(bias_correction2, 0.5));
  c.inv_bias_correction2_sqrt = 1.0 / static_cast<double>(c.bias_correction2_sqrt);
  c.eps = static_cast<float>(o.eps);
  c.neg_step_size = static_cast<float>(-step_size);
  c.maximize = o.maximize;
  c.l2 = !decoupled && o.weight_decay != 0.0;
  c.decoupled = decoupled && o.weight_decay != 0.0;
  c.amsgrad = o.amsgrad;
  return c;
}

// SGD constants, as the float kernels see them.
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

}  // namespace detail
}  // namespace ferrite::optim
