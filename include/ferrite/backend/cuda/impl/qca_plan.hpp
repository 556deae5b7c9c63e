#pragma once
// The QCA step (shared/specs/qca-step.md) as the CUDA backend computes it, written once over an
// "executor" so that the same sequence of operations, buffer offsets and per-element formulas runs
// on the GPU (impl/qca_kernels.cuh: DeviceExecutor, kernels + cuBLAS) and on the host
// (tests/backend/cuda/test_qca_plan.cpp: a loop per kernel + the CPU SGEMM). The host run is checked
// against models::QcaUnet / models::qca_step, an independent implementation, on machines without a
// GPU: it proves the plan (im2col layout, GEMM arguments, group statistics, scatter and update
// indices, workspace offsets); what only a GPU run can check is the launch configuration and the
// in-block reductions of the kernels themselves. No CUDA types here: compiles with g++ and nvcc.
//
// Layouts (one sample; planar [C, H, W] as ops/chw.hpp, P = H*W):
//   conv3x3   im2col:   cols[Cin*9, P] = im2col(x)   (row (ci*9 + ky*3 + kx), zero padding)
//                       y[Cout, P]     = W[Cout, Cin*9] cols                  (PyTorch's weight as stored)
//             Winograd F(2x2, 3x3) (as backend/cpu/winograd.hpp; 2.25x fewer multiplications, 4/9 of
//             im2col's memory traffic), T = ceil(H/2) ceil(W/2) tiles of 2x2 outputs:
//                       V[16][Cin][T]   = B^T d B of every 4x4 input patch        (input transform)
//                       M[xi] = U[xi]^T V[xi], U[xi] stored [Cin, Cout]       (16 batched GEMMs)
//                       y = A^T M A per tile, cut at the image edge              (output transform)
//             U = G g G^T is computed once per weight set, in double (winograd_weights).
//   groupnorm a group's channels are contiguous: one range of (C/g)*P floats. Partial sums over
//             chunks of kGroupChunk floats, (sum, sum of squares) in double, then per group
//             mean = s/n, var = q/n - mean^2 (double: no cancellation at fp32 data), ELU fused
//   convT     taps[Cout*4, P] = W[Cin, Cout*4]^T x[Cin, P]; y[co, 2i+ky, 2j+kx] = taps[co*4+ky*2+kx, i*W+j] + b
//   outc      o[2d, P] = W[2d, h] c2[h, P]; its bias is added by the per-cell update
//   update    per cell: m_c = (o[c] + b[c]) + i (o[d+c] + b[d+c]); g = m psi (unitary) or m;
//             psi1 = psi + g - gamma psi; psi' = psi1 / (|psi1| + 1e-9)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include "ferrite/backend/winograd_f23.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/core/chw.hpp"
#include "ferrite/ops/group_norm_groups.hpp"
#include "ferrite/core/op_params.hpp"

// Internal: functions shared by kernels and host code. Undefined at the end of this header.
#if defined(__CUDACC__)
#define FERRITE_QCA_HD __host__ __device__ __forceinline__
#else
#define FERRITE_QCA_HD inline
#endif

