#pragma once
// The elementwise kernels and copies of backend/cuda/kernels.hpp (nvcc only; included by
// src/cuda_elementwise.cu alone). CPU oracles (backend/cpu/nn_ops.hpp), bit for bit:
//   bias_activation   one __fadd_rn, ReLU as std::max(v, 0.f): (v < 0) ? 0 : v, so NaN and -0 stay
//   relu_backward     a select
// nvcc contracts a * b + c into one FMA by default; these kernels have no product to contract, and
// the add is spelled __fadd_rn anyway so that no future edit changes the rounding silently.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/impl/stream.cuh"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/core/op_params.hpp"
#include "ferrite/core/result.hpp"

namespace ferrite::cuda::kernels {

namespace {

// y[rows, cols] = act(y + bias[cols]) in place; bias may be null.
__global__ void bias_activation_kernel(float* __restrict__ y, i64 rows, i64 cols, i64 ld,
                                       const float* __restrict__ bias, bool relu) {
  const i64 n = rows * cols;
  for (i64 idx = blockIdx.x * i64{blockDim.x} + threadIdx.x; idx < n; idx += i64{gridDim.x} * blockDim.x) {
    const i64 i = idx / cols, j = idx - i * cols;
    float v = y[i * ld + j];
    if (bias) v = __fadd_rn(v, bias[j]);
    if (relu) v = v < 0.f ? 0.f : v;
    y[i * ld + j] = v;
  }
}

// dx = dy where y > 0 else 0 (dx may alias dy: each element is read and written by one thread).
__global__ void relu_backward_kernel(const float* __restrict__ y, i64 ldy, const float* dy, i64 lddy, float* dx,
                                     i64 lddx, i64 rows, i64 cols) {
  const i64 n = rows * cols;
  for (i64 idx = blockIdx.x * i64{blockDim.x} + threadIdx.x; idx < n; idx += i64{gridDim.x} * blockDim.x) {
    const i64 i = idx / cols, j = idx - i * cols;
    dx[i * lddx + j] = y[i * ldy + j] > 0.f ? dy[i * lddy + j] : 0.f;
  }
}

__global__ void fill_kernel(float* __restrict__ out, i64 n, float value) {
  for (i64 i = blockIdx.x * i64{blockDim.x} + threadIdx.x; i < n; i += i64{gridDim.x} * blockDim.x) out[i] = value;
}

Status copy_async(const Stream& s, void* dst, const void* src, i64 bytes, cudaMemcpyKind kind, const char* what) {
  if (bytes < 0)
    return make_error(ErrorCode::invalid_argument, what, "negative size " + std::to_string(bytes));
  if (bytes == 0) return ok_status();
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  return detail::check_cuda(what, cudaMemcpyAsync(dst, src, static_cast<std::size_t>(bytes), kind,
                                                  detail::raw_stream(s)));
}

}  // namespace

Status bias_activation(const Stream& s, float* y, i64 rows, i64 cols, i64 ld, const float* bias, Activation act) {
  const bool relu = act == Activation::relu;
  if (rows <= 0 || cols <= 0 || (!bias && !relu)) return ok_status();
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  bias_activation_kernel<<<detail::grid_for(rows * cols), detail::kBlock, 0, detail::raw_stream(s)>>>(y, rows, cols,
                                                                                                     ld, bias, relu);
  return detail::check_launch("bias_activation_kernel");
}

Status relu_backward(const Stream& s, const float* y, i64 ldy, const float* dy, i64 lddy, float* dx, i64 lddx,
                     i64 rows, i64 cols) {
  if (rows <= 0 || cols <= 0) return ok_status();
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  relu_backward_kernel<<<detail::grid_for(rows * cols), detail::kBlock, 0, detail::raw_stream(s)>>>(
      y, ldy, dy, lddy, dx, lddx, rows, cols);
  return detail::check_launch("relu_backward_kernel");
}

Status fill(const Stream& s, float* out, i64 n, float value) {
  if (n <= 0) return ok_status();
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  fill_kernel<<<detail::grid_for(n), detail::kBlock, 0, detail::raw_stream(s)>>>(out, n, value);
  return detail::check_launch("fill_kernel");
}

Status copy_bytes(const Stream& s, void* dst, const void* src, i64 bytes) {
  return copy_async(s, dst, src, bytes, cudaMemcpyDeviceToDevice, "cudaMemcpyAsync(device to device)");
}

Status copy_to_device(const Stream& s, void* dst, const void* host_src, i64 bytes) {
  return copy_async(s, dst, host_src, bytes, cudaMemcpyHostToDevice, "cudaMemcpyAsync(host to device)");
}

Status copy_to_host(const Stream& s, void* host_dst, const void* src, i64 bytes) {
  return copy_async(s, host_dst, src, bytes, cudaMemcpyDeviceToHost, "cudaMemcpyAsync(device to host)");
}

}  // namespace ferrite::cuda::kernels
