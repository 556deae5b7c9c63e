#pragma once
// MaxPool 2x2 stride 2 and channel concatenation on planar images (ChwView, one sample), CPU,
// shape-checked. Oracles: backend/cpu/reference/conv.hpp. (The U-Net itself avoids the copy of
// concat_channels: producers write straight into channel slices of the concatenated buffer.)
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include <tbb/parallel_for.h>

#include "ferrite/core/result.hpp"
#include "ferrite/backend/cpu/batch_conv.hpp"
#include "ferrite/backend/cpu/reference/batch_conv.hpp"
#include "ferrite/backend/cpu/reference/conv.hpp"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/core/chw.hpp"
#include "ferrite/ops/dispatch.hpp"

namespace ferrite {

// MaxPool2d(kernel 2, stride 2), floor mode: y[C, H/2, W/2] (an odd last row / column is dropped).
// NaN handling as std::max (a NaN in the first position propagates), not PyTorch's NaN-propagating max.
inline Status check_maxpool2x2(const char* op, ChwView<const float> x, ChwView<float> y) {
  if (y.channels != x.channels || y.height != x.height / 2 || y.width != x.width / 2)
    return make_error(ErrorCode::shape_mismatch, op, "output must be [C, floor(H/2), floor(W/2)]",
                      x.shape().to_string() + " -> " + y.shape().to_string());
  return {};
}

inline Status maxpool2x2(ChwView<const float> x, ChwView<float> y) {
  FE_TRY(check_maxpool2x2("maxpool2x2", x, y));
  tbb::parallel_for(std::int64_t{0}, y.channels, [&](std::int64_t c) {
    for (std::int64_t i = 0; i < y.height; ++i) {
      const float* r0 = &x(c, 2 * i, 0);
      const float* r1 = r0 + x.width;
      float* __restrict out = &y(c, i, 0);
      for (std::int64_t j = 0; j < y.width; ++j)
        out[j] = std::max(std::max(r0[2 * j], r0[2 * j + 1]), std::max(r1[2 * j], r1[2 * j + 1]));
    }
  });
  return {};
}

// y[Ca + Cb, H, W] = torch.cat([a, b], dim=0).
inline Status concat_channels(ChwView<const float> a, ChwView<const float> b, ChwView<float> y) {
  if (a.height != b.height || a.width != b.width || y.height != a.height || y.width != a.width ||
      y.channels != a.channels + b.channels)
    return make_error(ErrorCode::shape_mismatch, "concat_channels", "inputs must share H, W and the output be [Ca + Cb, H, W]",
                      a.shape().to_string() + " + " + b.shape().to_string() + " -> " + y.shape().to_string());
  if (a.numel()) std::memmove(y.data, a.data, sizeof(float) * std::size_t(a.numel()));
  if (b.numel()) std::memmove(y.data + a.numel(), b.data, sizeof(float) * std::size_t(b.numel()));
  return {};
}

// 2x2 max pooling on any device: ops::maxpool2x2(ctx, x[C, H, W], y[C, H/2, W/2]) (H, W even).
namespace ops {

inline Status maxpool2x2(Context& ctx, ConstTensorRef x, TensorRef y) {
  static constexpr const char* kOp = "maxpool2x2";
  const ConstTensorRef yc = y;
  FE_TRY_ASSIGN(const Kernel kernel, select_kernel(kOp, ctx, x.dtype, {{"x", &x}, {"y", &yc}}));
  if (x.rank() != 3 || y.rank() != 3 || !x.is_contiguous() || !y.is_contiguous() || x.dim(1) % 2 || x.dim(2) % 2 ||
      y.dim(0) != x.dim(0) || 2 * y.dim(1) != x.dim(1) || 2 * y.dim(2) != x.dim(2))
    return make_error(ErrorCode::shape_mismatch, kOp, "expected contiguous x[C, H, W] (H, W even) and y[C, H/2, W/2]",
                      fe_format("x {}, y {}", x.describe(), y.describe()));
  ProfileScope profile(ctx, kOp);
  const std::int64_t C = x.dim(0), H = x.dim(1), W = x.dim(2);
  switch (kernel) {
    case Kernel::cpu_f32:
      return ferrite::maxpool2x2(ChwView<const float>{x.ptr<float>(), C, H, W}, ChwView<float>{y.ptr<float>(), C, H / 2, W / 2});
    case Kernel::cpu_f64:
      cpu::reference::maxpool2x2<double>(ChwView<const double>{x.ptr<double>(), C, H, W},
                                         ChwView<double>{y.ptr<double>(), C, H / 2, W / 2});
      return ok_status();
    case Kernel::cuda_f32:
      return FE_DETAIL_CUDA(kOp, ctx.device().index,
                            cuda::kernels::maxpool2x2(*ctx.stream(), x.ptr<float>(), C, H, W, y.ptr<float>()));
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

// Global average pooling of a channel-major batch (ops/batch_conv.hpp) into the classifier's rows:
//   global_avg_pool_cnhw(ctx, x[C, N, H, W], y[N, C])             y[n, c] = mean of x[c, n, :, :]
//   global_avg_pool_cnhw_backward(ctx, dy[N, C], dx[C, N, H, W])  dx[c, n, :, :] = dy[n, c] / (H W)
// (the transpose to [N, C] comes free with the reduction, so Linear reads its usual rows).
inline Status check_global_avg_pool(const char* op, const ConstTensorRef& image, const ConstTensorRef& rows) {
  if (image.rank() != 4 || rows.rank() != 2 || !image.is_contiguous() || !rows.is_contiguous() ||
      rows.dim(0) != image.dim(1) || rows.dim(1) != image.dim(0))
    return make_error(ErrorCode::shape_mismatch, op, "expected contiguous x[C, N, H, W] and y[N, C]",
                      fe_format("x {}, y {}", image.describe(), rows.describe()));
  return ok_status();
}

inline Status global_avg_pool_cnhw(Context& ctx, ConstTensorRef x, TensorRef y) {
  static constexpr const char* kOp = "global_avg_pool_cnhw";
  const ConstTensorRef yc = y;
  FE_TRY_ASSIGN(const Kernel kernel, select_kernel(kOp, ctx, x.dtype, {{"x", &x}, {"y", &yc}}));
  FE_TRY(check_global_avg_pool(kOp, x, yc));
  const std::int64_t C = x.dim(0), N = x.dim(1), P = x.dim(2) * x.dim(3);
  if (y.numel() == 0) return ok_status();
  if (P == 0) return make_error(ErrorCode::shape_mismatch, kOp, "cannot average empty planes", x.describe());
  ProfileScope profile(ctx, kOp);
  switch (kernel) {
    case Kernel::cpu_f32:
      cpu::batch_conv::global_avg_pool_cnhw(x.ptr<float>(), C, N, P, y.ptr<float>());
      return ok_status();
    case Kernel::cpu_f64:
      cpu::reference::global_avg_pool_cnhw<double>(x.ptr<double>(), C, N, P, y.ptr<double>());
      return ok_status();
    case Kernel::cuda_f32:
      return FE_DETAIL_CUDA(kOp, ctx.device().index,
                            cuda::kernels::global_avg_pool_cnhw(*ctx.stream(), x.ptr<float>(), C, N, P, y.ptr<float>()));
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

inline Status global_avg_pool_cnhw_backward(Context& ctx, ConstTensorRef dy, TensorRef dx) {
  static constexpr const char* kOp = "global_avg_pool_cnhw_backward";
  const ConstTensorRef dxc = dx;
  FE_TRY_ASSIGN(const Kernel kernel, select_kernel(kOp, ctx, dy.dtype, {{"dy", &dy}, {"dx", &dxc}}));
  FE_TRY(check_global_avg_pool(kOp, dxc, dy));
  const std::int64_t C = dx.dim(0), N = dx.dim(1), P = dx.dim(2) * dx.dim(3);
  if (dx.numel() == 0) return ok_status();
  ProfileScope profile(ctx, kOp);
  switch (kernel) {
    case Kernel::cpu_f32:
      cpu::batch_conv::global_avg_pool_cnhw_backward(dy.ptr<float>(), C, N, P, dx.ptr<float>());
      return ok_status();
    case Kernel::cpu_f64:
      cpu::reference::global_avg_pool_cnhw_backward<double>(dy.ptr<double>(), C, N, P, dx.ptr<double>());
      return ok_status();
    case Kernel::cuda_f32:
      return FE_DETAIL_CUDA(kOp, ctx.device().index,
                            cuda::kernels::global_avg_pool_cnhw_backward(*ctx.stream(), dy.ptr<float>(), C, N, P,
                                                                         dx.ptr<float>()));
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

}  // namespace ops

}  // namespace ferrite
