#pragma once
// The device step counter of graph mode (Context::enable_step_counter), on the context's stream:
//   set_step_counter(ctx, s)       *counter = s (an asynchronous host-to-device copy)
//   advance_step_counter(ctx)      *counter += 1 (one tiny kernel: the last node of a captured step)
// Both are no-ops on a context without a counter (the CPU, eager CUDA), so a step written with them
// runs unchanged everywhere.
#include <cstdint>

#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/ops/dispatch.hpp"

namespace ferrite::ops {

inline Status set_step_counter(Context& ctx, std::int64_t value) {
  static constexpr const char* kOp = "set_step_counter";
  if (!ctx.step_counter()) return ok_status();
  if (value < 0) return make_error(ErrorCode::invalid_argument, kOp, fe_format("negative step {}", value));
  // Pageable source: cudaMemcpyAsync stages it before returning, so `value` may go out of scope.
  return FE_DETAIL_CUDA(kOp, ctx.device().index,
                        cuda::kernels::copy_to_device(*ctx.stream(), ctx.step_counter(), &value, sizeof value));
}

inline Status advance_step_counter(Context& ctx) {
  static constexpr const char* kOp = "advance_step_counter";
  if (!ctx.step_counter()) return ok_status();
  return FE_DETAIL_CUDA(kOp, ctx.device().index, cuda::kernels::advance_step(*ctx.stream(), ctx.step_counter()));
}

}  // namespace ferrite::ops
