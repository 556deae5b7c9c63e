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
#include <xsimd/xsimd.hpp>

#include "ferrite/optim/optimizer.hpp"

namespace ferrite::optim {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // L2: added to the gradient
  bool amsgrad = false;
  bool maximize = false;
};

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

namespace detail {

// The per-step constants, as the float kernels see them.
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
inline AdamCoefficients adam_coefficients(const AdamOptions& o, double lr, bool decoupled,
                                          std::int64_t step) {
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

// GCC 12 warns that the _mm512_undefined_ps() inside AVX-512 intrinsics (_mm512_sqrt_ps,
// _mm512_cvtps_pd, ...) "may be used uninitialized": a known false positive within the intrinsic.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// x / c for x = sqrt(v) >= 0 and the per-step constant c in (0, 1], bit-identical to the float
// division but on the multipliers instead of the divider, which sqrt and the second division keep
// busy (the divider bounds this kernel: measured 42 -> 36 us per MLP step on one core).
// Computes RN_float(RN_double(x * RN_double(1 / c))). Why it equals RN_float(x / c): the double
// estimate is within 2^-52 (relative) of Q = x / c, while Q is never closer than 2^-49 to a float
// rounding midpoint mu: x - c * mu is a nonzero multiple of 2^min(e_x, e_c + e_mu) and c * mu has
// at most 24 + 25 significant bits (and Q is normal: x >= sqrt(2^-149) > 2^-75, c <= 1). So the
// estimate and Q round to the same float. tests/optim checks this against plain division.
inline float divide_exactly(float x, float /*c*/, double inv_c) noexcept {
  return static_cast<float>(static_cast<double>(x) * inv_c);
}
template <class B>
inline B divide_exactly(const B& x, float c, double inv_c) noexcept {
#if defined(__AVX512F__)
  if constexpr (B::size == 16) {
    const __m512 xv = x;
    const __m512d r = _mm512_set1_pd(inv_c);
    const __m256 lo = _mm512_castps512_ps256(xv);
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xv), 1));
    const __m256 qlo = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(lo), r));
    const __m256 qhi = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(hi), r));
    return B(_mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(qlo)),
                                                 _mm256_castps_pd(qhi), 1)));
  }
#endif
#if defined(__AVX__)
  if constexpr (B::size == 8) {
    const __m256 xv = x;
    const __m256d r = _mm256_set1_pd(inv_c);
    const __m128 qlo =
        _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(xv)), r));
    const __m128 qhi =
        _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(xv, 1)), r));
    return B(_mm256_insertf128_ps(_mm256_castps128_ps256(qlo), qhi, 1));
  }
#endif
  (void)inv_c;
  return x / B(c);  // the same numbers, by the argument above
}

// torch.maximum: the larger, or NaN if either is NaN.
inline float max_of(float a, float b) noexcept { return (a < b || b != b) ? b : a; }
template <class B>
inline B max_of(const B& a, const B& b) noexcept {
  return xsimd::select((a < b) || (b != b), b, a);
}

// One element (V = float) or one SIMD batch (V = xsimd::batch<float>): the same operations in the
// same order, so the vector body and the scalar tail agree bit for bit. vmax is touched only with
// amsgrad.
template <class V>
inline void adam_update(V& p, V g, V& m, V& v, V& vmax, const AdamCoefficients& c) noexcept {
  using std::sqrt;  // float: std::sqrt(float); batch: xsimd::sqrt by ADL. Both correctly rounded.
  if (c.maximize) g = -g;
  if (c.l2) g = fused_mul_add(p, V(c.weight_decay), g);
  if (c.decoupled) p = rounded(p * V(c.decay));
  const V diff = g - m;
  m = c.lerp_weight_small ? fused_mul_add(V(c.lerp_weight), diff, m)
                          : fused_mul_add(V(c.lerp_weight_minus_one), diff, g);
  v = fused_mul_add(V(c.one_minus_beta2) * g, g, rounded(v * V(c.beta2)));
  V second = v;
  if (c.amsgrad) {
    vmax = max_of(vmax, v);
    second = vmax;
  }
  const V root = sqrt(second);
  const V denom =
      divide_exactly(root, c.bias_correction2_sqrt, c.inv_bias_correction2_sqrt) + V(c.eps);
  p = p + (V(c.neg_step_size) * m) / denom;
}

