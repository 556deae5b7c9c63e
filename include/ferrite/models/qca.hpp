#pragma once
// The QCA simulation step of shared/specs/qca-step.md: a fixed 2-level U-Net (the "law") proposes a
// change for every cell of an H x W lattice of complex d-vectors; the engine applies it and
// renormalizes each cell. Inference only. Written once over ops/ (conv2d, group_norm, maxpool2x2,
// conv_transpose2d_k2s2, complex_pack_planar, complex_cell_update): it runs on the device of the
// Context it is given, with the law's weights and the state there too.
//
//   auto law = models::QcaUnet::create(8, 32).value();          // d_state, hidden
//   law.init_default(seed, /*small_outc=*/false);  or  FE_TRY(law.load("law.safetensors"));
//   auto psi = models::make_qca_state(models::QcaInit::complex_noise, 1, 128, 128, 8, seed).value();
//   FE_TRY_ASSIGN(Context ctx, Context::create(device));
//   FE_TRY(law.to(ctx));  FE_TRY_ASSIGN(psi, psi.to(device));  // (a no-op pair on the CPU)
//   FE_TRY(models::qca_step(ctx, law, models::QcaLaw::unet_unitary, 0.01f, psi));
//
// psi is stored as f32 [B, H, W, d, 2] (re, im): the memory layout of complex64 [B, H, W, d], i.e.
// torch.view_as_real(psi). The U-Net runs on the planar X[2d, H, W] of one sample (re channels, then
// im), and its skip connections cost no copy: down1's output is written straight into channels
// [4h, 6h) of conv_up1's input buffer (and inc's into [2h, 3h) of conv_up2's), the transposed
// convolutions into channels [0, 4h) / [0, 2h). All buffers come from the context's workspace. In a
// step, outc's bias is added by the per-cell update (one pass fewer, the same float additions).
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <tbb/parallel_for.h>

