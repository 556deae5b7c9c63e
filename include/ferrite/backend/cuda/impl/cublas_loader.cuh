#pragma once
// cuBLAS, loaded on first use (dlopen) instead of linked (nvcc only; impl/handles.cuh's Blas uses it).
//
// Why: merely linking libcublas (+ libcublasLt) costs every process ~150 MB of resident memory at
// start-up (measured here: max RSS 155 MiB for an empty main linked with -lcublas, 1.4 MiB with
// -lcudart alone), which would inflate the host-memory figure of every CPU run of a CUDA-enabled
// bench/mnist. Loaded lazily, only a program that runs a GEMM on the GPU pays it.
#include <cublas_v2.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "ferrite/backend/cuda/impl/dl_loader.cuh"
#include "ferrite/core/result.hpp"

namespace ferrite::cuda::detail {

// The entry points ferrite uses, by their exported names (cublas_v2.h maps cublasCreate etc. to
// the _v2 symbols; decltype sees the same mapping).
struct CublasApi {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSetWorkspace_v2) set_workspace = nullptr;
  decltype(&cublasSetMathMode) set_math_mode = nullptr;
  decltype(&cublasSetPointerMode_v2) set_pointer_mode = nullptr;
  decltype(&cublasSgemm_v2) sgemm = nullptr;
  decltype(&cublasSgemmStridedBatched) sgemm_strided_batched = nullptr;
  decltype(&cublasGetStatusName) status_name = nullptr;
  decltype(&cublasGetStatusString) status_string = nullptr;
};

#define FE_DETAIL_STR2(x) #x
#define FE_DETAIL_STR(x) FE_DETAIL_STR2(x)

// The process-wide table, loaded once; an error names every file tried and dlerror's reason.
inline Result<const CublasApi*> cublas_api() {
  static std::once_flag once;
  static CublasApi api;
  static std::string failure;
  std::call_once(once, [] {
    // $FERRITE_CUBLAS if set (a full path), the major version this code was compiled against (the
    // ABI) by the loader's search path, the unversioned name, then the usual toolkit locations.
    const std::string so = "libcublas.so." FE_DETAIL_STR(CUBLAS_VER_MAJOR);
    std::vector<std::string> candidates;
    if (const char* path = std::getenv("FERRITE_CUBLAS")) candidates.emplace_back(path);
    candidates.push_back(so);
    candidates.push_back("libcublas.so");
    for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
      if (const char* root = std::getenv(var)) candidates.push_back(std::string(root) + "/lib64/" + so);
    candidates.push_back("/usr/local/cuda/lib64/" + so);
    std::string tried;
    void* handle = open_first(candidates, tried);
    if (!handle) {
      failure = "cannot load cuBLAS (" + tried + "); install the CUDA toolkit's cuBLAS " FE_DETAIL_STR(
                    CUBLAS_VER_MAJOR) ".x, put its directory on LD_LIBRARY_PATH or name the file in FERRITE_CUBLAS";
      return;
    }
    auto bind = [&](auto& fn, const char* symbol) { bind_symbol(handle, fn, symbol, failure); };
    bind(api.create, "cublasCreate_v2");
    bind(api.destroy, "cublasDestroy_v2");
    bind(api.set_stream, "cublasSetStream_v2");
    bind(api.set_workspace, "cublasSetWorkspace_v2");
    bind(api.set_math_mode, "cublasSetMathMode");
    bind(api.set_pointer_mode, "cublasSetPointerMode_v2");
    bind(api.sgemm, "cublasSgemm_v2");
    bind(api.sgemm_strided_batched, "cublasSgemmStridedBatched");
    bind(api.status_name, "cublasGetStatusName");
    bind(api.status_string, "cublasGetStatusString");
    if (!failure.empty()) failure = "the loaded cuBLAS lacks " + failure;  // the handle stays open
  });
  if (!failure.empty()) return make_error(ErrorCode::cuda, "cuBLAS", failure);
  return &api;
}

#undef FE_DETAIL_STR
#undef FE_DETAIL_STR2

// cuBLAS status codes as Errors: "cublasCreate: cuda: CUBLAS_STATUS_NOT_INITIALIZED: ..."
inline Status check_cublas(const CublasApi& api, const char* op, cublasStatus_t status) {
  if (status == CUBLAS_STATUS_SUCCESS) return ok_status();
  return make_error(ErrorCode::cuda, op, std::string(api.status_name(status)) + ": " + api.status_string(status));
}

}  // namespace ferrite::cuda::detail