// p, g, m, v (, vmax with amsgrad): [n].
inline void adam_kernel(float* p, const float* g, float* m, float* v, float* vmax, std::int64_t n,
                        const AdamCoefficients& coefficients) noexcept {
  // A local copy: stores through the float pointers cannot alias it, so its fields stay in
  // registers instead of being reloaded after every store.
  const AdamCoefficients c = coefficients;
  using B = xsimd::batch<float>;
  constexpr std::int64_t W = static_cast<std::int64_t>(B::size);
  std::int64_t i = 0;
  if (c.amsgrad) {
    for (; i + W <= n; i += W) {
      B pv = B::load_unaligned(p + i), mv = B::load_unaligned(m + i), vv = B::load_unaligned(v + i);
      B xv = B::load_unaligned(vmax + i);
      adam_update(pv, B::load_unaligned(g + i), mv, vv, xv, c);
      pv.store_unaligned(p + i);
      mv.store_unaligned(m + i);
      vv.store_unaligned(v + i);
      xv.store_unaligned(vmax + i);
    }
  } else {
    for (; i + W <= n; i += W) {
      B pv = B::load_unaligned(p + i), mv = B::load_unaligned(m + i), vv = B::load_unaligned(v + i);
      B unused(0.f);
      adam_update(pv, B::load_unaligned(g + i), mv, vv, unused, c);
      pv.store_unaligned(p + i);
      mv.store_unaligned(m + i);
      vv.store_unaligned(v + i);
    }
  }
  for (; i < n; ++i) {
    float xs = c.amsgrad ? vmax[i] : 0.f;
    adam_update(p[i], g[i], m[i], v[i], xs, c);
    if (c.amsgrad) vmax[i] = xs;
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

}  // namespace detail

class Adam : public Optimizer {
 public:
  // Validates like torch.optim.Adam: lr, eps, weight_decay >= 0 (and finite), 0 <= beta < 1.
  static Result<Adam> create(nn::ParameterList params, const AdamOptions& options = {}) {
    Adam adam;
    FE_TRY(adam.init("Adam", std::move(params), options, /*decoupled=*/false));
    return adam;
  }

  Status step() override {
    FE_TRY(check_params());
    const auto c = detail::adam_coefficients(options_, lr_, decoupled_, step_ + 1);
    for_each_chunk([&](const Chunk& ch) {
      auto& prm = params_[ch.param];
      const std::int64_t b = ch.begin;
      detail::adam_kernel(prm.value->data<float>() + b, prm.grad->data<float>() + b,
                          state_data(ch.param, 0) + b, state_data(ch.param, 1) + b,
                          c.amsgrad ? state_data(ch.param, 2) + b : nullptr, ch.end - b, c);
    });
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

  Status init(std::string op, nn::ParameterList params, const AdamOptions& options,
              bool decoupled) {
    FE_TRY(validate(op, options));
    options_ = options;
    decoupled_ = decoupled;
    std::vector<std::string> keys{"exp_avg", "exp_avg_sq"};
    if (options.amsgrad) keys.emplace_back("max_exp_avg_sq");
    return bind(std::move(op), std::move(params), std::move(keys), options.lr);
  }

 private:
  AdamOptions options_;
  bool decoupled_ = false;
};

// AdamW (Loshchilov & Hutter): Adam with decoupled weight decay, p *= 1 - lr * wd before the
// update.
class AdamW : public Adam {
 public:
  static Result<AdamW> create(nn::ParameterList params, const AdamWOptions& options = {}) {
    AdamW adamw;
    FE_TRY(adamw.init("AdamW", std::move(params), to_adam_options(options), /*decoupled=*/true));
    return adamw;
  }

  static AdamOptions to_adam_options(const AdamWOptions& o) {
    return {o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.amsgrad, o.maximize};
  }

 private:
  AdamW() = default;
};

}  // namespace ferrite::optim
