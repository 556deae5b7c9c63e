#pragma once
// Shape: up to kMaxDims dimensions, stored inline (no allocation on the hot path).
#include <array>
#include <cassert>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

namespace ferrite {

class Shape {
 public:
  static constexpr int kMaxDims = 6;

  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims) {
    assert(dims.size() <= kMaxDims);
    for (auto d : dims) dims_[rank_++] = d;
  }
  explicit Shape(const std::vector<std::int64_t>& dims) {
    assert(dims.size() <= kMaxDims);
    for (auto d : dims) dims_[rank_++] = d;
  }

  int rank() const noexcept { return rank_; }
  std::int64_t operator[](int i) const noexcept { assert(i >= 0 && i < rank_); return dims_[i]; }
  std::int64_t& operator[](int i) noexcept { assert(i >= 0 && i < rank_); return dims_[i]; }
  // Negative indices count from the back, like Python.
  std::int64_t dim(int i) const noexcept { return (*this)[i < 0 ? i + rank_ : i]; }

  // The element count of a shape known to be valid (every Tensor's shape was checked when its memory
  // was sized, see checked_numel).
  // (Unsigned arithmetic: no undefined behaviour on a shape that was not checked, and exact for one that was.)
  std::int64_t numel() const noexcept {
    std::uint64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= static_cast<std::uint64_t>(dims_[i]);
    return static_cast<std::int64_t>(n);
  }
  // The element count, or nothing when a dimension is negative or the product overflows 64 bits.
  // Shapes come from files and flags: whatever sizes memory from one asks here first (a wrapped count
  // once allocated a tiny block for a huge tensor, and kernels then wrote far past it).
  std::optional<std::int64_t> checked_numel() const noexcept {
    bool empty = false;
    for (int i = 0; i < rank_; ++i) {
      if (dims_[i] < 0) return std::nullopt;
      empty = empty || dims_[i] == 0;
    }
    if (empty) return 0;  // zero elements, however large the other dimensions
    std::int64_t n = 1;
    for (int i = 0; i < rank_; ++i)
      if (__builtin_mul_overflow(n, dims_[i], &n)) return std::nullopt;
    return n;
  }
  std::vector<std::int64_t> to_vector() const { return {dims_.begin(), dims_.begin() + rank_}; }

  friend bool operator==(const Shape& a, const Shape& b) noexcept {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a.dims_[i] != b.dims_[i]) return false;
    return true;
  }
  friend bool operator!=(const Shape& a, const Shape& b) noexcept { return !(a == b); }

  // "[32, 784]"
  std::string to_string() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) {
      if (i) s += ", ";
      s += std::to_string(dims_[i]);
    }
    return s + "]";
  }

 private:
  std::array<std::int64_t, kMaxDims> dims_{};
  int rank_ = 0;
};

}  // namespace ferrite
