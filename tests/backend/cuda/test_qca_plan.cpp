// The CUDA backend's QCA plan (backend/cuda/impl/qca_plan.hpp) executed on the host: the GPU's
// sequence of operations, workspace offsets and per-element formulas, with a plain loop standing in
// for each kernel and the CPU SGEMM for cuBLAS. Checked against the CPU oracles op by op (odd channel
// counts and sizes) and against models::qca_step and the PyTorch fixtures for whole steps. Runs on
// every machine (no GPU needed); the kernels themselves are checked against the same oracles by
// suite `cuda` on a GPU (tests/backend/cuda/test_cuda_qca.cpp).
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "ferrite/backend/cpu/gemm.hpp"
#include "ferrite/backend/cpu/reference/conv.hpp"
#include "ferrite/backend/cuda/impl/qca_plan.hpp"
#include "ferrite/core/rng.hpp"
#include "ferrite/io/safetensors.hpp"
#include "ferrite/models/qca.hpp"

using namespace ferrite;
namespace plan = ferrite::cuda::qca_plan;
using i64 = std::int64_t;

namespace {

// One host loop per kernel of impl/qca_kernels.cuh, calling the same per-element functions.
struct HostExecutor {
  i64 partial_capacity = 0;  // doubles available at `partials`

  Status pack(const float* psi, i64 d, ChwView<float> x) {
    const i64 P = x.plane();
    for (i64 c = 0; c < 2 * d; ++c)
      for (i64 p = 0; p < P; ++p) x.data[c * P + p] = plan::pack_value(psi, d, c, p);
    return {};
  }
  Status im2col3x3(ChwView<const float> x, float* cols) {
    const i64 P = x.plane();
    for (i64 row = 0; row < x.channels * 9; ++row)
      for (i64 p = 0; p < P; ++p) cols[row * P + p] = plan::im2col3x3_value(x.data, x.height, x.width, row, p);
    return {};
  }
  Status gemm(Trans ta, Trans tb, i64 m, i64 n, i64 k, const float* a, i64 lda, const float* b, i64 ldb, float* c,
              i64 ldc) {
    cpu::sgemm(ta, tb, m, n, k, 1.f, a, lda, b, ldb, 0.f, c, ldc);
    return {};
  }
  Status gemm_batched(Trans ta, i64 m, i64 n, i64 k, const float* a, i64 lda, i64 sa, const float* b, i64 ldb, i64 sb,
                      float* c, i64 ldc, i64 sc, i64 batch) {
    for (i64 i = 0; i < batch; ++i)
      cpu::sgemm(ta, Trans::no, m, n, k, 1.f, a + i * sa, lda, b + i * sb, ldb, 0.f, c + i * sc, ldc);
    return {};
  }
  Status winograd_input(ChwView<const float> x, float* v) {
    const i64 T = plan::winograd_tiles(x.height, x.width), slab = x.channels * T;
    for (i64 ci = 0; ci < x.channels; ++ci)
      for (i64 t = 0; t < T; ++t) {
        float tile[16];
        plan::winograd_input_tile(x.data, x.height, x.width, ci, t, tile);
        for (int xi = 0; xi < 16; ++xi) v[xi * slab + ci * T + t] = tile[xi];
      }
    return {};
  }
  Status winograd_output(const float* m, ChwView<float> y) {
    const i64 T = plan::winograd_tiles(y.height, y.width);
    for (i64 co = 0; co < y.channels; ++co)
      for (i64 t = 0; t < T; ++t) plan::winograd_output_tile(m, y.channels * T, T, co, t, y.height, y.width, y.channel(co));
    return {};
  }
  // The fused kernel, one block at a time, each phase for all threads before the next (the barriers).
  Status winograd_fused(ChwView<const float> x, const float* u, ChwView<float> y) {
    const int cin = int(x.channels), cout = int(y.channels), H = int(x.height), W = int(x.width);
    const int tiles = int(plan::winograd_tiles(x.height, x.width));
    std::vector<float> smem(plan::kFusedSmem, std::nanf(""));
    std::vector<std::array<float, 32>> acc(plan::kFusedThreads);
    for (int t0 = 0; t0 < tiles; t0 += plan::kFusedTiles)
      for (int co0 = 0; co0 < cout; co0 += plan::kFusedCout) {
        for (auto& a : acc) a.fill(0.f);
        for (int k0 = 0; k0 < cin; k0 += plan::kFusedK) {
          for (int tid = 0; tid < plan::kFusedThreads; ++tid)
            plan::fused_load(x.data, u, cin, cout, H, W, tiles, t0, co0, k0, tid, smem.data(), smem.data() + plan::kFusedVs);
          for (int tid = 0; tid < plan::kFusedThreads; ++tid)
            plan::fused_accumulate(tid, smem.data(), smem.data() + plan::kFusedVs, acc[std::size_t(tid)].data());
        }
        for (int tid = 0; tid < plan::kFusedThreads; ++tid) plan::fused_store(tid, acc[std::size_t(tid)].data(), smem.data());
        for (int tid = 0; tid < plan::kFusedThreads; ++tid)
          plan::fused_output(tid, smem.data(), cout, H, W, tiles, t0, co0, y.data);
      }
    return {};
  }
  Status group_norm_elu(ChwView<float> y, i64 groups, const float* gamma, const float* beta, double* partials) {
    const i64 P = y.plane(), per_group = y.channels / groups, len = per_group * P;
    const i64 chunks = plan::group_chunks(len);
    if (groups * chunks * 2 > partial_capacity)
      return make_error(ErrorCode::internal, "HostExecutor::group_norm_elu", "partials overflow the layout's capacity");
    for (i64 g = 0; g < groups; ++g)
      for (i64 k = 0; k < chunks; ++k) {
        double s = 0, q = 0;
        const float* base = y.data + g * len;
        for (i64 i = k * plan::kGroupChunk; i < std::min(len, (k + 1) * plan::kGroupChunk); ++i) {
          s += base[i];
          q += double(base[i]) * base[i];
        }
        partials[(g * chunks + k) * 2] = s;
        partials[(g * chunks + k) * 2 + 1] = q;
      }
    for (i64 c = 0; c < y.channels; ++c) {
      const i64 g = c / per_group;
      const plan::GroupStats st = plan::group_stats(partials + g * chunks * 2, int(chunks), double(len), plan::kNormEps);
      const float scale = plan::norm_scale(st, gamma, int(c)), shift = beta[c];
      for (i64 p = 0; p < P; ++p) y.data[c * P + p] = plan::norm_value(y.data[c * P + p], st.mean, scale, shift, true);
    }
    return {};
  }
  Status maxpool2x2(ChwView<const float> x, ChwView<float> y) {
    for (i64 c = 0; c < y.channels; ++c)
      for (i64 oy = 0; oy < y.height; ++oy)
        for (i64 ox = 0; ox < y.width; ++ox) y(c, oy, ox) = plan::maxpool2x2_value(x.data, x.height, x.width, c, oy, ox);
    return {};
  }
  Status conv_t_scatter(const float* taps, const float* bias, ChwView<float> y) {
    for (i64 c = 0; c < y.channels; ++c)
      for (i64 oy = 0; oy < y.height; ++oy)
        for (i64 ox = 0; ox < y.width; ++ox)
          y(c, oy, ox) = plan::conv_t_value(taps, bias, y.height / 2, y.width / 2, c, oy, ox);
    return {};
  }
  Status update(ChwView<const float> o, const float* bias, bool unitary, float gamma, float* psi, i64 d) {
    for (i64 p = 0; p < o.plane(); ++p) plan::update_cell(o.data, bias, o.plane(), d, unitary, gamma, psi + p * d * 2, p);
    return {};
  }
};

std::vector<float> random_vector(i64 n, std::uint64_t seed, float scale = 1.f, float offset = 0.f) {
  std::vector<float> v(static_cast<std::size_t>(n));
  const Philox rng(seed, 1);
  for (i64 i = 0; i < n; ++i) v[std::size_t(i)] = offset + scale * rng.normal(std::uint64_t(i));
  return v;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int reported = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!(std::abs(double(got[i]) - want[i]) <= tol * std::max(1.0, std::abs(double(want[i])))) && reported++ < 5)
      ADD_FAILURE() << what << ": element " << i << " got " << got[i] << ", oracle " << want[i];
}

