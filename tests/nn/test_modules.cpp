// Every module's backward against central finite differences, in double precision (f64 tensors run
// the op layer's f64 reference kernels), plus the module contract: gradient accumulation, train/eval,
// shape errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "ferrite/core/rng.hpp"
#include "ferrite/models/mlp.hpp"
#include "ferrite/nn/loss.hpp"
#include "ferrite/nn/parameter_store.hpp"
#include "ferrite/nn/sequential.hpp"

using namespace ferrite;

namespace {

Tensor random_tensor(Shape shape, std::uint64_t stream, double scale = 1.0) {
  auto t = Tensor::empty(shape, DType::f64).value();
  Philox rng(77, stream);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = scale * rng.normal(i);
  return t;
}

// L(module) = sum(forward(x) * r): its gradient w.r.t. the output is exactly r.
double probe_loss(Context& ctx, nn::Module& m, const Tensor& x, const Tensor& r) {
  (void)ctx.begin_step();
  auto y = m.forward(ctx, x.cref()).value().mat<double>().value();
  double s = 0;
  for (std::int64_t i = 0; i < y.rows; ++i)
    for (std::int64_t j = 0; j < y.cols; ++j) s += y(i, j) * r.mat<double>()(i, j);
  return s;
}

// Central difference of `loss` w.r.t. every element of `values`, compared with `analytic`.
void expect_matches_finite_differences(const char* what, double* values, const double* analytic, std::int64_t n,
                                       const std::function<double()>& loss) {
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

void check_module_gradients(nn::Module& m, std::int64_t batch, std::int64_t in_features, std::int64_t out_features) {
  Context ctx = Context::cpu();
  Tensor x = random_tensor({batch, in_features}, 1);
  Tensor r = random_tensor({batch, out_features}, 2);
  nn::ParameterList params = m.parameters();
  ASSERT_TRUE(nn::reset_gradients(params).ok());
  // Analytic gradients.
  (void)m.forward(ctx, x.cref()).value();
  auto dx = m.backward(ctx, r.cref()).value();
  ASSERT_EQ(dx.shape, x.shape());
  Tensor dx_copy = Tensor::from_data<double>({batch, in_features}, dx.ptr<double>(), batch * in_features).value();
  std::vector<Tensor> grads;
  for (auto& p : params) grads.push_back(p.grad->clone().value());

  auto loss = [&] { return probe_loss(ctx, m, x, r); };
  expect_matches_finite_differences("dx", x.data<double>(), dx_copy.data<double>(), x.numel(), loss);
  for (std::size_t k = 0; k < params.size(); ++k)
    expect_matches_finite_differences(params[k].name.c_str(), params[k].value->data<double>(), grads[k].data<double>(),
                                      grads[k].numel(), loss);
}

}  // namespace

TEST(Linear, BackwardMatchesFiniteDifferences) {
  auto linear = nn::Linear::create(7, 5, true, DType::f64).value();
  linear.reset_parameters(3, 0);
  check_module_gradients(linear, 4, 7, 5);
}

TEST(Linear, FusedReluBackwardMatchesFiniteDifferences) {
  auto linear = nn::Linear::create(9, 6, true, DType::f64).value();
  linear.reset_parameters(4, 0);
  linear.set_activation(Activation::relu);
  check_module_gradients(linear, 5, 9, 6);
}

TEST(Linear, NoBias) {
  auto linear = nn::Linear::create(3, 2, /*bias=*/false, DType::f64).value();
  linear.reset_parameters(5, 0);
  nn::ParameterList params;
  linear.collect_parameters("0.", params);
  ASSERT_EQ(params.size(), 1u);
  EXPECT_EQ(params[0].name, "0.weight");
  check_module_gradients(linear, 3, 3, 2);
}

TEST(Linear, ThreeDimensionalInput) {
  // [2, 3, in] is [6, in] with the leading dimensions kept in the output and the input gradient.
  Context ctx = Context::cpu();
  auto linear = nn::Linear::create(4, 5, true, DType::f64).value();
  linear.reset_parameters(6, 0);
  Tensor x = random_tensor({2, 3, 4}, 3);
  auto y = linear.forward(ctx, x.cref()).value();
  EXPECT_EQ(y.shape, (Shape{2, 3, 5}));
  Tensor dy = random_tensor({2, 3, 5}, 4);
  auto dx = linear.backward(ctx, dy.cref()).value();
  EXPECT_EQ(dx.shape, (Shape{2, 3, 4}));
}

TEST(ReLU, BackwardMatchesFiniteDifferences) {
  nn::ReLU relu;
  check_module_gradients(relu, 6, 11, 11);
}

TEST(Sequential, MlpBackwardMatchesFiniteDifferencesAndNamesLikePyTorch) {
  auto mlp = models::make_mlp(13, {8, 6}, 4, 11, DType::f64).value();
  mlp.set_input_grad(true);  // the probe also checks d loss / d input
  nn::ParameterList params = mlp.parameters();
  std::vector<std::string> names;
  for (auto& p : params) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"}));
  check_module_gradients(mlp, 5, 13, 4);
}

TEST(Sequential, UnfusedEqualsFused) {
  // The same network with ReLU as separate modules gives identical outputs and gradients.
  Context ctx = Context::cpu();
  auto fused = models::make_mlp(10, {7}, 3, 21, DType::f64).value();
  nn::Sequential plain;
  auto l0 = nn::Linear::create(10, 7, true, DType::f64).value();
  l0.reset_parameters(21, rng_stream::init);
  auto l2 = nn::Linear::create(7, 3, true, DType::f64).value();
  l2.reset_parameters(21, rng_stream::init + 2);
  plain.add(std::move(l0));
  plain.add(nn::ReLU{});
  plain.add(std::move(l2));
  Tensor x = random_tensor({4, 10}, 5);
  Tensor r = random_tensor({4, 3}, 6);
  auto yf = fused.forward(ctx, x.cref()).value().mat<double>().value();
  auto yp = plain.forward(ctx, x.cref()).value().mat<double>().value();
  for (std::int64_t i = 0; i < 4; ++i)
    for (std::int64_t j = 0; j < 3; ++j) EXPECT_DOUBLE_EQ(yf(i, j), yp(i, j));
  auto pf = fused.parameters(), pp = plain.parameters();
  ASSERT_TRUE(nn::reset_gradients(pf).ok());
  ASSERT_TRUE(nn::reset_gradients(pp).ok());
  (void)fused.backward(ctx, r.cref()).value();
  (void)plain.backward(ctx, r.cref()).value();
  ASSERT_EQ(pf.size(), pp.size());
  for (std::size_t k = 0; k < pf.size(); ++k) {
    EXPECT_EQ(pf[k].name, pp[k].name);
    for (std::int64_t i = 0; i < pf[k].grad->numel(); ++i)
      EXPECT_DOUBLE_EQ(pf[k].grad->data<double>()[i], pp[k].grad->data<double>()[i]);
  }
}

TEST(Module, GradientsAccumulateUntilReset) {
  // Two backwards without a reset give the sum (a tied weight used twice); after reset_gradients the
  // next backward writes (PyTorch's zero_grad(set_to_none=True): no memset).
  Context ctx = Context::cpu();
  auto linear = nn::Linear::create(5, 3, true, DType::f64).value();
  linear.reset_parameters(8, 0);
  Tensor x = random_tensor({4, 5}, 1), r = random_tensor({4, 3}, 2);
  auto params = linear.parameters();
  ASSERT_TRUE(nn::reset_gradients(params).ok());
  (void)linear.forward(ctx, x.cref()).value();
  (void)linear.backward(ctx, r.cref()).value();
  Tensor once_w = linear.grad_weight().clone().value(), once_b = linear.grad_bias().clone().value();
  (void)linear.forward(ctx, x.cref()).value();
  (void)linear.backward(ctx, r.cref()).value();
  for (std::int64_t i = 0; i < once_w.numel(); ++i)
    EXPECT_DOUBLE_EQ(linear.grad_weight().data<double>()[i], 2 * once_w.data<double>()[i]);
  for (std::int64_t i = 0; i < once_b.numel(); ++i)
    EXPECT_DOUBLE_EQ(linear.grad_bias().data<double>()[i], 2 * once_b.data<double>()[i]);
  ASSERT_TRUE(nn::reset_gradients(params).ok());
  (void)linear.forward(ctx, x.cref()).value();
  (void)linear.backward(ctx, r.cref()).value();
  for (std::int64_t i = 0; i < once_w.numel(); ++i)
    EXPECT_DOUBLE_EQ(linear.grad_weight().data<double>()[i], once_w.data<double>()[i]);
}

TEST(Module, TrainEvalPropagatesThroughSequential) {
  auto mlp = models::make_mlp(4, {3}, 2, 1).value();
  EXPECT_TRUE(mlp.training());
  mlp.eval();
  EXPECT_FALSE(mlp.training());
  EXPECT_FALSE(mlp[0].training());
  EXPECT_FALSE(mlp[2].training());
  mlp.train();
  EXPECT_TRUE(mlp[1].training());
}

TEST(CrossEntropyLoss, BackwardMatchesFiniteDifferences) {
  Context ctx = Context::cpu();
  Tensor logits = random_tensor({6, 5}, 9, 2.0);
  std::vector<std::int32_t> labels_v{0, 4, 2, 2, 1, 3};
  Tensor labels = Tensor::from_data<std::int32_t>({6}, labels_v.data(), 6).value();
  Tensor loss_value = Tensor::zeros({1}, DType::f64).value();
  nn::CrossEntropyLoss loss;
  (void)loss.forward(ctx, logits.cref(), labels.cref()).value();
  auto g = loss.backward().value();
  Tensor g_copy = Tensor::from_data<double>({6, 5}, g.ptr<double>(), 30).value();
  nn::CrossEntropyLoss probe;
  probe.eval();
  expect_matches_finite_differences("dlogits", logits.data<double>(), g_copy.data<double>(), 30, [&] {
    (void)probe.forward(ctx, logits.cref(), labels.cref(), loss_value.ref()).value();
    return loss_value.data<double>()[0];
  });
}

TEST(CrossEntropyLoss, KnownValueAndBadLabels) {
  // Uniform logits over 4 classes: loss = log(4) whatever the labels.
  Context ctx = Context::cpu();
  Tensor logits = Tensor::zeros({2, 4}).value();
  std::vector<std::int32_t> good{1, 3}, bad{1, 4};
  Tensor labels = Tensor::from_data<std::int32_t>({2}, good.data(), 2).value();
  nn::CrossEntropyLoss loss;
  EXPECT_NEAR(*loss.forward(ctx, logits.cref(), labels.cref()).value().ptr<float>(), std::log(4.0), 1e-7);
  Tensor bad_labels = Tensor::from_data<std::int32_t>({2}, bad.data(), 2).value();
  auto r = loss.forward(ctx, logits.cref(), bad_labels.cref());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(r.error().message.find("label 4 at row 1"), std::string::npos);
  loss.eval();
  (void)loss.forward(ctx, logits.cref(), labels.cref()).value();
  EXPECT_FALSE(nn::CrossEntropyLoss().backward().ok());  // no training-mode forward yet
}

TEST(Linear, ShapeAndDeviceErrors) {
  Context ctx = Context::cpu();
  auto linear = nn::Linear::create(4, 3).value();
  Tensor x = Tensor::zeros({2, 5}).value();
  auto r = linear.forward(ctx, x.cref());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::shape_mismatch);
  EXPECT_EQ(r.error().op, "Linear::forward");
  EXPECT_FALSE(nn::Linear::create(0, 3).ok());
  Tensor dy = Tensor::zeros({2, 3}).value();
  EXPECT_FALSE(linear.backward(ctx, dy.cref()).ok());  // before forward
  // An f64 input into an f32 layer names the operand and both dtypes.
  Tensor xd = Tensor::zeros({2, 4}, DType::f64).value();
  auto d = linear.forward(ctx, xd.cref());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().op, "gemm");
  EXPECT_NE(d.error().message.find("f64"), std::string::npos) << d.error().to_string();
}

