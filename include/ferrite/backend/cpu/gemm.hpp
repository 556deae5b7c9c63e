#pragma once
// PLACEHOLDER (being replaced by the packed xsimd kernel): plain loops so the tree builds.
#include <cstdint>

#include "ferrite/ops/transpose.hpp"

namespace ferrite::cpu {

inline void sgemm(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                  const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta,
                  float* c, std::int64_t ldc) {
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      float acc = 0.f;
      for (std::int64_t p = 0; p < k; ++p)
        acc += (ta == Trans::no ? a[i * lda + p] : a[p * lda + i]) *
               (tb == Trans::no ? b[p * ldb + j] : b[j * ldb + p]);
      c[i * ldc + j] = alpha * acc + (beta == 0.f ? 0.f : beta * c[i * ldc + j]);
    }
}

}  // namespace ferrite::cpu
