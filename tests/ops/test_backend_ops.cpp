// The backend-ops suite (in the spirit of ggml's test-backend-ops): every op of ops/ on every
// backend this build and machine have, against the f64 reference, on odd sizes and strided views;
// backward of every op that has one against central finite differences in double. The same file is
// compiled into test_ops (CPU build: the cuda cases skip, saying why) and into test_cuda (linked with
// the CUDA backend: they run wherever cudaGetDeviceCount finds a GPU).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "ferrite/backend/cpu/reference/nn_ops.hpp"
#include "ferrite/backend/devices.hpp"
#include "ferrite/core/rng.hpp"
#include "ferrite/ops/activation.hpp"
#include "ferrite/ops/complex.hpp"
#include "ferrite/ops/batch_conv.hpp"
#include "ferrite/ops/batch_norm.hpp"
#include "ferrite/ops/conv.hpp"
#include "ferrite/ops/norm.hpp"
#include "ferrite/ops/pool.hpp"
#include "ferrite/ops/fill.hpp"
#include "ferrite/ops/gemm.hpp"
#include "ferrite/ops/index.hpp"
#include "ferrite/ops/loss.hpp"
#include "ferrite/ops/optimizer.hpp"
#include "ferrite/ops/reduce.hpp"
#include "ferrite/ops/step.hpp"
#include "ferrite/optim/clip.hpp"
#include "ferrite/optim/reference.hpp"

using namespace ferrite;

namespace {

// Random normal f64 host tensor.
Tensor randn64(Shape shape, std::uint64_t stream, double scale = 1.0) {
  auto t = Tensor::empty(shape, DType::f64).value();
  Philox rng(5, stream);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = scale * rng.normal(static_cast<std::uint64_t>(i));
  return t;
}
// The f64 tensor rounded to f32 (the backends' input) — and the f64 tensor replaced by exactly
// those values, so that reference and backend start from the same numbers.
Tensor to_f32(Tensor& t64) {
  auto t = Tensor::empty(t64.shape(), DType::f32).value();
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    t.data<float>()[i] = static_cast<float>(t64.data<double>()[i]);
    t64.data<double>()[i] = t.data<float>()[i];
  }
  return t;
}
std::vector<double> to_host(const Tensor& t) {
  Tensor h = t.to(Device::cpu()).value();
  std::vector<double> v(static_cast<std::size_t>(h.numel()));
  for (std::int64_t i = 0; i < h.numel(); ++i)
    v[static_cast<std::size_t>(i)] = h.dtype() == DType::f64 ? h.data<double>()[i] : h.data<float>()[i];
  return v;
}
void expect_close(const std::vector<double>& got, const std::vector<double>& want, double rtol, double atol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], atol + rtol * std::fabs(want[i])) << what << " [" << i << "]";
}

const std::vector<std::pair<std::int64_t, std::int64_t>> kSizes{{1, 1}, {1, 17}, {3, 10}, {7, 33}, {32, 128}, {33, 65}, {100, 3}, {1031, 40}, {4096, 10}};

}  // namespace

class BackendOps : public ::testing::TestWithParam<Device> {
 protected:
  void SetUp() override {
    const Device d = GetParam();
    const Status ok = check_device(d);
    if (!ok.ok()) GTEST_SKIP() << "skipped: " << ok.error().to_string();
    ctx_ = std::make_unique<Context>(Context::create(d).value());
  }
  Context& ctx() { return *ctx_; }
  Device device() const { return GetParam(); }
  // f32 on the backend, from an f64 host tensor (rounded in place, see to_f32).
  Tensor up(Tensor& t64) { return to_f32(t64).to(device()).value(); }
  Tensor up_i32(const std::vector<std::int32_t>& v) {
    return Tensor::from_data<std::int32_t>({static_cast<std::int64_t>(v.size())}, v.data(),
                                           static_cast<std::int64_t>(v.size()), device())
        .value();
  }
  Context& ref_ctx() { return ref_ctx_; }
  Status sync() { return ctx().synchronize(); }

 private:
  std::unique_ptr<Context> ctx_;
  Context ref_ctx_ = Context::cpu();
};

INSTANTIATE_TEST_SUITE_P(AllBackends, BackendOps, ::testing::Values(Device::cpu(), Device::cuda(0)),
                         [](const auto& info) { return info.param.is_cpu() ? std::string("cpu") : std::string("cuda0"); });

TEST_P(BackendOps, GemmAllTransposesOddSizesAndViews) {
  // (m, n, k) odd and tiny/large, all four transposes, beta 0 and 1, operands given as transposed
  // views (strides [1, ld]) as well as stored.
  for (auto [m, n, k] : std::vector<std::tuple<int, int, int>>{{1, 1, 1}, {3, 5, 7}, {17, 33, 9}, {64, 48, 130}, {129, 65, 31}})
    for (Trans ta : {Trans::no, Trans::yes})
      for (Trans tb : {Trans::no, Trans::yes})
        for (double beta : {0.0, 1.0})
          for (bool views : {false, true}) {
            // Stored shapes for op(A) [m, k], op(B) [k, n]; `views` stores the other way and passes a transpose.
            const bool sa = (ta == Trans::yes) != views, sb = (tb == Trans::yes) != views;
            Tensor a64 = randn64(sa ? Shape{k, m} : Shape{m, k}, 1), b64 = randn64(sb ? Shape{n, k} : Shape{k, n}, 2);
            Tensor c64 = randn64({m, n}, 3);
            Tensor a = up(a64), b = up(b64), c = up(c64);
            auto aref = views ? a.cref().transpose() : a.cref();
            auto bref = views ? b.cref().transpose() : b.cref();
            auto a64ref = views ? a64.cref().transpose() : a64.cref();
            auto b64ref = views ? b64.cref().transpose() : b64.cref();
            ASSERT_TRUE(ops::gemm(ctx(), ta, tb, 0.5, aref, bref, beta, c.ref()).ok());
            ASSERT_TRUE(ops::gemm(ref_ctx(), ta, tb, 0.5, a64ref, b64ref, beta, c64.ref()).ok());
            ASSERT_TRUE(sync().ok());
            expect_close(to_host(c), to_host(c64), 1e-5, 1e-5 * std::sqrt(double(k)),
                         "gemm m" + std::to_string(m) + " n" + std::to_string(n) + " k" + std::to_string(k));
          }
}

TEST_P(BackendOps, GemmRowSliceOfALargerMatrix) {
  // A = rows 3..9 of a [12, 20] matrix: ld 20 > cols.
  Tensor big64 = randn64({12, 20}, 4), b64 = randn64({20, 6}, 5), c64 = Tensor::zeros({7, 6}, DType::f64).value();
  Tensor big = up(big64), b = up(b64), c = Tensor::zeros({7, 6}, DType::f32, device()).value();
  ASSERT_TRUE(ops::gemm(ctx(), Trans::no, Trans::no, 1.0, big.cref().rows(3, 7), b.cref(), 0.0, c.ref()).ok());
  ASSERT_TRUE(ops::gemm(ref_ctx(), Trans::no, Trans::no, 1.0, big64.cref().rows(3, 7), b64.cref(), 0.0, c64.ref()).ok());
  ASSERT_TRUE(sync().ok());
  expect_close(to_host(c), to_host(c64), 1e-5, 1e-5, "gemm row slice");
}

