// PyTorch parity of ResNet-18 (models/resnet.hpp) from tests/data/parity/resnet_step.safetensors
// (scripts/pytorch/make_resnet_fixtures.py, torch 2.5.1 CPU): the structure of ResNet-18 at width 4
// loads PyTorch's state_dict by name, then one training step — logits, loss, every parameter
// gradient, one SGD step (momentum 0.9, nesterov, weight decay 5e-4), the BatchNorm running
// statistics and num_batches_tracked — and the eval-mode logits of the stepped model, per tensor.
// Tolerances are normwise (|got - want| <= tol * max|want| of the tensor: convolution sums round in
// an order PyTorch's oneDNN does not share); the control test shows a 1e-3 change in one weight fails them.
// Measured with torch 2.5.1 on Zen 4 (2026-12-08): logits 6e-7, gradients <= 2.5e-6, SGD updates
// 1.7e-5 (the update after - before cancels digits of the weight), running statistics 7e-6.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "ferrite/io/safetensors.hpp"
#include "ferrite/models/resnet.hpp"
#include "ferrite/nn/loss.hpp"
#include "ferrite/nn/parameter_store.hpp"
#include "ferrite/nn/state_dict.hpp"
#include "ferrite/optim/schedule.hpp"
#include "ferrite/optim/sgd.hpp"

using namespace ferrite;

