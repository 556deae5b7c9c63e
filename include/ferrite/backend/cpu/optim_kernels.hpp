#pragma once
// The optimizer update kernels on the CPU: one fused pass over (p, g, state...) per call, xsimd
// batches with a scalar tail computing the same float operations in the same order, so results are
// bit-identical whatever the chunking or thread count. The formulas and where PyTorch rounds are in
// optim/adam.hpp and optim/sgd.hpp; the per-step constants in backend/optim_coefficients.hpp.
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <xsimd/xsimd.hpp>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "ferrite/backend/optim_coefficients.hpp"

namespace ferrite::optim::detail {

// Forces `x` to be rounded to float here. PyTorch runs each tensor op of an optimizer as its own
// kernel, so a product such as `v * beta2` is rounded before the following add; GCC's default
// -ffp-contract=fast would otherwise fuse our product and add into one FMA (one rounding fewer)
// and, worse, might do so differently in the SIMD body and the scalar tail. The empty asm makes the
// value opaque to the optimizer at zero cost (it stays in its register).
template <class T>
inline T rounded(T x) noexcept {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  if constexpr (std::is_same_v<T, float>) {
    asm("" : "+x"(x));
    return x;
  } else {
    auto reg = static_cast<typename T::register_type>(x);
    asm("" : "+x"(reg));
    return T(reg);
  }
#elif defined(__GNUC__) && defined(__aarch64__)
  if constexpr (std::is_same_v<T, float>) {
    asm("" : "+w"(x));
    return x;
  } else {
    auto reg = static_cast<typename T::register_type>(x);
    asm("" : "+w"(reg));
    return T(reg);
  }
#else
  return x;  // other compilers do not contract across statements by default
#endif
}

// Whether the build targets FMA hardware (any -march=native x86-64 since 2013, every aarch64).
#if defined(__FMA__) || defined(__aarch64__)
inline constexpr bool kHardwareFma = true;
#else
inline constexpr bool kHardwareFma = false;
#endif

// a * b + c, PyTorch's vec::fmadd: one rounding where the hardware has FMA (as PyTorch's
// AVX2/AVX512 kernels), two where it has not (as PyTorch's DEFAULT kernels and xsimd's fallback),
// so that the scalar tail always agrees with the SIMD body.
inline float fused_mul_add(float a, float b, float c) noexcept {
  if constexpr (kHardwareFma)
    return std::fma(a, b, c);
  else
    return rounded(a * b) + c;
}
// xsimd 8.1 has no AVX-512 fma kernel: its generic fallback is x * y + z, fused only if the
// compiler happens to contract it (GCC does, clang does not). So call the FMA intrinsics ourselves.
template <class B>
inline B fused_mul_add(const B& a, const B& b, const B& c) noexcept {
  static_assert(std::is_same_v<typename B::value_type, float>);
  // On x86 a float batch of 16 / 8 / 4 lanes is a zmm / ymm / xmm register.
#if defined(__AVX512F__)
  if constexpr (B::size == 16) return B(_mm512_fmadd_ps(a, b, c));
#endif
#if defined(__FMA__)
  if constexpr (B::size == 8) return B(_mm256_fmadd_ps(a, b, c));
  if constexpr (B::size == 4) return B(_mm_fmadd_ps(a, b, c));
#endif
  return xsimd::fma(a, b, c);
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

}  // namespace ferrite::optim::detail
