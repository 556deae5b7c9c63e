#pragma once
// Optimizer: what SGD, Adam and AdamW share. It binds a ParameterList (borrowed: the modules own
// values and grads and must outlive the optimizer), owns the per-parameter state (momentum buffers,
// exp_avg, ...), the learning rate and the step count. Updates are ops (ops/optimizer.hpp), so an
// optimizer runs on the device of its parameters, given a Context there.
//
// Flat fast path: when the list is a ParameterStore's (nn/parameter_store.hpp), the state lives in
// flat buffers of the store's layout and one step is ONE fused op over the whole model. Otherwise
// (hand-made lists) the state is one tensor per parameter and a step is one op per parameter. Either
// way state(name, key) is a tensor per parameter (aliases into the flat buffers on the fast path).
//
// Every update is elementwise and the SIMD body and the scalar tail compute the same float
// operations in the same order, so results are bit-identical whatever the thread count or layout.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ferrite/core/result.hpp"
#include "ferrite/nn/parameter.hpp"
#include "ferrite/nn/parameter_store.hpp"
#include "ferrite/ops/fill.hpp"
#include "ferrite/tensor/context.hpp"
#include "ferrite/tensor/tensor.hpp"

namespace ferrite::optim {

namespace detail {

// Rejects NaN and infinities as well as negatives: `!(x >= 0)` is true for NaN.
inline Status check_non_negative(std::string_view op, std::string_view what, double x) {
  if (!(x >= 0.0) || !std::isfinite(x))
    return make_error(
        ErrorCode::invalid_argument, std::string(op),
        "invalid " + std::string(what) + ": " + std::to_string(x) + " (must be finite and >= 0)");
  return ok_status();
}

}  // namespace detail

class Optimizer {
 public:
  virtual ~Optimizer() = default;

  // One update of every parameter from its gradient, on ctx's device (the parameters' device).
  // Fails, changing nothing, if a parameter's value or grad no longer has the shape the state was
  // allocated for. A parameter whose gradient was not written since zero_grad counts as a zero
  // gradient (PyTorch skips it instead; this only differs for parameters unused in a step).
  virtual Status step(Context& ctx) = 0;
  // The same on a CPU context (host parameters).
  Status step() {
    Context ctx = Context::cpu();
    return step(ctx);
  }

  // Resets every gradient: the next backward writes instead of adding (nn/parameter.hpp). No memset.
  Status zero_grad() { return nn::reset_gradients(params_); }

  // Graph mode (a CUDA context with a step counter, Context::enable_step_counter): the constants of
  // the next `steps` steps (t = step_count()+1 ..), computed now on the host with PyTorch's
  // arithmetic — at the current lr, or lr_at(t) for a schedule — and uploaded in one copy into a
  // device table that the update reads at the counter: entry k serves the step run while the counter
  // is k (so reset the counter to 0 with the plan, ops::set_step_counter). A step then uploads
  // nothing and can be captured. The table's device memory moves only when a plan outgrows it
  // (table_generation() changes: a graph that captured the old table must be captured again).
  Status plan_steps(Context& ctx, std::int64_t steps, const std::function<double(std::int64_t)>& lr_at = {}) {
    const std::string op = op_name_ + "::plan_steps";
    if (!ctx.is_cuda() || !ctx.step_counter())
      return make_error(ErrorCode::unsupported, op, "planned steps are for CUDA contexts in graph mode (enable_step_counter)",
                        ctx.device().to_string());
    if (steps <= 0) return make_error(ErrorCode::invalid_argument, op, fe_format("steps must be positive, got {}", steps));
    FE_TRY_ASSIGN(const std::int64_t entry, step_entry_bytes(ctx.device().index));
    const std::int64_t words = (steps * entry + 3) / 4;  // the table is a f32 tensor of whole words
    std::vector<unsigned char> host(static_cast<std::size_t>(words * 4));
    for (std::int64_t k = 0; k < steps; ++k) {
      const std::int64_t t = step_ + k + 1;
      const double lr = lr_at ? lr_at(t) : lr_;
      FE_TRY(detail::check_non_negative(op, "learning rate", lr));
      FE_TRY(encode_step(ctx.device().index, t, lr, host.data() + k * entry));
    }
    if (!plan_table_.defined() || plan_table_.device() != ctx.device() || plan_table_.numel() < words) {
      FE_TRY(ctx.synchronize());  // the old table may still be read by enqueued steps
      FE_TRY_ASSIGN(plan_table_, Tensor::empty({words}, DType::f32, ctx.device()));
      ++table_generation_;
    }
    // Pageable source: staged by the driver before the call returns, ordered on the stream after
    // every step that reads the previous plan.
    FE_TRY(ops::copy(ctx, ConstTensorRef(host.data(), DType::f32, Device::cpu(), {words}),
                     plan_table_.ref().rows(0, words)));
    planned_ = steps;
    planned_used_ = 0;
    return ok_status();
  }
  // A replayed graph ran one planned step without calling step(): count it (the step count and the
  // plan advance as if step() had run).
  Status count_replayed_step() {
    if (planned_used_ >= planned_)
      return make_error(ErrorCode::invalid_argument, op_name_ + "::count_replayed_step",
                        fe_format("the plan of {} steps is used up", planned_));
    ++planned_used_;
    ++step_;
    return ok_status();
  }
  std::uint64_t table_generation() const noexcept { return table_generation_; }

