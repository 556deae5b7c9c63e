#pragma once
// Result<T>: a value or an Error. Our own small type because std::expected is C++23 and nvcc must
// compile these headers. Accessing value() of an error is a programmer bug and asserts.
#include <cassert>
#include <type_traits>
#include <utility>
#include <variant>

#include "ferrite/core/error.hpp"

namespace ferrite {

template <class T>
class [[nodiscard]] Result {
 public:
  // Two overloads rather than one by-value parameter: `return local;` of a move-only T (Tensor) must
  // move, and nvcc's front end only applies the implicit move when the selected constructor takes T&&
  // (the C++11 rule; C++20's P1825 would also accept by-value, g++ implements it, nvcc 13 does not).
  Result(const T& value) : data_(std::in_place_index<0>, value) {}  // NOLINT: implicit by design
  Result(T&& value) : data_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  Result(Error error) : data_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const noexcept { return data_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(data_); }
  const T& value() const& { assert(ok()); return std::get<0>(data_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(data_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

  const Error& error() const& { assert(!ok()); return std::get<1>(data_); }
  Error&& error() && { assert(!ok()); return std::get<1>(std::move(data_)); }

 private:
  std::variant<T, Error> data_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const Error& error() const& { assert(!ok_); return error_; }
  Error&& error() && { assert(!ok_); return std::move(error_); }

 private:
  Error error_{};
  bool ok_ = true;
};

using Status = Result<void>;

inline Status ok_status() { return {}; }

}  // namespace ferrite

#include "ferrite/core/macros.hpp"
