#pragma once
// The fused optimizer updates of backend/cuda/kernels.hpp and their per-step device tables (nvcc
// only; included by src/cuda_optim.cu alone). CPU oracle: backend/cpu/optim_kernels.hpp, operation
// for operation, so bit-identical where the CPU build has FMA (-march=native on any x86-64 since
// 2013; every aarch64): its fused_mul_add is __fmaf_rn here, its rounded(a * b) is __fmul_rn, its
// divide_exactly(x, c, 1/c) equals the correctly rounded x / c, which is __fdiv_rn. sqrtf is
// __fsqrt_rn (correctly rounded, as std::sqrt).
//
// One launch updates a whole flat buffer (float4 loads; the few floats past the last multiple of
// 4 by a scalar tail). The step's constants come from table[*step or 0]: the optimizer fills one
// entry per step with encode_adam_step / encode_sgd_step (the host's double -> float roundings,
// backend/optim_coefficients.hpp), so one captured graph serves every step.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>

#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/impl/stream.cuh"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/backend/optim_coefficients.hpp"
#include "ferrite/core/result.hpp"

namespace ferrite::cuda::kernels {

enum OptimFlags : unsigned {
  kMaximize = 1u << 0,
  kL2 = 1u << 1,           // Adam: g += wd * p
  kDecoupled = 1u << 2,    // AdamW: p *= 1 - lr * wd
  kAmsgrad = 1u << 3,
  kLerpSmall = 1u << 4,    // |1 - beta1| < 0.5: lerp as m + w * (g - m)
  kWeightDecay = 1u << 5,  // SGD
  kMomentum = 1u << 6,
  kNesterov = 1u << 7,
  kFirstStep = 1u << 8,    // SGD: momentum buffer := g
};

// The device layout of one table entry (the host writes it with encode_*_step: same struct, same ABI).
struct AdamStep {  // optim::detail::AdamCoefficients, as floats + flags
  float weight_decay = 0.f, decay = 1.f, lerp_weight = 0.1f, lerp_weight_minus_one = -0.9f;
  float beta2 = 0.999f, one_minus_beta2 = 0.001f, bias_correction2_sqrt = 1.f, eps = 1e-8f, neg_step_size = 0.f;
  unsigned flags = 0;
};
struct SgdStep {  // optim::detail::SGDCoefficients
  float weight_decay = 0.f, momentum = 0.f, one_minus_dampening = 1.f, neg_lr = 0.f;
  unsigned flags = 0;
};

i64 adam_step_bytes() noexcept { return sizeof(AdamStep); }
i64 sgd_step_bytes() noexcept { return sizeof(SgdStep); }

void encode_adam_step(const optim::detail::AdamCoefficients& c, void* entry) noexcept {
  AdamStep s;
  s.weight_decay = c.weight_decay;
  s.decay = c.decay;
  s.lerp_weight = c.lerp_weight;
  s.lerp_weight_minus_one = c.lerp_weight_minus_one;
  s.beta2 = c.beta2;
  s.one_minus_beta2 = c.one_minus_beta2;
  s.bias_correction2_sqrt = c.bias_correction2_sqrt;
  s.eps = c.eps;
  s.neg_step_size = c.neg_step_size;
  s.flags = (c.maximize ? kMaximize : 0u) | (c.l2 ? kL2 : 0u) | (c.decoupled ? kDecoupled : 0u) |
            (c.amsgrad ? kAmsgrad : 0u) | (c.lerp_weight_small ? kLerpSmall : 0u);
  std::memcpy(entry, &s, sizeof s);
}

void encode_sgd_step(const optim::detail::SGDCoefficients& c, void* entry) noexcept {
  SgdStep s;
  s.weight_decay = c.weight_decay;
  s.momentum = c.momentum;
  s.one_minus_dampening = c.one_minus_dampening;
  s.neg_lr = c.neg_lr;
  s.flags = (c.maximize ? kMaximize : 0u) | (c.has_weight_decay ? kWeightDecay : 0u) |
            (c.has_momentum ? kMomentum : 0u) | (c.nesterov ? kNesterov : 0u) | (c.first_step ? kFirstStep : 0u);
  std::memcpy(entry, &s, sizeof s);
}

namespace {

// torch.maximum: the larger, NaN if either is NaN (optim::detail::max_of).
__device__ inline float max_of(float a, float b) { return (a < b || b != b) ? b : a; }

// optim::detail::adam_update, operation for operation.
__device__ inline void adam_element(float& p, float g, float& m, float& v, float& vmax, const AdamStep& c) {
  if (c.flags & kMaximize) g = -g;
  if (c.flags & kL2) g = __fmaf_rn(p, c.weight_decay, g);
  if (c.flags & kDecoupled) p = __fmul_rn(p, c.decay);
  const float diff = __fsub_rn(g, m);
  m = (c.flags & kLerpSmall) ? __fmaf_rn(c.lerp_weight, diff, m) : __fmaf_rn(c.lerp_weight_minus_one, diff, g);
  v = __fmaf_rn(__fmul_rn(c.one_minus_beta2, g), g, __fmul_rn(v, c.beta2));
  float second = v;
  if (c.flags & kAmsgrad) {
    vmax = max_of(vmax, v);
    second = vmax;
  }
  const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(second), c.bias_correction2_sqrt), c.eps);
  p = __fadd_rn(p, __fdiv_rn(__fmul_rn(c.neg_step_size, m), denom));
}