#include "ferrite/core/result.hpp"
#include "ferrite/ops/complex.hpp"
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
                      Shape{height, width}.to_string());
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
  // y[cout, H, W] = block(x[cin, H, W]); tmp holds at least cout channels of the same H, W. u0, u3:
  // the Winograd-transformed weights on CUDA (empty on the CPU, whose kernel transforms per call).
  Status forward(Context& ctx, ConstTensorRef x, TensorRef tmp, TensorRef y, const Tensor& u0, const Tensor& u3) const {
    FE_TRY_ASSIGN(const TensorRef t, tmp.slice(0, 0, cout));
    const std::int64_t groups = group_norm_groups(cout);
    FE_TRY(ops::conv2d(ctx, x, conv0.cref(), {}, t, ConvAlgorithm::automatic, u0.cref()));
    FE_TRY(ops::group_norm(ctx, t, groups, norm1_w.cref(), norm1_b.cref(), 1e-5, NormActivation::elu, t));
    FE_TRY(ops::conv2d(ctx, t, conv3.cref(), {}, y, ConvAlgorithm::automatic, u3.cref()));
    FE_TRY(ops::group_norm(ctx, y, groups, norm4_w.cref(), norm4_b.cref(), 1e-5, NormActivation::elu, y));
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

  // Moves the weights to ctx's device (a no-op when they are there) and, on CUDA, transforms every
  // 3x3 convolution's weights for Winograd once (U[16][Cin][Cout], in double).
  Status to(Context& ctx) {
    auto params = parameters();
    std::vector<Tensor> moved;  // built first, so that a failure changes nothing
    for (auto& p : params)
      if (p.value->device() != ctx.device()) {
        FE_TRY_ASSIGN(moved.emplace_back(), p.value->to(ctx.device()));
      }
    std::vector<Tensor> u;
    if (ctx.device().is_cuda())
      for (const QcaConvBlock* b : blocks())
        for (const Tensor* w : {&b->conv0, &b->conv3}) {
          FE_TRY_ASSIGN(u.emplace_back(), ops::winograd_weights(ctx, *w));
        }
    std::size_t next = 0;
    for (auto& p : params)
      if (p.value->device() != ctx.device()) *p.value = std::move(moved[next++]);
    winograd_u_ = std::move(u);
    return {};
  }
  Device device() const noexcept { return outc_w_.device(); }
  // Forgets the Winograd weights: CUDA 3x3 convolutions then run im2col + SGEMM.
  void drop_winograd_weights() noexcept { winograd_u_.clear(); }

  // out[2d, H, W] = UNet(x[2d, H, W]) for one sample, on ctx's device (buffers from its workspace).
  // with_outc_bias = false leaves outc's bias out (qca_step adds it in the per-cell update).
  Status forward(Context& ctx, ConstTensorRef x, TensorRef out, bool with_outc_bias = true) {
    const std::int64_t c = 2 * d_, h = h_;
    if (x.rank() != 3 || x.dim(0) != c || out.shape != x.shape)
      return make_error(ErrorCode::shape_mismatch, "QcaUnet::forward",
                        "input and output must be [2*d_state = " + std::to_string(c) + ", H, W]",
                        x.describe() + " -> " + out.describe());
    const std::int64_t H = x.dim(1), W = x.dim(2), H2 = H / 2, W2 = W / 2, H4 = H / 4, W4 = W / 4;
    FE_TRY(check_qca_grid(H, W));
    Workspace& ws = ctx.workspace();
    FE_TRY_ASSIGN(TensorRef cat2, ws.allocate({3 * h, H, W}));
    FE_TRY_ASSIGN(TensorRef tmp_full, ws.allocate({h, H, W}));
    FE_TRY_ASSIGN(TensorRef c2, ws.allocate({h, H, W}));
    FE_TRY_ASSIGN(TensorRef pool1, ws.allocate({h, H2, W2}));
    FE_TRY_ASSIGN(TensorRef cat1, ws.allocate({6 * h, H2, W2}));
    FE_TRY_ASSIGN(TensorRef tmp_half, ws.allocate({4 * h, H2, W2}));
    FE_TRY_ASSIGN(TensorRef c1, ws.allocate({4 * h, H2, W2}));
    FE_TRY_ASSIGN(TensorRef pool2, ws.allocate({2 * h, H4, W4}));
    FE_TRY_ASSIGN(TensorRef x3, ws.allocate({4 * h, H4, W4}));
    FE_TRY_ASSIGN(TensorRef tmp_quarter, ws.allocate({8 * h, H4, W4}));
    FE_TRY_ASSIGN(TensorRef bottom, ws.allocate({8 * h, H4, W4}));
    FE_TRY_ASSIGN(const TensorRef x1, cat2.slice(0, 2 * h, 3 * h));
    FE_TRY_ASSIGN(const TensorRef u2, cat2.slice(0, 0, 2 * h));
    FE_TRY_ASSIGN(const TensorRef x2, cat1.slice(0, 4 * h, 6 * h));
    FE_TRY_ASSIGN(const TensorRef u1, cat1.slice(0, 0, 4 * h));
    const auto u = [&](std::size_t i) -> const Tensor& { return i < winograd_u_.size() ? winograd_u_[i] : empty_; };
    FE_TRY(inc_.forward(ctx, x, tmp_full, x1, u(0), u(1)));
    FE_TRY(ops::maxpool2x2(ctx, x1, pool1));
    FE_TRY(down1_.forward(ctx, pool1, tmp_half, x2, u(2), u(3)));
    FE_TRY(ops::maxpool2x2(ctx, x2, pool2));
    FE_TRY(down2_.forward(ctx, pool2, tmp_quarter, x3, u(4), u(5)));
    FE_TRY(bot_.forward(ctx, x3, tmp_quarter, bottom, u(6), u(7)));
    FE_TRY(ops::conv_transpose2d_k2s2(ctx, bottom, up1_w_.cref(), up1_b_.cref(), u1));
    FE_TRY(conv_up1_.forward(ctx, cat1, tmp_half, c1, u(8), u(9)));
    FE_TRY(ops::conv_transpose2d_k2s2(ctx, c1, up2_w_.cref(), up2_b_.cref(), u2));
    FE_TRY(conv_up2_.forward(ctx, cat2, tmp_full, c2, u(10), u(11)));
    FE_TRY(ops::conv2d(ctx, c2, outc_w_.cref(), with_outc_bias ? outc_b_.cref() : ConstTensorRef{}, out));
    return {};
  }
  // The same on the host, with a temporary CPU context (tests, one-off calls).
  Status forward(ChwView<const float> x, ChwView<float> out) {
    Context ctx = Context::cpu();
    return forward(ctx, ConstTensorRef(x.data, DType::f32, Device::cpu(), x.shape()),
                   TensorRef(out.data, DType::f32, Device::cpu(), out.shape()));
  }
  const Tensor& outc_bias() const noexcept { return outc_b_; }

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
  std::vector<const QcaConvBlock*> blocks() const { return {&inc_, &down1_, &down2_, &bot_, &conv_up1_, &conv_up2_}; }

  std::int64_t d_ = 0, h_ = 0;
  QcaConvBlock inc_, down1_, down2_, bot_, conv_up1_, conv_up2_;
  Tensor up1_w_, up1_b_, up2_w_, up2_b_, outc_w_, outc_b_;
  std::vector<Tensor> winograd_u_;  // CUDA: the 12 conv3x3 weights transformed, in blocks() order
  Tensor empty_;
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

// One step of the whole batch, in place, on ctx's device (law and psi must be there): per sample,
// pack psi into X[2d, H, W], run the U-Net, apply the per-cell update (with outc's bias).
inline Status qca_step(Context& ctx, QcaUnet& law, QcaLaw kind, float gamma, Tensor& psi) {
  FE_TRY(check_qca_state(psi, law.d_state(), "qca_step"));
  if (psi.device() != ctx.device() || law.device() != ctx.device())
    return make_error(ErrorCode::invalid_argument, "qca_step",
                      "the state and the law must be on the context's device " + ctx.device().to_string() +
                          " (psi on " + psi.device().to_string() + ", law on " + law.device().to_string() + ")");
  const std::int64_t c = 2 * law.d_state(), B = psi.dim(0), H = psi.dim(1), W = psi.dim(2), d = psi.dim(3);
  for (std::int64_t b = 0; b < B; ++b) {
    FE_TRY(ctx.begin_step());
    FE_TRY_ASSIGN(const TensorRef cells, psi.ref().rows(b, 1).reshape({H, W, d, 2}));
    FE_TRY_ASSIGN(const TensorRef x, ctx.workspace().allocate({c, H, W}));
    FE_TRY_ASSIGN(const TensorRef o, ctx.workspace().allocate({c, H, W}));
    FE_TRY(ops::complex_pack_planar(ctx, cells, x));
    FE_TRY(law.forward(ctx, x, o, /*with_outc_bias=*/false));
    FE_TRY(ops::complex_cell_update(ctx, o, law.outc_bias().cref(), cells, kind == QcaLaw::unet_unitary, gamma));
  }
  return {};
}

// The same on the host with a temporary CPU context (tests, one-off steps).
inline Status qca_step(QcaUnet& law, QcaLaw kind, float gamma, Tensor& psi) {
  Context ctx = Context::cpu();
  return qca_step(ctx, law, kind, gamma, psi);
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
