// Suite "cuda": cuda::MlpTrainer against the CPU training loop (same initial weights, same batch
// order): gradients of one step, loss curves (per-epoch mean within 1e-3 relative), determinism,
// graphs vs eager, parameter round trips and the errors. Device tests GTEST_SKIP without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ferrite/backend/cuda/mlp_trainer.hpp"
#include "ferrite/data/loader.hpp"
#include "ferrite/data/synthetic.hpp"
#include "ferrite/models/mlp.hpp"
#include "ferrite/nn/loss.hpp"
#include "ferrite/optim/factory.hpp"
#include "ferrite/train/classifier.hpp"

#include "require_gpu.hpp"

using namespace ferrite;

namespace {

constexpr std::uint64_t kSeed = 42;

data::Dataset synthetic(std::int64_t n) { return data::make_synthetic(n, kSeed, data::Split::train).value(); }

nn::Sequential mlp(const data::Dataset& d, std::vector<std::int64_t> hidden = {128, 64}) {
  return models::make_mlp(d.features(), hidden, d.num_classes, kSeed).value();
}

cuda::MlpTrainerOptions options(const std::string& optimizer = "adam", std::int64_t batch = 32, bool graphs = true) {
  cuda::MlpTrainerOptions o;
  o.batch = batch;
  o.cuda_graphs = graphs;
  optim::OptimizerOptions opt;
  opt.name = optimizer;
  opt.momentum = 0.9;
  o.optimizer = cuda::OptimizerConfig::from(opt).value();
  return o;
}

std::vector<std::vector<float>> values(const nn::ParameterList& params, bool grads = false) {
  std::vector<std::vector<float>> out;
  for (const auto& p : params) {
    const Tensor* t = grads ? p.grad : p.value;
    out.emplace_back(t->data<float>(), t->data<float>() + t->numel());
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Without a GPU

TEST(CudaMlpTrainer, UnavailableDeviceIsAnErrorNamingTheAvailableDevices) {
  auto train = synthetic(64);
  auto model = mlp(train);
  auto o = options();
  o.device = cuda::device_count();  // one past the last device (cuda:0 without a GPU)
  auto trainer = cuda::MlpTrainer::create(model, train, o);
  ASSERT_FALSE(trainer.ok());
  EXPECT_EQ(trainer.error().code, ErrorCode::device_unavailable);
  EXPECT_NE(trainer.error().message.find("available devices: cpu"), std::string::npos) << trainer.error().to_string();
}

TEST(CudaMlpTrainer, OptimizerConfigHasTheCpuFactoryDefaults) {
  optim::OptimizerOptions o;
  o.name = "adamw";
  auto adamw = cuda::OptimizerConfig::from(o);
  ASSERT_TRUE(adamw.ok());
  EXPECT_EQ(adamw->kind, cuda::OptimizerConfig::Kind::adamw);
  EXPECT_EQ(adamw->adam.weight_decay, 1e-2);
  EXPECT_EQ(adamw->name(), "adamw");
  o.name = "adam";
  EXPECT_EQ(cuda::OptimizerConfig::from(o)->adam.weight_decay, 0.0);
  o.name = "sgd";
  o.momentum = 0.9;
  o.weight_decay = 1e-4;
  auto sgd = cuda::OptimizerConfig::from(o);
  ASSERT_TRUE(sgd.ok());
  EXPECT_EQ(sgd->sgd.momentum, 0.9);
  EXPECT_EQ(sgd->sgd.weight_decay, 1e-4);
  o.name = "lamb";
  EXPECT_EQ(cuda::OptimizerConfig::from(o).error().code, ErrorCode::invalid_argument);
  o.name = "adam";
  o.lr = -1;
  EXPECT_EQ(cuda::OptimizerConfig::from(o).error().code, ErrorCode::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// On a GPU

TEST(CudaMlpTrainer, ParametersRoundTripExactly) {
  FE_REQUIRE_GPU();
  auto train = synthetic(100);
  auto model = mlp(train);
  auto trainer = cuda::MlpTrainer::create(model, train, options());
  ASSERT_TRUE(trainer.ok()) << trainer.error().to_string();
  auto params = model.parameters();
  const auto initial = values(params);
  for (auto& p : params) std::fill(p.value->data<float>(), p.value->data<float>() + p.value->numel(), 0.f);
  ASSERT_TRUE(trainer->download_parameters(params).ok());
  EXPECT_EQ(values(params), initial);
  EXPECT_EQ(trainer->batch(), 32);
  EXPECT_EQ(trainer->train_size(), 100);
  EXPECT_EQ(trainer->step_count(), 0);
  EXPECT_FALSE(trainer->graph_captured());
}

TEST(CudaMlpTrainer, OneStepGradientsAndLossMatchTheCpu) {
  FE_REQUIRE_GPU();
  auto train = synthetic(200);
  auto cpu_model = mlp(train), gpu_model = mlp(train);
  // Odd hidden widths too: no multiple-of-4 or -32 assumption.
  auto cpu_odd = mlp(train, {37, 5}), gpu_odd = mlp(train, {37, 5});
  for (auto* pair : {&cpu_model, &cpu_odd}) {
    auto& cpu = *pair;
    auto& gpu = pair == &cpu_model ? gpu_model : gpu_odd;
    auto trainer = cuda::MlpTrainer::create(gpu, train, options("sgd", 50));
    ASSERT_TRUE(trainer.ok()) << trainer.error().to_string();
    const auto order = data::epoch_order(train.size(), kSeed, 0);
    auto epoch = trainer->train_epoch(order, 1);
    ASSERT_TRUE(epoch.ok()) << epoch.error().to_string();
    ASSERT_EQ(epoch->step_loss.size(), 1u);
    auto gpu_params = gpu.parameters();
    ASSERT_TRUE(trainer->download_gradients(gpu_params).ok());

    // The same step on the CPU.
    Tensor x = Tensor::empty({50, train.features()}).value();
    Tensor y = Tensor::empty({50}, DType::i32).value();
    ASSERT_TRUE(data::gather_batch(train, data::batch_indices(order, 0, 50), x.mat(), y.data<std::int32_t>()).ok());
    nn::CrossEntropyLoss loss_fn;
    auto logits = cpu.forward(x.mat());
    ASSERT_TRUE(logits.ok());
    const double cpu_loss = loss_fn.forward(*logits, y.data<std::int32_t>()).value();
    ASSERT_TRUE(cpu.backward(loss_fn.backward().value()).ok());
    EXPECT_NEAR(epoch->step_loss[0], cpu_loss, 1e-5 * cpu_loss);
    const auto g_gpu = values(gpu_params, true), g_cpu = values(cpu.parameters(), true);
    for (std::size_t t = 0; t < g_gpu.size(); ++t) {
      double scale = 0;
      for (float v : g_cpu[t]) scale = std::max(scale, double(std::abs(v)));
      for (std::size_t i = 0; i < g_gpu[t].size(); ++i)
        ASSERT_NEAR(g_gpu[t][i], g_cpu[t][i], 1e-4 * scale + 1e-7) << gpu_params[t].name << "[" << i << "]";
    }
  }
}

// The parity criterion: same initial weights and batches, per-epoch mean loss within 1e-3
// relative of the CPU's, for each optimizer; the synthetic set of 1000 has a partial last batch.
TEST(CudaMlpTrainer, LossCurveMatchesTheCpuLoop) {
  FE_REQUIRE_GPU();
  auto train = synthetic(1000);
  for (const std::string name : {"adam", "adamw", "sgd"}) {
    SCOPED_TRACE(name);
    const std::int64_t epochs = name == "adam" ? 3 : 2;
    auto cpu_model = mlp(train), gpu_model = mlp(train);
    optim::OptimizerOptions opt;
    opt.name = name;
    opt.momentum = 0.9;
    auto cpu_opt = optim::make_optimizer(cpu_model.parameters(), opt).value();
    auto cpu = train::train_classifier(cpu_model, *cpu_opt, train, {32, epochs, kSeed, -1});
    ASSERT_TRUE(cpu.ok()) << cpu.error().to_string();

    auto trainer = cuda::MlpTrainer::create(gpu_model, train, options(name));
    ASSERT_TRUE(trainer.ok()) << trainer.error().to_string();
    auto gpu = trainer->train({32, epochs, kSeed, -1});
    ASSERT_TRUE(gpu.ok()) << gpu.error().to_string();
    ASSERT_EQ(gpu->epoch_loss.size(), cpu->epoch_loss.size());
    ASSERT_EQ(gpu->step_loss.size(), cpu->step_loss.size());
    EXPECT_EQ(trainer->step_count(), std::int64_t(cpu->step_loss.size()));
    EXPECT_TRUE(trainer->graph_captured());
    EXPECT_NEAR(gpu->step_loss[0], cpu->step_loss[0], 1e-5 * cpu->step_loss[0]);
    for (std::size_t e = 0; e < cpu->epoch_loss.size(); ++e) {
      EXPECT_NEAR(gpu->epoch_loss[e], cpu->epoch_loss[e], 1e-3 * cpu->epoch_loss[e]) << "epoch " << e;
      EXPECT_EQ(gpu->epoch_samples[e], 1000);
      EXPECT_GT(gpu->epoch_seconds[e], 0.0);
    }
    for (double ms : gpu->step_ms) ASSERT_GT(ms, 0.0);
    // The trained weights agree too (loosely: float differences grow over ~100 Adam steps).
    auto gpu_params = gpu_model.parameters();
    ASSERT_TRUE(trainer->download_parameters(gpu_params).ok());
    const auto w_gpu = values(gpu_params), w_cpu = values(cpu_model.parameters());
    for (std::size_t t = 0; t < w_gpu.size(); ++t) {
      double diff = 0, norm = 0;
      for (std::size_t i = 0; i < w_gpu[t].size(); ++i) {
        diff += std::pow(double(w_gpu[t][i]) - w_cpu[t][i], 2);
        norm += std::pow(double(w_cpu[t][i]), 2);
      }
      EXPECT_LT(std::sqrt(diff), 5e-2 * std::sqrt(norm) + 1e-6) << gpu_params[t].name;
    }
    // And the trained model classifies as well on the CPU.
    auto eval_gpu = train::evaluate_classifier(gpu_model, train);
    auto eval_cpu = train::evaluate_classifier(cpu_model, train);
    ASSERT_TRUE(eval_gpu.ok() && eval_cpu.ok());
    EXPECT_NEAR(eval_gpu->accuracy, eval_cpu->accuracy, 0.01);
  }
}

TEST(CudaMlpTrainer, RunsAreBitIdenticalWithAndWithoutGraphs) {
  FE_REQUIRE_GPU();
  auto train = synthetic(500);  // 15 full batches + one of 20
  std::vector<std::vector<double>> losses;
  std::vector<std::vector<std::vector<float>>> weights;
  for (bool graphs : {true, true, false}) {
    auto model = mlp(train);
    auto trainer = cuda::MlpTrainer::create(model, train, options("adam", 32, graphs));
    ASSERT_TRUE(trainer.ok()) << trainer.error().to_string();
    auto h = trainer->train({32, 2, kSeed, -1});
    ASSERT_TRUE(h.ok()) << h.error().to_string();
    EXPECT_EQ(trainer->graph_captured(), graphs);
    losses.push_back(h->step_loss);
    auto params = model.parameters();
    ASSERT_TRUE(trainer->download_parameters(params).ok());
    weights.push_back(values(params));
  }
  EXPECT_EQ(losses[0], losses[1]) << "two graph runs differ";
  EXPECT_EQ(weights[0], weights[1]) << "two graph runs differ";
  EXPECT_EQ(losses[0], losses[2]) << "graph replay differs from eager launches";
  EXPECT_EQ(weights[0], weights[2]) << "graph replay differs from eager launches";
}

TEST(CudaMlpTrainer, MaxStepsResetAndWarmUpRestart) {
  FE_REQUIRE_GPU();
  auto train = synthetic(300);
  auto model = mlp(train);
  auto params = model.parameters();
  const auto initial = values(params);
  auto trainer = cuda::MlpTrainer::create(model, train, options());
  ASSERT_TRUE(trainer.ok()) << trainer.error().to_string();
  const auto order = data::epoch_order(train.size(), kSeed, 0);
  auto first = trainer->train_epoch(order, 5);
  ASSERT_TRUE(first.ok()) << first.error().to_string();
  EXPECT_EQ(first->step_loss.size(), 5u);
  EXPECT_EQ(first->samples, 160);
  EXPECT_EQ(trainer->step_count(), 5);
  // Back to the initial weights and a fresh optimizer: the same five losses again, bit for bit.
  ASSERT_TRUE(trainer->upload_parameters(params).ok());
  ASSERT_TRUE(trainer->reset_optimizer().ok());
  EXPECT_EQ(trainer->step_count(), 0);
  auto second = trainer->train_epoch(order, 5);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->step_loss, first->step_loss);
  EXPECT_EQ(values(params), initial) << "the host model must not change while the GPU trains";
  auto stats = trainer->memory_stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_GE(stats->peak_allocated_bytes, train.size() * train.features() * std::int64_t{sizeof(float)});
  EXPECT_GE(stats->reserved_bytes, stats->allocated_bytes);
}

TEST(CudaMlpTrainer, BadInputsAreErrors) {
  FE_REQUIRE_GPU();
  auto train = synthetic(64);
  {  // a model ending in ReLU
    nn::Sequential m;
    m.add(nn::Linear::create(train.features(), 10).value());
    m.add(nn::ReLU{});
    auto t = cuda::MlpTrainer::create(m, train, options());
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error().code, ErrorCode::unsupported);
  }
  {  // input width != features
    auto other = data::make_synthetic(64, kSeed, data::Split::train).value();
    nn::Sequential m;
    m.add(nn::Linear::create(100, 10).value());
    auto t = cuda::MlpTrainer::create(m, other, options());
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error().code, ErrorCode::shape_mismatch);
  }
  {  // fewer classes than the labels use
    nn::Sequential m;
    m.add(nn::Linear::create(train.features(), 3).value());
    auto t = cuda::MlpTrainer::create(m, train, options());
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error().code, ErrorCode::invalid_argument);
  }
  auto model = mlp(train);
  auto trainer = cuda::MlpTrainer::create(model, train, options());
  ASSERT_TRUE(trainer.ok()) << trainer.error().to_string();
  std::vector<std::int32_t> bad_order{0, 1, 64};
  auto e = trainer->train_epoch(bad_order);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(trainer->train_epoch(std::vector<std::int32_t>{}).error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(trainer->train({16, 1, kSeed, -1}).error().code, ErrorCode::invalid_argument);  // not its batch
  auto other = mlp(train, {16});
  EXPECT_FALSE(trainer->upload_parameters(other.parameters()).ok());
  // The trainer still works after refusing those.
  auto ok = trainer->train_epoch(data::epoch_order(train.size(), kSeed, 0));
  ASSERT_TRUE(ok.ok()) << ok.error().to_string();
  EXPECT_EQ(ok->step_loss.size(), 2u);
}
