#pragma once
// Bias + activation and the ReLU backward, on any device.
//   bias_activation(ctx, y[.., N], bias[N] or {}, act)   y = act(y + bias) in place (Linear's epilogue)
//   relu_backward(ctx, y, dy, dx)                         dx = dy where y > 0 else 0 (dx may alias dy)
// Tensors of any rank whose leading dimensions collapse into rows (row-contiguous views).
#include "ferrite/backend/cpu/nn_ops.hpp"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/ops/dispatch.hpp"

namespace ferrite::ops {

inline Status bias_activation(Context& ctx, TensorRef y, ConstTensorRef bias, Activation act) {
  static constexpr const char* kOp = "bias_activation";
  const ConstTensorRef yc = y;
  const bool has_bias = bias.defined();
  FE_TRY_ASSIGN(const Kernel kernel, select_kernel(kOp, ctx, y.dtype, {{"y", &yc}, {"bias", has_bias ? &bias : nullptr}}));
  if (has_bias && (bias.rank() != 1 || (y.rank() > 0 && bias.dim(0) != y.dim(-1))))
    return make_error(ErrorCode::shape_mismatch, kOp, "bias must be [features of y]",
                      fe_format("y {}, bias {}", y.describe(), bias.describe()));
  ProfileScope profile(ctx, kOp);
  switch (kernel) {
    case Kernel::cpu_f32: {
      FE_TRY_ASSIGN(auto m, y.mat<float>(kOp));
      cpu::bias_activation<float>(m, has_bias ? bias.ptr<float>() : nullptr, act);
      return ok_status();
    }
    case Kernel::cpu_f64: {
      FE_TRY_ASSIGN(auto m, y.mat<double>(kOp));
      cpu::bias_activation<double>(m, has_bias ? bias.ptr<double>() : nullptr, act);
      return ok_status();
    }
    case Kernel::cuda_f32: {
      FE_TRY_ASSIGN(auto m, y.mat<float>(kOp));
      return FE_DETAIL_CUDA(kOp, ctx.device().index,
                            cuda::kernels::bias_activation(*ctx.stream(), m.data, m.rows, m.cols, m.ld,
                                                           has_bias ? bias.ptr<float>() : nullptr, act));
    }
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

inline Status relu_backward(Context& ctx, ConstTensorRef y, ConstTensorRef dy, TensorRef dx) {
  static constexpr const char* kOp = "relu_backward";
  const ConstTensorRef dxc = dx;
  FE_TRY_ASSIGN(const Kernel kernel, select_kernel(kOp, ctx, y.dtype, {{"y", &y}, {"dy", &dy}, {"dx", &dxc}}));
  if (dy.shape != y.shape || dx.shape != y.shape)
    return make_error(ErrorCode::shape_mismatch, kOp, "operands must have the same shape",
                      detail::describe_operands({{"y", &y}, {"dy", &dy}, {"dx", &dxc}}));
  ProfileScope profile(ctx, kOp);
  switch (kernel) {
    case Kernel::cpu_f32: {
      FE_TRY_ASSIGN(auto ym, y.mat<float>(kOp));
      FE_TRY_ASSIGN(auto dym, dy.mat<float>(kOp));
      FE_TRY_ASSIGN(auto dxm, dx.mat<float>(kOp));
      return cpu::relu_backward<float>(ym, dym, dxm);
    }
    case Kernel::cpu_f64: {
      FE_TRY_ASSIGN(auto ym, y.mat<double>(kOp));
      FE_TRY_ASSIGN(auto dym, dy.mat<double>(kOp));
      FE_TRY_ASSIGN(auto dxm, dx.mat<double>(kOp));
      return cpu::relu_backward<double>(ym, dym, dxm);
    }
    case Kernel::cuda_f32: {
      FE_TRY_ASSIGN(auto ym, y.mat<float>(kOp));
      FE_TRY_ASSIGN(auto dym, dy.mat<float>(kOp));
      FE_TRY_ASSIGN(auto dxm, dx.mat<float>(kOp));
      return FE_DETAIL_CUDA(kOp, ctx.device().index,
                            cuda::kernels::relu_backward(*ctx.stream(), ym.data, ym.ld, dym.data, dym.ld, dxm.data,
                                                         dxm.ld, ym.rows, ym.cols));
    }
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

}  // namespace ferrite::ops
