#pragma once
// The training loop for classifiers (bench/mnist and the tests use it): seeded batch order, explicit
// forward / backward / optimizer step, per-step timing and loss, and evaluation. No allocation per step:
// batch buffers live for the whole run and modules reuse theirs.
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "ferrite/bench/timer.hpp"
#include "ferrite/data/loader.hpp"
#include "ferrite/nn/loss.hpp"
#include "ferrite/nn/sequential.hpp"
#include "ferrite/optim/optimizer.hpp"

namespace ferrite::train {

struct TrainOptions {
  std::int64_t batch = 32;
  std::int64_t epochs = 5;
  std::uint64_t seed = 42;     // batch order: data::epoch_order(n, seed, epoch)
  std::int64_t max_steps = -1; // stop after this many steps (warm-up); < 0 = all epochs
};

struct TrainHistory {
  std::vector<double> step_loss;      // mean loss of each batch, in order
  std::vector<double> step_ms;        // wall time of each step (load + forward + backward + update)
  std::vector<double> epoch_loss;     // mean of the epoch's batch losses
  std::vector<double> epoch_seconds;  // wall time of each epoch (everything in its steps)
  std::vector<std::int64_t> epoch_samples;
};

// Called after every step with (epoch, step within epoch, steps per epoch, loss).
using StepCallback = std::function<void(std::int64_t, std::int64_t, std::int64_t, double)>;

inline Result<TrainHistory> train_classifier(nn::Sequential& model, optim::Optimizer& optimizer,
                                             const data::Dataset& train, const TrainOptions& options,
                                             const StepCallback& on_step = {}) {
  if (options.batch <= 0 || options.epochs < 0)
    return make_error(ErrorCode::invalid_argument, "train_classifier",
                      "batch must be positive and epochs non-negative, got batch=" +
                          std::to_string(options.batch) + " epochs=" + std::to_string(options.epochs));
  if (train.size() == 0)
    return make_error(ErrorCode::invalid_argument, "train_classifier", "the training set is empty");
  FE_TRY_ASSIGN(Tensor images, Tensor::empty({options.batch, train.features()}));
  FE_TRY_ASSIGN(Tensor labels, Tensor::empty({options.batch}, DType::i32));
  nn::CrossEntropyLoss loss_fn;
  data::BatchLoader loader(train, options.batch, options.seed);
  TrainHistory history;
  std::int64_t steps = 0;
  for (std::int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    loader.start_epoch(epoch);
    const std::int64_t batches = loader.batches();
    double loss_sum = 0;
    std::int64_t epoch_steps = 0, epoch_samples = 0;
    bench::Stopwatch epoch_clock;
    for (std::int64_t b = 0; b < batches; ++b) {
      if (options.max_steps >= 0 && steps >= options.max_steps) break;
      bench::Stopwatch step_clock;
      FE_TRY_ASSIGN(const std::int64_t rows, loader.load(b, images.mat(), labels.data<std::int32_t>()));
      const MatView<const float> x = images.mat().row_slice(0, rows);
      FE_TRY_ASSIGN(const MatView<const float> logits, model.forward(x));
      FE_TRY_ASSIGN(const double loss, loss_fn.forward(logits, labels.data<std::int32_t>()));
      FE_TRY_ASSIGN(const MatView<const float> dlogits, loss_fn.backward());
      FE_TRY(model.backward(dlogits));
      FE_TRY(optimizer.step());
      history.step_ms.push_back(step_clock.elapsed_ms());
      history.step_loss.push_back(loss);
      loss_sum += loss;
      ++epoch_steps;
      ++steps;
      epoch_samples += rows;
      if (on_step) on_step(epoch, b, batches, loss);
    }
    if (epoch_steps == 0) break;
    history.epoch_seconds.push_back(epoch_clock.elapsed_seconds());
    history.epoch_loss.push_back(loss_sum / double(epoch_steps));
    history.epoch_samples.push_back(epoch_samples);
  }
  return history;
}

struct Evaluation {
  double loss = 0;      // mean cross-entropy over the set
  double accuracy = 0;  // fraction of argmax == label
};

// Forward over the whole set in chunks of `batch` rows (no shuffling, no parameter change).
inline Result<Evaluation> evaluate_classifier(nn::Sequential& model, const data::Dataset& set,
                                              std::int64_t batch = 1000) {
  if (set.size() == 0)
    return make_error(ErrorCode::invalid_argument, "evaluate_classifier", "the evaluation set is empty");
  nn::CrossEntropyLoss loss_fn;
  double loss_sum = 0;
  std::int64_t correct = 0;
  const MatView<const float> all = set.image_matrix();
  for (std::int64_t begin = 0; begin < set.size(); begin += batch) {
    const std::int64_t rows = std::min(batch, set.size() - begin);
    FE_TRY_ASSIGN(const MatView<const float> logits, model.forward(all.row_slice(begin, rows)));
    FE_TRY_ASSIGN(const double loss, loss_fn.forward(logits, set.label_data() + begin));
    loss_sum += loss * double(rows);
    correct += data::correct_count(logits, set.label_data() + begin);
  }
  return Evaluation{loss_sum / double(set.size()), double(correct) / double(set.size())};
}

}  // namespace ferrite::train
