#pragma once
// The QCA step's CUDA kernels and DeviceExecutor, the GPU executor of impl/qca_plan.hpp (nvcc only;
// part of the QCA unit, src/cuda_qca.cu). Every kernel evaluates one of the plan's per-element
// functions, so the arithmetic is the one the host emulation checks against the CPU model and PyTorch
// (tests/backend/cuda/test_qca_plan.cpp); suite `cuda` checks each launch against the CPU oracles on
// a GPU (tests/backend/cuda/test_cuda_qca.cpp).
//
// Launch shapes: per-channel kernels use grid (ceil(plane / 256), channels) so that a thread's
// channel comes from blockIdx.y (no 64-bit division per element) and a warp reads or writes 32
// consecutive pixels of one plane. Indices are 32-bit: QcaStepper refuses layouts whose arena holds
// more than INT_MAX floats; the op-level entry points check their tensors likewise.
//
// GroupNorm: one block per (chunk of kGroupChunk floats, group) writes (sum, sum of squares) in
// double through a fixed shared-memory tree; the apply kernel's thread 0 of each block combines the
// group's partials in chunk order. No atomics: results are deterministic for given sizes.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/impl/handles.cuh"
#include "ferrite/backend/cuda/impl/qca_plan.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/core/chw.hpp"

namespace ferrite::cuda::qca_kernels {

using i64 = std::int64_t;
namespace plan = qca_plan;

inline constexpr int kThreads = 256;        // a power of two (the partial-sum tree halves it)
inline constexpr int kMaxGridY = 65535;     // CUDA's limit on gridDim.y
inline constexpr unsigned kMaxApplyBlocks = 64;  // per channel: the grid-stride loop covers the rest

inline unsigned blocks_for(i64 n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

// x[c, p] = psi[p, c mod d, c / d]: grid (ceil(P / 256), 2d).
__global__ void pack_kernel(const float* __restrict__ psi, int d, int plane, float* __restrict__ x) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x, c = blockIdx.y;
  if (p < plane) x[i64(c) * plane + p] = plan::pack_value(psi, d, c, p);
}

// cols[row, p], row = ci*9 + ky*3 + kx: grid (ceil(P / 256), Cin*9).
__global__ void im2col3x3_kernel(const float* __restrict__ x, int height, int width, float* __restrict__ cols) {
  const int plane = height * width, p = blockIdx.x * blockDim.x + threadIdx.x, row = blockIdx.y;
  if (p < plane) cols[i64(row) * plane + p] = plan::im2col3x3_value(x, height, width, row, p);
}

// Winograd input transform: v[xi][ci][t] for tile t of channel ci: grid (ceil(T / 256), Cin).
__global__ void winograd_input_kernel(const float* __restrict__ x, int height, int width, int tiles,
                                      float* __restrict__ v) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x, ci = blockIdx.y;
  if (t >= tiles) return;
  float tile[16];
  plan::winograd_input_tile(x, height, width, ci, t, tile);
  const i64 slab = i64(gridDim.y) * tiles;
#pragma unroll
  for (int xi = 0; xi < 16; ++xi) v[xi * slab + i64(ci) * tiles + t] = tile[xi];
}

// Winograd output transform: the 2x2 outputs of tile t of channel co from m[xi][co][t]: grid (ceil(T / 256), Cout).
__global__ void winograd_output_kernel(const float* __restrict__ m, int height, int width, int tiles,
                                       float* __restrict__ y) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x, co = blockIdx.y;
  if (t >= tiles) return;
  plan::winograd_output_tile(m, int(gridDim.y) * tiles, tiles, co, t, height, width, y + i64(co) * height * width);
}

// Fused Winograd 3x3 convolution (qca_plan.hpp, "fused Winograd"): grid (ceil(T / 32), ceil(Cout / 16)),
// 256 threads; V and M stay in shared memory.
__global__ void __launch_bounds__(plan::kFusedThreads)
winograd_fused_kernel(const float* __restrict__ x, const float* __restrict__ u, int cin, int cout, int height, int width,
                      int tiles, float* __restrict__ y) {
  __shared__ float smem[plan::kFusedSmem];
  const int tid = threadIdx.x, t0 = blockIdx.x * plan::kFusedTiles, co0 = blockIdx.y * plan::kFusedCout;
  float acc[32];
#pragma unroll
  for (int i = 0; i < 32; ++i) acc[i] = 0.f;
  for (int k0 = 0; k0 < cin; k0 += plan::kFusedK) {
    plan::fused_load(x, u, cin, cout, height, width, tiles, t0, co0, k0, tid, smem, smem + plan::kFusedVs);
    __syncthreads();
    plan::fused_accumulate(tid, smem, smem + plan::kFusedVs, acc);
    __syncthreads();  // before the next chunk (or the accumulators) overwrite Vs / Us
  }
  plan::fused_store(tid, acc, smem);
  __syncthreads();
  plan::fused_output(tid, smem, cout, height, width, tiles, t0, co0, y);
}

