#pragma once
// CUDA status codes as ferrite Errors, and DeviceGuard (nvcc only; every CUDA unit includes it);
// cuBLAS's status codes are in cublas_loader.cuh.
// Every failure names the operation that failed and the library's own name and text for the code:
//   "cudaMemcpyAsync(order): cuda: cudaErrorIllegalAddress: an illegal memory access was encountered"
#include <cuda_runtime.h>

#include <string>

#include "ferrite/core/result.hpp"

namespace ferrite::cuda::detail {

// The operation's name is a const char* so that the success path (every launch of a training step)
// builds no string; callers with a composed name pass .c_str() only where it is cheap.
inline Error cuda_error(const char* op, cudaError_t status) {
  return make_error(ErrorCode::cuda, op,
                    std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status));
}

inline Status check_cuda(const char* op, cudaError_t status) {
  if (status == cudaSuccess) return ok_status();
  // Clears the thread's "last error" for non-sticky errors, so that the next launch check does not
  // report this failure a second time. Sticky errors (a kernel fault) stay: the context is lost.
  (void)cudaGetLastError();
  return cuda_error(op, status);
}
inline Status check_cuda(const std::string& op, cudaError_t status) { return check_cuda(op.c_str(), status); }

// After a kernel launch: a bad configuration (grid, shared memory) surfaces here, a fault inside
// the kernel only at the next synchronizing call.
inline Status check_launch(const char* kernel) {
  const cudaError_t status = cudaGetLastError();
  if (status == cudaSuccess) return ok_status();
  return cuda_error((std::string(kernel) + " launch").c_str(), status);
}

// Makes `device` current for the calling thread for the guard's lifetime (the runtime API acts on
// the current device), and restores the previous one.
class DeviceGuard {
 public:
  static Result<DeviceGuard> make(int device) {
    int previous = 0;
    FE_TRY(check_cuda("cudaGetDevice", cudaGetDevice(&previous)));
    if (previous != device) FE_TRY(check_cuda("cudaSetDevice(" + std::to_string(device) + ")", cudaSetDevice(device)));
    return DeviceGuard(previous, previous != device);
  }
  DeviceGuard(DeviceGuard&& o) noexcept : previous_(o.previous_), restore_(o.restore_) { o.restore_ = false; }
  DeviceGuard& operator=(DeviceGuard&&) = delete;
  ~DeviceGuard() {
    if (restore_) (void)cudaSetDevice(previous_);
  }

 private:
  DeviceGuard(int previous, bool restore) : previous_(previous), restore_(restore) {}
  int previous_;
  bool restore_;
};

}  // namespace ferrite::cuda::detail
