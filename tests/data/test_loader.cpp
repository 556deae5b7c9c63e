#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "ferrite/data/loader.hpp"

using namespace ferrite;
using namespace ferrite::data;

namespace {

// A dataset of n samples with 3 features where sample i is [i, i + 0.25, i + 0.5] and label i % 10.
Dataset counting_dataset(std::int64_t n) {
  Dataset d;
  d.rows = 1;
  d.cols = 3;
  d.name = "counting";
  d.images = Tensor::empty({n, 3}).value();
  d.labels = Tensor::empty({n}, DType::i32).value();
  for (std::int64_t i = 0; i < n; ++i) {
    for (int k = 0; k < 3; ++k) d.images.data<float>()[i * 3 + k] = static_cast<float>(i) + 0.25f * k;
    d.labels.data<std::int32_t>()[i] = static_cast<std::int32_t>(i % 10);
  }
  return d;
}

bool is_permutation_of_range(const std::vector<std::int32_t>& order, std::int64_t n) {
  if (static_cast<std::int64_t>(order.size()) != n) return false;
  std::vector<std::int32_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (std::int64_t i = 0; i < n; ++i)
    if (sorted[static_cast<std::size_t>(i)] != i) return false;
  return true;
}

TEST(EpochOrder, IsAReproduciblePermutationThatChangesPerEpoch) {
  const auto e0 = epoch_order(1000, 42, 0);
  const auto e1 = epoch_order(1000, 42, 1);
  EXPECT_TRUE(is_permutation_of_range(e0, 1000));
  EXPECT_TRUE(is_permutation_of_range(e1, 1000));
  EXPECT_EQ(e0, epoch_order(1000, 42, 0));  // same seed and epoch, same order
  EXPECT_NE(e0, e1);
  EXPECT_NE(e0, epoch_order(1000, 43, 0));
  std::vector<std::int32_t> identity(1000);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(e0, identity);
  int fixed_points = 0;  // a random permutation has ~1 on average
  for (int i = 0; i < 1000; ++i) fixed_points += e0[static_cast<std::size_t>(i)] == i;
  EXPECT_LT(fixed_points, 10);
}

TEST(EpochOrder, MatchesFisherYatesOverTheShuffleStream) {
  // The documented algorithm, spelled out: swap i with next_below(i + 1), i from n - 1 down to 1.
  const std::int64_t n = 37;
  std::vector<std::int32_t> expected(n);
  std::iota(expected.begin(), expected.end(), 0);
  RngStream rng(7, rng_stream::shuffle + 3);
  for (std::int64_t i = n - 1; i > 0; --i)
    std::swap(expected[static_cast<std::size_t>(i)], expected[rng.next_below(static_cast<std::uint32_t>(i + 1))]);
  EXPECT_EQ(epoch_order(n, 7, 3), expected);
}

TEST(EpochOrder, TinySizes) {
  EXPECT_TRUE(epoch_order(0, 1, 0).empty());
  EXPECT_EQ(epoch_order(1, 1, 0), std::vector<std::int32_t>{0});
  EXPECT_TRUE(is_permutation_of_range(epoch_order(2, 1, 5), 2));
}

TEST(Batches, LastPartialBatchIsKept) {
  EXPECT_EQ(num_batches(1000, 32), 32);  // 31 full + 8
  EXPECT_EQ(num_batches(1024, 32), 32);
  EXPECT_EQ(num_batches(0, 32), 0);
  EXPECT_EQ(num_batches(5, 0), 0);
  const auto order = epoch_order(1000, 1, 0);
  std::int64_t covered = 0;
  for (std::int64_t b = 0; b < num_batches(1000, 32); ++b) {
    const auto idx = batch_indices(order, b, 32);
    EXPECT_EQ(idx.data(), order.data() + b * 32);
    covered += static_cast<std::int64_t>(idx.size());
    EXPECT_EQ(idx.size(), b < 31 ? 32u : 8u);
  }
  EXPECT_EQ(covered, 1000);
  EXPECT_TRUE(batch_indices(order, 40, 32).empty());
}

TEST(GatherBatch, CopiesRowsAndLabelsIntoStridedBuffer) {
  const Dataset d = counting_dataset(20);
  const std::vector<std::int32_t> idx{7, 0, 19, 7};
  // Buffer with spare rows and a leading dimension larger than the row.
  std::vector<float> buffer(6 * 5, -1.f);
  std::vector<std::int32_t> labels(6, -1);
  MatView<float> out{buffer.data(), 6, 3, 5};
  ASSERT_TRUE(gather_batch(d, idx, out, labels.data()).ok());
  for (std::size_t r = 0; r < idx.size(); ++r) {
    for (int k = 0; k < 3; ++k) EXPECT_EQ(out(static_cast<std::int64_t>(r), k), idx[r] + 0.25f * k);
    EXPECT_EQ(out(static_cast<std::int64_t>(r), 3), -1.f);  // padding untouched
    EXPECT_EQ(labels[r], idx[r] % 10);
  }
  EXPECT_EQ(out(4, 0), -1.f);  // rows past the batch untouched
  EXPECT_EQ(labels[4], -1);
  // Labels are optional.
  EXPECT_TRUE(gather_batch(d, idx, out, nullptr).ok());
}

TEST(GatherBatch, RejectsBadIndicesAndBuffers) {
  const Dataset d = counting_dataset(20);
  std::vector<float> buffer(4 * 3);
  std::vector<std::int32_t> labels(4);
  MatView<float> out{buffer.data(), 4, 3, 3};
  const std::vector<std::int32_t> past_end{1, 20};
  auto r = gather_batch(d, past_end, out, labels.data());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(r.error().message.find("index 20 at batch position 1"), std::string::npos) << r.error().to_string();
  EXPECT_FALSE(gather_batch(d, std::vector<std::int32_t>{-1}, out, labels.data()).ok());
  const std::vector<std::int32_t> five{0, 1, 2, 3, 4};
  auto too_many = gather_batch(d, five, out, labels.data());
  ASSERT_FALSE(too_many.ok());
  EXPECT_EQ(too_many.error().code, ErrorCode::shape_mismatch);
  EXPECT_FALSE(gather_batch(d, std::vector<std::int32_t>{0}, MatView<float>{buffer.data(), 4, 2, 3}, nullptr).ok());
}

TEST(Accuracy, ArgmaxWithFirstMaxOnTies) {
  // 4 rows x 3 classes.
  const std::vector<float> logits{
      0.1f, 0.9f, 0.3f,   // argmax 1
      2.0f, 2.0f, 1.0f,   // tie: first max, 0
      -5.f, -4.f, -3.f,   // argmax 2
      1.0f, 1.0f, 1.0f,   // all equal: 0
  };
  const MatView<const float> z{logits.data(), 4, 3, 3};
  const std::vector<std::int32_t> labels{1, 1, 2, 0};
  EXPECT_EQ(correct_count(z, labels.data()), 3);
  EXPECT_DOUBLE_EQ(accuracy(z, labels.data()), 0.75);
  const std::vector<std::int32_t> all_right{1, 0, 2, 0};
  EXPECT_DOUBLE_EQ(accuracy(z, all_right.data()), 1.0);
  EXPECT_DOUBLE_EQ(accuracy(MatView<const float>{logits.data(), 0, 3, 3}, labels.data()), 0.0);
}

TEST(Accuracy, NanIsTheMaximumLikeTorch) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> logits{1.f, nan, 3.f, nan, 5.f, nan};
  const std::vector<std::int32_t> labels{1, 0};
  EXPECT_EQ(correct_count(MatView<const float>{logits.data(), 2, 3, 3}, labels.data()), 2);
}

