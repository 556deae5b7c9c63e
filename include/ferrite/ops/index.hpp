#pragma once
// Gathering rows by index, on any device (the batch gather from a resident data set).
//   gather_rows(ctx, src[N, F], indices i32[B], dst[B, F])   dst[r] = src[indices[r]]
//   gather_labels(ctx, src i32[N], indices i32[B], dst i32[B])
//   gather_batch(ctx, images[N, F], labels i32[N], order i32[M], step, per_step, x[B, F], y i32[B])
//        batch `step` of an epoch order: x[r] = images[order[step * per_step + r]], y[r] likewise
//        (B <= per_step; one kernel on CUDA). In graph mode (Context::step_counter) the device counter
//        stands for `step`, so a captured step gathers the next batch on every replay.
// Indices must lie in [0, N): checked on the CPU; on CUDA the caller's order comes from the loader,
// which checked it once.
#include <cstdint>
#include <cstring>

#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/ops/dispatch.hpp"

namespace ferrite::ops {

namespace detail {
inline Status check_indices(const char* op, const ConstTensorRef& indices, std::int64_t n, const Context& ctx) {
  if (indices.dtype != DType::i32 || indices.rank() != 1 || indices.device != ctx.device() ||
      (indices.numel() > 1 && indices.strides[0] != 1))
    return make_error(ErrorCode::invalid_argument, op, "indices must be a contiguous i32[B] on the context's device",
                      indices.describe());
  if (ctx.device().is_cpu()) {
    const std::int32_t* idx = indices.ptr<std::int32_t>();
    for (std::int64_t r = 0; r < indices.numel(); ++r)
      if (idx[r] < 0 || idx[r] >= n)
        return make_error(ErrorCode::invalid_argument, op,
                          fe_format("index {} at position {} is outside [0, {})", idx[r], r, n));
  }
  return ok_status();
}
}  // namespace detail

inline Status gather_rows(Context& ctx, ConstTensorRef src, ConstTensorRef indices, TensorRef dst) {
  static constexpr const char* kOp = "gather_rows";
  const ConstTensorRef dc = dst;
  FE_TRY_ASSIGN(const Kernel kernel, select_kernel(kOp, ctx, src.dtype, {{"src", &src}, {"dst", &dc}}));
  FE_TRY(expect_rank(kOp, "src", src, 2));
  FE_TRY(detail::check_indices(kOp, indices, src.dim(0), ctx));
  FE_TRY(expect_shape(kOp, "dst", dst, {indices.numel(), src.dim(1)}));
  ProfileScope profile(ctx, kOp);
  const std::int32_t* idx = indices.ptr<std::int32_t>();
  switch (kernel) {
    case Kernel::cpu_f32:
    case Kernel::cpu_f64: {
      if ((src.dim(1) > 1 && src.stride(1) != 1) || (dst.dim(1) > 1 && dst.stride(1) != 1))
        return make_error(ErrorCode::unsupported, kOp, "rows must be contiguous",
                          fe_format("src {}, dst {}", src.describe(), dst.describe()));
      const std::int64_t row_bytes = dst.dim(1) * static_cast<std::int64_t>(dtype_size(dst.dtype));
      for (std::int64_t r = 0; r < dst.dim(0); ++r)
        if (row_bytes)
          std::memcpy(dst.offset_by(r * dst.stride(0)), src.offset_by(idx[r] * src.stride(0)),
                      static_cast<std::size_t>(row_bytes));
      return ok_status();
    }
    case Kernel::cuda_f32: {
      FE_TRY_ASSIGN(auto s, src.mat<float>(kOp));
      FE_TRY_ASSIGN(auto d, dst.mat<float>(kOp));
      return FE_DETAIL_CUDA(kOp, ctx.device().index,
                            cuda::kernels::gather_rows(*ctx.stream(), s.data, s.ld, nullptr, idx, d.rows, d.cols, d.data,
                                                       d.ld, nullptr));
    }
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

inline Status gather_labels(Context& ctx, ConstTensorRef src, ConstTensorRef indices, TensorRef dst) {
  static constexpr const char* kOp = "gather_labels";
  if (src.dtype != DType::i32 || dst.dtype != DType::i32 || src.rank() != 1 || src.device != ctx.device() ||
      dst.device != ctx.device() || dst.shape != Shape{indices.numel()})
    return make_error(ErrorCode::invalid_argument, kOp, "src and dst must be i32 vectors on the context's device, dst [B]",
                      fe_format("src {}, dst {}", src.describe(), dst.describe()));
  FE_TRY(detail::check_indices(kOp, indices, src.dim(0), ctx));
  ProfileScope profile(ctx, kOp);
  const std::int32_t* idx = indices.ptr<std::int32_t>();
  if (ctx.device().is_cpu()) {
    const std::int32_t* s = src.ptr<std::int32_t>();
    std::int32_t* d = dst.ptr<std::int32_t>();
    for (std::int64_t r = 0; r < dst.numel(); ++r) d[r] = s[idx[r]];
    return ok_status();
  }
  // The gather kernel carries labels along with one-float rows: here the labels alone, as rows of 0.
  return FE_DETAIL_CUDA(kOp, ctx.device().index,
                        cuda::kernels::gather_rows(*ctx.stream(), nullptr, 0, src.ptr<std::int32_t>(), idx, dst.numel(), 0,
                                                   nullptr, 0, dst.ptr<std::int32_t>()));
}

inline Status gather_batch(Context& ctx, ConstTensorRef images, ConstTensorRef labels, ConstTensorRef order,
                           std::int64_t step, std::int64_t per_step, TensorRef x, TensorRef y) {
  static constexpr const char* kOp = "gather_batch";
  const std::int64_t rows = x.rank() > 0 ? x.dim(0) : 0;
  if (order.dtype != DType::i32 || order.rank() != 1 || step < 0 || per_step <= 0 || rows > per_step ||
      (step * per_step + rows > order.numel()))
    return make_error(ErrorCode::invalid_argument, kOp,
                      "batch `step` of `per_step` rows must lie inside the i32 order (and the batch hold at most per_step rows)",
                      fe_format("order {}, step {}, per_step {}, x {}", order.describe(), step, per_step, x.describe()));
  const ConstTensorRef indices = order.rows(step * per_step, rows);
  if (!ctx.step_counter()) {
    FE_TRY(gather_rows(ctx, images, indices, x));
    return gather_labels(ctx, labels, indices, y);
  }
  // Graph mode: one kernel for rows and labels, the batch's offset read from the device counter.
  // The rows pick the kernel (f32); the labels are i32 by contract and checked on their own below.
  const ConstTensorRef xc = x;
  FE_TRY(select_kernel(kOp, ctx, images.dtype, {{"images", &images}, {"x", &xc}}, {true, false, true}));
  FE_TRY(expect_rank(kOp, "images", images, 2));
  FE_TRY(detail::check_indices(kOp, indices, images.dim(0), ctx));
  FE_TRY(expect_shape(kOp, "x", x, {rows, images.dim(1)}));
  if (labels.dtype != DType::i32 || y.dtype != DType::i32 || labels.shape != Shape{images.dim(0)} || y.shape != Shape{rows} ||
      labels.device != ctx.device() || y.device != ctx.device() || (order.numel() > 1 && order.strides[0] != 1))
    return make_error(ErrorCode::invalid_argument, kOp,
                      "labels i32[N] and y i32[B] on the context's device and a contiguous order expected",
                      fe_format("labels {}, y {}, order {}", labels.describe(), y.describe(), order.describe()));
  ProfileScope profile(ctx, kOp);
  FE_TRY_ASSIGN(auto s, images.mat<float>(kOp));
  FE_TRY_ASSIGN(auto d, x.mat<float>(kOp));
  return FE_DETAIL_CUDA(kOp, ctx.device().index,
                        cuda::kernels::gather_rows(*ctx.stream(), s.data, s.ld, labels.ptr<std::int32_t>(),
                                                   order.ptr<std::int32_t>(), rows, d.cols, d.data, d.ld,
                                                   y.ptr<std::int32_t>(), ctx.step_counter(), per_step));
}

}  // namespace ferrite::ops
