#pragma once
// The MLP of bench/mnist: Linear(784,128) → ReLU → Linear(128,64) → ReLU → Linear(64,10), as
// torch.nn.Sequential names it: 0.weight, 0.bias, 2.weight, 2.bias, 4.weight, 4.bias.
// Written once: it runs on whatever device its ParameterStore and the Context are on.
#include <cstdint>
#include <vector>

#include "ferrite/core/rng.hpp"
#include "ferrite/nn/sequential.hpp"

namespace ferrite::models {

// hidden = {128, 64} gives the benchmark's network. Host parameters of `dtype` (f32, or f64 for
// gradient checks), initialized like PyTorch (from Philox(seed)), with bias+ReLU fused.
inline Result<nn::Sequential> make_mlp(std::int64_t inputs, const std::vector<std::int64_t>& hidden, std::int64_t outputs,
                                       std::uint64_t seed, DType dtype = DType::f32) {
  nn::Sequential model;
  std::int64_t fan_in = inputs;
  std::uint64_t stream = rng_stream::init;
  auto add_linear = [&](std::int64_t out) -> Status {
    FE_TRY_ASSIGN(auto linear, nn::Linear::create(fan_in, out, true, dtype));
    linear.reset_parameters(seed, stream);
    stream += 2;
    model.add(std::move(linear));
    fan_in = out;
    return {};
  };
  for (auto h : hidden) {
    FE_TRY(add_linear(h));
    model.add(nn::ReLU{});
  }
  FE_TRY(add_linear(outputs));
  model.fuse_activations();
  model.set_input_grad(false);  // nobody needs d loss / d image
  return model;
}

}  // namespace ferrite::models
