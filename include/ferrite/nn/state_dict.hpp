#pragma once
// Saving and loading a model's parameters by PyTorch name (safetensors), like state_dict /
// load_state_dict(strict=True): every parameter must be present with its exact shape, and the file
// must hold nothing else. All problems are reported together, by name, and nothing is changed
// unless everything matches.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "ferrite/io/safetensors.hpp"
#include "ferrite/nn/parameter.hpp"

namespace ferrite::nn {

// Parameters on a GPU are copied to the host first.
inline Status save_parameters(const ParameterList& params, const std::filesystem::path& path) {
  io::TensorRefs refs;
  std::vector<Tensor> host_copies;
  host_copies.reserve(params.size());
  for (const auto& p : params) {
    if (p.value->device().is_cpu()) {
      refs.emplace_back(p.name, p.value);
    } else {
      FE_TRY_ASSIGN(host_copies.emplace_back(), p.value->to(Device::cpu()));
      refs.emplace_back(p.name, &host_copies.back());
    }
  }
  return io::save_safetensors(path, refs, {{"format", "pt"}, {"producer", "ferrite"}});
}

// The first non-finite element of a host float tensor (f32 or f64; other dtypes pass), as an
// invalid_argument error naming `what` (file and tensor) and the element's index, or ok. Every weight
// and state loader runs it: a NaN in a file would otherwise "train" to a NaN loss and exit 0.
inline Status check_finite(const Tensor& t, const std::string& op, const std::string& what) {
  if (!t.device().is_cpu() || (t.dtype() != DType::f32 && t.dtype() != DType::f64)) return {};
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    const double v = t.dtype() == DType::f32 ? double(t.data<float>()[i]) : t.data<double>()[i];
    if (std::isfinite(v)) continue;
    std::string at;  // the multi-index of element i (row-major)
    std::int64_t flat = i;
    std::vector<std::int64_t> index(static_cast<std::size_t>(t.shape().rank()));
    for (int k = t.shape().rank() - 1; k >= 0; --k) {
      index[static_cast<std::size_t>(k)] = flat % t.dim(k);
      flat /= t.dim(k);
    }
    for (std::size_t k = 0; k < index.size(); ++k) at += (k ? ", " : "") + std::to_string(index[k]);
    return make_error(ErrorCode::invalid_argument, op,
                      what + " holds a non-finite value (" + std::to_string(v) + ") at [" + at + "]", t.describe());
  }
  return {};
}

// Copies the file's tensors into `params` (strict). f16/bf16/f64 files arrive as f32 already.
inline Status load_parameters(ParameterList& params, const io::SafetensorsFile& file, const std::string& source) {
  std::string problems;
  auto note = [&](const std::string& s) { problems += (problems.empty() ? "" : "; ") + s; };
  for (const auto& p : params) {
    const Tensor* t = file.find(p.name);
    if (!t)
      note("missing '" + p.name + "'");
    else if (t->shape() != p.value->shape())
      note("'" + p.name + "' has shape " + t->shape().to_string() + ", the model expects " +
           p.value->shape().to_string());
    else if (t->dtype() != p.value->dtype())
      note("'" + p.name + "' has dtype " + std::string(dtype_name(t->dtype())) + ", the model expects " +
           std::string(dtype_name(p.value->dtype())));
  }
  for (const auto& name : file.names()) {
    bool known = false;
    for (const auto& p : params) known = known || p.name == name;
    if (!known) note("unexpected '" + name + "'");
  }
  if (!problems.empty())
    return make_error(ErrorCode::invalid_argument, "load_parameters", source + ": " + problems);
  for (const auto& p : params) FE_TRY(check_finite(*file.find(p.name), "load_parameters", source + ": '" + p.name + "'"));
  for (auto& p : params) FE_TRY(p.value->copy_from(*file.find(p.name)));  // host or device
  return {};
}

inline Status load_parameters(ParameterList& params, const std::filesystem::path& path) {
  FE_TRY_ASSIGN(auto file, io::load_safetensors(path));
  return load_parameters(params, file, path.string());
}

}  // namespace ferrite::nn
