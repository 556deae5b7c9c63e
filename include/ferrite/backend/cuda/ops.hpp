#pragma once
// The CUDA kernels one by one, on host data: each call uploads its inputs to the GPU, runs exactly
// the kernel (or cuBLAS call) that cuda::MlpTrainer runs, downloads the outputs and synchronizes.
// They exist so that every kernel can be checked against its CPU oracle on odd sizes
// (tests/backend/cuda); they are not a fast path (each call pays transfers and a sync).
//
// Same contracts as the CPU ops of the same name (ops/nn_ops.hpp, ops/gemm.hpp, optim/*.hpp,
// core/rng.hpp), same shape checks and errors. Views are host memory, row-major with a leading
// dimension, which the device copy keeps. Without FERRITE_WITH_CUDA every call returns
// device_unavailable.
#include <cstdint>
#include <span>

#include "ferrite/backend/cuda/runtime.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/core/tensor.hpp"
#include "ferrite/ops/nn_ops.hpp"
#include "ferrite/ops/transpose.hpp"
#include "ferrite/optim/adam.hpp"
#include "ferrite/optim/sgd.hpp"

namespace ferrite::cuda::ops {

struct GemmOptions {
  int device = 0;
  bool allow_tf32 = false;  // off: full FP32 products, as the CPU (CUBLAS_DEFAULT_MATH)
};

// One parameter tensor for the multi-tensor optimizer updates: host arrays of `numel` floats.
// vmax (amsgrad) and momentum buffers may be null when the configuration does not use them.
struct OptimTensor {
  float* param = nullptr;
  const float* grad = nullptr;
  float* state0 = nullptr;  // Adam: exp_avg;    SGD: momentum_buffer
  float* state1 = nullptr;  // Adam: exp_avg_sq
  float* state2 = nullptr;  // Adam: max_exp_avg_sq (amsgrad)
  std::int64_t numel = 0;
};

#if defined(FERRITE_WITH_CUDA)
// C[M, N] = alpha * op(A) op(B) + beta * C through cublasSgemm (row-major: C^T = op(B)^T op(A)^T).
Status gemm(Trans ta, Trans tb, float alpha, MatView<const float> a, MatView<const float> b, float beta,
            MatView<float> c, const GemmOptions& options = {});
// y = act(y + bias), bias [cols] or null.
Status bias_activation(MatView<float> y, const float* bias, Activation act, int device = 0);
// dx = dy where y > 0 else 0.
Status relu_backward(MatView<const float> y, MatView<const float> dy, MatView<float> dx, int device = 0);
// out[cols] = sum over rows of x (fixed-order block reduction: deterministic).
Status column_sums(MatView<const float> x, float* out, int device = 0);
// Fused ReLU backward + bias gradient: dx = dy where y > 0 else 0; dbias[cols] = column sums of dx.
Status relu_backward_column_sums(MatView<const float> y, MatView<const float> dy, MatView<float> dx,
                                 float* dbias, int device = 0);
// Fused softmax + cross-entropy forward and backward; returns the mean loss.
//   probs   = softmax(logits)              (skipped if probs.data is null)
//   dlogits = (probs - onehot(labels)) / B (skipped if dlogits.data is null)
//   dbias   = column sums of dlogits       (skipped if null; the last layer's bias gradient)
Result<double> softmax_cross_entropy(MatView<const float> logits, const std::int32_t* labels,
                                     MatView<float> probs, MatView<float> dlogits, float* dbias,
                                     int device = 0);
// out rows r = images rows indices[r], out_labels[r] = labels[indices[r]] (labels, out_labels may
// be null): the batch gather from the GPU-resident dataset.
Status gather_rows(MatView<const float> images, const std::int32_t* labels,
                   std::span<const std::int32_t> indices, MatView<float> out, std::int32_t* out_labels,
                   int device = 0);
// One fused multi-tensor Adam / AdamW update (PyTorch's formulas, as optim/adam.hpp) of step
// number `step` (1-based) with learning rate options.lr, in one kernel launch over all tensors.
Status adam_update(std::span<const OptimTensor> tensors, const optim::AdamOptions& options,
                   bool decoupled_weight_decay, std::int64_t step, int device = 0);
// One fused multi-tensor SGD update (optim/sgd.hpp); first_step: the momentum buffer is the gradient.
Status sgd_update(std::span<const OptimTensor> tensors, const optim::SGDOptions& options, bool first_step,
                  int device = 0);
// Philox4x32-10 on the GPU, element i of the output = element offset + i of Philox(seed, stream)'s
// words / uniform / normal sequences (core/rng.hpp).
Status philox_words(std::uint64_t seed, std::uint64_t stream, std::uint64_t offset, std::span<std::uint32_t> out,
                    int device = 0);
Status philox_uniform(std::uint64_t seed, std::uint64_t stream, std::uint64_t offset, std::span<float> out,
                      int device = 0);
Status philox_normal(std::uint64_t seed, std::uint64_t stream, std::uint64_t offset, std::span<float> out,
                     int device = 0);
// out[i] = value.
Status fill(std::span<float> out, float value, int device = 0);
#else
inline Status gemm(Trans, Trans, float, MatView<const float>, MatView<const float>, float, MatView<float>,
                   const GemmOptions& options = {}) {
  return detail::no_cuda_backend("cuda::gemm", options.device);
}
inline Status bias_activation(MatView<float>, const float*, Activation, int device = 0) {
  return detail::no_cuda_backend("cuda::bias_activation", device);
}
inline Status relu_backward(MatView<const float>, MatView<const float>, MatView<float>, int device = 0) {
  return detail::no_cuda_backend("cuda::relu_backward", device);
}
inline Status column_sums(MatView<const float>, float*, int device = 0) {
  return detail::no_cuda_backend("cuda::column_sums", device);
}
inline Status relu_backward_column_sums(MatView<const float>, MatView<const float>, MatView<float>, float*,
                                        int device = 0) {
  return detail::no_cuda_backend("cuda::relu_backward_column_sums", device);
}
inline Result<double> softmax_cross_entropy(MatView<const float>, const std::int32_t*, MatView<float>,
                                            MatView<float>, float*, int device = 0) {
  return detail::no_cuda_backend("cuda::softmax_cross_entropy", device);
}
inline Status gather_rows(MatView<const float>, const std::int32_t*, std::span<const std::int32_t>,
                          MatView<float>, std::int32_t*, int device = 0) {
  return detail::no_cuda_backend("cuda::gather_rows", device);
}
inline Status adam_update(std::span<const OptimTensor>, const optim::AdamOptions&, bool, std::int64_t,
                          int device = 0) {
  return detail::no_cuda_backend("cuda::adam_update", device);
}
inline Status sgd_update(std::span<const OptimTensor>, const optim::SGDOptions&, bool, int device = 0) {
  return detail::no_cuda_backend("cuda::sgd_update", device);
}
inline Status philox_words(std::uint64_t, std::uint64_t, std::uint64_t, std::span<std::uint32_t>,
                           int device = 0) {
  return detail::no_cuda_backend("cuda::philox_words", device);
}
inline Status philox_uniform(std::uint64_t, std::uint64_t, std::uint64_t, std::span<float>, int device = 0) {
  return detail::no_cuda_backend("cuda::philox_uniform", device);
}
inline Status philox_normal(std::uint64_t, std::uint64_t, std::uint64_t, std::span<float>, int device = 0) {
  return detail::no_cuda_backend("cuda::philox_normal", device);
}
inline Status fill(std::span<float>, float, int device = 0) { return detail::no_cuda_backend("cuda::fill", device); }
#endif

}  // namespace ferrite::cuda::ops
