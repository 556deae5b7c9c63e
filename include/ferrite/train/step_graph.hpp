#pragma once
// StepGraph: a whole training step as one CUDA graph launch, for any step function.
//
//   StepGraph graph;
//   FE_TRY_ASSIGN(auto ran, graph.run(ctx, key, [&] { return enqueue_one_step(); }));
//   if (ran == StepGraph::Ran::replayed) optimizer.count_replayed_step();
//
// run() starts the step (ctx.begin_step(): the workspace rewinds), then
// - on the CPU, or with a profiler attached (it synchronizes around every op), calls enqueue();
// - on CUDA: the first call (and the first after an invalidation) calls enqueue() eagerly: it sizes
//   the workspace and runs every cuBLAS shape once (once more if the workspace then consolidated its
//   memory, see Workspace::reset); the next call captures enqueue() into the
//   stream's graph and launches it; from then on run() launches the graph again and does NOT call
//   enqueue() (Ran::replayed: the caller does the host bookkeeping enqueue would have done). The
//   graph is captured again whenever the workspace's memory moved (Workspace::generation) or the
//   caller's `key` changed (e.g. the optimizer's table_generation, or anything else the step's
//   addresses depend on).
//
// What enqueue() must respect to be capturable (the op layer is built for it): no host
// synchronisation and no host reads of device data; memory only from the workspace (the same
// requests every step) or allocated before; every per-step operand through the context's step
// counter (ops::gather_batch, the loss table, Optimizer::plan_steps), and the step ends with
// ops::advance_step_counter. A failed capture leaves no graph and returns the error; the stream is
// usable again. One StepGraph per context: the graph lives in the context's stream.
#include <cstdint>
#include <functional>

#include "ferrite/core/macros.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/tensor/context.hpp"

namespace ferrite::train {

class StepGraph {
 public:
  enum class Ran { eager, captured, replayed };

  Result<Ran> run(Context& ctx, std::uint64_t key, const std::function<Status()>& enqueue) {
    FE_TRY(ctx.begin_step());
    if (!ctx.is_cuda() || ctx.profiler()) {
      FE_TRY(enqueue());
      return Ran::eager;
    }
    const std::uint64_t generation = ctx.workspace().generation();
    const bool same = key == key_ && generation == generation_;
    if (state_ == State::captured && same) {
      FE_TRY(FE_DETAIL_CUDA(kOp, ctx.device().index, ctx.stream()->replay()));
      ++replays_;
      return Ran::replayed;
    }
    if (state_ == State::cold || !same) {  // (re)warm: eager, then capture on the next call
      state_ = State::cold;
      FE_TRY(enqueue());
      // Compared after the next begin_step: a first pass that needed several chunks is merged there
      // (the generation moves), so it warms once more before the memory is stable enough to capture.
      state_ = State::warm;
      key_ = key;
      generation_ = ctx.workspace().generation();
      return Ran::eager;
    }
    // warm with the same key and memory: capture this step, then launch it
    state_ = State::cold;
    FE_TRY(FE_DETAIL_CUDA(kOp, ctx.device().index, ctx.stream()->begin_capture()));
    const Status body = enqueue();
    if (!body.ok()) {
      (void)FE_DETAIL_CUDA(kOp, ctx.device().index, ctx.stream()->abort_capture());
      return body.error();
    }
    FE_TRY(FE_DETAIL_CUDA(kOp, ctx.device().index, ctx.stream()->end_capture()));
    if (ctx.workspace().generation() != generation)
      return make_error(ErrorCode::internal, kOp,
                        "the workspace grew while the step was captured (a step must request the same memory every time)");
    FE_TRY(FE_DETAIL_CUDA(kOp, ctx.device().index, ctx.stream()->replay()));
    state_ = State::captured;
    ++captures_;
    return Ran::captured;
  }

  // Forget the capture: the next run() is eager again.
  void invalidate() noexcept { state_ = State::cold; }
  bool captured() const noexcept { return state_ == State::captured; }
  std::int64_t captures() const noexcept { return captures_; }
  std::int64_t replays() const noexcept { return replays_; }

 private:
  static constexpr const char* kOp = "StepGraph";
  enum class State { cold, warm, captured };
  State state_ = State::cold;
  std::uint64_t key_ = 0, generation_ = 0;
  std::int64_t captures_ = 0, replays_ = 0;
};

}  // namespace ferrite::train
