#pragma once
// BatchNorm2d over the channel-major batch layout x[C, N, H, W] (ops/batch_conv.hpp), on any device,
// with the residual add and ReLU of a ResNet block fused into the same pass:
//
//   batch_norm_train(ctx, x, gamma[C], beta[C], eps, momentum, running_mean[C], running_var[C],
//                    save_mean[C], save_rstd[C], residual (or {}), relu, y)
//       batch statistics (biased variance for y; running_var gets the unbiased one, as PyTorch),
//       y = act((x - mean) · rstd · gamma + beta [+ residual]);  running_* may be {} (not tracked)
//   batch_norm_eval(ctx, x, gamma, beta, running_mean, running_var, eps, residual, relu, y)
//   batch_norm_backward(ctx, x, y (or {} without ReLU), dy, gamma, save_mean, save_rstd,
//                       dx (or {}), dresidual (or {}), dgamma, dbeta, accumulate)
//       through the fused ReLU (masked by y > 0); dresidual = that masked dy (the shortcut's gradient;
//       it may be dy itself); dgamma / dbeta written, or added when accumulate
//
// Fused because each pass over a 128 x 64 x 32 x 32 activation is 33 MB of memory traffic: BN +
// (add) + ReLU is one read of x (and the residual) and one write of y instead of three passes, and
// the backward's ReLU mask, the two sums and dx are one pass more instead of three. Any x[C, ...]
// works (M = numel / C values per channel, M >= 2 in training as PyTorch requires).
// Kernels: backend/cpu/batch_conv.hpp (f32), reference/batch_conv.hpp (f64), impl/batch_conv.cuh.
#include <cstdint>

#include "ferrite/backend/cpu/batch_conv.hpp"
#include "ferrite/backend/cpu/reference/batch_conv.hpp"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/ops/dispatch.hpp"

