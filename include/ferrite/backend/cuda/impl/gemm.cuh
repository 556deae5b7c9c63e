#pragma once
// kernels::sgemm (backend/cuda/kernels.hpp): cuBLAS SGEMM on the Stream's handle (nvcc only;
// included by src/cuda_linalg.cu alone). The row-major operand swap is detail::sgemm's
// (impl/handles.cuh); cuBLAS runs with the Stream's own workspace, so the call allocates nothing
// and may be captured into a graph.
#include <cuda_runtime.h>

#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/impl/handles.cuh"
#include "ferrite/backend/cuda/impl/stream.cuh"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/core/op_params.hpp"
#include "ferrite/core/result.hpp"

namespace ferrite::cuda::kernels {

Status sgemm(const Stream& s, Trans ta, Trans tb, i64 m, i64 n, i64 k, float alpha, const float* a, i64 lda,
             const float* b, i64 ldb, float beta, float* c, i64 ldc, bool tf32) {
  if (m <= 0 || n <= 0) return ok_status();
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  Stream::Impl& t = *s.impl();
  FE_TRY(detail::use_tf32(t, tf32));
  return detail::sgemm(t.blas, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace ferrite::cuda::kernels
