#pragma once
// Small enums that parameterize ops on every backend (the CPU and CUDA kernels and the op layer
// share them, so they live at the bottom of the layer order).

#include <cstdint>

namespace ferrite {

// Whether a GEMM operand is used as stored (no) or transposed (yes).
enum class Trans : bool { no = false, yes = true };

inline constexpr const char* trans_name(Trans t) noexcept { return t == Trans::no ? "N" : "T"; }
inline constexpr Trans flip(Trans t) noexcept { return t == Trans::no ? Trans::yes : Trans::no; }

// An activation fused into the op that produces its input (bias + ReLU in one pass).
enum class Activation { none, relu };

// A 2-D convolution over a batch in the channel-major layout x[Cin, N, H, W] -> y[Cout, N, Ho, Wo]
// (ops/batch_conv.hpp), weight [Cout, Cin, k, k] as PyTorch's; square kernel, the same stride and
// zero padding on both axes. Its im2col matrix is cols[patch(), columns()]: row (ci*k + ky)*k + kx,
// column (n*Ho + oy)*Wo + ox, value x[ci, n, oy*stride + ky - pad, ox*stride + kx - pad] (0 outside).
struct ConvGeometry {
  std::int64_t cin = 0, cout = 0, batch = 0, height = 0, width = 0;
  std::int64_t kernel = 1, stride = 1, pad = 0;

  constexpr std::int64_t out_height() const noexcept { return (height + 2 * pad - kernel) / stride + 1; }
  constexpr std::int64_t out_width() const noexcept { return (width + 2 * pad - kernel) / stride + 1; }
  constexpr std::int64_t out_plane() const noexcept { return out_height() * out_width(); }
  constexpr std::int64_t in_plane() const noexcept { return height * width; }
  constexpr std::int64_t patch() const noexcept { return cin * kernel * kernel; }
  constexpr std::int64_t columns() const noexcept { return batch * out_plane(); }
  // A 1x1, stride 1, unpadded convolution needs no im2col: x is already the matrix [Cin, N*H*W].
  constexpr bool pointwise() const noexcept { return kernel == 1 && stride == 1 && pad == 0; }
};

}  // namespace ferrite
