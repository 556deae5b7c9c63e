#pragma once
// kernels::philox_uniform (backend/cuda/kernels.hpp): Philox4x32-10 streams on the GPU, equal to the
// CPU's ferrite::Philox (core/rng.hpp) word for word (nvcc only; included by src/cuda_random.cu
// alone). The device generator (impl/philox.cuh) is checked against the CPU's at compile time below.
// The words and normal kernels are kept (same numerics as Philox::word / Philox::normal) for the
// entry points that will need them; only the uniform one has an entry point today.
#include <cuda_runtime.h>

#include <cstdint>

#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/impl/philox.cuh"
#include "ferrite/backend/cuda/impl/stream.cuh"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/core/rng.hpp"

// The device Philox is the CPU's (the key-answer vectors of tests/core/test_rng.cpp and a few
// arbitrary points).
static_assert(ferrite::cuda::detail::philox_block(0, 0, 0).w[0] == 0x6627e8d5u);
static_assert(ferrite::cuda::detail::philox_block(0, 0, 0).w[3] == 0x9b00dbd8u);
static_assert(ferrite::cuda::detail::philox_block(~0ull, ~0ull, ~0ull).w[0] == 0x408f276du);
static_assert(ferrite::cuda::detail::philox_block(~0ull, ~0ull, ~0ull).w[2] == 0xa20bc7c6u);
static_assert(ferrite::cuda::detail::philox_word(42, 7, 13) == ferrite::Philox(42, 7).word(13));
static_assert(ferrite::cuda::detail::philox_word(0x123456789abcdefull, 2001, 1u << 20) ==
              ferrite::Philox(0x123456789abcdefull, 2001).word(1u << 20));
static_assert(ferrite::cuda::detail::philox_unit(ferrite::Philox(5, 1).word(3)) ==
              ferrite::Philox::to_unit_float(ferrite::Philox(5, 1).word(3)));

namespace ferrite::cuda::kernels {

namespace {

enum class PhiloxKind { words, uniform, normal };

__device__ inline float philox_normal(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  // Philox::normal: Box-Muller on the lane pair (index % 2) * 2 of block index / 2.
  const cuda::detail::PhiloxBlock b = cuda::detail::philox_block(seed, stream, index / 2);
  const bool second = (index % 2) != 0;
  const float u1 = cuda::detail::philox_open_unit(second ? b.w[2] : b.w[0]);
  const float u2 = cuda::detail::philox_unit(second ? b.w[3] : b.w[1]);
  const float r = __fsqrt_rn(__fmul_rn(-2.0f, logf(u1)));
  constexpr float kTwoPi = 2.0f * 3.14159265358979323846f;  // 2 * pi_v<float>, exact doubling
  return __fmul_rn(r, cosf(__fmul_rn(kTwoPi, u2)));
}

// Element i of the output = element offset + i of the stream.
template <PhiloxKind kKind>
__global__ void philox_kernel(void* __restrict__ out, i64 n, std::uint64_t seed, std::uint64_t stream,
                              std::uint64_t offset) {
  for (i64 i = blockIdx.x * i64{blockDim.x} + threadIdx.x; i < n; i += i64{gridDim.x} * blockDim.x) {
    const std::uint64_t index = offset + static_cast<std::uint64_t>(i);
    if constexpr (kKind == PhiloxKind::words)
      static_cast<std::uint32_t*>(out)[i] = cuda::detail::philox_word(seed, stream, index);
    else if constexpr (kKind == PhiloxKind::uniform)
      static_cast<float*>(out)[i] = cuda::detail::philox_unit(cuda::detail::philox_word(seed, stream, index));
    else
      static_cast<float*>(out)[i] = philox_normal(seed, stream, index);
  }
}

template <PhiloxKind kKind>
Status launch_philox(const Stream& s, void* out, i64 n, std::uint64_t seed, std::uint64_t stream,
                     std::uint64_t offset) {
  if (n <= 0) return ok_status();
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  philox_kernel<kKind><<<detail::grid_for(n), detail::kBlock, 0, detail::raw_stream(s)>>>(out, n, seed, stream, offset);
  return detail::check_launch("philox_kernel");
}

}  // namespace

Status philox_uniform(const Stream& s, float* out, i64 n, std::uint64_t seed, std::uint64_t stream,
                      std::uint64_t offset) {
  return launch_philox<PhiloxKind::uniform>(s, out, n, seed, stream, offset);
}

}  // namespace ferrite::cuda::kernels
