#pragma once
// ParameterStore: all of a model's parameter values in one flat buffer per device, and all gradients
// in another with the same layout, each parameter a Tensor::alias into them (tensors at 64-float =
// 256-byte aligned offsets; the padding stays 0 under every update). So an optimizer updates a whole
// model in one fused op, zero-filling gradients is one call, and a data-parallel all-reduce is one
// buffer. Moving a model to a device is moving its store:
//
//   auto model = models::make_mlp(784, {128, 64}, 10, seed);   // host parameters, initialized
//   auto params = model.parameters();
//   FE_TRY_ASSIGN(auto store, nn::ParameterStore::create(params, Device::cuda(0)));
//   // every params[i].value / .grad (and the model's own tensors) now live in the store on cuda:0
#include <cstdint>
#include <string>
#include <vector>

#include "ferrite/nn/parameter.hpp"
#include "ferrite/tensor/tensor.hpp"

namespace ferrite::nn {

class ParameterStore {
 public:
  static constexpr std::int64_t kAlignElements = 64;

  // Moves the values of `params` into flat buffers on `device` (their current contents are copied)
  // and gives every parameter a zeroed gradient alias; gradients are marked reset. All parameters
  // must share one dtype.
  static Result<ParameterStore> create(const ParameterList& params, Device device = Device::cpu()) {
    ParameterStore s;
    FE_TRY(s.bind(params, device));
    return s;
  }

  // Moves the store (values; gradients are re-zeroed) to another device, re-pointing every parameter.
  Status to(Device device) { return bind(params_, device); }

  const ParameterList& params() const noexcept { return params_; }
  Device device() const noexcept { return values_.device(); }
  DType dtype() const noexcept { return values_.dtype(); }
  std::int64_t total_elements() const noexcept { return values_.numel(); }  // with padding
  std::int64_t offset(std::size_t i) const noexcept { return offsets_[i]; }   // in elements
  TensorRef values() noexcept { return values_.ref(); }
  TensorRef grads() noexcept { return grads_.ref(); }
  const Tensor& value_buffer() const noexcept { return values_; }
  const Tensor& grad_buffer() const noexcept { return grads_; }

  // Whether `params` is exactly this store's list (same tensors, same order): the flat fast path.
  bool holds(const ParameterList& params) const noexcept {
    if (params.size() != params_.size()) return false;
    for (std::size_t i = 0; i < params.size(); ++i)
      if (params[i].value != params_[i].value || params[i].grad != params_[i].grad) return false;
    return true;
  }

  // A flat tensor with the store's layout (optimizer state), zeroed, on the store's device.
  Result<Tensor> make_flat_zeros() const { return Tensor::zeros(values_.shape(), values_.dtype(), values_.device()); }
  // Parameter i's slice of a flat tensor of the store's layout.
  Result<Tensor> alias_in(const Tensor& flat, std::size_t i) const {
    return Tensor::alias(flat, static_cast<std::size_t>(offsets_[i]) * dtype_size(flat.dtype()), params_[i].value->shape(),
                         flat.dtype());
  }

 private:
  Status bind(const ParameterList& params, Device device) {
    if (params.empty()) return make_error(ErrorCode::invalid_argument, "ParameterStore", "no parameters");
    const DType dtype = params.front().value->dtype();
    std::vector<std::int64_t> offsets;
    std::int64_t total = 0;
    for (const auto& p : params) {
      if (!p.value || !p.grad)
        return make_error(ErrorCode::invalid_argument, "ParameterStore", "parameter '" + p.name + "' has no value or grad");
      if (p.value->dtype() != dtype)
        return make_error(ErrorCode::unsupported, "ParameterStore",
                          "parameters of different dtypes: '" + p.name + "' is " + std::string(dtype_name(p.value->dtype())) +
                              ", '" + params.front().name + "' is " + std::string(dtype_name(dtype)));
      offsets.push_back(total);
      total += (p.value->numel() + kAlignElements - 1) / kAlignElements * kAlignElements;
    }
    FE_TRY_ASSIGN(Tensor values, Tensor::zeros({total}, dtype, device));
    FE_TRY_ASSIGN(Tensor grads, Tensor::zeros({total}, dtype, device));
    // Build every alias first, so that a failure changes nothing.
    std::vector<Tensor> value_aliases, grad_aliases;
    const std::size_t es = dtype_size(dtype);
    for (std::size_t i = 0; i < params.size(); ++i) {
      const auto& p = params[i];
      FE_TRY_ASSIGN(Tensor v, Tensor::alias(values, static_cast<std::size_t>(offsets[i]) * es, p.value->shape(), dtype));
      FE_TRY(v.copy_from(*p.value));
      FE_TRY_ASSIGN(Tensor g, Tensor::alias(grads, static_cast<std::size_t>(offsets[i]) * es, p.value->shape(), dtype));
      value_aliases.push_back(std::move(v));
      grad_aliases.push_back(std::move(g));
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
      *params[i].value = std::move(value_aliases[i]);
      *params[i].grad = std::move(grad_aliases[i]);
      if (params[i].slot) params[i].slot->grad_written = false;
    }
    values_ = std::move(values);
    grads_ = std::move(grads);
    offsets_ = std::move(offsets);
    params_ = params;
    return ok_status();
  }

  ParameterList params_;
  std::vector<std::int64_t> offsets_;
  Tensor values_, grads_;
};

}  // namespace ferrite::nn
