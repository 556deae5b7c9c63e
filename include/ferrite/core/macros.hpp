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
