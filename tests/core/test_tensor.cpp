#include <gtest/gtest.h>

#include <type_traits>

#include "ferrite/backend/devices.hpp"
#include "ferrite/tensor/tensor.hpp"

using namespace ferrite;

static_assert(!std::is_copy_constructible_v<Tensor>, "Tensor must be move-only");
static_assert(std::is_nothrow_move_constructible_v<Tensor>);

TEST(Shape, BasicsAndFormatting) {
  Shape s{32, 784};
  EXPECT_EQ(s.rank(), 2);
  EXPECT_EQ(s.numel(), 32 * 784);
  EXPECT_EQ(s.dim(-1), 784);
  EXPECT_EQ(s.to_string(), "[32, 784]");
  EXPECT_EQ(Shape{}.numel(), 1);
  EXPECT_NE(s, (Shape{784, 32}));
}

TEST(Tensor, MoveCloneAndAlignment) {
  auto t = Tensor::full<float>({3, 5}, 2.5f).value();
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.raw_data()) % kTensorAlignment, 0u);
  auto c = t.clone().value();
  c.data<float>()[0] = -1.0f;
  EXPECT_EQ(t.data<float>()[0], 2.5f);  // clone is a deep copy
  Tensor moved = std::move(t);
  EXPECT_EQ(moved.shape(), (Shape{3, 5}));
  EXPECT_FALSE(t.defined());  // NOLINT: moved-from is empty by contract
  auto m = moved.mat();
  EXPECT_EQ(m.rows, 3);
  EXPECT_EQ(m.cols, 5);
  EXPECT_EQ(m(2, 4), 2.5f);
  EXPECT_EQ(moved.describe(), "f32[3, 5] on cpu");
}

TEST(Tensor, ReshapeChecksCount) {
  auto t = Tensor::zeros({4, 6}).value();
  auto bad = Tensor::zeros({4, 6}).value();
  auto r = std::move(t).reshape({2, 12});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->shape(), (Shape{2, 12}));
  auto e = std::move(bad).reshape({5, 5});
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code, ErrorCode::shape_mismatch);
}

TEST(Tensor, FromDataChecksCount) {
  float v[3] = {1, 2, 3};
  EXPECT_FALSE(Tensor::from_data<float>({2, 2}, v, 3).ok());
  auto t = Tensor::from_data<float>({3}, v, 3).value();
  EXPECT_EQ(t.data<float>()[2], 3.0f);
}

// Issue 16, item 3: sizes that overflow 64 bits used to wrap (2^32 x 2^32 elements -> 0 bytes, a
// "successful" empty block that kernels then wrote through).
TEST(Tensor, SizeOverflowIsAnErrorNotAWrappedAllocation) {
  constexpr std::int64_t k2to32 = std::int64_t{1} << 32;
  EXPECT_FALSE((Shape{k2to32, k2to32}).checked_numel().has_value());
  EXPECT_FALSE((Shape{3, -1}).checked_numel().has_value());
  EXPECT_EQ((Shape{k2to32, 4}).checked_numel(), std::optional<std::int64_t>(k2to32 * 4));

  auto wrapped = Tensor::empty({k2to32, k2to32});
  ASSERT_FALSE(wrapped.ok());
  EXPECT_EQ(wrapped.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(wrapped.error().to_string().find("overflows"), std::string::npos) << wrapped.error().to_string();
  EXPECT_NE(wrapped.error().to_string().find("[4294967296, 4294967296]"), std::string::npos);
  // Elements fit in int64, bytes do not (2^61 f32 elements = 2^63 bytes).
  EXPECT_FALSE(Tensor::empty({std::int64_t{1} << 61}).ok());
  EXPECT_FALSE(Tensor::zeros({-2, 3}).ok());

  // A reshape into a wrapping shape once compared equal counts (0 == 0) and succeeded.
  auto none = Tensor::empty({0}).value();
  auto r = std::move(none).reshape({k2to32, k2to32, 0, k2to32});
  EXPECT_TRUE(r.ok());  // a true zero: 0 elements whatever the other dimensions
  auto none2 = Tensor::empty({0}).value();
  EXPECT_FALSE(std::move(none2).reshape({k2to32, k2to32, k2to32}).ok());

  // alias: offset + size must fit in the base without wrapping.
  auto base = Tensor::zeros({16}).value();
  EXPECT_FALSE(Tensor::alias(base, 8, {k2to32, k2to32}, DType::f32).ok());
  EXPECT_FALSE(Tensor::alias(base, ~std::size_t{0} - 4, {2}, DType::f32).ok());
  EXPECT_TRUE(Tensor::alias(base, 32, {8}, DType::f32).ok());
  EXPECT_FALSE(Tensor::alias(base, 36, {8}, DType::f32).ok());
}

TEST(Device, ParseAndAvailability) {
  EXPECT_EQ(Device::parse("cpu").value(), Device::cpu());
  EXPECT_EQ(Device::parse("cuda:1").value(), Device::cuda(1));
  EXPECT_FALSE(Device::parse("cuda:x").ok());
  EXPECT_FALSE(Device::parse("tpu").ok());
  EXPECT_TRUE(check_device(Device::cpu()).ok());
  const auto devices = available_devices();
  ASSERT_FALSE(devices.empty());
  EXPECT_EQ(devices.front(), Device::cpu());
  // A device index beyond what exists is always unavailable, with the available list in the message.
  auto s = check_device(Device::cuda(1000));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::device_unavailable);
  EXPECT_NE(s.error().message.find("available devices: cpu"), std::string::npos);
}

TEST(Tensor, NonCpuAllocationIsAnError) {
  if (cuda::compiled_with_cuda()) GTEST_SKIP() << "CUDA build: device tensors are the CUDA backend's";
  auto r = Tensor::empty({2}, DType::f32, Device::cuda(0));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::device_unavailable);
}
