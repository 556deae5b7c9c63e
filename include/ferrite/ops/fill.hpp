#pragma once
// Filling and copying, on any device.
//   fill(ctx, t, value)        every element of t = value (f32, f64; contiguous)
//   copy(ctx, src, dst)        dst = src, same shape and dtype; any devices (host <-> GPU on the
//                              context's stream; CPU: also strided views)
#include <cstring>

#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/ops/dispatch.hpp"

namespace ferrite::ops {

inline Status fill(Context& ctx, TensorRef t, double value) {
  static constexpr const char* kOp = "fill";
  const ConstTensorRef tc = t;
  FE_TRY_ASSIGN(const Kernel kernel, select_kernel(kOp, ctx, t.dtype, {{"t", &tc}}));
  if (!t.is_contiguous()) return make_error(ErrorCode::unsupported, kOp, "t must be contiguous", t.describe());
  ProfileScope profile(ctx, kOp);
  switch (kernel) {
    case Kernel::cpu_f32: {
      float* p = t.ptr<float>();
      for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(value);
      return ok_status();
    }
    case Kernel::cpu_f64: {
      double* p = t.ptr<double>();
      for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = value;
      return ok_status();
    }
    case Kernel::cuda_f32:
      return FE_DETAIL_CUDA(kOp, ctx.device().index,
                            cuda::kernels::fill(*ctx.stream(), t.ptr<float>(), t.numel(), static_cast<float>(value)));
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

namespace detail {
// Element-by-element strided copy on the host (rank <= kMaxDims), any dtype.
inline void strided_copy(const ConstTensorRef& src, const TensorRef& dst, int dim, std::int64_t so, std::int64_t dofs) {
  const auto es = static_cast<std::int64_t>(dtype_size(src.dtype));
  if (dim == src.rank()) {
    std::memcpy(static_cast<char*>(dst.data) + dofs * es, static_cast<const char*>(src.data) + so * es,
                static_cast<std::size_t>(es));
    return;
  }
  for (std::int64_t i = 0; i < src.shape[dim]; ++i)
    strided_copy(src, dst, dim + 1, so + i * src.strides[dim], dofs + i * dst.strides[dim]);
}
}  // namespace detail

inline Status copy(Context& ctx, ConstTensorRef src, TensorRef dst) {
  static constexpr const char* kOp = "copy";
  if (src.shape != dst.shape || src.dtype != dst.dtype)
    return make_error(ErrorCode::shape_mismatch, kOp, "src and dst must have the same shape and dtype",
                      fe_format("src {}, dst {}", src.describe(), dst.describe()));
  const bool host_only = src.device.is_cpu() && dst.device.is_cpu();
  if (!host_only && src.device != ctx.device() && dst.device != ctx.device())
    return make_error(ErrorCode::invalid_argument, kOp, "one side must be on the context's device",
                      fe_format("src {}, dst {}, context {}", src.describe(), dst.describe(), ctx.device().to_string()));
  ProfileScope profile(ctx, kOp);
  const std::int64_t bytes = src.numel() * static_cast<std::int64_t>(dtype_size(src.dtype));
  if (host_only) {
    if (src.is_contiguous() && dst.is_contiguous()) {
      if (bytes) std::memcpy(dst.data, src.data, static_cast<std::size_t>(bytes));
    } else if (src.numel()) {
      detail::strided_copy(src, dst, 0, 0, 0);
    }
    return ok_status();
  }
  if (!src.is_contiguous() || !dst.is_contiguous())
    return make_error(ErrorCode::unsupported, kOp, "copies to or from a GPU need contiguous views",
                      fe_format("src {}, dst {}", src.describe(), dst.describe()));
  if (bytes == 0) return ok_status();
  if (src.device.is_cuda() && dst.device.is_cuda())
    return FE_DETAIL_CUDA(kOp, ctx.device().index, cuda::kernels::copy_bytes(*ctx.stream(), dst.data, src.data, bytes));
  if (dst.device.is_cuda())
    return FE_DETAIL_CUDA(kOp, ctx.device().index, cuda::kernels::copy_to_device(*ctx.stream(), dst.data, src.data, bytes));
  return FE_DETAIL_CUDA(kOp, ctx.device().index, cuda::kernels::copy_to_host(*ctx.stream(), dst.data, src.data, bytes));
}

}  // namespace ferrite::ops
