#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "ferrite/backend/cpu/threading.hpp"
#include "ferrite/data/synthetic.hpp"

using namespace ferrite;
using namespace ferrite::data;

namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

TEST(Synthetic, ShapesRangeAndName) {
  auto r = make_synthetic(1000, 42, Split::train);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  const Dataset& d = *r;
  EXPECT_EQ(d.size(), 1000);
  EXPECT_EQ(d.images.shape(), (Shape{1000, 784}));
  EXPECT_EQ(d.images.dtype(), DType::f32);
  EXPECT_EQ(d.labels.dtype(), DType::i32);
  EXPECT_EQ(d.rows, 28);
  EXPECT_EQ(d.cols, 28);
  EXPECT_EQ(d.num_classes, 10);
  EXPECT_EQ(d.name, "synthetic/train");
  const float* x = d.images.data<float>();
  std::int64_t zeros = 0, ones = 0;
  double mean = 0;
  for (std::int64_t k = 0; k < d.images.numel(); ++k) {
    ASSERT_TRUE(x[k] >= 0.0f && x[k] <= 1.0f) << "pixel " << k << " = " << x[k];
    zeros += x[k] == 0.0f;
    ones += x[k] == 1.0f;
    mean += x[k];
  }
  mean /= static_cast<double>(d.images.numel());
  // Noise is clipped on both sides, and images are neither empty nor saturated.
  EXPECT_GT(zeros, 0);
  EXPECT_GT(ones, 0);
  EXPECT_GT(mean, 0.05);
  EXPECT_LT(mean, 0.6);
  for (std::int64_t i = 0; i < d.size(); ++i) {
    ASSERT_GE(d.label_data()[i], 0);
    ASSERT_LT(d.label_data()[i], 10);
  }
}

TEST(Synthetic, ClassesAreBalanced) {
  // Blocks of ten samples hold each class once.
  auto d = make_synthetic(1005, 3, Split::test).value();
  std::vector<int> per_class(10, 0);
  for (std::int64_t i = 0; i < 1000; ++i) per_class[static_cast<std::size_t>(d.label_data()[i])]++;
  for (int c = 0; c < 10; ++c) EXPECT_EQ(per_class[static_cast<std::size_t>(c)], 100) << "class " << c;
  // ...but the order is not simply i % 10.
  int in_sequence = 0;
  for (std::int64_t i = 0; i < 1000; ++i) in_sequence += d.label_data()[i] == i % 10;
  EXPECT_LT(in_sequence, 300);
}

TEST(Synthetic, DeterministicAndThreadCountIndependent) {
  Dataset one, two, again;
  {
    cpu::ThreadLimit limit(1);
    one = make_synthetic(700, 1234, Split::train).value();
  }
  {
    cpu::ThreadLimit limit(2);
    two = make_synthetic(700, 1234, Split::train).value();
  }
  again = make_synthetic(700, 1234, Split::train).value();
  EXPECT_TRUE(same_bits(one.images, two.images));
  EXPECT_TRUE(same_bits(one.labels, two.labels));
  EXPECT_TRUE(same_bits(one.images, again.images));
  EXPECT_TRUE(same_bits(one.labels, again.labels));
}

TEST(Synthetic, SampleDependsOnlyOnIndex) {
  // Sample i is the same whether 50 or 700 samples are generated: a pure function of (seed, split, i).
  auto small = make_synthetic(50, 9, Split::test).value();
  auto large = make_synthetic(700, 9, Split::test).value();
  EXPECT_EQ(std::memcmp(small.images.raw_data(), large.images.raw_data(), small.images.nbytes()), 0);
  EXPECT_EQ(std::memcmp(small.labels.raw_data(), large.labels.raw_data(), small.labels.nbytes()), 0);
}

TEST(Synthetic, SeedsAndSplitsDiffer) {
  auto a = make_synthetic(200, 1, Split::train).value();
  auto b = make_synthetic(200, 2, Split::train).value();
  auto t = make_synthetic(200, 1, Split::test).value();
  EXPECT_FALSE(same_bits(a.images, b.images));
  EXPECT_FALSE(same_bits(a.labels, b.labels));
  EXPECT_FALSE(same_bits(a.images, t.images));
  EXPECT_FALSE(same_bits(a.labels, t.labels));
  EXPECT_FALSE(same_bits(synthetic_templates(1).value(), synthetic_templates(2).value()));
  // Train and test share their templates.
  EXPECT_TRUE(same_bits(synthetic_templates(1).value(), synthetic_templates(1).value()));
}

