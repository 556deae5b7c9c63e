#pragma once
// Complex cells, on any device: the QCA state psi of one sample, f32 [H, W, d, 2] (complex64 as
// torch.view_as_real), against the planar [2d, H, W] images the U-Net reads and writes.
//   complex_pack_planar(ctx, psi[H, W, d, 2], x[2d, H, W])      x[c] = Re psi_c, x[d + c] = Im psi_c
//   complex_cell_update(ctx, o[2d, H, W], bias[2d] or {}, psi, unitary, gamma)
//       m = (o + b) as complex; g = m psi (unitary) or m; psi1 = psi + g - gamma psi;
//       psi = psi1 / (|psi1| + 1e-9) per cell, in place (shared/specs/qca-step.md)
#include "ferrite/backend/cpu/complex.hpp"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/ops/dispatch.hpp"

namespace ferrite::ops {

namespace detail {
inline Status check_cells(const char* op, const ConstTensorRef& psi, const ConstTensorRef& planar) {
  if (psi.rank() != 4 || psi.dim(3) != 2 || !psi.is_contiguous() || planar.rank() != 3 || !planar.is_contiguous() ||
      planar.dim(0) != 2 * psi.dim(2) || planar.dim(1) != psi.dim(0) || planar.dim(2) != psi.dim(1))
    return make_error(ErrorCode::shape_mismatch, op, "psi must be a contiguous [H, W, d, 2] and the image [2d, H, W]",
                      fe_format("psi {}, image {}", psi.describe(), planar.describe()));
  return ok_status();
}
}  // namespace detail

inline Status complex_pack_planar(Context& ctx, ConstTensorRef psi, TensorRef x) {
  static constexpr const char* kOp = "complex_pack_planar";
  const ConstTensorRef xc = x;
  FE_TRY_ASSIGN(const Kernel kernel, select_kernel(kOp, ctx, psi.dtype, {{"psi", &psi}, {"x", &xc}}));
  FE_TRY(detail::check_cells(kOp, psi, x));
  ProfileScope profile(ctx, kOp);
  const std::int64_t H = psi.dim(0), W = psi.dim(1), d = psi.dim(2);
  switch (kernel) {
    case Kernel::cpu_f32: cpu::complex_pack_planar(psi.ptr<float>(), H, W, d, x.ptr<float>()); return ok_status();
    case Kernel::cpu_f64: cpu::complex_pack_planar(psi.ptr<double>(), H, W, d, x.ptr<double>()); return ok_status();
    case Kernel::cuda_f32:
      return FE_DETAIL_CUDA(kOp, ctx.device().index,
                            cuda::kernels::complex_pack_planar(*ctx.stream(), psi.ptr<float>(), H * W, d, x.ptr<float>()));
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

inline Status complex_cell_update(Context& ctx, ConstTensorRef o, ConstTensorRef bias, TensorRef psi, bool unitary,
                                  double gamma) {
  static constexpr const char* kOp = "complex_cell_update";
  const ConstTensorRef pc = psi;
  const bool has_bias = bias.defined();
  FE_TRY_ASSIGN(const Kernel kernel,
                select_kernel(kOp, ctx, o.dtype, {{"o", &o}, {"bias", has_bias ? &bias : nullptr}, {"psi", &pc}}));
  FE_TRY(detail::check_cells(kOp, psi, o));
  if (has_bias && (bias.shape != Shape{o.dim(0)} || !bias.is_contiguous()))
    return make_error(ErrorCode::shape_mismatch, kOp, "bias must be [2d]", fe_format("o {}, bias {}", o.describe(), bias.describe()));
  ProfileScope profile(ctx, kOp);
  const std::int64_t H = psi.dim(0), W = psi.dim(1), d = psi.dim(2);
  switch (kernel) {
    case Kernel::cpu_f32:
      cpu::complex_cell_update<float>(o.ptr<float>(), has_bias ? bias.ptr<float>() : nullptr, psi.ptr<float>(), H, W, d,
                                      unitary, static_cast<float>(gamma));
      return ok_status();
    case Kernel::cpu_f64:
      cpu::complex_cell_update<double>(o.ptr<double>(), has_bias ? bias.ptr<double>() : nullptr, psi.ptr<double>(), H, W,
                                       d, unitary, gamma);
      return ok_status();
    case Kernel::cuda_f32:
      return FE_DETAIL_CUDA(kOp, ctx.device().index,
                            cuda::kernels::complex_cell_update(*ctx.stream(), o.ptr<float>(),
                                                               has_bias ? bias.ptr<float>() : nullptr, psi.ptr<float>(),
                                                               H * W, d, unitary, static_cast<float>(gamma)));
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

}  // namespace ferrite::ops
