#pragma once
// The fused classifier loss, on any device (llm.c style: softmax, cross-entropy and its gradient in
// one op, probabilities never materialised twice):
//   softmax_cross_entropy(ctx, logits[B, C], labels i32[B], loss f32[1], probs[B, C] or {}, dlogits[B, C] or {})
//     loss    = mean over rows of -log softmax(logits)[label]    (like F.cross_entropy, f32 result)
//     probs   = softmax(logits)                                  (optional)
//     dlogits = (softmax - onehot(labels)) / B                   (optional: d loss / d logits)
// With loss_step >= 0, `loss` is a per-step table f32[S] and entry loss_step is written (in graph
// mode, Context::step_counter, the entry the device counter names).
// Per row, as PyTorch's log_softmax: m = max, logp = (x - m) - log(sum exp(x - m)). Labels must lie
// in [0, C): the CPU kernel checks every batch; on CUDA the data loader validated them once.
#include <cstdint>

#include "ferrite/backend/cpu/nn_ops.hpp"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/ops/dispatch.hpp"

namespace ferrite::ops {

namespace detail {
template <class T>
Status softmax_cross_entropy_cpu(Context& ctx, const char* op, ConstTensorRef logits, const std::int32_t* labels,
                                 TensorRef loss, TensorRef probs, TensorRef dlogits) {
  FE_TRY_ASSIGN(auto x, logits.mat<T>(op));
  MatView<T> p{};
  if (probs.defined()) {
    FE_TRY_ASSIGN(p, probs.mat<T>(op));
  } else {
    FE_TRY_ASSIGN(TensorRef scratch, ctx.workspace().allocate(logits.shape, logits.dtype));
    FE_TRY_ASSIGN(p, scratch.mat<T>(op));
  }
  FE_TRY_ASSIGN(const double mean, cpu::softmax_cross_entropy<T>(x, labels, p));
  if (loss.defined()) {
    if (loss.dtype == DType::f64)
      *loss.ptr<double>() = mean;
    else
      *loss.ptr<float>() = static_cast<float>(mean);
  }
  if (dlogits.defined()) {
    FE_TRY_ASSIGN(auto d, dlogits.mat<T>(op));
    FE_TRY(cpu::softmax_cross_entropy_backward<T>(MatView<const T>(p), labels, d));
  }
  return ok_status();
}
}  // namespace detail

inline Status softmax_cross_entropy(Context& ctx, ConstTensorRef logits, ConstTensorRef labels, TensorRef loss,
                                    TensorRef probs = {}, TensorRef dlogits = {}, std::int64_t loss_step = -1) {
  static constexpr const char* kOp = "softmax_cross_entropy";
  if (loss_step >= 0) {
    if (!loss.defined() || loss.rank() != 1 || loss_step >= loss.numel() || (loss.numel() > 1 && loss.strides[0] != 1))
      return make_error(ErrorCode::invalid_argument, kOp, "a per-step loss table must be a contiguous vector holding entry loss_step",
                        fe_format("loss {}, loss_step {}", loss.describe(), loss_step));
    if (!ctx.step_counter()) {
      loss = loss.rows(loss_step, 1);
      loss_step = -1;
    }
  }
  const ConstTensorRef pc = probs, dc = dlogits;
  FE_TRY_ASSIGN(const Kernel kernel,
                select_kernel(kOp, ctx, logits.dtype,
                              {{"logits", &logits}, {"probs", probs.defined() ? &pc : nullptr},
                               {"dlogits", dlogits.defined() ? &dc : nullptr}}));
  FE_TRY(expect_rank(kOp, "logits", logits, 2));
  const std::int64_t rows = logits.dim(0), cols = logits.dim(1);
  if (cols == 0) return make_error(ErrorCode::invalid_argument, kOp, "zero classes", logits.describe());
  if (labels.dtype != DType::i32 || labels.device != ctx.device() || labels.shape != Shape{rows} ||
      (rows > 1 && labels.strides[0] != 1))
    return make_error(ErrorCode::invalid_argument, kOp, "labels must be a contiguous i32[rows of logits] on the context's device",
                      fe_format("logits {}, labels {}", logits.describe(), labels.describe()));
  if (probs.defined()) FE_TRY(expect_shape(kOp, "probs", probs, logits.shape));
  if (dlogits.defined()) FE_TRY(expect_shape(kOp, "dlogits", dlogits, logits.shape));
  if (loss.defined() && ((loss_step < 0 && loss.numel() != 1) || !(loss.dtype == DType::f32 || (kernel != Kernel::cuda_f32 && loss.dtype == DType::f64)) ||
                         loss.device != ctx.device()))
    return make_error(ErrorCode::invalid_argument, kOp, "loss must be one f32 element on the context's device", loss.describe());
  ProfileScope profile(ctx, kOp);
  switch (kernel) {
    case Kernel::cpu_f32:
      return detail::softmax_cross_entropy_cpu<float>(ctx, kOp, logits, labels.ptr<std::int32_t>(), loss, probs, dlogits);
    case Kernel::cpu_f64:
      return detail::softmax_cross_entropy_cpu<double>(ctx, kOp, logits, labels.ptr<std::int32_t>(), loss, probs, dlogits);
    case Kernel::cuda_f32: {
      FE_TRY_ASSIGN(auto x, logits.mat<float>(kOp));
      MatView<float> p{}, d{};
      if (probs.defined()) {
        FE_TRY_ASSIGN(p, probs.mat<float>(kOp));
      }
      if (dlogits.defined()) {
        FE_TRY_ASSIGN(d, dlogits.mat<float>(kOp));
      }
      const float scale = rows ? 1.f / static_cast<float>(rows) : 0.f;
      return FE_DETAIL_CUDA(kOp, ctx.device().index,
                            cuda::kernels::softmax_cross_entropy(*ctx.stream(), x.data, x.ld, rows, cols,
                                                                 labels.ptr<std::int32_t>(), p.data, p.ld, d.data, d.ld,
                                                                 scale, loss.defined() ? loss.ptr<float>() : nullptr,
                                                                 loss_step >= 0 ? ctx.step_counter() : nullptr));
    }
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

}  // namespace ferrite::ops