TEST_P(BackendOps, BiasActivationAndReluBackward) {
  for (auto [rows, cols] : kSizes)
    for (Activation act : {Activation::none, Activation::relu})
      for (bool with_bias : {false, true}) {
        Tensor y64 = randn64({rows, cols}, 6), bias64 = randn64({cols}, 7);
        Tensor y = up(y64), bias = up(bias64);
        Tensor oracle = y64.clone().value();
        ASSERT_TRUE(ops::bias_activation(ctx(), y.ref(), with_bias ? bias.cref() : ConstTensorRef{}, act).ok());
        ASSERT_TRUE(ops::bias_activation(ref_ctx(), y64.ref(), with_bias ? bias64.cref() : ConstTensorRef{}, act).ok());
        ASSERT_TRUE(sync().ok());
        expect_close(to_host(y), to_host(y64), 1e-6, 1e-6, "bias_activation");  // one rounding of the add
        // And the f64 reference against the independent scalar oracle.
        cpu::reference::bias_activation<double>(oracle.mat<double>(), with_bias ? bias64.data<double>() : nullptr,
                                                act == Activation::relu);
        expect_close(to_host(y64), to_host(oracle), 0, 0, "bias_activation f64 vs oracle");
      }
  for (auto [rows, cols] : kSizes) {
    Tensor y64 = randn64({rows, cols}, 8), dy64 = randn64({rows, cols}, 9);
    Tensor y = up(y64), dy = up(dy64), dx = Tensor::empty({rows, cols}, DType::f32, device()).value();
    Tensor dx64 = Tensor::empty({rows, cols}, DType::f64).value();
    ASSERT_TRUE(ops::relu_backward(ctx(), y.cref(), dy.cref(), dx.ref()).ok());
    ASSERT_TRUE(ops::relu_backward(ref_ctx(), y64.cref(), dy64.cref(), dx64.ref()).ok());
    ASSERT_TRUE(sync().ok());
    expect_close(to_host(dx), to_host(dx64), 0, 0, "relu_backward (exact)");
  }
}

TEST_P(BackendOps, ColumnSumsOverwriteAndAccumulate) {
  for (auto [rows, cols] : kSizes)
    for (bool accumulate : {false, true}) {
      Tensor x64 = randn64({rows, cols}, 10), out64 = randn64({cols}, 11);
      Tensor x = up(x64), out = up(out64);
      ASSERT_TRUE(ops::column_sums(ctx(), x.cref(), out.ref(), accumulate).ok());
      ASSERT_TRUE(ops::column_sums(ref_ctx(), x64.cref(), out64.ref(), accumulate).ok());
      ASSERT_TRUE(sync().ok());
      // float accumulation over `rows` terms vs double.
      expect_close(to_host(out), to_host(out64), 4 * 1.2e-7 * double(rows), 4 * 1.2e-7 * double(rows), "column_sums");
    }
}

TEST_P(BackendOps, SoftmaxCrossEntropyLossProbsAndGradient) {
  for (auto [rows, cols] : kSizes) {
    Tensor logits64 = randn64({rows, cols}, 12, 3.0);
    std::vector<std::int32_t> labels(static_cast<std::size_t>(rows));
    for (std::int64_t i = 0; i < rows; ++i) labels[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 7) % cols);
    Tensor logits = up(logits64), lab = up_i32(labels);
    Tensor lab64 = Tensor::from_data<std::int32_t>({rows}, labels.data(), rows).value();
    Tensor loss = Tensor::zeros({1}, DType::f32, device()).value(), loss64 = Tensor::zeros({1}, DType::f64).value();
    Tensor p = Tensor::empty({rows, cols}, DType::f32, device()).value(), p64 = Tensor::empty({rows, cols}, DType::f64).value();
    Tensor d = Tensor::empty({rows, cols}, DType::f32, device()).value(), d64 = Tensor::empty({rows, cols}, DType::f64).value();
    ASSERT_TRUE(ops::softmax_cross_entropy(ctx(), logits.cref(), lab.cref(), loss.ref(), p.ref(), d.ref()).ok());
    ASSERT_TRUE(ops::softmax_cross_entropy(ref_ctx(), logits64.cref(), lab64.cref(), loss64.ref(), p64.ref(), d64.ref()).ok());
    ASSERT_TRUE(sync().ok());
    expect_close(to_host(loss), to_host(loss64), 1e-5, 1e-6, "loss");
    expect_close(to_host(p), to_host(p64), 1e-5, 1e-6, "probs");
    expect_close(to_host(d), to_host(d64), 1e-5, 1e-7, "dlogits");
    // The f64 reference against the independent scalar oracle.
    Tensor p_or = Tensor::empty({rows, cols}, DType::f64).value();
    const double oracle = cpu::reference::softmax_cross_entropy<double>(logits64.mat<double>(), labels.data(), p_or.mat<double>());
    EXPECT_NEAR(to_host(loss64)[0], oracle, 1e-12 * (1 + std::fabs(oracle)));
  }
}

TEST_P(BackendOps, GatherRowsAndLabels) {
  Tensor src64 = randn64({13, 7}, 13);
  Tensor src = up(src64);
  std::vector<std::int32_t> idx{12, 0, 5, 5, 3}, labels{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2};
  Tensor index = up_i32(idx), lab = up_i32(labels);
  Tensor dst = Tensor::empty({5, 7}, DType::f32, device()).value();
  Tensor dlab = Tensor::empty({5}, DType::i32, device()).value();
  ASSERT_TRUE(ops::gather_rows(ctx(), src.cref(), index.cref(), dst.ref()).ok());
  ASSERT_TRUE(ops::gather_labels(ctx(), lab.cref(), index.cref(), dlab.ref()).ok());
  ASSERT_TRUE(sync().ok());
  const auto got = to_host(dst);
  for (int r = 0; r < 5; ++r)
    for (int c = 0; c < 7; ++c)
      ASSERT_EQ(got[static_cast<std::size_t>(r * 7 + c)], src64.data<double>()[idx[static_cast<std::size_t>(r)] * 7 + c]);
  Tensor hl = dlab.to(Device::cpu()).value();
  for (int r = 0; r < 5; ++r) EXPECT_EQ(hl.data<std::int32_t>()[r], labels[static_cast<std::size_t>(idx[static_cast<std::size_t>(r)])]);
  if (device().is_cpu()) {  // indices are checked on the host
    std::vector<std::int32_t> bad{0, 13};
    Tensor b = up_i32(bad);
    Tensor d2 = Tensor::empty({2, 7}, DType::f32).value();
    auto s = ops::gather_rows(ctx(), src.cref(), b.cref(), d2.ref());
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("index 13 at position 1"), std::string::npos) << s.error().to_string();
  }
}

