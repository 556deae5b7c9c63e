#pragma once
// Host-side CUDA runtime queries. No CUDA types here: this header compiles with g++ alone.
//
// With FERRITE_WITH_CUDA defined, the definitions come from the CUDA library of the build
// (impl/runtime.cuh, compiled by nvcc as src/cuda_runtime.cu into the static library ferrite_cuda;
// meson's ferrite_cuda dependency defines FERRITE_WITH_CUDA and links it). Without it, the same API
// exists: no device is reported and every call that needs one returns device_unavailable naming
// the available devices.
#include <cstdint>
#include <string>

#include "ferrite/core/result.hpp"

namespace ferrite::cuda {

// What a benchmark records about a GPU (the JSON's "device" object) and what kernels size by.
struct DeviceInfo {
  int index = 0;
  std::string name;                   // "NVIDIA H100 80GB HBM3"
  int compute_major = 0;              // compute capability, 9.0 for Hopper
  int compute_minor = 0;
  std::int64_t total_memory_bytes = 0;
  int multiprocessors = 0;
  int driver_version = 0;             // cudaDriverGetVersion: 1000 * major + 10 * minor
  int runtime_version = 0;            // cudaRuntimeGetVersion, same encoding
};

namespace detail {
// The reason check_device (backend/devices.hpp) gives when this build has no CUDA backend.
inline constexpr const char* kNoCudaBackend =
    "this build of ferrite has no CUDA backend (configure with -Dcuda=enabled on a machine with nvcc)";

// What every CUDA entry point of a build without CUDA returns. Such a build has the CPU only.
inline Error no_cuda_backend(const char* op, int index) {
  return make_error(ErrorCode::device_unavailable, op,
                    "cuda:" + std::to_string(index) + " is not available: " + kNoCudaBackend +
                        "; available devices: cpu");
}
}  // namespace detail

#if defined(FERRITE_WITH_CUDA)
int device_count() noexcept;                // 0 when the driver or a GPU is missing
std::string device_name(int index);         // "" when `index` is not a device
Result<DeviceInfo> device_info(int index);  // device_unavailable when `index` is not a device
Status synchronize(int index);              // waits for all work on the device (cudaDeviceSynchronize)
#else
inline int device_count() noexcept { return 0; }
inline std::string device_name(int) { return {}; }
inline Result<DeviceInfo> device_info(int index) { return detail::no_cuda_backend("cuda::device_info", index); }
inline Status synchronize(int index) { return detail::no_cuda_backend("cuda::synchronize", index); }
#endif

inline constexpr bool compiled_with_cuda() noexcept {
#if defined(FERRITE_WITH_CUDA)
  return true;
#else
  return false;
#endif
}

}  // namespace ferrite::cuda