TEST(Synthetic, TemplatesAreDistinctStrokes) {
  auto t = synthetic_templates(42).value();
  ASSERT_EQ(t.shape(), (Shape{10, 784}));
  const float* p = t.data<float>();
  for (int c = 0; c < 10; ++c) {
    double ink = 0;
    for (int k = 0; k < 784; ++k) ink += p[c * 784 + k];
    EXPECT_GT(ink, 20.0) << "class " << c << " template is nearly empty";
    EXPECT_LT(ink, 400.0) << "class " << c << " template fills the image";
    for (int o = 0; o < c; ++o) {
      double diff = 0;
      for (int k = 0; k < 784; ++k) diff += std::abs(p[c * 784 + k] - p[o * 784 + k]);
      EXPECT_GT(diff, 10.0) << "templates " << c << " and " << o << " nearly coincide";
    }
  }
}

// Learnability, cheaply: classifying each test sample by its nearest class mean (centroids from
// 1,000 training samples) must beat chance by far, and the unaltered templates must not be the
// samples (noise and shifts are present).
TEST(Synthetic, LearnableButNotTrivial) {
  auto train = make_synthetic(1000, 42, Split::train).value();
  auto test = make_synthetic(1000, 42, Split::test).value();
  std::vector<double> centroid(10 * 784, 0.0);
  std::vector<int> count(10, 0);
  for (std::int64_t i = 0; i < train.size(); ++i) {
    const int y = train.label_data()[i];
    count[static_cast<std::size_t>(y)]++;
    for (int k = 0; k < 784; ++k) centroid[static_cast<std::size_t>(y * 784 + k)] += train.images.data<float>()[i * 784 + k];
  }
  for (int c = 0; c < 10; ++c)
    for (int k = 0; k < 784; ++k) centroid[static_cast<std::size_t>(c * 784 + k)] /= count[static_cast<std::size_t>(c)];
  auto nearest = [&](const float* x, const std::vector<double>& means) {
    int best = 0;
    double best_d = 1e300;
    for (int c = 0; c < 10; ++c) {
      double d = 0;
      for (int k = 0; k < 784; ++k) {
        const double e = x[k] - means[static_cast<std::size_t>(c * 784 + k)];
        d += e * e;
      }
      if (d < best_d) best_d = d, best = c;
    }
    return best;
  };
  int correct = 0;
  for (std::int64_t i = 0; i < test.size(); ++i)
    correct += nearest(test.images.data<float>() + i * 784, centroid) == test.label_data()[i];
  EXPECT_GT(correct, 700) << "nearest class mean: " << correct << " / 1000";

  // One training sample per class as the "means": far from perfect.
  std::vector<double> single(10 * 784, 0.0);
  std::vector<bool> seen(10, false);
  for (std::int64_t i = 0; i < train.size(); ++i) {
    const int y = train.label_data()[i];
    if (seen[static_cast<std::size_t>(y)]) continue;
    seen[static_cast<std::size_t>(y)] = true;
    for (int k = 0; k < 784; ++k) single[static_cast<std::size_t>(y * 784 + k)] = train.images.data<float>()[i * 784 + k];
  }
  int correct_single = 0;
  for (std::int64_t i = 0; i < test.size(); ++i)
    correct_single += nearest(test.images.data<float>() + i * 784, single) == test.label_data()[i];
  EXPECT_LT(correct_single, 900) << "one sample per class solves the task: " << correct_single << " / 1000";
  EXPECT_GT(correct_single, 150);
}

TEST(Synthetic, RejectsBadArguments) {
  auto zero = make_synthetic(0, 1, Split::train);
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(zero.error().message.find("samples must be"), std::string::npos);
  EXPECT_FALSE(make_synthetic(std::int64_t{1} << 40, 1, Split::train).ok());
  SyntheticOptions bad;
  bad.noise_std = -1.f;
  EXPECT_FALSE(make_synthetic(10, 1, Split::train, bad).ok());
  bad = {};
  bad.strokes = 0;
  EXPECT_FALSE(make_synthetic(10, 1, Split::train, bad).ok());
}

TEST(Synthetic, OptionsChangeDifficulty) {
  SyntheticOptions clean;
  clean.noise_std = 0.f;
  clean.max_shift = 0;
  clean.min_scale = 1.f;
  auto d = make_synthetic(20, 5, Split::train, clean).value();
  auto t = synthetic_templates(5).value();
  // Without noise, shift or scaling, a sample is exactly its class template.
  for (std::int64_t i = 0; i < d.size(); ++i)
    EXPECT_EQ(std::memcmp(d.images.data<float>() + i * 784, t.data<float>() + d.label_data()[i] * 784,
                          784 * sizeof(float)),
              0)
        << "sample " << i;
}

}  // namespace
