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
#include "ferrite/nn/module.hpp"
#include "ferrite/nn/parameter.hpp"

namespace ferrite::nn {

namespace detail {
// `t` itself on the host, else a host copy kept in `keep` (reserved by the caller: the writer holds
// pointers into it).
inline Result<const Tensor*> host_view(const Tensor& t, std::vector<Tensor>& keep) {
  if (t.device().is_cpu()) return &t;
  FE_TRY_ASSIGN(keep.emplace_back(), t.to(Device::cpu()));
  return &keep.back();
}

// load_state_dict(strict=True)'s checks of `file` against the tensors a caller will fill (name ->
// tensor pointer pairs): missing, mis-shaped, other dtype, unexpected; each problem is passed to `note`,
// with `expecter` naming who expects the shape ("the model", "this run").
// Only file entries named scope + ... can be unexpected (scope "": all of them).
template <class Targets, class Note>
void note_strict_mismatches(const Targets& targets, const io::SafetensorsFile& file, const std::string& expecter,
                            Note&& note, const std::string& scope = "") {
  for (const auto& [name, target] : targets) {
    const Tensor* t = file.find(name);
    if (!t)
      note("missing '" + name + "'");
    else if (t->shape() != target->shape())
      note("'" + name + "' has shape " + t->shape().to_string() + ", " + expecter + " expects " + target->shape().to_string());
    else if (t->dtype() != target->dtype())
      note("'" + name + "' has dtype " + std::string(dtype_name(t->dtype())) + ", " + expecter + " expects " +
           std::string(dtype_name(target->dtype())));
  }
  for (const auto& name : file.names()) {
    if (name.rfind(scope, 0) != 0) continue;
    bool known = false;
    for (const auto& target : targets) known = known || target.first == name;
    if (!known) note("unexpected '" + name + "'");
  }
}
}  // namespace detail

// Parameters on a GPU are copied to the host first.
inline Status save_parameters(const ParameterList& params, const std::filesystem::path& path) {
  io::TensorRefs refs;
  std::vector<Tensor> host_copies;
  host_copies.reserve(params.size());
  for (const auto& p : params) {
    FE_TRY_ASSIGN(const Tensor* v, detail::host_view(*p.value, host_copies));
    refs.emplace_back(p.name, v);
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
  std::vector<std::pair<std::string, const Tensor*>> targets;
  for (const auto& p : params) targets.emplace_back(p.name, p.value);
  detail::note_strict_mismatches(targets, file, "the model", note);
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

// ---- the whole state_dict: parameters and buffers (BatchNorm's running statistics, counters) ----

// The entries of torch's state_dict() (names -> tensors): the parameters, then the buffers.
inline std::vector<std::pair<std::string, Tensor*>> state_entries(const ParameterList& params, const BufferList& buffers) {
  std::vector<std::pair<std::string, Tensor*>> e;
  for (const auto& p : params) e.emplace_back(p.name, p.value);
  for (const auto& b : buffers) e.emplace_back(b.name, b.value);
  return e;
}

inline Status save_state_dict(const ParameterList& params, const BufferList& buffers, const std::filesystem::path& path) {
  const auto entries = state_entries(params, buffers);
  io::TensorRefs refs;
  std::vector<Tensor> host_copies;
  host_copies.reserve(entries.size());
  for (const auto& [name, t] : entries) {
    FE_TRY_ASSIGN(const Tensor* v, detail::host_view(*t, host_copies));
    refs.emplace_back(name, v);
  }
  return io::save_safetensors(path, refs, {{"format", "pt"}, {"producer", "ferrite"}});
}

// load_state_dict(strict=True) of parameters and buffers from `file`'s entries named prefix + name
// (prefix "": the whole file; otherwise entries without the prefix are not looked at, so one file can
// hold several states, e.g. a fixture's "init." and "step."). Every problem is reported, by name,
// and nothing changes unless everything matches. A file's f32 num_batches_tracked (an i64 in torch)
// is refused like any other dtype mismatch.
inline Status load_state_dict(const ParameterList& params, const BufferList& buffers, const io::SafetensorsFile& file,
                              const std::string& source, const std::string& prefix = "") {
  std::string problems;
  auto note = [&](const std::string& s) { problems += (problems.empty() ? "" : "; ") + s; };
  std::vector<std::pair<std::string, const Tensor*>> targets;
  for (const auto& [name, t] : state_entries(params, buffers)) targets.emplace_back(prefix + name, t);
  detail::note_strict_mismatches(targets, file, "the model", note, prefix);
  if (!problems.empty()) return make_error(ErrorCode::invalid_argument, "load_state_dict", source + ": " + problems);
  for (const auto& [name, target] : targets) FE_TRY(check_finite(*file.find(name), "load_state_dict", source + ": '" + name + "'"));
  for (const auto& [name, target] : state_entries(params, buffers)) FE_TRY(target->copy_from(*file.find(prefix + name)));
  return {};
}

inline Status load_state_dict(const ParameterList& params, const BufferList& buffers, const std::filesystem::path& path) {
  FE_TRY_ASSIGN(auto file, io::load_safetensors(path));
  return load_state_dict(params, buffers, file, path.string());
}

}  // namespace ferrite::nn