// Per-step operands: batch `step` of an epoch order and entry `step` of a loss table, given by the
// host number or (CUDA graph mode) by the device step counter — the same numbers either way.
TEST_P(BackendOps, StepOperandsFollowTheHostStepOrTheDeviceCounter) {
  Tensor src64 = randn64({13, 8}, 15);
  Tensor src = up(src64);
  std::vector<std::int32_t> order{3, 12, 0, 7, 7, 1, 9, 4, 11, 2}, labels{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2};
  Tensor ord = up_i32(order), lab = up_i32(labels);
  Tensor logits64 = randn64({3, 5}, 16);
  Tensor logits = up(logits64);
  Tensor three = up_i32({1, 4, 0});
  for (int mode = 0; mode < (device().is_cuda() ? 2 : 1); ++mode) {
    if (mode == 1) ASSERT_TRUE(ctx().enable_step_counter().ok());
    ASSERT_TRUE(ops::set_step_counter(ctx(), 2).ok());  // batch 2 of 3 rows: order[6..9)
    Tensor x = Tensor::empty({3, 8}, DType::f32, device()).value();
    Tensor y = Tensor::empty({3}, DType::i32, device()).value();
    ASSERT_TRUE(ops::gather_batch(ctx(), src.cref(), lab.cref(), ord.cref(), 2, 3, x.ref(), y.ref()).ok());
    Tensor losses = Tensor::zeros({4}, DType::f32, device()).value();
    ASSERT_TRUE(ops::softmax_cross_entropy(ctx(), logits.cref(), three.cref(), losses.ref(), {}, {}, 2).ok());
    ASSERT_TRUE(ops::advance_step_counter(ctx()).ok());
    ASSERT_TRUE(sync().ok());
    const auto got = to_host(x);
    const Tensor hy = y.to(Device::cpu()).value();
    for (int r = 0; r < 3; ++r) {
      const std::int32_t from = order[static_cast<std::size_t>(6 + r)];
      EXPECT_EQ(hy.data<std::int32_t>()[r], labels[static_cast<std::size_t>(from)]) << "mode " << mode;
      for (int c = 0; c < 8; ++c)
        ASSERT_EQ(got[static_cast<std::size_t>(r * 8 + c)], src64.data<double>()[from * 8 + c]) << "mode " << mode;
    }
    Tensor one = Tensor::zeros({1}, DType::f32, device()).value();
    ASSERT_TRUE(ops::softmax_cross_entropy(ctx(), logits.cref(), three.cref(), one.ref()).ok());
    ASSERT_TRUE(sync().ok());
    const auto table = to_host(losses);
    EXPECT_EQ(table[2], to_host(one)[0]) << "mode " << mode;
    EXPECT_EQ(table[0], 0.0);
    EXPECT_EQ(table[3], 0.0);
    if (mode == 1) {
      std::int64_t counter = -1;
      ASSERT_TRUE(ops::copy(ctx(), ConstTensorRef(ctx().step_counter(), DType::i64, device(), {1}),
                            TensorRef(&counter, DType::i64, Device::cpu(), {1})).ok());
      ASSERT_TRUE(sync().ok());
      EXPECT_EQ(counter, 3);
      ctx().disable_step_counter();
    }
  }
  // Bad steps are refused on the host, naming the operands.
  Tensor x = Tensor::empty({3, 8}, DType::f32, device()).value();
  Tensor y = Tensor::empty({3}, DType::i32, device()).value();
  auto s = ops::gather_batch(ctx(), src.cref(), lab.cref(), ord.cref(), 3, 3, x.ref(), y.ref());  // rows 9..12 of 10
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().to_string().find("step 3, per_step 3"), std::string::npos) << s.error().to_string();
  Tensor losses = Tensor::zeros({2}, DType::f32, device()).value();
  s = ops::softmax_cross_entropy(ctx(), logits.cref(), three.cref(), losses.ref(), {}, {}, 2);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().to_string().find("loss_step 2"), std::string::npos) << s.error().to_string();
}

TEST_P(BackendOps, FillAndCopy) {
  Tensor t = Tensor::empty({5, 3}, DType::f32, device()).value();
  ASSERT_TRUE(ops::fill(ctx(), t.ref(), 2.5).ok());
  ASSERT_TRUE(sync().ok());
  for (double v : to_host(t)) ASSERT_EQ(v, 2.5);
  // Host -> device -> host through copy on the context's stream.
  Tensor h64 = randn64({4, 6}, 14);
  Tensor h = to_f32(h64);
  Tensor dev = Tensor::empty({4, 6}, DType::f32, device()).value(), back = Tensor::empty({4, 6}).value();
  ASSERT_TRUE(ops::copy(ctx(), h.cref(), dev.ref()).ok());
  ASSERT_TRUE(ops::copy(ctx(), dev.cref(), back.ref()).ok());
  ASSERT_TRUE(sync().ok());
  expect_close(to_host(back), to_host(h64), 0, 0, "round trip");
  // A strided (transposed) host copy.
  Tensor tr = Tensor::empty({6, 4}).value();
  ASSERT_TRUE(ops::copy(ref_ctx(), h.cref().transpose(), tr.ref()).ok());
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 4; ++j) ASSERT_EQ(tr.data<float>()[i * 4 + j], h.data<float>()[j * 6 + i]);
}

TEST_P(BackendOps, AdamAndSgdUpdatesEqualTheScalarOracle) {
  const std::int64_t n = 1037 + 3;  // a multiple of 4 (the CUDA kernels' float4); odd for the SIMD tail
  for (int config = 0; config < 4; ++config) {
    optim::AdamOptions o;
    o.lr = 1e-2;
    o.weight_decay = config == 1 || config == 2 ? 0.1 : 0.0;
    o.amsgrad = config == 3;
    const bool decoupled = config == 2;
    Tensor p64 = randn64({n}, 20), g64 = randn64({n}, 21);
    Tensor p = up(p64), g = up(g64);
    Tensor m = Tensor::zeros({n}, DType::f32, device()).value(), v = Tensor::zeros({n}, DType::f32, device()).value();
    Tensor x = Tensor::zeros({n}, DType::f32, device()).value();
    std::vector<float> rp(static_cast<std::size_t>(n)), rg(rp.size()), rm(rp.size(), 0.f), rv(rp.size(), 0.f), rx(rp.size(), 0.f);
    for (std::int64_t i = 0; i < n; ++i) rp[static_cast<std::size_t>(i)] = static_cast<float>(p64.data<double>()[i]),
                                         rg[static_cast<std::size_t>(i)] = static_cast<float>(g64.data<double>()[i]);
    for (std::int64_t step = 1; step <= 3; ++step) {
      const auto c = optim::detail::adam_coefficients(o, o.lr, decoupled, step);
      ASSERT_TRUE(ops::adam_update(ctx(), p.ref(), g.cref(), m.ref(), v.ref(), o.amsgrad ? x.ref() : TensorRef{}, c).ok());
      optim::reference::adam_step(rp.data(), rg.data(), rm.data(), rv.data(), rx.data(), n, o, o.lr, decoupled, step);
    }
    ASSERT_TRUE(sync().ok());
    std::vector<double> want(rp.begin(), rp.end());
    expect_close(to_host(p), want, 0, 0, "adam config " + std::to_string(config) + " (bit-identical)");
  }
  for (int config = 0; config < 3; ++config) {
    optim::SGDOptions o;
    o.lr = 0.05;
    o.momentum = config >= 1 ? 0.9 : 0.0;
    o.nesterov = config == 2;
    o.weight_decay = 5e-4;
    Tensor p64 = randn64({n}, 22), g64 = randn64({n}, 23);
    Tensor p = up(p64), g = up(g64), buf = Tensor::zeros({n}, DType::f32, device()).value();
    std::vector<float> rp(static_cast<std::size_t>(n)), rg(rp.size()), rb(rp.size(), 0.f);
    for (std::int64_t i = 0; i < n; ++i) rp[static_cast<std::size_t>(i)] = static_cast<float>(p64.data<double>()[i]),
                                         rg[static_cast<std::size_t>(i)] = static_cast<float>(g64.data<double>()[i]);
    for (int step = 0; step < 3; ++step) {
      const auto c = optim::detail::sgd_coefficients(o, o.lr, step == 0);
      ASSERT_TRUE(ops::sgd_update(ctx(), p.ref(), g.cref(), buf.ref(), c).ok());
      optim::reference::sgd_step(rp.data(), rg.data(), rb.data(), n, o, o.lr, step == 0);
    }
    ASSERT_TRUE(sync().ok());
    std::vector<double> want(rp.begin(), rp.end());
    expect_close(to_host(p), want, 0, 0, "sgd config " + std::to_string(config) + " (bit-identical)");
  }
}

