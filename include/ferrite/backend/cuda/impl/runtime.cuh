#pragma once
// Definitions of backend/cuda/runtime.hpp (device queries), backend/cuda/memory.hpp (the caching
// allocator's API, DeviceBuffer, the blocking copies) and backend/cuda/stream.hpp (cuda::Stream).
// nvcc only; included by exactly one translation unit, src/cuda_runtime.cu.
#if !defined(FERRITE_WITH_CUDA)
#error "ferrite/backend/cuda/impl/runtime.cuh needs FERRITE_WITH_CUDA defined (for the whole program)"
#endif

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "ferrite/backend/cuda/impl/allocator.cuh"
#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/impl/handles.cuh"
#include "ferrite/backend/cuda/impl/stream.cuh"
#include "ferrite/backend/cuda/memory.hpp"
#include "ferrite/backend/cuda/runtime.hpp"
#include "ferrite/backend/cuda/stream.hpp"
#include "ferrite/backend/devices.hpp"

namespace ferrite::cuda {

// ================================================================================================
// runtime.hpp

int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {  // no driver, no GPU: not an error here
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

std::string device_name(int index) {
  auto info = device_info(index);
  return info.ok() ? info->name : std::string();
}

Result<DeviceInfo> device_info(int index) {
  FE_TRY(check_device(Device::cuda(index)));
  cudaDeviceProp prop{};
  FE_TRY(detail::check_cuda("cudaGetDeviceProperties", cudaGetDeviceProperties(&prop, index)));
  DeviceInfo info;
  info.index = index;
  info.name = prop.name;
  info.compute_major = prop.major;
  info.compute_minor = prop.minor;
  info.total_memory_bytes = static_cast<std::int64_t>(prop.totalGlobalMem);
  info.multiprocessors = prop.multiProcessorCount;
  FE_TRY(detail::check_cuda("cudaDriverGetVersion", cudaDriverGetVersion(&info.driver_version)));
  FE_TRY(detail::check_cuda("cudaRuntimeGetVersion", cudaRuntimeGetVersion(&info.runtime_version)));
  return info;
}

Status synchronize(int index) {
  FE_TRY(check_device(Device::cuda(index)));
  FE_TRY_ASSIGN(auto guard, detail::DeviceGuard::make(index));
  return detail::check_cuda("cudaDeviceSynchronize", cudaDeviceSynchronize());
}

// ================================================================================================
// memory.hpp

Result<MemoryStats> memory_stats(int device) {
  FE_TRY(check_device(Device::cuda(device)));
  FE_TRY_ASSIGN(detail::CachingAllocator * allocator, detail::allocator_for(device));
  MemoryStats s = allocator->stats();
  FE_TRY_ASSIGN(auto guard, detail::DeviceGuard::make(device));
  std::size_t free_bytes = 0, total_bytes = 0;
  FE_TRY(detail::check_cuda("cudaMemGetInfo", cudaMemGetInfo(&free_bytes, &total_bytes)));
  s.device_free_bytes = static_cast<std::int64_t>(free_bytes);
  s.device_total_bytes = static_cast<std::int64_t>(total_bytes);
  return s;
}

Status reset_peak_memory_stats(int device) {
  FE_TRY(check_device(Device::cuda(device)));
  FE_TRY_ASSIGN(detail::CachingAllocator * allocator, detail::allocator_for(device));
  allocator->reset_peaks();
  return ok_status();
}

Status empty_cache(int device) {
  FE_TRY(check_device(Device::cuda(device)));
  FE_TRY_ASSIGN(detail::CachingAllocator * allocator, detail::allocator_for(device));
  return allocator->empty_cache();
}

Result<DeviceBuffer> DeviceBuffer::allocate(std::int64_t bytes, int device) {
  FE_TRY(check_device(Device::cuda(device)));
  FE_TRY_ASSIGN(detail::CachingAllocator * allocator, detail::allocator_for(device));
  FE_TRY_ASSIGN(void* ptr, allocator->allocate(bytes));
  DeviceBuffer b;
  b.data_ = ptr;
  b.bytes_ = bytes;
  b.device_ = device;
  return b;
}

void DeviceBuffer::reset() noexcept {
  if (data_) {
    auto allocator = detail::allocator_for(device_);
    if (allocator.ok()) (*allocator)->release(data_);
  }
  data_ = nullptr;
  bytes_ = 0;
}

Status DeviceBuffer::copy_from_host(const void* src, std::int64_t bytes) {
  if (bytes < 0 || bytes > bytes_)
    return make_error(ErrorCode::invalid_argument, "cuda::DeviceBuffer::copy_from_host",
                      "cannot copy " + std::to_string(bytes) + " bytes into a buffer of " + std::to_string(bytes_));
  return copy_blocking(data_, true, src, false, bytes, device_);
}

Status DeviceBuffer::copy_to_host(void* dst, std::int64_t bytes) const {
  if (bytes < 0 || bytes > bytes_)
    return make_error(ErrorCode::invalid_argument, "cuda::DeviceBuffer::copy_to_host",
                      "cannot copy " + std::to_string(bytes) + " bytes out of a buffer of " + std::to_string(bytes_));
  return copy_blocking(dst, false, data_, true, bytes, device_);
}

Status copy_blocking(void* dst, bool dst_on_device, const void* src, bool src_on_device, std::int64_t bytes,
                     int device) {
  if (bytes < 0)
    return make_error(ErrorCode::invalid_argument, "cuda::copy_blocking", "negative size " + std::to_string(bytes));
  if (bytes == 0) return ok_status();
  FE_TRY_ASSIGN(auto guard, detail::DeviceGuard::make(device));
  const cudaMemcpyKind kind = dst_on_device ? (src_on_device ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                            : (src_on_device ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  const char* what = dst_on_device ? (src_on_device ? "cudaMemcpy(device to device)" : "cudaMemcpy(host to device)")
                                   : (src_on_device ? "cudaMemcpy(device to host)" : "cudaMemcpy(host to host)");
  FE_TRY(detail::check_cuda(what, cudaMemcpy(dst, src, static_cast<std::size_t>(bytes), kind)));
  // Into device memory cudaMemcpy may return before the bytes land (from pageable memory once they
  // are staged; device to device always): work on a non-blocking stream (all of ferrite's) would not
  // wait for it. Blocking means landed.
  if (dst_on_device)
    FE_TRY(detail::check_cuda("cudaStreamSynchronize(copy)", cudaStreamSynchronize(cudaStreamLegacy)));
  return ok_status();
}

Status memset_blocking(void* dst, int value, std::int64_t bytes, int device) {
  if (bytes < 0)
    return make_error(ErrorCode::invalid_argument, "cuda::memset_blocking", "negative size " + std::to_string(bytes));
  if (bytes == 0) return ok_status();
  FE_TRY_ASSIGN(auto guard, detail::DeviceGuard::make(device));
  FE_TRY(detail::check_cuda("cudaMemset", cudaMemset(dst, value, static_cast<std::size_t>(bytes))));
  return detail::check_cuda("cudaStreamSynchronize(memset)", cudaStreamSynchronize(cudaStreamLegacy));
}

// ================================================================================================
// stream.hpp

Result<std::shared_ptr<Stream>> Stream::create(int device) {
  FE_TRY(check_device(Device::cuda(device)));
  FE_TRY_ASSIGN(auto guard, detail::DeviceGuard::make(device));
  std::shared_ptr<Stream> s(new Stream());  // the deleter (~Stream) is bound here, in the CUDA unit
  s->device_ = device;
  s->impl_ = std::make_unique<Impl>();
  FE_TRY_ASSIGN(s->impl_->stream, detail::make_stream());
  FE_TRY_ASSIGN(s->impl_->blas, detail::Blas::create(device, s->impl_->stream.get(), /*allow_tf32=*/false));
  return s;
}

Stream::~Stream() {
  if (!impl_) return;
  auto guard = detail::DeviceGuard::make(device_);
  if (impl_->stream) {
    cudaStream_t s = impl_->stream.get();
    if (impl_->capturing) {  // an unfinished capture: end it, drop what it recorded
      cudaGraph_t raw = nullptr;
      (void)cudaStreamEndCapture(s, &raw);
      if (raw) (void)cudaGraphDestroy(raw);
    }
    (void)cudaStreamSynchronize(s);
    (void)cudaGetLastError();
  }
  impl_.reset();
}

Status Stream::synchronize() const {
  FE_TRY_ASSIGN(auto guard, detail::enter(*this));
  return detail::check_cuda("cudaStreamSynchronize", cudaStreamSynchronize(impl_->stream.get()));
}

Status Stream::begin_capture() {
  if (impl_->capturing)
    return make_error(ErrorCode::invalid_argument, "cuda::Stream::begin_capture", "the stream is already capturing");
  FE_TRY_ASSIGN(auto guard, detail::enter(*this));
  FE_TRY(detail::check_cuda("cudaStreamBeginCapture",
                            cudaStreamBeginCapture(impl_->stream.get(), cudaStreamCaptureModeThreadLocal)));
  impl_->capturing = true;
  return ok_status();
}

Status Stream::end_capture() {
  if (!impl_->capturing)
    return make_error(ErrorCode::invalid_argument, "cuda::Stream::end_capture", "the stream is not capturing");
  FE_TRY_ASSIGN(auto guard, detail::enter(*this));
  impl_->capturing = false;
  cudaGraph_t raw = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(impl_->stream.get(), &raw);
  detail::Graph graph(raw);
  // The old graph goes only now: destroying an executable graph is not allowed while this thread
  // captures (it invalidated every capture after the first; seen on an H200, 2026-12-04).
  impl_->graph.reset();  // replaced by the new capture, or none if it failed
  FE_TRY(detail::check_cuda("cudaStreamEndCapture", ended));
  cudaGraphExec_t exec = nullptr;
  FE_TRY(detail::check_cuda("cudaGraphInstantiate", cudaGraphInstantiate(&exec, graph.get(), 0)));
  impl_->graph = detail::GraphExec(exec);
  return ok_status();
}

Status Stream::abort_capture() {
  if (!impl_->capturing)
    return make_error(ErrorCode::invalid_argument, "cuda::Stream::abort_capture", "the stream is not capturing");
  FE_TRY_ASSIGN(auto guard, detail::enter(*this));
  impl_->capturing = false;
  cudaGraph_t raw = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(impl_->stream.get(), &raw);
  detail::Graph graph(raw);  // destroyed here
  impl_->graph.reset();      // after the capture ended (see end_capture)
  (void)cudaGetLastError();  // an invalidated capture reports here; the stream is usable again
  return ended == cudaSuccess || ended == cudaErrorStreamCaptureInvalidated
             ? ok_status()
             : detail::check_cuda("cudaStreamEndCapture", ended);
}

Status Stream::replay() {
  if (!impl_->graph)
    return make_error(ErrorCode::invalid_argument, "cuda::Stream::replay", "no graph has been captured on this stream");
  FE_TRY_ASSIGN(auto guard, detail::enter(*this));
  return detail::check_cuda("cudaGraphLaunch", cudaGraphLaunch(impl_->graph.get(), impl_->stream.get()));
}

bool Stream::has_graph() const noexcept { return impl_ && impl_->graph; }

Result<int> Stream::record_event() {
  FE_TRY_ASSIGN(auto guard, detail::enter(*this));
  Impl& t = *impl_;
  if (t.events_used == t.events.size()) {
    FE_TRY_ASSIGN(auto event, detail::make_event());
    t.events.push_back(std::move(event));
  }
  FE_TRY(detail::check_cuda("cudaEventRecord", cudaEventRecord(t.events[t.events_used].get(), t.stream.get())));
  return static_cast<int>(t.events_used++);
}

Result<double> Stream::elapsed_ms(int from, int to) const {
  const Impl& t = *impl_;
  const auto used = static_cast<int>(t.events_used);
  if (from < 0 || to < 0 || from >= used || to >= used)
    return make_error(ErrorCode::invalid_argument, "cuda::Stream::elapsed_ms",
                      "events " + std::to_string(from) + " and " + std::to_string(to) + " of " + std::to_string(used) +
                          " recorded");
  FE_TRY_ASSIGN(auto guard, detail::enter(*this));
  float ms = 0.f;
  FE_TRY(detail::check_cuda("cudaEventElapsedTime",
                            cudaEventElapsedTime(&ms, t.events[static_cast<std::size_t>(from)].get(),
                                                 t.events[static_cast<std::size_t>(to)].get())));
  return double(ms);
}

void Stream::clear_events() noexcept { impl_->events_used = 0; }

}  // namespace ferrite::cuda
