// The convolution family (ops/conv.hpp, ops/norm.hpp, ops/pool.hpp) against the scalar oracles of
// backend/cpu/reference/conv.hpp, at odd channel counts and sizes; shape errors; thread independence.
//
// Tolerances: inputs ~ N(0, 1), weights ~ N(0, 1/K) (K = Cin*k*k, so outputs are O(1)). The fast
// path accumulates K float products (SGEMM, FMA), the oracle in double; the float error of such a
// sum grows like sqrt(K) * 2^-24 * (typical |output|), about 2e-6 at K = 864. We allow
// 1e-5 * max(1, |ref|) per element: 5x that estimate, still far below any indexing bug (O(1) errors).
// GroupNorm/ELU: float rounding of x * scale + shift and xsimd's expm1 (a few ulp): 1e-5 as well.
// MaxPool and concat move values without arithmetic: exact.
// Winograd F(2x2, 3x3) (backend/cpu/winograd.hpp): its transforms add up to 4 (input) and 9 (output)
// float terms, but its FMA chains are Cin long instead of 9 Cin. Measured against the double oracle
// (inputs N(0, 1), also N(3, 1) and 100 N(0, 1); Cin 1 .. 512): relative L2 error 0.8e-7 .. 7e-7,
// 0.5x .. 1.5x the direct path's on the same problem; worst element 6.6e-6 * max(1, |ref|) at
// Cin = 512. The tests hold it to the direct path's 1e-5 per element and, as a whole, to relative L2
// <= 2e-6 and <= 3x the direct path's + 5e-7 (a few ulp: where the direct sum is exact, e.g. a 1x1
// image of one channel, Winograd still rounds its transforms). An indexing bug gives O(1) errors.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>
#include <vector>

#include "ferrite/backend/cpu/reference/conv.hpp"
#include "ferrite/backend/cpu/threading.hpp"
#include "ferrite/core/rng.hpp"
#include "ferrite/ops/conv.hpp"
#include "ferrite/ops/norm.hpp"
#include "ferrite/ops/pool.hpp"

using namespace ferrite;

namespace {

Tensor randn(Shape shape, std::uint64_t stream, float scale = 1.f, float shift = 0.f) {
  auto t = Tensor::empty(shape).value();
  Philox rng(17, stream);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = shift + scale * rng.normal(i);
  return t;
}

ChwView<float> chw(Tensor& t) { return {t.data<float>(), t.dim(0), t.dim(1), t.dim(2)}; }
ChwView<const float> cchw(const Tensor& t) { return {t.data<float>(), t.dim(0), t.dim(1), t.dim(2)}; }

void expect_close(const Tensor& got, const Tensor& want, double rel, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  int reported = 0;
  for (std::int64_t i = 0; i < got.numel(); ++i) {
    const double g = got.data<float>()[i], w = want.data<float>()[i];
    if (!(std::abs(g - w) <= rel * std::max(1.0, std::abs(w))) && reported++ < 5)
      ADD_FAILURE() << what << ": element " << i << " got " << g << " want " << w;
  }
}

void expect_equal(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  for (std::int64_t i = 0; i < got.numel(); ++i)
    ASSERT_EQ(got.data<float>()[i], want.data<float>()[i]) << what << ": element " << i;
}

constexpr double kTol = 1e-5;

// (Cin, Cout, H, W)
const std::vector<std::tuple<int, int, int, int>> kConvSizes{
    {1, 1, 1, 1}, {1, 3, 2, 5}, {3, 5, 7, 9}, {5, 7, 9, 11}, {16, 33, 13, 5}, {16, 32, 16, 16},
    {96, 32, 17, 19}, {2, 4, 64, 3}, {8, 16, 40, 40}};

}  // namespace

