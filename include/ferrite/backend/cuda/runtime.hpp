#pragma once
// Host-side CUDA runtime queries. No CUDA types here: this header compiles with g++ alone.
//
// With FERRITE_WITH_CUDA defined, the definitions come from a CUDA translation unit linked into the
// program (the CUDA backend; not part of this build yet). Without it, the same API exists and
// honestly reports that no CUDA device is available.
#include <string>

namespace ferrite::cuda {

#if defined(FERRITE_WITH_CUDA)
int device_count() noexcept;          // 0 when the driver or a GPU is missing
std::string device_name(int index);   // "NVIDIA H100 80GB HBM3"
#else
inline int device_count() noexcept { return 0; }
inline std::string device_name(int) { return {}; }
#endif

inline constexpr bool compiled_with_cuda() noexcept {
#if defined(FERRITE_WITH_CUDA)
  return true;
#else
  return false;
#endif
}

}  // namespace ferrite::cuda
