#pragma once
// Scalar reference SGEMM: the oracle the fast kernels are tested against. Accumulates in double.
//   C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C
// A and B are the stored matrices; op(X) is X or its transpose. beta == 0 ignores C's contents
// (NaNs in C do not propagate), as BLAS does.
#include <cstdint>

#include "ferrite/core/view.hpp"
#include "ferrite/core/op_params.hpp"

namespace ferrite::cpu::reference {

// Templated so that double-precision modules (finite-difference tests) run on the same oracle.
template <class T>
void gemm(Trans trans_a, Trans trans_b, T alpha, MatView<const T> a, MatView<const T> b, T beta,
          MatView<T> c) {
  const std::int64_t m = c.rows, n = c.cols;
  const std::int64_t k = trans_a == Trans::no ? a.cols : a.rows;
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (std::int64_t p = 0; p < k; ++p) {
        const T av = trans_a == Trans::no ? a(i, p) : a(p, i);
        const T bv = trans_b == Trans::no ? b(p, j) : b(j, p);
        acc += static_cast<double>(av) * static_cast<double>(bv);
      }
      const double prior = beta == T(0) ? 0.0 : static_cast<double>(beta) * c(i, j);
      c(i, j) = static_cast<T>(alpha * acc + prior);
    }
  }
}

}  // namespace ferrite::cpu::reference