TEST_P(BackendOps, ErrorsNameTheOpOperandsAndDtypes) {
  Tensor a = Tensor::zeros({2, 3}, DType::f32, device()).value(), b = Tensor::zeros({4, 2}, DType::f32, device()).value();
  Tensor c = Tensor::zeros({2, 2}, DType::f32, device()).value();
  auto s = ops::gemm(ctx(), Trans::no, Trans::no, 1.0, a.cref(), b.cref(), 0.0, c.ref());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::shape_mismatch);
  EXPECT_EQ(s.error().op, "gemm");
  EXPECT_NE(s.error().shapes.find("[2, 3]"), std::string::npos) << s.error().to_string();
  // An (op, device, dtype) without a kernel: unsupported, never a crash.
  Tensor i = Tensor::zeros({2, 2}, DType::i32, device()).value();
  auto u = ops::bias_activation(ctx(), i.ref(), {}, Activation::relu);
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.error().code, ErrorCode::unsupported);
  EXPECT_NE(u.error().message.find("i32"), std::string::npos) << u.error().to_string();
  // An operand on another device than the context.
  Tensor host = Tensor::zeros({2, 2}).value();
  if (device().is_cuda()) {
    auto d = ops::fill(ctx(), host.ref(), 1.0);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().code, ErrorCode::invalid_argument);
  }
}

TEST_P(BackendOps, SumOfSquaresAndClipByNorm) {
  for (std::int64_t n : {1, 255, 257, 4099}) {
    Tensor x64 = randn64({n}, 60);
    Tensor x = up(x64);
    double want = 0;
    for (std::int64_t i = 0; i < n; ++i) want += x64.data<double>()[i] * x64.data<double>()[i];
    Tensor s = Tensor::zeros({1}, DType::f64, device()).value();
    ASSERT_TRUE(ops::sum_of_squares(ctx(), x.cref(), s.ref()).ok());
    ASSERT_TRUE(sync().ok());
    expect_close(to_host(s), {want}, 1e-12, 0, "sum_of_squares");
    // max_norm above the norm: unchanged; below: scaled to max_norm (up to the 1e-6 and a rounding).
    const double norm = std::sqrt(want);
    ASSERT_TRUE(ops::clip_by_norm(ctx(), x.ref(), s.cref(), 2 * norm + 1).ok());
    ASSERT_TRUE(sync().ok());
    std::vector<double> same(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) same[static_cast<std::size_t>(i)] = x64.data<double>()[i];
    expect_close(to_host(x), same, 0, 0, "clip above the norm");
    ASSERT_TRUE(ops::clip_by_norm(ctx(), x.ref(), s.cref(), 0.5 * norm).ok());
    Tensor s2 = Tensor::zeros({1}, DType::f64, device()).value();
    ASSERT_TRUE(ops::sum_of_squares(ctx(), x.cref(), s2.ref()).ok());
    ASSERT_TRUE(sync().ok());
    EXPECT_NEAR(std::sqrt(to_host(s2)[0]), 0.5 * norm, 1e-5 * norm) << n;
  }
}

// ---- the convolution family (planar [C, H, W] images of one sample) ------------------------------

TEST_P(BackendOps, Conv2dEveryAlgorithmOddShapes) {
  // k 1 (with bias) and 3 (with and without), odd H, W, Cin, Cout; 3x3 by the direct path and by
  // Winograd (on CUDA through the transformed weights), against the f64 reference.
  for (auto [cin, cout, H, W] : std::vector<std::tuple<int, int, int, int>>{{1, 1, 1, 1}, {3, 5, 7, 9}, {8, 6, 12, 10}, {17, 9, 5, 13}})
    for (int k : {1, 3})
      for (bool with_bias : {false, true})
        for (ConvAlgorithm algo : {ConvAlgorithm::direct, ConvAlgorithm::winograd}) {
          if (k == 1 && algo == ConvAlgorithm::winograd) continue;
          Tensor x64 = randn64({cin, H, W}, 40), w64 = randn64({cout, cin, k, k}, 41, 0.3), b64 = randn64({cout}, 42);
          Tensor x = up(x64), w = up(w64), b = up(b64);
          Tensor y = Tensor::empty({cout, H, W}, DType::f32, device()).value(), y64 = Tensor::empty({cout, H, W}, DType::f64).value();
          Tensor u;
          if (k == 3 && device().is_cuda()) u = ops::winograd_weights(ctx(), w).value();
          ASSERT_TRUE(ops::conv2d(ctx(), x.cref(), w.cref(), with_bias ? b.cref() : ConstTensorRef{}, y.ref(), algo, u.cref()).ok());
          ASSERT_TRUE(ops::conv2d(ref_ctx(), x64.cref(), w64.cref(), with_bias ? b64.cref() : ConstTensorRef{}, y64.ref()).ok());
          ASSERT_TRUE(sync().ok());
          expect_close(to_host(y), to_host(y64), 2e-5, 2e-5 * std::sqrt(double(cin * k * k)),
                       "conv2d k" + std::to_string(k) + (algo == ConvAlgorithm::winograd ? " winograd" : " direct"));
        }
}

