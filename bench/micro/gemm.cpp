// Micro-benchmarks of the CPU SGEMM (backend/cpu/gemm.hpp): the MLP training-step shapes, square
// 512^3 / 1024^3, each on 1 thread and on all threads, and the core's FP32 FMA peak.
//
//   build/bench/micro_gemm                       # everything
//   build/bench/micro_gemm --benchmark_filter=peak_fma\|square_512
//
// Reading "% of peak": GFLOP/s of a gemm / GFLOP/s of peak_fma (same core, same run).
// Theoretical peak of one Zen 4 core: 2 FMA pipes x 256 bit = 16 FP32 FMA = 32 FLOP per cycle
// (AVX-512 instructions are double-pumped through the same 256-bit pipes, so zmm code peaks at one
// 512-bit FMA per cycle, i.e. also 32 FLOP/cycle). Times the clock: `grep MHz /proc/cpuinfo` gives
// the frequency the kernel sees (under KVM it is the nominal TSC rate, e.g. 2596 MHz here, while
// the core boosts higher), so peak_fma's measured GFLOP/s / 32 is the effective clock in GHz.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "ferrite/backend/cpu/gemm.hpp"
#include "ferrite/backend/cpu/threading.hpp"

namespace {

using ferrite::Trans;

struct GemmShape {
  const char* name;
  Trans ta, tb;
  std::int64_t m, n, k;
};

// The MLP 784 -> 128 -> 64 -> 10 at batch 32, weights stored [out, in] as in PyTorch.
const GemmShape kMlpShapes[] = {
    {"fwd_l1_NT_32x128x784", Trans::no, Trans::yes, 32, 128, 784},  // Y1 = X W1^T
    {"fwd_l2_NT_32x64x128", Trans::no, Trans::yes, 32, 64, 128},    // Y2 = H1 W2^T
    {"fwd_l3_NT_32x10x64", Trans::no, Trans::yes, 32, 10, 64},      // Y3 = H2 W3^T
    {"bwd_dW1_TN_128x784x32", Trans::yes, Trans::no, 128, 784, 32}, // dW1 = dY1^T X
    {"bwd_dW2_TN_64x128x32", Trans::yes, Trans::no, 64, 128, 32},   // dW2 = dY2^T H1
    {"bwd_dW3_TN_10x64x32", Trans::yes, Trans::no, 10, 64, 32},     // dW3 = dY3^T H2
    {"bwd_dH1_NN_32x128x64", Trans::no, Trans::no, 32, 128, 64},    // dH1 = dY2 W2
    {"bwd_dH2_NN_32x64x10", Trans::no, Trans::no, 32, 64, 10},      // dH2 = dY3 W3
};

const GemmShape kLargeShapes[] = {
    {"eval_l1_NT_10000x128x784", Trans::no, Trans::yes, 10000, 128, 784},
    {"square_512_NN", Trans::no, Trans::no, 512, 512, 512},
    {"square_1024_NN", Trans::no, Trans::no, 1024, 1024, 1024},
};

// Operands of one shape, stored densely (ld = stored columns), values in [-1, 1].
struct Operands {
  std::vector<float> a, b, c;
  std::int64_t lda, ldb, ldc;
  explicit Operands(const GemmShape& s)
      : a(static_cast<std::size_t>(s.m * s.k)), b(static_cast<std::size_t>(s.k * s.n)),
        c(static_cast<std::size_t>(s.m * s.n), 0.0f),
        lda(s.ta == Trans::no ? s.k : s.m), ldb(s.tb == Trans::no ? s.n : s.k), ldc(s.n) {
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (auto& v : a) v = dist(rng);
    for (auto& v : b) v = dist(rng);
  }
  void run(const GemmShape& s) {
    ferrite::cpu::sgemm(s.ta, s.tb, s.m, s.n, s.k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f,
                        c.data(), ldc);
  }
};

void set_gflops(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOP/s"] = benchmark::Counter(
      flops_per_iteration * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

void bm_gemm(benchmark::State& state, GemmShape shape, int threads) {
  ferrite::cpu::ThreadLimit limit(threads);
  Operands ops(shape);
  ops.run(shape);  // warm-up: pack buffers allocated, TBB workers started
  for (auto _ : state) {
    ops.run(shape);
    benchmark::DoNotOptimize(ops.c.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, 2.0 * static_cast<double>(shape.m) * static_cast<double>(shape.n) *
                        static_cast<double>(shape.k));
  state.counters["threads"] = limit.threads();
}

// All eight MLP calls back to back: the gemm share of one training step.
void bm_mlp_step(benchmark::State& state, int threads) {
  ferrite::cpu::ThreadLimit limit(threads);
  std::vector<Operands> ops;
  double flops = 0;
  for (const auto& s : kMlpShapes) {
    ops.emplace_back(s);
    flops += 2.0 * static_cast<double>(s.m) * static_cast<double>(s.n) * static_cast<double>(s.k);
  }
  for (std::size_t i = 0; i < ops.size(); ++i) ops[i].run(kMlpShapes[i]);
  for (auto _ : state) {
    for (std::size_t i = 0; i < ops.size(); ++i) ops[i].run(kMlpShapes[i]);
    benchmark::ClobberMemory();
  }
  set_gflops(state, flops);
  state.counters["threads"] = limit.threads();
}

// FP32 FMA throughput of one core: independent chains acc = fma(acc, x, y) of the widest xsimd
// batch. Zen 4 FMA latency is 4 cycles at 1 zmm (or 2 ymm) FMA per cycle, so 4 to 8 chains keep
// the pipes full; 12 leave margin. x < 1 makes each chain converge (no overflow, no denormals).
void bm_peak_fma(benchmark::State& state) {
  using Batch = xsimd::batch<float>;
  constexpr int kChains = 12;
  constexpr int kSteps = 4096;
  Batch acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = Batch(static_cast<float>(i));
  const Batch x(0.999f), y(0.0001f);
  for (auto _ : state) {
    for (int s = 0; s < kSteps; ++s)
      for (int i = 0; i < kChains; ++i) acc[i] = xsimd::fma(acc[i], x, y);
  }
  float sum = 0.0f;
  for (int i = 0; i < kChains; ++i) sum += xsimd::hadd(acc[i]);
  benchmark::DoNotOptimize(sum);
  set_gflops(state, 2.0 * Batch::size * kChains * kSteps);
  state.SetLabel(std::string(xsimd::default_arch::name()) + ", " + std::to_string(Batch::size) +
                 " floats/vector");
}

int register_all() {
  benchmark::RegisterBenchmark("peak_fma", bm_peak_fma);
  const int all = ferrite::cpu::ThreadLimit::default_threads();
  std::vector<int> thread_counts{1};
  if (all > 1) thread_counts.push_back(all);
  for (int t : thread_counts) {
    for (const auto& s : kMlpShapes)
      benchmark::RegisterBenchmark((std::string(s.name) + "/threads:" + std::to_string(t)).c_str(),
                                   bm_gemm, s, t)
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
    benchmark::RegisterBenchmark(("mlp_step_all8/threads:" + std::to_string(t)).c_str(),
                                 bm_mlp_step, t)
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
    for (const auto& s : kLargeShapes)
      benchmark::RegisterBenchmark((std::string(s.name) + "/threads:" + std::to_string(t)).c_str(),
                                   bm_gemm, s, t)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
  }
  return 0;
}

const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
