#pragma once
// The CUDA backend's implementation header: defines every function that the public headers
// backend/cuda/{runtime,memory,ops,mlp_trainer}.hpp declare when FERRITE_WITH_CUDA is defined.
// Include it in exactly ONE .cu translation unit of the program (stb-style), compiled by nvcc with
// -std=c++20 -DFERRITE_WITH_CUDA, and link cudart (cuBLAS is opened at run time, see
// cublas_loader.cuh; add -ldl on glibc < 2.34). This build does so in src/ferrite_cuda.cu, the
// static library behind meson's ferrite_cuda_dep. A project using ferrite by include path writes
//   // ferrite_cuda.cu:  nvcc -std=c++20 -DFERRITE_WITH_CUDA -arch=sm_90 -Xcompiler=-march=native -c
//   #include "ferrite/backend/cuda/impl/implementation.cuh"
// and compiles its other files with -DFERRITE_WITH_CUDA (and the same -march: the .cu also holds
// the host half of inline CPU code, which must be one definition).
#if !defined(FERRITE_WITH_CUDA)
#error "ferrite/backend/cuda/impl/implementation.cuh needs FERRITE_WITH_CUDA defined (for the whole program)"
#endif

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ferrite/backend/cuda/impl/allocator.cuh"
#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/impl/cublas_loader.cuh"
#include "ferrite/backend/cuda/impl/handles.cuh"
#include "ferrite/backend/cuda/impl/kernels.cuh"
#include "ferrite/backend/cuda/impl/philox.cuh"
#include "ferrite/backend/cuda/memory.hpp"
#include "ferrite/backend/cuda/mlp_trainer.hpp"
#include "ferrite/backend/cuda/ops.hpp"
#include "ferrite/backend/cuda/runtime.hpp"
#include "ferrite/backend/devices.hpp"
#include "ferrite/bench/timer.hpp"
#include "ferrite/core/rng.hpp"
#include "ferrite/ops/gemm.hpp"

// The device Philox is the CPU's, checked here at compile time (the key-answer vectors of
// tests/core/test_rng.cpp and a few arbitrary points).
static_assert(ferrite::cuda::detail::philox_block(0, 0, 0).w[0] == 0x6627e8d5u);
static_assert(ferrite::cuda::detail::philox_block(0, 0, 0).w[3] == 0x9b00dbd8u);
static_assert(ferrite::cuda::detail::philox_block(~0ull, ~0ull, ~0ull).w[0] == 0x408f276du);
static_assert(ferrite::cuda::detail::philox_block(~0ull, ~0ull, ~0ull).w[2] == 0xa20bc7c6u);
static_assert(ferrite::cuda::detail::philox_word(42, 7, 13) == ferrite::Philox(42, 7).word(13));
static_assert(ferrite::cuda::detail::philox_word(0x123456789abcdefull, 2001, 1u << 20) ==
              ferrite::Philox(0x123456789abcdefull, 2001).word(1u << 20));
static_assert(ferrite::cuda::detail::philox_unit(ferrite::Philox(5, 1).word(3)) ==
              ferrite::Philox::to_unit_float(ferrite::Philox(5, 1).word(3)));

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
  if (bytes == 0) return ok_status();
  FE_TRY_ASSIGN(auto guard, detail::DeviceGuard::make(device_));
  FE_TRY(detail::check_cuda("cudaMemcpy(host to device)",
                            cudaMemcpy(data_, src, static_cast<std::size_t>(bytes), cudaMemcpyHostToDevice)));
  // From pageable memory cudaMemcpy may return once the bytes are staged, before the DMA lands; work
  // on a non-blocking stream (all of ferrite's) would not wait for it. Blocking means landed.
  return detail::check_cuda("cudaStreamSynchronize(host to device)", cudaStreamSynchronize(cudaStreamLegacy));
}

Status DeviceBuffer::copy_to_host(void* dst, std::int64_t bytes) const {
  if (bytes < 0 || bytes > bytes_)
    return make_error(ErrorCode::invalid_argument, "cuda::DeviceBuffer::copy_to_host",
                      "cannot copy " + std::to_string(bytes) + " bytes out of a buffer of " + std::to_string(bytes_));
  if (bytes == 0) return ok_status();
  FE_TRY_ASSIGN(auto guard, detail::DeviceGuard::make(device_));
  return detail::check_cuda("cudaMemcpy(device to host)",
                            cudaMemcpy(dst, data_, static_cast<std::size_t>(bytes), cudaMemcpyDeviceToHost));
}

// ================================================================================================
// Shared by ops.hpp and the trainer

namespace detail {

using kernels::OptimStep;

// One Adam / AdamW step's constants from optim::detail::adam_coefficients: the CPU's numbers.
inline OptimStep adam_step_constants(const optim::AdamOptions& o, bool decoupled, std::int64_t step) {
  const auto c = optim::detail::adam_coefficients(o, o.lr, decoupled, step);
  OptimStep s;
  s.weight_decay = c.weight_decay;
  s.decay = c.decay;
  s.lerp_weight = c.lerp_weight;
  s.lerp_weight_minus_one = c.lerp_weight_minus_one;
  s.beta2 = c.beta2;
  s.one_minus_beta2 = c.one_minus_beta2;
  s.bias_correction2_sqrt = c.bias_correction2_sqrt;
  s.eps = c.eps;
  s.neg_step_size = c.neg_step_size;
  s.flags = (c.maximize ? kernels::kMaximize : 0u) | (c.l2 ? kernels::kL2 : 0u) |
            (c.decoupled ? kernels::kDecoupled : 0u) | (c.amsgrad ? kernels::kAmsgrad : 0u) |
            (c.lerp_weight_small ? kernels::kLerpSmall : 0u);
  return s;
}

inline OptimStep sgd_step_constants(const optim::SGDOptions& o, bool first_step) {
  const auto c = optim::detail::sgd_coefficients(o, o.lr, first_step);
  OptimStep s;
  s.weight_decay = c.weight_decay;
  s.momentum = c.momentum;
  s.one_minus_dampening = c.one_minus_dampening;
  s.neg_lr = c.neg_lr;
  s.flags = (c.maximize ? kernels::kMaximize : 0u) | (c.has_weight_decay ? kernels::kWeightDecay : 0u) |
            (c.has_momentum ? kernels::kMomentum : 0u) | (c.nesterov ? kernels::kNesterov : 0u) |
            (c.first_step ? kernels::kFirstStep : 0u);
  return s;
}

// Flat parameter layouts start every tensor at a multiple of 64 floats (256 bytes): aligned float4
// access for the optimizer kernel, and padding that the updates keep at 0.
inline constexpr std::int64_t kFlatAlign = 64;
inline std::int64_t align_floats(std::int64_t n) { return (n + kFlatAlign - 1) / kFlatAlign * kFlatAlign; }

// The stream and cuBLAS handle that the ops.hpp entry points of one device share (created on first
// use, kept for the process; calls are serialized by the mutex).
struct OpContext {
  std::mutex mutex;
  Stream stream;
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