  double lr() const noexcept { return lr_; }
  Status set_lr(double lr) {
    FE_TRY(detail::check_non_negative(op_name_, "learning rate", lr));
    lr_ = lr;
    return ok_status();
  }

  // Completed steps (PyTorch's state["step"], shared by all parameters here). Restoring a
  // checkpoint sets it together with the state tensors.
  std::int64_t step_count() const noexcept { return step_; }
  Status set_step_count(std::int64_t steps) {
    if (steps < 0)
      return make_error(ErrorCode::invalid_argument, op_name_, "step count must be >= 0, got " + std::to_string(steps));
    step_ = steps;
    return ok_status();
  }

  // The state tensor `key` (see state_keys()) of parameter `param_name`; nullptr if either is unknown.
  const Tensor* state(std::string_view param_name, std::string_view key) const noexcept {
    return const_cast<Optimizer*>(this)->state(param_name, key);
  }
  Tensor* state(std::string_view param_name, std::string_view key) noexcept {
    const auto slot = std::find(keys_.begin(), keys_.end(), key);
    if (slot == keys_.end() || state_.empty()) return nullptr;  // (sharded: no per-parameter state here)
    for (std::size_t i = 0; i < params_.size(); ++i)
      if (params_[i].name == param_name) return &state_[i * keys_.size() + static_cast<std::size_t>(slot - keys_.begin())];
    return nullptr;
  }
  // Names of the per-parameter state tensors, PyTorch's: "momentum_buffer"; "exp_avg", "exp_avg_sq"
  // (+ "max_exp_avg_sq" with amsgrad).
  const std::vector<std::string>& state_keys() const noexcept { return keys_; }
  const nn::ParameterList& params() const noexcept { return params_; }
  bool flat() const noexcept { return store_ != nullptr; }
  // "Adam", "AdamW", "SGD": names the optimizer in errors and checkpoints.
  const std::string& name() const noexcept { return op_name_; }

  // ZeRO-1 (train/distributed.hpp): from now on this optimizer updates only the flat elements
  // [begin, end) of its ParameterStore and keeps state for those alone — the rest of the model is other
  // ranks' to update. The slice's state is kept (so a restored checkpoint can be sharded after it is
  // loaded). Flat path only, once; per-parameter state() is then null (the state is a slice of the flat
  // layout, not whole parameters): flat_state(k) is the slice of key k.
  Status shard(std::int64_t begin, std::int64_t end) {
    const std::string op = op_name_ + "::shard";
    if (!store_) return make_error(ErrorCode::unsupported, op, "needs the flat path (an optimizer made over a ParameterStore)");
    if (sharded_) return make_error(ErrorCode::invalid_argument, op, "the optimizer is sharded already");
    if (begin < 0 || end < begin || end > store_->total_elements())
      return make_error(ErrorCode::invalid_argument, op,
                        fe_format("[{}, {}) is not a range of the store's {} elements", begin, end, store_->total_elements()));
    std::vector<Tensor> flat;
    for (std::size_t k = 0; k < keys_.size(); ++k) {
      FE_TRY_ASSIGN(Tensor slice, Tensor::alias(flat_state_[k], static_cast<std::size_t>(begin) * sizeof(float), {end - begin},
                                                DType::f32));
      FE_TRY_ASSIGN(Tensor t, slice.clone());
      flat.push_back(std::move(t));
    }
    state_.clear();
    flat_state_ = std::move(flat);
    shard_begin_ = begin;
    shard_end_ = end;
    sharded_ = true;
    return ok_status();
  }
  bool sharded() const noexcept { return sharded_; }
  std::int64_t shard_begin() const noexcept { return sharded_ ? shard_begin_ : 0; }
  // Key k's state over the flat range this optimizer updates (the whole store, or its shard); flat path.
  const Tensor* flat_state(std::size_t k) const noexcept { return k < flat_state_.size() ? &flat_state_[k] : nullptr; }
  // Elements of optimizer state per key this optimizer holds (all of the store's, or its shard's).
  std::int64_t state_elements() const noexcept {
    return flat_state_.empty() ? 0 : flat_state_.front().numel();
  }

