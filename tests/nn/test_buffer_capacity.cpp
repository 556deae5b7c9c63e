// Module buffers keep their capacity across batch sizes (nn/module.hpp, detail::ensure_rows): a module
// that has seen a larger batch computes a smaller one in the first rows of its buffers, with results
// bit-identical to a fresh module's, and its buffers stay where they are once the largest batch ran.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "ferrite/core/rng.hpp"
#include "ferrite/nn/activation.hpp"
#include "ferrite/nn/linear.hpp"
#include "ferrite/nn/loss.hpp"
#include "ferrite/nn/module.hpp"
#include "ferrite/nn/sequential.hpp"

using namespace ferrite;

namespace {

constexpr std::int64_t kMaxBatch = 32, kIn = 24, kHidden = 16, kClasses = 5;

// Linear(24, 16), ReLU, Linear(16, 5); the ReLU standalone or fused into the first Linear.
nn::Sequential make_net(bool fused) {
  nn::Sequential net;
  auto l0 = nn::Linear::create(kIn, kHidden).value();
  l0.reset_parameters(7, 100);
  auto l2 = nn::Linear::create(kHidden, kClasses).value();
  l2.reset_parameters(7, 102);
  net.add(std::move(l0));
  net.add(nn::ReLU{});
  net.add(std::move(l2));
  if (fused) net.fuse_activations();
  return net;
}

std::vector<float> copy(MatView<const float> m) {
  std::vector<float> out;
  for (std::int64_t i = 0; i < m.rows; ++i) out.insert(out.end(), m.row(i), m.row(i) + m.cols);
  return out;
}

struct Step {
  std::vector<float> logits, probs, dlogits, dx;
  std::vector<std::vector<float>> grads;  // per parameter, in parameters() order
  double loss = 0;
  // Where the results lived: the module's and the loss's buffers.
  const float *logits_at = nullptr, *probs_at = nullptr, *dlogits_at = nullptr, *dx_at = nullptr;
};

// One forward + loss + backward of rows [first, first + batch) of x / labels.
Step run_step(nn::Sequential& net, nn::CrossEntropyLoss& loss, const Tensor& x, const std::vector<std::int32_t>& labels,
              std::int64_t first, std::int64_t batch) {
  Step s;
  const MatView<const float> xb = x.mat<float>().row_slice(first, batch);
  auto logits = net.forward(xb).value();
  s.loss = loss.forward(logits, labels.data() + first).value();
  auto dlogits = loss.backward().value();
  auto dx = net.backward(dlogits).value();
  EXPECT_EQ(logits.rows, batch);
  EXPECT_EQ(dx.rows, batch);
  EXPECT_EQ(loss.probabilities().rows, batch);
  s.logits = copy(logits);
  s.probs = copy(loss.probabilities());
  s.dlogits = copy(dlogits);
  s.dx = copy(dx);
  for (const auto& p : net.parameters())
    s.grads.emplace_back(p.grad->data<float>(), p.grad->data<float>() + p.grad->numel());
  s.logits_at = logits.data;
  s.probs_at = loss.probabilities().data;
  s.dlogits_at = dlogits.data;
  s.dx_at = dx.data;
  return s;
}

// Bit-for-bit: memcmp, so -0.0 vs 0.0 or a different NaN would count as a difference.
void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << what;
}

void check_sequence(bool fused, const std::vector<std::int64_t>& batches) {
  SCOPED_TRACE(std::string(fused ? "fused" : "unfused") + " ReLU");
  auto x = Tensor::empty({2 * kMaxBatch, kIn}).value();
  Philox rng(3, 1);
  for (std::int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(rng.normal(i));
  std::vector<std::int32_t> labels(2 * kMaxBatch);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<std::int32_t>((i * 7 + 3) % kClasses);

  auto reused = make_net(fused);
  nn::CrossEntropyLoss reused_loss;
  std::int64_t largest = 0;
  const float *logits_at = nullptr, *probs_at = nullptr, *dlogits_at = nullptr, *dx_at = nullptr;
  for (std::size_t k = 0; k < batches.size(); ++k) {
    const std::int64_t batch = batches[k];
    const std::int64_t first = static_cast<std::int64_t>(k) * 5 % kMaxBatch;  // a different slice each step
    SCOPED_TRACE("step " + std::to_string(k) + ", batch " + std::to_string(batch));
    const Step got = run_step(reused, reused_loss, x, labels, first, batch);

    auto fresh = make_net(fused);
    nn::CrossEntropyLoss fresh_loss;
    const Step want = run_step(fresh, fresh_loss, x, labels, first, batch);

    EXPECT_EQ(std::memcmp(&got.loss, &want.loss, sizeof(double)), 0) << got.loss << " vs " << want.loss;
    expect_same_bits(got.logits, want.logits, "logits");
    expect_same_bits(got.probs, want.probs, "probabilities");
    expect_same_bits(got.dlogits, want.dlogits, "d loss / d logits");
    expect_same_bits(got.dx, want.dx, "d loss / d input");
    ASSERT_EQ(got.grads.size(), want.grads.size());
    for (std::size_t p = 0; p < got.grads.size(); ++p) expect_same_bits(got.grads[p], want.grads[p], "parameter grad");

    if (batch > largest) {  // may grow: remember where the buffers now are
      largest = batch;
      logits_at = got.logits_at, probs_at = got.probs_at, dlogits_at = got.dlogits_at, dx_at = got.dx_at;
    } else {  // a batch no larger than one seen before reuses the same storage
      EXPECT_EQ(got.logits_at, logits_at);
      EXPECT_EQ(got.probs_at, probs_at);
      EXPECT_EQ(got.dlogits_at, dlogits_at);
      EXPECT_EQ(got.dx_at, dx_at);
    }
  }
}

}  // namespace

TEST(BufferCapacity, LargeSmallLargeMatchesFreshModulesAndKeepsBuffers) {
  for (bool fused : {false, true}) check_sequence(fused, {32, 8, 32});
}

TEST(BufferCapacity, GrowsWhenALargerBatchComes) {
  for (bool fused : {false, true}) check_sequence(fused, {8, 32, 8, 1, 32});
}

TEST(BufferCapacity, ShapeErrorsStillNameTheLastForwardShape) {
  auto linear = nn::Linear::create(4, 3).value();
  auto x = Tensor::zeros({8, 4}).value();
  ASSERT_TRUE(linear.forward(x.mat<float>()).ok());
  auto small = Tensor::zeros({2, 4}).value();
  ASSERT_TRUE(linear.forward(small.mat<float>()).ok());
  auto dy = Tensor::zeros({8, 3}).value();  // the gradient of the first, larger batch: stale
  auto status = linear.backward(dy.mat<float>());
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::shape_mismatch);
  EXPECT_NE(status.error().to_string().find("[2, 3]"), std::string::npos) << status.error().to_string();
}
