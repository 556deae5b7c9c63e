// The small NN ops against their scalar oracles (backend/cpu/reference/nn_ops.hpp), odd sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ferrite/backend/cpu/reference/nn_ops.hpp"
#include "ferrite/core/rng.hpp"
#include "ferrite/ops/nn_ops.hpp"

using namespace ferrite;

namespace {
Tensor randn(std::int64_t rows, std::int64_t cols, std::uint64_t stream, float scale = 1.f) {
  auto t = Tensor::empty({rows, cols}).value();
  Philox rng(5, stream);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = scale * rng.normal(i);
  return t;
}
const std::vector<std::pair<int, int>> kSizes{{1, 1}, {1, 17}, {3, 10}, {7, 33}, {32, 128}, {33, 65}, {100, 3}};
}  // namespace

TEST(NnOps, BiasActivationMatchesReference) {
  for (auto [rows, cols] : kSizes)
    for (bool relu : {false, true}) {
      Tensor y = randn(rows, cols, 1), y_ref = y.clone().value(), bias = randn(1, cols, 2);
      bias_activation<float>(y.mat(), bias.data<float>(), relu ? Activation::relu : Activation::none);
      cpu::reference::bias_activation<float>(y_ref.mat(), bias.data<float>(), relu);
      for (std::int64_t i = 0; i < y.numel(); ++i) ASSERT_EQ(y.data<float>()[i], y_ref.data<float>()[i]);
    }
}

TEST(NnOps, ReluBackwardMatchesReference) {
  for (auto [rows, cols] : kSizes) {
    Tensor y = randn(rows, cols, 3), dy = randn(rows, cols, 4);
    Tensor dx = Tensor::empty({rows, cols}).value(), dx_ref = Tensor::empty({rows, cols}).value();
    ASSERT_TRUE(relu_backward<float>(y.mat(), dy.mat(), dx.mat()).ok());
    cpu::reference::relu_backward<float>(y.mat(), dy.mat(), dx_ref.mat());
    for (std::int64_t i = 0; i < y.numel(); ++i) ASSERT_EQ(dx.data<float>()[i], dx_ref.data<float>()[i]);
  }
  Tensor a = randn(2, 3, 1), b = randn(3, 2, 1);
  auto s = relu_backward<float>(a.mat(), b.mat(), a.mat());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::shape_mismatch);
}

TEST(NnOps, ColumnSumsMatchesReference) {
  for (auto [rows, cols] : kSizes) {
    Tensor x = randn(rows, cols, 5);
    std::vector<float> out(cols), ref(cols);
    column_sums<float>(x.mat(), out.data());
    cpu::reference::column_sums<float>(x.mat(), ref.data());
    // float accumulation over `rows` terms vs double: |err| ≤ rows · eps · sum|x|.
    for (int j = 0; j < cols; ++j) ASSERT_NEAR(out[j], ref[j], rows * 1.2e-7f * (1 + std::fabs(ref[j])) * 4);
  }
}

TEST(NnOps, SoftmaxCrossEntropyMatchesReference) {
  for (auto [rows, cols] : kSizes) {
    Tensor logits = randn(rows, cols, 6, 3.f);
    std::vector<std::int32_t> labels(rows);
    for (int i = 0; i < rows; ++i) labels[i] = (i * 7) % cols;
    Tensor p = Tensor::empty({rows, cols}).value(), p_ref = Tensor::empty({rows, cols}).value();
    const double loss = softmax_cross_entropy<float>(logits.mat(), labels.data(), p.mat()).value();
    const double loss_ref = cpu::reference::softmax_cross_entropy<float>(logits.mat(), labels.data(), p_ref.mat());
    EXPECT_NEAR(loss, loss_ref, 1e-5 * (1 + std::fabs(loss_ref)));
    for (std::int64_t i = 0; i < p.numel(); ++i) ASSERT_NEAR(p.data<float>()[i], p_ref.data<float>()[i], 1e-6);
    Tensor d = Tensor::empty({rows, cols}).value(), d_ref = Tensor::empty({rows, cols}).value();
    ASSERT_TRUE(softmax_cross_entropy_backward<float>(p.mat(), labels.data(), d.mat()).ok());
    cpu::reference::softmax_cross_entropy_backward<float>(p_ref.mat(), labels.data(), d_ref.mat());
    // A few ulps: p is exp of a float log-probability in one, of a double in the other.
    for (std::int64_t i = 0; i < d.numel(); ++i)
      ASSERT_NEAR(d.data<float>()[i], d_ref.data<float>()[i], 1e-6 * std::fabs(d_ref.data<float>()[i]) + 1e-8);
  }
}

TEST(NnOps, SoftmaxIsStableForHugeLogits) {
  Tensor logits = Tensor::full<float>({1, 3}, 1e30f).value();
  logits.data<float>()[1] = -1e30f;
  std::int32_t label = 1;
  Tensor p = Tensor::empty({1, 3}).value();
  const double loss = softmax_cross_entropy<float>(logits.mat(), &label, p.mat()).value();
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_NEAR(p.data<float>()[0], 0.5f, 1e-6);
  EXPECT_EQ(p.data<float>()[1], 0.0f);
}
