// Micro-benchmarks of the optimizer step (optim/adam.hpp, optim/sgd.hpp) on the MLP's parameters:
// 109,386 floats in 6 tensors (784->128->64->10, weights [out, in]), on 1 and 2 threads, against
// the scalar reference (optim/reference.hpp).
//
//   build/bench/micro_optim
//   build/bench/micro_optim --benchmark_filter=adam --benchmark_repetitions=5
//
// An Adam step reads p, g, m, v and writes p, m, v: 7 x 4 B per element (bytes_per_second counts
// that traffic); per 16 floats it issues 2 divisions and 1 square root, which bound it on one core.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ferrite/backend/cpu/threading.hpp"
#include "ferrite/core/rng.hpp"
#include "ferrite/optim/adam.hpp"
#include "ferrite/optim/reference.hpp"
#include "ferrite/optim/sgd.hpp"

namespace {

using namespace ferrite;

struct MlpParams {
  std::vector<Tensor> values, grads;
  nn::ParameterList list;
  std::int64_t numel = 0;

  MlpParams() {
    const Shape shapes[] = {{128, 784}, {128}, {64, 128}, {64}, {10, 64}, {10}};
    const char* names[] = {"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"};
    Philox rng(7);
    for (const auto& s : shapes) {
      values.push_back(Tensor::empty(s).value());
      grads.push_back(Tensor::empty(s).value());
      for (std::int64_t i = 0; i < s.numel(); ++i) {
        values.back().data<float>()[i] = 0.05f * rng.normal(2 * (numel + i));
        grads.back().data<float>()[i] = 1e-3f * rng.normal(2 * (numel + i) + 1);
      }
      numel += s.numel();
    }
    for (std::size_t i = 0; i < values.size(); ++i)
      list.push_back({names[i], &values[i], &grads[i]});
  }
};

void set_counters(benchmark::State& state, std::int64_t numel, int arrays_touched) {
  state.SetItemsProcessed(state.iterations() * numel);
  state.SetBytesProcessed(state.iterations() * numel * arrays_touched * 4);
  state.counters["threads"] = static_cast<double>(state.range(0));
}

template <class Make>
void run_step(benchmark::State& state, Make make, int arrays_touched) {
  cpu::ThreadLimit limit(static_cast<int>(state.range(0)));
  MlpParams mlp;
  auto opt = make(mlp.list);
  for (auto _ : state) {
    auto st = opt->step();
    benchmark::DoNotOptimize(st);
    benchmark::ClobberMemory();
  }
  set_counters(state, mlp.numel, arrays_touched);
}

void adam_step(benchmark::State& state) {
  run_step(
      state,
      [](nn::ParameterList& l) {
        return std::make_unique<optim::Adam>(optim::Adam::create(l).value());
      },
      7);
}
void adamw_step(benchmark::State& state) {
  run_step(
      state,
      [](nn::ParameterList& l) {
        return std::make_unique<optim::AdamW>(optim::AdamW::create(l).value());
      },
      7);
}
void sgd_momentum_step(benchmark::State& state) {
  run_step(
      state,
      [](nn::ParameterList& l) {
        return std::make_unique<optim::SGD>(
            optim::SGD::create(l, {.lr = 0.01, .momentum = 0.9}).value());
      },
      5);
}

// The scalar oracle on the same tensors, one thread: what the fused SIMD pass buys.
void adam_reference_step(benchmark::State& state) {
  MlpParams mlp;
  std::vector<std::vector<float>> m, v;
  for (auto& t : mlp.values) {
    m.emplace_back(static_cast<std::size_t>(t.numel()), 0.f);
    v.emplace_back(static_cast<std::size_t>(t.numel()), 0.f);
  }
  std::int64_t step = 0;
  const optim::AdamOptions options;
  for (auto _ : state) {
    ++step;
    for (std::size_t i = 0; i < mlp.values.size(); ++i)
      optim::reference::adam_step(mlp.values[i].data<float>(), mlp.grads[i].data<float>(),
                                  m[i].data(), v[i].data(), nullptr, mlp.values[i].numel(), options,
                                  options.lr, false, step);
    benchmark::ClobberMemory();
  }
  set_counters(state, mlp.numel, 7);
}

}  // namespace

BENCHMARK(adam_step)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(adamw_step)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(sgd_momentum_step)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(adam_reference_step)->Arg(1)->UseRealTime()->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
