#pragma once
// The QCA simulation step of shared/specs/qca-step.md: a fixed 2-level U-Net (the "law") proposes a
// change for every cell of an H x W lattice of complex d-vectors; the engine applies it and
// renormalizes each cell. Inference only, CPU (ops/conv.hpp, ops/norm.hpp, ops/pool.hpp).
//
//   auto law = models::QcaUnet::create(8, 32).value();          // d_state, hidden
//   law.init_default(seed, /*small_outc=*/false);  or  FE_TRY(law.load("law.safetensors"));
//   auto psi = models::make_qca_state(models::QcaInit::complex_noise, 1, 128, 128, 8, seed).value();
//   FE_TRY(models::qca_step(law, models::QcaLaw::unet_unitary, 0.01f, psi));
//
// psi is stored as f32 [B, H, W, d, 2] (re, im): the memory layout of complex64 [B, H, W, d], i.e.
// torch.view_as_real(psi). The U-Net runs on the planar X[2d, H, W] of one sample (re channels, then
// im), and its skip connections cost no copy: down1's output is written straight into channels
// [4h, 6h) of conv_up1's input buffer (and inc's into [2h, 3h) of conv_up2's), the transposed
// convolutions into channels [0, 4h) / [0, 2h).
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <tbb/parallel_for.h>

#include "ferrite/core/result.hpp"
#include "ferrite/core/rng.hpp"
#include "ferrite/tensor/tensor.hpp"
#include "ferrite/io/safetensors.hpp"
#include "ferrite/nn/init.hpp"
#include "ferrite/nn/parameter.hpp"
#include "ferrite/nn/state_dict.hpp"
#include "ferrite/core/chw.hpp"
#include "ferrite/ops/conv.hpp"
#include "ferrite/ops/norm.hpp"
#include "ferrite/ops/pool.hpp"

namespace ferrite::models {

// How the law's output m acts on a cell: "unet" adds it (g = m), "unet-unitary" multiplies it
// component-wise (g_c = m_c * psi_c, complex).
enum class QcaLaw { unet, unet_unitary };

inline Result<QcaLaw> parse_qca_law(std::string_view name) {
  if (name == "unet") return QcaLaw::unet;
  if (name == "unet-unitary" || name == "unet_unitary") return QcaLaw::unet_unitary;
  return make_error(ErrorCode::invalid_argument, "parse_qca_law",
                    "unknown law '" + std::string(name) + "' (expected unet or unet-unitary)");
}
inline std::string_view to_string(QcaLaw law) { return law == QcaLaw::unet ? "unet" : "unet-unitary"; }

// H and W must be multiples of 4: two 2x poolings, then the upsampled maps must match the skips.
inline Status check_qca_grid(std::int64_t height, std::int64_t width) {
  if (height <= 0 || width <= 0 || height % 4 != 0 || width % 4 != 0)
    return make_error(ErrorCode::invalid_argument, "qca",
                      "the grid must be a positive multiple of 4 in both directions (two 2x2 poolings before "
                      "the skip connections), got " + std::to_string(height) + "x" + std::to_string(width),
                      "[" + std::to_string(height) + ", " + std::to_string(width) + "]");
  return {};
}

// Conv3x3 (no bias) -> GroupNorm -> ELU -> Conv3x3 (no bias) -> GroupNorm -> ELU, PyTorch indices
// 0, 1, (2), 3, 4, (5) of nn.Sequential `conv_block`.
struct QcaConvBlock {
  std::int64_t cin = 0, cout = 0;
  Tensor conv0, norm1_w, norm1_b, conv3, norm4_w, norm4_b;

