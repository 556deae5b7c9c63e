// Where the time of one MLP training step goes (784->128->64->10, batch 32, Adam), phase by phase,
// on 1 and 2 threads: forward (3 Linear incl. fused bias+ReLU), loss (softmax + cross-entropy forward
// and backward), backward (3 Linear), Adam update, and the whole step.
//
//   build/bench/micro_mlp_step --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Each phase is timed around exactly the same calls the training loop makes (train/classifier.hpp);
// the other phases of the step run untimed (PauseTiming) so that caches look like in training.
// Pausing costs a little and lets the worker thread go idle, so on 2 threads the phases add up to
// more than the whole step; read them as shares, and the "step" rows as the step time.
#include <benchmark/benchmark.h>

#include <memory>
#include <optional>

#include "ferrite/backend/cpu/threading.hpp"
#include "ferrite/data/synthetic.hpp"
#include "ferrite/models/mlp.hpp"
#include "ferrite/nn/loss.hpp"
#include "ferrite/nn/parameter_store.hpp"
#include "ferrite/optim/factory.hpp"

namespace {

using namespace ferrite;

enum Phase { kForward, kLoss, kBackward, kAdam, kStep };

void mlp_step(benchmark::State& state) {
  const auto phase = static_cast<Phase>(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  cpu::ThreadLimit limit(threads);  // threads are pinned once for the whole program (main)
  const std::int64_t batch = 32, batches = 32;
  auto data = data::make_synthetic(batch * batches, 1, data::Split::train).value();
  auto model = models::make_mlp(784, {128, 64}, 10, 1).value();
  auto params = model.parameters();
  auto store = nn::ParameterStore::create(params).value();
  auto optimizer = optim::make_optimizer(params, {}, &store).value();
  Context ctx = Context::cpu();
  nn::CrossEntropyLoss loss;
  std::int64_t b = 0;
  for (auto _ : state) {
    (void)ctx.begin_step();
    const auto x = data.images.cref().rows(b * batch, batch);
    const auto y = data.labels.cref().rows(b * batch, batch);
    b = (b + 1) % batches;
    if (phase != kForward && phase != kStep) state.PauseTiming();
    (void)optimizer->zero_grad();
    auto logits = model.forward(ctx, x).value();
    if (phase == kLoss) state.ResumeTiming();
    benchmark::DoNotOptimize(loss.forward(ctx, logits, y).value());
    auto dlogits = loss.backward().value();
    if (phase == kForward || phase == kLoss) state.PauseTiming();
    if (phase == kBackward) state.ResumeTiming();
    (void)model.backward(ctx, dlogits).value();
    if (phase == kBackward) state.PauseTiming();
    if (phase == kAdam) state.ResumeTiming();
    (void)optimizer->step(ctx);
    if (phase == kForward || phase == kLoss || phase == kBackward) state.ResumeTiming();
  }
  state.counters["samples/s"] = benchmark::Counter(double(batch), benchmark::Counter::kIsIterationInvariantRate);
}

const char* kNames[] = {"forward", "loss", "backward", "adam", "step"};

void register_all() {
  for (int p = kForward; p <= kStep; ++p)
    for (int t : {1, 2})
      benchmark::RegisterBenchmark((std::string("mlp_") + kNames[p]).c_str(),
                                   mlp_step)
          ->Args({p, t})
          ->ArgNames({"phase", "threads"})
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
  // Pinning lives for the whole program: TBB sizes its thread pool from the affinity mask of the
  // main thread when the pool is (re)created, so the main thread must not be pinned in between.
  ferrite::cpu::ThreadPinning pinning;
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