// Keeps the stream busy for about `cycles` clock cycles: QcaStepper::profile queues a step behind it, so
// that the events around each launch are stamped by the GPU's progress, not by the host's enqueueing.
__global__ void spin_kernel(long long cycles) {
  const long long start = clock64();
  while (clock64() - start < cycles) {
  }
}

// partials[(g * chunks + k) * 2 + {0, 1}] = (sum, sum of squares) of chunk k of group g: grid (chunks, groups).
__global__ void group_partials_kernel(const float* __restrict__ y, int group_floats, int chunks,
                                      double* __restrict__ partials) {
  __shared__ double s_sum[kThreads], s_sq[kThreads];
  const int k = blockIdx.x, g = blockIdx.y, t = threadIdx.x;
  const float* base = y + i64(g) * group_floats;
  const int begin = k * int(plan::kGroupChunk);
  const int end = min(group_floats, begin + int(plan::kGroupChunk));
  double s = 0, q = 0;
  for (int i = begin + t; i < end; i += kThreads) {
    const double v = base[i];
    s += v;
    q += v * v;
  }
  s_sum[t] = s;
  s_sq[t] = q;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half >>= 1) {
    if (t < half) {
      s_sum[t] += s_sum[t + half];
      s_sq[t] += s_sq[t + half];
    }
    __syncthreads();
  }
  if (t == 0) {
    partials[(i64(g) * chunks + k) * 2] = s_sum[0];
    partials[(i64(g) * chunks + k) * 2 + 1] = s_sq[0];
  }
}

// y[c, :] = act((y - mean_g) * rstd_g * gamma[c] + beta[c]) in place: grid (<= 64, C).
__global__ void group_apply_kernel(float* __restrict__ y, int plane, int per_group, int chunks, double count,
                                   double eps, const double* __restrict__ partials, const float* __restrict__ gamma,
                                   const float* __restrict__ beta, bool elu) {
  __shared__ float s_mean, s_scale, s_shift;
  const int c = blockIdx.y;
  if (threadIdx.x == 0) {
    const plan::GroupStats st = plan::group_stats(partials + i64(c / per_group) * chunks * 2, chunks, count, eps);
    s_mean = st.mean;
    s_scale = plan::norm_scale(st, gamma, c);
    s_shift = beta ? beta[c] : 0.f;
  }
  __syncthreads();
  float* row = y + i64(c) * plane;
  const float mean = s_mean, scale = s_scale, shift = s_shift;
  for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < plane; p += gridDim.x * blockDim.x)
    row[p] = plan::norm_value(row[p], mean, scale, shift, elu);
}

// y[c, oy, ox] = max of the 2x2 window: grid (ceil(Ho*Wo / 256), C).
__global__ void maxpool2x2_kernel(const float* __restrict__ x, int height, int width, float* __restrict__ y,
                                  int out_height, int out_width) {
  const int q = blockIdx.x * blockDim.x + threadIdx.x, c = blockIdx.y;
  if (q >= out_height * out_width) return;
  const int oy = q / out_width, ox = q - oy * out_width;
  y[i64(c) * out_height * out_width + q] = plan::maxpool2x2_value(x, height, width, c, oy, ox);
}

// y[co, oy, ox] = taps[co*4 + (oy&1)*2 + (ox&1), (oy/2)*W + ox/2] + bias[co]: grid (ceil(4HW / 256), Cout).
__global__ void conv_t_scatter_kernel(const float* __restrict__ taps, const float* __restrict__ bias, int in_height,
                                      int in_width, float* __restrict__ y) {
  const int out_width = 2 * in_width, out_plane = 4 * in_height * in_width;
  const int q = blockIdx.x * blockDim.x + threadIdx.x, c = blockIdx.y;
  if (q >= out_plane) return;
  const int oy = q / out_width, ox = q - oy * out_width;
  y[i64(c) * out_plane + q] = plan::conv_t_value(taps, bias, in_height, in_width, c, oy, ox);
}

