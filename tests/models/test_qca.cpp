// The QCA step (models/qca.hpp) against PyTorch (tests/data/qca/, scripts/pytorch/make_qca_fixtures.py):
// each U-Net op on odd sizes, the whole law, one step of both laws, ten steps; loading by name;
// initialization; errors.
//
// Tolerances. torch and ferrite both compute in f32 but sum in different orders, so each output
// differs by a few ulp times sqrt(terms): the ops are held to 1e-5 * max(1, |torch|) per element.
// The step: psi after 1 step to relative L2 error <= 1e-5 (the bound; measured ~1e-7) and
// every cell's norm to 1 +- 1e-6 (f32 rounding of the division is ~1e-7). After 10 steps the law's
// float differences compound through 10 U-Net evaluations: bound 1e-4.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "ferrite/backend/cpu/threading.hpp"
#include "ferrite/io/safetensors.hpp"
#include "ferrite/models/qca.hpp"

using namespace ferrite;
namespace fs = std::filesystem;

namespace {

const fs::path kDir = fs::path(FERRITE_TEST_DATA_DIR) / "qca";

io::SafetensorsFile load(const std::string& name) {
  auto f = io::load_safetensors(kDir / name);
  EXPECT_TRUE(f.ok()) << (f.ok() ? "" : f.error().to_string());
  return std::move(f).value();
}

const Tensor& get(const io::SafetensorsFile& f, const std::string& name) {
  const Tensor* t = f.find(name);
  if (!t) throw std::runtime_error("fixture lacks " + name);
  return *t;
}

ChwView<const float> chw(const Tensor& t) {
  const int r = t.shape().rank();
  return {t.data<float>(), t.dim(r - 3), t.dim(r - 2), t.dim(r - 1)};
}
ChwView<float> chw(Tensor& t) {
  const int r = t.shape().rank();
  return {t.data<float>(), t.dim(r - 3), t.dim(r - 2), t.dim(r - 1)};
}

void expect_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  ASSERT_EQ(got.numel(), want.numel()) << what;
  int reported = 0;
  for (std::int64_t i = 0; i < got.numel(); ++i) {
    const double g = got.data<float>()[i], w = want.data<float>()[i];
    if (!(std::abs(g - w) <= tol * std::max(1.0, std::abs(w))) && reported++ < 5)
      ADD_FAILURE() << what << ": element " << i << " got " << g << " torch " << w;
  }
}

Tensor like(const Tensor& t) { return Tensor::empty(t.shape()).value(); }

models::QcaUnet fixture_law() {
  auto law = models::QcaUnet::create(4, 16).value();
  auto s = law.load(kDir / "qca_law_d4_h16.safetensors");
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().to_string());
  return law;
}

}  // namespace

TEST(QcaOps, MatchPyTorch) {
  const auto f = load("ops.safetensors");
  {
    Tensor y = like(get(f, "conv3x3.y"));
    ASSERT_TRUE(conv2d(chw(get(f, "conv3x3.x")), get(f, "conv3x3.w").view<float>(), {}, chw(y)).ok());
    expect_close(y, get(f, "conv3x3.y"), 1e-5, "conv3x3");
  }
  {
    Tensor y = like(get(f, "conv1x1.y"));
    ASSERT_TRUE(conv2d(chw(get(f, "conv1x1.x")), get(f, "conv1x1.w").view<float>(), get(f, "conv1x1.b").view<float>(),
                       chw(y)).ok());
    expect_close(y, get(f, "conv1x1.y"), 1e-5, "conv1x1");
  }
  for (auto [name, act] : {std::pair{"gn20", NormActivation::elu}, std::pair{"gn24", NormActivation::none}}) {
    const std::string n = name;
    const Tensor& x = get(f, n + ".x");
    Tensor y = like(get(f, n + ".y"));
    ASSERT_TRUE(group_norm(chw(x), group_norm_groups(x.dim(0)), get(f, n + ".w").view<float>(),
                           get(f, n + ".b").view<float>(), 1e-5, act, chw(y)).ok());
    expect_close(y, get(f, n + ".y"), 1e-5, n);
  }
  {
    Tensor y = like(get(f, "elu.y"));
    ASSERT_TRUE(elu(get(f, "elu.x").view<float>(), y.view<float>()).ok());
    expect_close(y, get(f, "elu.y"), 1e-5, "elu");
  }
  {
    Tensor y = like(get(f, "maxpool.y"));
    ASSERT_TRUE(maxpool2x2(chw(get(f, "maxpool.x")), chw(y)).ok());
    expect_close(y, get(f, "maxpool.y"), 0.0, "maxpool");
  }
  {
    Tensor y = like(get(f, "convt.y"));
    ASSERT_TRUE(conv_transpose2d_k2s2(chw(get(f, "convt.x")), get(f, "convt.w").view<float>(),
                                      get(f, "convt.b").view<float>(), chw(y)).ok());
    expect_close(y, get(f, "convt.y"), 1e-5, "convt");
  }
}

