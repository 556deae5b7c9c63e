#pragma once
// A named trainable tensor and its gradient, as optimizers and serializers see it.
// Names follow PyTorch's state_dict ("0.weight", "2.bias"), so weights cross to PyTorch by name.
#include <string>
#include <vector>

#include "ferrite/core/tensor.hpp"

namespace ferrite::nn {

struct Parameter {
  std::string name;
  Tensor* value = nullptr;  // owned by the module
  Tensor* grad = nullptr;   // same shape as value, owned by the module
};

using ParameterList = std::vector<Parameter>;

}  // namespace ferrite::nn
