#pragma once
// Batching: a seeded shuffle per epoch, batches of consecutive indices of that order (the last one
// partial, like PyTorch's DataLoader with drop_last=False), and a row gather into preallocated
// buffers, allocation-free because the training loop calls it every step.
//   epoch_order(n, seed, epoch)            -> permutation of [0, n)
//   shard_order(order, rank, world, drop)  -> rank's share of an epoch (torch DistributedSampler)
//   shard_length(n, world, drop)           -> its length
//   gather_batch(data, idx[B], out[B, F])  -> out rows = data rows idx
//   correct_count / accuracy(logits[B, C]) -> argmax == label
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ferrite/core/result.hpp"
#include "ferrite/core/rng.hpp"
#include "ferrite/tensor/tensor.hpp"
#include "ferrite/data/dataset.hpp"

namespace ferrite::data {

// A permutation of [0, n): Fisher-Yates over RngStream(seed, rng_stream::shuffle + epoch), so every
// epoch has its own order and a rerun with the same seed repeats it. n is a dataset size (<= INT32_MAX).
inline std::vector<std::int32_t> epoch_order(std::int64_t n, std::uint64_t seed, std::int64_t epoch) {
  assert(n >= 0 && n <= kMaxDatasetSize);
  std::vector<std::int32_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  RngStream rng(seed, rng_stream::shuffle + static_cast<std::uint64_t>(epoch));
  for (std::int64_t i = n - 1; i > 0; --i) {
    const std::uint32_t j = rng.next_below(static_cast<std::uint32_t>(i + 1));
    std::swap(order[static_cast<std::size_t>(i)], order[j]);
  }
  return order;
}

// Rank `rank`'s samples of an epoch in data-parallel training, with torch.utils.data.DistributedSampler's
// semantics (given the same permutation): every rank gets the same count; without drop_last the order
// is padded by repeating its start until it divides by `world`, with drop_last the tail is dropped;
// rank r takes positions r, r + world, r + 2·world, … So batch b of local batch size B/world on every
// rank together is exactly batch b of size B of the whole order (where nothing was padded or dropped).
// The length of every rank's share of n samples.
inline constexpr std::int64_t shard_length(std::int64_t n, int world, bool drop_last) noexcept {
  const std::int64_t per_rank = drop_last && n % world != 0 ? (n - world + world - 1) / world : (n + world - 1) / world;
  return per_rank > 0 ? per_rank : 0;
}
inline std::vector<std::int32_t> shard_order(std::span<const std::int32_t> order, int rank, int world, bool drop_last) {
  assert(world >= 1 && rank >= 0 && rank < world);
  const auto n = static_cast<std::int64_t>(order.size());
  const std::int64_t per_rank = shard_length(n, world, drop_last);
  std::vector<std::int32_t> local(static_cast<std::size_t>(per_rank));
  for (std::int64_t j = 0; j < per_rank && n > 0; ++j)
    local[static_cast<std::size_t>(j)] = order[static_cast<std::size_t>((rank + j * world) % n)];
  return local;
}

// ceil(n / batch): the last batch may be partial.
inline constexpr std::int64_t num_batches(std::int64_t n, std::int64_t batch) noexcept {
  return batch > 0 ? (n + batch - 1) / batch : 0;
}

// Indices of batch number `b` of an epoch order: order[b * batch, min((b + 1) * batch, n)).
inline std::span<const std::int32_t> batch_indices(std::span<const std::int32_t> order, std::int64_t b,
                                                   std::int64_t batch) noexcept {
  const auto n = static_cast<std::int64_t>(order.size());
  const std::int64_t begin = std::min(b * batch, n);
  const std::int64_t end = std::min(begin + batch, n);
  return order.subspan(static_cast<std::size_t>(begin), static_cast<std::size_t>(end - begin));
}

// Copies rows `indices` of the dataset into out_images[0 .. B) (out_images must have at least B rows
// and exactly data.features() columns) and their labels into out_labels (may be null). No allocation.
inline Status gather_batch(const Dataset& data, std::span<const std::int32_t> indices,
                           MatView<float> out_images, std::int32_t* out_labels) {
  const auto count = static_cast<std::int64_t>(indices.size());
  const std::int64_t features = data.features();
  if (out_images.rows < count || out_images.cols != features || out_images.ld < out_images.cols)
    return make_error(ErrorCode::shape_mismatch, "gather_batch",
                      "output buffer cannot hold " + std::to_string(count) + " rows of " +
                          std::to_string(features) + " features",
                      "[" + std::to_string(out_images.rows) + ", " + std::to_string(out_images.cols) +
                          "] ld " + std::to_string(out_images.ld));
  const float* images = data.images.data<float>();
  const std::int32_t* labels = data.label_data();
  const std::int64_t n = data.size();
  for (std::int64_t r = 0; r < count; ++r) {
    const std::int64_t src = indices[static_cast<std::size_t>(r)];
    if (src < 0 || src >= n)
      return make_error(ErrorCode::invalid_argument, "gather_batch",
                        "index " + std::to_string(src) + " at batch position " + std::to_string(r) +
                            " is outside dataset '" + data.name + "' of " + std::to_string(n) + " samples");
    std::memcpy(out_images.row(r), images + src * features, static_cast<std::size_t>(features) * sizeof(float));
    if (out_labels) out_labels[r] = labels[src];
  }
  return ok_status();
}

// The number of rows whose argmax equals the label. Ties go to the first maximum and NaN counts as
// the maximum, as torch.argmax does.
inline std::int64_t correct_count(MatView<const float> logits, const std::int32_t* labels) noexcept {
  std::int64_t correct = 0;
  for (std::int64_t r = 0; r < logits.rows; ++r) {
    const float* z = logits.row(r);
    std::int64_t best = 0;
    for (std::int64_t c = 1; c < logits.cols; ++c) {
      if (std::isnan(z[best])) break;
      if (z[c] > z[best] || std::isnan(z[c])) best = c;
    }
    correct += (logits.cols > 0 && best == labels[r]) ? 1 : 0;
  }
  return correct;
}

// Fraction of rows classified correctly, in [0, 1]; 0 for an empty batch.
inline double accuracy(MatView<const float> logits, const std::int32_t* labels) noexcept {
  return logits.rows > 0 ? static_cast<double>(correct_count(logits, labels)) / static_cast<double>(logits.rows)
                         : 0.0;
}

// Convenience over the functions above: borrows a dataset (which must outlive it), holds the current
// epoch's order, and fills caller-owned batch buffers.
//   BatchLoader loader(train, 32, seed);
//   for (epoch ...) { loader.start_epoch(epoch);
//     for (b < loader.batches()) { auto rows = loader.load(b, x.mat(), y.data<int32_t>()); ... } }
class BatchLoader {
 public:
  // shuffle = false keeps dataset order (evaluation).
  BatchLoader(const Dataset& data, std::int64_t batch_size, std::uint64_t seed, bool shuffle = true)
      : data_(&data), batch_(batch_size > 0 ? batch_size : 1), seed_(seed), shuffle_(shuffle) {
    start_epoch(0);
  }