TEST(BatchLoader, CoversEpochInOrderOfEpochOrder) {
  const Dataset d = counting_dataset(10);
  BatchLoader loader(d, 4, 99);
  EXPECT_EQ(loader.batches(), 3);
  std::vector<float> x(4 * 3);
  std::vector<std::int32_t> y(4);
  for (std::int64_t epoch = 0; epoch < 2; ++epoch) {
    loader.start_epoch(epoch);
    const auto order = epoch_order(10, 99, epoch);
    std::vector<std::int32_t> seen;
    for (std::int64_t b = 0; b < loader.batches(); ++b) {
      auto rows = loader.load(b, MatView<float>{x.data(), 4, 3, 3}, y.data());
      ASSERT_TRUE(rows.ok()) << rows.error().to_string();
      EXPECT_EQ(*rows, b < 2 ? 4 : 2);
      for (std::int64_t r = 0; r < *rows; ++r) seen.push_back(static_cast<std::int32_t>(x[static_cast<std::size_t>(r * 3)]));
    }
    EXPECT_EQ(seen, order);
  }
  EXPECT_FALSE(loader.load(3, MatView<float>{x.data(), 4, 3, 3}, y.data()).ok());

  BatchLoader in_order(d, 4, 99, /*shuffle=*/false);
  ASSERT_TRUE(in_order.load(2, MatView<float>{x.data(), 4, 3, 3}, y.data()).ok());
  EXPECT_EQ(x[0], 8.f);
  EXPECT_EQ(x[3], 9.f);
}