namespace ferrite::cuda::qca_plan {

using i64 = std::int64_t;

inline constexpr i64 kGroupChunk = 4096;  // floats per partial sum of a GroupNorm group
inline constexpr double kNormEps = 1e-5;  // GroupNorm eps (the spec's)

inline i64 group_chunks(i64 group_floats) { return std::max<i64>(1, (group_floats + kGroupChunk - 1) / kGroupChunk); }

// ---- per-element formulas (the kernels call these for one element; the host emulation loops) ----

// cols[row, p] of a 3x3 "same" convolution's im2col: row = ci*9 + ky*3 + kx.
template <class I>
FERRITE_QCA_HD float im2col3x3_value(const float* x, I height, I width, I row, I p) {
  const I ci = row / 9, tap = row - ci * 9, ky = tap / 3, kx = tap - ky * 3;
  const I py = p / width, px = p - py * width;
  const I sy = py + ky - 1, sx = px + kx - 1;
  return (sy >= 0 && sy < height && sx >= 0 && sx < width) ? x[(ci * height + sy) * width + sx] : 0.f;
}

struct GroupStats {
  float mean, rstd;
};
// partials: (sum, sum of squares) of each of `chunks` chunks of one group, `count` elements in all.
FERRITE_QCA_HD GroupStats group_stats(const double* partials, int chunks, double count, double eps) {
  double s = 0, q = 0;
  for (int k = 0; k < chunks; ++k) {
    s += partials[2 * k];
    q += partials[2 * k + 1];
  }
  const double mean = s / count;
  double var = q / count - mean * mean;
  var = var > 0 ? var : 0;
  return {static_cast<float>(mean), static_cast<float>(1.0 / sqrt(var + eps))};
}
// The affine factor of channel c: rstd * gamma[c] (gamma null: no affine).
FERRITE_QCA_HD float norm_scale(GroupStats st, const float* gamma, int c) { return gamma ? st.rstd * gamma[c] : st.rstd; }
// y = act((v - mean) * scale + shift), act = ELU(alpha 1) or identity (as ops/norm.hpp's scale_shift_act).
FERRITE_QCA_HD float norm_value(float v, float mean, float scale, float shift, bool elu) {
  const float t = fmaf(v - mean, scale, shift);
  return (!elu || t > 0.f) ? t : expm1f(t);
}

// MaxPool 2x2 of output element (c, oy, ox); std::max's NaN rule, as ops/pool.hpp.
template <class I>
FERRITE_QCA_HD float maxpool2x2_value(const float* x, I height, I width, I c, I oy, I ox) {
  const float* r0 = x + (c * height + 2 * oy) * width + 2 * ox;
  const float* r1 = r0 + width;
  const float top = (r0[0] < r0[1]) ? r0[1] : r0[0], bottom = (r1[0] < r1[1]) ? r1[1] : r1[0];
  return (top < bottom) ? bottom : top;
}

// ConvTranspose k2 s2: output element (co, oy, ox) of the [Cout, 2H, 2W] map from taps[Cout*4, H*W].
template <class I>
FERRITE_QCA_HD float conv_t_value(const float* taps, const float* bias, I in_height, I in_width, I co, I oy, I ox) {
  const I ky = oy & 1, kx = ox & 1, i = oy >> 1, j = ox >> 1;
  const float t = taps[(co * 4 + ky * 2 + kx) * (in_height * in_width) + i * in_width + j];
  return bias ? t + bias[co] : t;
}

// X[c, p] from psi[P, d, 2] of one sample: c < d the real parts, c >= d the imaginary parts.
template <class I>
FERRITE_QCA_HD float pack_value(const float* psi, I d, I c, I p) {
  const I comp = c < d ? c : c - d, part = c < d ? 0 : 1;
  return psi[(p * d + comp) * 2 + part];
}

// The fused per-cell update of cell p (psi: the cell's d complex values, in place). Two passes over
// the d components (the second recomputes psi1 rather than storing it), so no per-thread array.
template <class I>
FERRITE_QCA_HD void update_cell(const float* o, const float* bias, I plane, I d, bool unitary, float gamma, float* psi,
                                I p) {
  float norm2 = 0.f;
  for (int pass = 0; pass < 2; ++pass) {
    const float inv = pass == 0 ? 0.f : 1.f / (sqrtf(norm2) + 1e-9f);
    for (I c = 0; c < d; ++c) {
      const float mr = o[c * plane + p] + bias[c], mi = o[(d + c) * plane + p] + bias[d + c];
      const float pr = psi[2 * c], pi = psi[2 * c + 1];
      const float gr = unitary ? mr * pr - mi * pi : mr;
      const float gi = unitary ? mr * pi + mi * pr : mi;
      const float r = (pr + gr) - gamma * pr, i = (pi + gi) - gamma * pi;
      if (pass == 0) {
        norm2 += r * r + i * i;
      } else {
        psi[2 * c] = r * inv;
        psi[2 * c + 1] = i * inv;
      }
    }
  }
}

// Winograd F(2x2, 3x3). Tiles t = ty * tiles_x + tx cover outputs (2ty .. 2ty+1, 2tx .. 2tx+1).
template <class I>
FERRITE_QCA_HD I winograd_tiles(I height, I width) { return ((height + 1) / 2) * ((width + 1) / 2); }

// v[xi] (xi = 4i + j) = (B^T d B)[i][j] of tile t of channel ci, d = rows 2ty-1 .. 2ty+2, columns
// 2tx-1 .. 2tx+2 (zero outside the image). B^T = [[1,0,-1,0], [0,1,1,0], [0,-1,1,0], [0,1,0,-1]].
template <class I>
FERRITE_QCA_HD void winograd_input_tile(const float* x, I height, I width, I ci, I t, float* v) {
  const I tiles_x = (width + 1) / 2, ty = t / tiles_x, tx = t - ty * tiles_x;
  const float* plane = x + ci * height * width;
  float d[4][4];
  for (int r = 0; r < 4; ++r) {
    const I y = 2 * ty - 1 + r;
    for (int c = 0; c < 4; ++c) {
      const I xx = 2 * tx - 1 + c;
      d[r][c] = (y >= 0 && y < height && xx >= 0 && xx < width) ? plane[y * width + xx] : 0.f;
    }
  }
  float b[4][4];  // B^T d
  for (int c = 0; c < 4; ++c) {
    b[0][c] = d[0][c] - d[2][c];
    b[1][c] = d[1][c] + d[2][c];
    b[2][c] = d[2][c] - d[1][c];
    b[3][c] = d[1][c] - d[3][c];
  }
  for (int r = 0; r < 4; ++r) {  // (B^T d) B
    v[4 * r + 0] = b[r][0] - b[r][2];
    v[4 * r + 1] = b[r][1] + b[r][2];
    v[4 * r + 2] = b[r][2] - b[r][1];
    v[4 * r + 3] = b[r][1] - b[r][3];
  }
}

// The 2x2 outputs of tile t from its 16 transformed products v: Y = A^T v A with
// A^T = [[1,1,1,0], [0,1,-1,-1]], written to y (one plane) where inside the image.
template <class I>
FERRITE_QCA_HD void winograd_output_values(const float* v, I t, I height, I width, float* y) {
  const I tiles_x = (width + 1) / 2, ty = t / tiles_x, tx = t - ty * tiles_x;
  float s[2][4];  // A^T m
  for (int c = 0; c < 4; ++c) {
    s[0][c] = v[c] + v[4 + c] + v[8 + c];
    s[1][c] = v[4 + c] - v[8 + c] - v[12 + c];
  }
  for (int a = 0; a < 2; ++a) {
    const I oy = 2 * ty + a;
    if (oy >= height) continue;
    const float out0 = s[a][0] + s[a][1] + s[a][2], out1 = s[a][1] - s[a][2] - s[a][3];
    y[oy * width + 2 * tx] = out0;
    if (2 * tx + 1 < width) y[oy * width + 2 * tx + 1] = out1;
  }
}

// Tile t of channel co from m[xi * slab + co * tiles + t] (the unfused layout M[16][Cout][T]).
template <class I>
FERRITE_QCA_HD void winograd_output_tile(const float* m, I slab, I tiles, I co, I t, I height, I width, float* y) {
  float v[16];
  for (int xi = 0; xi < 16; ++xi) v[xi] = m[xi * slab + co * tiles + t];
  winograd_output_values(v, t, height, width, y);
}

// U[xi][ci][co] = (G g G^T)[i][j] of w[co, ci] ([Cout, Cin, 3, 3]) (backend/winograd_f23.hpp). Host only
// (once per weight set). Cout fastest: the fused kernel's weight loads are then coalesced, and the batched
// GEMM reads U[xi] transposed.
inline void winograd_weights(const float* w, i64 cout, i64 cin, float* u) {
  for (i64 co = 0; co < cout; ++co)
    for (i64 ci = 0; ci < cin; ++ci) {
      float tile[16];
      winograd_f23_weight_tile(w + (co * cin + ci) * 9, tile);
      for (int xi = 0; xi < 16; ++xi) u[(xi * cin + ci) * cout + co] = tile[xi];
    }
}

// ---- fused Winograd: transforms, products and inverse transform in one kernel ----------------------
// One block of kFusedThreads threads computes the outputs of kFusedTiles tiles x kFusedCout output
// channels. For each chunk of kFusedK input channels it transforms the chunk's input patches into
// shared memory (Vs[16][K][tiles]) and loads the chunk's transformed weights (Us[16][K][cout]), then
// every thread adds K products into its 32 accumulators: thread = (xi = tid / 16, 4 channels x 8 tiles
// picked by tid % 16). At the end the accumulators go to shared memory (Ms[16][cout][tiles], the same
// space) and each thread inverse-transforms two (channel, tile) pairs. V and M never reach global
// memory (the unfused path writes and reads both: 4x a layer's input and output). The phases below
// are separated by __syncthreads() in the kernel; the host emulation runs each phase for every thread
// of a block before the next (tests/backend/cuda/test_qca_plan.cpp).
inline constexpr int kFusedThreads = 256, kFusedTiles = 32, kFusedCout = 16, kFusedK = 8;
// Per-xi slabs of Vs and Us padded by 4 / 16 floats: the two xi of a warp then fall on other banks.
inline constexpr int kFusedVsXi = kFusedK * kFusedTiles + 4;          // 260
inline constexpr int kFusedUsXi = kFusedK * kFusedCout + 16;          // 144
inline constexpr int kFusedVs = 16 * kFusedVsXi;                      // 4160 floats
inline constexpr int kFusedUs = 16 * kFusedUsXi;                      // 2304
inline constexpr int kFusedMs = 16 * kFusedCout * kFusedTiles;        // 8192
inline constexpr int kFusedSmem = kFusedMs > kFusedVs + kFusedUs ? kFusedMs : kFusedVs + kFusedUs;
static_assert(kFusedK * kFusedTiles == kFusedThreads, "one (channel, tile) input transform per thread");
static_assert(kFusedCout * kFusedTiles == 2 * kFusedThreads, "two output tiles per thread");

// Phase 1 (per chunk k0): thread tid transforms input channel k0 + tid / 32 of tile t0 + tid % 32 into
// Vs and loads 8 of the chunk's 2048 transformed weights into Us (zeros past Cin, Cout and the tiles).
FERRITE_QCA_HD void fused_load(const float* x, const float* u, int cin, int cout, int height, int width, int tiles,
                               int t0, int co0, int k0, int tid, float* vs, float* us) {
  {
    const int k = tid / kFusedTiles, tt = tid - k * kFusedTiles, ci = k0 + k, t = t0 + tt;
    float tile[16];
    if (ci < cin && t < tiles) {
      winograd_input_tile(x, height, width, ci, t, tile);
    } else {
      for (int xi = 0; xi < 16; ++xi) tile[xi] = 0.f;
    }
    for (int xi = 0; xi < 16; ++xi) vs[xi * kFusedVsXi + k * kFusedTiles + tt] = tile[xi];
  }
  // us[xi][k][c] = U[xi][k0 + k][co0 + c]: consecutive threads read consecutive output channels.
  for (int j = tid; j < 16 * kFusedK * kFusedCout; j += kFusedThreads) {
    const int c = j % kFusedCout, k = (j / kFusedCout) % kFusedK, xi = j / (kFusedCout * kFusedK);
    const int co = co0 + c, ci = k0 + k;
    us[xi * kFusedUsXi + k * kFusedCout + c] = (co < cout && ci < cin) ? u[(i64(xi) * cin + ci) * cout + co] : 0.f;
  }
}

// Phase 2: acc[a * 8 + b] += sum_k Us[xi][k][c0 + a] * Vs[xi][k][tt0 + b] for the thread's xi, 4
// channels c0 .. c0+3 and 8 tiles tt0 .. tt0+7.
FERRITE_QCA_HD void fused_accumulate(int tid, const float* vs, const float* us, float* acc) {
  const int xi = tid / 16, sub = tid % 16, c0 = (sub / 4) * 4, tt0 = (sub % 4) * 8;
  for (int k = 0; k < kFusedK; ++k) {
    float uk[4], vk[8];
    for (int a = 0; a < 4; ++a) uk[a] = us[xi * kFusedUsXi + k * kFusedCout + c0 + a];
    for (int b = 0; b < 8; ++b) vk[b] = vs[xi * kFusedVsXi + k * kFusedTiles + tt0 + b];
    for (int a = 0; a < 4; ++a)
      for (int b = 0; b < 8; ++b) acc[a * 8 + b] = fmaf(uk[a], vk[b], acc[a * 8 + b]);
  }
}

// Phase 3: the accumulators to Ms[xi][c][tt].
FERRITE_QCA_HD void fused_store(int tid, const float* acc, float* ms) {
  const int xi = tid / 16, sub = tid % 16, c0 = (sub / 4) * 4, tt0 = (sub % 4) * 8;
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 8; ++b) ms[(xi * kFusedCout + c0 + a) * kFusedTiles + tt0 + b] = acc[a * 8 + b];
}