// Parameters of a law in models::QcaUnet::parameters() order, as plan pointers.
std::vector<const float*> pointers(models::QcaUnet& law) {
  std::vector<const float*> p;
  for (const auto& param : law.parameters()) p.push_back(param.value->data<float>());
  return p;
}

// Steps psi (f32 [B, H, W, d, 2]) `steps` times through the plan on the host, with Winograd 3x3
// convolutions or im2col.
void plan_steps(models::QcaUnet& law, bool unitary, Tensor& psi, int steps, bool winograd, bool fused = false) {
  const i64 d = law.d_state(), h = law.hidden(), H = psi.dim(1), W = psi.dim(2);
  const auto ptrs = pointers(law);
  auto weights = plan::bind_weights(ptrs, d, h);
  ASSERT_TRUE(weights.ok()) << weights.error().to_string();
  std::vector<std::vector<float>> transformed;
  if (winograd)
    plan::for_each_conv3x3(*weights, [&](const float* w, i64 cout, i64 cin, const float*& slot) {
      transformed.emplace_back(std::size_t(16 * cout * cin));
      plan::winograd_weights(w, cout, cin, transformed.back().data());
      slot = transformed.back().data();
    });
  weights->fused_winograd = fused;
  const auto layout = plan::Layout::make(d, h, H, W,
                                         fused      ? plan::ConvScratch::none
                                         : winograd ? plan::ConvScratch::winograd
                                                    : plan::ConvScratch::im2col);
  std::vector<float> arena(static_cast<std::size_t>(layout.floats), std::nanf(""));  // NaN: reads of unwritten floats show
  std::vector<double> partials(static_cast<std::size_t>(layout.partial_doubles));
  const auto buffers = plan::Buffers::bind(layout, d, h, arena.data(), partials.data());
  HostExecutor ex{layout.partial_doubles};
  for (int s = 0; s < steps; ++s) {
    const Status st = plan::step(ex, *weights, buffers, unitary, 0.01f, psi.data<float>(), psi.dim(0));
    ASSERT_TRUE(st.ok()) << st.error().to_string();
  }
}

}  // namespace

