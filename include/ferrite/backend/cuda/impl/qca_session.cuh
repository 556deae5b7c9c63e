#pragma once
// Host-data sessions for the QCA per-op entry points (cuda::ops::conv2d, group_norm, ... declared in
// backend/cuda/qca.hpp): a process-wide stream + cuBLAS handle per device, and OpSession, which
// uploads a call's inputs, owns its device buffers and downloads and synchronizes (nvcc only; part
// of the QCA unit, src/cuda_qca.cu). Moved here from the former implementation.cuh with the QCA code;
// it goes when QCA moves onto the op layer.
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/impl/handles.cuh"
#include "ferrite/backend/cuda/memory.hpp"
#include "ferrite/backend/devices.hpp"
#include "ferrite/core/result.hpp"

namespace ferrite::cuda::detail {

// Flat parameter layouts start every tensor at a multiple of 64 floats (256 bytes).
inline constexpr std::int64_t kFlatAlign = 64;
inline std::int64_t align_floats(std::int64_t n) { return (n + kFlatAlign - 1) / kFlatAlign * kFlatAlign; }

// The stream and cuBLAS handle that the per-op entry points of one device share (created on first
// use, kept for the process; calls are serialized by the mutex).
struct OpContext {
  std::mutex mutex;
  StreamHandle stream;
  Blas blas;
};

inline Result<OpContext*> op_context(int device) {
  FE_TRY(check_device(Device::cuda(device)));
  static std::mutex mutex;
  static auto* contexts = new std::map<int, std::unique_ptr<OpContext>>();
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = (*contexts)[device];
  if (!slot) {
    auto context = std::make_unique<OpContext>();
    FE_TRY_ASSIGN(auto guard, DeviceGuard::make(device));
    FE_TRY_ASSIGN(context->stream, make_stream());
    FE_TRY_ASSIGN(context->blas, Blas::create(device, context->stream.get(), /*allow_tf32=*/false));
    slot = std::move(context);
  }
  return slot.get();
}

// One synchronous op call: holds the device's context, allocates the call's device buffers (owned
// by the session, released only after its stream is drained, even on an early error return),
// uploads and downloads on the context's stream; finish() waits and reports kernel errors.
class OpSession {
 public:
  static Result<OpSession> open(int device) {
    FE_TRY_ASSIGN(OpContext * context, op_context(device));
    std::unique_lock<std::mutex> lock(context->mutex);
    FE_TRY_ASSIGN(auto guard, DeviceGuard::make(device));
    return OpSession(context, device, std::move(lock), std::move(guard));
  }

  cudaStream_t stream() const noexcept { return context_->stream.get(); }
  Blas& blas() const noexcept { return context_->blas; }

  Result<DeviceBuffer*> alloc(std::int64_t bytes) {
    FE_TRY_ASSIGN(DeviceBuffer b, DeviceBuffer::allocate(bytes, device_));
    buffers_.push_back(std::make_unique<DeviceBuffer>(std::move(b)));
    return buffers_.back().get();
  }

  template <class T>
  Result<DeviceBuffer*> upload(const T* data, std::int64_t count) {
    FE_TRY_ASSIGN(DeviceBuffer * b, alloc(count * std::int64_t{sizeof(T)}));
    if (count > 0 && data)
      FE_TRY(check_cuda("cudaMemcpyAsync(host to device)",
                        cudaMemcpyAsync(b->data(), data, static_cast<std::size_t>(count) * sizeof(T),
                                        cudaMemcpyHostToDevice, stream())));
    return b;
  }
  template <class T>
  Status download(const DeviceBuffer* b, T* data, std::int64_t count) {
    if (count <= 0 || !data) return ok_status();
    return check_cuda("cudaMemcpyAsync(device to host)",
                      cudaMemcpyAsync(data, b->data(), static_cast<std::size_t>(count) * sizeof(T),
                                      cudaMemcpyDeviceToHost, stream()));
  }
  Status finish() { return check_cuda("cudaStreamSynchronize", cudaStreamSynchronize(stream())); }

  // Runs `run` (cuBLAS calls on this session) with TF32 allowed if `allow`, and restores full FP32
  // afterwards, also when `run` fails: the handle is shared by every op call of the device.
  template <class F>
  Status with_tf32(bool allow, F&& run) {
    if (!allow) return run();
    FE_TRY(blas().set_tf32(true));
    const Status result = run();
    FE_TRY(blas().set_tf32(false));
    return result;
  }

  ~OpSession() {
    if (!context_) return;
    (void)cudaStreamSynchronize(context_->stream.get());
    buffers_.clear();  // back to the cache only now
  }
  OpSession(OpSession&& o) noexcept
      : context_(std::exchange(o.context_, nullptr)), device_(o.device_), lock_(std::move(o.lock_)),
        guard_(std::move(o.guard_)), buffers_(std::move(o.buffers_)) {}
  OpSession& operator=(OpSession&&) = delete;

 private:
  OpSession(OpContext* context, int device, std::unique_lock<std::mutex> lock, DeviceGuard guard)
      : context_(context), device_(device), lock_(std::move(lock)), guard_(std::move(guard)) {}
  OpContext* context_;
  int device_;
  std::unique_lock<std::mutex> lock_;
  DeviceGuard guard_;
  std::vector<std::unique_ptr<DeviceBuffer>> buffers_;
};

}  // namespace ferrite::cuda::detail