  static Result<QcaConvBlock> create(std::int64_t cin, std::int64_t cout) {
    QcaConvBlock b;
    b.cin = cin;
    b.cout = cout;
    FE_TRY_ASSIGN(b.conv0, Tensor::zeros({cout, cin, 3, 3}));
    FE_TRY_ASSIGN(b.norm1_w, Tensor::full<float>({cout}, 1.f));
    FE_TRY_ASSIGN(b.norm1_b, Tensor::zeros({cout}));
    FE_TRY_ASSIGN(b.conv3, Tensor::zeros({cout, cout, 3, 3}));
    FE_TRY_ASSIGN(b.norm4_w, Tensor::full<float>({cout}, 1.f));
    FE_TRY_ASSIGN(b.norm4_b, Tensor::zeros({cout}));
    return b;
  }
  void append(nn::ParameterList& out, const std::string& prefix) {
    out.push_back({prefix + "conv_block.0.weight", &conv0, nullptr});
    out.push_back({prefix + "conv_block.1.weight", &norm1_w, nullptr});
    out.push_back({prefix + "conv_block.1.bias", &norm1_b, nullptr});
    out.push_back({prefix + "conv_block.3.weight", &conv3, nullptr});
    out.push_back({prefix + "conv_block.4.weight", &norm4_w, nullptr});
    out.push_back({prefix + "conv_block.4.bias", &norm4_b, nullptr});
  }
  // y[cout, H, W] = block(x[cin, H, W]); tmp holds at least cout channels of the same H, W.
  Status forward(ChwView<const float> x, ChwView<float> tmp, ChwView<float> y) const {
    const ChwView<float> t = tmp.channel_slice(0, cout);
    const std::int64_t groups = group_norm_groups(cout);
    FE_TRY(conv2d(x, conv0.view<float>(), {}, t));
    FE_TRY(group_norm(t, groups, norm1_w.view<float>(), norm1_b.view<float>(), 1e-5, NormActivation::elu, t));
    FE_TRY(conv2d(t, conv3.view<float>(), {}, y));
    FE_TRY(group_norm(y, groups, norm4_w.view<float>(), norm4_b.view<float>(), 1e-5, NormActivation::elu, y));
    return {};
  }
  // 2 * MACs of both convolutions at H*W pixels.
  double flops(double pixels) const { return 2.0 * pixels * 9.0 * double(cout) * double(cin + cout); }
};

class QcaUnet {
 public:
  static Result<QcaUnet> create(std::int64_t d_state, std::int64_t hidden) {
    if (d_state <= 0 || hidden <= 0)
      return make_error(ErrorCode::invalid_argument, "QcaUnet::create",
                        "d_state and hidden must be positive, got " + std::to_string(d_state) + " and " +
                            std::to_string(hidden));
    QcaUnet u;
    u.d_ = d_state;
    u.h_ = hidden;
    const std::int64_t c = 2 * d_state, h = hidden;
    FE_TRY_ASSIGN(u.inc_, QcaConvBlock::create(c, h));
    FE_TRY_ASSIGN(u.down1_, QcaConvBlock::create(h, 2 * h));
    FE_TRY_ASSIGN(u.down2_, QcaConvBlock::create(2 * h, 4 * h));
    FE_TRY_ASSIGN(u.bot_, QcaConvBlock::create(4 * h, 8 * h));
    FE_TRY_ASSIGN(u.up1_w_, Tensor::zeros({8 * h, 4 * h, 2, 2}));
    FE_TRY_ASSIGN(u.up1_b_, Tensor::zeros({4 * h}));
    FE_TRY_ASSIGN(u.conv_up1_, QcaConvBlock::create(6 * h, 4 * h));
    FE_TRY_ASSIGN(u.up2_w_, Tensor::zeros({4 * h, 2 * h, 2, 2}));
    FE_TRY_ASSIGN(u.up2_b_, Tensor::zeros({2 * h}));
    FE_TRY_ASSIGN(u.conv_up2_, QcaConvBlock::create(3 * h, h));
    FE_TRY_ASSIGN(u.outc_w_, Tensor::zeros({c, h, 1, 1}));
    FE_TRY_ASSIGN(u.outc_b_, Tensor::zeros({c}));
    return u;
  }

  std::int64_t d_state() const noexcept { return d_; }
  std::int64_t hidden() const noexcept { return h_; }

  // PyTorch state_dict names and order (Aetheria's UNet / UNetUnitary).
  nn::ParameterList parameters() {
    nn::ParameterList p;
    inc_.append(p, "inc.");
    down1_.append(p, "down1.1.");
    down2_.append(p, "down2.1.");
    bot_.append(p, "bot.");
    p.push_back({"up1.weight", &up1_w_, nullptr});
    p.push_back({"up1.bias", &up1_b_, nullptr});
    conv_up1_.append(p, "conv_up1.");
    p.push_back({"up2.weight", &up2_w_, nullptr});
    p.push_back({"up2.bias", &up2_b_, nullptr});
    conv_up2_.append(p, "conv_up2.");
    p.push_back({"outc.weight", &outc_w_, nullptr});
    p.push_back({"outc.bias", &outc_b_, nullptr});
    return p;
  }

