#pragma once
// The QCA U-Net's GroupNorm group rule (Aetheria's ConvBlock), in one place for the model
// (models/qca.hpp) and the tests; no dependencies.
#include <cstdint>

namespace ferrite {

// C/8 groups of 8 channels when C > 8 and C/8 divides C, otherwise a single group (LayerNorm over the
// whole sample).
inline std::int64_t group_norm_groups(std::int64_t channels) {
  if (channels > 8) {
    const std::int64_t g = channels / 8;
    if (channels % g == 0) return g;
  }
  return 1;
}

}  // namespace ferrite
