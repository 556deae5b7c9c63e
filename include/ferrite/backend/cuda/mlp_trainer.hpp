#pragma once
// cuda::MlpTrainer: trains an MLP (an nn::Sequential of Linear layers, each optionally followed by a
// ReLU, as models::make_mlp builds) on one GPU, with the CPU training loop's semantics: same batch
// order (data::epoch_order), same loss, same optimizer formulas. No CUDA types here.
//
// What lives on the GPU, allocated once by create(): the training set (images f32 [N, F], labels),
// the parameters, gradients and optimizer state (each one flat buffer, tensors at 256-byte aligned
// offsets, so the optimizer is one fused kernel over all of them), the activations of one batch,
// the epoch's batch order, the per-step optimizer constants and the per-step losses.
//
// One training step, all on one stream, nothing copied to or from the host:
//   gather     x[B, F], y[B] = rows order[s*B .. s*B+B) of the resident set       (kernel)
//   forward    h_l = act(h_{l-1} W_l^T + b_l)                  (cuBLAS SGEMM + bias/ReLU kernel)
//   loss       softmax + cross-entropy, dlogits = (p - onehot) / B, d bias of the last layer, and
//              the batch's summed loss into losses[s]                          (one fused kernel)
//   backward   g_l = dh_l * (h_l > 0) with d bias_l = column sums of g_l      (one fused kernel)
//              dW_l = g_l^T h_{l-1},  dh_{l-1} = g_l W_l                     (cuBLAS SGEMM)
//   update     Adam / AdamW / SGD over all parameters, step constants read from a device table
//   advance    s += 1 (a device counter, so that the same launch sequence serves every step)
// Because every step is the same launch sequence reading s from device memory, the step is
// captured once into a CUDA graph and replayed (cuda_graphs = true): one launch per step. The first
// full step of a trainer runs eagerly (loads cuBLAS kernels outside the capture); a partial last
// batch runs eagerly too. Losses are copied back once per epoch.
//
// Determinism: no atomics; every reduction has a fixed order; cuBLAS SGEMM with a fixed workspace
// and without TF32 is deterministic on one GPU model. Two runs give bit-identical losses and
// weights, with or without graphs.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ferrite/backend/cuda/memory.hpp"
#include "ferrite/backend/cuda/runtime.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/data/dataset.hpp"
#include "ferrite/data/loader.hpp"
#include "ferrite/nn/parameter.hpp"
#include "ferrite/nn/sequential.hpp"
#include "ferrite/optim/adam.hpp"
#include "ferrite/optim/factory.hpp"
#include "ferrite/optim/sgd.hpp"
#include "ferrite/train/classifier.hpp"

namespace ferrite::cuda {

// The optimizer of a GPU run, with PyTorch's defaults.
struct OptimizerConfig {
  enum class Kind { adam, adamw, sgd };
  Kind kind = Kind::adam;
  optim::AdamOptions adam{};  // adam and adamw (weight_decay decoupled for adamw)
  optim::SGDOptions sgd{};

  // The same choice and defaults as optim::make_optimizer (Adam wd 0, AdamW wd 1e-2, SGD wd 0),
  // validated like the CPU optimizers.
  static Result<OptimizerConfig> from(const optim::OptimizerOptions& o) {
    OptimizerConfig c;
    if (o.name == "adam" || o.name == "adamw") {
      c.kind = o.name == "adam" ? Kind::adam : Kind::adamw;
      c.adam.lr = o.lr;
      c.adam.weight_decay = o.weight_decay >= 0 ? o.weight_decay : (o.name == "adamw" ? 1e-2 : 0.0);
      FE_TRY(optim::Adam::validate(o.name == "adam" ? "Adam" : "AdamW", c.adam));
      return c;
    }
    if (o.name == "sgd") {
      c.kind = Kind::sgd;
      c.sgd.lr = o.lr;
      c.sgd.momentum = o.momentum;
      if (o.weight_decay >= 0) c.sgd.weight_decay = o.weight_decay;
      FE_TRY(optim::SGD::validate(c.sgd));
      return c;
    }
    return make_error(ErrorCode::invalid_argument, "cuda::OptimizerConfig",
                      "unknown optimizer '" + o.name + "' (expected adam, adamw or sgd)");
  }

  std::string name() const { return kind == Kind::adam ? "adam" : kind == Kind::adamw ? "adamw" : "sgd"; }
};

struct MlpTrainerOptions {
  int device = 0;            // cuda:device
  std::int64_t batch = 32;   // fixed for the trainer's life (buffers and the captured graph)
  OptimizerConfig optimizer{};
  bool cuda_graphs = true;   // replay one captured graph per step instead of ~17 launches
  bool allow_tf32 = false;   // TF32 tensor cores in the GEMMs: faster, ~1e-3 relative products
};

struct EpochResult {
  std::vector<double> step_loss;  // mean loss of each batch, in order
  std::vector<double> step_ms;    // GPU time of each step: CUDA events recorded between steps
  double seconds = 0;             // host wall time from the order upload to the final sync
  std::int64_t samples = 0;
};

class MlpTrainer {
 public:
  // Copies the model's parameters and the training set to GPU `options.device`. The model must be
  // Linear layers (bias optional), each followed by at most one ReLU, the last Linear giving the
  // class scores; its input width must be the data's features and its output the classes.
  static Result<MlpTrainer> create(nn::Sequential& model, const data::Dataset& train,
                                   const MlpTrainerOptions& options = {});

  MlpTrainer(MlpTrainer&&) noexcept;
  MlpTrainer& operator=(MlpTrainer&&) noexcept;
  MlpTrainer(const MlpTrainer&) = delete;
  MlpTrainer& operator=(const MlpTrainer&) = delete;
  ~MlpTrainer();

