#pragma once
// The CUDA kernels of the op set, one entry point per kernel, on device pointers, enqueued on a
// cuda::Stream (asynchronous: nothing synchronizes, nothing allocates, so a sequence of them can be
// captured into a CUDA graph). No CUDA types here; definitions in backend/cuda/impl/<family>.cuh,
// one small .cu per family under src/.
//
// The op layer (ops/*.hpp) checks shapes, dtypes and devices before calling these, so they only
// check what is about the launch (sizes beyond 32-bit grids, CUDA errors). Matrices are row-major
// with a leading dimension, as MatView. Numerics equal the CPU kernels of the same name where the
// formulas are elementwise (roundings spelled out with __fmul_rn & co.); reductions have a fixed
// order (no atomics), so runs are bit-identical run to run.
//
// `step` arguments: an optional device pointer to a step counter (int64). Kernels that take per-step
// data (the optimizer's constants, the loss slot) read entry `*step` of their table, so that one
// captured graph serves every step; null means entry 0.
#include <cstdint>

#include "ferrite/backend/cuda/stream.hpp"
#include "ferrite/backend/optim_coefficients.hpp"
#include "ferrite/core/op_params.hpp"
#include "ferrite/core/result.hpp"

namespace ferrite::cuda::kernels {

using i64 = std::int64_t;

// --- linalg (impl/gemm.cuh) -----------------------------------------------------------------
// C[m, n] = alpha * op(A) op(B) + beta * C, row-major, through cublasSgemm (C^T = op(B)^T op(A)^T).
// tf32: CUBLAS_TF32_TENSOR_OP_MATH for this call, else full FP32 (CUBLAS_DEFAULT_MATH).
Status sgemm(const Stream& s, Trans ta, Trans tb, i64 m, i64 n, i64 k, float alpha, const float* a, i64 lda,
             const float* b, i64 ldb, float beta, float* c, i64 ldc, bool tf32);

// --- elementwise (impl/elementwise.cuh) -----------------------------------------------------
// y[rows, cols] = act(y + bias[cols]) in place; bias may be null.
Status bias_activation(const Stream& s, float* y, i64 rows, i64 cols, i64 ld, const float* bias, Activation act);
// dx = dy where y > 0 else 0 (dx may alias dy).
Status relu_backward(const Stream& s, const float* y, i64 ldy, const float* dy, i64 lddy, float* dx, i64 lddx,
                     i64 rows, i64 cols);
// out[i] = value, n floats.
Status fill(const Stream& s, float* out, i64 n, float value);
// dst = src, `bytes` bytes, device to device (cudaMemcpyAsync).
Status copy_bytes(const Stream& s, void* dst, const void* src, i64 bytes);
// Host <-> device on the stream (host memory should be pinned for overlap; any host memory works,
// but a copy from or to pageable memory cannot be captured into a graph).
Status copy_to_device(const Stream& s, void* dst, const void* host_src, i64 bytes);
Status copy_to_host(const Stream& s, void* host_dst, const void* src, i64 bytes);

// --- reductions (impl/reduce.cuh) -----------------------------------------------------------
// out[cols] (+)= column sums of x[rows, cols] (rows added in a fixed order; accumulate: out += sums).
// With relu_y non-null, x is first masked by relu_y > 0 and the masked values are written to
// masked (may alias x; may be null): the fused ReLU backward + bias gradient of Linear. Without
// relu_y, masked is not used. rows = 0: out = 0 (accumulate: unchanged).
Status column_sums(const Stream& s, const float* x, i64 ldx, i64 rows, i64 cols, float* out, bool accumulate,
                   const float* relu_y, i64 ldy, float* masked, i64 ldm);

// --- loss (impl/loss.cuh) -------------------------------------------------------------------
// Fused softmax + cross-entropy over logits[rows, cols] with labels[rows] in [0, cols):
//   probs   = softmax(logits)                       (skipped if null)
//   dlogits = (probs - onehot) * grad_scale         (skipped if null; grad_scale = 1/rows for the mean)
//   loss[*step or 0] = sum over rows of -log p[label] / rows   (f32; skipped if null; 0 for rows = 0)
// dlogits rounds as the CPU: p * grad_scale, then - grad_scale at the label. A label outside
// [0, cols) reads nothing out of bounds: its row's loss, hence the mean, is NaN.
Status softmax_cross_entropy(const Stream& s, const float* logits, i64 ld, i64 rows, i64 cols,
                             const std::int32_t* labels, float* probs, i64 ldp, float* dlogits, i64 ldd,
                             float grad_scale, float* loss, const i64* step);

// --- indexing (impl/index.cuh) --------------------------------------------------------------
// dst rows r = src rows indices[r] (features floats each); dst_labels[r] = src_labels[indices[r]]
// when both label pointers are non-null. indices is a device array of `rows` entries, each in
// range (not checked). features = 0 with null src / dst gathers the labels alone.
Status gather_rows(const Stream& s, const float* src, i64 ld_src, const std::int32_t* src_labels,
                   const std::int32_t* indices, i64 rows, i64 features, float* dst, i64 ld_dst,
                   std::int32_t* dst_labels);

// --- optimizers (impl/optim.cuh) ------------------------------------------------------------
// One fused update over n floats (p, g, state: 16-byte aligned, else invalid_argument — the
// ParameterStore's flat buffers are; float4 access, any n). table: a device array of per-step
// entries (adam_step_bytes() / sgd_step_bytes() each), entry *step (or 0) is used. vmax / buf may
// be null when the configuration does not use them.
struct AdamStep;  // device-side layout, impl/optim.cuh
struct SgdStep;
// The device table entries are built from the host's coefficients (the same double->float roundings
// as the CPU) and uploaded by the optimizer once per epoch or per step.
i64 adam_step_bytes() noexcept;
i64 sgd_step_bytes() noexcept;
void encode_adam_step(const optim::detail::AdamCoefficients& c, void* entry) noexcept;  // host memory
void encode_sgd_step(const optim::detail::SGDCoefficients& c, void* entry) noexcept;
Status adam_update(const Stream& s, float* p, const float* g, float* m, float* v, float* vmax, i64 n,
                   const void* table, const i64* step);
Status sgd_update(const Stream& s, float* p, const float* g, float* buf, i64 n, const void* table,
                  const i64* step);
// *step += 1 (the last node of a captured training step).
Status advance_step(const Stream& s, i64* step);

// --- random (impl/random.cuh) ---------------------------------------------------------------
// out[i] = element offset + i of Philox(seed, stream)'s uniform [0, 1) floats (core/rng.hpp).
Status philox_uniform(const Stream& s, float* out, i64 n, std::uint64_t seed, std::uint64_t stream,
                      std::uint64_t offset);

}  // namespace ferrite::cuda::kernels