// optim::detail::sgd_update, operation for operation.
__device__ inline void sgd_element(float& p, float g, float& buf, const SgdStep& c) {
  if (c.flags & kMaximize) g = -g;
  if (c.flags & kWeightDecay) g = __fmaf_rn(p, c.weight_decay, g);
  if (c.flags & kMomentum) {
    if (c.flags & kFirstStep)
      buf = g;
    else
      buf = __fmaf_rn(g, c.one_minus_dampening, __fmul_rn(buf, c.momentum));
    g = (c.flags & kNesterov) ? __fmaf_rn(buf, c.momentum, g) : buf;
  }
  p = __fmaf_rn(g, c.neg_lr, p);
}

// n floats: quads q < n / 4 as float4, then elements 4 * (n / 4) .. n - 1 by the first threads.
__global__ void adam_kernel(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                            float* __restrict__ v, float* __restrict__ vmax, i64 n,
                            const AdamStep* __restrict__ table, const i64* __restrict__ step) {
  const AdamStep c = table[detail::step_index(step)];
  const bool ams = (c.flags & kAmsgrad) && vmax;
  const i64 n4 = n / 4, first = blockIdx.x * i64{blockDim.x} + threadIdx.x, stride = i64{gridDim.x} * blockDim.x;
  auto* p4 = reinterpret_cast<float4*>(p);
  const auto* g4 = reinterpret_cast<const float4*>(g);
  auto* m4 = reinterpret_cast<float4*>(m);
  auto* v4 = reinterpret_cast<float4*>(v);
  auto* x4 = reinterpret_cast<float4*>(vmax);
  for (i64 q = first; q < n4; q += stride) {
    float4 pv = p4[q], mv = m4[q], vv = v4[q];
    const float4 gv = g4[q];
    float4 xv = ams ? x4[q] : make_float4(0.f, 0.f, 0.f, 0.f);
    adam_element(pv.x, gv.x, mv.x, vv.x, xv.x, c);
    adam_element(pv.y, gv.y, mv.y, vv.y, xv.y, c);
    adam_element(pv.z, gv.z, mv.z, vv.z, xv.z, c);
    adam_element(pv.w, gv.w, mv.w, vv.w, xv.w, c);
    p4[q] = pv;
    m4[q] = mv;
    v4[q] = vv;
    if (ams) x4[q] = xv;
  }
  const i64 i = n4 * 4 + first;
  if (i < n) {
    float x = ams ? vmax[i] : 0.f;
    adam_element(p[i], g[i], m[i], v[i], x, c);
    if (ams) vmax[i] = x;
  }
}

__global__ void sgd_kernel(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ buf, i64 n,
                           const SgdStep* __restrict__ table, const i64* __restrict__ step) {
  const SgdStep c = table[detail::step_index(step)];
  const bool mom = (c.flags & kMomentum) && buf;
  const bool load = mom && !(c.flags & kFirstStep);  // as the CPU: the first step does not read buf
  const i64 n4 = n / 4, first = blockIdx.x * i64{blockDim.x} + threadIdx.x, stride = i64{gridDim.x} * blockDim.x;
  auto* p4 = reinterpret_cast<float4*>(p);
  const auto* g4 = reinterpret_cast<const float4*>(g);
  auto* b4 = reinterpret_cast<float4*>(buf);
  for (i64 q = first; q < n4; q += stride) {
    float4 pv = p4[q];
    const float4 gv = g4[q];
    float4 bv = load ? b4[q] : make_float4(0.f, 0.f, 0.f, 0.f);
    sgd_element(pv.x, gv.x, bv.x, c);
    sgd_element(pv.y, gv.y, bv.y, c);
    sgd_element(pv.z, gv.z, bv.z, c);
    sgd_element(pv.w, gv.w, bv.w, c);
    p4[q] = pv;
    if (mom) b4[q] = bv;
  }
  const i64 i = n4 * 4 + first;
  if (i < n) {
    float b = load ? buf[i] : 0.f;
    sgd_element(p[i], g[i], b, c);
    if (mom) buf[i] = b;
  }
}

// The step counter of a captured graph: the last node of every step.
__global__ void advance_step_kernel(i64* step) {
  if (threadIdx.x == 0 && blockIdx.x == 0) *step += 1;
}

// float4 access needs 16-byte alignment: refused here rather than faulting in the kernel.
Status check_aligned(const char* op, std::initializer_list<const void*> pointers) {
  for (const void* ptr : pointers)
    if (reinterpret_cast<std::uintptr_t>(ptr) % 16 != 0)
      return make_error(ErrorCode::invalid_argument, op,
                        "the update's buffers must be 16-byte aligned (the flat parameter buffers are)");
  return ok_status();
}

}  // namespace

Status adam_update(const Stream& s, float* p, const float* g, float* m, float* v, float* vmax, i64 n,
                   const void* table, const i64* step) {
  if (n <= 0) return ok_status();
  FE_TRY(check_aligned("cuda::kernels::adam_update", {p, g, m, v, vmax}));
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  adam_kernel<<<detail::grid_for((n + 3) / 4), detail::kBlock, 0, detail::raw_stream(s)>>>(
      p, g, m, v, vmax, n, static_cast<const AdamStep*>(table), step);
  return detail::check_launch("adam_kernel");
}

Status sgd_update(const Stream& s, float* p, const float* g, float* buf, i64 n, const void* table, const i64* step) {
  if (n <= 0) return ok_status();
  FE_TRY(check_aligned("cuda::kernels::sgd_update", {p, g, buf}));
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  sgd_kernel<<<detail::grid_for((n + 3) / 4), detail::kBlock, 0, detail::raw_stream(s)>>>(
      p, g, buf, n, static_cast<const SgdStep*>(table), step);
  return detail::check_launch("sgd_kernel");
}

Status advance_step(const Stream& s, i64* step) {
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  advance_step_kernel<<<1, 32, 0, detail::raw_stream(s)>>>(step);
  return detail::check_launch("advance_step_kernel");
}

}  // namespace ferrite::cuda::kernels
