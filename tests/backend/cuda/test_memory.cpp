// Suite "cuda": the caching device allocator (backend/cuda/memory.hpp) — its statistics, block
// rounding and reuse policy, out-of-memory errors, DeviceBuffer and the blocking copies. Where no GPU
// is present (or the build has no CUDA backend) the device tests GTEST_SKIP with the reason; the
// first test runs everywhere and checks that every entry point then reports the missing device.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ferrite/backend/cuda/memory.hpp"
#include "ferrite/backend/cuda/runtime.hpp"
#include "ferrite/backend/devices.hpp"
#include "ferrite/core/device.hpp"
#include "ferrite/core/result.hpp"

#include "require_gpu.hpp"

using namespace ferrite;

namespace {

// device_unavailable, and the message names what is available (the CPU at least).
void expect_unavailable(const Error& e, const char* what) {
  EXPECT_EQ(e.code, ErrorCode::device_unavailable) << what << ": " << e.to_string();
  EXPECT_NE(e.to_string().find("available devices: cpu"), std::string::npos) << what << ": " << e.to_string();
}

std::vector<std::uint8_t> pattern(std::size_t n, unsigned seed) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i * 31 + seed);
  return v;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Without a GPU (this runs everywhere): one past the last device, which is every device when there is none.

TEST(CudaMemory, MissingDeviceIsReportedByEveryEntryPoint) {
  const int n = cuda::device_count();
  ASSERT_GE(n, 0);
  if (!cuda::compiled_with_cuda()) {
    EXPECT_EQ(n, 0);
  }

  auto stats = cuda::memory_stats(n);
  ASSERT_FALSE(stats.ok());
  expect_unavailable(stats.error(), "memory_stats");
  for (const auto& [what, st] : {std::pair{"empty_cache", cuda::empty_cache(n)},
                                 std::pair{"reset_peak_memory_stats", cuda::reset_peak_memory_stats(n)}}) {
    ASSERT_FALSE(st.ok()) << what;
    expect_unavailable(st.error(), what);
  }
  for (const std::int64_t bytes : {std::int64_t{0}, std::int64_t{64}, std::int64_t{3} << 20}) {
    auto buffer = cuda::DeviceBuffer::allocate(bytes, n);
    ASSERT_FALSE(buffer.ok()) << bytes << " bytes";
    expect_unavailable(buffer.error(), "DeviceBuffer::allocate");
  }

  // An empty buffer holds nothing and gives nothing back.
  cuda::DeviceBuffer empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.data(), nullptr);
  EXPECT_EQ(empty.bytes(), 0);
  empty.reset();
  EXPECT_TRUE(empty.empty());
  std::uint8_t byte = 7;
  const Status into = empty.copy_from_host(&byte, 1), out_of = empty.copy_to_host(&byte, 1);
  ASSERT_FALSE(into.ok());
  ASSERT_FALSE(out_of.ok());
  if (cuda::compiled_with_cuda()) {  // the size check comes first: nothing fits into 0 bytes
    EXPECT_EQ(into.error().code, ErrorCode::invalid_argument) << into.error().to_string();
    EXPECT_EQ(out_of.error().code, ErrorCode::invalid_argument) << out_of.error().to_string();
    EXPECT_TRUE(empty.copy_from_host(&byte, 0).ok());
  } else {
    expect_unavailable(into.error(), "copy_from_host");
    expect_unavailable(out_of.error(), "copy_to_host");
  }
  EXPECT_EQ(byte, 7);

#if defined(FERRITE_WITH_CUDA)
  // The blocking copies exist only with the backend. Sizes are checked before any device is touched;
  // a real transfer to a missing device fails in the CUDA runtime (cudaGetDevice / cudaSetDevice).
  std::vector<std::uint8_t> host(16, 1), other(16, 2);
  EXPECT_EQ(cuda::copy_blocking(other.data(), true, host.data(), false, -1, n).error().code,
            ErrorCode::invalid_argument);
  EXPECT_EQ(cuda::memset_blocking(other.data(), 0, -1, n).error().code, ErrorCode::invalid_argument);
  EXPECT_TRUE(cuda::copy_blocking(other.data(), true, host.data(), false, 0, n).ok());
  EXPECT_TRUE(cuda::memset_blocking(other.data(), 0, 0, n).ok());
  const Status copy = cuda::copy_blocking(other.data(), true, host.data(), false, 16, n);
  ASSERT_FALSE(copy.ok());
  EXPECT_EQ(copy.error().code, ErrorCode::cuda) << copy.error().to_string();
  const Status set = cuda::memset_blocking(other.data(), 0, 16, n);
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.error().code, ErrorCode::cuda) << set.error().to_string();
  EXPECT_EQ(other, std::vector<std::uint8_t>(16, 2));
