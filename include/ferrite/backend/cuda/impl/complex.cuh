#pragma once
// The complex-cell kernels of backend/cuda/kernels.hpp (nvcc only; included by src/cuda_complex.cu
// alone): the QCA state psi[H, W, d, 2] of one sample (P = H*W cells of d complex values) to the
// planar image the U-Net reads, and the fused per-cell update from the U-Net's output. Formulas from
// the former QCA stepper's plan. CPU oracles (backend/cpu/complex.hpp), bit for bit where the CPU is
// compiled without contraction:
//   complex_pack_planar   a copy
//   complex_cell_update   the CPU's expression, every rounding spelled out (__fmul_rn, __fadd_rn, ...:
//                         nvcc would otherwise contract the complex product and the decay into FMAs);
//                         the norm accumulated over c = 0 .. d-1 in order, sqrt and division IEEE
// One thread per cell for the update, which runs two passes over the cell's d components (the second
// recomputes psi1 rather than storing it: no per-thread array).
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/impl/planar.cuh"
#include "ferrite/backend/cuda/impl/stream.cuh"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/core/result.hpp"

namespace ferrite::cuda::kernels {

namespace {

using detail::thread_x;

// x[c, p] = psi[p, c mod d, c / d] (c < d: real parts, c >= d: imaginary parts): grid (ceil(P / 256), 2d).
__global__ void complex_pack_planar_kernel(const float* __restrict__ psi, int plane, i64 d, float* __restrict__ x) {
  const i64 p = thread_x();
  if (p >= plane) return;
  for (i64 c = blockIdx.y; c < 2 * d; c += gridDim.y) {
    const i64 comp = c < d ? c : c - d, part = c < d ? 0 : 1;
    x[c * plane + p] = psi[(p * d + comp) * 2 + part];
  }
}

// psi1_c of one component: m = (o[c] + b[c]) + i (o[d+c] + b[d+c]); g = m psi (unitary) or m;
// psi1 = (psi + g) - gamma psi.
struct Psi1 {
  float re, im;
};
__device__ __forceinline__ Psi1 psi1_of(const float* __restrict__ o, const float* __restrict__ bias, int plane, i64 d,
                                        bool unitary, float gamma, float pr, float pi, i64 c, i64 p) {
  const float orr = o[c * plane + p], oi = o[(d + c) * plane + p];
  const float mr = bias ? __fadd_rn(orr, bias[c]) : orr;
  const float mi = bias ? __fadd_rn(oi, bias[d + c]) : oi;
  const float gr = unitary ? __fsub_rn(__fmul_rn(mr, pr), __fmul_rn(mi, pi)) : mr;
  const float gi = unitary ? __fadd_rn(__fmul_rn(mr, pi), __fmul_rn(mi, pr)) : mi;
  return {__fsub_rn(__fadd_rn(pr, gr), __fmul_rn(gamma, pr)), __fsub_rn(__fadd_rn(pi, gi), __fmul_rn(gamma, pi))};
}

// psi[p] = psi1 / (sqrt(sum_c |psi1_c|^2) + 1e-9) for every cell p, in place: grid ceil(P / 256).
__global__ void complex_cell_update_kernel(const float* __restrict__ o, const float* __restrict__ bias,
                                           float* __restrict__ psi, int plane, i64 d, bool unitary, float gamma) {
  const i64 p = thread_x();
  if (p >= plane) return;
  float* cell = psi + p * d * 2;
  float norm2 = 0.f;
  for (i64 c = 0; c < d; ++c) {
    const Psi1 v = psi1_of(o, bias, plane, d, unitary, gamma, cell[2 * c], cell[2 * c + 1], c, p);
    norm2 = __fadd_rn(norm2, __fadd_rn(__fmul_rn(v.re, v.re), __fmul_rn(v.im, v.im)));
  }
  const float inv = __fdiv_rn(1.f, __fadd_rn(__fsqrt_rn(norm2), 1e-9f));
  for (i64 c = 0; c < d; ++c) {  // component c is read before it is written, by this thread alone
    const Psi1 v = psi1_of(o, bias, plane, d, unitary, gamma, cell[2 * c], cell[2 * c + 1], c, p);
    cell[2 * c] = __fmul_rn(v.re, inv);
    cell[2 * c + 1] = __fmul_rn(v.im, inv);
  }
}

}  // namespace

Status complex_pack_planar(const Stream& s, const float* psi, i64 plane, i64 d, float* x) {
  if (plane <= 0 || d <= 0) return ok_status();
  FE_TRY(detail::check_plane("cuda::kernels::complex_pack_planar", "a plane", plane));
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  complex_pack_planar_kernel<<<detail::planar_grid(plane, 2 * d), detail::kBlock, 0, detail::raw_stream(s)>>>(
      psi, static_cast<int>(plane), d, x);
  return detail::check_launch("complex_pack_planar_kernel");
}

Status complex_cell_update(const Stream& s, const float* o, const float* bias, float* psi, i64 plane, i64 d,
                           bool unitary, float gamma) {
  if (plane <= 0 || d <= 0) return ok_status();
  FE_TRY(detail::check_plane("cuda::kernels::complex_cell_update", "a plane", plane));
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  complex_cell_update_kernel<<<detail::planar_grid(plane, 1), detail::kBlock, 0, detail::raw_stream(s)>>>(
      o, bias, psi, static_cast<int>(plane), d, unitary, gamma);
  return detail::check_launch("complex_cell_update_kernel");
}

}  // namespace ferrite::cuda::kernels