  // A host matrix to a device buffer of rows * ld floats with the same leading dimension.
  Result<DeviceBuffer*> upload(MatView<const float> m) {
    FE_TRY_ASSIGN(DeviceBuffer * b, alloc(m.rows * m.ld * std::int64_t{sizeof(float)}));
    if (m.rows > 0 && m.cols > 0)
      FE_TRY(check_cuda("cudaMemcpy2DAsync(host to device)",
                        cudaMemcpy2DAsync(b->data(), static_cast<std::size_t>(m.ld) * sizeof(float), m.data,
                                          static_cast<std::size_t>(m.ld) * sizeof(float),
                                          static_cast<std::size_t>(m.cols) * sizeof(float),
                                          static_cast<std::size_t>(m.rows), cudaMemcpyHostToDevice, stream())));
    return b;
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
  Status download(const DeviceBuffer* b, MatView<float> m) {
    if (m.rows <= 0 || m.cols <= 0) return ok_status();
    return check_cuda("cudaMemcpy2DAsync(device to host)",
                      cudaMemcpy2DAsync(m.data, static_cast<std::size_t>(m.ld) * sizeof(float), b->data(),
                                        static_cast<std::size_t>(m.ld) * sizeof(float),
                                        static_cast<std::size_t>(m.cols) * sizeof(float),
                                        static_cast<std::size_t>(m.rows), cudaMemcpyDeviceToHost, stream()));
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

inline Status check_mat(const char* op, const char* what, MatView<const float> m) {
  if (m.rows < 0 || m.cols < 0 || m.ld < m.cols || (m.rows > 0 && m.cols > 0 && !m.data))
    return make_error(ErrorCode::invalid_argument, op,
                      std::string(what) + ": bad view (negative size, ld < cols or null data)",
                      m.shape().to_string() + " ld " + std::to_string(m.ld));
  return ok_status();
}

}  // namespace detail

// ================================================================================================
// ops.hpp

namespace ops {

Status gemm(Trans ta, Trans tb, float alpha, MatView<const float> a, MatView<const float> b, float beta,
            MatView<float> c, const GemmOptions& options) {
  FE_TRY(check_gemm_shapes<float>("cuda::gemm", ta, tb, a, b, c));
  FE_TRY_ASSIGN(auto s, detail::OpSession::open(options.device));
  FE_TRY_ASSIGN(auto da, s.upload(a));
  FE_TRY_ASSIGN(auto db, s.upload(b));
  FE_TRY_ASSIGN(auto dc, s.upload(MatView<const float>(c)));
  const std::int64_t k = ta == Trans::no ? a.cols : a.rows;
  FE_TRY(s.with_tf32(options.allow_tf32, [&] {
    return detail::sgemm(s.blas(), ta, tb, c.rows, c.cols, k, alpha, da->as<const float>(), a.ld, db->as<const float>(),
                         b.ld, beta, dc->as<float>(), c.ld);
  }));
  FE_TRY(s.download(dc, c));
  return s.finish();
}

Status bias_activation(MatView<float> y, const float* bias, Activation act, int device) {
  FE_TRY(detail::check_mat("cuda::bias_activation", "y", y));
  FE_TRY_ASSIGN(auto s, detail::OpSession::open(device));
  FE_TRY_ASSIGN(auto dy, s.upload(MatView<const float>(y)));
  FE_TRY_ASSIGN(auto db, s.upload(bias, bias ? y.cols : 0));
  FE_TRY(kernels::launch_bias_activation(s.stream(), dy->as<float>(), y.rows, y.cols, y.ld,
                                         bias ? db->as<const float>() : nullptr, act == Activation::relu));
  FE_TRY(s.download(dy, y));
  return s.finish();
}

Status relu_backward(MatView<const float> y, MatView<const float> dy, MatView<float> dx, int device) {
  FE_TRY(ferrite::detail::check_same_shape("cuda::relu_backward", y, dy));
  FE_TRY(ferrite::detail::check_same_shape("cuda::relu_backward", y, dx));
  for (auto [what, m] : {std::pair{"y", y}, std::pair{"dy", dy}, std::pair{"dx", MatView<const float>(dx)}})
    FE_TRY(detail::check_mat("cuda::relu_backward", what, m));
  FE_TRY_ASSIGN(auto s, detail::OpSession::open(device));
  FE_TRY_ASSIGN(auto d_y, s.upload(y));
  FE_TRY_ASSIGN(auto d_dy, s.upload(dy));
  FE_TRY_ASSIGN(auto d_dx, s.alloc(dx.rows * dx.ld * std::int64_t{sizeof(float)}));
  FE_TRY(kernels::launch_relu_backward(s.stream(), d_y->as<const float>(), y.ld, d_dy->as<const float>(), dy.ld,
                                       d_dx->as<float>(), dx.ld, y.rows, y.cols));
  FE_TRY(s.download(d_dx, dx));
  return s.finish();
}

Status column_sums(MatView<const float> x, float* out, int device) {
  FE_TRY(detail::check_mat("cuda::column_sums", "x", x));
  FE_TRY_ASSIGN(auto s, detail::OpSession::open(device));
  FE_TRY_ASSIGN(auto dx, s.upload(x));
  FE_TRY_ASSIGN(auto dout, s.alloc(x.cols * std::int64_t{sizeof(float)}));
  FE_TRY(kernels::launch_column_sums(s.stream(), /*relu=*/false, nullptr, 0, dx->as<const float>(), x.ld, nullptr, 0,
                                     x.rows, x.cols, dout->as<float>()));
  FE_TRY(s.download(dout, out, x.cols));
  return s.finish();
}

Status relu_backward_column_sums(MatView<const float> y, MatView<const float> dy, MatView<float> dx, float* dbias,
                                 int device) {
  FE_TRY(ferrite::detail::check_same_shape("cuda::relu_backward_column_sums", y, dy));
  FE_TRY(ferrite::detail::check_same_shape("cuda::relu_backward_column_sums", y, dx));
  for (auto [what, m] : {std::pair{"y", y}, std::pair{"dy", dy}, std::pair{"dx", MatView<const float>(dx)}})
    FE_TRY(detail::check_mat("cuda::relu_backward_column_sums", what, m));
  FE_TRY_ASSIGN(auto s, detail::OpSession::open(device));
  FE_TRY_ASSIGN(auto d_y, s.upload(y));
  FE_TRY_ASSIGN(auto d_dy, s.upload(dy));
  FE_TRY_ASSIGN(auto d_dx, s.alloc(dx.rows * dx.ld * std::int64_t{sizeof(float)}));
  FE_TRY_ASSIGN(auto d_db, s.alloc(y.cols * std::int64_t{sizeof(float)}));
  FE_TRY(kernels::launch_column_sums(s.stream(), /*relu=*/true, d_y->as<const float>(), y.ld, d_dy->as<const float>(),
                                     dy.ld, d_dx->as<float>(), dx.ld, y.rows, y.cols, d_db->as<float>()));
  FE_TRY(s.download(d_dx, dx));
  FE_TRY(s.download(d_db, dbias, dbias ? y.cols : 0));
  return s.finish();
}

Result<double> softmax_cross_entropy(MatView<const float> logits, const std::int32_t* labels, MatView<float> probs,
                                     MatView<float> dlogits, float* dbias, int device) {
  static constexpr const char* kOp = "cuda::softmax_cross_entropy";
  FE_TRY(detail::check_mat(kOp, "logits", logits));
  if (probs.data) FE_TRY(ferrite::detail::check_same_shape(kOp, logits, probs));
  if (dlogits.data) FE_TRY(ferrite::detail::check_same_shape(kOp, logits, dlogits));
  if (logits.cols == 0) return make_error(ErrorCode::invalid_argument, kOp, "zero classes", logits.shape().to_string());
  if (logits.rows > 0 && !labels) return make_error(ErrorCode::invalid_argument, kOp, "labels are null");
  FE_TRY(ferrite::detail::check_labels<float>(kOp, labels, logits.rows, logits.cols));
  FE_TRY_ASSIGN(auto s, detail::OpSession::open(device));
  FE_TRY_ASSIGN(auto d_logits, s.upload(logits));
  FE_TRY_ASSIGN(auto d_labels, s.upload(labels, logits.rows));
  FE_TRY_ASSIGN(auto d_probs, s.alloc(probs.data ? probs.rows * probs.ld * std::int64_t{sizeof(float)} : 0));
  FE_TRY_ASSIGN(auto d_dlogits, s.alloc(dlogits.data ? dlogits.rows * dlogits.ld * std::int64_t{sizeof(float)} : 0));
  FE_TRY_ASSIGN(auto d_dbias, s.alloc(dbias && dlogits.data ? logits.cols * std::int64_t{sizeof(float)} : 0));
  FE_TRY_ASSIGN(auto d_loss, s.alloc(sizeof(float)));
  FE_TRY(kernels::launch_softmax_xent(s.stream(), d_logits->as<const float>(), logits.ld, logits.rows, logits.cols,
                                      d_labels->as<const std::int32_t>(), d_probs->as<float>(), probs.ld,
                                      d_dlogits->as<float>(), dlogits.ld, d_loss->as<float>(), nullptr,
                                      d_dbias->as<float>()));
  float total = 0.f;
  if (probs.data) FE_TRY(s.download(d_probs, probs));
  if (dlogits.data) FE_TRY(s.download(d_dlogits, dlogits));
  if (dbias && dlogits.data) FE_TRY(s.download(d_dbias, dbias, logits.cols));
  FE_TRY(s.download(d_loss, &total, 1));
  FE_TRY(s.finish());
  return logits.rows ? double(total) / double(logits.rows) : 0.0;
}

Status gather_rows(MatView<const float> images, const std::int32_t* labels, std::span<const std::int32_t> indices,
                   MatView<float> out, std::int32_t* out_labels, int device) {
  static constexpr const char* kOp = "cuda::gather_rows";
  FE_TRY(detail::check_mat(kOp, "images", images));
  FE_TRY(detail::check_mat(kOp, "out", out));
  const auto count = static_cast<std::int64_t>(indices.size());
  if (images.ld != images.cols)
    return make_error(ErrorCode::invalid_argument, kOp, "the dataset matrix must be contiguous (ld == cols)",
                      images.shape().to_string() + " ld " + std::to_string(images.ld));
  if (out.rows < count || out.cols != images.cols)
    return make_error(ErrorCode::shape_mismatch, kOp,
                      "output buffer cannot hold " + std::to_string(count) + " rows of " +
                          std::to_string(images.cols) + " features",
                      out.shape().to_string());
  for (std::int64_t r = 0; r < count; ++r)
    if (indices[static_cast<std::size_t>(r)] < 0 || indices[static_cast<std::size_t>(r)] >= images.rows)
      return make_error(ErrorCode::invalid_argument, kOp,
                        "index " + std::to_string(indices[static_cast<std::size_t>(r)]) + " at batch position " +
                            std::to_string(r) + " is outside the " + std::to_string(images.rows) + " samples");
  if (out_labels && !labels)
    return make_error(ErrorCode::invalid_argument, kOp, "out_labels given but labels are null");
  FE_TRY_ASSIGN(auto s, detail::OpSession::open(device));
  FE_TRY_ASSIGN(auto d_images, s.upload(images));
  FE_TRY_ASSIGN(auto d_labels, s.upload(labels, labels ? images.rows : 0));
  FE_TRY_ASSIGN(auto d_indices, s.upload(indices.data(), count));
  FE_TRY_ASSIGN(auto d_out, s.alloc(out.rows * out.ld * std::int64_t{sizeof(float)}));
  FE_TRY_ASSIGN(auto d_out_labels, s.alloc(out_labels ? count * std::int64_t{sizeof(std::int32_t)} : 0));
  FE_TRY(kernels::launch_gather(s.stream(), d_images->as<const float>(), d_labels->as<const std::int32_t>(), images.cols,
                                d_indices->as<const std::int32_t>(), nullptr, 0, count, d_out->as<float>(), out.ld,
                                out_labels ? d_out_labels->as<std::int32_t>() : nullptr));
  FE_TRY(s.download(d_out, out.row_slice(0, count)));
  FE_TRY(s.download(d_out_labels, out_labels, out_labels ? count : 0));
  return s.finish();
}

namespace {

// Packs the tensors into padded flat buffers (the trainer's layout), runs one optimizer launch with
// the given step constants, and unpacks the updated parameters and states.
Status optimizer_update(const char* op, std::span<const OptimTensor> tensors, const kernels::OptimStep& constants,
                        bool adam, bool uses_state0, bool uses_state1, bool uses_state2, int device) {
  std::vector<std::int64_t> offsets;
  std::int64_t flat = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    if (t.numel < 0 || (t.numel > 0 && (!t.param || !t.grad || (uses_state0 && !t.state0) ||
                                        (uses_state1 && !t.state1) || (uses_state2 && !t.state2))))
      return make_error(ErrorCode::invalid_argument, op,
                        "tensor " + std::to_string(i) + " has a negative size or lacks a buffer the update needs");
    offsets.push_back(flat);
    flat += detail::align_floats(t.numel);
  }
  std::vector<float> p(static_cast<std::size_t>(flat), 0.f), g(p.size(), 0.f), s0(p.size(), 0.f), s1(p.size(), 0.f),
      s2(p.size(), 0.f);
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    const auto n = static_cast<std::size_t>(t.numel);
    const auto o = static_cast<std::size_t>(offsets[i]);
    if (!n) continue;
    std::memcpy(&p[o], t.param, n * sizeof(float));
    std::memcpy(&g[o], t.grad, n * sizeof(float));
    if (uses_state0) std::memcpy(&s0[o], t.state0, n * sizeof(float));
    if (uses_state1) std::memcpy(&s1[o], t.state1, n * sizeof(float));
    if (uses_state2) std::memcpy(&s2[o], t.state2, n * sizeof(float));
  }
  FE_TRY_ASSIGN(auto s, detail::OpSession::open(device));
  FE_TRY_ASSIGN(auto dp, s.upload(p.data(), flat));
  FE_TRY_ASSIGN(auto dg, s.upload(g.data(), flat));
  FE_TRY_ASSIGN(auto d0, s.upload(s0.data(), uses_state0 ? flat : 0));
  FE_TRY_ASSIGN(auto d1, s.upload(s1.data(), uses_state1 ? flat : 0));
  FE_TRY_ASSIGN(auto d2, s.upload(s2.data(), uses_state2 ? flat : 0));
  FE_TRY_ASSIGN(auto dtable, s.upload(&constants, 1));
  if (adam)
    FE_TRY(kernels::launch_adam(s.stream(), dp->as<float>(), dg->as<const float>(), d0->as<float>(), d1->as<float>(),
                                uses_state2 ? d2->as<float>() : nullptr, flat, dtable->as<const kernels::OptimStep>(),
                                nullptr));
  else
    FE_TRY(kernels::launch_sgd(s.stream(), dp->as<float>(), dg->as<const float>(), uses_state0 ? d0->as<float>() : nullptr,
                               flat, dtable->as<const kernels::OptimStep>(), nullptr));
  FE_TRY(s.download(dp, p.data(), flat));
  if (uses_state0) FE_TRY(s.download(d0, s0.data(), flat));
  if (uses_state1) FE_TRY(s.download(d1, s1.data(), flat));
  if (uses_state2) FE_TRY(s.download(d2, s2.data(), flat));
  FE_TRY(s.finish());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    const auto n = static_cast<std::size_t>(t.numel);
    const auto o = static_cast<std::size_t>(offsets[i]);
    if (!n) continue;
    std::memcpy(t.param, &p[o], n * sizeof(float));
    if (uses_state0) std::memcpy(t.state0, &s0[o], n * sizeof(float));
    if (uses_state1) std::memcpy(t.state1, &s1[o], n * sizeof(float));
    if (uses_state2) std::memcpy(t.state2, &s2[o], n * sizeof(float));
  }
  return ok_status();
}

}  // namespace

Status adam_update(std::span<const OptimTensor> tensors, const optim::AdamOptions& options, bool decoupled_weight_decay,
                   std::int64_t step, int device) {
  const char* op = decoupled_weight_decay ? "cuda::adamw_update" : "cuda::adam_update";
  FE_TRY(optim::Adam::validate(op, options));
  if (step < 1)
    return make_error(ErrorCode::invalid_argument, op, "step must be >= 1 (1-based), got " + std::to_string(step));
  return optimizer_update(op, tensors, detail::adam_step_constants(options, decoupled_weight_decay, step),
                          /*adam=*/true, true, true, options.amsgrad, device);
}

Status sgd_update(std::span<const OptimTensor> tensors, const optim::SGDOptions& options, bool first_step, int device) {
  FE_TRY(optim::SGD::validate(options));
  const bool momentum = options.momentum != 0.0;
  return optimizer_update("cuda::sgd_update", tensors, detail::sgd_step_constants(options, first_step),
                          /*adam=*/false, momentum, false, false, device);
}

namespace {
template <kernels::PhiloxKind kKind, class T>
Status philox_fill(std::uint64_t seed, std::uint64_t stream, std::uint64_t offset, std::span<T> out, int device) {
  FE_TRY_ASSIGN(auto s, detail::OpSession::open(device));
  const auto n = static_cast<std::int64_t>(out.size());
  FE_TRY_ASSIGN(auto d, s.alloc(n * std::int64_t{sizeof(T)}));
  FE_TRY(kernels::launch_philox<kKind>(s.stream(), d->data(), n, seed, stream, offset));
  FE_TRY(s.download(d, out.data(), n));
  return s.finish();
}
}  // namespace

Status philox_words(std::uint64_t seed, std::uint64_t stream, std::uint64_t offset, std::span<std::uint32_t> out,
                    int device) {
  return philox_fill<kernels::PhiloxKind::words>(seed, stream, offset, out, device);
}
Status philox_uniform(std::uint64_t seed, std::uint64_t stream, std::uint64_t offset, std::span<float> out,
                      int device) {
  return philox_fill<kernels::PhiloxKind::uniform>(seed, stream, offset, out, device);
}
Status philox_normal(std::uint64_t seed, std::uint64_t stream, std::uint64_t offset, std::span<float> out,
                     int device) {
  return philox_fill<kernels::PhiloxKind::normal>(seed, stream, offset, out, device);
}

Status fill(std::span<float> out, float value, int device) {
  FE_TRY_ASSIGN(auto s, detail::OpSession::open(device));
  const auto n = static_cast<std::int64_t>(out.size());
  FE_TRY_ASSIGN(auto d, s.alloc(n * std::int64_t{sizeof(float)}));
  FE_TRY(kernels::launch_fill(s.stream(), d->as<float>(), n, value));
  FE_TRY(s.download(d, out.data(), n));
  return s.finish();
}

}  // namespace ops