TEST_P(BackendOps, ConvTransposeK2S2) {
  for (auto [cin, cout, H, W] : std::vector<std::tuple<int, int, int, int>>{{1, 1, 1, 1}, {6, 3, 5, 7}, {16, 8, 4, 4}}) {
    Tensor x64 = randn64({cin, H, W}, 43), w64 = randn64({cin, cout, 2, 2}, 44, 0.3), b64 = randn64({cout}, 45);
    Tensor x = up(x64), w = up(w64), b = up(b64);
    Tensor y = Tensor::empty({cout, 2 * H, 2 * W}, DType::f32, device()).value();
    Tensor y64 = Tensor::empty({cout, 2 * H, 2 * W}, DType::f64).value();
    ASSERT_TRUE(ops::conv_transpose2d_k2s2(ctx(), x.cref(), w.cref(), b.cref(), y.ref()).ok());
    ASSERT_TRUE(ops::conv_transpose2d_k2s2(ref_ctx(), x64.cref(), w64.cref(), b64.cref(), y64.ref()).ok());
    ASSERT_TRUE(sync().ok());
    expect_close(to_host(y), to_host(y64), 1e-5, 1e-5 * std::sqrt(double(cin)), "conv_transpose2d_k2s2");
  }
}

TEST_P(BackendOps, GroupNormWithEluInPlaceAndNot) {
  for (auto [C, groups, H, W] : std::vector<std::tuple<int, int, int, int>>{{4, 2, 3, 5}, {12, 3, 16, 16}, {32, 8, 7, 9}, {6, 6, 1, 1}})
    for (NormActivation act : {NormActivation::none, NormActivation::elu})
      for (bool in_place : {false, true}) {
        // A large common offset per group: the statistics must not cancel (computed in double).
        Tensor x64 = randn64({C, H, W}, 46);
        for (std::int64_t i = 0; i < x64.numel(); ++i) x64.data<double>()[i] += 100.0;
        Tensor g64 = randn64({C}, 47), b64 = randn64({C}, 48);
        Tensor x = up(x64), g = up(g64), b = up(b64);
        Tensor y = Tensor::empty({C, H, W}, DType::f32, device()).value(), y64 = Tensor::empty({C, H, W}, DType::f64).value();
        TensorRef out = in_place ? x.ref() : y.ref();
        ASSERT_TRUE(ops::group_norm(ctx(), x.cref(), groups, g.cref(), b.cref(), 1e-5, act, out).ok());
        ASSERT_TRUE(ops::group_norm(ref_ctx(), x64.cref(), groups, g64.cref(), b64.cref(), 1e-5, act, y64.ref()).ok());
        ASSERT_TRUE(sync().ok());
        expect_close(to_host(in_place ? x : y), to_host(y64), 1e-4, 1e-4, "group_norm");
      }
}

TEST_P(BackendOps, MaxPool2x2) {
  Tensor x64 = randn64({5, 6, 10}, 49);
  Tensor x = up(x64), y = Tensor::empty({5, 3, 5}, DType::f32, device()).value(), y64 = Tensor::empty({5, 3, 5}, DType::f64).value();
  ASSERT_TRUE(ops::maxpool2x2(ctx(), x.cref(), y.ref()).ok());
  ASSERT_TRUE(ops::maxpool2x2(ref_ctx(), x64.cref(), y64.ref()).ok());
  ASSERT_TRUE(sync().ok());
  expect_close(to_host(y), to_host(y64), 0, 0, "maxpool2x2 (exact)");
  Tensor odd = Tensor::empty({1, 3, 4}, DType::f32, device()).value(), small = Tensor::empty({1, 1, 2}, DType::f32, device()).value();
  EXPECT_EQ(ops::maxpool2x2(ctx(), odd.cref(), small.ref()).error().code, ErrorCode::shape_mismatch);
}

TEST_P(BackendOps, ComplexPackAndCellUpdate) {
  const std::int64_t H = 6, W = 5, d = 3;
  for (bool unitary : {false, true}) {
    Tensor psi64 = randn64({H, W, d, 2}, 50), o64 = randn64({2 * d, H, W}, 51, 0.1), b64 = randn64({2 * d}, 52, 0.1);
    Tensor psi = up(psi64), o = up(o64), b = up(b64);
    Tensor x = Tensor::empty({2 * d, H, W}, DType::f32, device()).value(), x64 = Tensor::empty({2 * d, H, W}, DType::f64).value();
    ASSERT_TRUE(ops::complex_pack_planar(ctx(), psi.cref(), x.ref()).ok());
    ASSERT_TRUE(ops::complex_pack_planar(ref_ctx(), psi64.cref(), x64.ref()).ok());
    ASSERT_TRUE(ops::complex_cell_update(ctx(), o.cref(), b.cref(), psi.ref(), unitary, 0.01).ok());
    ASSERT_TRUE(ops::complex_cell_update(ref_ctx(), o64.cref(), b64.cref(), psi64.ref(), unitary, 0.01).ok());
    ASSERT_TRUE(sync().ok());
    expect_close(to_host(x), to_host(x64), 0, 0, "complex_pack_planar (exact)");
    expect_close(to_host(psi), to_host(psi64), 1e-6, 1e-6, "complex_cell_update");
    // Every cell has norm 1 afterwards.
    const auto p = to_host(psi);
    for (std::int64_t cell = 0; cell < H * W; ++cell) {
      double n = 0;
      for (std::int64_t i = 0; i < 2 * d; ++i) n += p[static_cast<std::size_t>(cell * 2 * d + i)] * p[static_cast<std::size_t>(cell * 2 * d + i)];
      ASSERT_NEAR(std::sqrt(n), 1.0, 1e-6);
    }
  }
}

TEST(BackendOpsOptim, ClipGradNormOnAStoreMatchesTorchsFormula) {
  // Two hand-made gradients in a ParameterStore: total = sqrt(sum g^2); clipped to max_norm.
  Context ctx = Context::cpu();
  Tensor a = Tensor::zeros({3}).value(), ga = Tensor::zeros({3}).value(), b = Tensor::zeros({2, 2}).value(),
         gb = Tensor::zeros({2, 2}).value();
  nn::ParameterList params{{"a", &a, &ga, nullptr}, {"b", &b, &gb, nullptr}};
  auto store = nn::ParameterStore::create(params).value();
  const float g[] = {3, 0, 4, 1, 2, 2, 0};  // a: 3 0 4, b: 1 2 2 0 -> total sqrt(25 + 9) = sqrt(34)
  for (int i = 0; i < 3; ++i) ga.data<float>()[i] = g[i];
  for (int i = 0; i < 4; ++i) gb.data<float>()[i] = g[3 + i];
  const double total = optim::clip_grad_norm(ctx, store, 1.0).value();
  EXPECT_NEAR(total, std::sqrt(34.0), 1e-12);
  const float c = static_cast<float>(1.0 / (std::sqrt(34.0) + 1e-6));
  EXPECT_EQ(ga.data<float>()[0], 3.f * c);
  EXPECT_EQ(gb.data<float>()[2], 2.f * c);
  ASSERT_TRUE(ctx.begin_step().ok());
}

// ---- the batch family (channel-major x[C, N, H, W]): ResNet's convolutions, BatchNorm, pooling ----

