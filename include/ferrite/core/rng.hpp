#pragma once
// Counter-based RNG: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3").
// Element i of a fill is a pure function of (seed, stream, i), so results never depend on how the
// work is split across threads, and the same stream can be regenerated on a GPU.
#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>

namespace ferrite {

class Philox {
 public:
  using Block = std::array<std::uint32_t, 4>;

  constexpr Philox(std::uint64_t seed, std::uint64_t stream = 0) noexcept
      : key0_(static_cast<std::uint32_t>(seed)),
        key1_(static_cast<std::uint32_t>(seed >> 32)),
        stream_(stream) {}

  // Four 32-bit random words for counter value `counter` of this stream.
  constexpr Block operator()(std::uint64_t counter) const noexcept {
    Block c{static_cast<std::uint32_t>(counter), static_cast<std::uint32_t>(counter >> 32),
            static_cast<std::uint32_t>(stream_), static_cast<std::uint32_t>(stream_ >> 32)};
    std::uint32_t k0 = key0_, k1 = key1_;
    for (int round = 0; round < 10; ++round) {
      const std::uint64_t p0 = std::uint64_t{kMul0} * c[0];
      const std::uint64_t p1 = std::uint64_t{kMul1} * c[2];
      c = {static_cast<std::uint32_t>(p1 >> 32) ^ c[1] ^ k0, static_cast<std::uint32_t>(p1),
           static_cast<std::uint32_t>(p0 >> 32) ^ c[3] ^ k1, static_cast<std::uint32_t>(p0)};
      k0 += kWeyl0;
      k1 += kWeyl1;
    }
    return c;
  }

  // The 32-bit word number `index` of the stream (word i = lane i % 4 of block i / 4).
  constexpr std::uint32_t word(std::uint64_t index) const noexcept { return (*this)(index / 4)[index % 4]; }

  // Uniform in [0, 1) with 24 random bits (exactly representable in float).
  static constexpr float to_unit_float(std::uint32_t w) noexcept {
    return static_cast<float>(w >> 8) * (1.0f / 16777216.0f);
  }
  // Uniform in (0, 1], safe for log().
  static constexpr float to_open_unit_float(std::uint32_t w) noexcept {
    return (static_cast<float>(w >> 8) + 1.0f) * (1.0f / 16777216.0f);
  }

  float uniform(std::uint64_t index) const noexcept { return to_unit_float(word(index)); }

  // Standard normal number `index` of the stream (Box-Muller on the two words of a lane pair).
  float normal(std::uint64_t index) const noexcept {
    const Block b = (*this)(index / 2);
    const int lane = static_cast<int>(index % 2) * 2;
    const float u1 = to_open_unit_float(b[lane]);
    const float u2 = to_unit_float(b[lane + 1]);
    const float r = std::sqrt(-2.0f * std::log(u1));
    return r * std::cos(2.0f * std::numbers::pi_v<float> * u2);
  }

 private:
  static constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  static constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  std::uint32_t key0_, key1_;
  std::uint64_t stream_;
};

// A sequential generator over one Philox stream, for inherently serial uses (shuffles).
class RngStream {
 public:
  constexpr RngStream(std::uint64_t seed, std::uint64_t stream = 0) noexcept : philox_(seed, stream) {}

  std::uint32_t next_u32() noexcept { return philox_.word(position_++); }
  // Uniform integer in [0, bound) without modulo bias (Lemire's multiply-and-reject).
  std::uint32_t next_below(std::uint32_t bound) noexcept {
    std::uint64_t m = std::uint64_t{next_u32()} * bound;
    auto low = static_cast<std::uint32_t>(m);
    if (low < bound) {
      const std::uint32_t threshold = (0u - bound) % bound;
      while (low < threshold) {
        m = std::uint64_t{next_u32()} * bound;
        low = static_cast<std::uint32_t>(m);
      }
    }
    return static_cast<std::uint32_t>(m >> 32);
  }
  float next_uniform() noexcept { return Philox::to_unit_float(next_u32()); }
  std::uint64_t position() const noexcept { return position_; }

 private:
  Philox philox_;
  std::uint64_t position_ = 0;
};

// Named streams, so that different consumers of one seed never share random numbers.
namespace rng_stream {
inline constexpr std::uint64_t init = 1;      // parameter initialization (stream + parameter index)
inline constexpr std::uint64_t data = 1000;   // synthetic data generation
inline constexpr std::uint64_t shuffle = 2000;  // batch order (stream + epoch)
inline constexpr std::uint64_t augment = 3000;  // training augmentation, data/augment.hpp (stream + epoch)
}  // namespace rng_stream

}  // namespace ferrite