// ================================================================================================
// mlp_trainer.hpp

struct MlpTrainer::Impl {
  struct Layer {
    std::int64_t in = 0, out = 0;
    bool has_bias = false, relu = false;
    std::int64_t weight_offset = 0, bias_offset = 0;  // into the flat parameter buffers (floats)
  };
  struct Slot {  // one parameter tensor: where it lives in the flat buffers
    std::string name;
    Shape shape;
    std::int64_t offset = 0, numel = 0;
  };

  int device = 0;
  std::int64_t batch = 0, samples = 0, features = 0, classes = 0;
  OptimizerConfig optimizer;
  bool graphs = true;
  std::vector<Layer> layers;
  std::vector<Slot> slots;
  std::int64_t flat = 0;             // floats per flat buffer
  std::int64_t max_epoch_steps = 0;  // ceil(samples / batch)
  std::int64_t step_count = 0;
  bool warmed = false;  // a full-batch step has run eagerly (cuBLAS kernels loaded) before any capture

  // Declared first, destroyed last: everything below is released after ~Impl synchronized it.
  detail::Stream stream;
  detail::Blas blas;
  DeviceBuffer params, grads, state0, state1, state2;  // flat [flat]
  DeviceBuffer images, labels;                         // the resident training set
  DeviceBuffer order;                                  // i32 [samples]: this epoch's batch order
  DeviceBuffer table;                                  // OptimStep [max_epoch_steps]
  DeviceBuffer losses;                                 // f32 [max_epoch_steps]: summed loss of each step
  DeviceBuffer counter;                                // i64: the step within the epoch
  DeviceBuffer x, y;                                   // the batch: f32 [batch, features], i32 [batch]
  std::vector<DeviceBuffer> h, d;                      // per layer f32 [batch, out]: outputs, gradients
  detail::PinnedBuffer order_host, table_host, losses_host;
  std::vector<detail::Event> events;  // [max_epoch_steps + 1]: step boundaries, for per-step GPU time
  detail::GraphExec graph;