// Phase 4: thread tid inverse-transforms pairs p = tid and tid + 256 of (channel c = p / 32, tile p % 32).
FERRITE_QCA_HD void fused_output(int tid, const float* ms, int cout, int height, int width, int tiles, int t0, int co0,
                                 float* y) {
  for (int p = tid; p < kFusedCout * kFusedTiles; p += kFusedThreads) {
    const int c = p / kFusedTiles, tt = p - c * kFusedTiles, co = co0 + c, t = t0 + tt;
    if (co >= cout || t >= tiles) continue;
    float v[16];
    for (int xi = 0; xi < 16; ++xi) v[xi] = ms[(xi * kFusedCout + c) * kFusedTiles + tt];
    winograd_output_values(v, t, height, width, y + i64(co) * height * width);
  }
}

// ---- weights and workspace ------------------------------------------------------------------------

// Pointers into the law's parameters (host or device), PyTorch layouts.
struct Weights {
  struct Block {
    i64 cin = 0, cout = 0;
    const float *conv0 = nullptr, *norm1_w = nullptr, *norm1_b = nullptr;
    const float *conv3 = nullptr, *norm4_w = nullptr, *norm4_b = nullptr;
    // Winograd-transformed conv0 / conv3 ([16][Cin][Cout], winograd_weights); null: im2col path.
    const float *conv0_winograd = nullptr, *conv3_winograd = nullptr;
  };
  i64 d = 0, h = 0;
  bool fused_winograd = false;  // Winograd convolutions as one fused kernel (winograd_fused) per layer
  Block inc, down1, down2, bot, conv_up1, conv_up2;
  const float *up1_w = nullptr, *up1_b = nullptr, *up2_w = nullptr, *up2_b = nullptr;
  const float *outc_w = nullptr, *outc_b = nullptr;
};