// y[c, :] += bias[c]: grid (ceil(P / 256), C).
__global__ void channel_bias_kernel(float* __restrict__ y, int plane, const float* __restrict__ bias) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x, c = blockIdx.y;
  if (p < plane) y[i64(c) * plane + p] += bias[c];
}

// The per-cell update of every cell of one sample: one thread per cell.
__global__ void update_kernel(const float* __restrict__ o, const float* __restrict__ bias, int plane, int d,
                              bool unitary, float gamma, float* __restrict__ psi) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p < plane) plan::update_cell(o, bias, plane, d, unitary, gamma, psi + i64(p) * d * 2, p);
}

// ---------------------------------------------------------------------------------------------
// Size guards of the launchers: 32-bit element indices and gridDim.y.
inline Status check_sizes(const char* op, i64 elements, i64 grid_y) {
  if (elements > INT_MAX || grid_y > kMaxGridY)
    return make_error(ErrorCode::unsupported, op,
                      "too large for the CUDA kernels' 32-bit indexing: " + std::to_string(elements) +
                          " elements (max " + std::to_string(INT_MAX) + "), " + std::to_string(grid_y) +
                          " rows of blocks (max " + std::to_string(kMaxGridY) + ")");
  return ok_status();
}

// Runs the plan's operations on `stream` (captured when the stream is capturing).
struct DeviceExecutor {
  cudaStream_t stream = nullptr;
  const detail::Blas* blas = nullptr;
  i64 partial_capacity = 0;  // doubles at the partials pointer the plan passes

  Status pack(const float* psi, i64 d, ChwView<float> x) {
    FE_TRY(check_sizes("qca pack", x.numel(), 2 * d));
    if (x.numel() == 0) return ok_status();
    pack_kernel<<<dim3(blocks_for(x.plane()), unsigned(2 * d)), kThreads, 0, stream>>>(psi, int(d), int(x.plane()),
                                                                                         x.data);
    return detail::check_launch("qca pack_kernel");
  }

  Status im2col3x3(ChwView<const float> x, float* cols) {
    FE_TRY(check_sizes("qca im2col3x3", x.numel() * 9, x.channels * 9));
    if (x.numel() == 0) return ok_status();
    im2col3x3_kernel<<<dim3(blocks_for(x.plane()), unsigned(x.channels * 9)), kThreads, 0, stream>>>(
        x.data, int(x.height), int(x.width), cols);
    return detail::check_launch("qca im2col3x3_kernel");
  }

  Status gemm(Trans ta, Trans tb, i64 m, i64 n, i64 k, const float* a, i64 lda, const float* b, i64 ldb, float* c,
              i64 ldc) {
    return detail::sgemm(*blas, ta, tb, m, n, k, 1.f, a, lda, b, ldb, 0.f, c, ldc);
  }

  Status gemm_batched(Trans ta, i64 m, i64 n, i64 k, const float* a, i64 lda, i64 stride_a, const float* b, i64 ldb,
                      i64 stride_b, float* c, i64 ldc, i64 stride_c, i64 batch) {
    return detail::sgemm_strided_batched(*blas, ta, Trans::no, m, n, k, a, lda, stride_a, b, ldb, stride_b, c, ldc,
                                         stride_c, batch);
  }

  Status winograd_input(ChwView<const float> x, float* v) {
    const i64 tiles = plan::winograd_tiles(x.height, x.width);
    FE_TRY(check_sizes("qca winograd_input", std::max(16 * x.channels * tiles, x.numel()), x.channels));
    if (x.numel() == 0) return ok_status();
    winograd_input_kernel<<<dim3(blocks_for(tiles), unsigned(x.channels)), kThreads, 0, stream>>>(
        x.data, int(x.height), int(x.width), int(tiles), v);
    return detail::check_launch("qca winograd_input_kernel");
  }

  Status winograd_output(const float* m, ChwView<float> y) {
    const i64 tiles = plan::winograd_tiles(y.height, y.width);
    FE_TRY(check_sizes("qca winograd_output", std::max(16 * y.channels * tiles, y.numel()), y.channels));
    if (y.numel() == 0) return ok_status();
    winograd_output_kernel<<<dim3(blocks_for(tiles), unsigned(y.channels)), kThreads, 0, stream>>>(
        m, int(y.height), int(y.width), int(tiles), y.data);
    return detail::check_launch("qca winograd_output_kernel");
  }