TEST(Qca, LawMatchesPyTorch) {
  auto law = fixture_law();
  const auto states = load("qca_states_d4_g16.safetensors");
  const Tensor& psi0 = get(states, "psi0");
  Tensor x = Tensor::empty({8, 16, 16}).value(), o = Tensor::empty({8, 16, 16}).value();
  Context ctx = Context::cpu();
  ASSERT_TRUE(ops::complex_pack_planar(ctx, psi0.cref().rows(0, 1).reshape({16, 16, 4, 2}).value(), x.ref()).ok());
  ASSERT_TRUE(law.forward(ctx, x.cref(), o.ref()).ok());
  Tensor torch_out = get(states, "law_out").clone().value().reshape({8, 16, 16}).value();
  const auto rel = models::relative_l2_error(o, torch_out);
  ASSERT_TRUE(rel.ok()) << rel.error().to_string();
  const double err = rel.value();
  EXPECT_LE(err, 1e-5);
  expect_close(o, get(states, "law_out"), 1e-4, "law_out");
  std::printf("[ info ] law output: relative L2 error %.3g\n", err);
}

TEST(Qca, OneStepMatchesPyTorchForBothLaws) {
  auto law = fixture_law();
  const auto states = load("qca_states_d4_g16.safetensors");
  for (auto kind : {models::QcaLaw::unet, models::QcaLaw::unet_unitary}) {
    const std::string name = std::string(models::to_string(kind));
    Tensor psi = get(states, "psi0").clone().value();
    ASSERT_TRUE(models::qca_step(law, kind, 0.01f, psi).ok());
    const double err = models::relative_l2_error(psi, get(states, "psi1." + name)).value();
    EXPECT_LE(err, 1e-5) << name;
    EXPECT_LE(models::qca_max_norm_error(psi), 1e-6) << name;
    EXPECT_NEAR(models::qca_energy(psi), 1.0 / 4, 1e-6) << name;
    std::printf("[ info ] %s: relative L2 error after 1 step %.3g, max |norm - 1| %.3g\n", name.c_str(), err,
                models::qca_max_norm_error(psi));
  }
}

TEST(Qca, TenStepsMatchPyTorch) {
  auto law = fixture_law();
  const auto states = load("qca_states_d4_g16.safetensors");
  Tensor psi = get(states, "psi0").clone().value();
  Context ctx = Context::cpu();
  for (int s = 0; s < 10; ++s) ASSERT_TRUE(models::qca_step(ctx, law, models::QcaLaw::unet_unitary, 0.01f, psi).ok());
  const double err = models::relative_l2_error(psi, get(states, "psi10.unet-unitary")).value();
  EXPECT_LE(err, 1e-4);
  EXPECT_LE(models::qca_max_norm_error(psi), 1e-6);
  std::printf("[ info ] unet-unitary: relative L2 error after 10 steps %.3g\n", err);
}

TEST(Qca, StepIsThreadCountIndependent) {
  auto law = models::QcaUnet::create(8, 16).value();
  law.init_default(3, false);
  Tensor a = models::make_qca_state(models::QcaInit::random, 1, 32, 24, 8, 9).value(), b = a.clone().value();
  {
    cpu::ThreadLimit one(1);
    ASSERT_TRUE(models::qca_step(law, models::QcaLaw::unet_unitary, 0.01f, a).ok());
  }
  {
    cpu::ThreadLimit two(2);
    ASSERT_TRUE(models::qca_step(law, models::QcaLaw::unet_unitary, 0.01f, b).ok());
  }
  for (std::int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.data<float>()[i], b.data<float>()[i]) << i;
}