inline constexpr std::size_t kParameterTensors = 42;  // models::QcaUnet::parameters(), in that order

// The 12 3x3 convolutions of a law: fn(const float* weight, i64 cout, i64 cin, const float*& winograd_slot).
template <class Fn>
void for_each_conv3x3(Weights& w, Fn&& fn) {
  for (Weights::Block* b : {&w.inc, &w.down1, &w.down2, &w.bot, &w.conv_up1, &w.conv_up2}) {
    fn(b->conv0, b->cout, b->cin, b->conv0_winograd);
    fn(b->conv3, b->cout, b->cout, b->conv3_winograd);
  }
}

// Binds tensor pointers given in models::QcaUnet::parameters() order.
inline Result<Weights> bind_weights(std::span<const float* const> tensors, i64 d, i64 h) {
  if (tensors.size() != kParameterTensors)
    return make_error(ErrorCode::invalid_argument, "qca_plan::bind_weights",
                      "expected " + std::to_string(kParameterTensors) + " tensors, got " + std::to_string(tensors.size()));
  Weights w;
  w.d = d;
  w.h = h;
  std::size_t next = 0;
  const auto block = [&](Weights::Block& b, i64 cin, i64 cout) {
    b.cin = cin;
    b.cout = cout;
    b.conv0 = tensors[next++];
    b.norm1_w = tensors[next++];
    b.norm1_b = tensors[next++];
    b.conv3 = tensors[next++];
    b.norm4_w = tensors[next++];
    b.norm4_b = tensors[next++];
  };
  block(w.inc, 2 * d, h);
  block(w.down1, h, 2 * h);
  block(w.down2, 2 * h, 4 * h);
  block(w.bot, 4 * h, 8 * h);
  w.up1_w = tensors[next++];
  w.up1_b = tensors[next++];
  block(w.conv_up1, 6 * h, 4 * h);
  w.up2_w = tensors[next++];
  w.up2_b = tensors[next++];
  block(w.conv_up2, 3 * h, h);
  w.outc_w = tensors[next++];
  w.outc_b = tensors[next++];
  return w;
}