  ~Impl() {
    if (stream) (void)cudaStreamSynchronize(stream.get());
  }

  float* param_ptr(std::int64_t offset) const { return params.as<float>() + offset; }
  float* grad_ptr(std::int64_t offset) const { return grads.as<float>() + offset; }

  bool adam() const { return optimizer.kind != OptimizerConfig::Kind::sgd; }
  bool uses_state0() const { return adam() || optimizer.sgd.momentum != 0.0; }
  bool uses_state1() const { return adam(); }
  bool uses_state2() const { return adam() && optimizer.adam.amsgrad; }

  Status check_param_list(const char* op, const nn::ParameterList& list, bool need_grads) const {
    if (list.size() != slots.size())
      return make_error(ErrorCode::invalid_argument, op,
                        "expected " + std::to_string(slots.size()) + " parameters, got " + std::to_string(list.size()));
    for (std::size_t i = 0; i < slots.size(); ++i) {
      const auto& p = list[i];
      const Tensor* t = need_grads ? p.grad : p.value;
      if (p.name != slots[i].name)
        return make_error(ErrorCode::invalid_argument, op,
                          "parameter " + std::to_string(i) + " is '" + p.name + "', expected '" + slots[i].name + "'");
      if (!t || t->dtype() != DType::f32 || !t->device().is_cpu() || t->shape() != slots[i].shape ||
          (t->numel() > 0 && !t->raw_data()))
        return make_error(ErrorCode::shape_mismatch, op,
                          "parameter '" + p.name + "' must be f32 on cpu of shape " + slots[i].shape.to_string(),
                          t ? t->describe() : std::string("null"));
    }
    return ok_status();
  }