  std::int64_t parameter_count() {
    std::int64_t n = 0;
    for (const auto& p : parameters()) n += p.value->numel();
    return n;
  }

  // PyTorch's defaults, drawn from Philox(seed, rng_stream::init + parameter index): Conv2d weight and
  // bias U(-1/sqrt(fan_in), +), fan_in = Cin*k*k; ConvTranspose2d likewise with PyTorch's fan_in of
  // a [Cin, Cout, 2, 2] weight, Cout*4; GroupNorm weight 1, bias 0. small_outc: outc.weight ~
  // N(0, 1e-5^2) as Aetheria initializes it ("small deltas").
  void init_default(std::uint64_t seed, bool small_outc) {
    auto params = parameters();
    for (std::size_t i = 0; i < params.size(); ++i) {
      const std::string& name = params[i].name;
      Tensor& t = *params[i].value;
      const std::uint64_t stream = rng_stream::init + i;
      const bool norm = name.find("conv_block.1.") != std::string::npos || name.find("conv_block.4.") != std::string::npos;
      if (norm) {
        const bool is_weight = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
        float* p = t.data<float>();
        for (std::int64_t j = 0; j < t.numel(); ++j) p[j] = is_weight ? 1.f : 0.f;
        continue;
      }
      if (small_outc && name == "outc.weight") {
        const Philox rng(seed, stream);
        float* p = t.data<float>();
        for (std::int64_t j = 0; j < t.numel(); ++j) p[j] = 1e-5f * rng.normal(std::uint64_t(j));
        continue;
      }
      std::int64_t fan_in;
      if (name.rfind("up", 0) == 0 && name.find("conv") == std::string::npos) {  // up1.*, up2.*: transposed
        const Tensor& w = name[2] == '1' ? up1_w_ : up2_w_;
        fan_in = w.dim(1) * 4;
      } else {
        const Tensor& w = *params[name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0 ? i - 1 : i].value;
        fan_in = w.dim(1) * w.dim(2) * w.dim(3);
      }
      nn::init::uniform_as<float>(t, nn::init::default_bound(fan_in), seed, stream);
    }
  }

  // Strict load by name (missing / unexpected / mis-shaped tensors are all reported, by name).
  Status load(const io::SafetensorsFile& file, const std::string& source) {
    auto params = parameters();
    return nn::load_parameters(params, file, source);
  }
  Status load(const std::filesystem::path& path) {
    auto params = parameters();
    return nn::load_parameters(params, path);
  }
  Status save(const std::filesystem::path& path) { return nn::save_parameters(parameters(), path); }

  // out[2d, H, W] = UNet(x[2d, H, W]) for one sample. Buffers are owned and reused across calls.
  Status forward(ChwView<const float> x, ChwView<float> out) {
    const std::int64_t c = 2 * d_, h = h_, H = x.height, W = x.width;
    if (x.channels != c || out.channels != c || out.height != H || out.width != W)
      return make_error(ErrorCode::shape_mismatch, "QcaUnet::forward",
                        "input and output must be [2*d_state = " + std::to_string(c) + ", H, W]",
                        x.shape().to_string() + " -> " + out.shape().to_string());
    FE_TRY(check_qca_grid(H, W));
    FE_TRY(ensure_workspace(H, W));
    Workspace& w = ws_;
    const auto view = [](Tensor& t, std::int64_t channels) {
      return ChwView<float>{t.data<float>(), channels, t.dim(1), t.dim(2)};
    };
    const ChwView<float> cat2 = view(w.cat2, 3 * h), cat1 = view(w.cat1, 6 * h);
    const ChwView<float> x1 = cat2.channel_slice(2 * h, h), u2 = cat2.channel_slice(0, 2 * h);
    const ChwView<float> x2 = cat1.channel_slice(4 * h, 2 * h), u1 = cat1.channel_slice(0, 4 * h);
    FE_TRY(inc_.forward(x, view(w.tmp_full, h), x1));
    FE_TRY(maxpool2x2(x1, view(w.pool1, h)));
    FE_TRY(down1_.forward(view(w.pool1, h), view(w.tmp_half, 4 * h), x2));
    FE_TRY(maxpool2x2(x2, view(w.pool2, 2 * h)));
    FE_TRY(down2_.forward(view(w.pool2, 2 * h), view(w.tmp_quarter, 8 * h), view(w.x3, 4 * h)));
    FE_TRY(bot_.forward(view(w.x3, 4 * h), view(w.tmp_quarter, 8 * h), view(w.bottom, 8 * h)));
    FE_TRY(conv_transpose2d_k2s2(view(w.bottom, 8 * h), up1_w_.view<float>(), up1_b_.view<float>(), u1));
    FE_TRY(conv_up1_.forward(cat1, view(w.tmp_half, 4 * h), view(w.c1, 4 * h)));
    FE_TRY(conv_transpose2d_k2s2(view(w.c1, 4 * h), up2_w_.view<float>(), up2_b_.view<float>(), u2));
    FE_TRY(conv_up2_.forward(cat2, view(w.tmp_full, h), view(w.c2, h)));
    FE_TRY(conv2d(view(w.c2, h), outc_w_.view<float>(), outc_b_.view<float>(), out));
    return {};
  }

