#pragma once
// kernels::gather_rows (backend/cuda/kernels.hpp): the batch gather from a GPU-resident data set
// (nvcc only; included by src/cuda_index.cu alone). CPU oracle: data::gather_batch (copies, exact).
// One block per output row; with features, both leading dimensions multiples of 4 and 16-byte
// aligned matrices each thread moves float4s, else floats.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/impl/stream.cuh"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/core/result.hpp"

namespace ferrite::cuda::kernels {

namespace {

//   dst[r, :] = src[indices[r], :],  dst_labels[r] = src_labels[indices[r]] (when both are non-null)
template <bool kVec4>
__global__ void gather_rows_kernel(const float* __restrict__ src, i64 ld_src, const std::int32_t* __restrict__ src_labels,
                                   const std::int32_t* __restrict__ indices, i64 features, float* __restrict__ dst,
                                   i64 ld_dst, std::int32_t* __restrict__ dst_labels, const i64* __restrict__ step,
                                   i64 per_step) {
  const i64 r = blockIdx.x;
  const i64 from = indices[(step ? *step * per_step : 0) + r];
  const float* s = src + from * ld_src;
  float* d = dst + r * ld_dst;
  if constexpr (kVec4) {
    const auto* s4 = reinterpret_cast<const float4*>(s);
    auto* d4 = reinterpret_cast<float4*>(d);
    for (i64 q = threadIdx.x; q < features / 4; q += blockDim.x) d4[q] = s4[q];
  } else {
    for (i64 j = threadIdx.x; j < features; j += blockDim.x) d[j] = s[j];
  }
  if (dst_labels && threadIdx.x == 0) dst_labels[r] = src_labels[from];
}

}  // namespace

Status gather_rows(const Stream& s, const float* src, i64 ld_src, const std::int32_t* src_labels,
                   const std::int32_t* indices, i64 rows, i64 features, float* dst, i64 ld_dst,
                   std::int32_t* dst_labels, const i64* step, i64 per_step) {
  if (rows <= 0) return ok_status();
  if (rows > 0x7fffffff)
    return make_error(ErrorCode::unsupported, "cuda::kernels::gather_rows",
                      std::to_string(rows) + " rows exceed the launch grid (one block per row)");
  if (features <= 0 && !(dst_labels && src_labels)) return ok_status();
  const bool vec4 = features % 4 == 0 && ld_src % 4 == 0 && ld_dst % 4 == 0 &&
                    reinterpret_cast<std::uintptr_t>(src) % 16 == 0 && reinterpret_cast<std::uintptr_t>(dst) % 16 == 0;
  const int threads =
      static_cast<int>(std::clamp<i64>(((vec4 ? features / 4 : features) + 31) & ~i64{31}, 32, detail::kBlock));
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  std::int32_t* labels_out = src_labels ? dst_labels : nullptr;
  if (vec4)
    gather_rows_kernel<true><<<static_cast<unsigned>(rows), threads, 0, detail::raw_stream(s)>>>(
        src, ld_src, src_labels, indices, features, dst, ld_dst, labels_out, step, per_step);
  else
    gather_rows_kernel<false><<<static_cast<unsigned>(rows), threads, 0, detail::raw_stream(s)>>>(
        src, ld_src, src_labels, indices, features, dst, ld_dst, labels_out, step, per_step);
  return detail::check_launch("gather_rows_kernel");
}

}  // namespace ferrite::cuda::kernels