  void start_epoch(std::int64_t epoch) {
    epoch_ = epoch;
    if (shuffle_) {
      order_ = epoch_order(data_->size(), seed_, epoch);
    } else {
      order_.resize(static_cast<std::size_t>(data_->size()));
      std::iota(order_.begin(), order_.end(), 0);
    }
  }

  std::int64_t epoch() const noexcept { return epoch_; }
  std::int64_t batch_size() const noexcept { return batch_; }
  std::int64_t batches() const noexcept { return num_batches(data_->size(), batch_); }
  std::span<const std::int32_t> order() const noexcept { return order_; }
  std::span<const std::int32_t> indices(std::int64_t b) const noexcept { return batch_indices(order_, b, batch_); }

  // Fills batch `b` into the buffers; returns its row count (batch_size, or fewer for the last one).
  Result<std::int64_t> load(std::int64_t b, MatView<float> out_images, std::int32_t* out_labels) const {
    if (b < 0 || b >= batches())
      return make_error(ErrorCode::invalid_argument, "BatchLoader::load",
                        "batch " + std::to_string(b) + " does not exist: an epoch has " +
                            std::to_string(batches()) + " batches");
    const auto idx = indices(b);
    FE_TRY(gather_batch(*data_, idx, out_images, out_labels));
    return static_cast<std::int64_t>(idx.size());
  }

 private:
  const Dataset* data_;
  std::int64_t batch_;
  std::uint64_t seed_;
  bool shuffle_;
  std::int64_t epoch_ = 0;
  std::vector<std::int32_t> order_;
};

}  // namespace ferrite::data
