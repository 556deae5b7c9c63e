#include <gtest/gtest.h>

#include <string>

#include "ferrite/core/result.hpp"

using namespace ferrite;

namespace {
Result<int> parse_positive(int v) {
  if (v <= 0) return make_error(ErrorCode::invalid_argument, "parse_positive", "not positive: " + std::to_string(v));
  return v;
}
Result<int> doubled(int v) {
  FE_TRY_ASSIGN(int x, parse_positive(v));
  return 2 * x;
}
Status check(int v) {
  FE_TRY(parse_positive(v));
  return {};
}
}  // namespace

TEST(Result, ValueAndErrorPropagate) {
  auto good = doubled(4);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good.value(), 8);
  auto bad = doubled(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(bad.error().op, "parse_positive");
  EXPECT_TRUE(check(3).ok());
  EXPECT_FALSE(check(0).ok());
}

TEST(Result, ErrorStringNamesOpCodeAndShapes) {
  Error e = make_error(ErrorCode::shape_mismatch, "gemm", "inner dimensions differ", "[2, 3] x [4, 5]");
  EXPECT_EQ(e.to_string(), "gemm: shape_mismatch: inner dimensions differ (shapes [2, 3] x [4, 5])");
}
