#pragma once
// PyTorch's default initializations, drawn from Philox so they are reproducible and thread-count independent.
// (The values differ from PyTorch's own generator; to compare runs, export the weights with safetensors.)
// Host tensors of f32 or f64.
#include <cmath>
#include <cstdint>

#include "ferrite/core/rng.hpp"
#include "ferrite/tensor/tensor.hpp"

namespace ferrite::nn::init {

// U(-bound, bound) for every element; element i uses word i of Philox(seed, stream).
template <class T>
void uniform_as(Tensor& t, double bound, std::uint64_t seed, std::uint64_t stream) {
  const Philox rng(seed, stream);
  T* p = t.data<T>();
  for (std::int64_t i = 0; i < t.numel(); ++i)
    p[i] = static_cast<T>((2.0 * rng.uniform(static_cast<std::uint64_t>(i)) - 1.0) * bound);
}
inline void uniform(Tensor& t, double bound, std::uint64_t seed, std::uint64_t stream) {
  assert(t.device().is_cpu());
  if (t.dtype() == DType::f64)
    uniform_as<double>(t, bound, seed, stream);
  else
    uniform_as<float>(t, bound, seed, stream);
}

// nn.Linear / nn.Conv2d default: weight ~ kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
// bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
inline double default_bound(std::int64_t fan_in) { return fan_in > 0 ? 1.0 / std::sqrt(double(fan_in)) : 0.0; }

}  // namespace ferrite::nn::init
