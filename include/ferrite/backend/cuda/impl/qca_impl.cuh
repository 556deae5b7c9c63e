#pragma once
// Definitions of backend/cuda/qca.hpp (nvcc only; included by exactly one translation unit,
// src/cuda_qca.cu). The per-op entry points run on impl/qca_session.cuh's OpSession. This unit is
// the CUDA backend's one exception to the layer order: it includes ops/ and models/ (the QCA law and
// its CPU checks), so it is compiled with the C++ build's host flags (src/meson.build).
#if !defined(FERRITE_WITH_CUDA)
#error "ferrite/backend/cuda/impl/qca_impl.cuh needs FERRITE_WITH_CUDA defined (for the whole program)"
#endif

#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <map>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/impl/handles.cuh"
#include "ferrite/backend/cuda/impl/qca_kernels.cuh"
#include "ferrite/backend/cuda/impl/qca_plan.hpp"
#include "ferrite/backend/cuda/impl/qca_session.cuh"
#include "ferrite/backend/cuda/qca.hpp"
#include "ferrite/backend/devices.hpp"
#include "ferrite/ops/conv.hpp"
#include "ferrite/ops/pool.hpp"

namespace ferrite::cuda {

// ================================================================================================
// QcaStepper

struct QcaStepper::Impl {
  int device = 0;
  bool unitary = true;
  float gamma = 0.01f;
  Shape shape;
  std::int64_t batch = 0, d = 0, h = 0;
  bool graphs = true;
  bool warmed = false;  // one step has run eagerly (cuBLAS's kernels loaded) before any capture
  qca_plan::Layout layout;
  qca_plan::Weights weights;
  qca_plan::Buffers buffers;

  // Declared first, destroyed last: everything below is released after ~Impl synchronized it.
  detail::StreamHandle stream;
  detail::Blas blas;
  DeviceBuffer params;    // the law's tensors, each at a 64-float aligned offset
  DeviceBuffer arena;     // layout.floats: every activation buffer of one sample
  DeviceBuffer partials;  // layout.partial_doubles: GroupNorm partial sums
  DeviceBuffer psi;       // the state, f32 [B, H, W, d, 2]
  detail::GraphExec graph;

  ~Impl() {
    if (stream) (void)cudaStreamSynchronize(stream.get());
  }

  Status enqueue_step() {
    qca_kernels::DeviceExecutor ex{stream.get(), &blas, layout.partial_doubles};
    return qca_plan::step(ex, weights, buffers, unitary, gamma, psi.as<float>(), batch);
  }

  Status run_step() {
    cudaStream_t s = stream.get();
    if (!graphs || !warmed) {
      FE_TRY(enqueue_step());
      warmed = true;
      return ok_status();
    }
    if (!graph) {
      FE_TRY_ASSIGN(graph, detail::capture_graph(s, "qca step", [&] { return enqueue_step(); }));
    }
    return detail::check_cuda("cudaGraphLaunch(qca step)", cudaGraphLaunch(graph.get(), s));
  }

