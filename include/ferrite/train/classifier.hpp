#pragma once
// The training loop for classifiers (bench/mnist, the examples and the tests use it), on any device:
// the context says where it runs. Seeded batch order (data::epoch_order), explicit forward /
// backward / optimizer step, per-step loss and timing, and evaluation.
//
// Per step, all through ops on the context:
//   ctx.begin_step()                     the workspace rewinds (same addresses every step)
//   gather x[B, F], y[B] = rows order[b*B ..) of the resident set   (ops::gather_batch)
//   logits = model.forward(x); loss + dlogits (fused, nn::CrossEntropyLoss); model.backward(dlogits)
//   optimizer.step(ctx)                  one fused update over the ParameterStore
//   ops::advance_step_counter(ctx)       (graph mode only)
// With TrainOptions::cuda_graphs on a CUDA context the full-batch steps run as one CUDA graph
// launch each (train/step_graph.hpp): the context gets a device step counter for the duration of the
// call, the optimizer plans each epoch's constants (Optimizer::plan_steps), the batch gather and the
// loss slot follow the counter. The numbers are the eager ones: the same kernels on the same data.
// The training set is resident on the device (copied once; labels validated once, on the host). On
// CUDA the steps are enqueued asynchronously, each loss lands in a per-epoch device buffer read back
// once per epoch, and step times are CUDA events recorded between steps; on the CPU the loss is read
// after every step and step times are wall clock.
// Data parallel (TrainOptions::group active: world > 1, or a group joined even_alone;
// train/distributed.hpp): `batch` stays the global batch; every rank trains on its DistributedSampler
// share of each epoch's order (data::shard_order) in batches of batch / world rows, the gradients are
// averaged across ranks after every backward (the ParameterStore's flat buffer, one all-reduce), and the
// reported losses are the means over ranks (gathered once per epoch: on_step then runs when the epoch
// ends, as on CUDA), so every rank holds the same weights and the same history.
// CUDA graphs are not used then (an MPI call cannot be captured).
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "ferrite/core/clock.hpp"
#include "ferrite/data/loader.hpp"
#include "ferrite/nn/loss.hpp"
#include "ferrite/nn/module.hpp"
#include "ferrite/ops/fill.hpp"
#include "ferrite/ops/index.hpp"
#include "ferrite/ops/step.hpp"
#include "ferrite/optim/optimizer.hpp"
#include "ferrite/train/distributed.hpp"
#include "ferrite/train/step_graph.hpp"

namespace ferrite::train {

struct TrainOptions {
  std::int64_t batch = 32;
  std::int64_t epochs = 5;
  std::uint64_t seed = 42;     // batch order: data::epoch_order(n, seed, epoch)
  std::int64_t max_steps = -1; // stop after this many steps (warm-up); < 0 = all epochs
  bool cuda_graphs = false;     // CUDA: each full-batch step as one graph launch (ignored on the CPU)
  ProcessGroup* group = nullptr;  // data parallel when its world size is > 1 (see the top of this file)
  TensorRef grads{};              // with a group: the flat gradient buffer to average (ParameterStore::grads)
  bool drop_last = false;         // with a group: drop the epoch's tail instead of padding it to whole shards
  std::int64_t first_epoch = 0;   // resume: epochs [first_epoch, epochs) run (their orders as in a whole run)
  // With a group, ZeRO-1: the gradients are reduce-scattered, the optimizer (sharded with
  // Optimizer::shard to group->shard_of(n)) updates this rank's shard of `values` (ParameterStore::values),
  // and the shards are all-gathered. The same bits as the all-reduce path, a world-th of the state.
  bool zero1 = false;
  TensorRef values{};
};

struct TrainHistory {
  std::vector<double> step_loss;      // mean loss of each batch, in order
  std::vector<double> step_ms;        // time of each step (CPU: wall clock; CUDA: GPU time between events)
  std::vector<double> epoch_loss;     // mean of the epoch's batch losses
  std::vector<double> epoch_seconds;  // wall time of each epoch (everything in its steps)
  std::vector<std::int64_t> epoch_samples;
  std::vector<double> epoch_accuracy;  // running accuracy over each epoch's training batches (image loop only)
  std::int64_t graph_replays = 0;     // steps that ran as a replayed CUDA graph (cuda_graphs)
};

// Called after every step with (epoch, step within epoch, steps per epoch, loss). On CUDA, for every
// step of an epoch once that epoch has finished.
using StepCallback = std::function<void(std::int64_t, std::int64_t, std::int64_t, double)>;
// Called after every finished epoch with the number of epochs done (e.g. to write a checkpoint); an
// error stops training and is returned.
using EpochCallback = std::function<Status(std::int64_t)>;

// A data set on the context's device: the host tensors themselves on the CPU, a copy on a GPU.
class ResidentSet {
 public:
  static Result<ResidentSet> create(Context& ctx, const data::Dataset& set) {
    ResidentSet r;
    r.host_ = &set;
    for (std::int64_t i = 0; i < set.size(); ++i) {
      const std::int32_t l = set.label_data()[i];
      if (l < 0 || l >= set.num_classes)
        return make_error(ErrorCode::invalid_argument, "train",
                          fe_format("label {} of sample {} in '{}' is outside [0, {})", l, i, set.name, set.num_classes));
    }
    if (ctx.device().is_cuda()) {
      FE_TRY_ASSIGN(r.images_, set.images.to(ctx.device()));
      FE_TRY_ASSIGN(r.labels_, set.labels.to(ctx.device()));
    }
    return r;
  }
  ConstTensorRef images() const { return images_.defined() ? images_.cref() : host_->images.cref(); }
  ConstTensorRef labels() const { return labels_.defined() ? labels_.cref() : host_->labels.cref(); }
  std::int64_t size() const noexcept { return host_->size(); }

