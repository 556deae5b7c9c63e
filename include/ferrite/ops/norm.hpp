#pragma once
// GroupNorm (+ fused ELU) and ELU on planar images (ChwView, one sample), CPU, shape-checked.
// Oracles: backend/cpu/reference/conv.hpp.
//
// Statistics: per channel in parallel (double accumulators, fixed order), then per group; two
// passes (mean, then squared deviations from the group mean) so that a large mean cannot cancel the
// variance. Results do not depend on the thread count. The normalization is applied as
// y = (x - mean) * scale[c] + beta[c] with scale = gamma * rstd, then ELU.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <tbb/parallel_for.h>
#include <xsimd/xsimd.hpp>

#include "ferrite/core/result.hpp"
#include "ferrite/tensor/tensor.hpp"
#include "ferrite/backend/cpu/reference/conv.hpp"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/core/chw.hpp"
#include "ferrite/ops/dispatch.hpp"
#include "ferrite/ops/group_norm_groups.hpp"

namespace ferrite {

enum class NormActivation { none, elu };


namespace norm_detail {

// Sum over n floats in double: 8 independent lanes (vectorizable without reassociation), lanes
// added in a fixed order at the end.
inline double sum(const float* x, std::int64_t n) {
  double lanes[8] = {};
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) lanes[l] += double(x[i + l]);
  double s = 0;
  for (; i < n; ++i) s += double(x[i]);
  for (int l = 0; l < 8; ++l) s += lanes[l];
  return s;
}

inline double sum_sq_dev(const float* x, std::int64_t n, double mean) {
  double lanes[8] = {};
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) {
      const double d = double(x[i + l]) - mean;
      lanes[l] += d * d;
    }
  double s = 0;
  for (; i < n; ++i) s += (double(x[i]) - mean) * (double(x[i]) - mean);
  for (int l = 0; l < 8; ++l) s += lanes[l];
  return s;
}

// y = act((x - m) * a + b) over n floats. Subtracting the mean first (rather than PyTorch's
// x * a + (b - m * a)) keeps a group whose mean is large against its spread from cancelling.
template <class Arch = xsimd::default_arch>
inline void scale_shift_act(const float* x, std::int64_t n, float m, float a, float b, NormActivation act, float* y) {
  using Batch = xsimd::batch<float, Arch>;
  constexpr std::int64_t S = Batch::size;
  std::int64_t i = 0;
  const Batch vm(m), va(a), vb(b), zero(0.f);
  if (act == NormActivation::elu) {
    for (; i + S <= n; i += S) {
      const Batch v = xsimd::fma(Batch::load_unaligned(x + i) - vm, va, vb);
      xsimd::select(v > zero, v, xsimd::expm1(v)).store_unaligned(y + i);
    }
    for (; i < n; ++i) {
      const float v = std::fma(x[i] - m, a, b);
      y[i] = v > 0.f ? v : std::expm1(v);
    }
  } else {
    for (; i + S <= n; i += S) xsimd::fma(Batch::load_unaligned(x + i) - vm, va, vb).store_unaligned(y + i);
    for (; i < n; ++i) y[i] = std::fma(x[i] - m, a, b);
  }
}

}  // namespace norm_detail

// The shape checks of group_norm (also used by the CUDA op of the same name).
inline Status check_group_norm(const char* op, ChwView<const float> x, std::int64_t groups,
                               TensorView<const float> gamma, TensorView<const float> beta, ChwView<float> y) {
  const std::string shapes = "x" + x.shape().to_string() + (gamma.data ? ", gamma" + gamma.shape.to_string() : "") +
                             (beta.data ? ", beta" + beta.shape.to_string() : "") + " -> y" + y.shape().to_string();
  if (groups <= 0 || x.channels % groups != 0)
    return make_error(ErrorCode::shape_mismatch, op,
                      std::to_string(groups) + " groups do not divide " + std::to_string(x.channels) + " channels",
                      shapes);
  if (y.channels != x.channels || y.height != x.height || y.width != x.width)
    return make_error(ErrorCode::shape_mismatch, op, "output must have the input's shape", shapes);
  if (bool(gamma.data) != bool(beta.data))
    return make_error(ErrorCode::invalid_argument, op, "give both gamma and beta, or neither", shapes);
  if (gamma.data && (gamma.shape != Shape{x.channels} || beta.shape != Shape{x.channels}))
    return make_error(ErrorCode::shape_mismatch, op, "gamma and beta must be [C]", shapes);
  if (x.data != y.data && x.data < y.data + y.numel() && y.data < x.data + x.numel())
    return make_error(ErrorCode::invalid_argument, op, "input and output partially overlap", shapes);
  return {};
}