TEST(Qca, LoadReportsProblemsByName) {
  auto file = load("qca_law_d4_h16.safetensors");
  // Drop one tensor, add a stranger, give another a wrong shape.
  ASSERT_TRUE(file.take("up1.bias").ok());
  Tensor extra = Tensor::zeros({3}).value(), wrong = Tensor::zeros({16, 8, 3, 3}).value();
  file.tensors.push_back({"bogus.weight", std::move(extra)});
  *file.find("inc.conv_block.3.weight") = std::move(wrong);
  auto law = models::QcaUnet::create(4, 16).value();
  auto s = law.load(file, "modified");
  ASSERT_FALSE(s.ok());
  const std::string msg = s.error().to_string();
  EXPECT_NE(msg.find("missing 'up1.bias'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unexpected 'bogus.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'inc.conv_block.3.weight' has shape [16, 8, 3, 3]"), std::string::npos) << msg;
  // A law of another size does not load either.
  auto wider = models::QcaUnet::create(8, 16).value();
  EXPECT_FALSE(wider.load(kDir / "qca_law_d4_h16.safetensors").ok());
}

TEST(Qca, GridMustBeMultipleOfFour) {
  auto law = models::QcaUnet::create(2, 8).value();
  law.init_default(1, true);
  Tensor psi = Tensor::zeros({1, 18, 16, 2, 2}).value();
  auto s = models::qca_step(law, models::QcaLaw::unet, 0.01f, psi);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(s.error().message.find("multiple of 4"), std::string::npos) << s.error().to_string();
  EXPECT_FALSE(models::make_qca_state(models::QcaInit::random, 1, 16, 10, 2, 1).ok());
  Tensor wrong_d = Tensor::zeros({1, 16, 16, 3, 2}).value();
  EXPECT_EQ(models::qca_step(law, models::QcaLaw::unet, 0.01f, wrong_d).error().code, ErrorCode::shape_mismatch);
  EXPECT_FALSE(models::parse_qca_law("unet-magic").ok());
}

TEST(Qca, DefaultInitFollowsPyTorch) {
  auto law = models::QcaUnet::create(8, 32).value();
  EXPECT_EQ(law.parameter_count(), 1747664);  // the spec's count for d = 8, h = 32
  EXPECT_NEAR(law.flops(128, 128) / 1e9, 7.95, 0.01);
  law.init_default(42, true);
  for (const auto& p : law.parameters()) {
    const float* v = p.value->data<float>();
    double max_abs = 0;
    for (std::int64_t i = 0; i < p.value->numel(); ++i) max_abs = std::max(max_abs, double(std::abs(v[i])));
    if (p.name == "outc.weight") {
      EXPECT_LT(max_abs, 1e-4) << p.name;  // N(0, 1e-5^2)
      EXPECT_GT(max_abs, 1e-6) << p.name;
    } else if (p.name.find("conv_block.1.weight") != std::string::npos || p.name.find("conv_block.4.weight") != std::string::npos) {
      EXPECT_EQ(max_abs, 1.0) << p.name;
    } else if (p.name == "up1.weight" || p.name == "up1.bias") {
      EXPECT_LE(max_abs, 1.0 / std::sqrt(128.0 * 4)) << p.name;  // fan_in = Cout * 4
      EXPECT_GT(max_abs, 0.9 / std::sqrt(128.0 * 4)) << p.name;
    } else if (p.name == "inc.conv_block.0.weight") {
      EXPECT_LE(max_abs, 1.0 / std::sqrt(16.0 * 9)) << p.name;
      EXPECT_GT(max_abs, 0.9 / std::sqrt(16.0 * 9)) << p.name;
    }
  }
}

TEST(Qca, InitialStates) {
  Tensor noise = models::make_qca_state(models::QcaInit::complex_noise, 2, 8, 12, 5, 7).value();
  for (std::int64_t i = 0; i < noise.numel(); i += 2) {
    const float re = noise.data<float>()[i], im = noise.data<float>()[i + 1];
    ASSERT_NEAR(re * re + im * im, 1.0, 1e-6);
    ASSERT_GT(re, 0.5f);  // |n| = 0.1 |N(0,1)| < pi / 3 in practice
  }
  Tensor rnd = models::make_qca_state(models::QcaInit::random, 1, 8, 8, 5, 7).value();
  EXPECT_LE(models::qca_max_norm_error(rnd), 1e-6);
  Tensor again = models::make_qca_state(models::QcaInit::random, 1, 8, 8, 5, 7).value();
  for (std::int64_t i = 0; i < rnd.numel(); ++i) ASSERT_EQ(rnd.data<float>()[i], again.data<float>()[i]);
}
