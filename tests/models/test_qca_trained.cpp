// The QCA step with a trained law (tests/data/qca/qca_trained_d4_h6*.safetensors, written by
// scripts/pytorch/train_qca_law.py): weights that PyTorch training produced and saved as a checkpoint
// with torch.compile's '_orig_mod.' names, converted by scripts/pytorch/pth_to_safetensors.py (f16, exact:
// the law was rounded to f16 before the reference was computed). Unlike an initialisation, training
// moves the GroupNorm affine parameters and outc, so every part of the law shapes psi.
//
// Tolerances as in test_qca.cpp: relative L2 error of psi <= 1e-5 after 1 step (measured 3.8e-7), <= 1e-4
// after 10 (measured 1.8e-5; PyTorch's own f32 trajectory is 1.1e-5 from its f64 one, the law amplifies
// rounding differences step after step), every cell's norm 1 +- 1e-6.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>
#include <string>

#include "ferrite/io/safetensors.hpp"
#include "ferrite/models/qca.hpp"

using namespace ferrite;
namespace fs = std::filesystem;

namespace {

const fs::path kDir = fs::path(FERRITE_TEST_DATA_DIR) / "qca";

}  // namespace

TEST(QcaTrained, ConvertedCheckpointMatchesPyTorchOverTenSteps) {
  auto law = models::QcaUnet::create(4, 6).value();
  const auto loaded = law.load(kDir / "qca_trained_d4_h6.safetensors");
  ASSERT_TRUE(loaded.ok()) << loaded.error().to_string();
  auto states = io::load_safetensors(kDir / "qca_trained_d4_h6_states.safetensors");
  ASSERT_TRUE(states.ok()) << states.error().to_string();
  EXPECT_EQ(states->metadata["law"], "unet-unitary");
  EXPECT_EQ(states->metadata["steps"], "10");
  const Tensor* psi0 = states->find("psi0");
  const Tensor* psi1 = states->find("psi.1");
  const Tensor* psi10 = states->find("psi");
  ASSERT_TRUE(psi0 && psi1 && psi10);
  ASSERT_EQ(psi0->shape(), (Shape{1, 16, 16, 4, 2}));

  // Training moved the law well away from Aetheria's init (outc.weight ~ 1e-5): it is not a no-op.
  auto params = law.parameters();
  for (const auto& p : params)
    if (p.name == "outc.weight") {
      double mean_abs = 0;
      for (std::int64_t i = 0; i < p.value->numel(); ++i) mean_abs += std::abs(p.value->data<float>()[i]);
      EXPECT_GT(mean_abs / double(p.value->numel()), 1e-2);
    }

  Tensor psi = psi0->clone().value();
  Context ctx = Context::cpu();
  ASSERT_TRUE(models::qca_step(ctx, law, models::QcaLaw::unet_unitary, 0.01f, psi).ok());
  const double moved = models::relative_l2_error(psi, *psi0).value();
  EXPECT_GT(moved, 0.5) << "one step of the trained law should change psi a lot";
  const double err1 = models::relative_l2_error(psi, *psi1).value();
  EXPECT_LE(err1, 1e-5) << "after 1 step";
  for (int s = 1; s < 10; ++s) ASSERT_TRUE(models::qca_step(ctx, law, models::QcaLaw::unet_unitary, 0.01f, psi).ok());
  const double err10 = models::relative_l2_error(psi, *psi10).value();
  EXPECT_LE(err10, 1e-4) << "after 10 steps";
  EXPECT_LE(models::qca_max_norm_error(psi), 1e-6);
  std::ostringstream measured;
  measured << std::scientific << std::setprecision(3) << err1 << " after 1 step, " << err10 << " after 10";
  RecordProperty("rel_l2_vs_pytorch", measured.str());
}
