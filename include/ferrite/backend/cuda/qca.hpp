#pragma once
// The QCA step (models/qca.hpp, shared/specs/qca-step.md) on one GPU. No CUDA types here.
//
//   auto stepper = cuda::QcaStepper::create(law, models::QcaLaw::unet_unitary, 0.01f, psi.shape()).value();
//   FE_TRY(stepper.upload_state(psi));
//   FE_TRY(stepper.step(100));            // enqueued; one CUDA graph launch per step
//   FE_TRY(stepper.download_state(psi));  // waits for the steps
//
// What runs (backend/cuda/impl/qca_plan.hpp, one sequence shared with a host emulation that the
// tests check against the CPU model and PyTorch; kernels in impl/qca_kernels.cuh):
//   pack       X[2d, H*W] from psi [H, W, d, 2]                                        (kernel)
//   conv 3x3   Winograd F(2x2, 3x3): input transform, 16 batched SGEMMs with the weights transformed
//              once by create(), output transform             (kernel + cublasSgemmStridedBatched + kernel)
//              or all three in one kernel (winograd_fused), or im2col + one SGEMM (GpuConv3x3 below)
//   GroupNorm  partial sums per chunk of a group (double), then normalize + ELU     (two kernels)
//   maxpool    2x2                                                                   (kernel)
//   convT k2s2 taps = W^T X (cuBLAS), scattered with the bias into the concat buffer's channels (kernel)
//   outc       O = W[2d, h] c2 (cuBLAS); its bias is added by the update
//   update     per cell: product / addition, decay, renormalization                 (kernel)
// The skip connections cost nothing: producers write into channel slices of the concat buffers.
// The law's weights, the state and one workspace arena are allocated once by create(); a step
// allocates nothing, so it is captured into a CUDA graph (after one eager step that loads cuBLAS's
// kernels) and replayed. TF32 off by default (full FP32 products); allow_tf32 for labelled runs.
//
// The per-op entry points below (cuda::ops::conv2d, group_norm, ...) take host data, upload, run the
// same kernels, download and synchronize: they exist so that each kernel can be checked against its
// CPU oracle (tests/backend/cuda/test_cuda_qca.cpp); they are not a fast path.
//
// Definitions: impl/qca_impl.cuh, compiled as src/cuda_qca.cu into the library ferrite_cuda. QCA is
// not on the op layer yet: this header and its unit are the CUDA backend's one exception to the layer
// order (they include models/ and ops/), until QCA is migrated.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ferrite/backend/cuda/memory.hpp"
#include "ferrite/backend/cuda/runtime.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/core/view.hpp"
#include "ferrite/models/qca.hpp"
#include "ferrite/core/chw.hpp"
#include "ferrite/ops/conv.hpp"
#include "ferrite/ops/norm.hpp"