namespace {

constexpr double kLogitsTol = 1e-5, kGradTol = 1e-4, kUpdateTol = 2e-4, kBufferTol = 1e-4;

const std::filesystem::path kFixture = std::filesystem::path(FERRITE_TEST_DATA_DIR "/parity") / "resnet_step.safetensors";

// max |got - want| / max |want| over the tensor (0 for an all-zero want that got matches).
double normwise_error(const float* got, const Tensor& want) {
  double diff = 0, scale = 0;
  for (std::int64_t i = 0; i < want.numel(); ++i) {
    diff = std::max(diff, std::fabs(double(got[i]) - double(want.data<float>()[i])));
    scale = std::max(scale, std::fabs(double(want.data<float>()[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

struct Step {
  models::ResNet net;
  nn::ParameterList params;
  nn::BufferList buffers;
  nn::ParameterStore store;
  Context ctx = Context::cpu();
  Tensor input, labels;
  std::vector<float> logits;
  float loss = 0;
};

// perturb: fc.weight[0] is scaled by 1 + perturb after loading (the control; a first-layer weight
// would hide in the BatchNorm that follows it).
Step load_and_step(const io::SafetensorsFile& file, float perturb = 0.f) {
  models::ResNetConfig cfg;
  cfg.width = 4;
  Step s{models::ResNet::create(cfg, 0).value(), {}, {}, {}, Context::cpu(), {}, {}, {}, 0};
  s.params = s.net.parameters();
  s.buffers = s.net.buffers();
  const Status loaded = nn::load_state_dict(s.params, s.buffers, file, kFixture.string(), "init.");
  EXPECT_TRUE(loaded.ok()) << loaded.error().to_string();
  for (auto& p : s.params)
    if (p.name == "fc.weight") p.value->data<float>()[0] *= 1.f + perturb;
  s.store = nn::ParameterStore::create(s.params).value();
  s.input = file.find("input")->clone().value();
  const Tensor& l64 = *file.find("labels");
  s.labels = Tensor::empty({l64.numel()}, DType::i32).value();
  for (std::int64_t i = 0; i < l64.numel(); ++i) s.labels.data<std::int32_t>()[i] = std::int32_t(l64.data<std::int64_t>()[i]);
  nn::CrossEntropyLoss ce;
  auto logits = s.net.forward(s.ctx, s.input.cref()).value();
  s.logits.assign(logits.ptr<float>(), logits.ptr<float>() + logits.numel());
  s.loss = ce.forward(s.ctx, logits, s.labels.cref()).value().ptr<float>()[0];
  EXPECT_TRUE(nn::reset_gradients(s.params).ok());
  EXPECT_TRUE(s.net.backward(s.ctx, ce.backward().value()).ok());
  return s;
}

}  // namespace

TEST(ResNetParity, OneTrainingStepMatchesPyTorchPerTensor) {
  ASSERT_TRUE(std::filesystem::exists(kFixture)) << kFixture << " (run scripts/pytorch/make_resnet_fixtures.py)";
  const auto file = io::load_safetensors(kFixture).value();
  Step s = load_and_step(file);

  const double logits_err = normwise_error(s.logits.data(), *file.find("logits"));
  const double want_loss = file.find("loss")->data<float>()[0];
  std::printf("[parity] resnet logits normwise %.2e, loss rel %.2e\n", logits_err, std::fabs(s.loss - want_loss) / want_loss);
  EXPECT_LE(logits_err, kLogitsTol);
  EXPECT_NEAR(s.loss, want_loss, 1e-5 * want_loss);

  double worst_grad = 0;
  for (const auto& p : s.params) {
    const double e = normwise_error(p.grad->data<float>(), *file.find("grad." + p.name));
    worst_grad = std::max(worst_grad, e);
    EXPECT_LE(e, kGradTol) << "grad." << p.name;
  }
  std::printf("[parity] resnet worst gradient normwise %.2e over %zu tensors\n", worst_grad, s.params.size());

  optim::SGDOptions o;
  o.lr = 0.1;
  o.momentum = 0.9;
  o.nesterov = true;
  o.weight_decay = 5e-4;
  auto sgd = optim::SGD::create(s.params, o, &s.store).value();
  ASSERT_TRUE(sgd.step(s.ctx).ok());
  double worst_update = 0;
  for (const auto& p : s.params) {
    // Compare the update (after - before), which is what the step computed.
    const Tensor& before = *file.find("init." + p.name);
    const Tensor& after = *file.find("step." + p.name);
    Tensor want = Tensor::empty(after.shape()).value();
    std::vector<float> got(std::size_t(after.numel()));
    for (std::int64_t i = 0; i < after.numel(); ++i) {
      want.data<float>()[i] = after.data<float>()[i] - before.data<float>()[i];
      got[std::size_t(i)] = p.value->data<float>()[i] - before.data<float>()[i];
    }
    const double e = normwise_error(got.data(), want);
    worst_update = std::max(worst_update, e);
    EXPECT_LE(e, kUpdateTol) << "step." << p.name;
  }
  double worst_buffer = 0;
  for (const auto& b : s.buffers) {
    const Tensor& want = *file.find("step." + b.name);
    if (b.value->dtype() == DType::i64) {
      EXPECT_EQ(b.value->data<std::int64_t>()[0], want.data<std::int64_t>()[0]) << b.name;
      continue;
    }
    for (std::int64_t i = 0; i < want.numel(); ++i) {
      const double w = want.data<float>()[i], g = b.value->data<float>()[i];
      worst_buffer = std::max(worst_buffer, std::fabs(g - w) / std::max(std::fabs(w), 1e-3));
    }
  }
  std::printf("[parity] resnet worst SGD update normwise %.2e, worst running statistic rel %.2e\n", worst_update, worst_buffer);
  EXPECT_LE(worst_buffer, kBufferTol);

  s.net.eval();
  ASSERT_TRUE(s.ctx.begin_step().ok());
  auto eval_logits = s.net.forward(s.ctx, s.input.cref()).value();
  const double eval_err = normwise_error(eval_logits.ptr<float>(), *file.find("eval_logits"));
  std::printf("[parity] resnet eval-mode logits normwise %.2e\n", eval_err);
  EXPECT_LE(eval_err, kLogitsTol);
}

TEST(ResNetParity, ControlAPerturbedWeightFailsTheTolerances) {
  ASSERT_TRUE(std::filesystem::exists(kFixture));
  const auto file = io::load_safetensors(kFixture).value();
  Step s = load_and_step(file, 1e-3f);
  double worst_grad = 0;
  for (const auto& p : s.params) worst_grad = std::max(worst_grad, normwise_error(p.grad->data<float>(), *file.find("grad." + p.name)));
  const double logits_err = normwise_error(s.logits.data(), *file.find("logits"));
  std::printf("[parity] control (fc.weight[0] x (1 + 1e-3)): logits %.2e, worst gradient %.2e\n", logits_err, worst_grad);
  EXPECT_GT(logits_err, kLogitsTol) << "a 1e-3 change of fc.weight[0] must show in the logits";
  EXPECT_GT(worst_grad, kGradTol) << "and in some gradient";
}

TEST(ResNetParity, StateDictOfAnotherModelIsRefusedByName) {
  ASSERT_TRUE(std::filesystem::exists(kFixture));
  const auto file = io::load_safetensors(kFixture).value();
  models::ResNetConfig cfg;
  cfg.width = 8;  // twice as wide: every tensor mis-shaped
  auto net = models::ResNet::create(cfg, 0).value();
  const auto params = net.parameters();
  const auto buffers = net.buffers();
  const float before = params.front().value->data<float>()[0];
  const Status st = nn::load_state_dict(params, buffers, file, "resnet_step.safetensors", "init.");
  ASSERT_FALSE(st.ok());
  const std::string msg = st.error().to_string();
  EXPECT_NE(msg.find("'init.conv1.weight' has shape [4, 3, 3, 3], the model expects [8, 3, 3, 3]"), std::string::npos) << msg;
  EXPECT_EQ(params.front().value->data<float>()[0], before) << "nothing changes on a refused load";
}

TEST(ResNetParity, OneCycleScheduleMatchesTorchOneCycleLR) {
  // torch.optim.lr_scheduler.OneCycleLR(max_lr 0.1, total_steps 50, cycle_momentum=False), recorded by
  // make_resnet_fixtures.py (stored f64, read as f32: compared to 1e-6 relative).
  ASSERT_TRUE(std::filesystem::exists(kFixture));
  const auto file = io::load_safetensors(kFixture).value();
  const Tensor* want = file.find("onecycle_lr");
  ASSERT_NE(want, nullptr);
  ASSERT_EQ(want->numel(), 50);
  optim::LrSchedule s;
  s.kind = optim::LrSchedule::Kind::onecycle;
  s.lr = 0.1;
  s.total_steps = 50;
  ASSERT_TRUE(s.check().ok());
  for (std::int64_t i = 0; i < 50; ++i) {
    const double w = want->data<float>()[i];
    EXPECT_NEAR(s.at(i), w, 1e-6 * w) << "step " << i;
  }
  // A constant lr would be far off: the comparison can fail.
  EXPECT_GT(std::fabs(s.at(0) - 0.1), 0.05);
}
