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

}  // namespace ops

}  // namespace ferrite