namespace ferrite::cuda {

// How the GPU runs a 3x3 convolution (the QCA U-Net's 12 of them).
enum class GpuConv3x3 {
  winograd,        // F(2x2, 3x3): input-transform kernel, 16 batched SGEMMs (cuBLAS), output-transform kernel
  winograd_fused,  // the same arithmetic in one hand-written kernel, V and M in shared memory (experimental)
  im2col,          // im2col kernel + one SGEMM (cuBLAS): the simple reference path
};

inline const char* to_string(GpuConv3x3 c) {
  return c == GpuConv3x3::winograd ? "winograd" : c == GpuConv3x3::winograd_fused ? "winograd-fused" : "im2col";
}
inline Result<GpuConv3x3> parse_gpu_conv3x3(std::string_view name) {
  for (auto c : {GpuConv3x3::winograd, GpuConv3x3::winograd_fused, GpuConv3x3::im2col})
    if (name == to_string(c)) return c;
  return make_error(ErrorCode::invalid_argument, "parse_gpu_conv3x3",
                    "unknown 3x3 convolution '" + std::string(name) + "' (expected winograd, winograd-fused or im2col)");
}

struct QcaStepperOptions {
  int device = 0;            // cuda:device
  bool cuda_graphs = true;   // replay one captured graph per step (~70 launches otherwise)
  bool allow_tf32 = false;   // TF32 tensor cores in the SGEMMs: faster, ~1e-3 relative products
  // Winograd F(2x2, 3x3) by default: 2.25x fewer multiplications and 4/9 of im2col's memory traffic.
  GpuConv3x3 conv = GpuConv3x3::winograd;
};

// One kind of operation of the step, timed by QcaStepper::profile: GPU time per step (CUDA events around
// every launch, the step queued behind a spinning kernel so the events follow the GPU), launches per step,
// and the work it did (FLOPs of the GEMMs and of the fused Winograd kernel; nominal bytes read + written by
// the memory-bound kernels), from which achieved GFLOP/s or GB/s follow.
struct QcaProfileEntry {
  std::string op;            // "sgemm", "sgemm_batched", "winograd_input", "group_norm_elu", ...
  double ms_per_step = 0;
  double calls_per_step = 0;
  double flops_per_step = 0;  // 2 per multiply-add of the products
  double bytes_per_step = 0;  // memory-bound kernels only (nominal: each input read once, each output written once)
};

class QcaStepper {
 public:
  // Copies the law's parameters to GPU `options.device` and allocates the state, f32 state_shape =
  // [B, H, W, d, 2] (H, W multiples of 4, d the law's d_state), and the workspace.
  static Result<QcaStepper> create(models::QcaUnet& law, models::QcaLaw kind, float gamma, const Shape& state_shape,
                                   const QcaStepperOptions& options = {});

  QcaStepper(QcaStepper&&) noexcept;
  QcaStepper& operator=(QcaStepper&&) noexcept;
  QcaStepper(const QcaStepper&) = delete;
  QcaStepper& operator=(const QcaStepper&) = delete;
  ~QcaStepper();

  // (A moved-from stepper may only be destroyed or assigned to.)
  // psi: f32 on the CPU of the state's shape. upload waits for pending steps first; download waits
  // for them to finish.
  Status upload_state(const Tensor& psi);
  Status download_state(Tensor& psi) const;
  // Enqueues `steps` steps (returns before they finish; errors of the launches are reported here,
  // faults inside kernels at the next synchronizing call).
  Status step(std::int64_t steps = 1);
  Status synchronize() const;
  // Runs `steps` steps eagerly (no graph) with an event pair around every launch and returns the time per
  // step of each kind of operation, largest first. Advances the state like step(). The per-launch events
  // add gaps, so the sum exceeds a graph step's time: use it for the breakdown, bench timings for speed.
  Result<std::vector<QcaProfileEntry>> profile(std::int64_t steps);

  const Shape& state_shape() const noexcept;
  bool graph_captured() const noexcept;      // a CUDA graph of the step exists and is replayed
  int device() const noexcept;
  Result<MemoryStats> memory_stats() const;  // of the stepper's GPU (all of ferrite's allocations)

