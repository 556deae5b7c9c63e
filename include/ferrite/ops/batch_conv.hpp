#pragma once
// Convolutions for training, over a whole batch in the channel-major layout x[C, N, H, W] ("CNHW"),
// on any device, forward and both gradients (ResNet's conv layers: kernel 1 and 3, stride 1 and 2,
// zero padding, no bias — a BatchNorm follows every one):
//
//   conv2d_cnhw(ctx, x[Cin, N, H, W], w[Cout, Cin, k, k], stride, pad, y[Cout, N, Ho, Wo])
//   conv2d_cnhw_backward_data(ctx, dy[Cout, N, Ho, Wo], w, stride, pad, dx[Cin, N, H, W], accumulate)
//       (dx = ∂, or dx += ∂: a residual block adds its two paths' gradients without a separate pass)
//   conv2d_cnhw_backward_weight(ctx, x, dy, stride, pad, beta, dw[Cout, Cin, k, k])        (dw = ∂ + beta dw)
//   swap_leading_dims(ctx, x[A, B, ...], y[B, A, ...])      NCHW <-> CNHW (the network's entry and exit)
//
// Why CNHW and not PyTorch's NCHW: with channels outermost, one convolution over the batch is one
// GEMM Y[Cout, N·Ho·Wo] = W[Cout, Cin·k·k] · cols (not N small ones, whose K = Ho·Wo is 16 in
// ResNet's last stage), the weight gradient is one long-K GEMM (no per-sample partial sums to add),
// and every BatchNorm channel is one contiguous row of N·H·W values. Weights keep PyTorch's layout, so
// state_dicts cross unchanged; only the input batch is transposed once (swap_leading_dims).
//
// Kernels: CPU f32 backend/cpu/batch_conv.hpp (im2col bands + the packed SGEMM; bit-identical across
// thread counts); CPU f64 the direct-loop reference (backend/cpu/reference/batch_conv.hpp); CUDA:
// im2col / col2im kernels (impl/batch_conv.cuh) + cuBLAS over the whole batch, cols in the workspace,
// TF32 as the context allows.
#include <cstdint>

#include "ferrite/backend/cpu/batch_conv.hpp"
#include "ferrite/backend/cpu/reference/batch_conv.hpp"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/ops/dispatch.hpp"

