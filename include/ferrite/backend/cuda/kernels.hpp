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

// out[0] = sum of x[i]^2 over n floats, in double, in a fixed order (one block: each thread a
// strided partial, then a tree in shared memory): the squared global norm for gradient clipping.
Status sum_of_squares(const Stream& s, const float* x, i64 n, double* out);
// x *= min(1, max_norm / (sqrt(*sum_sq) + 1e-6)) over n floats, the factor computed on the device
// from the device scalar sum_sq (no host round trip): torch.nn.utils.clip_grad_norm_'s scaling.
Status clip_by_norm(const Stream& s, float* x, i64 n, const double* sum_sq, double max_norm);

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
// range (not checked). features = 0 with null src / dst gathers the labels alone. With `step`
// non-null the indices start at indices + *step * per_step (a batch of an epoch order, graph mode).
Status gather_rows(const Stream& s, const float* src, i64 ld_src, const std::int32_t* src_labels,
                   const std::int32_t* indices, i64 rows, i64 features, float* dst, i64 ld_dst,
                   std::int32_t* dst_labels, const i64* step = nullptr, i64 per_step = 0);

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

// --- convolution family (impl/conv.cuh): planar images [C, H, W] of one sample, P = H*W -----------
// In-plane indices are 32-bit: a plane (P floats; 4P for the scatter's output) beyond INT_MAX is
// unsupported. Channels are not limited (rows beyond gridDim.y's 65535 are looped over).
// Batched GEMM (cublasSgemmStridedBatched, row-major as sgemm): C_i = alpha op(A_i) op(B_i) + beta C_i.
Status sgemm_strided_batched(const Stream& s, Trans ta, Trans tb, i64 m, i64 n, i64 k, float alpha, const float* a,
                             i64 lda, i64 stride_a, const float* b, i64 ldb, i64 stride_b, float beta, float* c,
                             i64 ldc, i64 stride_c, i64 batch, bool tf32);
// cols[cin*9, P] = im2col of a 3x3 "same" convolution (row ci*9 + ky*3 + kx, zero padding).
Status im2col3x3(const Stream& s, const float* x, i64 cin, i64 height, i64 width, float* cols);
// Winograd F(2x2, 3x3), T = ceil(H/2) * ceil(W/2) tiles: V[16][cin][T] = Bᵀ d B of every 4x4 patch;
// y[cout, H, W] = Aᵀ M A per tile from M[16][cout][T] (cut at the image edge), + bias[cout] if non-null.
Status winograd_input_transform(const Stream& s, const float* x, i64 cin, i64 height, i64 width, float* v);
Status winograd_output_transform(const Stream& s, const float* m, i64 cout, i64 height, i64 width,
                                 const float* bias, float* y);
// y[c, p] += bias[c] over `channels` planes of P floats.
Status add_channel_bias(const Stream& s, float* y, i64 channels, i64 plane, const float* bias);
// ConvTranspose2d k2 s2: y[co, 2i+ky, 2j+kx] = taps[co*4 + ky*2 + kx, i*W + j] + bias[co], from the
// GEMM's taps[cout*4, H*W] (input H x W, output 2H x 2W).
Status conv_transpose_k2s2_scatter(const Stream& s, const float* taps, i64 cout, i64 height, i64 width,
                                   const float* bias, float* y);
// y[C, H/2, W/2] = 2x2 max pooling of x[C, H, W] (H, W even; odd: the last row / column is dropped).
// NaN as the CPU's std::max(std::max(a, b), std::max(c, d)) (ops/pool.hpp), not torch's propagating max.
Status maxpool2x2(const Stream& s, const float* x, i64 channels, i64 height, i64 width, float* y);
// GroupNorm (impl/norm.cuh) over x[C, P] (groups of C/groups contiguous channels) with affine
// gamma/beta[C] (null: none) and ELU (alpha 1) when elu; y may alias x. Statistics in double (per-chunk
// (sum, sum of squares) partials, combined in a fixed order: deterministic). `partials` is 8-byte
// aligned device scratch of group_norm_scratch_bytes(C, P, groups) bytes (0 for empty or invalid sizes).
i64 group_norm_scratch_bytes(i64 channels, i64 plane, i64 groups) noexcept;
Status group_norm(const Stream& s, const float* x, i64 channels, i64 plane, i64 groups, const float* gamma,
                  const float* beta, double eps, bool elu, float* y, void* partials);

