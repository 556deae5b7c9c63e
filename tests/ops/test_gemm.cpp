// The packed xsimd + TBB SGEMM (backend/cpu/gemm.hpp) against the scalar oracle
// (backend/cpu/reference/gemm.hpp), and ops::gemm's shape checks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ferrite/backend/cpu/gemm.hpp"
#include "ferrite/backend/cpu/reference/gemm.hpp"
#include "ferrite/backend/cpu/threading.hpp"
#include "ferrite/ops/gemm.hpp"

using namespace ferrite;

namespace {

// A row-major matrix with a row stride ld >= cols; the padding holds a sentinel that must survive.
struct Mat {
  std::int64_t rows = 0, cols = 0, ld = 0;
  std::vector<float> data;
  Mat(std::int64_t r, std::int64_t c, std::int64_t pad) : rows(r), cols(c), ld(c + pad) {
    data.assign(static_cast<std::size_t>(std::max<std::int64_t>(r * ld, 1)), kPadding);
  }
  float& at(std::int64_t r, std::int64_t c) { return data[static_cast<std::size_t>(r * ld + c)]; }
  MatView<float> view() { return {data.data(), rows, cols, ld}; }
  MatView<const float> cview() const { return {data.data(), rows, cols, ld}; }
  static constexpr float kPadding = -777.0f;
};

Mat random_mat(std::int64_t r, std::int64_t c, std::int64_t pad, std::mt19937& rng) {
  Mat m(r, c, pad);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (std::int64_t i = 0; i < r; ++i)
    for (std::int64_t j = 0; j < c; ++j) m.at(i, j) = dist(rng);
  return m;
}

Mat abs_of(const Mat& m) {
  Mat out = m;
  for (auto& v : out.data) v = std::fabs(v);
  return out;
}

// Which kernel to run: the default arch through the public entry point, or an explicit narrower
// arch (the AVX2 / SSE fallbacks of the same template) with a fixed task count.
using GemmFn = void (*)(Trans, Trans, std::int64_t, std::int64_t, std::int64_t, float, const float*,
                        std::int64_t, const float*, std::int64_t, float, float*, std::int64_t);

struct Case {
  Trans ta, tb;
  std::int64_t m, n, k;
  float alpha, beta;
  std::int64_t pad;  // extra columns of every operand's leading dimension
};

std::string describe(const Case& c) {
  return std::string("op ") + trans_name(c.ta) + trans_name(c.tb) + " M=" + std::to_string(c.m) +
         " N=" + std::to_string(c.n) + " K=" + std::to_string(c.k) + " alpha=" +
         std::to_string(c.alpha) + " beta=" + std::to_string(c.beta) + " pad=" + std::to_string(c.pad);
}

// Runs one case through `fn` and the reference and checks every element, plus the padding.
// Tolerance: the fast kernel sums K products in float (one FMA chain per K block, then
// c = fma(alpha, acc, c) per block), so its error is at most about (K + 3) * u * S with
// u = 2^-24 and S = |alpha| * sum_p |a_ip| |b_pj| + |beta| |c_ij| (the standard gamma_K bound;
// the reference accumulates in double). We allow (K + 4) * 2^-23 * S: twice that bound, far below
// what a wrong index, a lost K block or a skipped beta would cause.
void check_case(const Case& cs, GemmFn fn, std::mt19937& rng) {
  SCOPED_TRACE(describe(cs));
  const bool at = cs.ta == Trans::yes, bt = cs.tb == Trans::yes;
  Mat a = random_mat(at ? cs.k : cs.m, at ? cs.m : cs.k, cs.pad, rng);
  Mat b = random_mat(bt ? cs.n : cs.k, bt ? cs.k : cs.n, cs.pad, rng);
  Mat c = random_mat(cs.m, cs.n, cs.pad, rng);
  if (cs.beta == 0.0f)  // beta == 0 must not read C: NaNs there must not reach the result
    for (std::int64_t i = 0; i < cs.m; ++i)
      for (std::int64_t j = 0; j < cs.n; ++j) c.at(i, j) = std::numeric_limits<float>::quiet_NaN();

  Mat expected = c, bound = abs_of(c);
  cpu::reference::gemm(cs.ta, cs.tb, cs.alpha, a.cview(), b.cview(), cs.beta, expected.view());
  cpu::reference::gemm(cs.ta, cs.tb, std::fabs(cs.alpha), abs_of(a).cview(), abs_of(b).cview(),
                       std::fabs(cs.beta), bound.view());

  fn(cs.ta, cs.tb, cs.m, cs.n, cs.k, cs.alpha, a.data.data(), a.ld, b.data.data(), b.ld, cs.beta,
     c.data.data(), c.ld);

  const double tol_scale = static_cast<double>(cs.k + 4) * std::ldexp(1.0, -23);
  int failures = 0;
  for (std::int64_t i = 0; i < cs.m && failures < 5; ++i) {
    for (std::int64_t j = 0; j < cs.n && failures < 5; ++j) {
      const double got = c.at(i, j), want = expected.at(i, j);
      const double tol = tol_scale * bound.at(i, j) + 1e-30;
      if (!(std::fabs(got - want) <= tol)) {
        ADD_FAILURE() << "C(" << i << ", " << j << ") = " << got << ", reference " << want
                      << ", tolerance " << tol;
        ++failures;
      }
    }
    for (std::int64_t j = cs.n; j < c.ld; ++j)
      if (c.at(i, j) != Mat::kPadding) {
        ADD_FAILURE() << "wrote into the padding of C at (" << i << ", " << j << ")";
        ++failures;
      }
  }
}

void fast_gemm(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
               const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta,
               float* c, std::int64_t ldc) {
  cpu::sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// An explicit arch and task count, bypassing the thread detection (so 3- and 4-way splits get
// tested on any machine).
template <class Arch, int Threads>
void arch_gemm(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
               const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta,
               float* c, std::int64_t ldc) {
  cpu::gemm_detail::sgemm_run<Arch>({ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc}, Threads);
}

const Trans kTrans[] = {Trans::no, Trans::yes};
const std::int64_t kSizes[] = {1, 3, 7, 15, 17, 31, 33, 63, 65, 127, 129, 203};
constexpr int kNumSizes = sizeof(kSizes) / sizeof(kSizes[0]);
const float kBetas[] = {0.0f, 1.0f, 0.5f};

// M and N run over every odd size; K walks the same list on a different stride so that every
// (size, size) pair meets a spread of K values, and beta / padding rotate.
void sweep_odd_sizes(GemmFn fn, int size_stride = 1) {
  std::mt19937 rng(1234);
  for (Trans ta : kTrans)
    for (Trans tb : kTrans)
      for (int i = 0; i < kNumSizes; i += size_stride)
        for (int j = 0; j < kNumSizes; j += size_stride) {
          const std::int64_t k = kSizes[(5 * i + 3 * j + (ta == Trans::yes) + 2 * (tb == Trans::yes)) % kNumSizes];
          const float beta = kBetas[(i + j) % 3];
          const float alpha = (i + j) % 2 ? 1.0f : -1.75f;
          check_case({ta, tb, kSizes[i], kSizes[j], k, alpha, beta, (i * j) % 3 == 0 ? 0 : 5}, fn, rng);
          if (::testing::Test::HasFailure()) return;
        }
}

}  // namespace

TEST(CpuSgemm, OddSizesAllTransposesMatchReference) { sweep_odd_sizes(&fast_gemm); }

TEST(CpuSgemm, EdgeShapes) {
  std::mt19937 rng(7);
  for (Trans ta : kTrans)
    for (Trans tb : kTrans)
      for (float beta : kBetas) {
        // K = 0: C = beta * C (and zeros for beta == 0, even over NaNs).
        check_case({ta, tb, 17, 33, 0, 1.5f, beta, 3}, &fast_gemm, rng);
        // Vectors: M = 1, N = 1, both, and K = 1.
        check_case({ta, tb, 1, 129, 65, 0.75f, beta, 1}, &fast_gemm, rng);
        check_case({ta, tb, 129, 1, 65, 0.75f, beta, 2}, &fast_gemm, rng);
        check_case({ta, tb, 1, 1, 203, 2.0f, beta, 0}, &fast_gemm, rng);
        check_case({ta, tb, 65, 63, 1, -1.0f, beta, 4}, &fast_gemm, rng);
      }
}

TEST(CpuSgemm, CrossesCacheBlocksAndThreadsSplit) {
  std::mt19937 rng(99);
  for (Trans ta : kTrans)
    for (Trans tb : kTrans) {
      // Several K blocks (KC = 1024 for AVX-512), several M blocks (MC = 128), more than
      // NC = 1024 columns.
      check_case({ta, tb, 300, 70, 1500, 0.5f, 0.5f, 3}, &fast_gemm, rng);
      check_case({ta, tb, 9, 2100, 40, 1.0f, 1.0f, 1}, &fast_gemm, rng);
      // Big enough to be split over tasks, with ragged edges in both directions.
      check_case({ta, tb, 211, 157, 131, -1.0f, 0.0f, 2}, &fast_gemm, rng);
      check_case({ta, tb, 157, 211, 131, 1.0f, 1.0f, 0}, &fast_gemm, rng);
    }
}

TEST(CpuSgemm, MlpShapes) {
  // The MLP 784 -> 128 -> 64 -> 10 at batch 32 (weights [out, in]) and an eval batch.
  std::mt19937 rng(32);
  const Case cases[] = {
      {Trans::no, Trans::yes, 32, 128, 784, 1.0f, 0.0f, 0},   // fwd l1: X W1^T
      {Trans::no, Trans::yes, 32, 64, 128, 1.0f, 0.0f, 0},    // fwd l2
      {Trans::no, Trans::yes, 32, 10, 64, 1.0f, 0.0f, 0},     // fwd l3
      {Trans::yes, Trans::no, 128, 784, 32, 1.0f, 0.0f, 0},   // dW1 = dY1^T X
      {Trans::yes, Trans::no, 64, 128, 32, 1.0f, 1.0f, 0},    // dW2 (accumulating)
      {Trans::yes, Trans::no, 10, 64, 32, 1.0f, 0.0f, 0},     // dW3
      {Trans::no, Trans::no, 32, 128, 64, 1.0f, 0.0f, 0},     // dH1 = dY2 W2
      {Trans::no, Trans::no, 32, 64, 10, 1.0f, 0.0f, 0},      // dH2 = dY3 W3
      {Trans::no, Trans::yes, 1000, 128, 784, 1.0f, 0.0f, 0}, // eval forward
  };
  for (const Case& c : cases) check_case(c, &fast_gemm, rng);
}

TEST(CpuSgemm, ExplicitTaskSplitsMatchReference) {
  // 3- and 4-way grids regardless of this machine's core count.
  std::mt19937 rng(5);
  for (Trans ta : kTrans)
    for (Trans tb : kTrans) {
      check_case({ta, tb, 203, 129, 65, 1.0f, 0.5f, 1}, &arch_gemm<xsimd::default_arch, 3>, rng);
      check_case({ta, tb, 65, 203, 129, -0.5f, 0.0f, 2}, &arch_gemm<xsimd::default_arch, 4>, rng);
    }
}

#if XSIMD_WITH_AVX2 && XSIMD_WITH_FMA3_AVX2
TEST(CpuSgemm, Avx2WidthMatchesReference) {
  sweep_odd_sizes(&arch_gemm<xsimd::fma3<xsimd::avx2>, 2>, 2);
  std::mt19937 rng(21);  // several K blocks at this width (KC = 256)
  for (Trans ta : kTrans)
    for (Trans tb : kTrans)
      check_case({ta, tb, 205, 70, 600, 1.0f, 0.5f, 1}, &arch_gemm<xsimd::fma3<xsimd::avx2>, 2>, rng);
}
#endif
#if XSIMD_WITH_SSE2
TEST(CpuSgemm, Sse2WidthMatchesReference) { sweep_odd_sizes(&arch_gemm<xsimd::sse2, 2>, 3); }
#endif

// Every element of C is accumulated by one task in a fixed order, so the bits must not depend on
// the number of threads (or on how C is cut into tasks).
TEST(CpuSgemm, BitIdenticalForAnyThreadCount) {
  std::mt19937 rng(11);
  const Case cases[] = {
      {Trans::no, Trans::no, 211, 157, 300, 1.0f, 0.0f, 0},
      {Trans::no, Trans::yes, 32, 128, 784, 1.0f, 0.0f, 0},
      {Trans::yes, Trans::no, 128, 784, 32, 1.0f, 0.0f, 0},
      {Trans::yes, Trans::yes, 157, 211, 131, 0.5f, 1.0f, 3},
      {Trans::no, Trans::yes, 1000, 128, 784, 1.0f, 0.0f, 0},
      {Trans::no, Trans::no, 100, 150, 1100, 1.0f, 0.5f, 1},  // two K blocks
  };
  for (const Case& cs : cases) {
    SCOPED_TRACE(describe(cs));
    const bool at = cs.ta == Trans::yes, bt = cs.tb == Trans::yes;
    Mat a = random_mat(at ? cs.k : cs.m, at ? cs.m : cs.k, cs.pad, rng);
    Mat b = random_mat(bt ? cs.n : cs.k, bt ? cs.k : cs.n, cs.pad, rng);
    const Mat c0 = random_mat(cs.m, cs.n, cs.pad, rng);
    auto run = [&](auto&& call) {
      Mat c = c0;
      call(a.data.data(), b.data.data(), c.data.data(), c.ld);
      return c.data;
    };
    auto with_threads = [&](int threads) {
      return run([&](const float* pa, const float* pb, float* pc, std::int64_t ldc) {
        cpu::ThreadLimit limit(threads);
        cpu::sgemm(cs.ta, cs.tb, cs.m, cs.n, cs.k, cs.alpha, pa, a.ld, pb, b.ld, cs.beta, pc, ldc);
      });
    };
    auto with_tasks = [&](int tasks) {
      return run([&](const float* pa, const float* pb, float* pc, std::int64_t ldc) {
        cpu::gemm_detail::sgemm_run<xsimd::default_arch>(
            {cs.ta, cs.tb, cs.m, cs.n, cs.k, cs.alpha, pa, a.ld, pb, b.ld, cs.beta, pc, ldc}, tasks);
      });
    };
    const std::vector<float> one = with_threads(1);
    const std::vector<float> two = with_threads(2);
    ASSERT_EQ(one.size(), two.size());
    EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)), 0)
        << "1 vs 2 threads differ";
    for (int tasks : {3, 4, 7}) {
      const std::vector<float> split = with_tasks(tasks);
      EXPECT_EQ(std::memcmp(one.data(), split.data(), one.size() * sizeof(float)), 0)
          << "1 thread vs a " << tasks << "-task split differ";
    }
  }
}

