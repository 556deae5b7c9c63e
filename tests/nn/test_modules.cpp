// Every module's backward against central finite differences, in double precision.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "ferrite/core/rng.hpp"
#include "ferrite/models/mlp.hpp"
#include "ferrite/nn/loss.hpp"
#include "ferrite/nn/sequential.hpp"

using namespace ferrite;
using ferrite::nn::ModuleT;

namespace {

Tensor random_tensor(Shape shape, std::uint64_t stream, double scale = 1.0) {
  auto t = Tensor::empty(shape, DType::f64).value();
  Philox rng(77, stream);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = scale * rng.normal(i);
  return t;
}

// L(module) = sum(forward(x) * r): its gradient w.r.t. the output is exactly r.
double probe_loss(ModuleT<double>& m, const Tensor& x, const Tensor& r) {
  auto y = m.forward(x.mat<double>()).value();
  double s = 0;
  for (std::int64_t i = 0; i < y.rows; ++i)
    for (std::int64_t j = 0; j < y.cols; ++j) s += y(i, j) * r.mat<double>()(i, j);
  return s;
}

// Central difference of `loss` w.r.t. every element of `values`, compared with `analytic`.
void expect_matches_finite_differences(const char* what, double* values, const double* analytic,
                                       std::int64_t n, const std::function<double()>& loss) {
  const double h = 1e-6;
  for (std::int64_t i = 0; i < n; ++i) {
    const double saved = values[i];
    values[i] = saved + h;
    const double up = loss();
    values[i] = saved - h;
    const double down = loss();
    values[i] = saved;
    const double numeric = (up - down) / (2 * h);
    // Central differences are O(h²) accurate for smooth functions; ReLU kinks are avoided by the
    // random data (no pre-activation within h of 0 in practice). 1e-6 absolute + relative.
    ASSERT_NEAR(analytic[i], numeric, 1e-6 + 1e-6 * std::fabs(numeric)) << what << "[" << i << "]";
  }
}

void check_module_gradients(ModuleT<double>& m, std::int64_t batch, std::int64_t in_features,
                            std::int64_t out_features) {
  Tensor x = random_tensor({batch, in_features}, 1);
  Tensor r = random_tensor({batch, out_features}, 2);
  // Analytic gradients.
  (void)m.forward(x.mat<double>()).value();
  auto dx = m.backward(r.mat<double>()).value();
  Tensor dx_copy = Tensor::from_data<double>({batch, in_features}, dx.data, batch * in_features).value();
  nn::ParameterList params;
  m.collect_parameters("", params);
  std::vector<Tensor> grads;
  for (auto& p : params) grads.push_back(p.grad->clone().value());

  auto loss = [&] { return probe_loss(m, x, r); };
  expect_matches_finite_differences("dx", x.data<double>(), dx_copy.data<double>(), x.numel(), loss);
  for (std::size_t k = 0; k < params.size(); ++k)
    expect_matches_finite_differences(params[k].name.c_str(), params[k].value->data<double>(),
                                      grads[k].data<double>(), grads[k].numel(), loss);
}

}  // namespace

TEST(Linear, BackwardMatchesFiniteDifferences) {
  auto linear = nn::LinearT<double>::create(7, 5).value();
  linear.reset_parameters(3, 0);
  check_module_gradients(linear, 4, 7, 5);
}

TEST(Linear, FusedReluBackwardMatchesFiniteDifferences) {
  auto linear = nn::LinearT<double>::create(9, 6).value();
  linear.reset_parameters(4, 0);
  linear.set_activation(Activation::relu);
  check_module_gradients(linear, 5, 9, 6);
}

TEST(Linear, NoBias) {
  auto linear = nn::LinearT<double>::create(3, 2, /*bias=*/false).value();
  linear.reset_parameters(5, 0);
  nn::ParameterList params;
  linear.collect_parameters("0.", params);
  ASSERT_EQ(params.size(), 1u);
  EXPECT_EQ(params[0].name, "0.weight");
  check_module_gradients(linear, 3, 3, 2);
}

TEST(ReLU, BackwardMatchesFiniteDifferences) {
  nn::ReLUT<double> relu;
  check_module_gradients(relu, 6, 11, 11);
}

TEST(Sequential, MlpBackwardMatchesFiniteDifferencesAndNamesLikePyTorch) {
  auto mlp = models::make_mlp<double>(13, {8, 6}, 4, 11).value();
  mlp.set_input_grad(true);  // the probe also checks d loss / d input
  nn::ParameterList params = mlp.parameters();
  std::vector<std::string> names;
  for (auto& p : params) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"}));
  check_module_gradients(mlp, 5, 13, 4);
}

