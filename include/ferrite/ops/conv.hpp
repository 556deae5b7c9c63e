#pragma once
// Convolutions on planar images (ChwView, one sample), CPU, shape-checked; float runs the fast path.
// Oracles: backend/cpu/reference/conv.hpp.
//
//   conv2d(x[Cin, H, W], weight[Cout, Cin, k, k], bias[Cout] or {}, y[Cout, H, W])
//       stride 1, zero padding k/2 ("same"), k odd (the U-Net uses k = 3 without bias, k = 1 with bias)
//   conv_transpose2d_k2s2(x[Cin, H, W], weight[Cin, Cout, 2, 2], bias[Cout] or {}, y[Cout, 2H, 2W])
//
// How conv2d is computed (the layout choice): y viewed as the matrix
// Y[Cout, H*W] equals W[Cout, Cin*k*k] (PyTorch's weight, as stored) times the im2col matrix
// cols[Cin*k*k, H*W]. The full cols matrix of a 96-channel 128x128 layer is 57 MB, so it is never
// built: the output pixels are cut into bands of n consecutive pixels, each band's cols[Cin*k*k, n]
// (about 1 MB, cache-resident) is built by one task in its thread-local scratch and multiplied by the
// packed SGEMM straight into y's columns (ld = H*W). A 1x1 convolution needs no im2col at all: x is
// already the matrix [Cin, H*W]. Every output element is accumulated by one SGEMM call over the full
// K = Cin*k*k in a fixed order, so results do not depend on the thread count.
//
// 3x3 convolutions can instead run Winograd F(2x2, 3x3) (backend/cpu/winograd.hpp): 2.25x fewer
// multiplications, a rounding error comparable to the direct path's (tests/ops/test_conv.cpp).
//   conv2d(x, weight, bias, y, ConvAlgorithm::automatic)   Winograd where it pays (winograd_pays), else direct
//   conv2d(x, weight, bias, y, ConvAlgorithm::direct)      the im2col + SGEMM path above, always
//   WinogradConv3x3 plan = WinogradConv3x3::create(weight).value();   // transform the weights once
//   conv2d(x, plan, bias, y)                                             // reuse them every call
// conv2d with a raw weight transforms it on every call (~3 ns per (co, ci) pair, more when the
// weights are cold: about 4 % of the QCA step's profile); a plan saves that when the weights do not
// change between calls (inference). After the weights change, plan.update(weight).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>

#include <tbb/parallel_for.h>

#include "ferrite/backend/cpu/gemm.hpp"
#include "ferrite/backend/cpu/winograd.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/tensor/tensor.hpp"
#include "ferrite/backend/cpu/reference/conv.hpp"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/backend/winograd_f23.hpp"
#include "ferrite/core/chw.hpp"
#include "ferrite/ops/dispatch.hpp"