 protected:
  Optimizer() = default;
  Optimizer(Optimizer&&) noexcept = default;
  Optimizer& operator=(Optimizer&&) noexcept = default;

  // Validates the parameters and allocates zeroed f32 state per (parameter, key) on their device:
  // flat buffers of the store's layout when `store` holds exactly `params`.
  Status bind(std::string op_name, nn::ParameterList params, std::vector<std::string> keys, double lr,
              const nn::ParameterStore* store = nullptr) {
    op_name_ = std::move(op_name);
    FE_TRY(detail::check_non_negative(op_name_, "learning rate", lr));
    if (params.empty()) return make_error(ErrorCode::invalid_argument, op_name_, "got an empty parameter list");
    const Device device = params.front().value ? params.front().value->device() : Device::cpu();
    for (std::size_t i = 0; i < params.size(); ++i) {
      const auto& p = params[i];
      if (!p.value || !p.grad)
        return make_error(ErrorCode::invalid_argument, op_name_,
                          "parameter '" + p.name + "' has no " + (p.value ? "grad" : "value") + " tensor");
      if (p.value->dtype() != DType::f32 || p.grad->dtype() != DType::f32 || p.value->device() != device ||
          p.grad->device() != device)
        return make_error(ErrorCode::unsupported, op_name_,
                          "parameter '" + p.name + "' must be f32 on " + device.to_string() + " (like the first), got value " +
                              p.value->describe() + " and grad " + p.grad->describe());
      if (p.value->shape() != p.grad->shape())
        return make_error(ErrorCode::shape_mismatch, op_name_, "parameter '" + p.name + "': grad shape differs from value shape",
                          p.value->shape().to_string() + " vs " + p.grad->shape().to_string());
      if (p.value->numel() > 0 && (!p.value->raw_data() || !p.grad->raw_data()))
        return make_error(ErrorCode::invalid_argument, op_name_, "parameter '" + p.name + "' has no storage (moved-from tensor?)");
      for (std::size_t j = 0; j < i; ++j) {
        if (params[j].name == p.name)
          return make_error(ErrorCode::invalid_argument, op_name_, "parameter name '" + p.name + "' appears twice");
        if (params[j].value == p.value || params[j].grad == p.grad)
          return make_error(ErrorCode::invalid_argument, op_name_,
                            "parameters '" + params[j].name + "' and '" + p.name + "' share a tensor");
      }
    }
    state_.clear();
    flat_state_.clear();
    shapes_.clear();
    sharded_ = false;
    store_ = store && store->holds(params) && store->dtype() == DType::f32 ? store : nullptr;
    for (const auto& p : params) shapes_.push_back(p.value->shape());
    if (store_) {
      for (std::size_t k = 0; k < keys.size(); ++k) {
        FE_TRY_ASSIGN(Tensor flat, store_->make_flat_zeros());
        flat_state_.push_back(std::move(flat));
      }
      for (std::size_t i = 0; i < params.size(); ++i)
        for (std::size_t k = 0; k < keys.size(); ++k) {
          FE_TRY_ASSIGN(Tensor t, store_->alias_in(flat_state_[k], i));
          state_.push_back(std::move(t));
        }
    } else {
      for (const auto& p : params)
        for (std::size_t k = 0; k < keys.size(); ++k) {
          FE_TRY_ASSIGN(Tensor t, Tensor::zeros(p.value->shape(), DType::f32, device));
          state_.push_back(std::move(t));
        }
    }
    params_ = std::move(params);
    keys_ = std::move(keys);
    lr_ = lr;
    step_ = 0;
    return ok_status();
  }

