// The same training code on every device: the MLP trained by train::train_classifier on cuda:0 against
// the same run on the CPU (same weights, same batches). Compiled into test_cuda; skips without a GPU.
// Criterion (the CUDA GEMM sums in another order): per-epoch mean loss within 1e-3 relative, the
// first step's loss within 1e-5, and two GPU runs bit-identical. Graph mode (TrainOptions::cuda_graphs)
// replays the same kernels on the same data: its losses and weights equal the eager GPU run's bit
// for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ferrite/backend/devices.hpp"
#include "ferrite/data/synthetic.hpp"
#include "ferrite/models/mlp.hpp"
#include "ferrite/nn/parameter_store.hpp"
#include "ferrite/optim/factory.hpp"
#include "ferrite/train/classifier.hpp"

using namespace ferrite;

namespace {

struct Run {
  train::TrainHistory history;
  std::vector<float> weights;  // every parameter, concatenated (host)
};

Result<Run> train_on(Device device, const std::string& optimizer, bool graphs = false) {
  FE_TRY_ASSIGN(data::Dataset set, data::make_synthetic(1000, 7, data::Split::train));
  FE_TRY_ASSIGN(nn::Sequential model, models::make_mlp(set.features(), {128, 64}, set.num_classes, 7));
  auto params = model.parameters();
  FE_TRY_ASSIGN(Context ctx, Context::create(device));
  FE_TRY_ASSIGN(nn::ParameterStore store, nn::ParameterStore::create(params, device));
  optim::OptimizerOptions o;
  o.name = optimizer;
  o.momentum = optimizer == "sgd" ? 0.9 : 0.0;
  FE_TRY_ASSIGN(auto opt, optim::make_optimizer(params, o, &store));
  Run run;
  FE_TRY_ASSIGN(run.history, train::train_classifier(ctx, model, *opt, set, {32, 3, 11, -1, graphs}));  // partial last batch
  if (ctx.step_counter()) return make_error(ErrorCode::internal, "test", "graph mode outlived the training call");
  for (const auto& p : params) {
    FE_TRY_ASSIGN(Tensor host, p.value->to(Device::cpu()));
    run.weights.insert(run.weights.end(), host.data<float>(), host.data<float>() + host.numel());
  }
  return run;
}

}  // namespace

TEST(TrainOnDevices, CudaLossCurveMatchesTheCpuLoop) {
  const Device gpu = Device::cuda(0);
  if (const Status ok = check_device(gpu); !ok.ok()) GTEST_SKIP() << "skipped: " << ok.error().to_string();
  for (const char* name : {"adam", "adamw", "sgd"}) {
    auto cpu = train_on(Device::cpu(), name);
    auto cuda = train_on(gpu, name);
    auto again = train_on(gpu, name);
    ASSERT_TRUE(cpu.ok()) << cpu.error().to_string();
    ASSERT_TRUE(cuda.ok()) << cuda.error().to_string();
    ASSERT_TRUE(again.ok()) << again.error().to_string();
    const auto& c = cpu->history;
    const auto& g = cuda->history;
    ASSERT_EQ(c.step_loss.size(), g.step_loss.size()) << name;
    EXPECT_NEAR(g.step_loss[0], c.step_loss[0], 1e-5 * std::fabs(c.step_loss[0])) << name;
    for (std::size_t e = 0; e < c.epoch_loss.size(); ++e)
      EXPECT_NEAR(g.epoch_loss[e], c.epoch_loss[e], 1e-3 * std::fabs(c.epoch_loss[e])) << name << " epoch " << e;
    EXPECT_EQ(cuda->history.step_loss, again->history.step_loss) << name << ": two GPU runs differ";
    EXPECT_EQ(cuda->weights, again->weights) << name;
  }
}

TEST(TrainOnDevices, CudaGraphStepsEqualEagerSteps) {
  const Device gpu = Device::cuda(0);
  if (const Status ok = check_device(gpu); !ok.ok()) GTEST_SKIP() << "skipped: " << ok.error().to_string();
  for (const char* name : {"adam", "adamw", "sgd"}) {
    auto eager = train_on(gpu, name);
    auto graph = train_on(gpu, name, /*graphs=*/true);
    ASSERT_TRUE(eager.ok()) << eager.error().to_string();
    ASSERT_TRUE(graph.ok()) << graph.error().to_string();
    // 1000 samples at 32: 31 full batches + 1 partial per epoch, 3 epochs; the first full batch warms
    // up (twice if the workspace consolidated after it), the next is captured, every later full batch
    // is a replay (the graph survives epochs and the eager partial batches).
    EXPECT_GE(graph->history.graph_replays, 3 * 31 - 3) << name;
    EXPECT_LE(graph->history.graph_replays, 3 * 31 - 2) << name;
    EXPECT_EQ(eager->history.graph_replays, 0) << name;
    EXPECT_EQ(graph->history.step_loss, eager->history.step_loss) << name;
    EXPECT_EQ(graph->weights, eager->weights) << name;
  }
}

TEST(TrainOnDevices, GraphOptionIsIgnoredOnTheCpu) {
  auto eager = train_on(Device::cpu(), "adam");
  auto graph = train_on(Device::cpu(), "adam", /*graphs=*/true);
  ASSERT_TRUE(eager.ok()) << eager.error().to_string();
  ASSERT_TRUE(graph.ok()) << graph.error().to_string();
  EXPECT_EQ(graph->history.graph_replays, 0);
  EXPECT_EQ(graph->history.step_loss, eager->history.step_loss);
  EXPECT_EQ(graph->weights, eager->weights);
}

TEST(TrainOnDevices, MissingDeviceIsReportedByName) {
  if (cuda::device_count() > 0) GTEST_SKIP() << "skipped: a GPU is present";
  auto r = train_on(Device::cuda(0), "adam");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::device_unavailable);
  EXPECT_NE(r.error().message.find("available devices: cpu"), std::string::npos) << r.error().to_string();
}