  // Host <-> device parameter copies, by the model's parameter list (names and shapes must be the
  // ones create() saw). download_gradients writes the last step's gradients into p.grad.
  Status upload_parameters(const nn::ParameterList& params);
  Status download_parameters(const nn::ParameterList& params) const;
  Status download_gradients(const nn::ParameterList& params) const;
  // Zeroes the optimizer state and the step count (a fresh optimizer, e.g. after a warm-up).
  Status reset_optimizer();

  // One pass over the batches of `order` (indices into the training set, at most its size; the
  // last batch may be partial), at most max_steps of them if max_steps >= 0.
  Result<EpochResult> train_epoch(std::span<const std::int32_t> order, std::int64_t max_steps = -1);

  // The CPU loop's train_classifier on the GPU: epochs with data::epoch_order(n, seed, epoch), the
  // same history. options.batch must be the trainer's batch. on_step is called for every step once
  // its epoch has finished (losses come back once per epoch).
  Result<train::TrainHistory> train(const train::TrainOptions& options, const train::StepCallback& on_step = {});

  std::int64_t batch() const noexcept;
  std::int64_t train_size() const noexcept;  // samples of the resident training set
  std::int64_t step_count() const noexcept;  // optimizer steps taken since create / reset_optimizer
  bool graph_captured() const noexcept;      // a CUDA graph of the step exists and is replayed
  int device() const noexcept;
  Result<MemoryStats> memory_stats() const;  // of the trainer's GPU (all of ferrite's allocations)

 private:
  struct Impl;
  explicit MlpTrainer(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

#if !defined(FERRITE_WITH_CUDA)
// A build without CUDA: create() says so (device_unavailable, naming the available devices); the
// other members are unreachable without a trainer and report the same.
struct MlpTrainer::Impl {};
inline Result<MlpTrainer> MlpTrainer::create(nn::Sequential&, const data::Dataset&, const MlpTrainerOptions& options) {
  return detail::no_cuda_backend("cuda::MlpTrainer::create", options.device);
}
inline MlpTrainer::MlpTrainer(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
inline MlpTrainer::MlpTrainer(MlpTrainer&&) noexcept = default;
inline MlpTrainer& MlpTrainer::operator=(MlpTrainer&&) noexcept = default;
inline MlpTrainer::~MlpTrainer() = default;
inline Status MlpTrainer::upload_parameters(const nn::ParameterList&) {
  return detail::no_cuda_backend("cuda::MlpTrainer::upload_parameters", 0);
}
inline Status MlpTrainer::download_parameters(const nn::ParameterList&) const {
  return detail::no_cuda_backend("cuda::MlpTrainer::download_parameters", 0);
}
inline Status MlpTrainer::download_gradients(const nn::ParameterList&) const {
  return detail::no_cuda_backend("cuda::MlpTrainer::download_gradients", 0);
}
inline Status MlpTrainer::reset_optimizer() { return detail::no_cuda_backend("cuda::MlpTrainer::reset_optimizer", 0); }
inline Result<EpochResult> MlpTrainer::train_epoch(std::span<const std::int32_t>, std::int64_t) {
  return detail::no_cuda_backend("cuda::MlpTrainer::train_epoch", 0);
}
inline std::int64_t MlpTrainer::batch() const noexcept { return 0; }
inline std::int64_t MlpTrainer::train_size() const noexcept { return 0; }
inline std::int64_t MlpTrainer::step_count() const noexcept { return 0; }
inline bool MlpTrainer::graph_captured() const noexcept { return false; }
inline int MlpTrainer::device() const noexcept { return 0; }
inline Result<MemoryStats> MlpTrainer::memory_stats() const {
  return detail::no_cuda_backend("cuda::MlpTrainer::memory_stats", 0);
}
#endif

inline Result<train::TrainHistory> MlpTrainer::train(const train::TrainOptions& options,
                                                     const train::StepCallback& on_step) {
  if (options.batch != batch() || options.epochs < 0)
    return make_error(ErrorCode::invalid_argument, "cuda::MlpTrainer::train",
                      "batch must be the trainer's (" + std::to_string(batch()) +
                          ") and epochs non-negative, got batch=" + std::to_string(options.batch) +
                          " epochs=" + std::to_string(options.epochs));
  train::TrainHistory history;
  std::int64_t steps = 0;
  for (std::int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    if (options.max_steps >= 0 && steps >= options.max_steps) break;
    const std::int64_t n = train_size();
    const auto order = data::epoch_order(n, options.seed, epoch);
    const std::int64_t left = options.max_steps >= 0 ? options.max_steps - steps : -1;
    FE_TRY_ASSIGN(EpochResult r, train_epoch(order, left));
    const auto count = static_cast<std::int64_t>(r.step_loss.size());
    if (count == 0) break;
    double loss_sum = 0;
    for (std::int64_t b = 0; b < count; ++b) {
      loss_sum += r.step_loss[static_cast<std::size_t>(b)];
      history.step_loss.push_back(r.step_loss[static_cast<std::size_t>(b)]);
      history.step_ms.push_back(r.step_ms[static_cast<std::size_t>(b)]);
      if (on_step) on_step(epoch, b, data::num_batches(n, batch()), r.step_loss[static_cast<std::size_t>(b)]);
    }
    steps += count;
    history.epoch_seconds.push_back(r.seconds);
    history.epoch_loss.push_back(loss_sum / double(count));
    history.epoch_samples.push_back(r.samples);
  }
  return history;
}

}  // namespace ferrite::cuda
