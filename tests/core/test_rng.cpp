#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ferrite/core/rng.hpp"

using namespace ferrite;

// Known-answer vectors from the Random123 distribution (kat_vectors, philox4x32_10).
TEST(Philox, KnownAnswers) {
  {
    Philox p(0, 0);
    auto b = p(0);
    EXPECT_EQ(b[0], 0x6627e8d5u);
    EXPECT_EQ(b[1], 0xe169c58du);
    EXPECT_EQ(b[2], 0xbc57ac4cu);
    EXPECT_EQ(b[3], 0x9b00dbd8u);
  }
  {
    // counter = ffffffff x4, key = ffffffff x2
    Philox p(0xffffffffffffffffull, 0xffffffffffffffffull);
    auto b = p(0xffffffffffffffffull);
    EXPECT_EQ(b[0], 0x408f276du);
    EXPECT_EQ(b[1], 0x41c83b0eu);
    EXPECT_EQ(b[2], 0xa20bc7c6u);
    EXPECT_EQ(b[3], 0x6d5451fdu);
  }
}

TEST(Philox, ElementsArePureFunctionsOfIndex) {
  Philox p(42, 7);
  RngStream s(42, 7);
  for (std::uint64_t i = 0; i < 64; ++i) EXPECT_EQ(p.word(i), s.next_u32());
  EXPECT_NE(Philox(42, 7).word(0), Philox(42, 8).word(0));
  EXPECT_NE(Philox(42, 7).word(0), Philox(43, 7).word(0));
}

TEST(Philox, UniformAndNormalMoments) {
  Philox p(123, 1);
  const int n = 200000;
  double su = 0, su2 = 0, sn = 0, sn2 = 0;
  for (int i = 0; i < n; ++i) {
    const double u = p.uniform(i), z = p.normal(i);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    ASSERT_TRUE(std::isfinite(z));
    su += u; su2 += u * u; sn += z; sn2 += z * z;
  }
  EXPECT_NEAR(su / n, 0.5, 0.005);
  EXPECT_NEAR(su2 / n - (su / n) * (su / n), 1.0 / 12, 0.002);
  EXPECT_NEAR(sn / n, 0.0, 0.01);
  EXPECT_NEAR(sn2 / n, 1.0, 0.02);
}

TEST(RngStream, BoundedIsInRangeAndCoversIt) {
  RngStream s(9);
  std::vector<int> hits(10, 0);
  for (int i = 0; i < 10000; ++i) {
    auto v = s.next_below(10);
    ASSERT_LT(v, 10u);
    ++hits[v];
  }
  for (int h : hits) EXPECT_GT(h, 800);
}