  // The module may have replaced a value or grad tensor since bind(); refuse rather than overrun.
  // Gradients not written since zero_grad are zero-filled here (see step()).
  Status prepare_step(Context& ctx) {
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const auto& p = params_[i];
      const Shape& bound = shapes_[i];
      if (p.value->shape() != bound || p.grad->shape() != bound || p.value->dtype() != DType::f32 ||
          p.grad->dtype() != DType::f32 || (bound.numel() > 0 && (!p.value->raw_data() || !p.grad->raw_data())))
        return make_error(ErrorCode::shape_mismatch, op_name_ + "::step",
                          "parameter '" + p.name + "' changed shape, dtype or storage since the optimizer was created",
                          "value " + p.value->describe() + ", grad " + p.grad->describe() + ", state " + bound.to_string());
    }
    if (store_ && !store_->holds(params_))
      return make_error(ErrorCode::invalid_argument, op_name_ + "::step", "the parameter store was rebound since the optimizer was created");
    for (const auto& p : params_)
      if (p.slot && !p.slot->grad_written) {
        FE_TRY(ops::fill(ctx, p.grad->ref(), 0.0));  // on the context's stream (capturable)
        p.slot->grad_written = true;
      }
    return ok_status();
  }

  // The device table entry for this step in graph mode (null otherwise: the update uploads its own
  // constants); counts the entry as used.
  Result<const void*> planned_entry(const Context& ctx) {
    if (!ctx.step_counter()) return static_cast<const void*>(nullptr);
    if (planned_used_ >= planned_)
      return make_error(ErrorCode::invalid_argument, op_name_ + "::step",
                        planned_ ? fe_format("graph mode: the plan of {} steps is used up (plan_steps again)", planned_)
                                 : std::string("graph mode: call plan_steps(ctx, n) before stepping"));
    ++planned_used_;
    return static_cast<const void*>(plan_table_.raw_data());
  }
  // One device table entry: its size, and its encoding for step t (1-based) at learning rate lr.
  virtual Result<std::int64_t> step_entry_bytes(int device) const = 0;
  virtual Status encode_step(int device, std::int64_t t, double lr, void* entry) const = 0;

  // Runs update(value, grad, state refs[keys]) once over the flat buffers, or once per parameter.
  template <class Update>
  Status for_each_range(Update&& update) {
    std::vector<TensorRef> st(keys_.size());
    if (store_) {
      auto* s = const_cast<nn::ParameterStore*>(store_);
      for (std::size_t k = 0; k < keys_.size(); ++k) st[k] = flat_state_[k].ref();
      if (sharded_) {
        const std::int64_t n = shard_end_ - shard_begin_;
        return update(s->values().rows(shard_begin_, n), ConstTensorRef(s->grads()).rows(shard_begin_, n), st);
      }
      return update(s->values(), ConstTensorRef(s->grads()), st);
    }
    for (std::size_t i = 0; i < params_.size(); ++i) {
      for (std::size_t k = 0; k < keys_.size(); ++k) st[k] = state_[i * keys_.size() + k].ref();
      FE_TRY(update(params_[i].value->ref(), params_[i].grad->cref(), st));
    }
    return ok_status();
  }

  std::string op_name_;
  nn::ParameterList params_;
  std::vector<std::string> keys_;
  std::vector<Tensor> state_;       // [param][key], flattened (aliases into flat_state_ on the flat path)
  std::vector<Tensor> flat_state_;  // [key]: the store's layout (flat path only)
  std::vector<Shape> shapes_;       // each parameter's shape at bind()
  const nn::ParameterStore* store_ = nullptr;
  bool sharded_ = false;                         // ZeRO-1: only [shard_begin_, shard_end_) of the store
  std::int64_t shard_begin_ = 0, shard_end_ = 0;
  double lr_ = 0.0;
  std::int64_t step_ = 0;
  Tensor plan_table_;  // graph mode: per-step constants on the device (plan_steps)
  std::int64_t planned_ = 0, planned_used_ = 0;
  std::uint64_t table_generation_ = 0;
};

}  // namespace ferrite::optim
