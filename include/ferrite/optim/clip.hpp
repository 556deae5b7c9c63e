#pragma once
// Gradient clipping by global norm, torch.nn.utils.clip_grad_norm_(params, max_norm) (norm_type 2):
// total = sqrt(sum over all gradients of g^2); every gradient *= min(1, max_norm / (total + 1e-6)).
// On a ParameterStore this is two ops over the flat gradient buffer (one reduction, one scale) and
// nothing leaves the device: the factor is computed where the sum lives (a CUDA step stays free of
// host syncs). The squared norm is summed in double (torch sums per-tensor norms in float: the two
// agree to float rounding). Call it between backward and optimizer.step(ctx).
#include <cmath>

#include "ferrite/nn/parameter_store.hpp"
#include "ferrite/ops/reduce.hpp"

namespace ferrite::optim {

// Clips the store's gradients in place; `total_sq` (one f64 on the store's device, e.g. from the
// workspace) receives the squared norm before clipping. Returns nothing (read total_sq after a sync
// if the norm is wanted: sqrt of it is what torch returns).
inline Status clip_grad_norm(Context& ctx, nn::ParameterStore& store, double max_norm, TensorRef total_sq) {
  FE_TRY(ops::sum_of_squares(ctx, store.grads(), total_sq));
  return ops::clip_by_norm(ctx, store.grads(), total_sq, max_norm);
}

// The same with the squared norm in the workspace; on the CPU the total norm is returned, on CUDA
// (where reading it would cost a sync) the result is -1.
inline Result<double> clip_grad_norm(Context& ctx, nn::ParameterStore& store, double max_norm) {
  FE_TRY_ASSIGN(TensorRef total_sq, ctx.workspace().allocate({1}, DType::f64));
  FE_TRY(clip_grad_norm(ctx, store, max_norm, total_sq));
  return ctx.device().is_cpu() ? std::sqrt(*total_sq.ptr<double>()) : -1.0;
}

}  // namespace ferrite::optim
