#pragma once
// The library's public macros, all in one place. Internal helpers are prefixed FE_DETAIL_.

#define FE_DETAIL_CONCAT_INNER(a, b) a##b
#define FE_DETAIL_CONCAT(a, b) FE_DETAIL_CONCAT_INNER(a, b)

// FE_TRY(expr): evaluates a Result<void> (or any Result) and returns its error from the caller.
#define FE_TRY(expr)                                                     \
  do {                                                                   \
    auto&& fe_try_result_ = (expr);                                      \
    if (!fe_try_result_.ok()) return std::move(fe_try_result_).error();  \
  } while (0)

// FE_TRY_ASSIGN(decl, expr): `decl` receives the value of Result `expr`, or the caller returns its error.
//   FE_TRY_ASSIGN(auto tensor, load("w.safetensors"));
#define FE_TRY_ASSIGN(decl, expr) FE_DETAIL_TRY_ASSIGN(FE_DETAIL_CONCAT(fe_try_r_, __LINE__), decl, expr)
#define FE_DETAIL_TRY_ASSIGN(tmp, decl, expr)              \
  auto tmp = (expr);                                       \
  if (!tmp.ok()) return std::move(tmp).error();            \
  decl = std::move(tmp).value()

// FE_DETAIL_CUDA(op, device_index, expr): the one place where a build without the CUDA backend
// differs. With FERRITE_WITH_CUDA it evaluates `expr` (a call into backend/cuda, a Status or Result);
// without it `expr` is not even compiled and the result is device_unavailable naming the op and the
// available devices. So the CUDA entry points need no hand-written stubs, and every op has the same
// API on every build. (Needs backend/cuda/runtime.hpp included where it expands.)
// FE_DETAIL_CUDA_RESULT(T, op, device_index, expr) is the same for an `expr` of type Result<T>.
#if defined(FERRITE_WITH_CUDA)
#define FE_DETAIL_CUDA(op, device_index, ...) (static_cast<void>(op), static_cast<void>(device_index), (__VA_ARGS__))
#define FE_DETAIL_CUDA_RESULT(T, op, device_index, ...) \
  (static_cast<void>(op), static_cast<void>(device_index), (__VA_ARGS__))
#else
#define FE_DETAIL_CUDA(op, device_index, ...) \
  (static_cast<void>(sizeof((__VA_ARGS__))), ::ferrite::Status(::ferrite::cuda::detail::no_cuda_backend((op), (device_index))))
#define FE_DETAIL_CUDA_RESULT(T, op, device_index, ...) \
  (static_cast<void>(sizeof((__VA_ARGS__))),                 \
   ::ferrite::Result<T>(::ferrite::cuda::detail::no_cuda_backend((op), (device_index))))
#endif
