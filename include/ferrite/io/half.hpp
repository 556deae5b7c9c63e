#pragma once
// IEEE binary16 (f16) and bfloat16 (bf16) <-> f32 conversions, bit-exact and branch-light.
// Used by io/safetensors to read F16/BF16 weights into f32 tensors; the reverse directions round to
// nearest-even like PyTorch's `.half()` / `.bfloat16()`, so a value survives f16 -> f32 -> f16.
#include <bit>
#include <cstdint>

namespace ferrite::io {

// Exact: every f16 (normal, subnormal, ±0, ±inf, NaN with its payload) is representable in f32.
inline float half_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  std::uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // inf (mantissa 0) or NaN (payload kept)
  } else if (exponent != 0) {
    bits = sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;  // ±0
  } else {
    // Subnormal f16 (mantissa * 2^-24) is a normal f32: shift the leading 1 into the implicit bit.
    std::uint32_t f32_exponent = 127 - 15 + 1;
    while (!(mantissa & 0x400u)) {
      mantissa <<= 1;
      --f32_exponent;
    }
    bits = sign | (f32_exponent << 23) | ((mantissa & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(bits);
}

// bf16 is the upper half of an f32, so widening is a shift.
inline float bfloat16_to_float(std::uint16_t b) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

// Round to nearest, ties to even; overflow gives ±inf; NaN stays a (quiet) NaN.
// (F. Giesen's float_to_half_fast3_rtne, https://gist.github.com/rygorous/2156668)
inline std::uint16_t float_to_half(float f) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  std::uint32_t magnitude = x & 0x7fffffffu;
  if (magnitude >= 0x7f800000u)  // inf or NaN
    return static_cast<std::uint16_t>(
        sign | (magnitude > 0x7f800000u ? 0x7e00u | ((magnitude >> 13) & 0x3ffu) : 0x7c00u));
  if (magnitude >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // >= 65520 -> inf
  if (magnitude < 0x38800000u) {
    // Below the smallest normal f16 (2^-14): adding 0.5f makes the FPU round the value to a multiple
    // of 2^-24 (0.5's ulp), i.e. to the f16 subnormal grid, with the current (nearest-even) mode.
    const float rounded = std::bit_cast<float>(magnitude) + 0.5f;
    return static_cast<std::uint16_t>(sign | (std::bit_cast<std::uint32_t>(rounded) - 0x3f000000u));
  }
  const std::uint32_t mantissa_odd = (magnitude >> 13) & 1u;
  magnitude += (static_cast<std::uint32_t>(15 - 127) << 23) + 0xfffu + mantissa_odd;  // rebias + round
  return static_cast<std::uint16_t>(sign | (magnitude >> 13));
}

// Round to nearest, ties to even; NaN stays a (quiet) NaN.
inline std::uint16_t float_to_bfloat16(float f) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);
  return static_cast<std::uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

}  // namespace ferrite::io
