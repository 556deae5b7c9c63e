#pragma once
// Reductions over rows, on any device.
//   column_sums(ctx, x[.., N], out[N], accumulate)   out (+)= sum over rows of x, rows in a fixed
//                                                    order (deterministic; the bias gradient)
//   sum_of_squares(ctx, x, out f64[1])               out = sum x^2 in double, fixed order
//   clip_by_norm(ctx, x, sum_sq f64[1], max_norm)    x *= min(1, max_norm / (sqrt(sum_sq) + 1e-6)),
//                                                    the factor computed where sum_sq lives (no sync)
#include <cmath>

#include "ferrite/backend/cpu/nn_ops.hpp"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/ops/dispatch.hpp"

namespace ferrite::ops {

inline Status column_sums(Context& ctx, ConstTensorRef x, TensorRef out, bool accumulate = false) {
  static constexpr const char* kOp = "column_sums";
  const ConstTensorRef oc = out;
  FE_TRY_ASSIGN(const Kernel kernel, select_kernel(kOp, ctx, x.dtype, {{"x", &x}, {"out", &oc}}));
  if (out.rank() != 1 || x.rank() == 0 || out.dim(0) != x.dim(-1) || (out.dim(0) > 1 && out.strides[0] != 1))
    return make_error(ErrorCode::shape_mismatch, kOp, "out must be a contiguous [features of x]",
                      fe_format("x {}, out {}", x.describe(), out.describe()));
  ProfileScope profile(ctx, kOp);
  switch (kernel) {
    case Kernel::cpu_f32: {
      FE_TRY_ASSIGN(auto m, x.mat<float>(kOp));
      cpu::column_sums<float>(m, out.ptr<float>(), accumulate);
      return ok_status();
    }
    case Kernel::cpu_f64: {
      FE_TRY_ASSIGN(auto m, x.mat<double>(kOp));
      cpu::column_sums<double>(m, out.ptr<double>(), accumulate);
      return ok_status();
    }
    case Kernel::cuda_f32: {
      FE_TRY_ASSIGN(auto m, x.mat<float>(kOp));
      return FE_DETAIL_CUDA(kOp, ctx.device().index,
                            cuda::kernels::column_sums(*ctx.stream(), m.data, m.ld, m.rows, m.cols, out.ptr<float>(),
                                                       accumulate, nullptr, 0, nullptr, 0));
    }
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

inline Status sum_of_squares(Context& ctx, ConstTensorRef x, TensorRef out) {
  static constexpr const char* kOp = "sum_of_squares";
  FE_TRY(select_kernel(kOp, ctx, x.dtype, {{"x", &x}}, {true, false, true}));
  if (!x.is_contiguous() || out.dtype != DType::f64 || out.numel() != 1 || out.device != ctx.device())
    return make_error(ErrorCode::invalid_argument, kOp, "x must be contiguous and out one f64 on the context's device",
                      fe_format("x {}, out {}", x.describe(), out.describe()));
  ProfileScope profile(ctx, kOp);
  if (ctx.device().is_cpu()) {
    const float* p = x.ptr<float>();
    double s = 0;
    for (std::int64_t i = 0; i < x.numel(); ++i) s += double(p[i]) * double(p[i]);
    *out.ptr<double>() = s;
    return ok_status();
  }
  return FE_DETAIL_CUDA(kOp, ctx.device().index,
                        cuda::kernels::sum_of_squares(*ctx.stream(), x.ptr<float>(), x.numel(), out.ptr<double>()));
}

inline Status clip_by_norm(Context& ctx, TensorRef x, ConstTensorRef sum_sq, double max_norm) {
  static constexpr const char* kOp = "clip_by_norm";
  const ConstTensorRef xc = x;
  FE_TRY(select_kernel(kOp, ctx, x.dtype, {{"x", &xc}}, {true, false, true}));
  if (!x.is_contiguous() || sum_sq.dtype != DType::f64 || sum_sq.numel() != 1 || sum_sq.device != ctx.device() ||
      !(max_norm > 0))
    return make_error(ErrorCode::invalid_argument, kOp,
                      "x must be contiguous, sum_sq one f64 on the context's device, max_norm > 0",
                      fe_format("x {}, sum_sq {}, max_norm {}", x.describe(), sum_sq.describe(), max_norm));
  ProfileScope profile(ctx, kOp);
  if (ctx.device().is_cpu()) {
    const double coef = max_norm / (std::sqrt(*sum_sq.ptr<double>()) + 1e-6);
    if (!(coef < 1.0)) return ok_status();  // within the norm (or NaN): unchanged, like torch's clamp(max=1)
    const float c = static_cast<float>(coef);
    float* p = x.ptr<float>();
    for (std::int64_t i = 0; i < x.numel(); ++i) p[i] *= c;
    return ok_status();
  }
  return FE_DETAIL_CUDA(kOp, ctx.device().index,
                        cuda::kernels::clip_by_norm(*ctx.stream(), x.ptr<float>(), x.numel(), sum_sq.ptr<double>(), max_norm));
}

}  // namespace ferrite::ops
