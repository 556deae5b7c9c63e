#pragma once
// The training loop for image classifiers (bench/resnet18), on any device: 8-bit images in memory
// (data::ImageSet), augmented on the host per step with draws that depend only on (seed, epoch,
// sample) (data/augment.hpp), so a run is the same for any thread count and PyTorch can be given the
// exact same crops and flips.
//
// Per step:
//   the next batch is augmented by a TBB task while this step computes (double-buffered host
//   batches: the trainer waits for data only if augmenting takes longer than a step)
//   ctx.begin_step(); x[B, C, H, W] = the batch (a copy to the device on CUDA)
//   lr = schedule.at(step); logits = model.forward(x); loss + dlogits (fused); reset gradients;
//   model.backward(dlogits); optimizer.step(ctx); the batch's correct predictions (from the step's own
//   logits: the running training accuracy of each epoch, as fast CIFAR recipes report it)
// Batches: data::epoch_order(n, seed, epoch) cut into batches of `batch` (the last one smaller, as
// PyTorch's DataLoader with drop_last=False). Step times are wall clock, synchronized on CUDA.
// History has an entry per epoch begun (a max_steps cut leaves a partial last one); on_epoch runs after
// each whole epoch only.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include <tbb/task_group.h>

#include "ferrite/core/clock.hpp"
#include "ferrite/data/augment.hpp"
#include "ferrite/data/loader.hpp"
#include "ferrite/nn/loss.hpp"
#include "ferrite/nn/module.hpp"
#include "ferrite/ops/fill.hpp"
#include "ferrite/optim/optimizer.hpp"
#include "ferrite/optim/schedule.hpp"
#include "ferrite/train/classifier.hpp"

