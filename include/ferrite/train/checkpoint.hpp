#pragma once
// Training checkpoints: everything a run needs to continue exactly where it stopped, in one
// safetensors file written atomically (io/file.hpp: a temporary beside it, renamed when complete).
//
//   tensors   "<parameter>"                 the model's parameters, by PyTorch name (as --save-init)
//             "<buffer>"                    the model's buffers when given (BatchNorm's running statistics and
//                                           num_batches_tracked, by PyTorch name)
//             "optimizer.<parameter>.<key>" the optimizer's state (PyTorch's keys: exp_avg, exp_avg_sq,
//                                           momentum_buffer, ...)
//   metadata  format = ferrite-checkpoint/1, optimizer = Adam | AdamW | SGD, step (optimizer steps
//             done), epochs_done, and the caller's fields (bench/mnist: model, batch, seed, ...)
//
// The state is the global one (every rank of a data-parallel run holds the same; a ZeRO-1 run gathers
// its shards first), so a checkpoint resumes at any world size. Loading is strict, like load_state_dict(strict=True): every tensor
// present with its shape, nothing unexpected, every value finite, the same optimizer, and the
// caller's `expect` fields equal; all problems are reported together by name, and nothing changes
// unless everything matches.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ferrite/io/safetensors.hpp"
#include "ferrite/nn/state_dict.hpp"
#include "ferrite/optim/optimizer.hpp"
#include "ferrite/train/distributed.hpp"