namespace ferrite::ops {

namespace detail {

// The geometry of a convolution from x's and w's shapes; checks y (or dx / dy) against it.
inline Result<ConvGeometry> conv_geometry(const char* op, ConstTensorRef x_like, const Shape& x_shape,
                                          ConstTensorRef w, std::int64_t stride, std::int64_t pad,
                                          ConstTensorRef y_like, const Shape& y_shape) {
  const auto shapes = [&] { return fe_format("x {}, w {}, y {}, stride {}, pad {}", x_shape.to_string(), w.describe(),
                                             y_shape.to_string(), stride, pad); };
  if (x_shape.rank() != 4 || w.rank() != 4 || y_shape.rank() != 4 || w.dim(2) != w.dim(3))
    return make_error(ErrorCode::shape_mismatch, op, "expected x[Cin, N, H, W], w[Cout, Cin, k, k], y[Cout, N, Ho, Wo]",
                      shapes());
  if (stride < 1 || pad < 0 || w.dim(2) < 1)
    return make_error(ErrorCode::invalid_argument, op, "stride must be >= 1, pad >= 0, k >= 1", shapes());
  ConvGeometry g{x_shape[0], w.dim(0), x_shape[1], x_shape[2], x_shape[3], w.dim(2), stride, pad};
  if (w.dim(1) != g.cin)
    return make_error(ErrorCode::shape_mismatch, op, "w's Cin differs from x's channels", shapes());
  if (g.height + 2 * pad < g.kernel || g.width + 2 * pad < g.kernel)
    return make_error(ErrorCode::shape_mismatch, op, "the padded input is smaller than the kernel", shapes());
  if (y_shape != Shape{g.cout, g.batch, g.out_height(), g.out_width()})
    return make_error(ErrorCode::shape_mismatch, op,
                      fe_format("y must be [{}, {}, {}, {}]", g.cout, g.batch, g.out_height(), g.out_width()), shapes());
  if (!x_like.is_contiguous() || !y_like.is_contiguous() || !w.is_contiguous())
    return make_error(ErrorCode::unsupported, op, "operands must be contiguous", shapes());
  return g;
}

// The CUDA sequences (called inside FE_DETAIL_CUDA only: a build without the backend never emits them).
inline Status cuda_conv_forward(Context& ctx, const ConvGeometry& g, const float* x, const float* w, float* y) {
  const auto& s = *ctx.stream();
  const bool tf32 = ctx.options().allow_tf32;
  const std::int64_t K = g.patch(), cols = g.columns();
  if (g.pointwise()) return cuda::kernels::sgemm(s, Trans::no, Trans::no, g.cout, cols, K, 1.f, w, K, x, cols, 0.f, y, cols, tf32);
  FE_TRY_ASSIGN(TensorRef c, ctx.workspace().allocate({K, cols}));
  FE_TRY(cuda::kernels::im2col_cnhw(s, g, x, c.ptr<float>()));
  return cuda::kernels::sgemm(s, Trans::no, Trans::no, g.cout, cols, K, 1.f, w, K, c.ptr<float>(), cols, 0.f, y, cols, tf32);
}
inline Status cuda_conv_backward_data(Context& ctx, const ConvGeometry& g, const float* dy, const float* w, bool accumulate,
                                      float* dx) {
  const auto& s = *ctx.stream();
  const bool tf32 = ctx.options().allow_tf32;
  const std::int64_t K = g.patch(), cols = g.columns();
  if (g.pointwise())
    return cuda::kernels::sgemm(s, Trans::yes, Trans::no, K, cols, g.cout, 1.f, w, K, dy, cols, accumulate ? 1.f : 0.f, dx,
                                cols, tf32);
  FE_TRY_ASSIGN(TensorRef dc, ctx.workspace().allocate({K, cols}));
  FE_TRY(cuda::kernels::sgemm(s, Trans::yes, Trans::no, K, cols, g.cout, 1.f, w, K, dy, cols, 0.f, dc.ptr<float>(), cols, tf32));
  return cuda::kernels::col2im_cnhw(s, g, dc.ptr<float>(), accumulate, dx);
}
inline Status cuda_conv_backward_weight(Context& ctx, const ConvGeometry& g, const float* x, const float* dy, float beta,
                                        float* dw) {
  const auto& s = *ctx.stream();
  const bool tf32 = ctx.options().allow_tf32;
  const std::int64_t K = g.patch(), cols = g.columns();
  if (g.pointwise()) return cuda::kernels::sgemm(s, Trans::no, Trans::yes, g.cout, K, cols, 1.f, dy, cols, x, cols, beta, dw, K, tf32);
  FE_TRY_ASSIGN(TensorRef c, ctx.workspace().allocate({K, cols}));
  FE_TRY(cuda::kernels::im2col_cnhw(s, g, x, c.ptr<float>()));
  return cuda::kernels::sgemm(s, Trans::no, Trans::yes, g.cout, K, cols, 1.f, dy, cols, c.ptr<float>(), cols, beta, dw, K, tf32);
}

}  // namespace detail

inline Status conv2d_cnhw(Context& ctx, ConstTensorRef x, ConstTensorRef w, std::int64_t stride, std::int64_t pad,
                          TensorRef y) {
  static constexpr const char* kOp = "conv2d_cnhw";
  const ConstTensorRef yc = y;
  FE_TRY_ASSIGN(const Kernel kernel, select_kernel(kOp, ctx, x.dtype, {{"x", &x}, {"w", &w}, {"y", &yc}}));
  FE_TRY_ASSIGN(const ConvGeometry g, detail::conv_geometry(kOp, x, x.shape, w, stride, pad, yc, y.shape));
  if (y.numel() == 0) return ok_status();
  ProfileScope profile(ctx, kOp);
  switch (kernel) {
    case Kernel::cpu_f32:
      cpu::batch_conv::conv2d_forward(g, x.ptr<float>(), w.ptr<float>(), y.ptr<float>());
      return ok_status();
    case Kernel::cpu_f64:
      cpu::reference::conv2d_cnhw<double>(g, x.ptr<double>(), w.ptr<double>(), y.ptr<double>());
      return ok_status();
    case Kernel::cuda_f32:
      return FE_DETAIL_CUDA(kOp, ctx.device().index,
                            detail::cuda_conv_forward(ctx, g, x.ptr<float>(), w.ptr<float>(), y.ptr<float>()));
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

inline Status conv2d_cnhw_backward_data(Context& ctx, ConstTensorRef dy, ConstTensorRef w, std::int64_t stride,
                                        std::int64_t pad, TensorRef dx, bool accumulate = false) {
  static constexpr const char* kOp = "conv2d_cnhw_backward_data";
  const ConstTensorRef dxc = dx;
  FE_TRY_ASSIGN(const Kernel kernel, select_kernel(kOp, ctx, dy.dtype, {{"dy", &dy}, {"w", &w}, {"dx", &dxc}}));
  FE_TRY_ASSIGN(const ConvGeometry g, detail::conv_geometry(kOp, dxc, dx.shape, w, stride, pad, dy, dy.shape));
  if (dx.numel() == 0) return ok_status();
  ProfileScope profile(ctx, kOp);
  switch (kernel) {
    case Kernel::cpu_f32:
      cpu::batch_conv::conv2d_backward_data(g, dy.ptr<float>(), w.ptr<float>(), accumulate, dx.ptr<float>());
      return ok_status();
    case Kernel::cpu_f64:
      cpu::reference::conv2d_cnhw_backward_data<double>(g, dy.ptr<double>(), w.ptr<double>(), accumulate, dx.ptr<double>());
      return ok_status();
    case Kernel::cuda_f32:
      return FE_DETAIL_CUDA(kOp, ctx.device().index,
                            detail::cuda_conv_backward_data(ctx, g, dy.ptr<float>(), w.ptr<float>(), accumulate,
                                                            dx.ptr<float>()));
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

inline Status conv2d_cnhw_backward_weight(Context& ctx, ConstTensorRef x, ConstTensorRef dy, std::int64_t stride,
                                          std::int64_t pad, double beta, TensorRef dw) {
  static constexpr const char* kOp = "conv2d_cnhw_backward_weight";
  const ConstTensorRef dwc = dw;
  FE_TRY_ASSIGN(const Kernel kernel, select_kernel(kOp, ctx, x.dtype, {{"x", &x}, {"dy", &dy}, {"dw", &dwc}}));
  FE_TRY_ASSIGN(const ConvGeometry g, detail::conv_geometry(kOp, x, x.shape, dwc, stride, pad, dy, dy.shape));
  if (dw.numel() == 0) return ok_status();
  ProfileScope profile(ctx, kOp);
  switch (kernel) {
    case Kernel::cpu_f32:
      cpu::batch_conv::conv2d_backward_weight(g, x.ptr<float>(), dy.ptr<float>(), float(beta), dw.ptr<float>());
      return ok_status();
    case Kernel::cpu_f64:
      cpu::reference::conv2d_cnhw_backward_weight<double>(g, x.ptr<double>(), dy.ptr<double>(), beta, dw.ptr<double>());
      return ok_status();
    case Kernel::cuda_f32:
      return FE_DETAIL_CUDA(kOp, ctx.device().index,
                            detail::cuda_conv_backward_weight(ctx, g, x.ptr<float>(), dy.ptr<float>(), float(beta),
                                                              dw.ptr<float>()));
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

// y[B, A, ...] = x[A, B, ...] with the first two dimensions swapped (contiguous operands).
inline Status swap_leading_dims(Context& ctx, ConstTensorRef x, TensorRef y) {
  static constexpr const char* kOp = "swap_leading_dims";
  const ConstTensorRef yc = y;
  FE_TRY_ASSIGN(const Kernel kernel, select_kernel(kOp, ctx, x.dtype, {{"x", &x}, {"y", &yc}}));
  Shape want = x.shape;
  if (x.rank() >= 2) std::swap(want[0], want[1]);
  if (x.rank() < 2 || y.shape != want || !x.is_contiguous() || !y.is_contiguous())
    return make_error(ErrorCode::shape_mismatch, kOp, "expected contiguous x[A, B, ...] and y[B, A, ...]",
                      fe_format("x {}, y {}", x.describe(), y.describe()));
  const std::int64_t A = x.dim(0), B = x.dim(1), P = (A * B) != 0 ? x.numel() / (A * B) : 0;
  if (x.numel() == 0) return ok_status();
  ProfileScope profile(ctx, kOp);
  switch (kernel) {
    case Kernel::cpu_f32:
      cpu::batch_conv::swap_leading_dims(x.ptr<float>(), A, B, P, y.ptr<float>());
      return ok_status();
    case Kernel::cpu_f64:
      cpu::reference::swap_leading_dims<double>(x.ptr<double>(), A, B, P, y.ptr<double>());
      return ok_status();
    case Kernel::cuda_f32:
      return FE_DETAIL_CUDA(kOp, ctx.device().index,
                            cuda::kernels::swap_leading_dims(*ctx.stream(), x.ptr<float>(), A, B, P, y.ptr<float>()));
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

}  // namespace ferrite::ops