namespace {
struct ConvCase {
  int cin, cout, n, h, w, k, stride, pad;
};
// Odd sizes, kernel 1 and 3, stride 1 and 2, with and without padding, and (64 channels at 32 x 32 x 3)
// more columns than one CPU band holds. 3x3 stride-1 cases with >= 4 channels run Winograd on the CPU
// (odd 7 x 9: tiles cut at the edge).
const std::vector<ConvCase> kConvCases{{1, 1, 1, 1, 1, 1, 1, 0}, {3, 5, 2, 7, 9, 3, 1, 1}, {4, 6, 3, 8, 8, 3, 2, 1},
                                       {5, 7, 2, 9, 7, 1, 2, 0}, {6, 4, 2, 5, 5, 1, 1, 0}, {3, 8, 2, 6, 7, 3, 2, 0},
                                       {16, 8, 3, 4, 4, 3, 1, 1}, {5, 6, 2, 7, 9, 3, 1, 1}, {64, 4, 3, 32, 32, 3, 1, 1}};
std::string conv_name(const ConvCase& c) {
  return fe_format("conv cin{} cout{} n{} {}x{} k{} s{} p{}", c.cin, c.cout, c.n, c.h, c.w, c.k, c.stride, c.pad);
}
std::int64_t out_size(int size, const ConvCase& c) { return (size + 2 * c.pad - c.k) / c.stride + 1; }
}  // namespace

TEST_P(BackendOps, Conv2dCnhwForwardDataAndWeightGradients) {
  for (const ConvCase& c : kConvCases) {
    const std::int64_t ho = out_size(c.h, c), wo = out_size(c.w, c);
    const Shape xs{c.cin, c.n, c.h, c.w}, ws{c.cout, c.cin, c.k, c.k}, ys{c.cout, c.n, ho, wo};
    Tensor x64 = randn64(xs, 60), w64 = randn64(ws, 61, 0.3), dy64 = randn64(ys, 62), dw64 = randn64(ws, 63);
    Tensor x = up(x64), w = up(w64), dy = up(dy64), dw = up(dw64);
    Tensor y = Tensor::empty(ys, DType::f32, device()).value(), y64 = Tensor::empty(ys, DType::f64).value();
    Tensor dx = Tensor::empty(xs, DType::f32, device()).value(), dx64 = Tensor::empty(xs, DType::f64).value();
    const double tol = 2e-5 * std::sqrt(double(c.cin * c.k * c.k));
    ASSERT_TRUE(ops::conv2d_cnhw(ctx(), x.cref(), w.cref(), c.stride, c.pad, y.ref()).ok());
    ASSERT_TRUE(ops::conv2d_cnhw(ref_ctx(), x64.cref(), w64.cref(), c.stride, c.pad, y64.ref()).ok());
    ASSERT_TRUE(ops::conv2d_cnhw_backward_data(ctx(), dy.cref(), w.cref(), c.stride, c.pad, dx.ref()).ok());
    ASSERT_TRUE(ops::conv2d_cnhw_backward_data(ref_ctx(), dy64.cref(), w64.cref(), c.stride, c.pad, dx64.ref()).ok());
    ASSERT_TRUE(sync().ok());
    expect_close(to_host(y), to_host(y64), 2e-5, tol, conv_name(c) + " forward");
    expect_close(to_host(dx), to_host(dx64), 2e-5, 2e-5 * std::sqrt(double(c.cout * c.k * c.k)), conv_name(c) + " dx");
    // accumulate: dx += the gradient again (the residual block's second path), = 2 dx.
    ASSERT_TRUE(ops::conv2d_cnhw_backward_data(ctx(), dy.cref(), w.cref(), c.stride, c.pad, dx.ref(), true).ok());
    ASSERT_TRUE(sync().ok());
    {
      auto twice = to_host(dx64);
      for (auto& v : twice) v *= 2;
      expect_close(to_host(dx), twice, 2e-5, 4e-5 * std::sqrt(double(c.cout * c.k * c.k)), conv_name(c) + " dx accumulated");
    }
    for (double beta : {0.0, 1.0}) {  // overwrite, then accumulate into the previous gradient
      ASSERT_TRUE(ops::conv2d_cnhw_backward_weight(ctx(), x.cref(), dy.cref(), c.stride, c.pad, beta, dw.ref()).ok());
      ASSERT_TRUE(ops::conv2d_cnhw_backward_weight(ref_ctx(), x64.cref(), dy64.cref(), c.stride, c.pad, beta, dw64.ref()).ok());
      ASSERT_TRUE(sync().ok());
      expect_close(to_host(dw), to_host(dw64), 2e-5, 2e-5 * std::sqrt(double(c.n * ho * wo)),
                   conv_name(c) + " dw beta " + std::to_string(beta));
    }
  }
  // Shapes are checked: y of the wrong spatial size names both shapes.
  Tensor x = Tensor::zeros({3, 2, 8, 8}, DType::f32, device()).value(), w = Tensor::zeros({4, 3, 3, 3}, DType::f32, device()).value();
  Tensor bad = Tensor::empty({4, 2, 8, 8}, DType::f32, device()).value();
  const Status st = ops::conv2d_cnhw(ctx(), x.cref(), w.cref(), 2, 1, bad.ref());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::shape_mismatch);
  EXPECT_NE(st.error().to_string().find("y must be [4, 2, 4, 4]"), std::string::npos) << st.error().to_string();
}