  Status check_host_state(const char* op, const Tensor& t) const {
    if (t.dtype() != DType::f32 || !t.device().is_cpu() || t.shape() != shape || (t.numel() > 0 && !t.raw_data()))
      return make_error(ErrorCode::shape_mismatch, op, "psi must be f32 on cpu of the stepper's shape " + shape.to_string(),
                        t.describe());
    return ok_status();
  }
};

QcaStepper::QcaStepper(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
QcaStepper::QcaStepper(QcaStepper&&) noexcept = default;
QcaStepper& QcaStepper::operator=(QcaStepper&&) noexcept = default;
QcaStepper::~QcaStepper() {
  if (impl_) {
    auto guard = detail::DeviceGuard::make(impl_->device);
    impl_.reset();
  }
}

Result<QcaStepper> QcaStepper::create(models::QcaUnet& law, models::QcaLaw kind, float gamma, const Shape& state_shape,
                                      const QcaStepperOptions& options) {
  static constexpr const char* kOp = "cuda::QcaStepper::create";
  FE_TRY(check_device(Device::cuda(options.device)));
  const std::int64_t d = law.d_state(), h = law.hidden();
  if (state_shape.rank() != 5 || state_shape[3] != d || state_shape[4] != 2 || state_shape[0] <= 0)
    return make_error(ErrorCode::shape_mismatch, kOp,
                      "the state must be [B, H, W, d_state = " + std::to_string(d) + ", 2] with B > 0",
                      state_shape.to_string());
  FE_TRY(models::check_qca_grid(state_shape[1], state_shape[2]));
  if (!std::isfinite(gamma))
    return make_error(ErrorCode::invalid_argument, kOp, "gamma must be finite, got " + std::to_string(gamma));

  FE_TRY_ASSIGN(auto guard, detail::DeviceGuard::make(options.device));  // outlives `impl` below
  auto impl = std::make_unique<Impl>();
  Impl& t = *impl;
  t.device = options.device;
  t.unitary = kind == models::QcaLaw::unet_unitary;
  t.gamma = gamma;
  t.shape = state_shape;
  t.batch = state_shape[0];
  t.d = d;
  t.h = h;
  t.graphs = options.cuda_graphs;
  t.layout = qca_plan::Layout::make(d, h, state_shape[1], state_shape[2],
                                    options.conv == GpuConv3x3::im2col     ? qca_plan::ConvScratch::im2col
                                    : options.conv == GpuConv3x3::winograd ? qca_plan::ConvScratch::winograd
                                                                           : qca_plan::ConvScratch::none);
  if (t.layout.floats > INT_MAX || state_shape.numel() > INT_MAX)
    return make_error(ErrorCode::unsupported, kOp,
                      "a " + std::to_string(state_shape[1]) + "x" + std::to_string(state_shape[2]) +
                          " grid needs a workspace of " + std::to_string(t.layout.floats) +
                          " floats, beyond the kernels' 32-bit indexing (" + std::to_string(INT_MAX) + ")",
                      state_shape.to_string());

  FE_TRY_ASSIGN(t.stream, detail::make_stream());
  FE_TRY_ASSIGN(t.blas, detail::Blas::create(t.device, t.stream.get(), options.allow_tf32));

  // Parameters: one upload of the law's tensors packed at aligned offsets, followed (Winograd) by the
  // transformed weights of the 3x3 convolutions, computed here once.
  const nn::ParameterList params = law.parameters();
  std::vector<std::int64_t> offsets;
  std::int64_t flat = 0;
  for (const auto& p : params) {
    offsets.push_back(flat);
    flat += detail::align_floats(p.value->numel());
  }
  std::vector<const float*> host_pointers;
  for (const auto& p : params) host_pointers.push_back(p.value->data<float>());
  FE_TRY_ASSIGN(qca_plan::Weights host_weights, qca_plan::bind_weights(host_pointers, d, h));
  const bool winograd = options.conv != GpuConv3x3::im2col;
  std::vector<std::pair<const float*, std::int64_t>> transforms;  // (host weight, offset), in for_each order
  if (winograd)
    qca_plan::for_each_conv3x3(host_weights, [&](const float* w, std::int64_t cout, std::int64_t cin, const float*&) {
      transforms.emplace_back(w, flat);
      flat += detail::align_floats(16 * cout * cin);
    });
  std::vector<float> host(static_cast<std::size_t>(flat), 0.f);
  for (std::size_t i = 0; i < params.size(); ++i)
    std::copy_n(params[i].value->data<float>(), params[i].value->numel(), host.begin() + offsets[i]);
  std::size_t next = 0;
  if (winograd)
    qca_plan::for_each_conv3x3(host_weights, [&](const float* w, std::int64_t cout, std::int64_t cin, const float*&) {
      qca_plan::winograd_weights(w, cout, cin, host.data() + transforms[next++].second);
    });
  FE_TRY_ASSIGN(t.params, DeviceBuffer::allocate(flat * std::int64_t{sizeof(float)}, t.device));
  FE_TRY(t.params.copy_from_host(host.data(), flat * std::int64_t{sizeof(float)}));
  std::vector<const float*> pointers;
  for (const std::int64_t offset : offsets) pointers.push_back(t.params.as<const float>() + offset);
  FE_TRY_ASSIGN(t.weights, qca_plan::bind_weights(pointers, d, h));
  t.weights.fused_winograd = options.conv == GpuConv3x3::winograd_fused;
  next = 0;
  if (winograd)
    qca_plan::for_each_conv3x3(t.weights, [&](const float*, std::int64_t, std::int64_t, const float*& slot) {
      slot = t.params.as<const float>() + transforms[next++].second;
    });

  FE_TRY_ASSIGN(t.arena, DeviceBuffer::allocate(t.layout.floats * std::int64_t{sizeof(float)}, t.device));
  FE_TRY_ASSIGN(t.partials, DeviceBuffer::allocate(t.layout.partial_doubles * std::int64_t{sizeof(double)}, t.device));
  FE_TRY_ASSIGN(t.psi, DeviceBuffer::allocate(state_shape.numel() * std::int64_t{sizeof(float)}, t.device));
  t.buffers = qca_plan::Buffers::bind(t.layout, d, h, t.arena.as<float>(), t.partials.as<double>());
  return QcaStepper(std::move(impl));
}

Status QcaStepper::upload_state(const Tensor& psi) {
  FE_TRY(impl_->check_host_state("cuda::QcaStepper::upload_state", psi));
  FE_TRY_ASSIGN(auto guard, detail::DeviceGuard::make(impl_->device));
  FE_TRY(synchronize());  // no step may still read the old state
  return impl_->psi.copy_from_host(psi.raw_data(), static_cast<std::int64_t>(psi.nbytes()));
}

Status QcaStepper::download_state(Tensor& psi) const {
  FE_TRY(impl_->check_host_state("cuda::QcaStepper::download_state", psi));
  FE_TRY_ASSIGN(auto guard, detail::DeviceGuard::make(impl_->device));
  FE_TRY(synchronize());
  return impl_->psi.copy_to_host(psi.raw_data(), static_cast<std::int64_t>(psi.nbytes()));
}

Status QcaStepper::step(std::int64_t steps) {
  if (steps < 0)
    return make_error(ErrorCode::invalid_argument, "cuda::QcaStepper::step", "steps must be >= 0, got " + std::to_string(steps));
  FE_TRY_ASSIGN(auto guard, detail::DeviceGuard::make(impl_->device));
  for (std::int64_t s = 0; s < steps; ++s) FE_TRY(impl_->run_step());
  return ok_status();
}

Status QcaStepper::synchronize() const {
  FE_TRY_ASSIGN(auto guard, detail::DeviceGuard::make(impl_->device));
  return detail::check_cuda("cudaStreamSynchronize(qca)", cudaStreamSynchronize(impl_->stream.get()));
}

Result<std::vector<QcaProfileEntry>> QcaStepper::profile(std::int64_t steps) {
  if (steps <= 0)
    return make_error(ErrorCode::invalid_argument, "cuda::QcaStepper::profile", "steps must be > 0, got " + std::to_string(steps));
  FE_TRY_ASSIGN(auto guard, detail::DeviceGuard::make(impl_->device));
  Impl& t = *impl_;
  qca_kernels::ProfilingExecutor ex{{t.stream.get(), &t.blas, t.layout.partial_doubles}, {}, {}, 0};
  std::map<std::string, QcaProfileEntry> by_op;
  int clock_khz = 0;
  FE_TRY(detail::check_cuda("cudaDeviceGetAttribute(clock rate)",
                            cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, t.device)));
  for (std::int64_t s = 0; s < steps; ++s) {
    ex.records.clear();
    ex.used = 0;
    // ~2 ms of spinning first: the step's launches queue up behind it, so the events measure the GPU.
    qca_kernels::spin_kernel<<<1, 1, 0, t.stream.get()>>>(2LL * std::max(clock_khz, 1000000));
    FE_TRY(detail::check_launch("qca spin_kernel"));
    FE_TRY(qca_plan::step(ex, t.weights, t.buffers, t.unitary, t.gamma, t.psi.as<float>(), t.batch));
    FE_TRY(synchronize());
    for (const auto& r : ex.records) {
      float ms = 0;
      FE_TRY(detail::check_cuda("cudaEventElapsedTime",
                                cudaEventElapsedTime(&ms, ex.events[r.start].get(), ex.events[r.start + 1].get())));
      QcaProfileEntry& e = by_op[r.op];  // sums over all steps; divided below
      e.op = r.op;
      e.ms_per_step += ms;
      e.calls_per_step += 1;
      e.flops_per_step += r.flops;
      e.bytes_per_step += r.bytes;
    }
  }
  std::vector<QcaProfileEntry> out;
  for (auto& [op, e] : by_op) {
    for (double* v : {&e.ms_per_step, &e.calls_per_step, &e.flops_per_step, &e.bytes_per_step}) *v /= double(steps);
    out.push_back(e);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.ms_per_step > b.ms_per_step; });
  return out;
}

