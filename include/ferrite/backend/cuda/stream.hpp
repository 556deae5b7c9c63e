#pragma once
// cuda::Stream: the per-context execution resources of one GPU — a CUDA stream, a cuBLAS handle
// bound to it with a fixed workspace (so that cuBLAS allocates nothing during graph capture), and
// CUDA events for timing. No CUDA types here: Impl is defined in backend/cuda/impl/stream.cuh (which
// every kernel family includes to launch on the stream), the member functions in
// backend/cuda/impl/runtime.cuh (src/cuda_runtime.cu, library ferrite_cuda).
//
// Only the op layer (tensor/context.hpp) creates one, and only in a build with FERRITE_WITH_CUDA;
// a build without the backend never names these functions (see FE_DETAIL_CUDA in core/macros.hpp).
#include <cstdint>
#include <memory>

#include "ferrite/core/result.hpp"

namespace ferrite::cuda {

class Stream {
 public:
  // A new stream on GPU `device` (cudaStreamNonBlocking) with its cuBLAS handle.
  static Result<std::shared_ptr<Stream>> create(int device);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  int device() const noexcept { return device_; }
  Status synchronize() const;  // waits for everything enqueued so far

  // Graph capture of everything enqueued between begin and end (capture mode thread-local: the
  // capturing thread must not call unsafe APIs such as cudaMalloc, so the device buffers must exist
  // before; and cuBLAS should have run each GEMM shape once eagerly). replay() launches it again.
  // One graph per stream; end_capture replaces the old one, and leaves none when the capture failed
  // (the stream is usable again either way). Destroying a capturing Stream ends the capture.
  Status begin_capture();
  Status end_capture();
  Status abort_capture();  // ends a capture and discards it (after a failed step): no graph is kept
  Status replay();
  bool has_graph() const noexcept;

  // Timing: record_event() enqueues an event and returns its index; elapsed_ms(a, b) after a sync;
  // clear_events() starts the indices at 0 again (the events are reused). Not inside a capture.
  Result<int> record_event();
  Result<double> elapsed_ms(int from, int to) const;
  void clear_events() noexcept;

  struct Impl;  // cudaStream_t, cublasHandle_t, workspace, graph, events (impl/stream.cuh)
  Impl* impl() const noexcept { return impl_.get(); }

 private:
  Stream() = default;
  int device_ = 0;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferrite::cuda