TEST(QcaPlan, Conv3x3MatchesReferenceOnOddSizes) {
  const i64 cin = 5, cout = 7, H = 9, W = 11, P = H * W;
  const auto x = random_vector(cin * P, 1), w = random_vector(cout * cin * 9, 2, 0.3f);
  std::vector<float> cols(std::size_t(cin * 9 * P)), y(std::size_t(cout * P)), want(y.size());
  HostExecutor ex;
  ASSERT_TRUE(plan::conv3x3(ex, ChwView<const float>{x.data(), cin, H, W}, w.data(), nullptr,
                            ChwView<float>{y.data(), cout, H, W}, cols.data(), nullptr).ok());
  cpu::reference::conv2d_same<float>({x.data(), cin, H, W}, w.data(), 3, nullptr, {want.data(), cout, H, W});
  expect_close(y, want, 1e-5, "conv3x3");
}

TEST(QcaPlan, WinogradConv3x3MatchesReferenceOnOddAndEvenSizes) {
  // Odd sizes cut the last tile row / column; 1x1 and 2x3 images are a single (partial) tile.
  for (auto [cin, cout, H, W] : {std::tuple<i64, i64, i64, i64>{5, 7, 9, 11}, {16, 8, 8, 8}, {3, 4, 1, 1}, {6, 5, 2, 3}}) {
    const auto x = random_vector(cin * H * W, 1), w = random_vector(cout * cin * 9, 2, 0.3f);
    const i64 T = plan::winograd_tiles(H, W);
    std::vector<float> u(std::size_t(16 * cout * cin)), v(std::size_t(16 * cin * T)), m(std::size_t(16 * cout * T));
    std::vector<float> y(std::size_t(cout * H * W), std::nanf("")), want(y.size());
    plan::winograd_weights(w.data(), cout, cin, u.data());
    HostExecutor ex;
    ASSERT_TRUE(plan::conv3x3(ex, ChwView<const float>{x.data(), cin, H, W}, w.data(), u.data(),
                              ChwView<float>{y.data(), cout, H, W}, v.data(), m.data()).ok());
    cpu::reference::conv2d_same<float>({x.data(), cin, H, W}, w.data(), 3, nullptr, {want.data(), cout, H, W});
    expect_close(y, want, 1e-5, "winograd " + std::to_string(H) + "x" + std::to_string(W));
  }
}

