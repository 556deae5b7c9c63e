#pragma once
// cuda::NcclComm (backend/cuda/collectives.hpp): NCCL loaded on first use (dlopen) and its
// collectives on a ferrite stream (nvcc only). Defines NcclComm's members (not inline): included by
// src/cuda_nccl.cu alone.
#include <nccl.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "ferrite/backend/cuda/collectives.hpp"
#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/impl/dl_loader.cuh"
#include "ferrite/backend/cuda/impl/stream.cuh"
#include "ferrite/core/format.hpp"

namespace ferrite::cuda {

namespace detail {

struct NcclApi {
  decltype(&ncclGetVersion) get_version = nullptr;
  decltype(&ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&ncclCommInitRank) comm_init_rank = nullptr;
  decltype(&ncclCommDestroy) comm_destroy = nullptr;
  decltype(&ncclAllReduce) all_reduce = nullptr;
  decltype(&ncclBroadcast) broadcast = nullptr;
  decltype(&ncclGetErrorString) error_string = nullptr;
};

// The process-wide table, loaded once: $FERRITE_NCCL (a full path), libnccl.so.<major this code was
// compiled against> on the loader's path, then the toolkit's own folders (CUDA 13 puts it in lib/).
inline Result<const NcclApi*> nccl_api() {
  static std::once_flag once;
  static NcclApi api;
  static std::string failure;
  std::call_once(once, [] {
    const std::string so = "libnccl.so." + std::to_string(NCCL_MAJOR);
    std::vector<std::string> candidates;
    if (const char* path = std::getenv("FERRITE_NCCL")) candidates.emplace_back(path);
    candidates.push_back(so);
    for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
      if (const char* root = std::getenv(var)) {
        candidates.push_back(std::string(root) + "/lib/" + so);
        candidates.push_back(std::string(root) + "/lib64/" + so);
      }
    candidates.push_back("/usr/local/cuda/lib/" + so);
    candidates.push_back("/usr/local/cuda/lib64/" + so);
    std::string tried;
    void* handle = open_first(candidates, tried);
    if (!handle) {
      failure = "cannot load NCCL (" + tried + "); install NCCL " + std::to_string(NCCL_MAJOR) +
                ".x (the CUDA toolkit's, or the nvidia-nccl wheel's), put its folder on LD_LIBRARY_PATH or name the "
                "file in FERRITE_NCCL";
      return;
    }
    auto bind = [&](auto& fn, const char* symbol) { bind_symbol(handle, fn, symbol, failure); };
    bind(api.get_version, "ncclGetVersion");
    bind(api.get_unique_id, "ncclGetUniqueId");
    bind(api.comm_init_rank, "ncclCommInitRank");
    bind(api.comm_destroy, "ncclCommDestroy");
    bind(api.all_reduce, "ncclAllReduce");
    bind(api.broadcast, "ncclBroadcast");
    bind(api.error_string, "ncclGetErrorString");
    if (!failure.empty()) failure = "the loaded NCCL lacks " + failure;
  });
  if (!failure.empty()) return make_error(ErrorCode::cuda, "NCCL", failure);
  return &api;
}

inline Status check_nccl(const NcclApi& api, const char* op, ncclResult_t status) {
  if (status == ncclSuccess) return ok_status();
  return make_error(ErrorCode::cuda, op, api.error_string(status));
}

}  // namespace detail

struct NcclComm::Impl {
  const detail::NcclApi* api = nullptr;
  ncclComm_t comm = nullptr;
  int device = 0;
};

Result<NcclUniqueId> NcclComm::unique_id() {
  FE_TRY_ASSIGN(const detail::NcclApi* api, detail::nccl_api());
  static_assert(sizeof(ncclUniqueId) == sizeof(NcclUniqueId), "NCCL's unique id is 128 bytes");
  ncclUniqueId id;
  FE_TRY(detail::check_nccl(*api, "ncclGetUniqueId", api->get_unique_id(&id)));
  NcclUniqueId out;
  std::memcpy(out.bytes, &id, sizeof(id));
  return out;
}

Result<std::unique_ptr<NcclComm>> NcclComm::create(int device, int world, int rank, const NcclUniqueId& id) {
  FE_TRY_ASSIGN(const detail::NcclApi* api, detail::nccl_api());
  FE_TRY_ASSIGN(auto guard, detail::DeviceGuard::make(device));
  (void)guard;
  ncclUniqueId raw;
  std::memcpy(&raw, id.bytes, sizeof(raw));
  std::unique_ptr<NcclComm> c(new NcclComm());
  c->impl_ = std::make_unique<Impl>();
  c->impl_->api = api;
  c->impl_->device = device;
  FE_TRY(detail::check_nccl(*api, "ncclCommInitRank", api->comm_init_rank(&c->impl_->comm, world, raw, rank)));
  return c;
}

NcclComm::~NcclComm() {
  if (impl_ && impl_->comm) (void)impl_->api->comm_destroy(impl_->comm);
}

Status NcclComm::all_reduce_mean(const Stream& stream, float* data, std::int64_t n) {
  FE_TRY_ASSIGN(auto guard, detail::enter(stream));
  (void)guard;
  return detail::check_nccl(*impl_->api, "ncclAllReduce",
                            impl_->api->all_reduce(data, data, static_cast<std::size_t>(n), ncclFloat, ncclAvg,
                                                   impl_->comm, detail::raw_stream(stream)));
}

Status NcclComm::broadcast(const Stream& stream, void* data, std::int64_t bytes, int root) {
  FE_TRY_ASSIGN(auto guard, detail::enter(stream));
  (void)guard;
  return detail::check_nccl(*impl_->api, "ncclBroadcast",
                            impl_->api->broadcast(data, data, static_cast<std::size_t>(bytes), ncclUint8, root,
                                                  impl_->comm, detail::raw_stream(stream)));
}

std::string NcclComm::version() const {
  int v = 0;
  if (impl_->api->get_version(&v) != ncclSuccess) return "NCCL (version unknown)";
  // NCCL_VERSION_CODE: major * 10000 + minor * 100 + patch since 2.9.
  return fe_format("NCCL {}.{}.{}", v / 10000, (v / 100) % 100, v % 100);
}

}  // namespace ferrite::cuda
