#pragma once
// NCCL for device buffers (train/distributed.hpp's GPU path): a communicator per process and GPU,
// its collectives enqueued on a cuda::Stream, so a data-parallel step on the GPU needs no host copy
// and no synchronization. No CUDA or NCCL types here: Impl is in backend/cuda/impl/nccl.cuh
// (src/cuda_nccl.cu, library ferrite_cuda). NCCL itself is loaded on first use (dlopen of
// libnccl.so.2, like cuBLAS: linking it would cost every process its start-up), so a build links and
// runs without it, and the error names the files tried.
//
// Only train/distributed.hpp uses it, and only where FERRITE_WITH_CUDA is defined (through
// FE_DETAIL_CUDA: a build without the backend never names these functions).
#include <cstdint>
#include <memory>
#include <string>

#include "ferrite/backend/cuda/stream.hpp"
#include "ferrite/core/result.hpp"

namespace ferrite::cuda {

// ncclUniqueId's 128 bytes: rank 0 makes it, the others receive it (over MPI) before NcclComm::create.
struct NcclUniqueId {
  unsigned char bytes[128] = {};
};

class NcclComm {
 public:
  static Result<NcclUniqueId> unique_id();
  // Joins the communicator of `world` ranks named by `id` as `rank`, on GPU `device` (collective: every
  // rank calls it). Fails by name where libnccl.so.2 cannot be loaded.
  static Result<std::unique_ptr<NcclComm>> create(int device, int world, int rank, const NcclUniqueId& id);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  // data[0, n) := the mean over ranks (ncclAvg), in place, enqueued on `stream` (its device's).
  Status all_reduce_mean(const Stream& stream, float* data, std::int64_t n);
  // data := root's bytes, enqueued on `stream`.
  Status broadcast(const Stream& stream, void* data, std::int64_t bytes, int root);
  // "NCCL 2.27.7" (the loaded library's version).
  std::string version() const;

  struct Impl;  // ncclComm_t and the loaded entry points (impl/nccl.cuh)

 private:
  NcclComm() = default;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferrite::cuda
