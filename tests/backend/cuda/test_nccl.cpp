// Suite "cuda": NCCL through cuda::NcclComm (backend/cuda/collectives.hpp), the GPU path of
// train/distributed.hpp. One GPU hosts one NCCL rank, so this runs a world of one: the all-reduce
// mean and the broadcast must leave a device buffer exactly as it was (the MPI path's result for one
// rank), enqueued on a ferrite stream. Skipped without a GPU, and with the loader's reason where
// libnccl.so.2 cannot be found (scripts/gpu-checks.sh points FERRITE_NCCL at PyTorch's copy).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ferrite/backend/cuda/collectives.hpp"
#include "ferrite/ops/fill.hpp"
#include "ferrite/tensor/context.hpp"
#include "ferrite/tensor/tensor.hpp"

#include "require_gpu.hpp"

using namespace ferrite;

TEST(Nccl, WorldOfOneAllReduceMeanAndBroadcastKeepTheBuffer) {
  FE_REQUIRE_GPU();
#if defined(FERRITE_WITH_CUDA)
  auto id = cuda::NcclComm::unique_id();
  if (!id.ok() && id.error().message.find("cannot load NCCL") != std::string::npos)
    GTEST_SKIP() << id.error().to_string();
  ASSERT_TRUE(id.ok()) << id.error().to_string();
  auto comm = cuda::NcclComm::create(0, 1, 0, *id);
  ASSERT_TRUE(comm.ok()) << comm.error().to_string();
  std::printf("%s\n", (*comm)->version().c_str());
  auto ctx = Context::create(Device::cuda(0));
  ASSERT_TRUE(ctx.ok()) << ctx.error().to_string();

  const std::int64_t n = 109'386 + 3;  // the MLP's parameters, and not a multiple of anything
  std::vector<float> host(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) host[static_cast<std::size_t>(i)] = 0.001f * float(i % 977) - 0.3f;
  auto buf = Tensor::empty({n}, DType::f32, Device::cuda(0));
  ASSERT_TRUE(buf.ok());
  ASSERT_TRUE(ops::copy(*ctx, ConstTensorRef(host.data(), DType::f32, Device::cpu(), {n}), buf->ref()).ok());
  ASSERT_TRUE((*comm)->all_reduce_mean(*ctx->stream(), buf->ref().ptr<float>(), n).ok());
  ASSERT_TRUE((*comm)->broadcast(*ctx->stream(), buf->ref().ptr<float>(), n * 4, 0).ok());
  std::vector<float> back(host.size(), -1.f);
  ASSERT_TRUE(ops::copy(*ctx, buf->cref(), TensorRef(back.data(), DType::f32, Device::cpu(), {n})).ok());
  ASSERT_TRUE(ctx->synchronize().ok());
  EXPECT_EQ(back, host);  // the mean over one rank is the buffer itself, bit for bit
#endif
}