 private:
  const data::Dataset* host_ = nullptr;
  Tensor images_, labels_;  // GPU copies (empty on the CPU)
};

namespace detail {
// Graph mode for the duration of one training call: the counter is removed again on every exit path
// (a context left in graph mode would route later optimizer steps to a stale plan).
class StepCounterScope {
 public:
  explicit StepCounterScope(Context* ctx) noexcept : ctx_(ctx) {}  // null: nothing to undo
  StepCounterScope(const StepCounterScope&) = delete;
  StepCounterScope& operator=(const StepCounterScope&) = delete;
  ~StepCounterScope() {
    if (!ctx_) return;
    (void)ctx_->synchronize();  // the counter must outlive every step that reads it
    ctx_->disable_step_counter();
  }

 private:
  Context* ctx_;
};
}  // namespace detail

inline Result<TrainHistory> train_classifier(Context& ctx, nn::Module& model, optim::Optimizer& optimizer,
                                             const data::Dataset& train, const TrainOptions& options,
                                             const StepCallback& on_step = {}, const EpochCallback& on_epoch = {}) {
  if (options.batch <= 0 || options.epochs < 0 || options.first_epoch < 0)
    return make_error(ErrorCode::invalid_argument, "train_classifier",
                      fe_format("batch must be positive and epochs non-negative, got batch={} epochs={} first_epoch={}",
                                options.batch, options.epochs, options.first_epoch));
  if (train.size() == 0) return make_error(ErrorCode::invalid_argument, "train_classifier", "the training set is empty");
  const bool parallel = options.group && options.group->active();
  const int world = parallel ? options.group->world_size() : 1;
  const int rank = parallel ? options.group->rank() : 0;
  if (parallel && options.zero1 && (!optimizer.sharded() || !options.values.defined()))
    return make_error(ErrorCode::invalid_argument, "train_classifier",
                      "ZeRO-1 needs an optimizer sharded to this rank's shard and the flat value buffer (TrainOptions::values)");
  if (parallel && (options.batch % world != 0 || !options.grads.defined()))
    return make_error(ErrorCode::invalid_argument, "train_classifier",
                      options.grads.defined()
                          ? fe_format("the global batch {} does not divide among {} ranks", options.batch, world)
                          : std::string("data-parallel training needs the flat gradient buffer (TrainOptions::grads)"));
  FE_TRY_ASSIGN(ResidentSet set, ResidentSet::create(ctx, train));
  const bool cuda = ctx.device().is_cuda();
  const bool graphs = cuda && options.cuda_graphs && !ctx.profiler() && !parallel;
  const std::int64_t n = train.size(), local_batch = options.batch / world;
  // This rank's share of every epoch (all of it in a world of one): the same length every epoch.
  const auto epoch_share = [&](std::int64_t epoch) {
    std::vector<std::int32_t> order = data::epoch_order(n, options.seed, epoch);
    return world > 1 ? data::shard_order(order, rank, world, options.drop_last) : order;
  };
  const std::int64_t n_local = world > 1 ? data::shard_length(n, world, options.drop_last) : n;
  if (n_local == 0)
    return make_error(ErrorCode::invalid_argument, "train_classifier",
                      fe_format("{} samples leave nothing for each of {} ranks with drop_last", n, world));
  const std::int64_t batches = data::num_batches(n_local, local_batch);
  model.train();
  nn::CrossEntropyLoss loss_fn;
  Tensor order_device, losses_device;
  if (cuda) {
    FE_TRY_ASSIGN(order_device, Tensor::empty({n_local}, DType::i32, ctx.device()));
    FE_TRY_ASSIGN(losses_device, Tensor::zeros({batches}, DType::f32, ctx.device()));
  }
  if (graphs) FE_TRY(ctx.enable_step_counter());
  const detail::StepCounterScope counter_scope(graphs ? &ctx : nullptr);
  StepGraph graph;
  TrainHistory history;
  std::int64_t steps = 0;
  for (std::int64_t epoch = options.first_epoch; epoch < options.epochs; ++epoch) {
    if (options.max_steps >= 0 && steps >= options.max_steps) break;
    const std::vector<std::int32_t> order = epoch_share(epoch);
    ConstTensorRef order_ref(order.data(), DType::i32, Device::cpu(), {n_local});
    Stopwatch epoch_clock;
    const std::int64_t planned =
        options.max_steps >= 0 ? std::min(batches, options.max_steps - steps) : batches;
    if (cuda) {
      FE_TRY(ops::copy(ctx, order_ref, order_device.ref()));
      order_ref = order_device.cref();
    }
    if (graphs) {  // this epoch's optimizer constants, and the counter at batch 0
      FE_TRY(optimizer.plan_steps(ctx, planned));
      FE_TRY(ops::set_step_counter(ctx, 0));
    }
    std::vector<int> events;
    std::vector<double> rank_losses;  // data parallel, CPU: this rank's losses of the epoch
    double loss_sum = 0;
    std::int64_t epoch_steps = 0, epoch_samples = 0;
    for (std::int64_t b = 0; b < planned; ++b) {
      Stopwatch step_clock;
      if (cuda) {
        FE_TRY_ASSIGN(const int e, FE_DETAIL_CUDA_RESULT(int, "train", ctx.device().index, ctx.stream()->record_event()));
        events.push_back(e);
      }
      const std::int64_t rows = std::min(local_batch, n_local - b * local_batch);
      ConstTensorRef loss{};
      // One step, enqueued (on CUDA asynchronously; in graph mode also capturable: every per-step
      // operand follows the step counter).
      auto enqueue = [&]() -> Status {
        FE_TRY_ASSIGN(TensorRef x, ctx.workspace().allocate({rows, set.images().dim(1)}));
        FE_TRY_ASSIGN(TensorRef y, ctx.workspace().allocate({rows}, DType::i32));
        FE_TRY(ops::gather_batch(ctx, set.images(), set.labels(), order_ref, b, local_batch, x, y));
        FE_TRY(optimizer.zero_grad());
        FE_TRY_ASSIGN(const ConstTensorRef logits, model.forward(ctx, x));
        if (cuda) {
          FE_TRY_ASSIGN(loss, loss_fn.forward(ctx, logits, y, losses_device.ref(), b));
        } else {
          FE_TRY_ASSIGN(loss, loss_fn.forward(ctx, logits, y));
        }
        FE_TRY_ASSIGN(const ConstTensorRef dlogits, loss_fn.backward());
        FE_TRY(model.backward(ctx, dlogits));
        if (parallel && options.zero1) {
          FE_TRY(options.group->reduce_scatter_mean(ctx, options.grads, "the gradient reduce-scatter"));
          FE_TRY(optimizer.step(ctx));  // this rank's shard
          FE_TRY(options.group->all_gather_shards(ctx, options.values, "the parameter all-gather"));
          return ops::advance_step_counter(ctx);
        }
        if (parallel) FE_TRY(options.group->all_reduce_mean(ctx, options.grads, "the gradient all-reduce"));
        FE_TRY(optimizer.step(ctx));
        return ops::advance_step_counter(ctx);
      };
      if (graphs && rows == local_batch) {
        FE_TRY_ASSIGN(const StepGraph::Ran ran, graph.run(ctx, optimizer.table_generation(), enqueue));
        if (ran == StepGraph::Ran::replayed) {
          FE_TRY(optimizer.count_replayed_step());
          ++history.graph_replays;
        }
      } else {
        FE_TRY(ctx.begin_step());
        FE_TRY(enqueue());
      }
      ++epoch_steps;
      ++steps;
      epoch_samples += rows * world;
      if (!cuda) {
        const double l = *loss.ptr<float>();
        history.step_ms.push_back(step_clock.elapsed_ms());
        if (parallel) {
          rank_losses.push_back(l);  // averaged over the ranks once per epoch (one collective, not one a step)
        } else {
          history.step_loss.push_back(l);
          loss_sum += l;
          if (on_step) on_step(epoch, b, batches, l);
        }
      }
    }
    if (epoch_steps == 0) break;
    if (!cuda && parallel) {
      FE_TRY(options.group->mean_each(rank_losses, "the loss all-gather"));
      for (std::size_t s = 0; s < rank_losses.size(); ++s) {
        history.step_loss.push_back(rank_losses[s]);
        loss_sum += rank_losses[s];
        if (on_step) on_step(epoch, static_cast<std::int64_t>(s), batches, rank_losses[s]);
      }
      rank_losses.clear();
    }
    if (cuda) {
      FE_TRY_ASSIGN(const int e, FE_DETAIL_CUDA_RESULT(int, "train", ctx.device().index, ctx.stream()->record_event()));
      events.push_back(e);
      FE_TRY(ctx.synchronize());
      std::vector<float> losses(static_cast<std::size_t>(epoch_steps));
      FE_TRY(ops::copy(ctx, losses_device.cref().rows(0, epoch_steps),
                       TensorRef(losses.data(), DType::f32, Device::cpu(), {epoch_steps})));
      FE_TRY(ctx.synchronize());
      std::vector<double> step_losses(losses.begin(), losses.end());
      if (parallel) FE_TRY(options.group->mean_each(step_losses, "the loss all-gather"));
      for (std::int64_t s = 0; s < epoch_steps; ++s) {
        FE_TRY_ASSIGN(const double ms, FE_DETAIL_CUDA_RESULT(double, "train", ctx.device().index,
                                                      ctx.stream()->elapsed_ms(events[s], events[s + 1])));
        const double l = step_losses[static_cast<std::size_t>(s)];
        history.step_ms.push_back(ms);
        history.step_loss.push_back(l);
        loss_sum += l;
        if (on_step) on_step(epoch, s, batches, l);
      }
      (void)FE_DETAIL_CUDA("train", ctx.device().index, (ctx.stream()->clear_events(), ok_status()));
    }
    history.epoch_seconds.push_back(epoch_clock.elapsed_seconds());
    history.epoch_loss.push_back(loss_sum / double(epoch_steps));
    history.epoch_samples.push_back(epoch_samples);
    if (on_epoch) FE_TRY(on_epoch(epoch + 1));
  }
  return history;
}

struct Evaluation {
  double loss = 0;      // mean cross-entropy over the set
  double accuracy = 0;  // fraction of argmax == label
};

// Forward over the whole set in chunks of `batch` rows in eval mode (no shuffling, no parameter
// change); the model is back in training mode afterwards.
inline Result<Evaluation> evaluate_classifier(Context& ctx, nn::Module& model, const data::Dataset& set,
                                              std::int64_t batch = 1000) {
  if (set.size() == 0) return make_error(ErrorCode::invalid_argument, "evaluate_classifier", "the evaluation set is empty");
  if (batch <= 0) return make_error(ErrorCode::invalid_argument, "evaluate_classifier", "batch must be positive");
  FE_TRY_ASSIGN(ResidentSet resident, ResidentSet::create(ctx, set));
  model.eval();
  nn::CrossEntropyLoss loss_fn;
  loss_fn.eval();
  double loss_sum = 0;
  std::int64_t correct = 0;
  std::vector<float> host_logits;
  Status failed = ok_status();
  for (std::int64_t begin = 0; begin < set.size() && failed.ok(); begin += batch) {
    failed = [&]() -> Status {
      const std::int64_t rows = std::min(batch, set.size() - begin);
      FE_TRY(ctx.begin_step());
      FE_TRY_ASSIGN(const ConstTensorRef logits, model.forward(ctx, resident.images().rows(begin, rows)));
      FE_TRY_ASSIGN(const ConstTensorRef loss, loss_fn.forward(ctx, logits, resident.labels().rows(begin, rows)));
      float l = 0;
      MatView<const float> z{};
      if (ctx.device().is_cuda()) {
        host_logits.resize(static_cast<std::size_t>(logits.numel()));
        FE_TRY(ops::copy(ctx, loss, TensorRef(&l, DType::f32, Device::cpu(), {1})));
        FE_TRY(ops::copy(ctx, logits, TensorRef(host_logits.data(), DType::f32, Device::cpu(), logits.shape)));
        FE_TRY(ctx.synchronize());
        z = {host_logits.data(), rows, logits.dim(1), logits.dim(1)};
      } else {
        l = *loss.ptr<float>();
        FE_TRY_ASSIGN(z, logits.mat<float>("evaluate_classifier"));
      }
      loss_sum += double(l) * double(rows);
      correct += data::correct_count(z, set.label_data() + begin);
      return ok_status();
    }();
  }
  model.train();
  FE_TRY(failed);
  return Evaluation{loss_sum / double(set.size()), double(correct) / double(set.size())};
}

}  // namespace ferrite::train