 private:
  struct Impl;
  explicit QcaStepper(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

namespace ops {

// Device and TF32 setting of the per-op entry points that run SGEMMs.
struct GemmOptions {
  int device = 0;
  bool allow_tf32 = false;  // off: full FP32 products, as the CPU (CUBLAS_DEFAULT_MATH)
};

#if defined(FERRITE_WITH_CUDA)
// conv2d of ops/conv.hpp on the GPU for k = 3 (by `algorithm`) and k = 1 (SGEMM); bias optional.
Status conv2d(ChwView<const float> x, TensorView<const float> weight, TensorView<const float> bias, ChwView<float> y,
              const GemmOptions& options = {}, GpuConv3x3 algorithm = GpuConv3x3::winograd);
// group_norm of ops/norm.hpp (y may be x).
Status group_norm(ChwView<const float> x, std::int64_t groups, TensorView<const float> gamma,
                  TensorView<const float> beta, double eps, NormActivation act, ChwView<float> y, int device = 0);
Status maxpool2x2(ChwView<const float> x, ChwView<float> y, int device = 0);
Status conv_transpose2d_k2s2(ChwView<const float> x, TensorView<const float> weight, TensorView<const float> bias,
                             ChwView<float> y, const GemmOptions& options = {});
// models::qca_pack_planar and the fused per-cell update of sample b. The update takes the law's
// output without outc's bias, and the bias ([2d] or {}), as the stepper runs it.
Status qca_pack_planar(const Tensor& psi, std::int64_t b, ChwView<float> x, int device = 0);
Status qca_update_cells(ChwView<const float> o, TensorView<const float> bias, models::QcaLaw law, float gamma,
                        Tensor& psi, std::int64_t b, int device = 0);
#else
inline Status conv2d(ChwView<const float>, TensorView<const float>, TensorView<const float>, ChwView<float>,
                     const GemmOptions& options = {}, GpuConv3x3 = GpuConv3x3::winograd) {
  return detail::no_cuda_backend("cuda::conv2d", options.device);
}
inline Status group_norm(ChwView<const float>, std::int64_t, TensorView<const float>, TensorView<const float>, double,
                         NormActivation, ChwView<float>, int device = 0) {
  return detail::no_cuda_backend("cuda::group_norm", device);
}
inline Status maxpool2x2(ChwView<const float>, ChwView<float>, int device = 0) {
  return detail::no_cuda_backend("cuda::maxpool2x2", device);
}
inline Status conv_transpose2d_k2s2(ChwView<const float>, TensorView<const float>, TensorView<const float>,
                                    ChwView<float>, const GemmOptions& options = {}) {
  return detail::no_cuda_backend("cuda::conv_transpose2d_k2s2", options.device);
}
inline Status qca_pack_planar(const Tensor&, std::int64_t, ChwView<float>, int device = 0) {
  return detail::no_cuda_backend("cuda::qca_pack_planar", device);
}
inline Status qca_update_cells(ChwView<const float>, TensorView<const float>, models::QcaLaw, float, Tensor&,
                               std::int64_t, int device = 0) {
  return detail::no_cuda_backend("cuda::qca_update_cells", device);
}
#endif

}  // namespace ops

#if !defined(FERRITE_WITH_CUDA)
// A build without CUDA: create() says so (device_unavailable, naming the available devices).
struct QcaStepper::Impl {};
inline Result<QcaStepper> QcaStepper::create(models::QcaUnet&, models::QcaLaw, float, const Shape&,
                                             const QcaStepperOptions& options) {
  return detail::no_cuda_backend("cuda::QcaStepper::create", options.device);
}
inline QcaStepper::QcaStepper(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
inline QcaStepper::QcaStepper(QcaStepper&&) noexcept = default;
inline QcaStepper& QcaStepper::operator=(QcaStepper&&) noexcept = default;
inline QcaStepper::~QcaStepper() = default;
inline Status QcaStepper::upload_state(const Tensor&) { return detail::no_cuda_backend("cuda::QcaStepper", 0); }
inline Status QcaStepper::download_state(Tensor&) const { return detail::no_cuda_backend("cuda::QcaStepper", 0); }
inline Status QcaStepper::step(std::int64_t) { return detail::no_cuda_backend("cuda::QcaStepper", 0); }
inline Status QcaStepper::synchronize() const { return detail::no_cuda_backend("cuda::QcaStepper", 0); }
inline Result<std::vector<QcaProfileEntry>> QcaStepper::profile(std::int64_t) {
  return detail::no_cuda_backend("cuda::QcaStepper", 0);
}
inline const Shape& QcaStepper::state_shape() const noexcept {
  static const Shape empty;
  return empty;
}
inline bool QcaStepper::graph_captured() const noexcept { return false; }
inline int QcaStepper::device() const noexcept { return 0; }
inline Result<MemoryStats> QcaStepper::memory_stats() const { return detail::no_cuda_backend("cuda::QcaStepper", 0); }
#endif

}  // namespace ferrite::cuda