#endif
  EXPECT_DOUBLE_EQ(cuda::bytes_to_mib(std::int64_t{3} << 20), 3.0);
}

// ---------------------------------------------------------------------------------------------
// Caching allocator (GPU 0)

TEST(CudaMemory, StatisticsFollowAllocationsAndTheCacheIsReused) {
  FE_REQUIRE_GPU();
  ASSERT_TRUE(cuda::empty_cache(0).ok());
  auto before = cuda::memory_stats(0);
  ASSERT_TRUE(before.ok()) << before.error().to_string();
  EXPECT_EQ(before->reserved_bytes, before->allocated_bytes) << "empty_cache left cached blocks";
  const std::int64_t bytes = (3 << 20) + 5;  // a large block: rounded to 2 MiB multiples
  {
    auto b = cuda::DeviceBuffer::allocate(bytes, 0);
    ASSERT_TRUE(b.ok()) << b.error().to_string();
    EXPECT_EQ(b->bytes(), bytes);
    EXPECT_EQ(b->device(), 0);
    EXPECT_FALSE(b->empty());
    auto during = cuda::memory_stats(0).value();
    EXPECT_EQ(during.allocated_bytes - before->allocated_bytes, 4 << 20);
    EXPECT_EQ(during.reserved_bytes - before->reserved_bytes, 4 << 20);
    EXPECT_EQ(during.allocations, before->allocations + 1);
    EXPECT_EQ(during.device_mallocs, before->device_mallocs + 1);
    EXPECT_GE(during.peak_allocated_bytes, during.allocated_bytes);
    EXPECT_GE(during.peak_reserved_bytes, during.reserved_bytes);
    EXPECT_GT(during.device_total_bytes, 0);
    EXPECT_GE(during.device_total_bytes, during.device_free_bytes);
    // Round trip through the device.
    const auto host = pattern(static_cast<std::size_t>(bytes), 7);
    std::vector<std::uint8_t> back(host.size());
    ASSERT_TRUE(b->copy_from_host(host.data(), bytes).ok());
    ASSERT_TRUE(b->copy_to_host(back.data(), bytes).ok());
    EXPECT_EQ(host, back);
    EXPECT_EQ(b->copy_from_host(host.data(), bytes + 1).error().code, ErrorCode::invalid_argument);
    EXPECT_EQ(b->copy_to_host(back.data(), -1).error().code, ErrorCode::invalid_argument);
  }
  auto freed = cuda::memory_stats(0).value();
  EXPECT_EQ(freed.allocated_bytes, before->allocated_bytes);
  EXPECT_EQ(freed.reserved_bytes, before->reserved_bytes + (4 << 20)) << "the block should stay cached";
  EXPECT_EQ(freed.device_frees, before->device_frees);
  {
    auto again = cuda::DeviceBuffer::allocate(bytes - 100, 0);  // same rounded size: a cache hit
    ASSERT_TRUE(again.ok()) << again.error().to_string();
    auto hit = cuda::memory_stats(0).value();
    EXPECT_EQ(hit.device_mallocs, freed.device_mallocs);
    EXPECT_EQ(hit.allocations, freed.allocations + 1);
    EXPECT_EQ(hit.reserved_bytes, freed.reserved_bytes);
  }
  ASSERT_TRUE(cuda::reset_peak_memory_stats(0).ok());
  auto reset = cuda::memory_stats(0).value();
  EXPECT_EQ(reset.peak_allocated_bytes, reset.allocated_bytes);
  EXPECT_EQ(reset.peak_reserved_bytes, reset.reserved_bytes);
  ASSERT_TRUE(cuda::empty_cache(0).ok());
  auto emptied = cuda::memory_stats(0).value();
  EXPECT_EQ(emptied.reserved_bytes, emptied.allocated_bytes);
  EXPECT_EQ(emptied.device_frees, before->device_frees + 1);
}