// --- batch convolution and normalization (impl/batch_conv.cuh): activations [C, N, H, W] ------
// The channel-major batch layout of ops/batch_conv.hpp: channel c is one contiguous row of
// M = N*H*W values, so a convolution is one GEMM over all samples and BatchNorm reduces rows.
// cols[g.patch(), g.columns()] = im2col of x[Cin, N, H, W] (core/op_params.hpp's ConvGeometry).
Status im2col_cnhw(const Stream& s, const ConvGeometry& g, const float* x, float* cols);
// dx[Cin, N, H, W] = the adjoint of im2col_cnhw applied to dcols[g.patch(), g.columns()]: each dx
// element is the sum of the dcols entries that read it, gathered in (ky, kx) order starting from 0.f,
// or from dx's value when accumulate (no atomics: deterministic).
Status col2im_cnhw(const Stream& s, const ConvGeometry& g, const float* dcols, bool accumulate, float* dx);
// y[j, i, p] = x[i, j, p] for x[A, B, P] (NCHW <-> CNHW, either way).
Status swap_leading_dims(const Stream& s, const float* x, i64 a, i64 b, i64 p, float* y);
// BatchNorm2d, training mode, over x[C, M] (channel c = row c). Per channel: mean and biased variance
// in double (two passes: sum, then squared deviations from the mean; fixed order), then
//   save_mean[c] = float(mean), save_rstd[c] = float(1 / sqrt(var + eps)),
//   running_mean[c] = (1 - momentum) * running_mean[c] + momentum * mean          (both f32 updates
//   running_var[c]  = (1 - momentum) * running_var[c]  + momentum * var * M / (M - 1)  computed in double)
//   (running_* null: not tracked), and y = act(fmaf(x - save_mean, scale, beta) [+ residual]) with
//   scale = float(double(gamma) * double(save_rstd)), the residual [C, M] added when non-null, act = ReLU
//   when relu. M >= 2 (the op checks). y must not alias x.
Status batch_norm_train(const Stream& s, const float* x, i64 channels, i64 m, const float* gamma, const float* beta,
                        double eps, double momentum, float* running_mean, float* running_var, float* save_mean,
                        float* save_rstd, const float* residual, bool relu, float* y);
// Eval mode: y = act(fmaf(x - float(running_mean), scale, beta) [+ residual]) with
// scale = float(double(gamma) / sqrt(double(running_var) + eps)).
Status batch_norm_eval(const Stream& s, const float* x, i64 channels, i64 m, const float* gamma, const float* beta,
                       const float* running_mean, const float* running_var, double eps, const float* residual,
                       bool relu, float* y);
// Backward of batch_norm_train. g = dy, masked by y > 0 when y is non-null (the forward's output
// after a fused ReLU). Per channel in double, fixed order: sg = sum g, sgx = sum g * (double(x) -
// double(save_mean)); r = double(save_rstd); then
//   dgamma[c] (+)= float(sgx * r), dbeta[c] (+)= float(sg)          (+= when accumulate)
//   dx = a * fmaf(-(x - save_mean), k, g - mg) with a = float(double(gamma) * r), mg = float(sg / M),
//        k = float(sgx * r * r / M)   (dx null: not computed)
//   dresidual = g (null: not written; it may alias dy).
Status batch_norm_backward(const Stream& s, const float* x, const float* y, const float* dy, i64 channels, i64 m,
                           const float* gamma, const float* save_mean, const float* save_rstd, float* dx,
                           float* dresidual, float* dgamma, float* dbeta, bool accumulate);
// y[N, C] = mean over P of x[C, N, P] (sum in a fixed order in double, then / P); backward:
// dx[c, n, p] = dy[n, c] / P (float division).
Status global_avg_pool_cnhw(const Stream& s, const float* x, i64 channels, i64 batch, i64 plane, float* y);
Status global_avg_pool_cnhw_backward(const Stream& s, const float* dy, i64 channels, i64 batch, i64 plane, float* dx);

// --- complex cells (impl/complex.cuh): the QCA state psi[H, W, d, 2] of one sample ---------------
// x[2d, P]: x[c] = Re psi[:, :, c], x[d + c] = Im psi[:, :, c].
Status complex_pack_planar(const Stream& s, const float* psi, i64 plane, i64 d, float* x);
// Per cell: m_c = (o[c] + b[c]) + i (o[d+c] + b[d+c]) (bias may be null); g = m psi (unitary) or m;
// psi1 = psi + g - gamma psi; psi = psi1 / (|psi1| + 1e-9), in place.
Status complex_cell_update(const Stream& s, const float* o, const float* bias, float* psi, i64 plane, i64 d,
                           bool unitary, float gamma);

}  // namespace ferrite::cuda::kernels