  // The flat buffer `flat_buffer` (parameters or gradients) into the list's values or grads.
  Status download(const DeviceBuffer& flat_buffer, const nn::ParameterList& list, bool into_grads, const char* op) const {
    FE_TRY(check_param_list(op, list, into_grads));
    FE_TRY_ASSIGN(auto guard, detail::DeviceGuard::make(device));
    for (std::size_t i = 0; i < slots.size(); ++i) {
      Tensor* dst = into_grads ? list[i].grad : list[i].value;
      FE_TRY(detail::check_cuda("cudaMemcpyAsync(device to host)",
                                cudaMemcpyAsync(dst->raw_data(), flat_buffer.as<const float>() + slots[i].offset,
                                                static_cast<std::size_t>(slots[i].numel) * sizeof(float),
                                                cudaMemcpyDeviceToHost, stream.get())));
    }
    return detail::check_cuda("cudaStreamSynchronize(device to host)", cudaStreamSynchronize(stream.get()));
  }

  // The whole training step for `rows` rows, enqueued on the stream (captured when capturing).
  Status enqueue_step(std::int64_t rows) {
    cudaStream_t s = stream.get();
    const detail::Blas& b = blas;
    auto* step = counter.as<std::int64_t>();
    FE_TRY(kernels::launch_gather(s, images.as<const float>(), labels.as<const std::int32_t>(), features,
                                  order.as<const std::int32_t>(), step, batch, rows, x.as<float>(), features,
                                  y.as<std::int32_t>()));
    // forward: h_l[rows, out] = act(h_{l-1} W_l^T + b_l)
    const float* input = x.as<const float>();
    std::int64_t input_ld = features;
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const Layer& L = layers[l];
      float* out = h[l].as<float>();
      FE_TRY(detail::sgemm(b, Trans::no, Trans::yes, rows, L.out, L.in, 1.f, input, input_ld,
                           param_ptr(L.weight_offset), L.in, 0.f, out, L.out));
      FE_TRY(kernels::launch_bias_activation(s, out, rows, L.out, L.out,
                                             L.has_bias ? param_ptr(L.bias_offset) : nullptr, L.relu));
      input = out;
      input_ld = L.out;
    }
    // loss: dlogits into d[last], the last bias gradient, the summed loss into losses[step]
    const std::size_t last = layers.size() - 1;
    FE_TRY(kernels::launch_softmax_xent(s, h[last].as<const float>(), classes, rows, classes,
                                        y.as<const std::int32_t>(), nullptr, 0, d[last].as<float>(), classes,
                                        losses.as<float>(), step,
                                        layers[last].has_bias ? grad_ptr(layers[last].bias_offset) : nullptr));
    // backward
    for (std::size_t l = layers.size(); l-- > 0;) {
      const Layer& L = layers[l];
      float* g = d[l].as<float>();
      if (l != last) {  // d[l] holds dL/dh_l: mask by the ReLU, bias gradient = its column sums
        if (L.has_bias)
          FE_TRY(kernels::launch_column_sums(s, L.relu, h[l].as<const float>(), L.out, g, L.out, L.relu ? g : nullptr,
                                             L.out, rows, L.out, grad_ptr(L.bias_offset)));
        else if (L.relu)
          FE_TRY(kernels::launch_relu_backward(s, h[l].as<const float>(), L.out, g, L.out, g, L.out, rows, L.out));
      }
      const float* a_prev = l == 0 ? x.as<const float>() : h[l - 1].as<const float>();
      const std::int64_t a_ld = l == 0 ? features : layers[l - 1].out;
      // dW[out, in] = g^T[out, rows] a_prev[rows, in]
      FE_TRY(detail::sgemm(b, Trans::yes, Trans::no, L.out, L.in, rows, 1.f, g, L.out, a_prev, a_ld, 0.f,
                           grad_ptr(L.weight_offset), L.in));
      // dh_{l-1}[rows, in] = g[rows, out] W[out, in]; not for the first layer (nobody needs d image)
      if (l > 0)
        FE_TRY(detail::sgemm(b, Trans::no, Trans::no, rows, L.in, L.out, 1.f, g, L.out, param_ptr(L.weight_offset),
                             L.in, 0.f, d[l - 1].as<float>(), L.in));
    }
    // update, then the next step
    const auto* constants = table.as<const kernels::OptimStep>();
    if (adam())
      FE_TRY(kernels::launch_adam(s, params.as<float>(), grads.as<const float>(), state0.as<float>(), state1.as<float>(),
                                  uses_state2() ? state2.as<float>() : nullptr, flat, constants, step));
    else
      FE_TRY(kernels::launch_sgd(s, params.as<float>(), grads.as<const float>(),
                                 uses_state0() ? state0.as<float>() : nullptr, flat, constants, step));
    return kernels::launch_advance(s, step);
  }

  // One step: eager, or captured once and replayed (full batches only).
  Status run_step(std::int64_t rows) {
    cudaStream_t s = stream.get();
    if (!graphs || rows != batch) return enqueue_step(rows);
    if (graph) return detail::check_cuda("cudaGraphLaunch", cudaGraphLaunch(graph.get(), s));
    if (!warmed) {
      FE_TRY(enqueue_step(rows));
      warmed = true;
      return ok_status();
    }
    FE_TRY_ASSIGN(graph, detail::capture_graph(s, "training step", [&] { return enqueue_step(rows); }));
    return detail::check_cuda("cudaGraphLaunch", cudaGraphLaunch(graph.get(), s));
  }
};

