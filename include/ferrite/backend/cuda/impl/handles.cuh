#pragma once
// RAII owners of CUDA and cuBLAS handles (stream, event, graph; Blas = a cuBLAS handle with its own
// workspace) and the row-major SGEMMs on device pointers (nvcc only). Used by cuda::Stream
// (impl/stream.cuh, impl/runtime.cuh), kernels::sgemm (impl/gemm.cuh) and
// kernels::sgemm_strided_batched (impl/conv.cuh).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <string>
#include <utility>

#include "ferrite/backend/cuda/impl/allocator.cuh"
#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/impl/cublas_loader.cuh"
#include "ferrite/backend/cuda/memory.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/core/op_params.hpp"

namespace ferrite::cuda::detail {

// Move-only owner of a handle H destroyed by D (a function pointer, so no lambdas in templates).
template <class H, cudaError_t (*Destroy)(H)>
class CudaHandle {
 public:
  CudaHandle() = default;
  explicit CudaHandle(H h) noexcept : h_(h) {}
  CudaHandle(CudaHandle&& o) noexcept : h_(std::exchange(o.h_, H{})) {}
  CudaHandle& operator=(CudaHandle&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, H{});
    }
    return *this;
  }
  ~CudaHandle() { reset(); }
  void reset() noexcept {
    if (h_) (void)Destroy(h_);
    h_ = H{};
  }
  H get() const noexcept { return h_; }
  explicit operator bool() const noexcept { return h_ != H{}; }

 private:
  H h_{};
};

using StreamHandle = CudaHandle<cudaStream_t, cudaStreamDestroy>;  // not cuda::Stream (stream.hpp)
using Event = CudaHandle<cudaEvent_t, cudaEventDestroy>;
using Graph = CudaHandle<cudaGraph_t, cudaGraphDestroy>;
using GraphExec = CudaHandle<cudaGraphExec_t, cudaGraphExecDestroy>;

// Captures what `enqueue()` puts on stream s into a CUDA graph and instantiates it. The capture is
// always ended, so the stream stays usable after a failure; `what` names the graph in errors.
template <class Enqueue>
Result<GraphExec> capture_graph(cudaStream_t s, const char* what, Enqueue&& enqueue) {
  FE_TRY(check_cuda("cudaStreamBeginCapture", cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal)));
  const Status captured = enqueue();
  cudaGraph_t raw = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(s, &raw);
  Graph graph(raw);
  FE_TRY(captured);
  FE_TRY(check_cuda(std::string("cudaStreamEndCapture(") + what + ")", ended));
  cudaGraphExec_t exec = nullptr;
  FE_TRY(check_cuda(std::string("cudaGraphInstantiate(") + what + ")", cudaGraphInstantiate(&exec, graph.get(), 0)));
  return GraphExec(exec);
}

// A non-blocking stream: it does not synchronize with the legacy default stream.
inline Result<StreamHandle> make_stream() {
  cudaStream_t s = nullptr;
  FE_TRY(check_cuda("cudaStreamCreateWithFlags", cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)));
  return StreamHandle(s);
}

inline Result<Event> make_event() {
  cudaEvent_t e = nullptr;
  FE_TRY(check_cuda("cudaEventCreate", cudaEventCreate(&e)));
  return Event(e);
}

// A cuBLAS handle bound to a stream, with its own workspace from the caching allocator: cuBLAS
// then allocates nothing itself, which CUDA graph capture requires, and the workspace is counted in
// the memory statistics (as PyTorch's). Pointer mode host (alpha, beta read at call time; a captured
// graph keeps the values). Math mode: CUBLAS_DEFAULT_MATH computes SGEMM in full FP32;
// allow_tf32 switches to CUBLAS_TF32_TENSOR_OP_MATH (inputs rounded to 10-bit mantissas).
class Blas {
 public:
  Blas() = default;
  Blas(Blas&& o) noexcept
      : api_(std::exchange(o.api_, nullptr)), handle_(std::exchange(o.handle_, nullptr)),
        workspace_(std::move(o.workspace_)) {}
  Blas& operator=(Blas&& o) noexcept {
    if (this != &o) {
      reset();
      api_ = std::exchange(o.api_, nullptr);
      handle_ = std::exchange(o.handle_, nullptr);
      workspace_ = std::move(o.workspace_);
    }
    return *this;
  }
  ~Blas() { reset(); }