TEST_P(BackendOps, BatchNormTrainEvalAndBackwardWithFusedAddRelu) {
  for (auto [C, N, H, W] : std::vector<std::tuple<int, int, int, int>>{{1, 2, 1, 1}, {3, 2, 5, 7}, {8, 4, 4, 4}, {5, 3, 17, 9}})
    for (bool with_residual : {false, true})
      for (bool relu : {false, true}) {
        const Shape xs{C, N, H, W}, cs{C};
        const std::string what = fe_format("batch_norm C{} N{} {}x{} residual {} relu {}", C, N, H, W, with_residual, relu);
        Tensor x64 = randn64(xs, 64), g64 = randn64(cs, 65), b64 = randn64(cs, 66), r64 = randn64(xs, 67);
        for (std::int64_t i = 0; i < x64.numel(); ++i) x64.data<double>()[i] = 3.0 + 2.0 * x64.data<double>()[i];
        Tensor rm64 = randn64(cs, 68, 0.1), rv64 = randn64(cs, 69, 0.1);
        for (std::int64_t i = 0; i < C; ++i) rv64.data<double>()[i] = 1.0 + std::fabs(rv64.data<double>()[i]);
        Tensor x = up(x64), g = up(g64), b = up(b64), r = up(r64), rm = up(rm64), rv = up(rv64);
        Tensor y = Tensor::empty(xs, DType::f32, device()).value(), y64 = Tensor::empty(xs, DType::f64).value();
        Tensor sm = Tensor::empty(cs, DType::f32, device()).value(), sr = Tensor::empty(cs, DType::f32, device()).value();
        Tensor sm64 = Tensor::empty(cs, DType::f64).value(), sr64 = Tensor::empty(cs, DType::f64).value();
        const ConstTensorRef res = with_residual ? r.cref() : ConstTensorRef{}, res64 = with_residual ? r64.cref() : ConstTensorRef{};
        ASSERT_TRUE(ops::batch_norm_train(ctx(), x.cref(), g.cref(), b.cref(), 1e-5, 0.1, rm.ref(), rv.ref(), sm.ref(), sr.ref(),
                                          res, relu, y.ref()).ok());
        ASSERT_TRUE(ops::batch_norm_train(ref_ctx(), x64.cref(), g64.cref(), b64.cref(), 1e-5, 0.1, rm64.ref(), rv64.ref(),
                                          sm64.ref(), sr64.ref(), res64, relu, y64.ref()).ok());
        ASSERT_TRUE(sync().ok());
        expect_close(to_host(y), to_host(y64), 1e-5, 1e-5, what + " y");
        expect_close(to_host(sm), to_host(sm64), 1e-6, 1e-6, what + " mean");
        expect_close(to_host(sr), to_host(sr64), 1e-6, 0, what + " rstd");
        expect_close(to_host(rm), to_host(rm64), 1e-6, 1e-6, what + " running_mean");
        expect_close(to_host(rv), to_host(rv64), 1e-6, 1e-6, what + " running_var");

        // Backward from the backend's own y (the ReLU mask of f32 and f64 could differ at 0): the
        // reference gets those values too.
        Tensor ymask64 = Tensor::empty(xs, DType::f64).value();
        {
          const auto yh = to_host(y);
          for (std::int64_t i = 0; i < ymask64.numel(); ++i) ymask64.data<double>()[i] = yh[std::size_t(i)];
        }
        Tensor dy64 = randn64(xs, 70);
        Tensor dy = up(dy64);
        Tensor dx = Tensor::empty(xs, DType::f32, device()).value(), dx64 = Tensor::empty(xs, DType::f64).value();
        Tensor dr = Tensor::empty(xs, DType::f32, device()).value(), dr64 = Tensor::empty(xs, DType::f64).value();
        Tensor dg64 = randn64(cs, 71), db64 = randn64(cs, 72);
        Tensor dg = up(dg64), db = up(db64);
        for (bool accumulate : {false, true}) {
          ASSERT_TRUE(ops::batch_norm_backward(ctx(), x.cref(), relu ? y.cref() : ConstTensorRef{}, dy.cref(), g.cref(), sm.cref(),
                                               sr.cref(), dx.ref(), with_residual ? dr.ref() : TensorRef{}, dg.ref(), db.ref(),
                                               accumulate).ok());
          ASSERT_TRUE(ops::batch_norm_backward(ref_ctx(), x64.cref(), relu ? ymask64.cref() : ConstTensorRef{}, dy64.cref(),
                                               g64.cref(), sm64.cref(), sr64.cref(), dx64.ref(),
                                               with_residual ? dr64.ref() : TensorRef{}, dg64.ref(), db64.ref(), accumulate).ok());
          ASSERT_TRUE(sync().ok());
          const double m = double(N * H * W);
          expect_close(to_host(dx), to_host(dx64), 1e-4, 1e-5, what + " dx");
          if (with_residual) expect_close(to_host(dr), to_host(dr64), 0, 0, what + " dresidual (exact)");
          expect_close(to_host(dg), to_host(dg64), 1e-5, 1e-6 * std::sqrt(m), what + " dgamma");
          expect_close(to_host(db), to_host(db64), 1e-5, 1e-6 * std::sqrt(m), what + " dbeta");
        }

        ASSERT_TRUE(ops::batch_norm_eval(ctx(), x.cref(), g.cref(), b.cref(), rm.cref(), rv.cref(), 1e-5, res, relu, y.ref()).ok());
        ASSERT_TRUE(ops::batch_norm_eval(ref_ctx(), x64.cref(), g64.cref(), b64.cref(), rm64.cref(), rv64.cref(), 1e-5, res64,
                                         relu, y64.ref()).ok());
        ASSERT_TRUE(sync().ok());
        expect_close(to_host(y), to_host(y64), 1e-5, 1e-5, what + " eval");
      }
  // One value per channel cannot be normalized in training (PyTorch refuses it too).
  Tensor one = Tensor::zeros({2, 1, 1, 1}, DType::f32, device()).value(), c2 = Tensor::full<float>({2}, 1.f).value().to(device()).value();
  Tensor s1 = Tensor::empty({2}, DType::f32, device()).value(), s2 = Tensor::empty({2}, DType::f32, device()).value();
  Tensor out = Tensor::empty({2, 1, 1, 1}, DType::f32, device()).value();
  const Status st = ops::batch_norm_train(ctx(), one.cref(), c2.cref(), c2.cref(), 1e-5, 0.1, {}, {}, s1.ref(), s2.ref(), {},
                                          false, out.ref());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().to_string().find("more than 1 value per channel"), std::string::npos) << st.error().to_string();
}

TEST_P(BackendOps, GlobalAvgPoolAndLayoutSwap) {
  for (auto [C, N, H, W] : std::vector<std::tuple<int, int, int, int>>{{1, 1, 1, 1}, {5, 3, 4, 4}, {16, 7, 2, 3}}) {
    Tensor x64 = randn64({C, N, H, W}, 73), dy64 = randn64({N, C}, 74);
    Tensor x = up(x64), dy = up(dy64);
    Tensor y = Tensor::empty({N, C}, DType::f32, device()).value(), y64 = Tensor::empty({N, C}, DType::f64).value();
    Tensor dx = Tensor::empty({C, N, H, W}, DType::f32, device()).value(), dx64 = Tensor::empty({C, N, H, W}, DType::f64).value();
    Tensor t = Tensor::empty({N, C, H, W}, DType::f32, device()).value(), t64 = Tensor::empty({N, C, H, W}, DType::f64).value();
    ASSERT_TRUE(ops::global_avg_pool_cnhw(ctx(), x.cref(), y.ref()).ok());
    ASSERT_TRUE(ops::global_avg_pool_cnhw(ref_ctx(), x64.cref(), y64.ref()).ok());
    ASSERT_TRUE(ops::global_avg_pool_cnhw_backward(ctx(), dy.cref(), dx.ref()).ok());
    ASSERT_TRUE(ops::global_avg_pool_cnhw_backward(ref_ctx(), dy64.cref(), dx64.ref()).ok());
    ASSERT_TRUE(ops::swap_leading_dims(ctx(), x.cref(), t.ref()).ok());
    ASSERT_TRUE(ops::swap_leading_dims(ref_ctx(), x64.cref(), t64.ref()).ok());
    ASSERT_TRUE(sync().ok());
    expect_close(to_host(y), to_host(y64), 1e-6, 1e-7, "global_avg_pool");
    expect_close(to_host(dx), to_host(dx64), 1e-6, 0, "global_avg_pool backward");
    expect_close(to_host(t), to_host(t64), 0, 0, "swap_leading_dims (exact)");
  }
}

// ---- backward against finite differences (f64 reference, CPU) -----------------------------------

namespace {
void expect_fd(const char* what, Tensor& wrt, const std::vector<double>& analytic, const std::function<double()>& loss) {
  const double h = 1e-6;
  for (std::int64_t i = 0; i < wrt.numel(); ++i) {
    double& x = wrt.data<double>()[i];
    const double saved = x;
    x = saved + h;
    const double up = loss();
    x = saved - h;
    const double down = loss();
    x = saved;
    const double numeric = (up - down) / (2 * h);
    ASSERT_NEAR(analytic[static_cast<std::size_t>(i)], numeric, 1e-6 + 1e-6 * std::fabs(numeric)) << what << "[" << i << "]";
  }
}
double dot(const Tensor& a, const Tensor& b) {
  double s = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) s += a.data<double>()[i] * b.data<double>()[i];
  return s;
}
}  // namespace

