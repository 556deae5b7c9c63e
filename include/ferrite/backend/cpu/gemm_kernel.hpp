#pragma once
// The pieces of the packed SGEMM (BLIS / GotoBLAS structure), templated on the xsimd arch:
//   * SgemmBlocking<Arch>: register tile MR x NR and cache blocks KC / MC / NC,
//   * pack_a_panel / pack_b_panel: copy op(A) / op(B) into the layouts the micro-kernel streams
//     (transposes happen here, so the micro-kernel needs no Trans cases of its own),
//   * sgemm_tile<Arch, Rows, NV, Access, TransC>: the register-blocked micro-kernel (broadcast an
//     element of A, FMA it with NV vectors of B).
// The driver that orients the problem, loops over blocks and splits C over threads is gemm.hpp.
//
// Layouts (row-major C[M, N] = op(A)[M, K] * op(B)[K, N]):
//   A micro-panel, packed:   ap[p * MR + r] = op(A)(row0 + r, pc + p)
//   A read in place:         A itself when it is small or read once (see read_a_in_place)
//   B micro-panel, packed:   bp[p * NR + j] = op(B)(pc + p, col0 + j), zero-padded to NR
// Every element of C is one FMA chain acc = fma(a, b, acc) over p in increasing order, whatever
// tile (full or edge) computes it, so results never depend on how C is split between threads.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

#include <xsimd/xsimd.hpp>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "ferrite/core/op_params.hpp"

namespace ferrite::cpu::gemm_detail {

// Register tile and cache blocks for one SIMD width.
//   AVX-512 (16 floats): 8 x 32 tile = 16 zmm accumulators + 2 B vectors + 1 broadcast. Zen 4 runs
//     one 512-bit FMA per cycle (two 256-bit pipes, double-pumped) with 4 cycles latency, so 16
//     independent chains hide latency with room to spare, and MR = 8 divides the batch (32) of the
//     MLP shapes exactly, so those run with no ragged row tiles. Loads are not the bottleneck at
//     one zmm FMA per cycle, so taller tiles buy nothing here: MR = 6 / 12 / 14 (28 accumulators)
//     measured within 3 % of MR = 8 on 512^3, 1024^3 and the MLP shapes, none faster overall.
//   AVX2 / SSE (16 registers): 6 x 2W tile = 12 accumulators (the classic Haswell 6 x 16 shape).
//   Cache blocks (AVX-512 / Zen 4: 32 KiB L1d, 1 MiB L2 per core, 32 MiB shared L3):
//     KC = 1024: a B micro-panel (KC x NR = 128 KiB) lives in L2, not L1. The tile needs about
//       10 B/cycle of panel data, well within what Zen 4's L2 streams, and long K blocks mean
//       fewer C updates. Measured on one core, KC 256 -> 1024: 1024^3 101 -> 108 GFLOP/s,
//       32 x 128 x 784 (MLP layer 1) 102 -> 108, 512^3 unchanged (111).
//     MC = 128: the packed A block (MC x KC = 512 KiB) plus the B micro-panel fit in L2.
//     NC = 1024: the packed B block (KC x NC = 4 MiB per thread) stays in L3.
//   Narrower SIMD (AVX2-era cores, 256 KiB L2) keeps the classic KC = 256.
template <class Arch>
struct SgemmBlocking {
  using Batch = xsimd::batch<float, Arch>;
  static constexpr int W = static_cast<int>(Batch::size);
  static constexpr int MR = W >= 16 ? 8 : 6;
  static constexpr int NV = 2;  // vectors per tile row
  static constexpr int NR = NV * W;
  static constexpr std::int64_t KC = W >= 16 ? 1024 : 256;
  static constexpr std::int64_t MC = W >= 16 ? 128 : 192;  // multiple of MR
  static constexpr std::int64_t NC = 1024;                 // multiple of NR
  static_assert(MC % MR == 0 && NC % NR == 0);
};

// ---------------------------------------------------------------------------------------------
// Packing

#if defined(__AVX__)
// dst[c * ldd + r] = src[r * lds + c] for an 8 x 8 block (unaligned on both sides).
[[gnu::always_inline]] inline void transpose_8x8(const float* src, std::int64_t lds, float* dst,
                                           std::int64_t ldd) {
  __m256 r0 = _mm256_loadu_ps(src + 0 * lds), r1 = _mm256_loadu_ps(src + 1 * lds);
  __m256 r2 = _mm256_loadu_ps(src + 2 * lds), r3 = _mm256_loadu_ps(src + 3 * lds);
  __m256 r4 = _mm256_loadu_ps(src + 4 * lds), r5 = _mm256_loadu_ps(src + 5 * lds);
  __m256 r6 = _mm256_loadu_ps(src + 6 * lds), r7 = _mm256_loadu_ps(src + 7 * lds);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(dst + 0 * ldd, _mm256_permute2f128_ps(s0, s4, 0x20));
  _mm256_storeu_ps(dst + 1 * ldd, _mm256_permute2f128_ps(s1, s5, 0x20));
  _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(s2, s6, 0x20));
  _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(s3, s7, 0x20));
  _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(s0, s4, 0x31));
  _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(s1, s5, 0x31));
  _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(s2, s6, 0x31));
  _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(s3, s7, 0x31));
}
#endif

// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols: the strided gather behind packing
// A (Trans::no) and B (Trans::yes). Full 8 x 8 blocks go through registers when AVX is there.
inline void transpose_block(const float* src, std::int64_t lds, std::int64_t rows, std::int64_t cols,
                            float* dst, std::int64_t ldd) {
  std::int64_t r0 = 0;
#if defined(__AVX__)
  for (; r0 + 8 <= rows; r0 += 8) {
    std::int64_t c = 0;
    for (; c + 8 <= cols; c += 8) transpose_8x8(src + r0 * lds + c, lds, dst + c * ldd + r0, ldd);
    for (; c < cols; ++c)
      for (std::int64_t r = r0; r < r0 + 8; ++r) dst[c * ldd + r] = src[r * lds + c];
  }
#endif
  for (; r0 < rows; ++r0)
    for (std::int64_t c = 0; c < cols; ++c) dst[c * ldd + r0] = src[r0 * lds + c];
}

// One A micro-panel: rows [row0, row0 + rows) of op(A), columns [pc, pc + kc).
//   ap[p * MR + r] = op(A)(row0 + r, pc + p); rows >= `rows` are left untouched (the edge
//   micro-kernel for `rows` rows never reads them).
template <int MR>
inline void pack_a_panel(Trans ta, const float* a, std::int64_t lda, std::int64_t row0,
                         std::int64_t rows, std::int64_t pc, std::int64_t kc, float* ap) {
  if (ta == Trans::yes) {  // op(A)(i, p) = a[p * lda + i]: MR contiguous floats per p
    const float* src = a + pc * lda + row0;
    if (rows == MR) {
      for (std::int64_t p = 0; p < kc; ++p) std::memcpy(ap + p * MR, src + p * lda, MR * sizeof(float));
    } else {
      for (std::int64_t p = 0; p < kc; ++p)
        for (std::int64_t r = 0; r < rows; ++r) ap[p * MR + r] = src[p * lda + r];
    }
  } else {  // op(A)(i, p) = a[i * lda + p]: transpose the rows x kc block
    transpose_block(a + row0 * lda + pc, lda, rows, kc, ap, MR);
  }
}

// One B micro-panel: columns [col0, col0 + cols) of op(B), rows [pc, pc + kc), zero-padded to NR.
template <int NR>
inline void pack_b_panel(Trans tb, const float* b, std::int64_t ldb, std::int64_t col0,
                         std::int64_t cols, std::int64_t pc, std::int64_t kc, float* bp) {
  if (tb == Trans::no) {  // op(B)(p, j) = b[p * ldb + j]: a row copy per p
    const float* src = b + pc * ldb + col0;
    if (cols == NR) {
      for (std::int64_t p = 0; p < kc; ++p) std::memcpy(bp + p * NR, src + p * ldb, NR * sizeof(float));
    } else {
      for (std::int64_t p = 0; p < kc; ++p) {
        std::memcpy(bp + p * NR, src + p * ldb, static_cast<std::size_t>(cols) * sizeof(float));
        std::fill(bp + p * NR + cols, bp + (p + 1) * NR, 0.0f);
      }
    }
  } else {  // op(B)(p, j) = b[j * ldb + p]: transpose the cols x kc block of stored rows
    transpose_block(b + col0 * ldb + pc, ldb, cols, kc, bp, NR);
    if (cols < NR)
      for (std::int64_t p = 0; p < kc; ++p) std::fill(bp + p * NR + cols, bp + (p + 1) * NR, 0.0f);
  }
}

// ---------------------------------------------------------------------------------------------
// Micro-kernel

