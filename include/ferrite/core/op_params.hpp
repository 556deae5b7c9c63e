#pragma once
// Small enums that parameterize ops on every backend (the CPU and CUDA kernels and the op layer
// share them, so they live at the bottom of the layer order).

namespace ferrite {

// Whether a GEMM operand is used as stored (no) or transposed (yes).
enum class Trans : bool { no = false, yes = true };

inline constexpr const char* trans_name(Trans t) noexcept { return t == Trans::no ? "N" : "T"; }
inline constexpr Trans flip(Trans t) noexcept { return t == Trans::no ? Trans::yes : Trans::no; }

// An activation fused into the op that produces its input (bias + ReLU in one pass).
enum class Activation { none, relu };

}  // namespace ferrite
