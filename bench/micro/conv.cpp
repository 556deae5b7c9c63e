// Micro-benchmarks of the QCA U-Net's twelve 3x3 convolutions (shared/specs/qca-step.md, d 8,
// hidden 32, grid 128) on the CPU: the direct path (im2col + SGEMM), Winograd F(2x2, 3x3) with the
// weight transform on every call (what conv2d(..., automatic) does), and Winograd with a plan
// (WinogradConv3x3: weights transformed once). Arguments: layer index, threads.
//
//   build/bench/micro_conv
//   build/bench/micro_conv --benchmark_filter='winograd_plan/.*/2' --benchmark_repetitions=3
//
// The "GFLOP/s" counter is the direct convolution's FLOPs (2 * 9 * Cin * Cout * H * W) per second for
// every variant, so the Winograd rows show an effective rate (their GEMMs do 16/36 of those FLOPs).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "ferrite/backend/cpu/threading.hpp"
#include "ferrite/core/rng.hpp"
#include "ferrite/ops/conv.hpp"

namespace {

using namespace ferrite;

struct Layer {
  const char* name;
  std::int64_t cin, cout, size;
};

// The U-Net's 3x3 convolutions at grid 128 (h = 32), in forward order.
constexpr Layer kLayers[] = {
    {"inc.0", 16, 32, 128},       {"inc.3", 32, 32, 128},       {"down1.0", 32, 64, 64},
    {"down1.3", 64, 64, 64},      {"down2.0", 64, 128, 32},     {"down2.3", 128, 128, 32},
    {"bot.0", 128, 256, 32},      {"bot.3", 256, 256, 32},      {"conv_up1.0", 192, 128, 64},
    {"conv_up1.3", 128, 128, 64}, {"conv_up2.0", 96, 32, 128},  {"conv_up2.3", 32, 32, 128},
};

Tensor randn(Shape shape, std::uint64_t stream, float scale) {
  Tensor t = Tensor::empty(shape).value();
  const Philox rng(5, stream);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = scale * rng.normal(std::uint64_t(i));
  return t;
}

enum class Variant { direct, winograd, winograd_plan };

void run(benchmark::State& state, Variant variant) {
  const Layer& l = kLayers[state.range(0)];
  cpu::ThreadLimit limit(static_cast<int>(state.range(1)));
  Tensor x = randn({l.cin, l.size, l.size}, 1, 1.f);
  Tensor w = randn({l.cout, l.cin, 3, 3}, 2, 1.f / std::sqrt(9.f * float(l.cin)));
  Tensor y = Tensor::empty({l.cout, l.size, l.size}).value();
  const ChwView<const float> xv{x.data<float>(), l.cin, l.size, l.size};
  const ChwView<float> yv{y.data<float>(), l.cout, l.size, l.size};
  auto plan = WinogradConv3x3::create(w.view<float>()).value();
  for (auto _ : state) {
    Status s = variant == Variant::direct     ? conv2d(xv, w.view<float>(), {}, yv, ConvAlgorithm::direct)
               : variant == Variant::winograd ? conv2d(xv, w.view<float>(), {}, yv, ConvAlgorithm::winograd)
                                              : conv2d(xv, plan, {}, yv);
    if (!s.ok()) state.SkipWithError(s.error().to_string().c_str());
    benchmark::DoNotOptimize(y.data<float>());
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * 9.0 * double(l.cin * l.cout * l.size * l.size);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(l.name) + " " + std::to_string(l.cin) + "->" + std::to_string(l.cout) + " @" +
                 std::to_string(l.size) + "^2");
}

void layers_and_threads(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (int i = 0; i < int(std::size(kLayers)); ++i) b->Args({i, threads});
  b->ArgNames({"layer", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

void BM_conv3x3_direct(benchmark::State& state) { run(state, Variant::direct); }
void BM_conv3x3_winograd(benchmark::State& state) { run(state, Variant::winograd); }
void BM_conv3x3_winograd_plan(benchmark::State& state) { run(state, Variant::winograd_plan); }

BENCHMARK(BM_conv3x3_direct)->Apply(layers_and_threads);
BENCHMARK(BM_conv3x3_winograd)->Apply(layers_and_threads);
BENCHMARK(BM_conv3x3_winograd_plan)->Apply(layers_and_threads);

}  // namespace

BENCHMARK_MAIN();