  // FLOPs of one forward at H x W (a multiply-add = 2; norms, activations, pooling not counted).
  double flops(std::int64_t height, std::int64_t width) const {
    const double full = double(height) * double(width), half = full / 4, quarter = full / 16;
    const double h = double(h_);
    double f = inc_.flops(full) + down1_.flops(half) + down2_.flops(quarter) + bot_.flops(quarter) +
               conv_up1_.flops(half) + conv_up2_.flops(full);
    f += 2.0 * quarter * (8 * h) * (4 * h) * 4 + 2.0 * half * (4 * h) * (2 * h) * 4;  // transposed convs
    f += 2.0 * full * h * double(2 * d_);                                                // outc
    return f;
  }

 private:
  struct Workspace {
    std::int64_t height = -1, width = -1;
    Tensor cat2, tmp_full, c2;                  // H x W
    Tensor pool1, cat1, tmp_half, c1;           // H/2
    Tensor pool2, x3, tmp_quarter, bottom;      // H/4
  };

  Status ensure_workspace(std::int64_t H, std::int64_t W) {
    if (ws_.height == H && ws_.width == W) return {};
    const std::int64_t h = h_, H2 = H / 2, W2 = W / 2, H4 = H / 4, W4 = W / 4;
    Workspace w;
    w.height = H;
    w.width = W;
    FE_TRY_ASSIGN(w.cat2, Tensor::empty({3 * h, H, W}));
    FE_TRY_ASSIGN(w.tmp_full, Tensor::empty({h, H, W}));
    FE_TRY_ASSIGN(w.c2, Tensor::empty({h, H, W}));
    FE_TRY_ASSIGN(w.pool1, Tensor::empty({h, H2, W2}));
    FE_TRY_ASSIGN(w.cat1, Tensor::empty({6 * h, H2, W2}));
    FE_TRY_ASSIGN(w.tmp_half, Tensor::empty({4 * h, H2, W2}));
    FE_TRY_ASSIGN(w.c1, Tensor::empty({4 * h, H2, W2}));
    FE_TRY_ASSIGN(w.pool2, Tensor::empty({2 * h, H4, W4}));
    FE_TRY_ASSIGN(w.x3, Tensor::empty({4 * h, H4, W4}));
    FE_TRY_ASSIGN(w.tmp_quarter, Tensor::empty({8 * h, H4, W4}));
    FE_TRY_ASSIGN(w.bottom, Tensor::empty({8 * h, H4, W4}));
    ws_ = std::move(w);
    return {};
  }