namespace ferrite {

namespace conv_detail {

// The GEMM's growing 64-byte aligned buffer, one per thread (steady-state calls allocate nothing).
using Scratch = cpu::gemm_detail::PackBuffer;

inline Scratch& thread_scratch(int which) {
  thread_local Scratch buffers[2];
  return buffers[which];
}

// Target size of one band's cols block: fits Zen 4's 1 MiB L2 with room for the packed panels.
inline constexpr std::int64_t kBandFloats = 160 * 1024;

inline bool overlaps(const float* a, std::int64_t na, const float* b, std::int64_t nb) {
  return a < b + nb && b < a + na;
}

inline std::string chw_shape(const ChwView<const float>& v) { return v.shape().to_string(); }

// cols[(ci*k + ky)*k + kx, q] = x[ci, y + ky - k/2, x + kx - k/2] (0 outside) for output pixel
// p = p0 + q = y*W + x, q in [0, n). Rows are filled a run of one image row at a time: the valid
// middle is a memcpy, the padded ends are zeros.
inline void im2col_band(ChwView<const float> x, int k, std::int64_t p0, std::int64_t n, float* cols) {
  const std::int64_t H = x.height, W = x.width, pad = k / 2;
  for (std::int64_t ci = 0; ci < x.channels; ++ci) {
    const float* src = x.channel(ci);
    for (int ky = 0; ky < k; ++ky)
      for (int kx = 0; kx < k; ++kx) {
        float* row = cols + ((ci * k + ky) * k + kx) * n;
        const std::int64_t dy = ky - pad, dx = kx - pad;
        std::int64_t p = p0;
        while (p < p0 + n) {
          const std::int64_t yy = p / W, x0 = p % W;
          const std::int64_t x1 = std::min(W, x0 + (p0 + n - p));  // end of this run (exclusive)
          float* out = row + (p - p0);
          const std::int64_t sy = yy + dy;
          if (sy < 0 || sy >= H) {
            std::memset(out, 0, sizeof(float) * std::size_t(x1 - x0));
          } else {
            // valid x: 0 <= x + dx < W
            const std::int64_t lo = std::clamp<std::int64_t>(-dx, x0, x1), hi = std::clamp<std::int64_t>(W - dx, lo, x1);
            for (std::int64_t xx = x0; xx < lo; ++xx) out[xx - x0] = 0.f;
            if (hi > lo) std::memcpy(out + (lo - x0), src + sy * W + lo + dx, sizeof(float) * std::size_t(hi - lo));
            for (std::int64_t xx = hi; xx < x1; ++xx) out[xx - x0] = 0.f;
          }
          p += x1 - x0;
        }
      }
  }
}

// y[c, p] += bias[c] over rows of length n with row stride ld.
inline void add_bias_rows(float* y, std::int64_t rows, std::int64_t n, std::int64_t ld, const float* bias) {
  for (std::int64_t c = 0; c < rows; ++c) {
    float* __restrict r = y + c * ld;
    const float b = bias[c];
    for (std::int64_t i = 0; i < n; ++i) r[i] += b;
  }
}

}  // namespace conv_detail

// How conv2d computes a convolution.
//   automatic: Winograd F(2x2, 3x3) where winograd_pays(), the direct path otherwise.
//   direct:    im2col + SGEMM (any odd k; the most accurate).
//   winograd:  Winograd F(2x2, 3x3) (k = 3 only; any H, W, Cin, Cout).
enum class ConvAlgorithm { automatic, direct, winograd };

// Whether automatic picks Winograd for a 3x3 convolution of this shape. Winograd does 16 Cin Cout
// multiply-adds per 2x2 output tile instead of 36, but its transforms cost about 9 additions per
// input and output value, and its work is split over blocks of >= 32 tiles. Measured on Zen 4 with
// 2 threads (Winograd / direct time): Cin 1 or 2 at 128^2 1.15 .. 1.25 (the direct path's K = 9 Cin
// is the better GEMM); Cin 4 0.6 .. 0.9; Cin >= 8 0.35 .. 0.65 from 16 x 16 up; but 256 channels at
// 12 x 12 (36 tiles) 1.55 and at 8 x 8 about 1.0 (too few tiles to share between threads).
inline bool winograd_pays(std::int64_t cin, std::int64_t cout, std::int64_t height, std::int64_t width) {
  const std::int64_t tiles = ((height + 1) / 2) * ((width + 1) / 2);
  return cin >= 4 && cout >= 1 && height >= 8 && width >= 8 && tiles >= 64;
}

namespace conv_detail {

inline std::string conv2d_shapes(ChwView<const float> x, const Shape& ws, TensorView<const float> bias,
                                 ChwView<float> y) {
  std::string s = "x";  // (appends: GCC 12 warns falsely about "literal" + std::string&& here)
  s += chw_shape(x);
  s += ", weight";
  s += ws.to_string();
  if (bias.data) {
    s += ", bias";
    s += bias.shape.to_string();
  }
  s += " -> y";
  s += y.shape().to_string();
  return s;
}

// Shape checks of conv2d for a weight of shape ws ([Cout, Cin, k, k], k odd).
inline Status check_conv2d(ChwView<const float> x, const Shape& ws, TensorView<const float> bias, ChwView<float> y) {
  const char* op = "conv2d";
  if (ws.rank() != 4 || ws[2] != ws[3] || ws[2] % 2 == 0)
    return make_error(ErrorCode::shape_mismatch, op, "weight must be [Cout, Cin, k, k] with k odd",
                      conv2d_shapes(x, ws, bias, y));
  if (ws[1] != x.channels)
    return make_error(ErrorCode::shape_mismatch, op, "weight's Cin differs from the input's channels",
                      conv2d_shapes(x, ws, bias, y));
  if (y.channels != ws[0] || y.height != x.height || y.width != x.width)
    return make_error(ErrorCode::shape_mismatch, op, "output must be [Cout, H, W] of the input's H, W",
                      conv2d_shapes(x, ws, bias, y));
  if (bias.data && (bias.shape.rank() != 1 || bias.shape[0] != ws[0]))
    return make_error(ErrorCode::shape_mismatch, op, "bias must be [Cout]", conv2d_shapes(x, ws, bias, y));
  if (overlaps(x.data, x.numel(), y.data, y.numel()))
    return make_error(ErrorCode::invalid_argument, op, "input and output overlap (not supported in place)",
                      conv2d_shapes(x, ws, bias, y));
  return {};
}

// y = bias (or 0) everywhere: a convolution with no input channels.
inline void fill_bias(ChwView<float> y, TensorView<const float> bias) {
  for (std::int64_t c = 0; c < y.channels; ++c) std::fill_n(y.channel(c), y.plane(), bias.data ? bias.data[c] : 0.f);
}

// The transformed weights of a conv2d call without a plan: a per-thread buffer reused across calls.
// The calling thread holds it while its own parallel_for runs, during which TBB may start another
// conv2d on this thread (nested parallelism): that call sees the buffer taken and allocates its own.
class WinogradWeightLease {
 public:
  explicit WinogradWeightLease(std::size_t floats) {
    State& s = state();
    if (!s.busy) {
      s.busy = true;
      owner_ = &s;
      data_ = s.buffer.reserve(floats);
    } else {
      data_ = local_.reserve(floats);
    }
  }
  WinogradWeightLease(const WinogradWeightLease&) = delete;
  WinogradWeightLease& operator=(const WinogradWeightLease&) = delete;
  ~WinogradWeightLease() {
    if (owner_) owner_->busy = false;
  }
  float* data() const noexcept { return data_; }