TEST(CudaMemory, SmallBlocksRoundTo512BytesAndReuseAcceptsAtMostAQuarterMore) {
  FE_REQUIRE_GPU();
  ASSERT_TRUE(cuda::empty_cache(0).ok());
  const auto before = cuda::memory_stats(0).value();
  {
    auto a = cuda::DeviceBuffer::allocate(1, 0);
    auto b = cuda::DeviceBuffer::allocate(513, 0);
    auto c = cuda::DeviceBuffer::allocate(4096, 0);
    ASSERT_TRUE(a.ok() && b.ok() && c.ok());
    const auto held = cuda::memory_stats(0).value();
    EXPECT_EQ(held.allocated_bytes - before.allocated_bytes, 512 + 1024 + 4096);
    EXPECT_EQ(held.device_mallocs, before.device_mallocs + 3);
  }
  const auto cached = cuda::memory_stats(0).value();  // blocks of 512, 1024 and 4096 bytes in the cache
  EXPECT_EQ(cached.allocated_bytes, before.allocated_bytes);
  EXPECT_EQ(cached.reserved_bytes - before.reserved_bytes, 512 + 1024 + 4096);
  {
    auto exact = cuda::DeviceBuffer::allocate(1000, 0);  // rounds to 1024: the cached 1024-byte block
    auto quarter = cuda::DeviceBuffer::allocate(3500, 0);  // rounds to 3584: 4096 is within 25 % more
    ASSERT_TRUE(exact.ok() && quarter.ok());
    const auto reused = cuda::memory_stats(0).value();
    EXPECT_EQ(reused.device_mallocs, cached.device_mallocs);
    EXPECT_EQ(reused.allocations, cached.allocations + 2);
    EXPECT_EQ(reused.allocated_bytes - before.allocated_bytes, 1024 + 4096);
  }
  {
    auto big = cuda::DeviceBuffer::allocate(4096, 0);     // takes the cached 4096
    auto small = cuda::DeviceBuffer::allocate(1024, 0);   // the cached 1024
    auto wide = cuda::DeviceBuffer::allocate(2560, 0);    // only 512 is left in the cache: a new block
    ASSERT_TRUE(big.ok() && small.ok() && wide.ok());
    EXPECT_EQ(cuda::memory_stats(0).value().device_mallocs, cached.device_mallocs + 1);
  }
  {
    // Cached now: 512, 1024, 2560, 4096. 2048 bytes take the 2560 (exactly 25 % more); 1536 then finds
    // only the 4096 above it, too large (a small request must not pin a large block down): a new block.
    auto fits = cuda::DeviceBuffer::allocate(2048, 0);
    auto none = cuda::DeviceBuffer::allocate(1536, 0);
    ASSERT_TRUE(fits.ok() && none.ok());
    EXPECT_EQ(cuda::memory_stats(0).value().device_mallocs, cached.device_mallocs + 2);
  }
  ASSERT_TRUE(cuda::empty_cache(0).ok());
  const auto emptied = cuda::memory_stats(0).value();
  EXPECT_EQ(emptied.reserved_bytes, emptied.allocated_bytes);
  EXPECT_EQ(emptied.allocated_bytes, before.allocated_bytes);
  EXPECT_EQ(emptied.device_frees, before.device_frees + 5);  // 512, 1024, 1536, 2560, 4096
}

TEST(CudaMemory, PeaksRiseWithAllocationsAndResetToTheCurrentValues) {
  FE_REQUIRE_GPU();
  ASSERT_TRUE(cuda::empty_cache(0).ok());
  ASSERT_TRUE(cuda::reset_peak_memory_stats(0).ok());
  const auto before = cuda::memory_stats(0).value();
  EXPECT_EQ(before.peak_allocated_bytes, before.allocated_bytes);
  {
    auto b = cuda::DeviceBuffer::allocate(std::int64_t{6} << 20, 0);
    ASSERT_TRUE(b.ok()) << b.error().to_string();
  }
  const auto after = cuda::memory_stats(0).value();
  EXPECT_EQ(after.allocated_bytes, before.allocated_bytes);
  EXPECT_EQ(after.peak_allocated_bytes, before.allocated_bytes + (std::int64_t{6} << 20));
  EXPECT_EQ(after.peak_reserved_bytes, before.reserved_bytes + (std::int64_t{6} << 20));
  ASSERT_TRUE(cuda::empty_cache(0).ok());
  const auto emptied = cuda::memory_stats(0).value();
  EXPECT_EQ(emptied.peak_reserved_bytes, after.peak_reserved_bytes) << "empty_cache keeps the peaks";
  ASSERT_TRUE(cuda::reset_peak_memory_stats(0).ok());
  const auto reset = cuda::memory_stats(0).value();
  EXPECT_EQ(reset.peak_allocated_bytes, reset.allocated_bytes);
  EXPECT_EQ(reset.peak_reserved_bytes, reset.reserved_bytes);
}

