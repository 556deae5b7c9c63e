#pragma once
// gemm: C[M, N] = alpha * op(A) * op(B) + beta * C on the CPU, shape-checked.
// Dispatches to the packed xsimd + TBB kernel (backend/cpu/gemm.hpp); results do not depend on the
// number of threads (each element of C is accumulated by one thread in a fixed order).
#include <string>
#include <type_traits>

#include "ferrite/backend/cpu/gemm.hpp"
#include "ferrite/backend/cpu/reference/gemm.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/core/tensor.hpp"
#include "ferrite/ops/transpose.hpp"

namespace ferrite {

namespace detail {
template <class T>
std::string gemm_shapes(Trans ta, Trans tb, const MatView<const T>& a, const MatView<const T>& b,
                        const MatView<T>& c) {
  return std::string("A") + (ta == Trans::yes ? "^T" : "") + a.shape().to_string() + " x B" +
         (tb == Trans::yes ? "^T" : "") + b.shape().to_string() + " -> C" + c.shape().to_string();
}
}  // namespace detail

template <class T>
Status check_gemm_shapes(const char* op, Trans ta, Trans tb, MatView<const T> a, MatView<const T> b,
                         MatView<T> c) {
  const auto m_a = ta == Trans::no ? a.rows : a.cols, k_a = ta == Trans::no ? a.cols : a.rows;
  const auto k_b = tb == Trans::no ? b.rows : b.cols, n_b = tb == Trans::no ? b.cols : b.rows;
  if (k_a != k_b)
    return make_error(ErrorCode::shape_mismatch, op, "inner dimensions differ",
                      detail::gemm_shapes(ta, tb, a, b, c));
  if (m_a != c.rows || n_b != c.cols)
    return make_error(ErrorCode::shape_mismatch, op, "output shape does not match op(A) * op(B)",
                      detail::gemm_shapes(ta, tb, a, b, c));
  if (a.ld < a.cols || b.ld < b.cols || c.ld < c.cols)
    return make_error(ErrorCode::invalid_argument, op, "leading dimension smaller than row length",
                      detail::gemm_shapes(ta, tb, a, b, c));
  return {};
}

// float runs the fast kernel; double (used by finite-difference tests) runs the scalar oracle.
template <class T>
Status gemm(Trans ta, Trans tb, T alpha, MatView<const T> a, MatView<const T> b, T beta, MatView<T> c) {
  FE_TRY(check_gemm_shapes<T>("gemm", ta, tb, a, b, c));
  if constexpr (std::is_same_v<T, float>) {
    const auto k = ta == Trans::no ? a.cols : a.rows;
    cpu::sgemm(ta, tb, c.rows, c.cols, k, alpha, a.data, a.ld, b.data, b.ld, beta, c.data, c.ld);
  } else {
    cpu::reference::gemm<T>(ta, tb, alpha, a, b, beta, c);
  }
  return {};
}

}  // namespace ferrite