TEST(Conv, Conv2dMatchesReference) {
  for (auto [cin, cout, h, w] : kConvSizes)
    for (int k : {1, 3, 5})
      for (bool with_bias : {false, true}) {
        const std::string what = "conv2d k" + std::to_string(k) + " " + std::to_string(cin) + "->" +
                                 std::to_string(cout) + " " + std::to_string(h) + "x" + std::to_string(w);
        Tensor x = randn({cin, h, w}, 1);
        Tensor wt = randn({cout, cin, k, k}, 2, 1.f / std::sqrt(float(cin * k * k)));
        Tensor b = randn({cout}, 3);
        Tensor y = Tensor::full<float>({cout, h, w}, 123.f).value(), y_ref = Tensor::empty({cout, h, w}).value();
        TensorView<const float> bias = with_bias ? b.view<float>() : TensorView<float>{};
        ASSERT_TRUE(conv2d(cchw(x), wt.view<float>(), bias, chw(y), ConvAlgorithm::direct).ok()) << what;
        cpu::reference::conv2d_same<float>(cchw(x), wt.data<float>(), k, with_bias ? b.data<float>() : nullptr,
                                           chw(y_ref));
        expect_close(y, y_ref, kTol, what);
      }
}

TEST(Conv, Conv2dIsThreadCountIndependent) {
  // 45 x 75: several Winograd blocks of 2 tile rows, tile rows that cross 32-tile panels, odd edges.
  Tensor x = randn({24, 45, 75}, 4), wt = randn({40, 24, 3, 3}, 5, 0.07f), b = randn({40}, 6);
  for (auto algorithm : {ConvAlgorithm::direct, ConvAlgorithm::winograd}) {
    Tensor y1 = Tensor::empty({40, 45, 75}).value(), y2 = Tensor::empty({40, 45, 75}).value();
    {
      cpu::ThreadLimit one(1);
      ASSERT_TRUE(conv2d(cchw(x), wt.view<float>(), b.view<float>(), chw(y1), algorithm).ok());
    }
    {
      cpu::ThreadLimit two(2);
      ASSERT_TRUE(conv2d(cchw(x), wt.view<float>(), b.view<float>(), chw(y2), algorithm).ok());
    }
    expect_equal(y1, y2, algorithm == ConvAlgorithm::direct ? "direct 1 vs 2 threads" : "winograd 1 vs 2 threads");
  }
}