TEST(Mlp, FloatMatchesDoubleOracle) {
  // The float network (fast GEMM) against the same network in double (scalar reference).
  Context ctx = Context::cpu();
  auto f = models::make_mlp(784, {128, 64}, 10, 42).value();
  auto d = models::make_mlp(784, {128, 64}, 10, 42, DType::f64).value();
  Tensor xd = random_tensor({32, 784}, 3, 0.5);
  Tensor xf = Tensor::empty({32, 784}).value();
  for (std::int64_t i = 0; i < xd.numel(); ++i) xf.data<float>()[i] = static_cast<float>(xd.data<double>()[i]);
  for (std::int64_t i = 0; i < xd.numel(); ++i) xd.data<double>()[i] = xf.data<float>()[i];
  auto pf = f.parameters(), pd = d.parameters();
  for (std::size_t k = 0; k < pf.size(); ++k)  // identical starting weights (float-rounded)
    for (std::int64_t i = 0; i < pf[k].value->numel(); ++i) pd[k].value->data<double>()[i] = pf[k].value->data<float>()[i];
  auto yf = f.forward(ctx, xf.cref()).value().mat<float>().value();
  auto yd = d.forward(ctx, xd.cref()).value().mat<double>().value();
  for (std::int64_t i = 0; i < 32; ++i)
    for (std::int64_t j = 0; j < 10; ++j) EXPECT_NEAR(yf(i, j), yd(i, j), 1e-5 * (1 + std::fabs(yd(i, j))));
}