  Status winograd_fused(ChwView<const float> x, const float* u, ChwView<float> y) {
    const i64 tiles = plan::winograd_tiles(x.height, x.width);
    FE_TRY(check_sizes("qca winograd_fused", std::max({x.numel(), y.numel(), 16 * y.channels * x.channels}),
                       (y.channels + plan::kFusedCout - 1) / plan::kFusedCout));
    if (y.numel() == 0) return ok_status();
    const dim3 grid(unsigned((tiles + plan::kFusedTiles - 1) / plan::kFusedTiles),
                    unsigned((y.channels + plan::kFusedCout - 1) / plan::kFusedCout));
    winograd_fused_kernel<<<grid, plan::kFusedThreads, 0, stream>>>(x.data, u, int(x.channels), int(y.channels),
                                                                      int(x.height), int(x.width), int(tiles), y.data);
    return detail::check_launch("qca winograd_fused_kernel");
  }

  Status group_norm(ChwView<float> y, i64 groups, const float* gamma, const float* beta, double eps, bool elu,
                    double* partials) {
    const i64 per_group = y.channels / groups, group_floats = per_group * y.plane();
    const i64 chunks = plan::group_chunks(group_floats);
    FE_TRY(check_sizes("qca group_norm", y.numel(), std::max(groups, y.channels)));
    if (groups * chunks * 2 > partial_capacity)
      return make_error(ErrorCode::internal, "qca group_norm",
                        std::to_string(groups * chunks * 2) + " partial sums exceed the workspace's " +
                            std::to_string(partial_capacity));
    if (y.numel() == 0) return ok_status();
    group_partials_kernel<<<dim3(unsigned(chunks), unsigned(groups)), kThreads, 0, stream>>>(
        y.data, int(group_floats), int(chunks), partials);
    FE_TRY(detail::check_launch("qca group_partials_kernel"));
    const unsigned apply_blocks = std::min(blocks_for(y.plane()), kMaxApplyBlocks);
    group_apply_kernel<<<dim3(apply_blocks, unsigned(y.channels)), kThreads, 0, stream>>>(
        y.data, int(y.plane()), int(per_group), int(chunks), double(group_floats), eps, partials, gamma, beta, elu);
    return detail::check_launch("qca group_apply_kernel");
  }
  Status group_norm_elu(ChwView<float> y, i64 groups, const float* gamma, const float* beta, double* partials) {
    return group_norm(y, groups, gamma, beta, plan::kNormEps, true, partials);
  }

  Status maxpool2x2(ChwView<const float> x, ChwView<float> y) {
    FE_TRY(check_sizes("qca maxpool2x2", x.numel(), x.channels));
    if (y.numel() == 0) return ok_status();
    maxpool2x2_kernel<<<dim3(blocks_for(y.plane()), unsigned(y.channels)), kThreads, 0, stream>>>(
        x.data, int(x.height), int(x.width), y.data, int(y.height), int(y.width));
    return detail::check_launch("qca maxpool2x2_kernel");
  }

  Status conv_t_scatter(const float* taps, const float* bias, ChwView<float> y) {
    FE_TRY(check_sizes("qca conv_transpose", y.numel(), y.channels));
    if (y.numel() == 0) return ok_status();
    conv_t_scatter_kernel<<<dim3(blocks_for(y.plane()), unsigned(y.channels)), kThreads, 0, stream>>>(
        taps, bias, int(y.height / 2), int(y.width / 2), y.data);
    return detail::check_launch("qca conv_t_scatter_kernel");
  }

  Status channel_bias(ChwView<float> y, const float* bias) {
    FE_TRY(check_sizes("qca channel_bias", y.numel(), y.channels));
    if (y.numel() == 0) return ok_status();
    channel_bias_kernel<<<dim3(blocks_for(y.plane()), unsigned(y.channels)), kThreads, 0, stream>>>(
        y.data, int(y.plane()), bias);
    return detail::check_launch("qca channel_bias_kernel");
  }

  Status update(ChwView<const float> o, const float* bias, bool unitary, float gamma, float* psi, i64 d) {
    FE_TRY(check_sizes("qca update", o.numel(), 1));
    if (o.plane() == 0) return ok_status();
    update_kernel<<<blocks_for(o.plane()), kThreads, 0, stream>>>(o.data, bias, int(o.plane()), int(d), unitary, gamma,
                                                                   psi);
    return detail::check_launch("qca update_kernel");
  }
};