 private:
  struct State {
    Scratch buffer;
    bool busy = false;
  };
  static State& state() {
    thread_local State s;
    return s;
  }
  State* owner_ = nullptr;
  Scratch local_;
  float* data_ = nullptr;
};

}  // namespace conv_detail

// The Winograd-transformed weights of one 3x3 convolution ([Cout, Cin, 3, 3] -> 16 x Cout x Cin,
// packed for the SGEMM micro-kernel): build once, convolve many times with conv2d(x, plan, bias, y).
// Move-only; holds no reference to the weight it was built from.
class WinogradConv3x3 {
 public:
  static Result<WinogradConv3x3> create(TensorView<const float> weight) {
    const Shape& ws = weight.shape;
    if (ws.rank() != 4 || ws[2] != 3 || ws[3] != 3)
      return make_error(ErrorCode::shape_mismatch, "WinogradConv3x3", "weight must be [Cout, Cin, 3, 3]",
                        "weight" + ws.to_string());
    WinogradConv3x3 plan;
    plan.cout_ = ws[0];
    plan.cin_ = ws[1];
    FE_TRY_ASSIGN(plan.packed_,
                  Tensor::empty({cpu::winograd::F23<>::packed_weight_floats(plan.cout_, plan.cin_)}));
    FE_TRY(plan.update(weight));
    return plan;
  }