namespace ferrite::train {

struct ImageTrainOptions {
  std::int64_t batch = 128;
  std::int64_t epochs = 1;
  std::int64_t max_steps = -1;  // stop after this many steps; < 0 = all epochs
  std::uint64_t seed = 42;      // batch order (data::epoch_order) and augmentation draws (data::augment_params)
  bool augment = true;          // crop + flip (normalization always)
  data::AugmentOptions augmentation{};
  optim::LrSchedule schedule{};  // over the steps of the whole run
  bool use_schedule = false;     // false: the optimizer's own lr throughout
  std::int64_t first_epoch = 0;  // resume: epochs [first_epoch, epochs) run, with their orders, draws and lrs
};

namespace image_detail {

// A host batch: images [B, C*H*W] f32 (normalized) and labels i32 [B].
struct HostBatch {
  Tensor images, labels;
  std::int64_t rows = 0;
};

inline Status render(const data::ImageSet& set, std::span<const std::int32_t> indices, std::int64_t epoch,
                     const ImageTrainOptions& o, HostBatch& b) {
  b.rows = static_cast<std::int64_t>(indices.size());
  const std::int64_t features = set.channels() * set.height() * set.width();
  MatView<float> out{b.images.data<float>(), b.rows, features, features};
  if (o.augment) return data::augment_batch(set, indices, epoch, o.seed, o.augmentation, out, b.labels.data<std::int32_t>());
  return data::normalize_batch(set, indices, o.augmentation, out, b.labels.data<std::int32_t>());
}

// The host batch as the network's input on the context's device: [rows, C, H, W] and labels [rows].
inline Result<std::pair<ConstTensorRef, ConstTensorRef>> upload(Context& ctx, const data::ImageSet& set, const HostBatch& b) {
  const Shape xs{b.rows, set.channels(), set.height(), set.width()};
  ConstTensorRef x(b.images.data<float>(), DType::f32, Device::cpu(), xs);
  ConstTensorRef y(b.labels.data<std::int32_t>(), DType::i32, Device::cpu(), {b.rows});
  if (!ctx.device().is_cuda()) return std::pair{x, y};
  FE_TRY_ASSIGN(TensorRef xd, ctx.workspace().allocate(xs));
  FE_TRY_ASSIGN(TensorRef yd, ctx.workspace().allocate({b.rows}, DType::i32));
  FE_TRY(ops::copy(ctx, x, xd));
  FE_TRY(ops::copy(ctx, y, yd));
  return std::pair{ConstTensorRef(xd), ConstTensorRef(yd)};
}

inline Status check_labels(const data::ImageSet& set, const char* op) {
  const std::int64_t classes = static_cast<std::int64_t>(set.classes.size());
  for (std::int64_t i = 0; i < set.size(); ++i) {
    const std::int32_t l = set.labels.data<std::int32_t>()[i];
    if (l < 0 || l >= classes)
      return make_error(ErrorCode::invalid_argument, op,
                        fe_format("label {} of image {} in '{}' is outside [0, {})", l, i, set.name, classes));
  }
  return ok_status();
}

}  // namespace image_detail

inline Result<TrainHistory> train_image_classifier(Context& ctx, nn::Module& model, optim::Optimizer& optimizer,
                                                   const data::ImageSet& train, const ImageTrainOptions& o,
                                                   const StepCallback& on_step = {}, const EpochCallback& on_epoch = {}) {
  static constexpr const char* kOp = "train_image_classifier";
  if (train.size() == 0) return make_error(ErrorCode::invalid_argument, kOp, "the training set is empty");
  if (o.batch <= 0 || o.epochs <= 0)
    return make_error(ErrorCode::invalid_argument, kOp, fe_format("batch {} and epochs {} must be positive", o.batch, o.epochs));
  if (o.use_schedule) FE_TRY(o.schedule.check());
  FE_TRY(image_detail::check_labels(train, kOp));
  const std::int64_t n = train.size(), batches = data::num_batches(n, o.batch);
  const std::int64_t features = train.channels() * train.height() * train.width();
  image_detail::HostBatch buffers[2];
  for (auto& b : buffers) {
    FE_TRY_ASSIGN(b.images, Tensor::empty({o.batch, features}));
    FE_TRY_ASSIGN(b.labels, Tensor::empty({o.batch}, DType::i32));
  }
  auto params = model.parameters();
  model.train();
  nn::CrossEntropyLoss loss_fn;
  TrainHistory history;
  if (o.first_epoch < 0 || o.first_epoch >= o.epochs)
    return make_error(ErrorCode::invalid_argument, kOp,
                      fe_format("first epoch {} is outside the run's {} epoch(s)", o.first_epoch, o.epochs));
  // Steps are counted over the whole run (a resumed run starts at its first epoch's first step), so
  // batch orders, augmentation draws and learning rates are those of an uninterrupted run.
  std::int64_t step = o.first_epoch * batches;
  const std::int64_t total = o.max_steps >= 0 ? std::min(step + o.max_steps, batches * o.epochs) : batches * o.epochs;
  // The order of (epoch, batch) pairs is fixed up front, so the prefetch task knows what comes next.
  std::vector<std::vector<std::int32_t>> orders;
  auto order_of = [&](std::int64_t epoch) -> const std::vector<std::int32_t>& {
    while (static_cast<std::int64_t>(orders.size()) <= epoch) orders.push_back(data::epoch_order(n, o.seed, std::int64_t(orders.size())));
    return orders[static_cast<std::size_t>(epoch)];
  };
  auto indices_of = [&](std::int64_t s) {
    const std::int64_t epoch = s / batches, b = s % batches;
    const auto& order = order_of(epoch);
    const std::int64_t rows = std::min(o.batch, n - b * o.batch);
    return std::span<const std::int32_t>(order.data() + b * o.batch, static_cast<std::size_t>(rows));
  };
  if (step >= total) return history;
  FE_TRY(image_detail::render(train, indices_of(step), step / batches, o, buffers[step % 2]));
  tbb::task_group prefetch;
  Status prefetched = ok_status();
  double epoch_loss = 0;
  std::int64_t epoch_steps = 0, epoch_samples = 0, epoch_correct = 0;
  std::vector<float> logits_host;
  Stopwatch epoch_clock;
  Status failed = ok_status();
  for (; step < total && failed.ok(); ++step) {
    const std::int64_t epoch = step / batches, b = step % batches;
    image_detail::HostBatch& cur = buffers[step % 2];
    if (step + 1 < total) {  // augment the next batch meanwhile (its own buffer)
      const std::int64_t next = step + 1;
      const auto next_indices = indices_of(next);
      prefetch.run([&, next, next_indices] { prefetched = image_detail::render(train, next_indices, next / batches, o, buffers[next % 2]); });
    }
    Stopwatch step_clock;
    double loss_value = 0;
    failed = [&]() -> Status {
      FE_TRY(ctx.begin_step());
      if (o.use_schedule) FE_TRY(optimizer.set_lr(o.schedule.at(step)));
      FE_TRY_ASSIGN(const auto batch, image_detail::upload(ctx, train, cur));
      FE_TRY_ASSIGN(const ConstTensorRef logits, model.forward(ctx, batch.first));
      FE_TRY_ASSIGN(const ConstTensorRef loss, loss_fn.forward(ctx, logits, batch.second));
      FE_TRY(nn::reset_gradients(params));
      FE_TRY_ASSIGN(const ConstTensorRef dlogits, loss_fn.backward());
      FE_TRY(model.backward(ctx, dlogits));
      FE_TRY(optimizer.step(ctx));
      float l = 0;
      FE_TRY(ops::copy(ctx, loss, TensorRef(&l, DType::f32, Device::cpu(), {1})));
      logits_host.resize(static_cast<std::size_t>(logits.numel()));
      FE_TRY(ops::copy(ctx, logits, TensorRef(logits_host.data(), DType::f32, Device::cpu(), logits.shape)));
      FE_TRY(ctx.synchronize());
      loss_value = l;
      epoch_correct += data::correct_count(MatView<const float>{logits_host.data(), cur.rows, logits.dim(1), logits.dim(1)},
                                           cur.labels.data<std::int32_t>());
      return ok_status();
    }();
    prefetch.wait();
    if (failed.ok()) failed = prefetched;
    if (!failed.ok()) break;
    history.step_ms.push_back(step_clock.elapsed_seconds() * 1e3);
    history.step_loss.push_back(loss_value);
    epoch_loss += loss_value;
    ++epoch_steps;
    epoch_samples += cur.rows;
    if (on_step) on_step(epoch, b, batches, loss_value);
    if (b + 1 == batches || step + 1 == total) {
      history.epoch_seconds.push_back(epoch_clock.elapsed_seconds());
      history.epoch_loss.push_back(epoch_loss / double(epoch_steps));
      history.epoch_samples.push_back(epoch_samples);
      history.epoch_accuracy.push_back(double(epoch_correct) / double(epoch_samples));
      epoch_loss = 0;
      epoch_steps = epoch_samples = epoch_correct = 0;
      // Only a whole epoch is "done" (a checkpoint written after a max_steps cut would skip the rest).
      if (on_epoch && b + 1 == batches) failed = on_epoch(epoch + 1);
      epoch_clock.reset();
    }
  }
  prefetch.wait();
  FE_TRY(failed);
  return history;
}

// Eval mode over the whole set in batches (normalization only); back in training mode afterwards.
inline Result<Evaluation> evaluate_image_classifier(Context& ctx, nn::Module& model, const data::ImageSet& set,
                                                    std::int64_t batch = 500, const data::AugmentOptions& norm = {}) {
  static constexpr const char* kOp = "evaluate_image_classifier";
  if (set.size() == 0) return make_error(ErrorCode::invalid_argument, kOp, "the evaluation set is empty");
  if (batch <= 0) return make_error(ErrorCode::invalid_argument, kOp, "batch must be positive");
  FE_TRY(image_detail::check_labels(set, kOp));
  ImageTrainOptions o;
  o.augment = false;
  o.augmentation = norm;
  image_detail::HostBatch host;
  const std::int64_t features = set.channels() * set.height() * set.width();
  FE_TRY_ASSIGN(host.images, Tensor::empty({batch, features}));
  FE_TRY_ASSIGN(host.labels, Tensor::empty({batch}, DType::i32));
  std::vector<std::int32_t> all(static_cast<std::size_t>(set.size()));
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::int32_t>(i);
  model.eval();
  nn::CrossEntropyLoss loss_fn;
  loss_fn.eval();
  double loss_sum = 0;
  std::int64_t correct = 0;
  std::vector<float> logits_host;
  Status failed = ok_status();
  for (std::int64_t begin = 0; begin < set.size() && failed.ok(); begin += batch) {
    failed = [&]() -> Status {
      const std::int64_t rows = std::min(batch, set.size() - begin);
      FE_TRY(image_detail::render(set, std::span<const std::int32_t>(all.data() + begin, std::size_t(rows)), 0, o, host));
      FE_TRY(ctx.begin_step());
      FE_TRY_ASSIGN(const auto x, image_detail::upload(ctx, set, host));
      FE_TRY_ASSIGN(const ConstTensorRef logits, model.forward(ctx, x.first));
      FE_TRY_ASSIGN(const ConstTensorRef loss, loss_fn.forward(ctx, logits, x.second));
      float l = 0;
      logits_host.resize(static_cast<std::size_t>(logits.numel()));
      FE_TRY(ops::copy(ctx, loss, TensorRef(&l, DType::f32, Device::cpu(), {1})));
      FE_TRY(ops::copy(ctx, logits, TensorRef(logits_host.data(), DType::f32, Device::cpu(), logits.shape)));
      FE_TRY(ctx.synchronize());
      loss_sum += double(l) * double(rows);
      correct += data::correct_count(MatView<const float>{logits_host.data(), rows, logits.dim(1), logits.dim(1)},
                                     host.labels.data<std::int32_t>());
      return ok_status();
    }();
  }
  model.train();
  FE_TRY(failed);
  return Evaluation{loss_sum / double(set.size()), double(correct) / double(set.size())};
}

}  // namespace ferrite::train