TEST(QcaPlan, FusedWinogradMatchesReferenceAcrossBlocks) {
  // Cin not a multiple of the 8-channel chunk, Cout not of the 16-channel block, tiles not of the
  // 32-tile block; 2 x 3 tile blocks at 21 x 25 (143 tiles); a single partial tile at 1 x 1.
  for (auto [cin, cout, H, W] : {std::tuple<i64, i64, i64, i64>{5, 7, 9, 11}, {19, 33, 21, 25}, {3, 4, 1, 1}, {16, 16, 8, 8}}) {
    const auto x = random_vector(cin * H * W, 1), w = random_vector(cout * cin * 9, 2, 0.3f);
    std::vector<float> u(std::size_t(16 * cout * cin)), y(std::size_t(cout * H * W), std::nanf("")), want(y.size());
    plan::winograd_weights(w.data(), cout, cin, u.data());
    HostExecutor ex;
    ASSERT_TRUE(plan::conv3x3(ex, ChwView<const float>{x.data(), cin, H, W}, w.data(), u.data(),
                              ChwView<float>{y.data(), cout, H, W}, nullptr, nullptr, /*fused=*/true).ok());
    cpu::reference::conv2d_same<float>({x.data(), cin, H, W}, w.data(), 3, nullptr, {want.data(), cout, H, W});
    expect_close(y, want, 1e-5, "fused winograd " + std::to_string(cin) + "->" + std::to_string(cout) + " at " +
                                    std::to_string(H) + "x" + std::to_string(W));
  }
}

TEST(QcaPlan, GroupNormEluMatchesReferenceAcrossChunks) {
  // 20 channels -> 2 groups; 24 -> 3; 16 channels at 40x40 -> 2 groups of 12,800 floats = 4 chunks each;
  // 8 channels -> 1 group. Offset data (mean 3) checks the one-pass variance.
  for (auto [C, H, W] : {std::tuple<i64, i64, i64>{20, 7, 9}, {24, 5, 3}, {16, 40, 40}, {8, 13, 11}}) {
    const i64 P = H * W, groups = group_norm_groups(C);
    auto y = random_vector(C * P, 3 + C, 2.f, 3.f);
    const auto x = y;
    const auto gamma = random_vector(C, 4, 0.5f, 1.f), beta = random_vector(C, 5, 0.5f);
    std::vector<double> partials(std::size_t(groups * plan::group_chunks(C / groups * P) * 2));
    HostExecutor ex{i64(partials.size())};
    ASSERT_TRUE(ex.group_norm_elu({y.data(), C, H, W}, groups, gamma.data(), beta.data(), partials.data()).ok());
    std::vector<float> want(y.size());
    cpu::reference::group_norm<float>({x.data(), C, H, W}, groups, gamma.data(), beta.data(), 1e-5, true,
                                      {want.data(), C, H, W});
    // 2e-5, not the convolutions' 1e-5: the inputs (mean 3, up to ~10) are centred in float, so the
    // rounding is relative to |x| rather than to the O(1) output, and expm1 adds its own; the oracle
    // works in double throughout.
    expect_close(y, want, 2e-5, "group_norm C=" + std::to_string(C));
  }
}