TEST(CudaMemory, DeviceBufferMovesOwnershipAndReturnsItsBlockOnce) {
  FE_REQUIRE_GPU();
  ASSERT_TRUE(cuda::empty_cache(0).ok());
  const auto before = cuda::memory_stats(0).value();
  auto first = cuda::DeviceBuffer::allocate(1000, 0);
  ASSERT_TRUE(first.ok()) << first.error().to_string();
  void* const address = first->data();
  cuda::DeviceBuffer moved(std::move(*first));
  EXPECT_TRUE(first->empty());
  EXPECT_EQ(first->bytes(), 0);
  EXPECT_EQ(moved.data(), address);
  EXPECT_EQ(moved.bytes(), 1000);
  EXPECT_EQ(cuda::memory_stats(0).value().allocated_bytes - before.allocated_bytes, 1024);

  auto second = cuda::DeviceBuffer::allocate(5000, 0);
  ASSERT_TRUE(second.ok());
  moved = std::move(*second);  // the 1000-byte block goes back to the cache
  EXPECT_EQ(moved.bytes(), 5000);
  EXPECT_TRUE(second->empty());
  EXPECT_EQ(cuda::memory_stats(0).value().allocated_bytes - before.allocated_bytes, 5120);
  first->reset();  // empty: nothing to return
  moved.reset();
  moved.reset();  // a second reset returns nothing
  EXPECT_TRUE(moved.empty());
  const auto after = cuda::memory_stats(0).value();
  EXPECT_EQ(after.allocated_bytes, before.allocated_bytes);
  EXPECT_EQ(after.reserved_bytes - before.reserved_bytes, 1024 + 5120);
  ASSERT_TRUE(cuda::empty_cache(0).ok());
}

#if defined(FERRITE_WITH_CUDA)
TEST(CudaMemory, BlockingCopiesAndMemsetLand) {
  FE_REQUIRE_GPU();
  const std::int64_t bytes = 3000;
  auto a = cuda::DeviceBuffer::allocate(bytes, 0);
  auto b = cuda::DeviceBuffer::allocate(bytes, 0);
  ASSERT_TRUE(a.ok() && b.ok());
  const auto host = pattern(static_cast<std::size_t>(bytes), 3);
  std::vector<std::uint8_t> back(host.size(), 0);
  ASSERT_TRUE(cuda::copy_blocking(a->data(), true, host.data(), false, bytes, 0).ok());
  ASSERT_TRUE(cuda::copy_blocking(b->data(), true, a->data(), true, bytes, 0).ok());
  ASSERT_TRUE(cuda::copy_blocking(back.data(), false, b->data(), true, bytes, 0).ok());
  EXPECT_EQ(back, host);
  ASSERT_TRUE(cuda::memset_blocking(b->data(), 0xab, 1000, 0).ok());
  ASSERT_TRUE(b->copy_to_host(back.data(), bytes).ok());
  for (std::size_t i = 0; i < back.size(); ++i)
    ASSERT_EQ(back[i], i < 1000 ? 0xab : host[i]) << "byte " << i;
  std::vector<std::uint8_t> copy(host.size(), 0);  // host to host is a plain copy
  ASSERT_TRUE(cuda::copy_blocking(copy.data(), false, host.data(), false, bytes, 0).ok());
  EXPECT_EQ(copy, host);
}
#endif

TEST(CudaMemory, OutOfMemoryNamesTheRequestAndTheFreeMemory) {
  FE_REQUIRE_GPU();
  const auto before = cuda::memory_stats(0).value();
  auto huge = cuda::DeviceBuffer::allocate(std::int64_t{1} << 50, 0);  // 1 PiB
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().code, ErrorCode::out_of_memory);
  const std::string msg = huge.error().to_string();
  EXPECT_NE(msg.find("1125899906842624 bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cuda:0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("free of"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ferrite holds"), std::string::npos) << msg;
  const auto after = cuda::memory_stats(0).value();
  EXPECT_EQ(after.allocated_bytes, before.allocated_bytes) << "a failed allocation holds nothing";
  EXPECT_EQ(after.allocations, before.allocations);
  // The failure left the device usable.
  auto small = cuda::DeviceBuffer::allocate(1024, 0);
  ASSERT_TRUE(small.ok()) << small.error().to_string();
  auto negative = cuda::DeviceBuffer::allocate(-1, 0);
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.error().code, ErrorCode::invalid_argument);
  auto empty = cuda::DeviceBuffer::allocate(0, 0);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  EXPECT_EQ(empty->bytes(), 0);
}