// The C update every tile applies to its accumulator, one vector at a time:
//   beta == 0: c = alpha * acc                (C is not read, so NaNs in C do not propagate)
//   else:      c = fma(alpha, acc, beta * c)  (later K blocks pass beta = 1: c = fma(alpha, acc, c))
// update_c_scalar is the same arithmetic one float at a time (bit-identical: both are IEEE mul / fma).
template <class Batch>
[[gnu::always_inline]] inline void update_c(float* c, Batch acc, float alpha, float beta) {
  if (beta == 0.0f)
    (Batch(alpha) * acc).store_unaligned(c);
  else
    xsimd::fma(Batch(alpha), acc, Batch(beta) * Batch::load_unaligned(c)).store_unaligned(c);
}
// (GCC cannot see that count <= Count and warns about the stack tile it reads; it is written.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
template <int Count>
[[gnu::always_inline]] inline void update_c_scalar(float* c, const float* acc, int count, float alpha,
                                             float beta) {
  if (count == Count) {  // fixed trip count: vectorizes
    if (beta == 0.0f)
      for (int i = 0; i < Count; ++i) c[i] = alpha * acc[i];
    else
      for (int i = 0; i < Count; ++i) c[i] = std::fma(alpha, acc[i], beta * c[i]);
  } else {
    if (beta == 0.0f)
      for (int i = 0; i < count; ++i) c[i] = alpha * acc[i];
    else
      for (int i = 0; i < count; ++i) c[i] = std::fma(alpha, acc[i], beta * c[i]);
  }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// Where the micro-kernel reads op(A)(r, p) of its Rows x kc panel from:
//   kStrided: a[p * a_stride + r]  -- a packed panel (a_stride = MR) or A itself when ta == yes
//   kRows:    a[r * a_stride + p]  -- A itself when ta == no (rows read in place, no transpose)
enum class AAccess { kStrided, kRows };

// Tile (Rows x NV * W) = Ap[Rows, kc] * Bp[kc, NV * W], then the C update above.
//   Bp is a packed micro-panel (row stride NR). Rows <= MR and NV <= NR / W are compile-time so
//   that edge tiles run the same register-resident loop.
//   TransC == false: tile (r, j) is C[r * ldc + j]; cols <= NV * W columns are written (a ragged
//   right edge goes through a stack copy with the same arithmetic).
//   TransC == true: the tile is a block of C^T (the driver swapped A and B, see gemm.hpp):
//   tile (r, j) is C[j * ldc + r].
template <class Arch, int Rows, int NV, AAccess Access, bool TransC>
inline void sgemm_tile(std::int64_t kc, const float* __restrict a, std::int64_t a_stride,
                       const float* __restrict bp, float* c, std::int64_t ldc, int cols,
                       float alpha, float beta) {
  using Batch = xsimd::batch<float, Arch>;
  constexpr int W = SgemmBlocking<Arch>::W;
  constexpr int MR = SgemmBlocking<Arch>::MR;
  constexpr int NR = SgemmBlocking<Arch>::NR;
  static_assert(Rows >= 1 && Rows <= MR && NV >= 1 && NV * W <= NR);

  Batch acc[Rows][NV];
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = Batch(0.0f);

  if constexpr (Access == AAccess::kStrided) {
#pragma GCC unroll 4
    for (std::int64_t p = 0; p < kc; ++p) {
      Batch bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) bv[v] = Batch::load_aligned(bp + v * W);
#pragma GCC unroll 16
      for (int r = 0; r < Rows; ++r) {
        const Batch av(a[r]);  // broadcast
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[r][v] = xsimd::fma(av, bv[v], acc[r][v]);
      }
      a += a_stride;
      bp += NR;
    }
  } else {
    const float* rows[Rows];
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r) rows[r] = a + r * a_stride;
#pragma GCC unroll 4
    for (std::int64_t p = 0; p < kc; ++p) {
      Batch bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) bv[v] = Batch::load_aligned(bp + v * W);
#pragma GCC unroll 16
      for (int r = 0; r < Rows; ++r) {
        const Batch av(rows[r][p]);  // broadcast
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[r][v] = xsimd::fma(av, bv[v], acc[r][v]);
      }
      bp += NR;
    }
  }

  if constexpr (!TransC) {
    if (cols == NV * W) {
#pragma GCC unroll 16
      for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) update_c(c + r * ldc + v * W, acc[r][v], alpha, beta);
      return;
    }
  }
  // Ragged right edge, or a transposed tile: park the accumulators on the stack (fully unrolled,
  // so acc itself stays in registers) and update C from there with the same arithmetic.
  alignas(64) float tile[Rows][NV * W];
#pragma GCC unroll 16
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v].store_aligned(tile[r] + v * W);
  if constexpr (!TransC) {
    for (int r = 0; r < Rows; ++r) update_c_scalar<NV * W>(c + r * ldc, tile[r], cols, alpha, beta);
  } else {
    alignas(64) float tile_t[NV * W][MR];
    transpose_block(&tile[0][0], NV * W, Rows, cols, &tile_t[0][0], MR);
    for (int j = 0; j < cols; ++j) update_c_scalar<Rows>(c + j * ldc, tile_t[j], Rows, alpha, beta);
  }
}

using SgemmTileFn = void (*)(std::int64_t, const float*, std::int64_t, const float*, float*,
                             std::int64_t, int, float, float);

// tiles[rows - 1][nv - 1]: the micro-kernel for an edge (or full) tile of rows x nv vectors.
template <class Arch, AAccess Access, bool TransC>
struct SgemmTiles {
  static constexpr int MR = SgemmBlocking<Arch>::MR;
  static constexpr int NV = SgemmBlocking<Arch>::NV;
  using Table = std::array<std::array<SgemmTileFn, NV>, MR>;

  template <int... I>
  static constexpr Table make(std::integer_sequence<int, I...>) {
    Table t{};
    ((t[I / NV][I % NV] = &sgemm_tile<Arch, I / NV + 1, I % NV + 1, Access, TransC>), ...);
    return t;
  }
  static constexpr Table table = make(std::make_integer_sequence<int, MR * NV>{});
};

}  // namespace ferrite::cpu::gemm_detail