TEST(Dataset, SliceCopiesARange) {
  const Dataset d = counting_dataset(10);
  auto s = d.slice(3, 4);
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_EQ(s->size(), 4);
  EXPECT_EQ(s->images.data<float>()[0], 3.f);
  EXPECT_EQ(s->label_data()[3], 6);
  EXPECT_EQ(s->name, "counting[3:7]");
  EXPECT_FALSE(d.slice(8, 3).ok());
  EXPECT_FALSE(d.slice(-1, 2).ok());
  EXPECT_EQ(Dataset{}.size(), 0);
}

}  // namespace

// torch.utils.data.DistributedSampler(shuffle=False) on range(n), written out by hand from its rule
// (pad by repeating the start, or drop the tail; rank r takes r, r + world, ...).
TEST(ShardOrder, MatchesDistributedSampler) {
  std::vector<std::int32_t> order(10);
  std::iota(order.begin(), order.end(), 0);
  EXPECT_EQ(shard_order(order, 0, 3, false), (std::vector<std::int32_t>{0, 3, 6, 9}));
  EXPECT_EQ(shard_order(order, 1, 3, false), (std::vector<std::int32_t>{1, 4, 7, 0}));
  EXPECT_EQ(shard_order(order, 2, 3, false), (std::vector<std::int32_t>{2, 5, 8, 1}));
  EXPECT_EQ(shard_order(order, 0, 3, true), (std::vector<std::int32_t>{0, 3, 6}));
  EXPECT_EQ(shard_order(order, 2, 3, true), (std::vector<std::int32_t>{2, 5, 8}));
  EXPECT_EQ(shard_order(order, 0, 1, false), order);  // a world of one keeps everything
  const std::vector<std::int32_t> two{7, 9};  // fewer samples than ranks: padding repeats them
  for (int r = 0; r < 5; ++r) EXPECT_EQ(shard_order(two, r, 5, false), (std::vector<std::int32_t>{two[r % 2]})) << r;
  for (int r = 0; r < 5; ++r) EXPECT_TRUE(shard_order(two, r, 5, true).empty()) << r;
}

// What makes N ranks x batch B/N train like 1 rank x batch B: batch b of every rank's share together
// holds exactly the rows of batch b of the whole order.
TEST(ShardOrder, RankBatchesTogetherAreTheGlobalBatch) {
  const std::int64_t n = 1000, batch = 32;
  const auto order = epoch_order(n, 42, 3);
  for (int world : {2, 4, 8}) {
    std::vector<std::vector<std::int32_t>> shares;
    for (int r = 0; r < world; ++r) shares.push_back(shard_order(order, r, world, false));
    const std::int64_t local = batch / world;
    for (std::int64_t b = 0; b < num_batches(n, batch); ++b) {
      std::vector<std::int32_t> got, want(order.begin() + b * batch, order.begin() + std::min(n, (b + 1) * batch));
      for (const auto& s : shares) {
        const auto part = batch_indices(s, b, local);
        got.insert(got.end(), part.begin(), part.end());
      }
      std::sort(got.begin(), got.end());
      std::sort(want.begin(), want.end());
      ASSERT_EQ(got, want) << "world " << world << " batch " << b;
    }
  }
}
