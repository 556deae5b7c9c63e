#pragma once
// Winograd F(2x2, 3x3) convolution (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2016) on planar images, stride 1, zero padding 1: the kernel behind
// conv2d(..., ConvAlgorithm::winograd) and WinogradConv3x3 in ops/conv.hpp. No shape checks here.
//
// Every 2x2 block of outputs ("tile" t = (ty, tx), output rows 2ty, 2ty+1, columns 2tx, 2tx+1) is
//   Y_t = A^T [ sum_ci U[co, ci] (.) V_t[ci] ] A,   U = G g G^T (4x4 per (co, ci)),   V_t = B^T d_t B
// where d_t is the 4x4 input patch rows 2ty-1 .. 2ty+2, columns 2tx-1 .. 2tx+2 (zero outside the
// image), and (.) is the element-wise product. For each of the 16 positions xi = 4i + j of the 4x4
// transformed tile the sum over ci is an independent GEMM
//   M_xi[Cout, tiles] = U_xi[Cout, Cin] x V_xi[Cin, tiles]
// so a 3x3 convolution costs 16 Cin Cout multiply-adds per 4 outputs instead of 36: 2.25x fewer.
// The transforms are additions only (B, A have entries 0, +-1; G has 1/2's, applied to the weights
// once). Rounding: the transforms add up to 4 (input) and 9 (output) float terms, but each FMA chain
// is Cin long instead of the direct path's 9 Cin; measured against a double oracle the error is
// 0.5x .. 1.5x the direct path's (tests/ops/test_conv.cpp). Not implemented: F(4x4, 3x3) (another
// 1.8x fewer multiplications, but transforms with entries up to 8 and a float error known to be
// about an order of magnitude larger).
// Semantics differ from the direct path only for non-finite inputs: the transforms mix a tile's 16
// inputs, so an Inf input can make nearby outputs NaN (Inf - Inf) where the direct path gives Inf.
//
// Layout and loop (one TBB task per block of whole tile rows, the block's buffers in L2):
//   u  (prepared once per weight set): u[xi * slab_u + (p * Cin + ci) * MR + r] = U_xi[p MR + r, ci]
//      -- exactly the SGEMM micro-kernel's packed A panels (gemm_kernel.hpp), zero rows past Cout.
//   V  per block: V[xi * slab_v + (q * Cin + ci) * NR + j] = V_xi[ci, tile q NR + j of the block]
//      -- the packed B panels, written straight by the input transform (no packing pass).
//   M  per block: M[xi * slab_m + co * ntp + t], ntp = panels * NR; then the output transform.
//   (slab strides: slab_stride() below.)
// Every output is one fixed sequence of float operations (transform, one FMA chain over ci in order,
// inverse transform) whatever the block it falls in, so results do not depend on the thread count.
#include <algorithm>
#include <cstdint>
#include <vector>
#include <cstring>

#include <tbb/parallel_for.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "ferrite/backend/cpu/gemm.hpp"
#include "ferrite/backend/cpu/gemm_kernel.hpp"
#include "ferrite/backend/winograd_f23.hpp"
#include "ferrite/core/chw.hpp"

namespace ferrite::cpu::winograd {

// Planes of a batch of images: plane (c, n) at data + c * channel_stride + n * sample_stride. One
// image [C, H, W] is {data, C, H, W, 1, H*W, 0}; the channel-major batch [C, N, H, W] of
// ops/batch_conv.hpp is {data, C, H, W, N, N*H*W, H*W}. Tile rows run over the batch: global tile
// row r is row r % tiles_y of sample r / tiles_y, so a block of tile rows can span samples and small
// images (ResNet's 4 x 4 and 8 x 8 stages) still fill the GEMM's panels.
template <class T>
struct PlanarBatch {
  T* data = nullptr;
  std::int64_t channels = 0, height = 0, width = 0, batch = 1, channel_stride = 0, sample_stride = 0;