namespace {

// sqrt(sum (got - ref)^2 / sum ref^2)
double relative_l2(const Tensor& got, const Tensor& ref) {
  double num = 0, den = 0;
  for (std::int64_t i = 0; i < got.numel(); ++i) {
    const double d = double(got.data<float>()[i]) - double(ref.data<float>()[i]);
    num += d * d;
    den += double(ref.data<float>()[i]) * ref.data<float>()[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// (Cin, Cout, H, W): odd sizes and channel counts, Cout not a multiple of the micro-kernel's 8 rows,
// images smaller than a tile, single rows / columns, tile rows longer than a 32-tile panel (75 wide),
// several blocks, deep K.
const std::vector<std::tuple<int, int, int, int>> kWinogradSizes{
    {1, 1, 1, 1},     {1, 3, 2, 5},   {3, 5, 7, 9},    {5, 7, 9, 11},  {16, 33, 13, 5}, {17, 9, 9, 11},
    {16, 32, 16, 16}, {33, 40, 1, 17}, {7, 12, 23, 1}, {96, 32, 17, 19}, {64, 64, 31, 30}, {24, 40, 45, 75},
    {256, 20, 8, 8},  {8, 16, 40, 40}};

}  // namespace

TEST(Conv, WinogradMatchesReference) {
  for (auto [cin, cout, h, w] : kWinogradSizes)
    for (float shift : {0.f, 3.f})  // a shifted mean: the transforms subtract neighbours
      for (bool with_bias : {false, true}) {
        const std::string what = "winograd " + std::to_string(cin) + "->" + std::to_string(cout) + " " +
                                 std::to_string(h) + "x" + std::to_string(w) + (shift != 0.f ? " shifted" : "") +
                                 (with_bias ? " bias" : "");
        Tensor x = randn({cin, h, w}, 21, 1.f, shift);
        Tensor wt = randn({cout, cin, 3, 3}, 22, 1.f / std::sqrt(float(cin * 9)));
        Tensor b = randn({cout}, 23);
        TensorView<const float> bias = with_bias ? b.view<float>() : TensorView<float>{};
        Tensor y = Tensor::full<float>({cout, h, w}, 123.f).value(), y_direct = Tensor::empty({cout, h, w}).value();
        Tensor y_ref = Tensor::empty({cout, h, w}).value();
        ASSERT_TRUE(conv2d(cchw(x), wt.view<float>(), bias, chw(y), ConvAlgorithm::winograd).ok()) << what;
        ASSERT_TRUE(conv2d(cchw(x), wt.view<float>(), bias, chw(y_direct), ConvAlgorithm::direct).ok()) << what;
        cpu::reference::conv2d_same<float>(cchw(x), wt.data<float>(), 3, with_bias ? b.data<float>() : nullptr,
                                           chw(y_ref));
        expect_close(y, y_ref, kTol, what);
        const double err = relative_l2(y, y_ref), err_direct = relative_l2(y_direct, y_ref);
        EXPECT_LE(err, 2e-6) << what;
        EXPECT_LE(err, 3 * err_direct + 5e-7) << what << " (direct: " << err_direct << ")";
      }
}

TEST(Conv, WinogradPlanMatchesPerCallTransform) {
  // A plan holds the same transformed weights conv2d(..., winograd) computes per call: bit-identical.
  Tensor x = randn({20, 19, 26}, 24), wt = randn({13, 20, 3, 3}, 25, 0.07f), b = randn({13}, 26);
  auto plan = WinogradConv3x3::create(wt.view<float>());
  ASSERT_TRUE(plan.ok()) << plan.error().to_string();
  EXPECT_EQ(plan.value().out_channels(), 13);
  EXPECT_EQ(plan.value().in_channels(), 20);
  Tensor y_plan = Tensor::empty({13, 19, 26}).value(), y_call = Tensor::empty({13, 19, 26}).value();
  ASSERT_TRUE(conv2d(cchw(x), plan.value(), b.view<float>(), chw(y_plan)).ok());
  ASSERT_TRUE(conv2d(cchw(x), wt.view<float>(), b.view<float>(), chw(y_call), ConvAlgorithm::winograd).ok());
  expect_equal(y_plan, y_call, "plan vs per-call transform");

  // After the weights change, update() re-transforms them.
  Tensor wt2 = randn({13, 20, 3, 3}, 27, 0.07f);
  ASSERT_TRUE(plan.value().update(wt2.view<float>()).ok());
  ASSERT_TRUE(conv2d(cchw(x), plan.value(), {}, chw(y_plan)).ok());
  ASSERT_TRUE(conv2d(cchw(x), wt2.view<float>(), {}, chw(y_call), ConvAlgorithm::winograd).ok());
  expect_equal(y_plan, y_call, "plan after update");
}

TEST(Conv, AutomaticPicksWinogradWhereItPays) {
  EXPECT_TRUE(winograd_pays(32, 32, 128, 128));
  EXPECT_TRUE(winograd_pays(256, 256, 16, 16));
  EXPECT_FALSE(winograd_pays(2, 32, 128, 128));   // few input channels: the direct path's K = 9 Cin wins
  EXPECT_FALSE(winograd_pays(256, 256, 12, 12));  // 36 tiles: too few to share between threads
  EXPECT_FALSE(winograd_pays(32, 32, 4, 64));     // a sliver
  for (auto [cin, h] : {std::pair{16, 16}, std::pair{2, 16}, std::pair{16, 12}}) {
    Tensor x = randn({cin, h, h}, 28), wt = randn({16, cin, 3, 3}, 29, 0.1f);
    Tensor y_auto = Tensor::empty({16, h, h}).value(), y_pick = Tensor::empty({16, h, h}).value();
    const auto expected = winograd_pays(cin, 16, h, h) ? ConvAlgorithm::winograd : ConvAlgorithm::direct;
    ASSERT_TRUE(conv2d(cchw(x), wt.view<float>(), {}, chw(y_auto)).ok());
    ASSERT_TRUE(conv2d(cchw(x), wt.view<float>(), {}, chw(y_pick), expected).ok());
    expect_equal(y_auto, y_pick, "automatic, Cin " + std::to_string(cin) + ", " + std::to_string(h) + "^2");
  }
}

TEST(Conv, WinogradRejectsBadShapes) {
  Tensor x = randn({3, 8, 8}, 1), y = Tensor::empty({4, 8, 8}).value();
  Tensor w5 = randn({4, 3, 5, 5}, 2), w1 = randn({4, 3, 1, 1}, 2), w_cin = randn({4, 5, 3, 3}, 2);
  auto s = conv2d(cchw(x), w5.view<float>(), {}, chw(y), ConvAlgorithm::winograd);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(s.error().message.find("3x3"), std::string::npos) << s.error().to_string();
  EXPECT_EQ(conv2d(cchw(x), w_cin.view<float>(), {}, chw(y), ConvAlgorithm::winograd).error().code,
            ErrorCode::shape_mismatch);

  auto bad_plan = WinogradConv3x3::create(w1.view<float>());
  ASSERT_FALSE(bad_plan.ok());
  EXPECT_EQ(bad_plan.error().code, ErrorCode::shape_mismatch);
  EXPECT_EQ(bad_plan.error().op, "WinogradConv3x3");

  auto plan = WinogradConv3x3::create(w_cin.view<float>()).value();  // expects Cin = 5
  auto p = conv2d(cchw(x), plan, {}, chw(y));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code, ErrorCode::shape_mismatch);
  EXPECT_NE(p.error().shapes.find("[4, 5, 3, 3]"), std::string::npos) << p.error().to_string();
  Tensor x5 = randn({5, 8, 8}, 1), y_bad = Tensor::empty({4, 8, 9}).value(), b_bad = randn({3}, 3);
  EXPECT_EQ(conv2d(cchw(x5), plan, {}, chw(y_bad)).error().code, ErrorCode::shape_mismatch);
  EXPECT_EQ(conv2d(cchw(x5), plan, b_bad.view<float>(), chw(y)).error().code, ErrorCode::shape_mismatch);
  Tensor same = randn({5, 8, 8}, 1);
  auto plan55 = WinogradConv3x3::create(randn({5, 5, 3, 3}, 2).view<float>()).value();
  EXPECT_EQ(conv2d(cchw(same), plan55, {}, chw(same)).error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(plan.update(w5.view<float>()).error().code, ErrorCode::shape_mismatch);
}

TEST(Conv, Conv2dRejectsBadShapes) {
  Tensor x = randn({3, 8, 8}, 1), wt = randn({4, 5, 3, 3}, 2), y = Tensor::empty({4, 8, 8}).value();
  auto s = conv2d(cchw(x), wt.view<float>(), {}, chw(y));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::shape_mismatch);
  EXPECT_EQ(s.error().op, "conv2d");
  EXPECT_NE(s.error().shapes.find("[3, 8, 8]"), std::string::npos) << s.error().to_string();
  EXPECT_NE(s.error().shapes.find("[4, 5, 3, 3]"), std::string::npos) << s.error().to_string();

  Tensor w_even = randn({4, 3, 2, 2}, 2), w_ok = randn({4, 3, 3, 3}, 2), b_bad = randn({5}, 3);
  Tensor y_small = Tensor::empty({4, 7, 8}).value();
  EXPECT_EQ(conv2d(cchw(x), w_even.view<float>(), {}, chw(y)).error().code, ErrorCode::shape_mismatch);
  EXPECT_EQ(conv2d(cchw(x), w_ok.view<float>(), {}, chw(y_small)).error().code, ErrorCode::shape_mismatch);
  EXPECT_EQ(conv2d(cchw(x), w_ok.view<float>(), b_bad.view<float>(), chw(y)).error().code, ErrorCode::shape_mismatch);
  Tensor same = randn({3, 8, 8}, 1), w33 = randn({3, 3, 3, 3}, 2);
  EXPECT_EQ(conv2d(cchw(same), w33.view<float>(), {}, chw(same)).error().code, ErrorCode::invalid_argument);
}

TEST(Conv, ConvTransposeMatchesReference) {
  for (auto [cin, cout, h, w] : kConvSizes)
    for (bool with_bias : {false, true}) {
      const std::string what = "conv_transpose2d " + std::to_string(cin) + "->" + std::to_string(cout) + " " +
                               std::to_string(h) + "x" + std::to_string(w);
      Tensor x = randn({cin, h, w}, 6), wt = randn({cin, cout, 2, 2}, 7, 1.f / std::sqrt(float(cin)));
      Tensor b = randn({cout}, 8);
      Tensor y = Tensor::full<float>({cout, 2 * h, 2 * w}, 7.f).value(), y_ref = Tensor::empty({cout, 2 * h, 2 * w}).value();
      TensorView<const float> bias = with_bias ? b.view<float>() : TensorView<float>{};
      ASSERT_TRUE(conv_transpose2d_k2s2(cchw(x), wt.view<float>(), bias, chw(y)).ok()) << what;
      cpu::reference::conv_transpose2d_k2s2<float>(cchw(x), wt.data<float>(), with_bias ? b.data<float>() : nullptr,
                                                   chw(y_ref));
      expect_close(y, y_ref, kTol, what);
    }
}

TEST(Conv, ConvTransposeRejectsBadShapes) {
  Tensor x = randn({3, 4, 4}, 1), wt = randn({3, 5, 2, 2}, 2);
  Tensor y_bad = Tensor::empty({5, 8, 7}).value(), w_bad = randn({4, 5, 2, 2}, 2), w_k3 = randn({3, 5, 3, 3}, 2);
  Tensor y = Tensor::empty({5, 8, 8}).value();
  auto s = conv_transpose2d_k2s2(cchw(x), wt.view<float>(), {}, chw(y_bad));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::shape_mismatch);
  EXPECT_EQ(s.error().op, "conv_transpose2d");
  EXPECT_EQ(conv_transpose2d_k2s2(cchw(x), w_bad.view<float>(), {}, chw(y)).error().code, ErrorCode::shape_mismatch);
  EXPECT_EQ(conv_transpose2d_k2s2(cchw(x), w_k3.view<float>(), {}, chw(y)).error().code, ErrorCode::shape_mismatch);
}

TEST(Norm, GroupRule) {
  EXPECT_EQ(group_norm_groups(1), 1);
  EXPECT_EQ(group_norm_groups(8), 1);    // not > 8
  EXPECT_EQ(group_norm_groups(12), 1);   // 12 / 8 = 1
  EXPECT_EQ(group_norm_groups(16), 2);
  EXPECT_EQ(group_norm_groups(20), 2);   // 20 / 8 = 2 divides 20
  EXPECT_EQ(group_norm_groups(27), 3);   // 27 / 8 = 3 divides 27
  EXPECT_EQ(group_norm_groups(31), 1);   // 31 / 8 = 3 does not divide 31
  EXPECT_EQ(group_norm_groups(32), 4);
  EXPECT_EQ(group_norm_groups(256), 32);
}

TEST(Norm, GroupNormMatchesReference) {
  // (C, H, W); a shifted mean (+3) checks the two-pass variance.
  for (auto [c, h, w] : std::vector<std::tuple<int, int, int>>{{1, 1, 1}, {3, 1, 7}, {7, 5, 3}, {20, 9, 11},
                                                               {24, 4, 4}, {32, 16, 16}, {64, 33, 7}, {27, 3, 5}})
    for (auto act : {NormActivation::none, NormActivation::elu})
      for (bool affine : {false, true})
        for (bool in_place : {false, true}) {
          const std::int64_t groups = group_norm_groups(c);
          const std::string what = "group_norm C" + std::to_string(c) + " " + std::to_string(h) + "x" +
                                   std::to_string(w) + (act == NormActivation::elu ? " elu" : "") +
                                   (affine ? " affine" : "") + (in_place ? " in place" : "");
          Tensor x = randn({c, h, w}, 9, 2.f, 3.f), gamma = randn({c}, 10, 0.5f, 1.f), beta = randn({c}, 11, 0.5f);
          Tensor y_ref = Tensor::empty({c, h, w}).value();
          cpu::reference::group_norm<float>(cchw(x), groups, affine ? gamma.data<float>() : nullptr,
                                            affine ? beta.data<float>() : nullptr, 1e-5,
                                            act == NormActivation::elu, chw(y_ref));
          Tensor y_sep = Tensor::empty({c, h, w}).value();
          Tensor& y = in_place ? x : y_sep;
          TensorView<const float> g = affine ? gamma.view<float>() : TensorView<float>{};
          TensorView<const float> b = affine ? beta.view<float>() : TensorView<float>{};
          ASSERT_TRUE(group_norm(cchw(x), groups, g, b, 1e-5, act, chw(y)).ok()) << what;
          expect_close(y, y_ref, kTol, what);
        }
}

TEST(Norm, GroupNormRejectsBadShapes) {
  Tensor x = randn({12, 4, 4}, 1), g = randn({12}, 2), b = randn({11}, 3), y = Tensor::empty({12, 4, 4}).value();
  auto s = group_norm(cchw(x), 5, g.view<float>(), g.view<float>(), 1e-5, NormActivation::none, chw(y));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::shape_mismatch);
  EXPECT_EQ(s.error().op, "group_norm");
  EXPECT_EQ(group_norm(cchw(x), 3, g.view<float>(), b.view<float>(), 1e-5, NormActivation::none, chw(y)).error().code,
            ErrorCode::shape_mismatch);
  Tensor y_bad = Tensor::empty({12, 4, 5}).value();
  EXPECT_EQ(group_norm(cchw(x), 3, {}, {}, 1e-5, NormActivation::none, chw(y_bad)).error().code,
            ErrorCode::shape_mismatch);
}