// GroupNorm over one sample x[C, H, W] -> y (y may be x: in place). gamma, beta: [C] or both {} (no
// affine). groups must divide C. act = elu applies ELU(alpha = 1) in the same pass.
inline Status group_norm(ChwView<const float> x, std::int64_t groups, TensorView<const float> gamma,
                         TensorView<const float> beta, double eps, NormActivation act, ChwView<float> y) {
  FE_TRY(check_group_norm("group_norm", x, groups, gamma, beta, y));
  const std::int64_t C = x.channels, plane = x.plane(), per_group = C / groups;
  if (x.numel() == 0) return {};
  const double count = double(per_group * plane);

  std::vector<double> channel_stat(static_cast<std::size_t>(C)), mean(static_cast<std::size_t>(groups)),
      rstd(static_cast<std::size_t>(groups));
  const auto combine = [&](std::vector<double>& out) {
    for (std::int64_t g = 0; g < groups; ++g) {
      double s = 0;
      for (std::int64_t c = g * per_group; c < (g + 1) * per_group; ++c) s += channel_stat[c];
      out[g] = s / count;
    }
  };
  tbb::parallel_for(std::int64_t{0}, C, [&](std::int64_t c) { channel_stat[c] = norm_detail::sum(x.channel(c), plane); });
  combine(mean);
  tbb::parallel_for(std::int64_t{0}, C, [&](std::int64_t c) {
    channel_stat[c] = norm_detail::sum_sq_dev(x.channel(c), plane, mean[c / per_group]);
  });
  combine(rstd);
  for (auto& v : rstd) v = 1.0 / std::sqrt(v + eps);
  tbb::parallel_for(std::int64_t{0}, C, [&](std::int64_t c) {
    const std::int64_t g = c / per_group;
    const double scale = rstd[g] * (gamma.data ? double(gamma.data[c]) : 1.0);
    const double shift = beta.data ? double(beta.data[c]) : 0.0;
    norm_detail::scale_shift_act(x.channel(c), plane, float(mean[g]), float(scale), float(shift), act, y.channel(c));
  });
  return {};
}

// ELU(alpha = 1) element-wise; y may be x.
inline Status elu(TensorView<const float> x, TensorView<float> y) {
  if (x.shape != y.shape)
    return make_error(ErrorCode::shape_mismatch, "elu", "output must have the input's shape",
                      x.shape.to_string() + " -> " + y.shape.to_string());
  norm_detail::scale_shift_act(x.data, x.numel(), 0.f, 1.f, 0.f, NormActivation::elu, y.data);
  return {};
}

// GroupNorm (+ ELU) on any device: ops::group_norm(ctx, x[C, H, W], groups, gamma[C], beta[C], eps, act, y)
// (y may be x). CPU f32: the kernel above (two passes in double: mean, then squared deviations);
// CPU f64: the scalar reference; CUDA: per-chunk (sum, sum of squares) partials in double combined
// in a fixed order, one apply kernel with ELU fused (scratch from the workspace).
namespace ops {

inline Status group_norm(Context& ctx, ConstTensorRef x, std::int64_t groups, ConstTensorRef gamma, ConstTensorRef beta,
                         double eps, NormActivation act, TensorRef y) {
  static constexpr const char* kOp = "group_norm";
  const ConstTensorRef yc = y;
  FE_TRY_ASSIGN(const Kernel kernel, select_kernel(kOp, ctx, x.dtype, {{"x", &x}, {"gamma", &gamma}, {"beta", &beta}, {"y", &yc}}));
  if (x.rank() != 3 || !x.is_contiguous() || !y.is_contiguous())
    return make_error(ErrorCode::shape_mismatch, kOp, "x and y must be contiguous [C, H, W] images",
                      fe_format("x {}, y {}", x.describe(), y.describe()));
  const std::int64_t C = x.dim(0), P = x.dim(1) * x.dim(2);
  if (y.shape != x.shape || groups <= 0 || C % groups != 0 || gamma.shape != Shape{C} || beta.shape != Shape{C})
    return make_error(ErrorCode::shape_mismatch, kOp, "y must match x, groups divide C, gamma and beta [C]",
                      fe_format("x {}, groups {}, gamma {}, beta {}, y {}", x.describe(), groups, gamma.describe(),
                                beta.describe(), y.describe()));
  ProfileScope profile(ctx, kOp);
  switch (kernel) {
    case Kernel::cpu_f32:
      return ferrite::group_norm(ChwView<const float>{x.ptr<float>(), C, x.dim(1), x.dim(2)}, groups,
                                 TensorView<const float>{gamma.ptr<float>(), gamma.shape},
                                 TensorView<const float>{beta.ptr<float>(), beta.shape}, eps, act,
                                 ChwView<float>{y.ptr<float>(), C, x.dim(1), x.dim(2)});
    case Kernel::cpu_f64:
      cpu::reference::group_norm<double>(ChwView<const double>{x.ptr<double>(), C, x.dim(1), x.dim(2)}, groups,
                                         gamma.ptr<double>(), beta.ptr<double>(), eps, act == NormActivation::elu,
                                         ChwView<double>{y.ptr<double>(), C, x.dim(1), x.dim(2)});
      return ok_status();
    case Kernel::cuda_f32: {
      const int dev = ctx.device().index;
      FE_TRY_ASSIGN(const std::int64_t bytes,
                    FE_DETAIL_CUDA_RESULT(std::int64_t, kOp, dev,
                                          Result<std::int64_t>(cuda::kernels::group_norm_scratch_bytes(C, P, groups))));
      FE_TRY_ASSIGN(TensorRef scratch, ctx.workspace().allocate({(bytes + 3) / 4}));
      return FE_DETAIL_CUDA(kOp, dev, cuda::kernels::group_norm(*ctx.stream(), x.ptr<float>(), C, P, groups, gamma.ptr<float>(),
                                                                beta.ptr<float>(), eps, act == NormActivation::elu,
                                                                y.ptr<float>(), scratch.data));
    }
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

}  // namespace ops

}  // namespace ferrite
