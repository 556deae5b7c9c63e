#pragma once
// fe_format: the library's message formatting, fmt's format() (ferrite's meson dependency carries
// fmt). Error messages are built with it instead of by string concatenation.
// The CUDA kernel units do not include it (they format their few messages by hand, check.cuh); a
// .cu of a user that includes the op headers gets the run-time-checked variant below.
#if !defined(__CUDACC__)
#include <fmt/format.h>
#endif
#include <sstream>

#include <string>
#include <string_view>
#include <utility>

namespace ferrite {

#if defined(__CUDACC__)
// nvcc's front end cannot compile fmt 9 (consteval format strings, constexpr helpers its host pass
// rejects), so a .cu that includes the op headers gets this stand-in: each "{}" is replaced by the
// next argument, streamed. The library's messages use plain "{}" only; every g++ build checks them
// with fmt at compile time.
namespace detail {
inline void format_into(std::ostringstream& out, std::string_view f) { out << f; }
template <class A, class... Rest>
void format_into(std::ostringstream& out, std::string_view f, const A& a, const Rest&... rest) {
  const auto at = f.find("{}");
  if (at == std::string_view::npos) {
    out << f;
    return;
  }
  out << f.substr(0, at) << a;
  format_into(out, f.substr(at + 2), rest...);
}
}  // namespace detail
template <class... Args>
std::string fe_format(std::string_view format, const Args&... args) {
  std::ostringstream out;
  detail::format_into(out, format, args...);
  return out.str();
}
#else
template <class... Args>
std::string fe_format(fmt::format_string<Args...> format, Args&&... args) {
  return fmt::format(format, std::forward<Args>(args)...);
}
#endif

}  // namespace ferrite