TEST(Norm, EluMatchesReference) {
  for (int n : {1, 7, 16, 17, 100, 1031}) {
    Tensor x = randn({n}, 12, 3.f), y = Tensor::empty({n}).value(), y_ref = Tensor::empty({n}).value();
    ASSERT_TRUE(elu(x.view<float>(), y.view<float>()).ok());
    cpu::reference::elu<float>(x.data<float>(), n, y_ref.data<float>());
    expect_close(y, y_ref, kTol, "elu n=" + std::to_string(n));
  }
  Tensor a = randn({3}, 1), b = Tensor::empty({4}).value();
  EXPECT_EQ(elu(a.view<float>(), b.view<float>()).error().code, ErrorCode::shape_mismatch);
}

TEST(Pool, MaxPoolMatchesReference) {
  for (auto [c, h, w] : std::vector<std::tuple<int, int, int>>{{1, 2, 2}, {3, 5, 7}, {7, 9, 11}, {16, 16, 16}, {5, 1, 6}}) {
    Tensor x = randn({c, h, w}, 13), y = Tensor::empty({c, h / 2, w / 2}).value(), y_ref = Tensor::empty({c, h / 2, w / 2}).value();
    ASSERT_TRUE(maxpool2x2(cchw(x), chw(y)).ok());
    cpu::reference::maxpool2x2<float>(cchw(x), chw(y_ref));
    expect_equal(y, y_ref, "maxpool");
  }
  Tensor x = randn({3, 8, 8}, 1), y = Tensor::empty({3, 4, 5}).value();
  auto s = maxpool2x2(cchw(x), chw(y));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::shape_mismatch);
  EXPECT_EQ(s.error().op, "maxpool2x2");
}

TEST(Pool, ConcatMatchesReference) {
  Tensor a = randn({3, 5, 7}, 14), b = randn({4, 5, 7}, 15);
  Tensor y = Tensor::empty({7, 5, 7}).value(), y_ref = Tensor::empty({7, 5, 7}).value();
  ASSERT_TRUE(concat_channels(cchw(a), cchw(b), chw(y)).ok());
  cpu::reference::concat_channels<float>(cchw(a), cchw(b), chw(y_ref));
  expect_equal(y, y_ref, "concat");
  Tensor bad = randn({4, 5, 6}, 15);
  EXPECT_EQ(concat_channels(cchw(a), cchw(bad), chw(y)).error().code, ErrorCode::shape_mismatch);
}
