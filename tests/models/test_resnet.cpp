// ResNet-18 (models/resnet.hpp): torchvision's names and parameter count, the whole network's
// backward against central finite differences in double (BatchNorm in training mode, strided
// shortcuts, the fused add + ReLU), and results that do not depend on the thread count.
#include <gtest/gtest.h>

#include <tbb/global_control.h>

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "ferrite/core/rng.hpp"
#include "ferrite/models/resnet.hpp"

using namespace ferrite;

namespace {

Tensor random_tensor(const Shape& shape, DType dtype, std::uint64_t stream) {
  Tensor t = Tensor::empty(shape, dtype).value();
  const Philox rng(11, stream);
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    const double v = rng.normal(std::uint64_t(i));
    if (dtype == DType::f64) t.data<double>()[i] = v;
    else t.data<float>()[i] = float(v);
  }
  return t;
}

}  // namespace

TEST(ResNet, Resnet18HasTorchvisionNamesShapesAndParameterCount) {
  auto net = models::ResNet::create({}, 1).value();
  EXPECT_EQ(net.parameter_count(), 11173962);
  const auto params = net.parameters();
  const auto buffers = net.buffers();
  EXPECT_EQ(params.size(), 62u);
  EXPECT_EQ(buffers.size(), 60u);
  std::set<std::string> names;
  for (const auto& p : params) names.insert(p.name);
  for (const auto& b : buffers) names.insert(b.name);
  for (const char* n : {"conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.num_batches_tracked",
                        "layer1.0.conv1.weight", "layer1.1.bn2.running_var", "layer2.0.downsample.0.weight",
                        "layer2.0.downsample.1.running_mean", "layer2.0.downsample.1.num_batches_tracked",
                        "layer4.1.conv2.weight", "fc.weight", "fc.bias"})
    EXPECT_TRUE(names.count(n)) << n;
  EXPECT_FALSE(names.count("layer1.0.downsample.0.weight"));  // stage 1 keeps its shape: identity shortcut
  EXPECT_EQ(params.front().value->shape(), (Shape{64, 3, 3, 3}));
  for (const auto& p : params)
    if (p.name == "layer3.0.downsample.0.weight") EXPECT_EQ(p.value->shape(), (Shape{256, 128, 1, 1}));
  // The FLOP count the benchmark states: 0.556 GMAC per 32 x 32 image.
  EXPECT_EQ(net.macs_per_sample(32, 32), 555422720);
}

TEST(ResNet, BackwardMatchesFiniteDifferencesInDouble) {
  // A narrow network of the same structure (one block per stage: every stage's first block has the
  // strided 1x1 shortcut except stage 1's identity), L = sum(R * logits), in training mode.
  models::ResNetConfig cfg;
  cfg.blocks = {1, 1, 1, 1};
  cfg.width = 2;
  cfg.classes = 3;
  auto net = models::ResNet::create(cfg, 3, DType::f64).value();
  Context ctx = Context::cpu();
  Tensor x = random_tensor({3, 3, 8, 8}, DType::f64, 1), r = random_tensor({3, 3}, DType::f64, 2);
  auto params = net.parameters();
  // Non-trivial BatchNorm affine parameters, so that their gradients are not all alike.
  for (auto& p : params)
    if (p.name.find("bn") != std::string::npos || p.name.find("downsample.1") != std::string::npos) {
      const Tensor noise = random_tensor(p.value->shape(), DType::f64, 100 + p.value->numel());
      for (std::int64_t i = 0; i < p.value->numel(); ++i) p.value->data<double>()[i] += 0.3 * noise.data<double>()[i];
    }
  auto loss = [&] {
    EXPECT_TRUE(ctx.begin_step().ok());
    auto logits = net.forward(ctx, x.cref()).value();
    double s = 0;
    for (std::int64_t i = 0; i < 9; ++i) s += logits.ptr<double>()[i] * r.data<double>()[i];
    return s;
  };
  ASSERT_TRUE(nn::reset_gradients(params).ok());
  loss();
  ASSERT_TRUE(net.backward(ctx, r.cref()).ok());
  std::vector<std::vector<double>> analytic;
  for (const auto& p : params) analytic.emplace_back(p.grad->data<double>(), p.grad->data<double>() + p.grad->numel());
  const double h = 1e-6;
  int checked = 0;
  for (std::size_t k = 0; k < params.size(); ++k) {
    Tensor& v = *params[k].value;
    for (std::int64_t i = 0; i < std::min<std::int64_t>(v.numel(), 4); ++i) {
      double& w = v.data<double>()[i];
      const double saved = w;
      w = saved + h;
      const double up = loss();
      w = saved - h;
      const double down = loss();
      w = saved;
      const double numeric = (up - down) / (2 * h);
      EXPECT_NEAR(analytic[k][std::size_t(i)], numeric, 1e-6 + 1e-5 * std::fabs(numeric)) << params[k].name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 100);
}

TEST(ResNet, CpuStepIsBitIdenticalWithOneAndTwoThreads) {
  models::ResNetConfig cfg;
  cfg.width = 8;
  auto run = [&](int threads) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, std::size_t(threads));
    auto net = models::ResNet::create(cfg, 5).value();
    Context ctx = Context::cpu();
    Tensor x = random_tensor({4, 3, 32, 32}, DType::f32, 3), dy = random_tensor({4, 10}, DType::f32, 4);
    auto logits = net.forward(ctx, x.cref()).value();
    std::vector<float> out(logits.ptr<float>(), logits.ptr<float>() + logits.numel());
    EXPECT_TRUE(net.backward(ctx, dy.cref()).ok());
    for (const auto& p : net.parameters()) out.insert(out.end(), p.grad->data<float>(), p.grad->data<float>() + p.grad->numel());
    for (const auto& b : net.buffers())
      if (b.value->dtype() == DType::f32) out.insert(out.end(), b.value->data<float>(), b.value->data<float>() + b.value->numel());
    return out;
  };
  const auto one = run(1), two = run(2);
  ASSERT_EQ(one.size(), two.size());
  for (std::size_t i = 0; i < one.size(); ++i) ASSERT_EQ(one[i], two[i]) << i;
}