// DeviceExecutor with an event pair around every operation: the per-kind breakdown of
// QcaStepper::profile. Eager only (events of a captured graph would time nothing useful).
struct ProfilingExecutor {
  DeviceExecutor inner;
  struct Record {
    const char* op;
    double flops, bytes;
    std::size_t start;  // index of its first event in `events`
  };
  std::vector<detail::Event> events;
  std::vector<Record> records;
  std::size_t used = 0;  // events used in this round

  Result<cudaEvent_t> next_event() {
    if (used == events.size()) {
      FE_TRY_ASSIGN(events.emplace_back(), detail::make_event());
    }
    return events[used++].get();
  }
  template <class F>
  Status timed(const char* op, double flops, double bytes, F&& run) {
    FE_TRY_ASSIGN(cudaEvent_t start, next_event());
    const std::size_t index = used - 1;
    FE_TRY(detail::check_cuda("cudaEventRecord", cudaEventRecord(start, inner.stream)));
    FE_TRY(run());
    FE_TRY_ASSIGN(cudaEvent_t stop, next_event());
    FE_TRY(detail::check_cuda("cudaEventRecord", cudaEventRecord(stop, inner.stream)));
    records.push_back({op, flops, bytes, index});
    return ok_status();
  }
  static double f(i64 n) { return 4.0 * double(n); }  // bytes of n floats

  Status pack(const float* psi, i64 d, ChwView<float> x) {
    return timed("pack", 0, f(2 * x.numel()), [&] { return inner.pack(psi, d, x); });
  }
  Status im2col3x3(ChwView<const float> x, float* cols) {
    return timed("im2col3x3", 0, f(x.numel() + 9 * x.numel()), [&] { return inner.im2col3x3(x, cols); });
  }
  Status gemm(Trans ta, Trans tb, i64 m, i64 n, i64 k, const float* a, i64 lda, const float* b, i64 ldb, float* c,
              i64 ldc) {
    return timed("sgemm", 2.0 * double(m) * double(n) * double(k), 0,
                 [&] { return inner.gemm(ta, tb, m, n, k, a, lda, b, ldb, c, ldc); });
  }
  Status gemm_batched(Trans ta, i64 m, i64 n, i64 k, const float* a, i64 lda, i64 sa, const float* b, i64 ldb, i64 sb,
                      float* c, i64 ldc, i64 sc, i64 batch) {
    return timed("sgemm_batched", 2.0 * double(m) * double(n) * double(k) * double(batch), 0,
                 [&] { return inner.gemm_batched(ta, m, n, k, a, lda, sa, b, ldb, sb, c, ldc, sc, batch); });
  }
  Status winograd_input(ChwView<const float> x, float* v) {
    const i64 tiles = plan::winograd_tiles(x.height, x.width);
    return timed("winograd_input", 0, f(x.numel() + 16 * x.channels * tiles), [&] { return inner.winograd_input(x, v); });
  }
  Status winograd_output(const float* m, ChwView<float> y) {
    const i64 tiles = plan::winograd_tiles(y.height, y.width);
    return timed("winograd_output", 0, f(16 * y.channels * tiles + y.numel()),
                 [&] { return inner.winograd_output(m, y); });
  }
  Status winograd_fused(ChwView<const float> x, const float* u, ChwView<float> y) {
    const double tiles = double(plan::winograd_tiles(x.height, x.width));
    return timed("winograd_fused", 2.0 * 16 * double(y.channels) * double(x.channels) * tiles, 0,
                 [&] { return inner.winograd_fused(x, u, y); });
  }
  Status group_norm_elu(ChwView<float> y, i64 groups, const float* gamma, const float* beta, double* partials) {
    return timed("group_norm_elu", 0, f(3 * y.numel()),  // partial sums read y; apply reads and writes it
                 [&] { return inner.group_norm_elu(y, groups, gamma, beta, partials); });
  }
  Status maxpool2x2(ChwView<const float> x, ChwView<float> y) {
    return timed("maxpool2x2", 0, f(5 * y.numel()), [&] { return inner.maxpool2x2(x, y); });
  }
  Status conv_t_scatter(const float* taps, const float* bias, ChwView<float> y) {
    return timed("conv_t_scatter", 0, f(2 * y.numel()), [&] { return inner.conv_t_scatter(taps, bias, y); });
  }
  Status update(ChwView<const float> o, const float* bias, bool unitary, float gamma, float* psi, i64 d) {
    return timed("update", 0, f(o.numel() + 2 * o.numel()), [&] { return inner.update(o, bias, unitary, gamma, psi, d); });
  }
};

}  // namespace ferrite::cuda::qca_kernels