  static PlanarBatch image(ChwView<T> v) { return {v.data, v.channels, v.height, v.width, 1, v.plane(), 0}; }
  T* plane(std::int64_t c, std::int64_t n) const noexcept { return data + c * channel_stride + n * sample_stride; }
  operator PlanarBatch<const T>() const noexcept {  // NOLINT
    return {data, channels, height, width, batch, channel_stride, sample_stride};
  }
};


// The 16 slabs (one per xi) of U, V and M are always walked together, 16 streams at once. Slab
// strides that are multiples of 4 KiB would put all 16 in the same L1 set (8 ways) and thrash it
// (measured: the weight transform ran 6x slower); rounding to 4 KiB and adding one cache line puts
// them in 16 consecutive sets.
inline std::int64_t slab_stride(std::int64_t floats) { return (floats + 1023) / 1024 * 1024 + 16; }

template <class Arch = xsimd::default_arch>
struct F23 {
  static constexpr int MR = gemm_detail::SgemmBlocking<Arch>::MR;  // rows of a packed U panel
  static constexpr int NR = gemm_detail::SgemmBlocking<Arch>::NR;  // tiles of a packed V panel

  static std::int64_t co_panels(std::int64_t cout) { return (cout + MR - 1) / MR; }
  // Floats between the xi slabs of the packed weights, and in all of them.
  static std::int64_t weight_slab(std::int64_t cout, std::int64_t cin) {
    return slab_stride(co_panels(cout) * cin * MR);
  }
  static std::int64_t packed_weight_floats(std::int64_t cout, std::int64_t cin) {
    return 16 * weight_slab(cout, cin);
  }
};

// Floats of one block's V + M (target: about 1 MiB, the L2 of a Zen 4 core).
inline constexpr std::int64_t kBlockFloats = 256 * 1024;

// u = G g G^T for every (co, ci), packed as described above. w: [Cout, Cin, 3, 3].
//   G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
// Computed in double and rounded once, so U is the correctly rounded transform. About 3 ns per
// (co, ci) on one Zen 4 core (1747664 parameters: ~0.6 ms); parallel over panels for big layers.
template <class Arch = xsimd::default_arch>
void transform_weights(const float* w, std::int64_t cout, std::int64_t cin, float* u) {
  constexpr int MR = F23<Arch>::MR;
  const std::int64_t panels = F23<Arch>::co_panels(cout), slab = F23<Arch>::weight_slab(cout, cin);
  const auto one_panel = [&](std::int64_t p) {
    const int rows = static_cast<int>(std::min<std::int64_t>(MR, cout - p * MR));
#if defined(__AVX512F__)
    // A full panel of 8 rows: the same double arithmetic (bit-identical results) on 8 lanes, one
    // row each; taps 0..7 of the 8 rows by one 8 x 8 transpose, tap 8 by a gather; each xi's 8
    // results one contiguous store. 7 -> 3 ns per (co, ci).
    if constexpr (MR == 8) {
      if (rows == MR && cin * 9 * MR < (std::int64_t{1} << 31)) {
        const int stride = static_cast<int>(cin * 9);
        const __m256i rows_at = _mm256_setr_epi32(0, stride, 2 * stride, 3 * stride, 4 * stride, 5 * stride,
                                                  6 * stride, 7 * stride);
        const __m512d half = _mm512_set1_pd(0.5);
        // float <-> double of 8 lanes (the zero-masked forms: GCC 12 warns falsely about the plain
        // ones' undefined pass-through operand under -Wmaybe-uninitialized)
        const auto widen = [](__m256 v) { return _mm512_maskz_cvtps_pd(0xFF, v); };
        const auto narrow = [](__m512d v) { return _mm512_maskz_cvtpd_ps(0xFF, v); };
        for (std::int64_t ci = 0; ci < cin; ++ci) {
          const float* g = w + (p * MR * cin + ci) * 9;
          alignas(32) float taps[8][8];  // taps[k][r] = g_r[k], k < 8: one 8 x 8 transpose
          gemm_detail::transpose_8x8(g, stride, &taps[0][0], 8);
          __m512d t[9];
          for (int k = 0; k < 8; ++k) t[k] = widen(_mm256_load_ps(taps[k]));
          t[8] = widen(_mm256_i32gather_ps(g + 8, rows_at, 4));
          __m512d gg[4][3];
          for (int c = 0; c < 3; ++c) {
            const __m512d g0 = t[c], g1 = t[3 + c], g2 = t[6 + c];
            gg[0][c] = g0;
            gg[1][c] = _mm512_mul_pd(half, _mm512_add_pd(_mm512_add_pd(g0, g1), g2));
            gg[2][c] = _mm512_mul_pd(half, _mm512_add_pd(_mm512_sub_pd(g0, g1), g2));
            gg[3][c] = g2;
          }
          float* o = u + (p * cin + ci) * MR;
          for (int i = 0; i < 4; ++i) {
            const __m512d a = gg[i][0], b = gg[i][1], c = gg[i][2];
            _mm256_storeu_ps(o + (4 * i + 0) * slab, narrow(a));
            _mm256_storeu_ps(o + (4 * i + 1) * slab,
                             narrow(_mm512_mul_pd(half, _mm512_add_pd(_mm512_add_pd(a, b), c))));
            _mm256_storeu_ps(o + (4 * i + 2) * slab,
                             narrow(_mm512_mul_pd(half, _mm512_add_pd(_mm512_sub_pd(a, b), c))));
            _mm256_storeu_ps(o + (4 * i + 3) * slab, narrow(c));
          }
        }
        return;
      }
    }
#endif
    for (std::int64_t ci = 0; ci < cin; ++ci) {
      float* o = u + (p * cin + ci) * MR;
      for (int r = 0; r < MR; ++r) {
        if (r >= rows) {  // zero rows past Cout (the micro-kernel's edge tiles never read them)
          for (int xi = 0; xi < 16; ++xi) o[xi * slab + r] = 0.f;
          continue;
        }
        float tile[16];
        winograd_f23_weight_tile(w + ((p * MR + r) * cin + ci) * 9, tile);
        for (int xi = 0; xi < 16; ++xi) o[xi * slab + r] = tile[xi];
      }
    }
  };
  if (cout * cin >= 16384)  // ~0.1 ms: worth a TBB dispatch
    tbb::parallel_for(std::int64_t{0}, panels, one_panel);
  else
    for (std::int64_t p = 0; p < panels; ++p) one_panel(p);
}

namespace detail {

// Per-thread buffers of a block task (the task makes no TBB calls, so nothing else runs on this
// thread while they are in use).
inline gemm_detail::PackBuffer& block_buffer(int which) {
  thread_local gemm_detail::PackBuffer buffers[3];
  return buffers[which];
}

// One row of T = B^T d times B, tiles k < n (n = N when N > 0): tile k reads padded columns
// 2k .. 2k+3 of s.
template <int N>
[[gnu::always_inline]] inline void column_transform(const float* __restrict s, float* __restrict o0,
                                                    float* __restrict o1, float* __restrict o2,
                                                    float* __restrict o3, std::int64_t n) {
  if constexpr (N > 0) n = N;
  for (std::int64_t k = 0; k < n; ++k) {
    const float a = s[2 * k], b = s[2 * k + 1], c = s[2 * k + 2], d = s[2 * k + 3];
    o0[k] = a - c;
    o1[k] = b + c;
    o2[k] = c - b;
    o3[k] = b - d;
  }
}

// V of tile rows [ty0, ty1) for all channels. tmp: 4 * (2 * tiles_x + 2) floats, zero: >= W zeros.
// (Tile rows are global over the batch: see PlanarBatch.)
template <int NR>
void input_transform(PlanarBatch<const float> x, std::int64_t ty0, std::int64_t ty1, std::int64_t panels,
                     std::int64_t xi_stride, float* __restrict v, float* __restrict tmp, const float* zero) {
  const std::int64_t H = x.height, W = x.width, cin = x.channels, tiles_x = (W + 1) / 2, tiles_y = (H + 1) / 2;
  const std::int64_t L = 2 * tiles_x + 2;  // padded row: index c + 1 holds column c
  for (std::int64_t ci = 0; ci < cin; ++ci) {
    for (std::int64_t ty = ty0; ty < ty1; ++ty) {
      const float* plane = x.plane(ci, ty / tiles_y);
      const std::int64_t lty = ty % tiles_y;  // the tile row within its sample
      const float* r[4];
      for (int i = 0; i < 4; ++i) {
        const std::int64_t yy = 2 * lty - 1 + i;
        r[i] = (yy >= 0 && yy < H) ? plane + yy * W : zero;
      }
      // Rows: T = B^T d (4 input rows -> 4 rows), over the whole width at once.
      float* __restrict t0 = tmp;
      float* __restrict t1 = tmp + L;
      float* __restrict t2 = tmp + 2 * L;
      float* __restrict t3 = tmp + 3 * L;
      const float* __restrict r0 = r[0];  // (locals: the loop then keeps them in registers)
      const float* __restrict r1 = r[1];
      const float* __restrict r2 = r[2];
      const float* __restrict r3 = r[3];
      for (std::int64_t c = 0; c < W; ++c) {
        const float d0 = r0[c], d1 = r1[c], d2 = r2[c], d3 = r3[c];
        t0[c + 1] = d0 - d2;
        t1[c + 1] = d1 + d2;
        t2[c + 1] = d2 - d1;
        t3[c + 1] = d1 - d3;
      }
      for (int i = 0; i < 4; ++i) {
        tmp[i * L] = 0.f;
        for (std::int64_t c = W + 1; c < L; ++c) tmp[i * L + c] = 0.f;
      }
      // Columns: V = T B, tile tx reads padded columns 2tx .. 2tx+3; written in runs that stay
      // inside one NR-wide panel.
      const std::int64_t t_row = (ty - ty0) * tiles_x;  // block-local index of the row's first tile
      for (std::int64_t tx0 = 0; tx0 < tiles_x;) {
        const std::int64_t t = t_row + tx0, q = t / NR, j0 = t % NR;
        const std::int64_t run = std::min(tiles_x - tx0, NR - j0);
        float* dst = v + (q * cin + ci) * NR + j0;
        for (int i = 0; i < 4; ++i) {
          const float* __restrict s = tmp + i * L + 2 * tx0;
          float* __restrict o0 = dst + (4 * i + 0) * xi_stride;
          float* __restrict o1 = dst + (4 * i + 1) * xi_stride;
          float* __restrict o2 = dst + (4 * i + 2) * xi_stride;
          float* __restrict o3 = dst + (4 * i + 3) * xi_stride;
          std::int64_t k = 0;
          for (; k + 16 <= run; k += 16)  // fixed-length chunks: one vector each, no aliasing checks
            column_transform<16>(s + 2 * k, o0 + k, o1 + k, o2 + k, o3 + k, 16);
          column_transform<0>(s + 2 * k, o0 + k, o1 + k, o2 + k, o3 + k, run - k);
        }
        tx0 += run;
      }
    }
  }
  // The last panel's columns past the block's tiles: zeros (their GEMM columns are ignored, but
  // garbage could be NaN or denormal and slow the micro-kernel down).
  const std::int64_t nt = (ty1 - ty0) * tiles_x, tail = nt % NR;
  if (tail)
    for (std::int64_t xi = 0; xi < 16; ++xi)
      for (std::int64_t ci = 0; ci < cin; ++ci)
        std::fill_n(v + xi * xi_stride + ((panels - 1) * cin + ci) * NR + tail, NR - tail, 0.f);
}

// y rows of global tile rows [ty0, ty1) from M (+ bias); added to y when accumulate. tmp: 4 * tiles_x floats.
inline void output_transform(const float* __restrict m, std::int64_t ntp, std::int64_t xi_stride, std::int64_t ty0,
                             std::int64_t ty1, const float* bias, PlanarBatch<float> y, float* __restrict tmp,
                             bool accumulate) {
  const std::int64_t H = y.height, W = y.width, cout = y.channels, tiles_x = (W + 1) / 2, tiles_y = (H + 1) / 2;
  float* __restrict e0 = tmp;  // output row 2ty, even / odd columns; row 2ty + 1 likewise
  float* __restrict o0 = tmp + tiles_x;
  float* __restrict e1 = tmp + 2 * tiles_x;
  float* __restrict o1 = tmp + 3 * tiles_x;
  for (std::int64_t co = 0; co < cout; ++co) {
    const float b = bias ? bias[co] : 0.f;
    for (std::int64_t ty = ty0; ty < ty1; ++ty) {
      const float* s = m + co * ntp + (ty - ty0) * tiles_x;
      // Y = A^T M A,  A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]: rows first, then columns.
      for (std::int64_t k = 0; k < tiles_x; ++k) {
        float v[16];
        for (int xi = 0; xi < 16; ++xi) v[xi] = s[xi * xi_stride + k];
        float r0[4], r1[4];
        for (int j = 0; j < 4; ++j) {
          r0[j] = v[j] + v[4 + j] + v[8 + j];
          r1[j] = v[4 + j] - v[8 + j] - v[12 + j];
        }
        e0[k] = (r0[0] + r0[1] + r0[2]) + b;
        o0[k] = (r0[1] - r0[2] - r0[3]) + b;
        e1[k] = (r1[0] + r1[1] + r1[2]) + b;
        o1[k] = (r1[1] - r1[2] - r1[3]) + b;
      }
      // Interleave into the output rows (the last column / row only where W / H is odd).
      const std::int64_t lty = ty % tiles_y;
      float* out0 = y.plane(co, ty / tiles_y) + 2 * lty * W;
      const auto store = [&](float* out, const float* even, const float* odd) {
        const std::int64_t pairs = W / 2;
        if (accumulate) {
          for (std::int64_t k = 0; k < pairs; ++k) {
            out[2 * k] += even[k];
            out[2 * k + 1] += odd[k];
          }
          if (W % 2) out[W - 1] += even[tiles_x - 1];
        } else {
          for (std::int64_t k = 0; k < pairs; ++k) {
            out[2 * k] = even[k];
            out[2 * k + 1] = odd[k];
          }
          if (W % 2) out[W - 1] = even[tiles_x - 1];
        }
      };
      store(out0, e0, o0);
      if (2 * lty + 1 < H) store(out0 + W, e1, o1);
    }
  }
}

}  // namespace detail

// Tile rows per block (one TBB task). Aims: V + M of a block about kBlockFloats (L2); about 8
// blocks or more, so 2 threads balance; at least NR tiles per block; and little padding, since
// each block's last panel is padded to NR tiles (8-tile blocks would waste 3/4 of the GEMM). Among
// the heights from the smallest with NR tiles to twice the target, the one that pads the fewest
// tiles over the whole image wins, ties going to the one nearest the target. Depends on the shape
// only (results would not depend on it anyway).
inline std::int64_t block_rows(std::int64_t tiles_y, std::int64_t tiles_x, std::int64_t channels, int nr) {
  const std::int64_t budget_tiles = std::max<std::int64_t>(nr, kBlockFloats / (16 * channels));
  const std::int64_t lo = std::min(tiles_y, (nr + tiles_x - 1) / tiles_x);
  const std::int64_t target = std::clamp<std::int64_t>(std::min(budget_tiles / tiles_x, (tiles_y + 7) / 8), lo, tiles_y);
  const auto padded = [&](std::int64_t r) {  // padded tiles over all blocks of r rows
    const std::int64_t full = tiles_y / r, rest = tiles_y % r;
    const auto pad = [&](std::int64_t tiles) { return (tiles + nr - 1) / nr * nr - tiles; };
    return full * pad(r * tiles_x) + (rest ? pad(rest * tiles_x) : 0);
  };
  std::int64_t best = target;
  for (std::int64_t r = lo; r <= std::min(tiles_y, 2 * target); ++r) {
    const std::int64_t pb = padded(best), pr = padded(r);
    if (pr < pb || (pr == pb && std::abs(r - target) < std::abs(best - target))) best = r;
  }
  return best;
}

// y[Cout, H, W] (+)= conv3x3(x[Cin, H, W]) (+ bias) from the packed transformed weights u
// (transform_weights), for every sample of the batch (same H, W, batch for x and y; accumulate: y +=).
// x and y must not overlap; Cin, H, W >= 1.
template <class Arch = xsimd::default_arch>
void conv3x3_f23(PlanarBatch<const float> x, const float* u, const float* bias, PlanarBatch<float> y,
                 bool accumulate = false) {
  constexpr int MR = F23<Arch>::MR, NR = F23<Arch>::NR;
  const std::int64_t H = x.height, W = x.width, cin = x.channels, cout = y.channels;
  const std::int64_t tiles_y = x.batch * ((H + 1) / 2), tiles_x = (W + 1) / 2;  // tile rows of the whole batch
  const std::int64_t co_panels = F23<Arch>::co_panels(cout), u_slab = F23<Arch>::weight_slab(cout, cin);

  const std::int64_t R = block_rows(tiles_y, tiles_x, cin + cout, NR);
  const std::int64_t blocks = (tiles_y + R - 1) / R;

  const auto& tile_fns = gemm_detail::SgemmTiles<Arch, gemm_detail::AAccess::kStrided, false>::table;
  constexpr int NV = gemm_detail::SgemmBlocking<Arch>::NV;

  tbb::parallel_for(std::int64_t{0}, blocks, [&](std::int64_t blk) {
    const std::int64_t ty0 = blk * R, ty1 = std::min(tiles_y, ty0 + R);
    const std::int64_t nt = (ty1 - ty0) * tiles_x, panels = (nt + NR - 1) / NR, ntp = panels * NR;
    const std::int64_t v_slab = slab_stride(panels * cin * NR), m_slab = slab_stride(cout * ntp);
    float* v = detail::block_buffer(0).reserve(std::size_t(16 * v_slab));
    float* m = detail::block_buffer(1).reserve(std::size_t(16 * m_slab));
    const std::int64_t L = 2 * tiles_x + 2;
    float* tmp = detail::block_buffer(2).reserve(std::size_t(4 * L + W));
    float* zero = tmp + 4 * L;
    std::fill_n(zero, W, 0.f);

    detail::input_transform<NR>(x, ty0, ty1, panels, v_slab, v, tmp, zero);
    for (int xi = 0; xi < 16; ++xi) {
      const float* u_xi = u + xi * u_slab;
      const float* v_xi = v + xi * v_slab;
      float* m_xi = m + xi * m_slab;
      for (std::int64_t q = 0; q < panels; ++q)
        for (std::int64_t p = 0; p < co_panels; ++p) {
          const int rows = static_cast<int>(std::min<std::int64_t>(MR, cout - p * MR));
          tile_fns[rows - 1][NV - 1](cin, u_xi + p * cin * MR, MR, v_xi + q * cin * NR,
                                     m_xi + p * MR * ntp + q * NR, ntp, NR, 1.f, 0.f);
        }
    }
    detail::output_transform(m, ntp, m_slab, ty0, ty1, bias, y, tmp, accumulate);
  });
}

// One image: y[Cout, H, W] = conv3x3(x[Cin, H, W]) (+ bias).
template <class Arch = xsimd::default_arch>
void conv3x3_f23(ChwView<const float> x, const float* u, const float* bias, ChwView<float> y) {
  conv3x3_f23<Arch>(PlanarBatch<const float>::image(x), u, bias, PlanarBatch<float>::image(y));
}

// The weight gradient of conv3x3_f23 over a batch, in the Winograd domain (the adjoint of the forward
// Y_t = A^T [sum_ci U[co, ci] (.) V_t[ci]] A with U = G g G^T):
//   dU_xi[Cout, Cin] = sum over tiles t of dM_xi[co, t] V_xi[ci, t],   dM_t = A dY_t A^T
//   dw[co, ci] = G^T dU[co, ci] G   (in double, rounded once)  + beta * dw
// 16 GEMMs with K = tiles instead of one with K = 4 x tiles and 9 times the rows: 2.25x fewer
// multiply-adds than im2col. The tiles are cut into blocks (each block's sums in float, the blocks
// added in double) (V and dM of a block: about
// kWeightGradBlockFloats); per block the transforms run in parallel over channels and the 16 GEMMs
// in parallel over xi (each serial, accumulating into its dU_xi), blocks in order: the sums depend
// on the shapes alone, never on the thread count. Output tiles cut by an odd H or W contribute 0 for
// their missing pixels. dw: [Cout, Cin, 3, 3].
inline constexpr std::int64_t kWeightGradBlockFloats = std::int64_t{4} << 20;

template <class Arch = xsimd::default_arch>
void conv3x3_f23_weight_grad(PlanarBatch<const float> x, PlanarBatch<const float> dy, float beta, float* dw) {
  const std::int64_t H = x.height, W = x.width, cin = x.channels, cout = dy.channels;
  const std::int64_t tiles_y = (H + 1) / 2, tiles_x = (W + 1) / 2, rows_total = x.batch * tiles_y;
  const std::int64_t rows_per_block =
      std::clamp<std::int64_t>(kWeightGradBlockFloats / (16 * (cin + cout) * tiles_x), 1, rows_total);
  const std::int64_t max_nt = rows_per_block * tiles_x;
  const std::int64_t v_slab = cin * max_nt, m_slab = cout * max_nt, u_slab = cout * cin;
  // Buffers of the calling thread, reused across calls (a fresh 70 MB allocation per call cost more in
  // page faults than the GEMMs).
  thread_local gemm_detail::PackBuffer buffers[3];
  struct Span {
    float* p;
    float* data() const noexcept { return p; }
  };
  const Span v{buffers[0].reserve(std::size_t(16 * v_slab))}, m{buffers[1].reserve(std::size_t(16 * m_slab))},
      du{buffers[2].reserve(std::size_t(16 * u_slab))};
  // Each block's GEMMs sum in float (K = the block's tiles); the blocks are added in double, in
  // order (a float chain over all tiles of the batch would lose digits: see batch_conv.hpp).
  // (A named reference: the tasks below must use this thread's buffer, not their own thread's.)
  thread_local std::vector<double> calling_thread_acc;
  std::vector<double>& du_acc = calling_thread_acc;
  du_acc.assign(std::size_t(16 * u_slab), 0.0);
  const std::int64_t L = 2 * tiles_x + 2;  // a padded row: index c + 1 holds column c
  for (std::int64_t r0 = 0; r0 < rows_total; r0 += rows_per_block) {
    const std::int64_t r1 = std::min(rows_total, r0 + rows_per_block), nt = (r1 - r0) * tiles_x;
    // V_xi[ci, t] = (B^T d_t B)_xi, as the forward's input transform (plain row-major layout here):
    // rows first over the whole (zero-padded) width, then columns, one output row of tiles at a time.
    tbb::parallel_for(std::int64_t{0}, cin, [&](std::int64_t ci) {
      std::vector<float> t(std::size_t(4 * L + W), 0.f);
      const float* zero = t.data() + 4 * L;
      for (std::int64_t ty = r0; ty < r1; ++ty) {
        const float* plane = x.plane(ci, ty / tiles_y);
        const std::int64_t lty = ty % tiles_y;
        const float* r[4];
        for (int i = 0; i < 4; ++i) {
          const std::int64_t yy = 2 * lty - 1 + i;
          r[i] = (yy >= 0 && yy < H) ? plane + yy * W : zero;
        }
        float* __restrict t0 = t.data() + 1;  // t_i[c] for c in [-1, W]: padded columns
        float* __restrict t1 = t0 + L;
        float* __restrict t2 = t1 + L;
        float* __restrict t3 = t2 + L;
        const float* __restrict d0 = r[0];
        const float* __restrict d1 = r[1];
        const float* __restrict d2 = r[2];
        const float* __restrict d3 = r[3];
        for (std::int64_t c = 0; c < W; ++c) {
          t0[c] = d0[c] - d2[c];
          t1[c] = d1[c] + d2[c];
          t2[c] = d2[c] - d1[c];
          t3[c] = d1[c] - d3[c];
        }
        const std::int64_t base = (ty - r0) * tiles_x;
        for (int i = 0; i < 4; ++i) {
          const float* __restrict sr = t.data() + i * L;  // padded: sr[2 tx .. 2 tx + 3]
          float* __restrict o0 = v.data() + (4 * i + 0) * v_slab + ci * max_nt + base;
          float* __restrict o1 = o0 + v_slab;
          float* __restrict o2 = o1 + v_slab;
          float* __restrict o3 = o2 + v_slab;
          for (std::int64_t tx = 0; tx < tiles_x; ++tx) {
            const float c0 = sr[2 * tx], c1 = sr[2 * tx + 1], c2 = sr[2 * tx + 2], c3 = sr[2 * tx + 3];
            o0[tx] = c0 - c2;
            o1[tx] = c1 + c2;
            o2[tx] = c2 - c1;
            o3[tx] = c1 - c3;
          }
        }
      }
    });
    // dM_xi[co, t] = (A dY_t A^T)_xi: rows R = (y0, y0 + y1, y0 - y1, -y1) of each tile's two output
    // rows, then the same on columns. The output rows are first split into even and odd columns
    // (zero past W and H), so that every one of the 16 outputs is one vectorizable loop over the tiles.
    tbb::parallel_for(std::int64_t{0}, cout, [&](std::int64_t co) {
      std::vector<float> buf(std::size_t(12 * tiles_x), 0.f);
      float* __restrict ae = buf.data();  // row 2 lty: even, odd columns; row 2 lty + 1: even, odd
      float* __restrict ao = ae + tiles_x;
      float* __restrict be = ao + tiles_x;
      float* __restrict bo = be + tiles_x;
      float* __restrict p = bo + tiles_x;  // p_i = R_i's even column, q_i its odd one, i = 0..3
      float* __restrict q = p + 4 * tiles_x;
      for (std::int64_t ty = r0; ty < r1; ++ty) {
        const float* plane = dy.plane(co, ty / tiles_y);
        const std::int64_t lty = ty % tiles_y, y0 = 2 * lty;
        const float* r0p = plane + y0 * W;
        const float* r1p = y0 + 1 < H ? r0p + W : nullptr;
        for (std::int64_t tx = 0; tx < tiles_x; ++tx) {
          const std::int64_t c = 2 * tx;
          ae[tx] = r0p[c];
          ao[tx] = c + 1 < W ? r0p[c + 1] : 0.f;
          be[tx] = r1p ? r1p[c] : 0.f;
          bo[tx] = r1p && c + 1 < W ? r1p[c + 1] : 0.f;
        }
        for (std::int64_t tx = 0; tx < tiles_x; ++tx) {
          p[tx] = ae[tx];
          p[tiles_x + tx] = ae[tx] + be[tx];
          p[2 * tiles_x + tx] = ae[tx] - be[tx];
          p[3 * tiles_x + tx] = -be[tx];
          q[tx] = ao[tx];
          q[tiles_x + tx] = ao[tx] + bo[tx];
          q[2 * tiles_x + tx] = ao[tx] - bo[tx];
          q[3 * tiles_x + tx] = -bo[tx];
        }
        const std::int64_t base = (ty - r0) * tiles_x;
        for (int i = 0; i < 4; ++i) {
          const float* __restrict pi = p + i * tiles_x;
          const float* __restrict qi = q + i * tiles_x;
          float* __restrict o0 = m.data() + (4 * i + 0) * m_slab + co * max_nt + base;
          float* __restrict o1 = o0 + m_slab;
          float* __restrict o2 = o1 + m_slab;
          float* __restrict o3 = o2 + m_slab;
          for (std::int64_t tx = 0; tx < tiles_x; ++tx) {
            o0[tx] = pi[tx];
            o1[tx] = pi[tx] + qi[tx];
            o2[tx] = pi[tx] - qi[tx];
            o3[tx] = -qi[tx];
          }
        }
      }
    });
    // dU_xi += dM_xi V_xi^T: the 16 GEMMs in parallel, each on one thread.
    tbb::parallel_for(0, 16, [&](int xi) {
      gemm_detail::sgemm_run<Arch>({Trans::no, Trans::yes, cout, cin, nt, 1.f, m.data() + xi * m_slab, max_nt,
                                    v.data() + xi * v_slab, max_nt, 0.f, du.data() + xi * u_slab, cin},
                                   1);
      double* acc = du_acc.data() + xi * u_slab;
      const float* part = du.data() + xi * u_slab;
      for (std::int64_t i = 0; i < u_slab; ++i) acc[i] += double(part[i]);
    });
  }
  // dw = G^T dU G per (co, ci): G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]].
  tbb::parallel_for(std::int64_t{0}, cout, [&](std::int64_t co) {
    for (std::int64_t ci = 0; ci < cin; ++ci) {
      double u[4][4];
      for (int xi = 0; xi < 16; ++xi) u[xi / 4][xi % 4] = du_acc[std::size_t(xi * u_slab + co * cin + ci)];
      double t[3][4];  // G^T dU: rows
      for (int j = 0; j < 4; ++j) {
        t[0][j] = u[0][j] + 0.5 * (u[1][j] + u[2][j]);
        t[1][j] = 0.5 * (u[1][j] - u[2][j]);
        t[2][j] = 0.5 * (u[1][j] + u[2][j]) + u[3][j];
      }
      float* out = dw + (co * cin + ci) * 9;
      for (int i = 0; i < 3; ++i) {  // (G^T dU) G: columns
        const double g0 = t[i][0] + 0.5 * (t[i][1] + t[i][2]), g1 = 0.5 * (t[i][1] - t[i][2]),
                     g2 = 0.5 * (t[i][1] + t[i][2]) + t[i][3];
        const double vals[3] = {g0, g1, g2};
        for (int j = 0; j < 3; ++j)
          out[i * 3 + j] = float(vals[j] + (beta != 0.f ? double(beta) * double(out[i * 3 + j]) : 0.0));
      }
    }
  });
}

}  // namespace ferrite::cpu::winograd