TEST(Sequential, UnfusedEqualsFused) {
  // The same network with ReLU as separate modules gives identical outputs and gradients.
  auto fused = models::make_mlp<double>(10, {7}, 3, 21).value();
  nn::SequentialT<double> plain;
  auto l0 = nn::LinearT<double>::create(10, 7).value();
  l0.reset_parameters(21, rng_stream::init);
  auto l2 = nn::LinearT<double>::create(7, 3).value();
  l2.reset_parameters(21, rng_stream::init + 2);
  plain.add(std::move(l0));
  plain.add(nn::ReLUT<double>{});
  plain.add(std::move(l2));
  Tensor x = random_tensor({4, 10}, 5);
  Tensor r = random_tensor({4, 3}, 6);
  auto yf = fused.forward(x.mat<double>()).value();
  auto yp = plain.forward(x.mat<double>()).value();
  for (std::int64_t i = 0; i < 4; ++i)
    for (std::int64_t j = 0; j < 3; ++j) EXPECT_DOUBLE_EQ(yf(i, j), yp(i, j));
  (void)fused.backward(r.mat<double>()).value();
  (void)plain.backward(r.mat<double>()).value();
  auto pf = fused.parameters(), pp = plain.parameters();
  ASSERT_EQ(pf.size(), pp.size());
  for (std::size_t k = 0; k < pf.size(); ++k) {
    EXPECT_EQ(pf[k].name, pp[k].name);
    for (std::int64_t i = 0; i < pf[k].grad->numel(); ++i)
      EXPECT_DOUBLE_EQ(pf[k].grad->data<double>()[i], pp[k].grad->data<double>()[i]);
  }
}

TEST(CrossEntropyLoss, BackwardMatchesFiniteDifferences) {
  Tensor logits = random_tensor({6, 5}, 9, 2.0);
  std::vector<std::int32_t> labels{0, 4, 2, 2, 1, 3};
  nn::CrossEntropyLossT<double> loss;
  (void)loss.forward(logits.mat<double>(), labels.data()).value();
  auto g = loss.backward().value();
  Tensor g_copy = Tensor::from_data<double>({6, 5}, g.data, 30).value();
  nn::CrossEntropyLossT<double> probe;
  expect_matches_finite_differences("dlogits", logits.data<double>(), g_copy.data<double>(), 30,
                                    [&] { return probe.forward(logits.mat<double>(), labels.data()).value(); });
}

TEST(CrossEntropyLoss, KnownValueAndBadLabels) {
  // Uniform logits over 4 classes: loss = log(4) whatever the labels.
  Tensor logits = Tensor::zeros({2, 4}).value();
  std::vector<std::int32_t> labels{1, 3};
  nn::CrossEntropyLoss loss;
  EXPECT_NEAR(loss.forward(logits.mat(), labels.data()).value(), std::log(4.0), 1e-7);
  std::vector<std::int32_t> bad{1, 4};
  auto r = loss.forward(logits.mat(), bad.data());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(r.error().message.find("label 4 at row 1"), std::string::npos);
}

TEST(Linear, ShapeErrors) {
  auto linear = nn::Linear::create(4, 3).value();
  Tensor x = Tensor::zeros({2, 5}).value();
  auto r = linear.forward(x.mat());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::shape_mismatch);
  EXPECT_EQ(r.error().op, "Linear::forward");
  EXPECT_FALSE(nn::Linear::create(0, 3).ok());
  Tensor dy = Tensor::zeros({2, 3}).value();
  EXPECT_FALSE(linear.backward(dy.mat()).ok());  // before forward
}

TEST(Mlp, FloatMatchesDoubleOracle) {
  // The float network (fast GEMM) against the same network in double (scalar oracle).
  auto f = models::make_mlp<float>(784, {128, 64}, 10, 42).value();
  auto d = models::make_mlp<double>(784, {128, 64}, 10, 42).value();
  Tensor xd = random_tensor({32, 784}, 3, 0.5);
  Tensor xf = Tensor::empty({32, 784}).value();
  for (std::int64_t i = 0; i < xd.numel(); ++i) xf.data<float>()[i] = static_cast<float>(xd.data<double>()[i]);
  for (std::int64_t i = 0; i < xd.numel(); ++i) xd.data<double>()[i] = xf.data<float>()[i];
  auto pf = f.parameters(), pd = d.parameters();
  for (std::size_t k = 0; k < pf.size(); ++k)  // identical starting weights (float-rounded)
    for (std::int64_t i = 0; i < pf[k].value->numel(); ++i)
      pd[k].value->data<double>()[i] = pf[k].value->data<float>()[i];
  auto yf = f.forward(xf.mat()).value();
  auto yd = d.forward(xd.mat<double>()).value();
  for (std::int64_t i = 0; i < 32; ++i)
    for (std::int64_t j = 0; j < 10; ++j) EXPECT_NEAR(yf(i, j), yd(i, j), 1e-5 * (1 + std::fabs(yd(i, j))));
}
