#pragma once
// gemm: C[M, N] = alpha * op(A) * op(B) + beta * C, shape-checked.
//   ops::gemm(ctx, ta, tb, alpha, A, B, beta, C)   tensors on any device (the op set's entry point)
//   gemm<T>(ta, tb, alpha, MatView A, B, beta, C)  host matrices, CPU only (the conv code and tests)
// CPU f32: the packed xsimd + TBB kernel (backend/cpu/gemm.hpp); results do not depend on the number
// of threads (each element of C is accumulated by one thread in a fixed order). CPU f64: the scalar
// reference. CUDA: cublasSgemm (FP32 unless the context allows TF32).
// A transposed view (strides [1, ld], e.g. ref.transpose()) is read as the stored matrix with the
// transpose flag flipped, so no copy is made.
#include <string>
#include <type_traits>

#include "ferrite/backend/cpu/gemm.hpp"
#include "ferrite/backend/cpu/reference/gemm.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/ops/dispatch.hpp"
#include "ferrite/tensor/tensor.hpp"
#include "ferrite/core/op_params.hpp"

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

namespace ops {

namespace detail {
// A 2-D operand as a stored row-major matrix plus the transpose that makes it the logical operand.
template <class T>
struct Operand2d {
  MatView<const T> stored;
  Trans trans;
};
template <class T>
Result<Operand2d<T>> as_operand(const char* op, const char* name, const ConstTensorRef& t, Trans trans) {
  FE_TRY(expect_rank(op, name, t, 2));
  const std::int64_t r = t.shape[0], c = t.shape[1];
  if (c <= 1 || t.strides[1] == 1) {  // row-major with ld = strides[0]
    const std::int64_t ld = r > 1 ? t.strides[0] : std::max<std::int64_t>(c, 1);
    if (ld < c) return make_error(ErrorCode::unsupported, op, fe_format("{} has overlapping rows", name), t.describe());
    return Operand2d<T>{{t.ptr<T>(), r, c, ld}, trans};
  }
  if (r <= 1 || t.strides[0] == 1) {  // a transposed row-major matrix [c, r] with ld = strides[1]
    const std::int64_t ld = t.strides[1];
    if (ld < r) return make_error(ErrorCode::unsupported, op, fe_format("{} has overlapping columns", name), t.describe());
    return Operand2d<T>{{t.ptr<T>(), c, r, ld}, flip(trans)};
  }
  return make_error(ErrorCode::unsupported, op, fe_format("{} has no unit stride (copy it first)", name), t.describe());
}
}  // namespace detail

// C[M, N] = alpha * op(A) op(B) + beta * C. beta = 0 ignores C's old contents (NaN included).
inline Status gemm(Context& ctx, Trans ta, Trans tb, double alpha, ConstTensorRef a, ConstTensorRef b, double beta,
                   TensorRef c) {
  static constexpr const char* kOp = "gemm";
  const ConstTensorRef cc = c;
  FE_TRY_ASSIGN(const Kernel kernel, select_kernel(kOp, ctx, a.dtype, {{"A", &a}, {"B", &b}, {"C", &cc}}));
  FE_TRY(expect_rank(kOp, "C", c, 2));
  if (c.shape[1] > 1 && c.strides[1] != 1)
    return make_error(ErrorCode::unsupported, kOp, "C must be row-major (unit last stride)", c.describe());
  const std::int64_t m_a = ta == Trans::no ? a.dim(0) : a.dim(1), k_a = ta == Trans::no ? a.dim(1) : a.dim(0);
  const std::int64_t k_b = tb == Trans::no ? b.dim(0) : b.dim(1), n_b = tb == Trans::no ? b.dim(1) : b.dim(0);
  auto shapes = [&] {
    return fe_format("A{}{} x B{}{} -> C{}", ta == Trans::yes ? "^T" : "", a.shape.to_string(),
                     tb == Trans::yes ? "^T" : "", b.shape.to_string(), c.shape.to_string());
  };
  if (a.rank() != 2 || b.rank() != 2) return make_error(ErrorCode::shape_mismatch, kOp, "A and B must be matrices", shapes());
  if (k_a != k_b) return make_error(ErrorCode::shape_mismatch, kOp, "inner dimensions differ", shapes());
  if (m_a != c.shape[0] || n_b != c.shape[1])
    return make_error(ErrorCode::shape_mismatch, kOp, "output shape does not match op(A) * op(B)", shapes());
  ProfileScope profile(ctx, kOp);
  const std::int64_t m = c.shape[0], n = c.shape[1], k = k_a;
  const std::int64_t ldc = m > 1 ? c.strides[0] : std::max<std::int64_t>(n, 1);
  switch (kernel) {
    case Kernel::cpu_f32: {
      FE_TRY_ASSIGN(auto A, detail::as_operand<float>(kOp, "A", a, ta));
      FE_TRY_ASSIGN(auto B, detail::as_operand<float>(kOp, "B", b, tb));
      cpu::sgemm(A.trans, B.trans, m, n, k, static_cast<float>(alpha), A.stored.data, A.stored.ld, B.stored.data,
                 B.stored.ld, static_cast<float>(beta), c.ptr<float>(), ldc);
      return ok_status();
    }
    case Kernel::cpu_f64: {
      FE_TRY_ASSIGN(auto A, detail::as_operand<double>(kOp, "A", a, ta));
      FE_TRY_ASSIGN(auto B, detail::as_operand<double>(kOp, "B", b, tb));
      cpu::reference::gemm<double>(A.trans, B.trans, alpha, A.stored, B.stored, beta, {c.ptr<double>(), m, n, ldc});
      return ok_status();
    }
    case Kernel::cuda_f32: {
      FE_TRY_ASSIGN(auto A, detail::as_operand<float>(kOp, "A", a, ta));
      FE_TRY_ASSIGN(auto B, detail::as_operand<float>(kOp, "B", b, tb));
      return FE_DETAIL_CUDA(kOp, ctx.device().index,
                            cuda::kernels::sgemm(*ctx.stream(), A.trans, B.trans, m, n, k, static_cast<float>(alpha),
                                                 A.stored.data, A.stored.ld, B.stored.data, B.stored.ld,
                                                 static_cast<float>(beta), c.ptr<float>(), ldc,
                                                 ctx.options().allow_tf32));
    }
  }
  return make_error(ErrorCode::internal, kOp, "unreachable");
}

}  // namespace ops

}  // namespace ferrite
