#pragma once
// Fast CPU SGEMM: C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C, row-major.
// BLIS / GotoBLAS structure (kernel pieces in gemm_kernel.hpp):
//
//   for jc in N by NC:                      B block  KC x NC  -> L3
//     for pc in K by KC:                    (K blocks depend on K only)
//       pack B[pc:+kc, jc:+nc] into NR-wide micro-panels
//       for ic in M by MC:                  A block  MC x KC  -> L2
//         pack A[ic:+mc, pc:+kc] into MR-tall micro-panels (or read A in place when small)
//         for jr in nc by NR:               B micro-panel KC x NR -> L1 / L2
//           for ir in mc by MR:
//             micro-kernel: C[ir:+MR, jr:+NR] (+)= A-panel * B-panel   (registers)
// Block sizes and the register tile are in gemm_kernel.hpp (SgemmBlocking).
//
// Threads: C is cut into a grid of blocks on MR / NR boundaries, one TBB task per block, each task
// runs the loops above on its block with its own thread-local pack buffers. K is never split, so
// every element of C is accumulated by one task in the same order for any thread count: results
// are bit-identical with 1 or N threads. Small problems stay on the calling thread.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <new>

#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include "ferrite/backend/cpu/gemm_kernel.hpp"
#include "ferrite/backend/cpu/threading.hpp"
#include "ferrite/core/op_params.hpp"

namespace ferrite::cpu {

namespace gemm_detail {

// Below this many FLOPs (2 M N K) a call runs on the calling thread: a TBB dispatch costs about
// 1 us, more than splitting saves. Measured on Zen 4 (2 cores): the MLP's 0.5 MFLOP calls
// (32 x 64 x 128 and alike) gain about 20 % from 2 threads, the 0.04 MFLOP ones (32 x 10 x 64) lose
// about 35 % (0.86 -> 1.17 us).
inline constexpr double kMinParallelFlops = 1 << 17;

// A 64-byte aligned float buffer that only grows; one per thread and operand, so steady-state
// calls allocate nothing.
class PackBuffer {
 public:
  PackBuffer() = default;
  PackBuffer(const PackBuffer&) = delete;
  PackBuffer& operator=(const PackBuffer&) = delete;
  ~PackBuffer() { release(); }

  float* reserve(std::size_t floats) {
    if (floats > capacity_) {
      release();
      data_ = static_cast<float*>(::operator new(floats * sizeof(float), std::align_val_t(64)));
      capacity_ = floats;
    }
    return data_;
  }