// The scratch the 3x3 convolutions need: im2col's matrix, Winograd's V and M, or nothing (the fused
// kernel keeps V and M in shared memory).
enum class ConvScratch { im2col, winograd, none };

// Offsets (in floats, 64-float aligned) of every buffer of one sample's forward in one arena, and
// the GroupNorm partials (in doubles) in a second one.
struct Layout {
  i64 height = 0, width = 0;
  i64 x = 0, o = 0;                                   // [2d, P]: the planar input and the law's output
  i64 cat2 = 0, tmp_full = 0, c2 = 0;                 // H x W:     [3h] (u2 | x1), [h], [h]
  i64 pool1 = 0, cat1 = 0, tmp_half = 0, c1 = 0;      // H/2:       [h], [6h] (u1 | x2), [4h], [4h]
  i64 pool2 = 0, x3 = 0, tmp_quarter = 0, bottom = 0; // H/4:       [2h], [4h], [8h], [8h]
  i64 cols = 0, taps = 0;                             // im2col matrix or Winograd V; transposed-conv taps
  i64 winograd_m = 0;                                 // Winograd M[16][Cout][T] (largest use)
  // (cols and winograd_m are sized for the ConvScratch asked for: empty where that path does not use them.)
  i64 floats = 0;                                     // arena size
  i64 partial_doubles = 0;                            // GroupNorm partials (largest use)

