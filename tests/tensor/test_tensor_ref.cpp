// tensor/: strided views (slice, transpose, permute, reshape, as matrix), aliases, device moves,
// the workspace arena's fixed addresses, and the context's errors.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "ferrite/tensor/context.hpp"
#include "ferrite/tensor/tensor.hpp"

using namespace ferrite;

namespace {
Tensor iota(Shape shape) {
  auto t = Tensor::empty(shape).value();
  std::iota(t.data<float>(), t.data<float>() + t.numel(), 0.f);
  return t;
}
}  // namespace

TEST(TensorRef, SliceTransposePermuteReshape) {
  Tensor t = iota({4, 6});
  TensorRef r = t.ref();
  EXPECT_TRUE(r.is_contiguous());
  EXPECT_EQ(r.strides, (Strides{6, 1}));
  auto rows = r.slice(0, 1, 3).value();  // rows 1, 2
  EXPECT_EQ(rows.shape, (Shape{2, 6}));
  EXPECT_EQ(rows.ptr<float>()[0], 6.f);
  EXPECT_TRUE(rows.is_contiguous());
  auto cols = r.slice(1, 2, 5).value();  // columns 2..4: not contiguous, ld 6
  EXPECT_FALSE(cols.is_contiguous());
  auto m = cols.mat<float>().value();
  EXPECT_EQ(m.ld, 6);
  EXPECT_EQ(m(1, 0), 8.f);
  auto tr = r.transpose();
  EXPECT_EQ(tr.shape, (Shape{6, 4}));
  EXPECT_EQ(tr.strides, (Strides{1, 6}));
  EXPECT_FALSE(tr.mat<float>().ok());  // no unit last stride: an error, not a wrong view
  EXPECT_FALSE(tr.reshape({24}).ok());
  EXPECT_EQ(tr.reshape({24}).error().code, ErrorCode::unsupported);
  auto flat = r.reshape({2, 12}).value();
  EXPECT_EQ(flat.strides, (Strides{12, 1}));
  Tensor t3 = iota({2, 3, 4});
  auto p = t3.ref().permute({2, 0, 1}).value();
  EXPECT_EQ(p.shape, (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides, (Strides{1, 12, 4}));
  EXPECT_FALSE(t3.ref().permute({0, 0, 1}).ok());
  EXPECT_FALSE(r.slice(0, 3, 5).ok());
  EXPECT_NE(r.slice(0, 3, 5).error().shapes.find("f32[4, 6] on cpu"), std::string::npos);
  // A 3-D contiguous view collapses its leading dimensions into rows.
  auto m3 = t3.cref().mat<float>().value();
  EXPECT_EQ(m3.rows, 6);
  EXPECT_EQ(m3.cols, 4);
  EXPECT_FALSE(t3.cref().mat<double>().ok());  // dtype named
}

TEST(Tensor, AliasSharesStorageAndOutlivesItsBase) {
  Tensor base = iota({16});
  Tensor a = Tensor::alias(base, 4 * sizeof(float), {2, 3}, DType::f32).value();
  EXPECT_TRUE(base.shares_storage());
  EXPECT_EQ(a.data<float>()[0], 4.f);
  EXPECT_EQ(a.byte_offset(), 4 * sizeof(float));
  EXPECT_FALSE(Tensor::alias(base, 12 * sizeof(float), {2, 3}, DType::f32).ok());  // past the end
  base = Tensor();  // the block lives on through the alias
  EXPECT_EQ(a.data<float>()[5], 9.f);
  Tensor c = a.clone().value();  // a deep copy owns its own block
  EXPECT_FALSE(c.shares_storage());
  EXPECT_EQ(c.data<float>()[5], 9.f);
}

TEST(Tensor, DevicesWithoutTheBackendSayWhatIsAvailable) {
  if (cuda::device_count() > 0) GTEST_SKIP() << "skipped: a GPU is present (the CUDA suite covers it)";
  Tensor t = iota({3});
  auto moved = t.to(Device::cuda(0));
  ASSERT_FALSE(moved.ok());
  EXPECT_EQ(moved.error().code, ErrorCode::device_unavailable);
  EXPECT_NE(moved.error().message.find("available devices: cpu"), std::string::npos) << moved.error().to_string();
  auto ctx = Context::create(Device::cuda(0));
  ASSERT_FALSE(ctx.ok());
  EXPECT_EQ(ctx.error().code, ErrorCode::device_unavailable);
}

TEST(Workspace, SameAddressesEveryStepAfterTheFirst) {
  // First pass: three requests larger than any chunk so far (three chunks); reset merges them; from
  // then on the same sequence gets the same addresses, each 64-byte aligned.
  Workspace ws;
  auto pass = [&] {
    std::vector<const void*> addresses;
    for (std::int64_t n : {100, 5000, 70000}) addresses.push_back(ws.allocate({n}).value().data);
    return addresses;
  };
  (void)pass();
  ASSERT_TRUE(ws.reset().ok());
  const auto second = pass();
  ASSERT_TRUE(ws.reset().ok());
  const auto third = pass();
  EXPECT_EQ(second, third);
  for (const void* p : second) EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % kTensorAlignment, 0u);
  EXPECT_GE(ws.capacity_bytes(), ws.high_water_bytes());
  // A smaller pass after a larger one stays inside the same block.
  ASSERT_TRUE(ws.reset().ok());
  EXPECT_EQ(ws.allocate({10}).value().data, second[0]);
  EXPECT_FALSE(ws.allocate({-1}).ok());
}

TEST(Context, ProfilerRecordsEveryScope) {
  Context ctx = Context::cpu();
  OpProfiler profiler;
  ctx.set_profiler(&profiler);
  { ProfileScope s(ctx, "op_a"); }
  { ProfileScope s(ctx, "op_a"); }
  { ProfileScope s(ctx, "op_b"); }
  ctx.set_profiler(nullptr);
  { ProfileScope s(ctx, "op_c"); }  // no profiler: nothing recorded
  ASSERT_EQ(profiler.entries().size(), 2u);
  EXPECT_EQ(profiler.entries().at("op_a").calls, 2);
}