 private:
  void release() noexcept {
    if (data_) ::operator delete(data_, std::align_val_t(64));
    data_ = nullptr;
    capacity_ = 0;
  }
  float* data_ = nullptr;
  std::size_t capacity_ = 0;
};

// Buffers are held only inside a task body that makes no TBB calls, so no other task can run on
// this thread while they are in use.
inline PackBuffer& pack_buffer_a() {
  thread_local PackBuffer buffer;
  return buffer;
}
inline PackBuffer& pack_buffer_b() {
  thread_local PackBuffer buffer;
  return buffer;
}

// One gemm call, possibly re-oriented: when trans_c is set the driver computes C^T =
// op(B)^T op(A)^T, so a/b/m/n here are the caller's b/a/n/m with flipped Trans flags and the
// tiles are written transposed into the caller's C (see sgemm_run).
struct SgemmArgs {
  Trans ta, tb;
  std::int64_t m, n, k;
  float alpha;
  const float* a;
  std::int64_t lda;
  const float* b;
  std::int64_t ldb;
  float beta;
  float* c;
  std::int64_t ldc;
  bool trans_c = false;
};

// The K block length: at most KC, equal-sized blocks (KC = 1024: 1500 -> 2 x 752, not
// 1024 + 476) rounded to 8 for the 8 x 8 transposes. Depends on k alone, which keeps results
// independent of the thread count.
template <class Arch>
inline std::int64_t k_block(std::int64_t k) {
  constexpr std::int64_t KC = SgemmBlocking<Arch>::KC;
  const std::int64_t blocks = (k + KC - 1) / KC;
  const std::int64_t step = (k + blocks - 1) / blocks;
  return std::min(KC, (step + 7) / 8 * 8);
}

// Whether a block reads A in place instead of packing it. Packing buys contiguous, L2-resident
// micro-panels that are re-read once per NR columns; it does not pay when A is small (it is
// cache-resident anyway) or is read only once or twice (few column panels).
template <class Arch>
inline bool read_a_in_place(std::int64_t block_m, std::int64_t block_n, std::int64_t k) {
  constexpr int NR = SgemmBlocking<Arch>::NR;
  return block_m * k <= 16384 || block_n <= 2 * NR;
}

// C[i0:i1, j0:j1] (of the oriented problem) for the whole K range. i0 / j0 are multiples of
// MR / NR (or the edges).
template <class Arch>
void sgemm_block(const SgemmArgs& g, std::int64_t i0, std::int64_t i1, std::int64_t j0,
                 std::int64_t j1) {
  using Blk = SgemmBlocking<Arch>;
  constexpr int MR = Blk::MR, NR = Blk::NR, W = Blk::W;
  const std::int64_t kc_step = k_block<Arch>(g.k);
  const bool in_place = read_a_in_place<Arch>(i1 - i0, j1 - j0, g.k);
  const std::int64_t mc_max = std::min<std::int64_t>(Blk::MC, (i1 - i0 + MR - 1) / MR * MR);
  const std::int64_t nc_max = std::min<std::int64_t>(Blk::NC, (j1 - j0 + NR - 1) / NR * NR);
  float* abuf = in_place ? nullptr : pack_buffer_a().reserve(static_cast<std::size_t>(mc_max * kc_step));
  float* bbuf = pack_buffer_b().reserve(static_cast<std::size_t>(nc_max * kc_step));

  // The tile table for how A is read and how C is written.
  const bool a_rows = in_place && g.ta == Trans::no;
  const auto& tiles =
      g.trans_c ? (a_rows ? SgemmTiles<Arch, AAccess::kRows, true>::table
                          : SgemmTiles<Arch, AAccess::kStrided, true>::table)
                : (a_rows ? SgemmTiles<Arch, AAccess::kRows, false>::table
                          : SgemmTiles<Arch, AAccess::kStrided, false>::table);
  const std::int64_t c_row_step = g.trans_c ? 1 : g.ldc, c_col_step = g.trans_c ? g.ldc : 1;

  for (std::int64_t jc = j0; jc < j1; jc += Blk::NC) {
    const std::int64_t nc = std::min(Blk::NC, j1 - jc);
    for (std::int64_t pc = 0; pc < g.k; pc += kc_step) {
      const std::int64_t kc = std::min(kc_step, g.k - pc);
      const float beta = pc == 0 ? g.beta : 1.0f;  // later K blocks accumulate onto C
      for (std::int64_t jr = 0; jr < nc; jr += NR)
        pack_b_panel<NR>(g.tb, g.b, g.ldb, jc + jr, std::min<std::int64_t>(NR, nc - jr), pc, kc,
                         bbuf + jr * kc);
      for (std::int64_t ic = i0; ic < i1; ic += Blk::MC) {
        const std::int64_t mc = std::min(Blk::MC, i1 - ic);
        if (!in_place)
          for (std::int64_t ir = 0; ir < mc; ir += MR)
            pack_a_panel<MR>(g.ta, g.a, g.lda, ic + ir, std::min<std::int64_t>(MR, mc - ir), pc,
                             kc, abuf + ir * kc);
        for (std::int64_t jr = 0; jr < nc; jr += NR) {
          const int cols = static_cast<int>(std::min<std::int64_t>(NR, nc - jr));
          const int nv = (cols + W - 1) / W;
          float* c_col = g.c + (jc + jr) * c_col_step;
          for (std::int64_t ir = 0; ir < mc; ir += MR) {
            const int rows = static_cast<int>(std::min<std::int64_t>(MR, mc - ir));
            const std::int64_t i = ic + ir;
            const float* ap;
            std::int64_t a_stride;
            if (!in_place) {
              ap = abuf + ir * kc, a_stride = MR;
            } else if (g.ta == Trans::yes) {  // op(A)(i, p) = a[p * lda + i]
              ap = g.a + pc * g.lda + i, a_stride = g.lda;
            } else {  // op(A)(i, p) = a[i * lda + p]
              ap = g.a + i * g.lda + pc, a_stride = g.lda;
            }
            tiles[rows - 1][nv - 1](kc, ap, a_stride, bbuf + jr * kc, c_col + i * c_row_step,
                                    g.ldc, cols, g.alpha, beta);
          }
        }
      }
    }
  }
}

// C = beta * C (k == 0 or alpha == 0: A and B are not read). beta == 0 writes zeros.
inline void scale_c(const SgemmArgs& g) {
  if (g.beta == 1.0f) return;
  for (std::int64_t i = 0; i < g.m; ++i) {
    float* row = g.c + i * g.ldc;
    if (g.beta == 0.0f)
      std::fill(row, row + g.n, 0.0f);
    else
      for (std::int64_t j = 0; j < g.n; ++j) row[j] *= g.beta;
  }
}

// Element counts the packing has to transpose (the expensive packing) in each orientation.
// Packing B transposes when op(B) = B^T; packing A transposes when op(A) = A and A is packed.
template <class Arch>
inline std::int64_t transposed_elements(Trans ta, Trans tb, std::int64_t m, std::int64_t n,
                                        std::int64_t k) {
  std::int64_t count = tb == Trans::yes ? n * k : 0;
  if (ta == Trans::no && !read_a_in_place<Arch>(m, n, k)) count += m * k;
  return count;
}

// Runs a gemm on `threads` threads:
// 1. Orientation. C = op(A) op(B) is also C^T = op(B)^T op(A)^T; the tiles vectorize along the
//    columns of whichever product is computed, and the one needing fewer transposes while packing
//    wins. E.g. the MLP forward X[32, 784] W^T with W [128, 784]: computed directly it transposes
//    all of W into B panels; as C^T = W X^T it reads W rows in place and transposes only X.
//    Swapping does not change results: each element is the same FMA chain (a * b == b * a).
// 2. Grid. C is cut into grid_m x grid_n blocks on MR / NR boundaries, one task per block
//    (grid_m * grid_n <= threads: on a busy 2-core machine more tasks only add packing).
//    Splitting N makes every task pack A again (m x k, unless A is read in place), splitting M
//    packs B again (k x n): split the longer side, whose duplicate is the cheaper one.
template <class Arch>
void sgemm_run(const SgemmArgs& caller, int threads) {
  using Blk = SgemmBlocking<Arch>;
  constexpr int MR = Blk::MR, NR = Blk::NR;
  if (caller.m <= 0 || caller.n <= 0) return;
  if (caller.k == 0 || caller.alpha == 0.0f) return scale_c(caller);

  auto flip = [](Trans t) { return t == Trans::no ? Trans::yes : Trans::no; };
  SgemmArgs g = caller;
  if (transposed_elements<Arch>(flip(caller.tb), flip(caller.ta), caller.n, caller.m, caller.k) <
      transposed_elements<Arch>(caller.ta, caller.tb, caller.m, caller.n, caller.k)) {
    g = {flip(caller.tb), flip(caller.ta), caller.n, caller.m, caller.k, caller.alpha, caller.b,
         caller.ldb, caller.a, caller.lda, caller.beta, caller.c, caller.ldc, true};
  }

  const std::int64_t m_panels = (g.m + MR - 1) / MR, n_panels = (g.n + NR - 1) / NR;
  const double flops = 2.0 * static_cast<double>(g.m) * static_cast<double>(g.n) * static_cast<double>(g.k);
  std::int64_t grid_m = 1, grid_n = 1;
  if (threads > 1 && flops >= kMinParallelFlops) {
    if (g.m <= g.n) {
      grid_n = std::min<std::int64_t>(threads, n_panels);
      grid_m = std::min<std::int64_t>(threads / grid_n, m_panels);
    } else {
      grid_m = std::min<std::int64_t>(threads, m_panels);
      grid_n = std::min<std::int64_t>(threads / grid_m, n_panels);
    }
  }
  const std::int64_t tasks = grid_m * grid_n;
  if (tasks <= 1) return sgemm_block<Arch>(g, 0, g.m, 0, g.n);

  // Task t owns panel rows [tm * m_panels / grid_m, ...) and panel columns likewise.
  auto run_task = [&](std::int64_t t) {
    const std::int64_t tm = t / grid_n, tn = t % grid_n;
    const std::int64_t i0 = tm * m_panels / grid_m * MR;
    const std::int64_t i1 = std::min(g.m, (tm + 1) * m_panels / grid_m * MR);
    const std::int64_t j0 = tn * n_panels / grid_n * NR;
    const std::int64_t j1 = std::min(g.n, (tn + 1) * n_panels / grid_n * NR);
    if (i0 < i1 && j0 < j1) sgemm_block<Arch>(g, i0, i1, j0, j1);
  };
  tbb::parallel_for(std::int64_t{0}, tasks, run_task, tbb::static_partitioner());
}

}  // namespace gemm_detail

// The threads a gemm call may use now (ThreadLimit, or the arena it is called from).
inline int gemm_threads() {
  return std::min(current_threads(), tbb::this_task_arena::max_concurrency());
}

// Arch-explicit entry point (tests run the AVX2 / SSE widths through it too).
template <class Arch>
inline void sgemm_arch(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k,
                       float alpha, const float* a, std::int64_t lda, const float* b,
                       std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  gemm_detail::sgemm_run<Arch>({ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc},
                               gemm_threads());
}

// C[M, N] = alpha * op(A) * op(B) + beta * C. A is [M, K] (ta == no) or [K, M] (ta == yes) with
// row stride lda; B is [K, N] or [N, K] with row stride ldb. beta == 0 does not read C.
inline void sgemm(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                  const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta,
                  float* c, std::int64_t ldc) {
  sgemm_arch<xsimd::default_arch>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace ferrite::cpu