namespace ferrite::ops {

namespace detail {

// The data of an optional operand, or null. The mutable ones reach here as ConstTensorRef copies of
// the caller's TensorRef (for the shared operand checks), hence the cast back.
template <class T>
inline T* opt_ptr(const ConstTensorRef& t) {
  return t.defined() ? const_cast<T*>(t.ptr<T>()) : nullptr;
}

// x[C, ...] contiguous; every per-channel operand [C]; y-like operands x's shape.
inline Status check_batch_norm(const char* op, ConstTensorRef x, std::initializer_list<Operand> per_channel,
                               std::initializer_list<Operand> like_x, std::initializer_list<Operand> all) {
  if (x.rank() < 2 || !x.is_contiguous())
    return make_error(ErrorCode::shape_mismatch, op, "x must be a contiguous [C, N, ...] tensor", describe_operands(all));
  const Shape c{x.dim(0)};
  for (const auto& o : per_channel)
    if (o.ref && o.ref->defined() && (o.ref->shape != c || !o.ref->is_contiguous()))
      return make_error(ErrorCode::shape_mismatch, op, fe_format("{} must be [{}] (one value per channel)", o.name, x.dim(0)),
                        describe_operands(all));
  for (const auto& o : like_x)
    if (o.ref && o.ref->defined() && (o.ref->shape != x.shape || !o.ref->is_contiguous()))
      return make_error(ErrorCode::shape_mismatch, op, fe_format("{} must be contiguous with x's shape", o.name),
                        describe_operands(all));
  return ok_status();
}

inline const ConstTensorRef* present(const ConstTensorRef& t) { return t.defined() ? &t : nullptr; }

}  // namespace detail

inline Status batch_norm_train(Context& ctx, ConstTensorRef x, ConstTensorRef gamma, ConstTensorRef beta, double eps,
                               double momentum, TensorRef running_mean, TensorRef running_var, TensorRef save_mean,
                               TensorRef save_rstd, ConstTensorRef residual, bool relu, TensorRef y) {
  static constexpr const char* kOp = "batch_norm_train";
  const ConstTensorRef rm = running_mean, rv = running_var, sm = save_mean, sr = save_rstd, yc = y;
  const std::initializer_list<Operand> all{{"x", &x}, {"gamma", &gamma}, {"beta", &beta}, {"running_mean", detail::present(rm)},
                                           {"running_var", detail::present(rv)}, {"save_mean", &sm}, {"save_rstd", &sr},
                                           {"residual", detail::present(residual)}, {"y", &yc}};
  FE_TRY_ASSIGN(const Kernel kernel, select_kernel(kOp, ctx, x.dtype, all));
  FE_TRY(detail::check_batch_norm(kOp, x, {{"gamma", &gamma}, {"beta", &beta}, {"running_mean", &rm}, {"running_var", &rv},
                                           {"save_mean", &sm}, {"save_rstd", &sr}},
                                  {{"residual", &residual}, {"y", &yc}}, all));
  if (!gamma.defined() || !beta.defined() || !save_mean.defined() || !save_rstd.defined() || !y.defined() ||
      rm.defined() != rv.defined())
    return make_error(ErrorCode::invalid_argument, kOp,
                      "gamma, beta, save_mean, save_rstd and y are required; running_mean and running_var go together",
                      detail::describe_operands(all));
  const std::int64_t C = x.dim(0), M = C ? x.numel() / C : 0;
  if (M < 2)
    return make_error(ErrorCode::invalid_argument, kOp,
                      fe_format("expected more than 1 value per channel in training, got {}", M), detail::describe_operands(all));
  if (x.data == y.data)
    return make_error(ErrorCode::invalid_argument, kOp, "y must not be x (the backward reads x)", detail::describe_operands(all));
  ProfileScope profile(ctx, kOp);
  switch (kernel) {
    case Kernel::cpu_f32:
      cpu::batch_conv::batch_norm_train(x.ptr<float>(), C, M, gamma.ptr<float>(), beta.ptr<float>(), eps, momentum,
                                        detail::opt_ptr<float>(rm), detail::opt_ptr<float>(rv), save_mean.ptr<float>(),
                                        save_rstd.ptr<float>(), detail::opt_ptr<float>(residual), relu, y.ptr<float>());
      return ok_status();
    case Kernel::cpu_f64:
      cpu::reference::batch_norm_train<double>(x.ptr<double>(), C, M, gamma.ptr<double>(), beta.ptr<double>(), eps,
                                               momentum, detail::opt_ptr<double>(rm), detail::opt_ptr<double>(rv),
                                               save_mean.ptr<double>(), save_rstd.ptr<double>(),
                                               detail::opt_ptr<double>(residual), relu, y.ptr<double>());
      return ok_status();
    case Kernel::cuda_f32:
      return FE_DETAIL_CUDA(kOp, ctx.device().index,
                            cuda::kernels::batch_norm_train(*ctx.stream(), x.ptr<float>(), C, M, gamma.ptr<float>(),
                                                            beta.ptr<float>(), eps, momentum, detail::opt_ptr<float>(rm),
                                                            detail::opt_ptr<float>(rv), save_mean.ptr<float>(),
                                                            save_rstd.ptr<float>(), detail::opt_ptr<float>(residual), relu,
                                                            y.ptr<float>()));
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

inline Status batch_norm_eval(Context& ctx, ConstTensorRef x, ConstTensorRef gamma, ConstTensorRef beta,
                              ConstTensorRef running_mean, ConstTensorRef running_var, double eps,
                              ConstTensorRef residual, bool relu, TensorRef y) {
  static constexpr const char* kOp = "batch_norm_eval";
  const ConstTensorRef yc = y;
  const std::initializer_list<Operand> all{{"x", &x}, {"gamma", &gamma}, {"beta", &beta}, {"running_mean", &running_mean},
                                           {"running_var", &running_var}, {"residual", detail::present(residual)}, {"y", &yc}};
  FE_TRY_ASSIGN(const Kernel kernel, select_kernel(kOp, ctx, x.dtype, all));
  FE_TRY(detail::check_batch_norm(kOp, x, {{"gamma", &gamma}, {"beta", &beta}, {"running_mean", &running_mean},
                                           {"running_var", &running_var}},
                                  {{"residual", &residual}, {"y", &yc}}, all));
  if (!gamma.defined() || !beta.defined() || !running_mean.defined() || !running_var.defined() || !y.defined())
    return make_error(ErrorCode::invalid_argument, kOp, "gamma, beta, running_mean, running_var and y are required",
                      detail::describe_operands(all));
  const std::int64_t C = x.dim(0), M = C ? x.numel() / C : 0;
  if (x.numel() == 0) return ok_status();
  ProfileScope profile(ctx, kOp);
  switch (kernel) {
    case Kernel::cpu_f32:
      cpu::batch_conv::batch_norm_eval(x.ptr<float>(), C, M, gamma.ptr<float>(), beta.ptr<float>(),
                                       running_mean.ptr<float>(), running_var.ptr<float>(), eps,
                                       detail::opt_ptr<float>(residual), relu, y.ptr<float>());
      return ok_status();
    case Kernel::cpu_f64:
      cpu::reference::batch_norm_eval<double>(x.ptr<double>(), C, M, gamma.ptr<double>(), beta.ptr<double>(),
                                              running_mean.ptr<double>(), running_var.ptr<double>(), eps,
                                              detail::opt_ptr<double>(residual), relu, y.ptr<double>());
      return ok_status();
    case Kernel::cuda_f32:
      return FE_DETAIL_CUDA(kOp, ctx.device().index,
                            cuda::kernels::batch_norm_eval(*ctx.stream(), x.ptr<float>(), C, M, gamma.ptr<float>(),
                                                           beta.ptr<float>(), running_mean.ptr<float>(),
                                                           running_var.ptr<float>(), eps, detail::opt_ptr<float>(residual),
                                                           relu, y.ptr<float>()));
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

inline Status batch_norm_backward(Context& ctx, ConstTensorRef x, ConstTensorRef y, ConstTensorRef dy, ConstTensorRef gamma,
                                  ConstTensorRef save_mean, ConstTensorRef save_rstd, TensorRef dx, TensorRef dresidual,
                                  TensorRef dgamma, TensorRef dbeta, bool accumulate) {
  static constexpr const char* kOp = "batch_norm_backward";
  const ConstTensorRef dxc = dx, drc = dresidual, dgc = dgamma, dbc = dbeta;
  const std::initializer_list<Operand> all{{"x", &x}, {"y", detail::present(y)}, {"dy", &dy}, {"gamma", &gamma},
                                           {"save_mean", &save_mean}, {"save_rstd", &save_rstd}, {"dx", detail::present(dxc)},
                                           {"dresidual", detail::present(drc)}, {"dgamma", &dgc}, {"dbeta", &dbc}};
  FE_TRY_ASSIGN(const Kernel kernel, select_kernel(kOp, ctx, x.dtype, all));
  FE_TRY(detail::check_batch_norm(kOp, x, {{"gamma", &gamma}, {"save_mean", &save_mean}, {"save_rstd", &save_rstd},
                                           {"dgamma", &dgc}, {"dbeta", &dbc}},
                                  {{"y", &y}, {"dy", &dy}, {"dx", &dxc}, {"dresidual", &drc}}, all));
  if (!dy.defined() || !gamma.defined() || !save_mean.defined() || !save_rstd.defined() || !dgamma.defined() ||
      !dbeta.defined())
    return make_error(ErrorCode::invalid_argument, kOp, "dy, gamma, save_mean, save_rstd, dgamma and dbeta are required",
                      detail::describe_operands(all));
  if (dx.defined() && (dx.data == dy.data || dx.data == x.data))
    return make_error(ErrorCode::invalid_argument, kOp, "dx must not be dy or x", detail::describe_operands(all));
  const std::int64_t C = x.dim(0), M = C ? x.numel() / C : 0;
  ProfileScope profile(ctx, kOp);
  switch (kernel) {
    case Kernel::cpu_f32:
      cpu::batch_conv::batch_norm_backward(x.ptr<float>(), detail::opt_ptr<float>(y), dy.ptr<float>(), C, M,
                                           gamma.ptr<float>(), save_mean.ptr<float>(), save_rstd.ptr<float>(),
                                           detail::opt_ptr<float>(dxc), detail::opt_ptr<float>(drc), dgamma.ptr<float>(),
                                           dbeta.ptr<float>(), accumulate);
      return ok_status();
    case Kernel::cpu_f64:
      cpu::reference::batch_norm_backward<double>(x.ptr<double>(), detail::opt_ptr<double>(y), dy.ptr<double>(), C, M,
                                                  gamma.ptr<double>(), save_mean.ptr<double>(), save_rstd.ptr<double>(),
                                                  detail::opt_ptr<double>(dxc), detail::opt_ptr<double>(drc),
                                                  dgamma.ptr<double>(), dbeta.ptr<double>(), accumulate);
      return ok_status();
    case Kernel::cuda_f32:
      return FE_DETAIL_CUDA(kOp, ctx.device().index,
                            cuda::kernels::batch_norm_backward(
                                *ctx.stream(), x.ptr<float>(), detail::opt_ptr<float>(y), dy.ptr<float>(), C, M,
                                gamma.ptr<float>(), save_mean.ptr<float>(), save_rstd.ptr<float>(),
                                detail::opt_ptr<float>(dxc), detail::opt_ptr<float>(drc), dgamma.ptr<float>(),
                                dbeta.ptr<float>(), accumulate));
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

}  // namespace ferrite::ops