namespace ferrite::train {

inline constexpr const char* kCheckpointFormat = "ferrite-checkpoint/1";

struct CheckpointInfo {
  std::int64_t epochs_done = 0;
  std::int64_t step = 0;
  io::SafetensorsMetadata metadata;
};

namespace checkpoint_detail {
inline std::string state_name(const std::string& param, const std::string& key) { return "optimizer." + param + "." + key; }
}  // namespace checkpoint_detail

// Where the state tensor (parameter, key) comes from: the optimizer's own, or (ZeRO-1) a copy gathered
// from every rank's shard.
using StateLookup = std::function<const Tensor*(std::size_t param, std::size_t key)>;

inline Status save_checkpoint(const std::filesystem::path& path, const optim::Optimizer& optimizer, std::int64_t epochs_done,
                              const io::SafetensorsMetadata& fields = {}, const StateLookup& state = {},
                              const nn::BufferList& buffers = {}) {
  io::TensorRefs refs;
  std::vector<Tensor> keep;
  const auto& params = optimizer.params();
  const auto& keys = optimizer.state_keys();
  keep.reserve(params.size() * (1 + keys.size()) + buffers.size());  // no reallocation: refs point into it
  for (const auto& b : buffers) {
    FE_TRY_ASSIGN(const Tensor* v, nn::detail::host_view(*b.value, keep));
    refs.emplace_back(b.name, v);
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    const auto& p = params[i];
    FE_TRY_ASSIGN(const Tensor* v, nn::detail::host_view(*p.value, keep));
    refs.emplace_back(p.name, v);
    for (std::size_t k = 0; k < keys.size(); ++k) {
      const Tensor* st = state ? state(i, k) : optimizer.state(p.name, keys[k]);
      if (!st)
        return make_error(ErrorCode::invalid_argument, "save_checkpoint",
                          "no state '" + keys[k] + "' for '" + p.name + "'" +
                              (optimizer.sharded() ? " (a sharded optimizer: gather its state first)" : ""));
      FE_TRY_ASSIGN(const Tensor* h, nn::detail::host_view(*st, keep));
      refs.emplace_back(checkpoint_detail::state_name(p.name, keys[k]), h);
    }
  }
  io::SafetensorsMetadata meta = fields;
  meta["format"] = kCheckpointFormat;
  meta["optimizer"] = optimizer.name();
  meta["step"] = std::to_string(optimizer.step_count());
  meta["epochs_done"] = std::to_string(epochs_done);
  return io::save_safetensors(path, refs, meta);
}

// The checkpoint of a data-parallel run, called by every rank: rank 0 writes it. A sharded optimizer's
// state (ZeRO-1) is first all-gathered into whole host copies, so the file is the same as an unsharded
// run's and resumes at any world size, sharded or not.
inline Status save_checkpoint(Context& ctx, ProcessGroup& group, const nn::ParameterStore& store,
                              const std::filesystem::path& path, const optim::Optimizer& optimizer, std::int64_t epochs_done,
                              const io::SafetensorsMetadata& fields = {}) {
  if (!optimizer.sharded()) return group.is_root() ? save_checkpoint(path, optimizer, epochs_done, fields) : ok_status();
  const std::int64_t n = store.total_elements(), begin = optimizer.shard_begin();
  std::vector<Tensor> whole;  // [key]: the store's layout
  for (std::size_t k = 0; k < optimizer.state_keys().size(); ++k) {
    FE_TRY_ASSIGN(Tensor full, Tensor::zeros({n}, DType::f32));
    FE_TRY_ASSIGN(Tensor mine, optimizer.flat_state(k)->to(Device::cpu()));
    std::copy(mine.data<float>(), mine.data<float>() + mine.numel(), full.data<float>() + begin);
    FE_TRY(group.all_gather_shards(ctx, full.ref(), "the optimizer-state gather"));
    whole.push_back(std::move(full));
  }
  if (!group.is_root()) return ok_status();
  const std::size_t keys = whole.size();
  std::vector<Tensor> aliases;  // [param][key] views into the gathered copies
  aliases.reserve(optimizer.params().size() * keys);
  for (std::size_t i = 0; i < optimizer.params().size(); ++i)
    for (std::size_t k = 0; k < keys; ++k) {
      FE_TRY_ASSIGN(Tensor a, store.alias_in(whole[k], i));
      aliases.push_back(std::move(a));
    }
  return save_checkpoint(path, optimizer, epochs_done, fields, [&](std::size_t i, std::size_t k) { return &aliases[i * keys + k]; });
}

// Restores parameters, optimizer state and step count from `path`; `expect` fields must match the
// file's metadata (a checkpoint of another model or run is refused, naming the field). Into an
// unsharded optimizer (ZeRO-1: load, then Optimizer::shard keeps each rank's slice).
inline Result<CheckpointInfo> load_checkpoint(const std::filesystem::path& path, optim::Optimizer& optimizer,
                                              const io::SafetensorsMetadata& expect = {}, const nn::BufferList& buffers = {}) {
  constexpr const char* op = "load_checkpoint";
  if (optimizer.sharded())
    return make_error(ErrorCode::invalid_argument, op, path.string() + ": load into the optimizer before sharding it");
  FE_TRY_ASSIGN(io::SafetensorsFile file, io::load_safetensors(path));
  const std::string source = path.string();
  std::string problems;
  auto note = [&](const std::string& s) { problems += (problems.empty() ? "" : "; ") + s; };
  auto meta = [&](const std::string& key) -> std::string {
    const auto it = file.metadata.find(key);
    return it == file.metadata.end() ? std::string() : it->second;
  };
  if (meta("format") != kCheckpointFormat)
    return make_error(ErrorCode::invalid_argument, op,
                      source + ": not a ferrite checkpoint (metadata format '" + meta("format") + "', expected '" +
                          kCheckpointFormat + "')");
  if (meta("optimizer") != optimizer.name())
    note("it holds " + meta("optimizer") + " state, this run uses " + optimizer.name());
  for (const auto& [key, value] : expect)
    if (meta(key) != value) note(key + " is '" + meta(key) + "' in the checkpoint, '" + value + "' here");
  auto count = [&](const char* key, std::int64_t& out) {
    const std::string text = meta(key);
    char* end = nullptr;
    const long long v = text.empty() ? -1 : std::strtoll(text.c_str(), &end, 10);
    if (v < 0 || !end || *end) note("metadata " + std::string(key) + " '" + text + "' is not a count");
    out = v;
  };
  CheckpointInfo info;
  count("epochs_done", info.epochs_done);
  count("step", info.step);
  // Every tensor the run has, with its shape; nothing else.
  std::vector<std::pair<std::string, Tensor*>> targets;
  for (const auto& b : buffers) targets.emplace_back(b.name, b.value);
  for (const auto& p : optimizer.params()) {
    targets.emplace_back(p.name, p.value);
    for (const auto& key : optimizer.state_keys())
      targets.emplace_back(checkpoint_detail::state_name(p.name, key), optimizer.state(p.name, key));
  }
  nn::detail::note_strict_mismatches(targets, file, "this run", note);
  if (!problems.empty()) return make_error(ErrorCode::invalid_argument, op, source + ": " + problems);
  for (const auto& [name, _] : targets) FE_TRY(nn::check_finite(*file.find(name), op, source + ": '" + name + "'"));
  for (auto& [name, target] : targets) FE_TRY(target->copy_from(*file.find(name)));
  FE_TRY(optimizer.set_step_count(info.step));
  info.metadata = std::move(file.metadata);
  return info;
}

}  // namespace ferrite::train