  // The calling thread's current device must be `device`.
  static Result<Blas> create(int device, cudaStream_t stream, bool allow_tf32) {
    Blas b;
    FE_TRY_ASSIGN(b.api_, cublas_api());
    const CublasApi& api = *b.api_;
    FE_TRY(check_cublas(api, "cublasCreate", api.create(&b.handle_)));
    FE_TRY(check_cublas(api, "cublasSetStream", api.set_stream(b.handle_, stream)));
    int major = 0;
    FE_TRY(check_cuda("cudaDeviceGetAttribute(compute capability)",
                      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device)));
    // cuBLAS's guidance for a user workspace: 32 MiB on Hopper and newer, 4 MiB before.
    const std::int64_t bytes = major >= 9 ? (std::int64_t{32} << 20) : (std::int64_t{4} << 20);
    FE_TRY_ASSIGN(b.workspace_, DeviceBuffer::allocate(bytes, device));
    FE_TRY(check_cublas(api, "cublasSetWorkspace",
                        api.set_workspace(b.handle_, b.workspace_.data(), static_cast<std::size_t>(bytes))));
    FE_TRY(b.set_tf32(allow_tf32));
    FE_TRY(check_cublas(api, "cublasSetPointerMode", api.set_pointer_mode(b.handle_, CUBLAS_POINTER_MODE_HOST)));
    return b;
  }

  Status set_tf32(bool allow) {
    return check_cublas(*api_, "cublasSetMathMode",
                        api_->set_math_mode(handle_, allow ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  }

  const CublasApi& api() const noexcept { return *api_; }
  cublasHandle_t get() const noexcept { return handle_; }

  void reset() noexcept {
    if (handle_) (void)api_->destroy(handle_);
    handle_ = nullptr;
    workspace_.reset();
  }

 private:
  const CublasApi* api_ = nullptr;
  cublasHandle_t handle_ = nullptr;
  DeviceBuffer workspace_;
};

// Row-major C[M, N] = alpha * op(A) op(B) + beta * C on device pointers, through column-major
// cuBLAS: a row-major matrix with leading dimension ld is its transpose in column-major with the
// same ld, so C^T[N, M] = op(B)^T op(A)^T is one cublasSgemm with the operands swapped and the same
// transpose flags. Shapes and leading dimensions were checked by the caller (check_gemm_shapes).
inline Status sgemm(const Blas& blas, Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k,
                    float alpha, const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta,
                    float* c, std::int64_t ldc) {
  for (std::int64_t v : {m, n, k, lda, ldb, ldc})
    if (v > INT_MAX)
      return make_error(ErrorCode::unsupported, "cublasSgemm",
                        "dimension " + std::to_string(v) + " exceeds cuBLAS's 32-bit int");
  if (m == 0 || n == 0) return ok_status();
  const auto op = [](Trans t) { return t == Trans::yes ? CUBLAS_OP_T : CUBLAS_OP_N; };
  const auto ld = [](std::int64_t v) { return static_cast<int>(v < 1 ? 1 : v); };
  const cublasStatus_t status = blas.api().sgemm(blas.get(), op(tb), op(ta), static_cast<int>(n), static_cast<int>(m),
                                            static_cast<int>(k), &alpha, b, ld(ldb), a, ld(lda), &beta, c, ld(ldc));
  if (status == CUBLAS_STATUS_SUCCESS) return ok_status();
  const std::string what = "cublasSgemm(" + std::string(trans_name(ta)) + trans_name(tb) + ", M=" + std::to_string(m) +
                           " N=" + std::to_string(n) + " K=" + std::to_string(k) + ")";
  return check_cublas(blas.api(), what.c_str(), status);
}

// `batch` row-major GEMMs C_i = alpha * op(A_i) op(B_i) + beta * C_i, A_i = a + i * stride_a etc.,
// through cublasSgemmStridedBatched with the same operand swap as sgemm.
inline Status sgemm_strided_batched(const Blas& blas, Trans ta, Trans tb, std::int64_t m, std::int64_t n,
                                    std::int64_t k, float alpha, const float* a, std::int64_t lda,
                                    std::int64_t stride_a, const float* b, std::int64_t ldb, std::int64_t stride_b,
                                    float beta, float* c, std::int64_t ldc, std::int64_t stride_c,
                                    std::int64_t batch) {
  for (std::int64_t v : {m, n, k, lda, ldb, ldc, batch})
    if (v > INT_MAX)
      return make_error(ErrorCode::unsupported, "cublasSgemmStridedBatched",
                        "dimension " + std::to_string(v) + " exceeds cuBLAS's 32-bit int");
  if (m == 0 || n == 0 || batch == 0) return ok_status();
  const auto op = [](Trans t) { return t == Trans::yes ? CUBLAS_OP_T : CUBLAS_OP_N; };
  const auto ld = [](std::int64_t v) { return static_cast<int>(v < 1 ? 1 : v); };
  const cublasStatus_t status = blas.api().sgemm_strided_batched(
      blas.get(), op(tb), op(ta), static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha, b, ld(ldb),
      static_cast<long long>(stride_b), a, ld(lda), static_cast<long long>(stride_a), &beta, c, ld(ldc),
      static_cast<long long>(stride_c), static_cast<int>(batch));
  if (status == CUBLAS_STATUS_SUCCESS) return ok_status();
  const std::string what = "cublasSgemmStridedBatched(" + std::string(trans_name(ta)) + trans_name(tb) +
                           ", M=" + std::to_string(m) + " N=" + std::to_string(n) + " K=" + std::to_string(k) +
                           " batch=" + std::to_string(batch) + ")";
  return check_cublas(blas.api(), what.c_str(), status);
}

}  // namespace ferrite::cuda::detail