MlpTrainer::MlpTrainer(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
MlpTrainer::MlpTrainer(MlpTrainer&&) noexcept = default;
MlpTrainer& MlpTrainer::operator=(MlpTrainer&&) noexcept = default;
MlpTrainer::~MlpTrainer() {
  if (impl_) {
    auto guard = detail::DeviceGuard::make(impl_->device);
    impl_.reset();
  }
}

Result<MlpTrainer> MlpTrainer::create(nn::Sequential& model, const data::Dataset& train,
                                      const MlpTrainerOptions& options) {
  static constexpr const char* kOp = "cuda::MlpTrainer::create";
  FE_TRY(check_device(Device::cuda(options.device)));
  FE_TRY_ASSIGN(auto guard, detail::DeviceGuard::make(options.device));  // outlives `impl` below
  auto impl = std::make_unique<Impl>();
  Impl& t = *impl;
  t.device = options.device;
  t.batch = options.batch;
  t.optimizer = options.optimizer;
  t.graphs = options.cuda_graphs;
  if (t.batch <= 0)
    return make_error(ErrorCode::invalid_argument, kOp, "batch must be positive, got " + std::to_string(t.batch));
  if (t.optimizer.kind == OptimizerConfig::Kind::sgd)
    FE_TRY(optim::SGD::validate(t.optimizer.sgd));
  else
    FE_TRY(optim::Adam::validate(kOp, t.optimizer.adam));

  // The data: f32 [N, F] images, i32 [N] labels in [0, classes).
  t.samples = train.size();
  t.features = train.features();
  if (t.samples == 0) return make_error(ErrorCode::invalid_argument, kOp, "the training set is empty");
  if (train.images.dtype() != DType::f32 || train.images.shape() != Shape{t.samples, t.features} ||
      train.labels.dtype() != DType::i32)
    return make_error(ErrorCode::shape_mismatch, kOp,
                      "dataset '" + train.name + "' must hold f32 images [N, features] and i32 labels [N]",
                      train.images.describe() + ", " + train.labels.describe());

  // The model: Linear (+ ReLU) layers.
  for (std::size_t i = 0; i < model.size(); ++i) {
    if (auto* linear = dynamic_cast<nn::Linear*>(&model[i])) {
      Impl::Layer L;
      L.in = linear->in_features();
      L.out = linear->out_features();
      L.has_bias = linear->bias().defined();
      L.relu = linear->activation() == Activation::relu;
      t.layers.push_back(L);
    } else if (auto* relu = dynamic_cast<nn::ReLU*>(&model[i])) {
      if (t.layers.empty() || (t.layers.back().relu && !relu->fused_into_previous()))
        return make_error(ErrorCode::unsupported, kOp,
                          "module " + std::to_string(i) + " (ReLU) must follow a Linear layer without activation");
      t.layers.back().relu = true;
    } else {
      return make_error(ErrorCode::unsupported, kOp,
                        "module " + std::to_string(i) + " (" + model[i].describe() +
                            ") is not supported on CUDA: the trainer runs Linear and ReLU layers");
    }
  }
  if (t.layers.empty()) return make_error(ErrorCode::invalid_argument, kOp, "the model has no Linear layer");
  if (t.layers.front().in != t.features)
    return make_error(ErrorCode::shape_mismatch, kOp,
                      "the first layer takes " + std::to_string(t.layers.front().in) + " features, the data have " +
                          std::to_string(t.features));
  for (std::size_t l = 1; l < t.layers.size(); ++l)
    if (t.layers[l].in != t.layers[l - 1].out)
      return make_error(ErrorCode::shape_mismatch, kOp,
                        "layer " + std::to_string(l) + " takes " + std::to_string(t.layers[l].in) +
                            " inputs, the previous one gives " + std::to_string(t.layers[l - 1].out));
  if (t.layers.back().relu)
    return make_error(ErrorCode::unsupported, kOp, "the last Linear gives the logits and must not be followed by a ReLU");
  t.classes = t.layers.back().out;
  const std::int32_t* host_labels = train.label_data();
  for (std::int64_t i = 0; i < t.samples; ++i)
    if (host_labels[i] < 0 || host_labels[i] >= t.classes)
      return make_error(ErrorCode::invalid_argument, kOp,
                        "label " + std::to_string(host_labels[i]) + " of sample " + std::to_string(i) + " of '" +
                            train.name + "' is outside the model's " + std::to_string(t.classes) + " classes");

  // Parameters, in the model's order (weight, bias per Linear), at aligned flat offsets.
  const nn::ParameterList params = model.parameters();
  {
    std::size_t next = 0;
    auto take = [&](const Shape& shape, std::int64_t& offset) -> Status {
      if (next >= params.size() || !params[next].value || params[next].value->shape() != shape)
        return make_error(ErrorCode::internal, kOp, "the model's parameter list does not match its layers");
      offset = t.flat;
      t.slots.push_back({params[next].name, shape, t.flat, shape.numel()});
      t.flat += detail::align_floats(shape.numel());
      ++next;
      return ok_status();
    };
    for (auto& L : t.layers) {
      FE_TRY(take(Shape{L.out, L.in}, L.weight_offset));
      if (L.has_bias) FE_TRY(take(Shape{L.out}, L.bias_offset));
    }
    if (next != params.size())
      return make_error(ErrorCode::internal, kOp, "the model has parameters outside its Linear layers");
  }

  // Device resources.
  FE_TRY_ASSIGN(t.stream, detail::make_stream());
  FE_TRY_ASSIGN(t.blas, detail::Blas::create(t.device, t.stream.get(), options.allow_tf32));
  const std::int64_t fbytes = t.flat * std::int64_t{sizeof(float)};
  t.max_epoch_steps = data::num_batches(t.samples, t.batch);
  auto alloc = [&](DeviceBuffer& buffer, std::int64_t bytes) -> Status {
    FE_TRY_ASSIGN(buffer, DeviceBuffer::allocate(bytes, t.device));
    return ok_status();
  };
  FE_TRY(alloc(t.params, fbytes));
  FE_TRY(alloc(t.grads, fbytes));
  FE_TRY(alloc(t.state0, t.uses_state0() ? fbytes : 0));
  FE_TRY(alloc(t.state1, t.uses_state1() ? fbytes : 0));
  FE_TRY(alloc(t.state2, t.uses_state2() ? fbytes : 0));
  FE_TRY(alloc(t.images, t.samples * t.features * std::int64_t{sizeof(float)}));
  FE_TRY(alloc(t.labels, t.samples * std::int64_t{sizeof(std::int32_t)}));
  FE_TRY(alloc(t.order, t.samples * std::int64_t{sizeof(std::int32_t)}));
  FE_TRY(alloc(t.table, t.max_epoch_steps * std::int64_t{sizeof(kernels::OptimStep)}));
  FE_TRY(alloc(t.losses, t.max_epoch_steps * std::int64_t{sizeof(float)}));
  FE_TRY(alloc(t.counter, sizeof(std::int64_t)));
  FE_TRY(alloc(t.x, t.batch * t.features * std::int64_t{sizeof(float)}));
  FE_TRY(alloc(t.y, t.batch * std::int64_t{sizeof(std::int32_t)}));
  for (const auto& L : t.layers) {
    FE_TRY(alloc(t.h.emplace_back(), t.batch * L.out * std::int64_t{sizeof(float)}));
    FE_TRY(alloc(t.d.emplace_back(), t.batch * L.out * std::int64_t{sizeof(float)}));
  }
  FE_TRY_ASSIGN(t.order_host, detail::PinnedBuffer::allocate(t.samples * std::int64_t{sizeof(std::int32_t)}));
  FE_TRY_ASSIGN(t.table_host, detail::PinnedBuffer::allocate(t.max_epoch_steps * std::int64_t{sizeof(kernels::OptimStep)}));
  FE_TRY_ASSIGN(t.losses_host, detail::PinnedBuffer::allocate(t.max_epoch_steps * std::int64_t{sizeof(float)}));
  for (std::int64_t i = 0; i <= t.max_epoch_steps; ++i) {
    FE_TRY_ASSIGN(t.events.emplace_back(), detail::make_event());
  }

  // Contents: the data set once, zeroed gradients and state (padding included), the parameters.
  cudaStream_t s = t.stream.get();
  FE_TRY(detail::check_cuda("cudaMemcpyAsync(training images)",
                            cudaMemcpyAsync(t.images.data(), train.images.raw_data(),
                                            static_cast<std::size_t>(t.images.bytes()), cudaMemcpyHostToDevice, s)));
  FE_TRY(detail::check_cuda("cudaMemcpyAsync(training labels)",
                            cudaMemcpyAsync(t.labels.data(), host_labels, static_cast<std::size_t>(t.labels.bytes()),
                                            cudaMemcpyHostToDevice, s)));
  for (DeviceBuffer* b : {&t.params, &t.grads, &t.state0, &t.state1, &t.state2})
    if (!b->empty())
      FE_TRY(detail::check_cuda("cudaMemsetAsync(parameters and state)",
                                cudaMemsetAsync(b->data(), 0, static_cast<std::size_t>(b->bytes()), s)));
  FE_TRY(detail::check_cuda("cudaStreamSynchronize(upload)", cudaStreamSynchronize(s)));
  MlpTrainer trainer(std::move(impl));
  FE_TRY(trainer.upload_parameters(params));
  return trainer;
}

Status MlpTrainer::upload_parameters(const nn::ParameterList& params) {
  Impl& t = *impl_;
  FE_TRY(t.check_param_list("cuda::MlpTrainer::upload_parameters", params, /*need_grads=*/false));
  FE_TRY_ASSIGN(auto guard, detail::DeviceGuard::make(t.device));
  for (std::size_t i = 0; i < t.slots.size(); ++i)
    FE_TRY(detail::check_cuda("cudaMemcpyAsync(parameters to device)",
                              cudaMemcpyAsync(t.param_ptr(t.slots[i].offset), params[i].value->raw_data(),
                                              static_cast<std::size_t>(t.slots[i].numel) * sizeof(float),
                                              cudaMemcpyHostToDevice, t.stream.get())));
  return detail::check_cuda("cudaStreamSynchronize(parameters to device)", cudaStreamSynchronize(t.stream.get()));
}

Status MlpTrainer::download_parameters(const nn::ParameterList& params) const {
  return impl_->download(impl_->params, params, /*grads=*/false, "cuda::MlpTrainer::download_parameters");
}

Status MlpTrainer::download_gradients(const nn::ParameterList& params) const {
  return impl_->download(impl_->grads, params, /*grads=*/true, "cuda::MlpTrainer::download_gradients");
}

Status MlpTrainer::reset_optimizer() {
  Impl& t = *impl_;
  FE_TRY_ASSIGN(auto guard, detail::DeviceGuard::make(t.device));
  for (DeviceBuffer* b : {&t.state0, &t.state1, &t.state2})
    if (!b->empty())
      FE_TRY(detail::check_cuda("cudaMemsetAsync(optimizer state)",
                                cudaMemsetAsync(b->data(), 0, static_cast<std::size_t>(b->bytes()), t.stream.get())));
  FE_TRY(detail::check_cuda("cudaStreamSynchronize(optimizer state)", cudaStreamSynchronize(t.stream.get())));
  t.step_count = 0;
  return ok_status();
}

Result<EpochResult> MlpTrainer::train_epoch(std::span<const std::int32_t> order, std::int64_t max_steps) {
  static constexpr const char* kOp = "cuda::MlpTrainer::train_epoch";
  Impl& t = *impl_;
  const auto m = static_cast<std::int64_t>(order.size());
  if (m == 0 || m > t.samples)
    return make_error(ErrorCode::invalid_argument, kOp,
                      "the batch order has " + std::to_string(m) + " indices; expected 1 to " +
                          std::to_string(t.samples) + " (the training set's size)");
  for (std::int64_t i = 0; i < m; ++i)
    if (order[static_cast<std::size_t>(i)] < 0 || order[static_cast<std::size_t>(i)] >= t.samples)
      return make_error(ErrorCode::invalid_argument, kOp,
                        "index " + std::to_string(order[static_cast<std::size_t>(i)]) + " at position " +
                            std::to_string(i) + " is outside the " + std::to_string(t.samples) + " training samples");
  std::int64_t steps = data::num_batches(m, t.batch);
  if (max_steps >= 0) steps = std::min(steps, max_steps);
  EpochResult r;
  if (steps == 0) return r;

  FE_TRY_ASSIGN(auto guard, detail::DeviceGuard::make(t.device));
  cudaStream_t s = t.stream.get();
  bench::Stopwatch clock;
  std::memcpy(t.order_host.as<void>(), order.data(), static_cast<std::size_t>(m) * sizeof(std::int32_t));
  auto* table = t.table_host.as<kernels::OptimStep>();
  for (std::int64_t b = 0; b < steps; ++b)
    table[b] = t.adam() ? detail::adam_step_constants(t.optimizer.adam, t.optimizer.kind == OptimizerConfig::Kind::adamw,
                                                      t.step_count + b + 1)
                        : detail::sgd_step_constants(t.optimizer.sgd, t.step_count + b == 0);
  // From here on, any failure first drains the stream (the pinned buffers must not be rewritten
  // while a copy from them may still be pending).
  auto run = [&]() -> Status {
    FE_TRY(detail::check_cuda("cudaMemcpyAsync(batch order)",
                              cudaMemcpyAsync(t.order.data(), t.order_host.as<void>(),
                                              static_cast<std::size_t>(m) * sizeof(std::int32_t),
                                              cudaMemcpyHostToDevice, s)));
    FE_TRY(detail::check_cuda("cudaMemcpyAsync(optimizer constants)",
                              cudaMemcpyAsync(t.table.data(), table,
                                              static_cast<std::size_t>(steps) * sizeof(kernels::OptimStep),
                                              cudaMemcpyHostToDevice, s)));
    FE_TRY(detail::check_cuda("cudaMemsetAsync(step counter)",
                              cudaMemsetAsync(t.counter.data(), 0, sizeof(std::int64_t), s)));
    FE_TRY(detail::check_cuda("cudaEventRecord", cudaEventRecord(t.events[0].get(), s)));
    for (std::int64_t b = 0; b < steps; ++b) {
      FE_TRY(t.run_step(std::min(t.batch, m - b * t.batch)));
      FE_TRY(detail::check_cuda("cudaEventRecord", cudaEventRecord(t.events[static_cast<std::size_t>(b + 1)].get(), s)));
    }
    FE_TRY(detail::check_cuda("cudaMemcpyAsync(step losses)",
                              cudaMemcpyAsync(t.losses_host.as<void>(), t.losses.data(),
                                              static_cast<std::size_t>(steps) * sizeof(float), cudaMemcpyDeviceToHost,
                                              s)));
    return detail::check_cuda("cudaStreamSynchronize(training epoch)", cudaStreamSynchronize(s));
  };
  if (Status status = run(); !status.ok()) {
    (void)cudaStreamSynchronize(s);
    (void)cudaGetLastError();
    return std::move(status).error();
  }
  r.seconds = clock.elapsed_seconds();
  const auto* sums = t.losses_host.as<const float>();
  for (std::int64_t b = 0; b < steps; ++b) {
    const std::int64_t rows = std::min(t.batch, m - b * t.batch);
    r.step_loss.push_back(double(sums[b]) / double(rows));  // the CPU's double(total) / rows
    float ms = 0.f;
    FE_TRY(detail::check_cuda("cudaEventElapsedTime",
                              cudaEventElapsedTime(&ms, t.events[static_cast<std::size_t>(b)].get(),
                                                   t.events[static_cast<std::size_t>(b + 1)].get())));
    r.step_ms.push_back(double(ms));
    r.samples += rows;
  }
  t.step_count += steps;
  return r;
}

std::int64_t MlpTrainer::batch() const noexcept { return impl_ ? impl_->batch : 0; }
std::int64_t MlpTrainer::train_size() const noexcept { return impl_ ? impl_->samples : 0; }
std::int64_t MlpTrainer::step_count() const noexcept { return impl_ ? impl_->step_count : 0; }
bool MlpTrainer::graph_captured() const noexcept { return impl_ && impl_->graph; }
int MlpTrainer::device() const noexcept { return impl_ ? impl_->device : 0; }
Result<MemoryStats> MlpTrainer::memory_stats() const { return cuda::memory_stats(device()); }

}  // namespace ferrite::cuda

// The QCA step (backend/cuda/qca.hpp).
#include "ferrite/backend/cuda/impl/qca_impl.cuh"