TEST(BackendOpsBackward, GemmGradientsAreGemms) {
  // L = sum(R * A·B): dA = R·Bᵀ, dB = Aᵀ·R, each one gemm with transposes.
  Context ctx = Context::cpu();
  Tensor a = randn64({5, 7}, 30), b = randn64({7, 4}, 31), r = randn64({5, 4}, 32);
  Tensor c = Tensor::empty({5, 4}, DType::f64).value();
  auto loss = [&] {
    (void)ops::gemm(ctx, Trans::no, Trans::no, 1.0, a.cref(), b.cref(), 0.0, c.ref());
    return dot(c, r);
  };
  Tensor da = Tensor::empty({5, 7}, DType::f64).value(), db = Tensor::empty({7, 4}, DType::f64).value();
  ASSERT_TRUE(ops::gemm(ctx, Trans::no, Trans::yes, 1.0, r.cref(), b.cref(), 0.0, da.ref()).ok());
  ASSERT_TRUE(ops::gemm(ctx, Trans::yes, Trans::no, 1.0, a.cref(), r.cref(), 0.0, db.ref()).ok());
  expect_fd("dA", a, to_host(da), loss);
  expect_fd("dB", b, to_host(db), loss);
}

TEST(BackendOpsBackward, BiasReluBackwardIsReluBackwardAndColumnSums) {
  // L = sum(R * relu(Y + b)): dY = relu_backward(out, R), db = column sums of dY.
  Context ctx = Context::cpu();
  Tensor y = randn64({6, 5}, 33), bias = randn64({5}, 34), r = randn64({6, 5}, 35);
  Tensor out = Tensor::empty({6, 5}, DType::f64).value();
  auto forward = [&] {
    (void)ops::copy(ctx, y.cref(), out.ref());
    (void)ops::bias_activation(ctx, out.ref(), bias.cref(), Activation::relu);
  };
  auto loss = [&] {
    forward();
    return dot(out, r);
  };
  forward();
  Tensor dy = Tensor::empty({6, 5}, DType::f64).value(), db = Tensor::empty({5}, DType::f64).value();
  ASSERT_TRUE(ops::relu_backward(ctx, out.cref(), r.cref(), dy.ref()).ok());
  ASSERT_TRUE(ops::column_sums(ctx, dy.cref(), db.ref()).ok());
  expect_fd("dY", y, to_host(dy), loss);
  expect_fd("db", bias, to_host(db), loss);
}

TEST(BackendOpsBackward, SoftmaxCrossEntropyGradient) {
  Context ctx = Context::cpu();
  Tensor logits = randn64({6, 5}, 36, 2.0);
  std::vector<std::int32_t> lv{0, 4, 2, 2, 1, 3};
  Tensor labels = Tensor::from_data<std::int32_t>({6}, lv.data(), 6).value();
  Tensor loss = Tensor::zeros({1}, DType::f64).value(), d = Tensor::empty({6, 5}, DType::f64).value();
  ASSERT_TRUE(ops::softmax_cross_entropy(ctx, logits.cref(), labels.cref(), loss.ref(), {}, d.ref()).ok());
  const auto analytic = to_host(d);
  expect_fd("dlogits", logits, analytic, [&] {
    (void)ctx.begin_step();
    (void)ops::softmax_cross_entropy(ctx, logits.cref(), labels.cref(), loss.ref());
    return loss.data<double>()[0];
  });
}

TEST(BackendOpsBackward, Conv2dCnhwGradientsStride2Padded) {
  // L = sum(R * conv(x, w)) with k 3, stride 2, pad 1 on 7 x 6 (odd: the last row is not read by a
  // stride-2 window ending there) and k 1 stride 2: dx and dw from the backward ops.
  Context ctx = Context::cpu();
  for (auto [k, pad] : std::vector<std::pair<int, int>>{{3, 1}, {1, 0}}) {
    const std::int64_t ho = (7 + 2 * pad - k) / 2 + 1, wo = (6 + 2 * pad - k) / 2 + 1;
    Tensor x = randn64({2, 3, 7, 6}, 75), w = randn64({4, 2, k, k}, 76), r = randn64({4, 3, ho, wo}, 77);
    Tensor y = Tensor::empty({4, 3, ho, wo}, DType::f64).value();
    auto loss = [&] {
      (void)ops::conv2d_cnhw(ctx, x.cref(), w.cref(), 2, pad, y.ref());
      return dot(y, r);
    };
    Tensor dx = Tensor::empty(x.shape(), DType::f64).value(), dw = Tensor::empty(w.shape(), DType::f64).value();
    ASSERT_TRUE(ops::conv2d_cnhw_backward_data(ctx, r.cref(), w.cref(), 2, pad, dx.ref()).ok());
    ASSERT_TRUE(ops::conv2d_cnhw_backward_weight(ctx, x.cref(), r.cref(), 2, pad, 0.0, dw.ref()).ok());
    expect_fd("conv dx", x, to_host(dx), loss);
    expect_fd("conv dw", w, to_host(dw), loss);
  }
}

TEST(BackendOpsBackward, BatchNormGradientsThroughAddAndRelu) {
  // L = sum(R * relu(bn(x) + s)): dx, dgamma, dbeta and d s from batch_norm_backward.
  Context ctx = Context::cpu();
  Tensor x = randn64({3, 2, 3, 2}, 78), gamma = randn64({3}, 79), beta = randn64({3}, 80), s = randn64({3, 2, 3, 2}, 81);
  Tensor r = randn64({3, 2, 3, 2}, 82);
  Tensor y = Tensor::empty(x.shape(), DType::f64).value(), sm = Tensor::empty({3}, DType::f64).value(),
         sr = Tensor::empty({3}, DType::f64).value();
  auto forward = [&] {
    (void)ops::batch_norm_train(ctx, x.cref(), gamma.cref(), beta.cref(), 1e-5, 0.1, {}, {}, sm.ref(), sr.ref(), s.cref(), true,
                                y.ref());
  };
  auto loss = [&] {
    forward();
    return dot(y, r);
  };
  forward();
  Tensor dx = Tensor::empty(x.shape(), DType::f64).value(), ds = Tensor::empty(x.shape(), DType::f64).value();
  Tensor dg = Tensor::empty({3}, DType::f64).value(), db = Tensor::empty({3}, DType::f64).value();
  ASSERT_TRUE(ops::batch_norm_backward(ctx, x.cref(), y.cref(), r.cref(), gamma.cref(), sm.cref(), sr.cref(), dx.ref(), ds.ref(),
                                       dg.ref(), db.ref(), false).ok());
  expect_fd("bn dx", x, to_host(dx), loss);
  expect_fd("bn dgamma", gamma, to_host(dg), loss);
  expect_fd("bn dbeta", beta, to_host(db), loss);
  expect_fd("bn dresidual", s, to_host(ds), loss);
}