TEST(OpsGemm, ComputesThroughTheFastKernel) {
  std::mt19937 rng(3);
  Mat a = random_mat(5, 7, 1, rng), b = random_mat(4, 7, 0, rng), c(5, 4, 2), want(5, 4, 2);
  ASSERT_TRUE(gemm(Trans::no, Trans::yes, 1.0f, a.cview(), b.cview(), 0.0f, c.view()).ok());
  cpu::reference::gemm(Trans::no, Trans::yes, 1.0f, a.cview(), b.cview(), 0.0f, want.view());
  for (std::int64_t i = 0; i < 5; ++i)
    for (std::int64_t j = 0; j < 4; ++j) EXPECT_NEAR(c.at(i, j), want.at(i, j), 1e-5f);
}

TEST(OpsGemm, ShapeMismatchIsAnErrorNamingTheShapes) {
  Mat x(32, 784, 0), w(128, 700, 0), y(32, 128, 0);
  // Inner dimensions: X[32, 784] x W^T with W [128, 700].
  Status s = gemm(Trans::no, Trans::yes, 1.0f, x.cview(), w.cview(), 0.0f, y.view());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::shape_mismatch);
  EXPECT_EQ(s.error().op, "gemm");
  EXPECT_NE(s.error().shapes.find("[32, 784]"), std::string::npos) << s.error().to_string();
  EXPECT_NE(s.error().shapes.find("[128, 700]"), std::string::npos) << s.error().to_string();
  EXPECT_NE(s.error().to_string().find("inner dimensions"), std::string::npos);

  // Output shape: op(A) op(B) is [32, 128] but C is [32, 64].
  Mat w_ok(128, 784, 0), y_bad(32, 64, 0);
  Status s2 = gemm(Trans::no, Trans::yes, 1.0f, x.cview(), w_ok.cview(), 0.0f, y_bad.view());
  ASSERT_FALSE(s2.ok());
  EXPECT_EQ(s2.error().code, ErrorCode::shape_mismatch);
  EXPECT_NE(s2.error().shapes.find("[32, 64]"), std::string::npos) << s2.error().to_string();

  // The same call with the right shapes works.
  EXPECT_TRUE(gemm(Trans::no, Trans::yes, 1.0f, x.cview(), w_ok.cview(), 0.0f, y.view()).ok());

  // A leading dimension shorter than a row is invalid, not a crash.
  MatView<const float> short_ld{x.data.data(), 32, 784, 700};
  Status s3 = gemm(Trans::no, Trans::yes, 1.0f, short_ld, w_ok.cview(), 0.0f, y.view());
  ASSERT_FALSE(s3.ok());
  EXPECT_EQ(s3.error().code, ErrorCode::invalid_argument);
}