  static Layout make(i64 d, i64 h, i64 height, i64 width, ConvScratch scratch) {
    Layout l;
    l.height = height;
    l.width = width;
    const i64 P = height * width, P2 = P / 4, P4 = P / 16;
    i64 at = 0;
    const auto take = [&](i64 n) {
      const i64 offset = at;
      at += (n + 63) / 64 * 64;
      return offset;
    };
    l.x = take(2 * d * P);
    l.o = take(2 * d * P);
    l.cat2 = take(3 * h * P);
    l.tmp_full = take(h * P);
    l.c2 = take(h * P);
    l.pool1 = take(h * P2);
    l.cat1 = take(6 * h * P2);
    l.tmp_half = take(4 * h * P2);
    l.c1 = take(4 * h * P2);
    l.pool2 = take(2 * h * P4);
    l.x3 = take(4 * h * P4);
    l.tmp_quarter = take(8 * h * P4);
    l.bottom = take(8 * h * P4);
    // im2col: the widest input of each level (full: max(2d, h, 3h); half: 6h; quarter: 8h); Winograd's
    // V[16][Cin][T] and M[16][Cout][T] with the widest input / output of each level.
    const i64 T = winograd_tiles(height, width), T2 = winograd_tiles(height / 2, width / 2),
              T4 = winograd_tiles(height / 4, width / 4);
    const i64 im2col = std::max({std::max(2 * d, 3 * h) * 9 * P, 6 * h * 9 * P2, 8 * h * 9 * P4});
    const i64 v = std::max({std::max(2 * d, 3 * h) * 16 * T, 6 * h * 16 * T2, 8 * h * 16 * T4});
    const i64 m = std::max({h * 16 * T, 4 * h * 16 * T2, 8 * h * 16 * T4});
    l.cols = take(scratch == ConvScratch::im2col ? im2col : scratch == ConvScratch::winograd ? v : 0);
    l.winograd_m = take(scratch == ConvScratch::winograd ? m : 0);
    l.taps = take(std::max(4 * h * 4 * P4, 2 * h * 4 * P2));
    l.floats = at;
    // GroupNorm over C channels at P pixels: groups * chunks(C/groups * P) partials of 2 doubles.
    i64 partials = 0;
    for (const auto& [c, plane] : {std::pair{h, P}, std::pair{2 * h, P2}, std::pair{4 * h, P2}, std::pair{4 * h, P4},
                                   std::pair{8 * h, P4}})
      partials = std::max(partials, group_norm_groups(c) * group_chunks(c / group_norm_groups(c) * plane) * 2);
    l.partial_doubles = partials;
    return l;
  }
};