const Shape& QcaStepper::state_shape() const noexcept { return impl_->shape; }
bool QcaStepper::graph_captured() const noexcept { return impl_ && impl_->graph; }
int QcaStepper::device() const noexcept { return impl_ ? impl_->device : 0; }
Result<MemoryStats> QcaStepper::memory_stats() const { return cuda::memory_stats(device()); }

// ================================================================================================
// Per-op entry points (host data in and out; see qca.hpp)

namespace ops {

namespace qca_detail {

Result<DeviceBuffer*> upload_chw(detail::OpSession& s, ChwView<const float> x) { return s.upload(x.data, x.numel()); }
ChwView<float> device_chw(const DeviceBuffer* b, const ChwView<const float>& like) {
  return {b->as<float>(), like.channels, like.height, like.width};
}
Result<DeviceBuffer*> upload_optional(detail::OpSession& s, TensorView<const float> t) {
  return s.upload(t.data, t.data ? t.numel() : 0);
}
const float* data_or_null(const DeviceBuffer* b, TensorView<const float> t) { return t.data ? b->as<const float>() : nullptr; }

}  // namespace qca_detail

using qca_detail::data_or_null;
using qca_detail::device_chw;
using qca_detail::upload_chw;
using qca_detail::upload_optional;

Status conv2d(ChwView<const float> x, TensorView<const float> weight, TensorView<const float> bias, ChwView<float> y,
              const GemmOptions& options, GpuConv3x3 algorithm) {
  FE_TRY(conv_detail::check_conv2d(x, weight.shape, bias, y));
  const std::int64_t k = weight.shape[2];
  if (k != 1 && k != 3)
    return make_error(ErrorCode::unsupported, "cuda::conv2d", "kernel size " + std::to_string(k) + " (the GPU runs 1 and 3)",
                      weight.shape.to_string());
  FE_TRY(qca_kernels::check_sizes("cuda::conv2d", std::max(x.numel() * k * k, y.numel()), k == 3 ? x.channels * 9 : 1));
  FE_TRY_ASSIGN(auto s, detail::OpSession::open(options.device));
  // Winograd: V[16][Cin][T] in `cols`, M[16][Cout][T], the transformed weights U[16][Cin][Cout] instead
  // of the raw weight (which only im2col and 1x1 read).
  const bool winograd = k == 3 && algorithm != GpuConv3x3::im2col;
  const bool fused = algorithm == GpuConv3x3::winograd_fused;
  FE_TRY_ASSIGN(auto dx, upload_chw(s, x));
  FE_TRY_ASSIGN(auto dw, s.upload(weight.data, winograd ? 0 : weight.numel()));
  FE_TRY_ASSIGN(auto db, upload_optional(s, bias));
  FE_TRY_ASSIGN(auto dy, s.alloc(y.numel() * std::int64_t{sizeof(float)}));
  qca_kernels::DeviceExecutor ex{s.stream(), &s.blas(), 0};
  const ChwView<float> yd = device_chw(dy, y);
  const std::int64_t tiles = qca_plan::winograd_tiles(x.height, x.width);
  const std::int64_t cols_floats = k != 3 ? 0 : winograd ? 16 * x.channels * tiles : 9 * x.numel();
  FE_TRY_ASSIGN(auto cols, s.alloc(fused ? 0 : cols_floats * std::int64_t{sizeof(float)}));
  FE_TRY_ASSIGN(auto m, s.alloc(winograd && !fused ? 16 * y.channels * tiles * std::int64_t{sizeof(float)} : 0));
  const float* u = nullptr;
  std::vector<float> host_u;
  if (winograd) {
    host_u.resize(static_cast<std::size_t>(16 * y.channels * x.channels));
    qca_plan::winograd_weights(weight.data, y.channels, x.channels, host_u.data());
    FE_TRY_ASSIGN(auto du, s.upload(host_u.data(), std::int64_t(host_u.size())));
    u = du->as<const float>();
  }
  FE_TRY(s.with_tf32(options.allow_tf32, [&] {
    return k == 3 ? qca_plan::conv3x3(ex, device_chw(dx, x), dw->as<const float>(), u, yd, cols->as<float>(),
                                      m->as<float>(), fused)
                  : ex.gemm(Trans::no, Trans::no, y.channels, x.plane(), x.channels, dw->as<const float>(), x.channels,
                            dx->as<const float>(), x.plane(), yd.data, y.plane());
  }));
  if (bias.data) FE_TRY(ex.channel_bias(yd, db->as<const float>()));
  FE_TRY(s.download(dy, y.data, y.numel()));
  return s.finish();
}

Status group_norm(ChwView<const float> x, std::int64_t groups, TensorView<const float> gamma,
                  TensorView<const float> beta, double eps, NormActivation act, ChwView<float> y, int device) {
  FE_TRY(check_group_norm("cuda::group_norm", x, groups, gamma, beta, y));
  FE_TRY_ASSIGN(auto s, detail::OpSession::open(device));
  FE_TRY_ASSIGN(auto dy, upload_chw(s, x));  // normalized in place on the device
  FE_TRY_ASSIGN(auto dg, upload_optional(s, gamma));
  FE_TRY_ASSIGN(auto db, upload_optional(s, beta));
  const std::int64_t partial_doubles = groups * qca_plan::group_chunks(x.channels / groups * x.plane()) * 2;
  FE_TRY_ASSIGN(auto dp, s.alloc(partial_doubles * std::int64_t{sizeof(double)}));
  qca_kernels::DeviceExecutor ex{s.stream(), &s.blas(), partial_doubles};
  FE_TRY(ex.group_norm(device_chw(dy, x), groups, data_or_null(dg, gamma), data_or_null(db, beta), eps,
                       act == NormActivation::elu, dp->as<double>()));
  FE_TRY(s.download(dy, y.data, y.numel()));
  return s.finish();
}

Status maxpool2x2(ChwView<const float> x, ChwView<float> y, int device) {
  FE_TRY(check_maxpool2x2("cuda::maxpool2x2", x, y));
  FE_TRY_ASSIGN(auto s, detail::OpSession::open(device));
  FE_TRY_ASSIGN(auto dx, upload_chw(s, x));
  FE_TRY_ASSIGN(auto dy, s.alloc(y.numel() * std::int64_t{sizeof(float)}));
  qca_kernels::DeviceExecutor ex{s.stream(), &s.blas(), 0};
  FE_TRY(ex.maxpool2x2(device_chw(dx, x), {dy->as<float>(), y.channels, y.height, y.width}));
  FE_TRY(s.download(dy, y.data, y.numel()));
  return s.finish();
}

Status conv_transpose2d_k2s2(ChwView<const float> x, TensorView<const float> weight, TensorView<const float> bias,
                             ChwView<float> y, const GemmOptions& options) {
  FE_TRY(check_conv_transpose2d_k2s2("cuda::conv_transpose2d_k2s2", x, weight, bias, y));
  FE_TRY_ASSIGN(auto s, detail::OpSession::open(options.device));
  FE_TRY_ASSIGN(auto dx, upload_chw(s, x));
  FE_TRY_ASSIGN(auto dw, s.upload(weight.data, weight.numel()));
  FE_TRY_ASSIGN(auto db, upload_optional(s, bias));
  FE_TRY_ASSIGN(auto taps, s.alloc(y.numel() * std::int64_t{sizeof(float)}));
  FE_TRY_ASSIGN(auto dy, s.alloc(y.numel() * std::int64_t{sizeof(float)}));
  qca_kernels::DeviceExecutor ex{s.stream(), &s.blas(), 0};
  FE_TRY(s.with_tf32(options.allow_tf32, [&] {
    return qca_plan::conv_transpose(ex, device_chw(dx, x), dw->as<const float>(), data_or_null(db, bias),
                                    {dy->as<float>(), y.channels, y.height, y.width}, taps->as<float>());
  }));
  FE_TRY(s.download(dy, y.data, y.numel()));
  return s.finish();
}

Status qca_pack_planar(const Tensor& psi, std::int64_t b, ChwView<float> x, int device) {
  FE_TRY(models::check_qca_state(psi, psi.shape().rank() == 5 ? psi.dim(3) : 0, "cuda::qca_pack_planar"));
  const std::int64_t d = psi.dim(3), H = psi.dim(1), W = psi.dim(2), sample = H * W * d * 2;
  if (b < 0 || b >= psi.dim(0) || x.channels != 2 * d || x.height != H || x.width != W)
    return make_error(ErrorCode::shape_mismatch, "cuda::qca_pack_planar",
                      "sample " + std::to_string(b) + " into x [2d, H, W]", psi.describe() + " -> " + x.shape().to_string());
  FE_TRY_ASSIGN(auto s, detail::OpSession::open(device));
  FE_TRY_ASSIGN(auto dpsi, s.upload(psi.data<float>() + b * sample, sample));
  FE_TRY_ASSIGN(auto dx, s.alloc(x.numel() * std::int64_t{sizeof(float)}));
  qca_kernels::DeviceExecutor ex{s.stream(), &s.blas(), 0};
  FE_TRY(ex.pack(dpsi->as<const float>(), d, {dx->as<float>(), x.channels, H, W}));
  FE_TRY(s.download(dx, x.data, x.numel()));
  return s.finish();
}

Status qca_update_cells(ChwView<const float> o, TensorView<const float> bias, models::QcaLaw law, float gamma,
                        Tensor& psi, std::int64_t b, int device) {
  FE_TRY(models::check_qca_state(psi, psi.shape().rank() == 5 ? psi.dim(3) : 0, "cuda::qca_update_cells"));
  const std::int64_t d = psi.dim(3), H = psi.dim(1), W = psi.dim(2), sample = H * W * d * 2;
  if (b < 0 || b >= psi.dim(0) || o.channels != 2 * d || o.height != H || o.width != W ||
      (bias.data && bias.shape != Shape{2 * d}))
    return make_error(ErrorCode::shape_mismatch, "cuda::qca_update_cells",
                      "sample " + std::to_string(b) + " from o [2d, H, W] and bias [2d]",
                      psi.describe() + ", o" + o.shape().to_string() + (bias.data ? ", bias" + bias.shape.to_string() : ""));
  FE_TRY_ASSIGN(auto s, detail::OpSession::open(device));
  FE_TRY_ASSIGN(auto dpsi, s.upload(psi.data<float>() + b * sample, sample));
  FE_TRY_ASSIGN(auto d_o, upload_chw(s, o));
  std::vector<float> zeros;
  if (!bias.data) zeros.assign(static_cast<std::size_t>(2 * d), 0.f);
  FE_TRY_ASSIGN(auto dbias, s.upload(bias.data ? bias.data : zeros.data(), 2 * d));
  qca_kernels::DeviceExecutor ex{s.stream(), &s.blas(), 0};
  FE_TRY(ex.update(device_chw(d_o, o), dbias->as<const float>(), law == models::QcaLaw::unet_unitary, gamma,
                   dpsi->as<float>(), d));
  FE_TRY(s.download(dpsi, psi.data<float>() + b * sample, sample));
  return s.finish();
}

}  // namespace ops

}  // namespace ferrite::cuda