  // Re-transforms after the weights changed (same shape).
  Status update(TensorView<const float> weight) {
    if (weight.shape != Shape{cout_, cin_, 3, 3})
      return make_error(ErrorCode::shape_mismatch, "WinogradConv3x3::update",
                        "weight must keep the plan's shape [" + std::to_string(cout_) + ", " + std::to_string(cin_) +
                            ", 3, 3]",
                        "weight" + weight.shape.to_string());
    if (cout_ * cin_ > 0) cpu::winograd::transform_weights(weight.data, cout_, cin_, packed_.data<float>());
    return {};
  }

  std::int64_t out_channels() const noexcept { return cout_; }
  std::int64_t in_channels() const noexcept { return cin_; }
  Shape weight_shape() const { return {cout_, cin_, 3, 3}; }
  const float* packed() const noexcept { return packed_.data<float>(); }

 private:
  Tensor packed_;
  std::int64_t cout_ = 0, cin_ = 0;
};

// y[Cout, H, W] = conv3x3(x[Cin, H, W]) + bias by Winograd F(2x2, 3x3) with a plan's weights.
inline Status conv2d(ChwView<const float> x, const WinogradConv3x3& weights, TensorView<const float> bias,
                     ChwView<float> y) {
  FE_TRY(conv_detail::check_conv2d(x, weights.weight_shape(), bias, y));
  if (y.numel() == 0) return {};
  if (x.channels == 0) {
    conv_detail::fill_bias(y, bias);
    return {};
  }
  cpu::winograd::conv3x3_f23(x, weights.packed(), bias.data, y);
  return {};
}

inline Status conv2d(ChwView<const float> x, TensorView<const float> weight, TensorView<const float> bias,
                     ChwView<float> y, ConvAlgorithm algorithm = ConvAlgorithm::automatic) {
  const Shape& ws = weight.shape;
  FE_TRY(conv_detail::check_conv2d(x, ws, bias, y));
  const int k = static_cast<int>(ws[2]);
  if (algorithm == ConvAlgorithm::winograd && k != 3)
    return make_error(ErrorCode::invalid_argument, "conv2d", "the Winograd algorithm needs a 3x3 kernel",
                      conv_detail::conv2d_shapes(x, ws, bias, y));
  const std::int64_t cout = y.channels, K = x.channels * k * k, HW = x.plane();
  if (HW == 0 || cout == 0) return {};
  if (K == 0) {  // no input channels: bias only
    conv_detail::fill_bias(y, bias);
    return {};
  }
  if (k == 3 && (algorithm == ConvAlgorithm::winograd ||
                 (algorithm == ConvAlgorithm::automatic && winograd_pays(x.channels, cout, x.height, x.width)))) {
    using F23 = cpu::winograd::F23<>;
    conv_detail::WinogradWeightLease u(std::size_t(F23::packed_weight_floats(cout, x.channels)));
    cpu::winograd::transform_weights(weight.data, cout, x.channels, u.data());
    cpu::winograd::conv3x3_f23(x, u.data(), bias.data, y);
    return {};
  }
  if (k == 1) {
    cpu::sgemm(Trans::no, Trans::no, cout, HW, K, 1.f, weight.data, K, x.data, HW, 0.f, y.data, HW);
    if (bias.data) conv_detail::add_bias_rows(y.data, cout, HW, HW, bias.data);
    return {};
  }
  // Band width: ~kBandFloats of cols, a multiple of 32 (the SGEMM's NR) when that is possible.
  std::int64_t n = std::max<std::int64_t>(64, conv_detail::kBandFloats / K);
  n = std::min(HW, n / 32 * 32);
  const std::int64_t bands = (HW + n - 1) / n;
  tbb::parallel_for(std::int64_t{0}, bands, [&](std::int64_t b) {
    const std::int64_t p0 = b * n, nb = std::min(n, HW - p0);
    float* cols = conv_detail::thread_scratch(0).reserve(std::size_t(K * nb));
    conv_detail::im2col_band(x, k, p0, nb, cols);
    // One thread per band: a nested parallel SGEMM would let this thread steal another band while
    // waiting, and that band would overwrite this thread's cols buffer still being read.
    cpu::gemm_detail::sgemm_run<xsimd::default_arch>(
        {Trans::no, Trans::no, cout, nb, K, 1.f, weight.data, K, cols, nb, 0.f, y.data + p0, HW}, 1);
    if (bias.data) conv_detail::add_bias_rows(y.data + p0, cout, nb, HW, bias.data);
  });
  return {};
}

// ConvTranspose2d(k = 2, stride 2): one SGEMM T[(co, ky, kx), H*W] = weight[Cin, Cout*4]^T x X[Cin, H*W],
// then each T row is scattered to its output pixels (2i + ky, 2j + kx) with the bias added.
inline Status conv_transpose2d_k2s2(ChwView<const float> x, TensorView<const float> weight,
                                    TensorView<const float> bias, ChwView<float> y);

// The shape checks of conv_transpose2d_k2s2 (also used by the CUDA op of the same name).
inline Status check_conv_transpose2d_k2s2(const char* op, ChwView<const float> x, TensorView<const float> weight,
                                          TensorView<const float> bias, ChwView<float> y) {
  const Shape& ws = weight.shape;
  const std::string shapes = "x" + conv_detail::chw_shape(x) + ", weight" + ws.to_string() +
                             (bias.data ? ", bias" + bias.shape.to_string() : std::string()) + " -> y" +
                             y.shape().to_string();
  if (ws.rank() != 4 || ws[2] != 2 || ws[3] != 2)
    return make_error(ErrorCode::shape_mismatch, op, "weight must be [Cin, Cout, 2, 2] (kernel 2, stride 2)", shapes);
  if (ws[0] != x.channels)
    return make_error(ErrorCode::shape_mismatch, op, "weight's Cin differs from the input's channels", shapes);
  if (y.channels != ws[1] || y.height != 2 * x.height || y.width != 2 * x.width)
    return make_error(ErrorCode::shape_mismatch, op, "output must be [Cout, 2H, 2W]", shapes);
  if (bias.data && (bias.shape.rank() != 1 || bias.shape[0] != ws[1]))
    return make_error(ErrorCode::shape_mismatch, op, "bias must be [Cout]", shapes);
  if (conv_detail::overlaps(x.data, x.numel(), y.data, y.numel()))
    return make_error(ErrorCode::invalid_argument, op, "input and output overlap (not supported in place)", shapes);
  return {};
}

inline Status conv_transpose2d_k2s2(ChwView<const float> x, TensorView<const float> weight,
                                    TensorView<const float> bias, ChwView<float> y) {
  FE_TRY(check_conv_transpose2d_k2s2("conv_transpose2d", x, weight, bias, y));
  const std::int64_t cin = x.channels, cout = y.channels, H = x.height, W = x.width, HW = H * W;
  if (y.numel() == 0) return {};
  float* taps = conv_detail::thread_scratch(1).reserve(std::size_t(cout * 4 * HW));
  if (cin > 0)
    cpu::sgemm(Trans::yes, Trans::no, cout * 4, HW, cin, 1.f, weight.data, cout * 4, x.data, HW, 0.f, taps, HW);
  else
    std::fill_n(taps, cout * 4 * HW, 0.f);
  tbb::parallel_for(std::int64_t{0}, cout, [&](std::int64_t co) {
    const float b = bias.data ? bias.data[co] : 0.f;
    for (int ky = 0; ky < 2; ++ky)
      for (std::int64_t i = 0; i < H; ++i) {
        float* __restrict out = y.channel(co) + (2 * i + ky) * y.width;
        const float* t0 = taps + (co * 4 + ky * 2 + 0) * HW + i * W;
        const float* t1 = taps + (co * 4 + ky * 2 + 1) * HW + i * W;
        for (std::int64_t j = 0; j < W; ++j) {
          out[2 * j] = t0[j] + b;
          out[2 * j + 1] = t1[j] + b;
        }
      }
  });
  return {};
}


// ================================================================================================
// The convolution ops on any device (Context): planar images [C, H, W] of one sample as TensorRefs.
//   ops::conv2d(ctx, x, weight[Cout, Cin, k, k], bias or {}, y, algorithm, winograd_u or {})
//   ops::winograd_weights(ctx, host weight[Cout, Cin, 3, 3])  -> U[16, Cin, Cout] on ctx's device
//   ops::conv_transpose2d_k2s2(ctx, x, weight[Cin, Cout, 2, 2], bias or {}, y[Cout, 2H, 2W])
// CPU f32: the kernels above (Winograd where it pays under `automatic`). CPU f64: the scalar
// reference (backend/cpu/reference/conv.hpp). CUDA: 1x1 and convT as one SGEMM (+ a bias or scatter
// kernel); 3x3 as im2col + SGEMM (direct) or Winograd F(2x2, 3x3): input transform, 16 batched
// GEMMs against U (transformed once, in double, by winograd_weights), output transform. CUDA
// Winograd needs U: without it, automatic falls back to im2col and `winograd` is an error. Scratch
// (cols, V, M, taps) comes from the context's workspace.
namespace ops {

namespace detail {
inline Status check_conv(const char* op, const ConstTensorRef& x, const ConstTensorRef& w, const ConstTensorRef& bias,
                         const ConstTensorRef& y, bool transposed) {
  const std::string shapes = fe_format("x {}, weight {}, bias {}, y {}", x.describe(), w.describe(),
                                       bias.defined() ? bias.describe() : std::string("none"), y.describe());
  if (x.rank() != 3 || y.rank() != 3 || w.rank() != 4 || !x.is_contiguous() || !y.is_contiguous() || !w.is_contiguous())
    return make_error(ErrorCode::shape_mismatch, op, "x, y must be contiguous [C, H, W], weight 4-D", shapes);
  const std::int64_t cout = transposed ? w.dim(1) : w.dim(0), cin = transposed ? w.dim(0) : w.dim(1);
  const bool spatial_ok = transposed ? (w.dim(2) == 2 && w.dim(3) == 2 && y.dim(1) == 2 * x.dim(1) && y.dim(2) == 2 * x.dim(2))
                                     : (w.dim(2) == w.dim(3) && (w.dim(2) == 1 || w.dim(2) == 3) && y.dim(1) == x.dim(1) &&
                                        y.dim(2) == x.dim(2));
  if (x.dim(0) != cin || y.dim(0) != cout || !spatial_ok)
    return make_error(ErrorCode::shape_mismatch, op,
                      transposed ? "expected x[Cin, H, W], weight [Cin, Cout, 2, 2], y[Cout, 2H, 2W]"
                                 : "expected x[Cin, H, W], weight [Cout, Cin, k, k] (k = 1 or 3), y[Cout, H, W]",
                      shapes);
  if (bias.defined() && (bias.shape != Shape{cout} || !bias.is_contiguous()))
    return make_error(ErrorCode::shape_mismatch, op, "bias must be [Cout]", shapes);
  return ok_status();
}
inline TensorView<const float> tv(const ConstTensorRef& t) { return {t.defined() ? t.ptr<float>() : nullptr, t.shape}; }
}  // namespace detail

// U[xi][ci][co] = (G g G^T)[xi] of filter g = weight[co, ci] (in double, rounded once), on ctx's device.
inline Result<Tensor> winograd_weights(Context& ctx, const Tensor& weight) {
  if (weight.dtype() != DType::f32 || weight.shape().rank() != 4 || weight.dim(2) != 3 || weight.dim(3) != 3)
    return make_error(ErrorCode::shape_mismatch, "winograd_weights", "weight must be f32 [Cout, Cin, 3, 3]", weight.describe());
  FE_TRY_ASSIGN(const Tensor host, weight.to(Device::cpu()));
  const std::int64_t cout = weight.dim(0), cin = weight.dim(1);
  FE_TRY_ASSIGN(Tensor u, Tensor::empty({16, cin, cout}));
  float tile[16];
  for (std::int64_t co = 0; co < cout; ++co)
    for (std::int64_t ci = 0; ci < cin; ++ci) {
      winograd_f23_weight_tile(host.data<float>() + (co * cin + ci) * 9, tile);
      for (int xi = 0; xi < 16; ++xi) u.data<float>()[(xi * cin + ci) * cout + co] = tile[xi];
    }
  return u.to(ctx.device());
}

inline Status conv2d(Context& ctx, ConstTensorRef x, ConstTensorRef weight, ConstTensorRef bias, TensorRef y,
                     ConvAlgorithm algorithm = ConvAlgorithm::automatic, ConstTensorRef winograd_u = {}) {
  static constexpr const char* kOp = "conv2d";
  const ConstTensorRef yc = y;
  FE_TRY_ASSIGN(const Kernel kernel, select_kernel(kOp, ctx, x.dtype,
                                                   {{"x", &x}, {"weight", &weight}, {"bias", bias.defined() ? &bias : nullptr},
                                                    {"y", &yc}, {"winograd_u", winograd_u.defined() ? &winograd_u : nullptr}}));
  FE_TRY(detail::check_conv(kOp, x, weight, bias, y, false));
  const int k = static_cast<int>(weight.dim(2));
  if (algorithm == ConvAlgorithm::winograd && k != 3)
    return make_error(ErrorCode::invalid_argument, kOp, "Winograd needs a 3x3 kernel", weight.describe());
  ProfileScope profile(ctx, kOp);
  const std::int64_t cin = x.dim(0), cout = y.dim(0), H = x.dim(1), W = x.dim(2), P = H * W;
  switch (kernel) {
    case Kernel::cpu_f32:
      return ferrite::conv2d(ChwView<const float>{x.ptr<float>(), cin, H, W}, detail::tv(weight), detail::tv(bias),
                             ChwView<float>{y.ptr<float>(), cout, H, W}, algorithm);
    case Kernel::cpu_f64:
      cpu::reference::conv2d_same<double>(ChwView<const double>{x.ptr<double>(), cin, H, W}, weight.ptr<double>(), k,
                                          bias.defined() ? bias.ptr<double>() : nullptr,
                                          ChwView<double>{y.ptr<double>(), cout, H, W});
      return ok_status();
    case Kernel::cuda_f32: {
      if (algorithm == ConvAlgorithm::winograd && !winograd_u.defined())
        return make_error(ErrorCode::invalid_argument, kOp, "CUDA Winograd needs the transformed weights (ops::winograd_weights)",
                          weight.describe());
      const bool winograd = k == 3 && winograd_u.defined() && algorithm != ConvAlgorithm::direct;
      const int dev = ctx.device().index;
      const bool tf32 = ctx.options().allow_tf32;
      if (k == 1) {  // y[Cout, P] = W[Cout, Cin] x[Cin, P]
        FE_TRY(FE_DETAIL_CUDA(kOp, dev, cuda::kernels::sgemm(*ctx.stream(), Trans::no, Trans::no, cout, P, cin, 1.f,
                                                             weight.ptr<float>(), cin, x.ptr<float>(), P, 0.f,
                                                             y.ptr<float>(), P, tf32)));
      } else if (!winograd) {  // cols[Cin*9, P], y = W[Cout, Cin*9] cols
        FE_TRY_ASSIGN(TensorRef cols, ctx.workspace().allocate({cin * 9, P}));
        FE_TRY(FE_DETAIL_CUDA(kOp, dev, cuda::kernels::im2col3x3(*ctx.stream(), x.ptr<float>(), cin, H, W, cols.ptr<float>())));
        FE_TRY(FE_DETAIL_CUDA(kOp, dev, cuda::kernels::sgemm(*ctx.stream(), Trans::no, Trans::no, cout, P, cin * 9, 1.f,
                                                             weight.ptr<float>(), cin * 9, cols.ptr<float>(), P, 0.f,
                                                             y.ptr<float>(), P, tf32)));
      } else {  // V[16][Cin][T], M[xi] = U[xi]^T V[xi] ([Cout, T]), y = output transform of M (+ bias)
        const std::int64_t T = ((H + 1) / 2) * ((W + 1) / 2);
        FE_TRY(expect_shape(kOp, "winograd_u", winograd_u, {16, cin, cout}));
        FE_TRY_ASSIGN(TensorRef v, ctx.workspace().allocate({16, cin, T}));
        FE_TRY_ASSIGN(TensorRef m, ctx.workspace().allocate({16, cout, T}));
        FE_TRY(FE_DETAIL_CUDA(kOp, dev, cuda::kernels::winograd_input_transform(*ctx.stream(), x.ptr<float>(), cin, H, W,
                                                                                v.ptr<float>())));
        FE_TRY(FE_DETAIL_CUDA(kOp, dev, cuda::kernels::sgemm_strided_batched(
                                            *ctx.stream(), Trans::yes, Trans::no, cout, T, cin, 1.f, winograd_u.ptr<float>(),
                                            cout, cin * cout, v.ptr<float>(), T, cin * T, 0.f, m.ptr<float>(), T, cout * T,
                                            16, tf32)));
        return FE_DETAIL_CUDA(kOp, dev, cuda::kernels::winograd_output_transform(*ctx.stream(), m.ptr<float>(), cout, H, W,
                                                                                 bias.defined() ? bias.ptr<float>() : nullptr,
                                                                                 y.ptr<float>()));
      }
      if (!bias.defined()) return ok_status();
      return FE_DETAIL_CUDA(kOp, dev, cuda::kernels::add_channel_bias(*ctx.stream(), y.ptr<float>(), cout, P, bias.ptr<float>()));
    }
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

inline Status conv_transpose2d_k2s2(Context& ctx, ConstTensorRef x, ConstTensorRef weight, ConstTensorRef bias, TensorRef y) {
  static constexpr const char* kOp = "conv_transpose2d_k2s2";
  const ConstTensorRef yc = y;
  FE_TRY_ASSIGN(const Kernel kernel, select_kernel(kOp, ctx, x.dtype,
                                                   {{"x", &x}, {"weight", &weight}, {"bias", bias.defined() ? &bias : nullptr}, {"y", &yc}}));
  FE_TRY(detail::check_conv(kOp, x, weight, bias, y, true));
  ProfileScope profile(ctx, kOp);
  const std::int64_t cin = x.dim(0), cout = y.dim(0), H = x.dim(1), W = x.dim(2), P = H * W;
  switch (kernel) {
    case Kernel::cpu_f32:
      return ferrite::conv_transpose2d_k2s2(ChwView<const float>{x.ptr<float>(), cin, H, W}, detail::tv(weight),
                                            detail::tv(bias), ChwView<float>{y.ptr<float>(), cout, 2 * H, 2 * W});
    case Kernel::cpu_f64:
      cpu::reference::conv_transpose2d_k2s2<double>(ChwView<const double>{x.ptr<double>(), cin, H, W}, weight.ptr<double>(),
                                                     bias.defined() ? bias.ptr<double>() : nullptr,
                                                     ChwView<double>{y.ptr<double>(), cout, 2 * H, 2 * W});
      return ok_status();
    case Kernel::cuda_f32: {  // taps[Cout*4, P] = W[Cin, Cout*4]^T x[Cin, P], then scatter (+ bias)
      const int dev = ctx.device().index;
      FE_TRY_ASSIGN(TensorRef taps, ctx.workspace().allocate({cout * 4, P}));
      FE_TRY(FE_DETAIL_CUDA(kOp, dev, cuda::kernels::sgemm(*ctx.stream(), Trans::yes, Trans::no, cout * 4, P, cin, 1.f,
                                                           weight.ptr<float>(), cout * 4, x.ptr<float>(), P, 0.f,
                                                           taps.ptr<float>(), P, ctx.options().allow_tf32)));
      return FE_DETAIL_CUDA(kOp, dev, cuda::kernels::conv_transpose_k2s2_scatter(*ctx.stream(), taps.ptr<float>(), cout, H, W,
                                                                                 bias.defined() ? bias.ptr<float>() : nullptr,
                                                                                 y.ptr<float>()));
    }
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

}  // namespace ops

}  // namespace ferrite