TEST(QcaPlan, PoolAndTransposedConvMatchReference) {
  {
    const i64 C = 3, H = 9, W = 11;  // floor: 4 x 5
    const auto x = random_vector(C * H * W, 6);
    std::vector<float> y(std::size_t(C * 4 * 5)), want(y.size());
    HostExecutor ex;
    ASSERT_TRUE(ex.maxpool2x2({x.data(), C, H, W}, {y.data(), C, 4, 5}).ok());
    cpu::reference::maxpool2x2<float>({x.data(), C, H, W}, {want.data(), C, 4, 5});
    expect_close(y, want, 0.0, "maxpool");
  }
  {
    const i64 cin = 6, cout = 5, H = 3, W = 5;
    const auto x = random_vector(cin * H * W, 7), w = random_vector(cin * cout * 4, 8, 0.4f), b = random_vector(cout, 9);
    std::vector<float> taps(std::size_t(cout * 4 * H * W)), y(std::size_t(cout * 4 * H * W)), want(y.size());
    HostExecutor ex;
    ASSERT_TRUE(plan::conv_transpose(ex, ChwView<const float>{x.data(), cin, H, W}, w.data(), b.data(),
                                     ChwView<float>{y.data(), cout, 2 * H, 2 * W}, taps.data()).ok());
    cpu::reference::conv_transpose2d_k2s2<float>({x.data(), cin, H, W}, w.data(), b.data(), {want.data(), cout, 2 * H, 2 * W});
    expect_close(y, want, 1e-5, "conv_transpose");
  }
}

TEST(QcaPlan, UpdateMatchesTheModelsCellUpdate) {
  const i64 d = 3, H = 4, W = 8, P = H * W;
  for (auto law : {models::QcaLaw::unet, models::QcaLaw::unet_unitary}) {
    Tensor psi = models::make_qca_state(models::QcaInit::random, 1, H, W, d, 11).value();
    Tensor want = psi.clone().value();
    const auto o = random_vector(2 * d * P, 12), bias = random_vector(2 * d, 13);
    std::vector<float> o_biased(o);
    for (i64 c = 0; c < 2 * d; ++c)
      for (i64 p = 0; p < P; ++p) o_biased[std::size_t(c * P + p)] += bias[std::size_t(c)];
    models::qca_update_cells({o_biased.data(), 2 * d, H, W}, law, 0.01f, want, 0);
    HostExecutor ex;
    ASSERT_TRUE(ex.update({o.data(), 2 * d, H, W}, bias.data(), law == models::QcaLaw::unet_unitary, 0.01f,
                          psi.data<float>(), d).ok());
    std::vector<float> got(psi.data<float>(), psi.data<float>() + psi.numel()),
        ref(want.data<float>(), want.data<float>() + want.numel());
    expect_close(got, ref, 1e-6, std::string(models::to_string(law)));
  }
}

TEST(QcaPlan, StepMatchesTheCpuModelOnABatchOfNonSquareGrids) {
  auto law = models::QcaUnet::create(3, 10).value();  // odd d, hidden not a multiple of 8 (single-group norms)
  law.init_default(21, /*small_outc=*/false);
  const Tensor psi = models::make_qca_state(models::QcaInit::random, 2, 20, 12, 3, 22).value();
  for (int variant = 0; variant < 3; ++variant)  // im2col, winograd, fused winograd
    for (auto kind : {models::QcaLaw::unet_unitary, models::QcaLaw::unet}) {
      const bool winograd = variant > 0;
      Tensor got = psi.clone().value(), want = psi.clone().value();
      plan_steps(law, kind == models::QcaLaw::unet_unitary, got, 2, winograd, variant == 2);
      for (int s = 0; s < 2; ++s) ASSERT_TRUE(models::qca_step(law, kind, 0.01f, want).ok());
      const double err = models::relative_l2_error(got, want).value();
      EXPECT_LE(err, 1e-5) << models::to_string(kind) << " variant " << variant << " (im2col, winograd, fused)";
      EXPECT_LE(models::qca_max_norm_error(got), 1e-6);
    }
}