// The arena bound to a base pointer.
struct Buffers {
  ChwView<float> x, o, cat2, tmp_full, c2, pool1, cat1, tmp_half, c1, pool2, x3, tmp_quarter, bottom;
  float* cols = nullptr;
  float* taps = nullptr;
  float* winograd_m = nullptr;
  double* partials = nullptr;

  static Buffers bind(const Layout& l, i64 d, i64 h, float* arena, double* partials) {
    const i64 H = l.height, W = l.width;
    Buffers b;
    const auto at = [&](i64 offset, i64 c, i64 hh, i64 ww) { return ChwView<float>{arena + offset, c, hh, ww}; };
    b.x = at(l.x, 2 * d, H, W);
    b.o = at(l.o, 2 * d, H, W);
    b.cat2 = at(l.cat2, 3 * h, H, W);
    b.tmp_full = at(l.tmp_full, h, H, W);
    b.c2 = at(l.c2, h, H, W);
    b.pool1 = at(l.pool1, h, H / 2, W / 2);
    b.cat1 = at(l.cat1, 6 * h, H / 2, W / 2);
    b.tmp_half = at(l.tmp_half, 4 * h, H / 2, W / 2);
    b.c1 = at(l.c1, 4 * h, H / 2, W / 2);
    b.pool2 = at(l.pool2, 2 * h, H / 4, W / 4);
    b.x3 = at(l.x3, 4 * h, H / 4, W / 4);
    b.tmp_quarter = at(l.tmp_quarter, 8 * h, H / 4, W / 4);
    b.bottom = at(l.bottom, 8 * h, H / 4, W / 4);
    b.cols = arena + l.cols;
    b.taps = arena + l.taps;
    b.winograd_m = arena + l.winograd_m;
    b.partials = partials;
    return b;
  }
};

// ---- the sequence --------------------------------------------------------------------------------
// Exec provides (each returns Status; pointers are the executor's memory):
//   pack(const float* psi_sample, i64 d, ChwView<float> x)
//   im2col3x3(ChwView<const float> x, float* cols)
//   gemm(Trans ta, Trans tb, i64 m, i64 n, i64 k, const float* a, i64 lda, const float* b, i64 ldb, float* c, i64 ldc)
//       row-major C = op(A) op(B), alpha 1, beta 0
//   gemm_batched(ta, m, n, k, a, lda, stride_a, b, ldb, stride_b, c, ldc, stride_c, batch)   (B not transposed)
//   winograd_input(ChwView<const float> x, float* v)       v [16][Cin][T]
//   winograd_output(const float* m, ChwView<float> y)      m [16][Cout][T]
//   winograd_fused(ChwView<const float> x, const float* u, ChwView<float> y)   transforms + products in one kernel
//   group_norm_elu(ChwView<float> y, i64 groups, const float* gamma, const float* beta, double* partials)
//       in place, eps kNormEps, ELU fused
//   maxpool2x2(ChwView<const float> x, ChwView<float> y)
//   conv_t_scatter(const float* taps, const float* bias, ChwView<float> y)    y [Cout, 2H, 2W]
//   update(ChwView<const float> o, const float* bias, bool unitary, float gamma, float* psi_sample, i64 d)

// y[Cout, P] = conv3x3(x[Cin, P]) (no bias): Winograd when transformed weights are given, else im2col.
// cols holds im2col's matrix or Winograd's V; winograd_m Winograd's M.
template <class Exec>
Status conv3x3(Exec& ex, ChwView<const float> x, const float* weight, const float* winograd_weight, ChwView<float> y,
               float* cols, float* winograd_m, bool fused = false) {
  const i64 P = x.plane();
  if (winograd_weight && fused) return ex.winograd_fused(x, winograd_weight, y);
  if (winograd_weight) {
    const i64 T = winograd_tiles(x.height, x.width), cin = x.channels, cout = y.channels;
    FE_TRY(ex.winograd_input(x, cols));
    FE_TRY(ex.gemm_batched(Trans::yes, cout, T, cin, winograd_weight, cout, cout * cin, cols, T, cin * T, winograd_m, T,
                           cout * T, 16));
    return ex.winograd_output(winograd_m, y);
  }
  const i64 k = x.channels * 9;
  FE_TRY(ex.im2col3x3(x, cols));
  return ex.gemm(Trans::no, Trans::no, y.channels, P, k, weight, k, cols, P, y.data, P);
}

