#pragma once

namespace ferrite {

// Whether a GEMM operand is used as stored (no) or transposed (yes).
enum class Trans : bool { no = false, yes = true };

inline constexpr const char* trans_name(Trans t) noexcept { return t == Trans::no ? "N" : "T"; }

}  // namespace ferrite