TEST(ParameterStore, FlatLayoutAliasesAndMovesValues) {
  auto mlp = models::make_mlp(6, {5}, 3, 9).value();
  auto params = mlp.parameters();
  std::vector<std::vector<float>> before;
  for (auto& p : params) before.emplace_back(p.value->data<float>(), p.value->data<float>() + p.value->numel());
  auto store = nn::ParameterStore::create(params).value();
  const float* base = store.values().ptr<float>();
  for (std::size_t i = 0; i < params.size(); ++i) {
    EXPECT_EQ(params[i].value->data<float>(), base + store.offset(i)) << params[i].name;
    EXPECT_EQ(store.offset(i) % nn::ParameterStore::kAlignElements, 0);
    EXPECT_TRUE(params[i].value->shares_storage());
    for (std::int64_t k = 0; k < params[i].value->numel(); ++k)
      EXPECT_EQ(params[i].value->data<float>()[k], before[i][static_cast<std::size_t>(k)]);
  }
  // The model's own tensors are the aliases (the list points at them).
  auto& l0 = dynamic_cast<nn::Linear&>(mlp[0]);
  EXPECT_EQ(l0.weight().data<float>(), base);
  // Moving to a device this build lacks fails and changes nothing.
  if (!cuda::compiled_with_cuda()) {
    auto moved = store.to(Device::cuda(0));
    ASSERT_FALSE(moved.ok());
    EXPECT_EQ(moved.error().code, ErrorCode::device_unavailable);
    EXPECT_EQ(l0.weight().data<float>(), base);
  }
}