// y = ELU(GN(conv3(ELU(GN(conv0(x)))))) with tmp holding the first conv's output.
template <class Exec>
Status conv_block(Exec& ex, const Weights::Block& b, ChwView<const float> x, ChwView<float> tmp, ChwView<float> y,
                  const Buffers& buf, bool fused) {
  const ChwView<float> t = tmp.channel_slice(0, b.cout);
  const i64 groups = group_norm_groups(b.cout);
  FE_TRY(conv3x3(ex, x, b.conv0, b.conv0_winograd, t, buf.cols, buf.winograd_m, fused));
  FE_TRY(ex.group_norm_elu(t, groups, b.norm1_w, b.norm1_b, buf.partials));
  FE_TRY(conv3x3(ex, t, b.conv3, b.conv3_winograd, y, buf.cols, buf.winograd_m, fused));
  return ex.group_norm_elu(y, groups, b.norm4_w, b.norm4_b, buf.partials);
}

// y[Cout, 2H, 2W] = ConvTranspose2d(k2, s2)(x[Cin, H, W]) + bias.
template <class Exec>
Status conv_transpose(Exec& ex, ChwView<const float> x, const float* weight, const float* bias, ChwView<float> y,
                      float* taps) {
  const i64 P = x.plane(), m = y.channels * 4;
  FE_TRY(ex.gemm(Trans::yes, Trans::no, m, P, x.channels, weight, m, x.data, P, taps, P));
  return ex.conv_t_scatter(taps, bias, y);
}

// buf.o = the law's output for buf.x, without outc's bias (the update adds it).
template <class Exec>
Status forward(Exec& ex, const Weights& w, const Buffers& buf) {
  const i64 h = w.h;
  const ChwView<float> x1 = buf.cat2.channel_slice(2 * h, h), u2 = buf.cat2.channel_slice(0, 2 * h);
  const ChwView<float> x2 = buf.cat1.channel_slice(4 * h, 2 * h), u1 = buf.cat1.channel_slice(0, 4 * h);
  FE_TRY(conv_block(ex, w.inc, buf.x, buf.tmp_full, x1, buf, w.fused_winograd));
  FE_TRY(ex.maxpool2x2(x1, buf.pool1));
  FE_TRY(conv_block(ex, w.down1, buf.pool1, buf.tmp_half, x2, buf, w.fused_winograd));
  FE_TRY(ex.maxpool2x2(x2, buf.pool2));
  FE_TRY(conv_block(ex, w.down2, buf.pool2, buf.tmp_quarter, buf.x3, buf, w.fused_winograd));
  FE_TRY(conv_block(ex, w.bot, buf.x3, buf.tmp_quarter, buf.bottom, buf, w.fused_winograd));
  FE_TRY(conv_transpose(ex, buf.bottom, w.up1_w, w.up1_b, u1, buf.taps));
  FE_TRY(conv_block(ex, w.conv_up1, buf.cat1, buf.tmp_half, buf.c1, buf, w.fused_winograd));
  FE_TRY(conv_transpose(ex, buf.c1, w.up2_w, w.up2_b, u2, buf.taps));
  FE_TRY(conv_block(ex, w.conv_up2, buf.cat2, buf.tmp_full, buf.c2, buf, w.fused_winograd));
  const i64 P = buf.c2.plane();
  return ex.gemm(Trans::no, Trans::no, 2 * w.d, P, h, w.outc_w, h, buf.c2.data, P, buf.o.data, P);
}

// One step of every sample of psi (f32 [batch, H, W, d, 2], in place).
template <class Exec>
Status step(Exec& ex, const Weights& w, const Buffers& buf, bool unitary, float gamma, float* psi, i64 batch) {
  const i64 cell_floats = buf.x.plane() * w.d * 2;
  for (i64 b = 0; b < batch; ++b) {
    float* sample = psi + b * cell_floats;
    FE_TRY(ex.pack(sample, w.d, buf.x));
    FE_TRY(forward(ex, w, buf));
    FE_TRY(ex.update(buf.o, w.outc_b, unitary, gamma, sample, w.d));
  }
  return ok_status();
}

}  // namespace ferrite::cuda::qca_plan

#undef FERRITE_QCA_HD
