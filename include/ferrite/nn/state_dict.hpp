#pragma once
// Saving and loading a model's parameters by PyTorch name (safetensors), like state_dict /
// load_state_dict(strict=True): every parameter must be present with its exact shape, and the file
// must hold nothing else. All problems are reported together, by name, and nothing is changed
// unless everything matches.
#include <filesystem>
#include <string>

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
  for (auto& p : params) FE_TRY(p.value->copy_from(*file.find(p.name)));  // host or device
  return {};
}

inline Status load_parameters(ParameterList& params, const std::filesystem::path& path) {
  FE_TRY_ASSIGN(auto file, io::load_safetensors(path));
  return load_parameters(params, file, path.string());
}

}  // namespace ferrite::nn
