#pragma once
// The optimizers' fused multi-tensor updates, on any device: one call updates a flat range of
// parameters (the ParameterStore keeps all values, gradients and optimizer state in flat buffers
// with the same layout, so a whole model is one call).
//   adam_update(ctx, p, g, m, v, vmax or {}, coefficients)   Adam / AdamW (backend/optim_coefficients.hpp)
//   sgd_update(ctx, p, g, buf or {}, coefficients)           SGD with momentum / Nesterov
// `planned`: in graph mode (Context::step_counter) a device table of per-step constants
// (Optimizer::plan_steps) read at the counter, so nothing is uploaded during the step; else null and
// the coefficients are uploaded for this step (CUDA) or used directly (CPU).
// All operands f32, contiguous, the same number of elements. Elementwise, so any split gives the same
// numbers: the CPU splits large ranges over TBB tasks at 256-element blocks (grain 16 blocks) above
// 64k elements; the CUDA kernels use float4 (the store's 64-float alignment).
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <cstdint>

#include "ferrite/backend/cpu/optim_kernels.hpp"
#include "ferrite/backend/cpu/threading.hpp"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/ops/dispatch.hpp"

namespace ferrite::ops {

namespace detail {
// Below this many elements an update runs on the calling thread: a TBB fork/join costs a few
// microseconds, about what 64k elements of a fused update cost on one core.
inline constexpr std::int64_t kOptimParallelMin = 64 * 1024;
inline constexpr std::int64_t kOptimBlock = 256;
inline constexpr std::int64_t kOptimGrainBlocks = 16;

template <class Fn>
void for_each_block_range(std::int64_t n, Fn&& fn) {
  if (n < kOptimParallelMin || cpu::current_threads() <= 1) {
    fn(std::int64_t{0}, n);
    return;
  }
  const std::int64_t blocks = (n + kOptimBlock - 1) / kOptimBlock;
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, blocks, kOptimGrainBlocks),
                    [&](const tbb::blocked_range<std::int64_t>& r) {
                      const std::int64_t b = r.begin() * kOptimBlock;
                      fn(b, std::min(n, r.end() * kOptimBlock));
                    });
}

inline Status check_flat(const char* op, const Context& ctx, std::initializer_list<Operand> operands, std::int64_t n) {
  FE_TRY(select_kernel(op, ctx, DType::f32, operands, {true, false, true}));
  for (const auto& o : operands)
    if (o.ref && (o.ref->numel() != n || !o.ref->is_contiguous()))
      return make_error(ErrorCode::shape_mismatch, op, "all operands must be contiguous with the same number of elements",
                        describe_operands(operands));
  return ok_status();
}

// The step's constants in device memory for the CUDA kernels (from the workspace, copied on the
// stream: pageable host memory is staged before cudaMemcpyAsync returns).
template <class Encode>
Result<const void*> upload_step(Context& ctx, std::int64_t bytes, Encode&& encode) {
  FE_TRY_ASSIGN(TensorRef slot, ctx.workspace().allocate({(bytes + 3) / 4}, DType::f32));
  alignas(16) unsigned char entry[256] = {};
  if (bytes > static_cast<std::int64_t>(sizeof(entry)))
    return make_error(ErrorCode::internal, "optimizer step constants", "entry larger than 256 bytes");
  encode(static_cast<void*>(entry));
  FE_TRY(FE_DETAIL_CUDA("optimizer step constants", ctx.device().index,
                        cuda::kernels::copy_to_device(*ctx.stream(), slot.data, entry, bytes)));
  return static_cast<const void*>(slot.data);
}
}  // namespace detail

inline Status adam_update(Context& ctx, TensorRef p, ConstTensorRef g, TensorRef m, TensorRef v, TensorRef vmax,
                          const optim::detail::AdamCoefficients& c, const void* planned = nullptr) {
  static constexpr const char* kOp = "adam_update";
  const ConstTensorRef pc = p, mc = m, vc = v, xc = vmax;
  const std::int64_t n = p.numel();
  FE_TRY(detail::check_flat(kOp, ctx, {{"param", &pc}, {"grad", &g}, {"exp_avg", &mc}, {"exp_avg_sq", &vc},
                                       {"max_exp_avg_sq", c.amsgrad ? &xc : nullptr}}, n));
  ProfileScope profile(ctx, kOp);
  if (ctx.device().is_cpu()) {
    float* P = p.ptr<float>();
    const float* G = g.ptr<float>();
    float* M = m.ptr<float>();
    float* V = v.ptr<float>();
    float* X = c.amsgrad ? vmax.ptr<float>() : nullptr;
    detail::for_each_block_range(n, [&](std::int64_t b, std::int64_t e) {
      optim::detail::adam_kernel(P + b, G + b, M + b, V + b, X ? X + b : nullptr, e - b, c);
    });
    return ok_status();
  }
  if (n % 4 != 0)
    return make_error(ErrorCode::invalid_argument, kOp, "CUDA updates need a multiple of 4 elements (the ParameterStore pads)",
                      p.describe());
  return FE_DETAIL_CUDA(kOp, ctx.device().index, [&]() -> Status {
    const void* table = planned;
    if (!table) {
      FE_TRY_ASSIGN(table, detail::upload_step(ctx, cuda::kernels::adam_step_bytes(),
                                               [&](void* e) { cuda::kernels::encode_adam_step(c, e); }));
    }
    return cuda::kernels::adam_update(*ctx.stream(), p.ptr<float>(), g.ptr<float>(), m.ptr<float>(), v.ptr<float>(),
                                      c.amsgrad ? vmax.ptr<float>() : nullptr, n, table,
                                      planned ? ctx.step_counter() : nullptr);
  }());
}

inline Status sgd_update(Context& ctx, TensorRef p, ConstTensorRef g, TensorRef buf,
                         const optim::detail::SGDCoefficients& c, const void* planned = nullptr) {
  static constexpr const char* kOp = "sgd_update";
  const ConstTensorRef pc = p, bc = buf;
  const std::int64_t n = p.numel();
  FE_TRY(detail::check_flat(kOp, ctx, {{"param", &pc}, {"grad", &g}, {"momentum_buffer", c.has_momentum ? &bc : nullptr}}, n));
  ProfileScope profile(ctx, kOp);
  if (ctx.device().is_cpu()) {
    float* P = p.ptr<float>();
    const float* G = g.ptr<float>();
    float* B = c.has_momentum ? buf.ptr<float>() : nullptr;
    detail::for_each_block_range(n, [&](std::int64_t b, std::int64_t e) {
      optim::detail::sgd_kernel(P + b, G + b, B ? B + b : nullptr, e - b, c);
    });
    return ok_status();
  }
  if (n % 4 != 0)
    return make_error(ErrorCode::invalid_argument, kOp, "CUDA updates need a multiple of 4 elements (the ParameterStore pads)",
                      p.describe());
  return FE_DETAIL_CUDA(kOp, ctx.device().index, [&]() -> Status {
    const void* table = planned;
    if (!table) {
      FE_TRY_ASSIGN(table, detail::upload_step(ctx, cuda::kernels::sgd_step_bytes(),
                                               [&](void* e) { cuda::kernels::encode_sgd_step(c, e); }));
    }
    return cuda::kernels::sgd_update(*ctx.stream(), p.ptr<float>(), g.ptr<float>(),
                                     c.has_momentum ? buf.ptr<float>() : nullptr, n, table,
                                     planned ? ctx.step_counter() : nullptr);
  }());
}

}  // namespace ferrite::ops
