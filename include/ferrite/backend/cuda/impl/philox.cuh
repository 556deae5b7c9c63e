#pragma once
// Philox4x32-10 for device code: the same function as ferrite::Philox (core/rng.hpp), written
// without std::array so that it runs on the GPU. constexpr on both sides, so impl/random.cuh
// checks at compile time that the two agree (static_assert on several keys and counters), and the
// cuda test suite compares whole streams generated on the GPU with the CPU's.
#include <cstdint>

namespace ferrite::cuda::detail {

struct PhiloxBlock {
  std::uint32_t w[4];
};

// Block number `counter` of stream `stream` under `seed` (the key): four 32-bit words.
__host__ __device__ constexpr PhiloxBlock philox_block(std::uint64_t seed, std::uint64_t stream,
                                                       std::uint64_t counter) noexcept {
  constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  std::uint32_t c0 = static_cast<std::uint32_t>(counter), c1 = static_cast<std::uint32_t>(counter >> 32);
  std::uint32_t c2 = static_cast<std::uint32_t>(stream), c3 = static_cast<std::uint32_t>(stream >> 32);
  std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t{kMul0} * c0;
    const std::uint64_t p1 = std::uint64_t{kMul1} * c2;
    const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const std::uint32_t n1 = static_cast<std::uint32_t>(p1);
    const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3 ^ k1;
    const std::uint32_t n3 = static_cast<std::uint32_t>(p0);
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return PhiloxBlock{{c0, c1, c2, c3}};
}

// Word `index` of the stream: lane index % 4 of block index / 4 (Philox::word).
__host__ __device__ constexpr std::uint32_t philox_word(std::uint64_t seed, std::uint64_t stream,
                                                        std::uint64_t index) noexcept {
  return philox_block(seed, stream, index / 4).w[index % 4];
}

// Philox::to_unit_float / to_open_unit_float: 24 random bits, exact in float.
__host__ __device__ constexpr float philox_unit(std::uint32_t w) noexcept {
  return static_cast<float>(w >> 8) * (1.0f / 16777216.0f);
}
__host__ __device__ constexpr float philox_open_unit(std::uint32_t w) noexcept {
  return (static_cast<float>(w >> 8) + 1.0f) * (1.0f / 16777216.0f);
}

}  // namespace ferrite::cuda::detail