TEST(QcaPlan, StepMatchesPyTorch) {
  const auto dir = std::filesystem::path(FERRITE_TEST_DATA_DIR) / "qca";
  auto law = models::QcaUnet::create(4, 16).value();
  ASSERT_TRUE(law.load(dir / "qca_law_d4_h16.safetensors").ok());
  auto states = io::load_safetensors(dir / "qca_states_d4_g16.safetensors");
  ASSERT_TRUE(states.ok()) << states.error().to_string();
  for (int variant = 0; variant < 3; ++variant) {
    const bool winograd = variant > 0, fused = variant == 2;
    const char* algo = fused ? "fused winograd" : winograd ? "winograd" : "im2col";
    for (auto kind : {models::QcaLaw::unet, models::QcaLaw::unet_unitary}) {
      const std::string name(models::to_string(kind));
      Tensor psi = states->find("psi0")->clone().value();
      plan_steps(law, kind == models::QcaLaw::unet_unitary, psi, 1, winograd, fused);
      const double err = models::relative_l2_error(psi, *states->find("psi1." + name)).value();
      EXPECT_LE(err, 1e-5) << name << " " << algo;
      std::printf("[ info ] plan on host (%s), %s: relative L2 error after 1 step %.3g\n", algo, name.c_str(), err);
    }
    Tensor psi = states->find("psi0")->clone().value();
    plan_steps(law, true, psi, 10, winograd, fused);
    const double err = models::relative_l2_error(psi, *states->find("psi10.unet-unitary")).value();
    EXPECT_LE(err, 1e-4) << algo;
    EXPECT_LE(models::qca_max_norm_error(psi), 1e-6) << algo;
    std::printf("[ info ] plan on host (%s), unet-unitary: relative L2 error after 10 steps %.3g\n", algo, err);
  }
}

TEST(QcaPlan, LayoutBuffersAreDisjointAndAligned) {
  for (auto [d, h, H, W] : {std::tuple<i64, i64, i64, i64>{8, 32, 128, 128}, {3, 10, 20, 12}, {4, 16, 16, 16}}) {
    const i64 P = H * W, T = plan::winograd_tiles(H, W);
    i64 floats[3] = {};
    for (auto scratch : {plan::ConvScratch::im2col, plan::ConvScratch::winograd, plan::ConvScratch::none}) {
      const auto l = plan::Layout::make(d, h, H, W, scratch);
      floats[int(scratch)] = l.floats;
      // The conv scratch each path uses: im2col's matrix (at least conv_up2.conv0's, Cin 3h at full
      // size), Winograd's V and M (the same layer's), nothing for the fused kernel.
      const i64 cols = scratch == plan::ConvScratch::im2col ? 3 * h * 9 * P
                       : scratch == plan::ConvScratch::winograd ? 3 * h * 16 * T : 0;
      const i64 m = scratch == plan::ConvScratch::winograd ? 16 * h * T : 0;
      // (offset, floats) in arena order; each must end at or before the next begins.
      const std::vector<std::pair<i64, i64>> spans = {
          {l.x, 2 * d * P}, {l.o, 2 * d * P}, {l.cat2, 3 * h * P}, {l.tmp_full, h * P}, {l.c2, h * P},
          {l.pool1, h * P / 4}, {l.cat1, 6 * h * P / 4}, {l.tmp_half, 4 * h * P / 4}, {l.c1, 4 * h * P / 4},
          {l.pool2, 2 * h * P / 16}, {l.x3, 4 * h * P / 16}, {l.tmp_quarter, 8 * h * P / 16}, {l.bottom, 8 * h * P / 16},
          {l.cols, cols}, {l.winograd_m, m}, {l.taps, 2 * h * 4 * P / 4}};
      for (std::size_t i = 0; i < spans.size(); ++i) {
        EXPECT_EQ(spans[i].first % 64, 0) << i;
        const i64 end = spans[i].first + spans[i].second;
        EXPECT_LE(end, i + 1 < spans.size() ? spans[i + 1].first : l.floats) << i;
      }
    }
    // Each path allocates only its own scratch: the fused kernel's arena is the smallest.
    EXPECT_LT(floats[int(plan::ConvScratch::none)], floats[int(plan::ConvScratch::winograd)]);
    EXPECT_LT(floats[int(plan::ConvScratch::winograd)], floats[int(plan::ConvScratch::im2col)]);
  }
}