  std::int64_t d_ = 0, h_ = 0;
  QcaConvBlock inc_, down1_, down2_, bot_, conv_up1_, conv_up2_;
  Tensor up1_w_, up1_b_, up2_w_, up2_b_, outc_w_, outc_b_;
  Workspace ws_;
};

// ---- state ----------------------------------------------------------------------------------------

enum class QcaInit { complex_noise, random };

inline Result<QcaInit> parse_qca_init(std::string_view name) {
  if (name == "complex_noise" || name == "complex-noise") return QcaInit::complex_noise;
  if (name == "random") return QcaInit::random;
  return make_error(ErrorCode::invalid_argument, "parse_qca_init",
                    "unknown initial state '" + std::string(name) + "' (expected complex_noise or random)");
}

// Checks that psi is f32 [B, H, W, d, 2] with a valid grid; returns nothing.
inline Status check_qca_state(const Tensor& psi, std::int64_t d_state, const char* op) {
  const Shape& s = psi.shape();
  if (psi.dtype() != DType::f32 || s.rank() != 5 || s[4] != 2 || s[3] != d_state)
    return make_error(ErrorCode::shape_mismatch, op,
                      "psi must be f32 [B, H, W, d_state = " + std::to_string(d_state) + ", 2] (complex as re, im)",
                      psi.describe());
  return check_qca_grid(s[1], s[2]);
}

// Seeded initial state, f32 [B, H, W, d, 2]. Element e = ((b*H + y)*W + x)*d + c of the state:
//   complex_noise: n = 0.1 * normal(e) of Philox(seed, stream 3000); psi = cos n + i sin n
//   random:        re = normal(2e), im = normal(2e + 1); then each cell divided by its norm.
inline Result<Tensor> make_qca_state(QcaInit init, std::int64_t batch, std::int64_t height, std::int64_t width,
                                     std::int64_t d_state, std::uint64_t seed) {
  FE_TRY(check_qca_grid(height, width));
  if (batch <= 0 || d_state <= 0)
    return make_error(ErrorCode::invalid_argument, "make_qca_state", "batch and d_state must be positive");
  FE_TRY_ASSIGN(Tensor psi, Tensor::empty({batch, height, width, d_state, 2}));
  const Philox rng(seed, 3000);
  float* p = psi.data<float>();
  const std::int64_t cells = batch * height * width;
  tbb::parallel_for(std::int64_t{0}, cells, [&](std::int64_t cell) {
    float* v = p + cell * d_state * 2;
    double norm2 = 0;
    for (std::int64_t c = 0; c < d_state; ++c) {
      const std::uint64_t e = std::uint64_t(cell * d_state + c);
      if (init == QcaInit::complex_noise) {
        const float n = 0.1f * rng.normal(e);
        v[2 * c] = std::cos(n);
        v[2 * c + 1] = std::sin(n);
      } else {
        v[2 * c] = rng.normal(2 * e);
        v[2 * c + 1] = rng.normal(2 * e + 1);
        norm2 += double(v[2 * c]) * v[2 * c] + double(v[2 * c + 1]) * v[2 * c + 1];
      }
    }
    if (init == QcaInit::random) {
      const float inv = float(1.0 / std::sqrt(norm2));
      for (std::int64_t c = 0; c < 2 * d_state; ++c) v[c] *= inv;
    }
  });
  return psi;
}

// X[2d, H, W] of sample b: X[c] = Re psi[b, :, :, c], X[d + c] = Im psi[b, :, :, c].
inline void qca_pack_planar(const Tensor& psi, std::int64_t b, ChwView<float> x) {
  const std::int64_t H = psi.dim(1), W = psi.dim(2), d = psi.dim(3), HW = H * W;
  const float* src = psi.data<float>() + b * HW * d * 2;
  tbb::parallel_for(std::int64_t{0}, H, [&](std::int64_t y) {
    for (std::int64_t p = y * W; p < (y + 1) * W; ++p)
      for (std::int64_t c = 0; c < d; ++c) {
        x.data[c * HW + p] = src[(p * d + c) * 2];
        x.data[(d + c) * HW + p] = src[(p * d + c) * 2 + 1];
      }
  });
}

// The fused per-cell update of sample b, from the law's output o[2d, H, W]:
//   m_c = o[c] + i o[d + c];  g_c = m_c psi_c (unitary) or m_c;  psi1 = psi + g - gamma psi;
//   psi' = psi1 / (sqrt(sum_c |psi1_c|^2) + 1e-9)
inline void qca_update_cells(ChwView<const float> o, QcaLaw law, float gamma, Tensor& psi, std::int64_t b) {
  const std::int64_t H = psi.dim(1), W = psi.dim(2), d = psi.dim(3), HW = H * W;
  float* base = psi.data<float>() + b * HW * d * 2;
  tbb::parallel_for(std::int64_t{0}, H, [&](std::int64_t y) {
    constexpr int kMaxD = 64;
    float re1[kMaxD], im1[kMaxD];
    for (std::int64_t p = y * W; p < (y + 1) * W; ++p) {
      float* v = base + p * d * 2;
      float norm2 = 0.f;
      for (std::int64_t c0 = 0; c0 < d; c0 += kMaxD) {  // d > 64 is processed in chunks, same formulas
        const std::int64_t c1 = std::min(d, c0 + kMaxD);
        for (std::int64_t c = c0; c < c1; ++c) {
          const float pr = v[2 * c], pi = v[2 * c + 1];
          const float mr = o.data[c * HW + p], mi = o.data[(d + c) * HW + p];
          const float gr = law == QcaLaw::unet_unitary ? mr * pr - mi * pi : mr;
          const float gi = law == QcaLaw::unet_unitary ? mr * pi + mi * pr : mi;
          const float r = (pr + gr) - gamma * pr, i = (pi + gi) - gamma * pi;
          re1[c - c0] = r;
          im1[c - c0] = i;
          norm2 += r * r + i * i;
        }
        for (std::int64_t c = c0; c < c1; ++c) {  // store psi1 until the norm is known
          v[2 * c] = re1[c - c0];
          v[2 * c + 1] = im1[c - c0];
        }
      }
      const float inv = 1.f / (std::sqrt(norm2) + 1e-9f);
      for (std::int64_t c = 0; c < 2 * d; ++c) v[c] *= inv;
    }
  });
}

// One step of the whole batch, in place. `scratch` holds X and O between calls (allocated on first use).
struct QcaScratch {
  Tensor x, o;
};

inline Status qca_step(QcaUnet& law, QcaLaw kind, float gamma, Tensor& psi, QcaScratch& scratch) {
  FE_TRY(check_qca_state(psi, law.d_state(), "qca_step"));
  const std::int64_t c = 2 * law.d_state(), H = psi.dim(1), W = psi.dim(2);
  if (scratch.x.shape() != Shape{c, H, W}) {
    FE_TRY_ASSIGN(scratch.x, Tensor::empty({c, H, W}));
    FE_TRY_ASSIGN(scratch.o, Tensor::empty({c, H, W}));
  }
  const ChwView<float> x{scratch.x.data<float>(), c, H, W}, o{scratch.o.data<float>(), c, H, W};
  for (std::int64_t b = 0; b < psi.dim(0); ++b) {
    qca_pack_planar(psi, b, x);
    FE_TRY(law.forward(x, o));
    qca_update_cells(o, kind, gamma, psi, b);
  }
  return {};
}

inline Status qca_step(QcaUnet& law, QcaLaw kind, float gamma, Tensor& psi) {
  QcaScratch scratch;
  return qca_step(law, kind, gamma, psi, scratch);
}

// ---- observables ----------------------------------------------------------------------------------

// Aetheria's "energy": mean |psi|^2 over all B*H*W*d complex elements (1/d after any step).
inline double qca_energy(const Tensor& psi) {
  const float* p = psi.data<float>();
  double s = 0;
  for (std::int64_t i = 0; i < psi.numel(); ++i) s += double(p[i]) * p[i];
  return psi.numel() ? s / double(psi.numel() / 2) : 0.0;
}

// max over cells of | ||psi_cell|| - 1 |.
inline double qca_max_norm_error(const Tensor& psi) {
  const std::int64_t per_cell = psi.dim(3) * 2, cells = psi.numel() / per_cell;
  const float* p = psi.data<float>();
  double worst = 0;
  for (std::int64_t cell = 0; cell < cells; ++cell) {
    double s = 0;
    for (std::int64_t i = 0; i < per_cell; ++i) s += double(p[cell * per_cell + i]) * p[cell * per_cell + i];
    worst = std::max(worst, std::abs(std::sqrt(s) - 1.0));
  }
  return worst;
}

// Density sum_c |psi_c|^2 per cell: f32 [B, H, W].
inline Result<Tensor> qca_density(const Tensor& psi) {
  FE_TRY_ASSIGN(Tensor out, Tensor::empty({psi.dim(0), psi.dim(1), psi.dim(2)}));
  const std::int64_t per_cell = psi.dim(3) * 2;
  const float* p = psi.data<float>();
  for (std::int64_t cell = 0; cell < out.numel(); ++cell) {
    double s = 0;
    for (std::int64_t i = 0; i < per_cell; ++i) s += double(p[cell * per_cell + i]) * p[cell * per_cell + i];
    out.data<float>()[cell] = float(s);
  }
  return out;
}

// ||a - b|| / ||b|| over all elements (b is the reference).
inline Result<double> relative_l2_error(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != DType::f32 || b.dtype() != DType::f32)
    return make_error(ErrorCode::shape_mismatch, "relative_l2_error", "tensors must be f32 of the same shape",
                      a.describe() + " vs " + b.describe());
  double num = 0, den = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    const double d = double(a.data<float>()[i]) - double(b.data<float>()[i]);
    num += d * d;
    den += double(b.data<float>()[i]) * b.data<float>()[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

}  // namespace ferrite::models
