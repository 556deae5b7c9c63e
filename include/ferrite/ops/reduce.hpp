#pragma once
// Reductions over rows, on any device.
//   column_sums(ctx, x[.., N], out[N], accumulate)   out (+)= sum over rows of x, rows in a fixed
//                                                    order (deterministic; the bias gradient)
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

}  // namespace ferrite::ops
