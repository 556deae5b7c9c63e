#pragma once
// Borrowed typed views of memory, the vocabulary of the kernels (backend/) and the layers above:
// MatView<T> (row-major matrix with a leading dimension) and TensorView<T> (contiguous, any rank).
// They must not outlive the memory they view, like std::span. Device-tagged, strided views of
// tensors are tensor/tensor_ref.hpp; these are what a kernel sees once the op layer has checked them.
#include <cstdint>

#include "ferrite/core/shape.hpp"

namespace ferrite {

// A borrowed row-major matrix with a leading dimension (elements between row starts).
template <class T>
struct MatView {
  T* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t ld = 0;

  T& operator()(std::int64_t r, std::int64_t c) const noexcept { return data[r * ld + c]; }
  T* row(std::int64_t r) const noexcept { return data + r * ld; }
  // Rows [begin, begin + count).
  MatView row_slice(std::int64_t begin, std::int64_t count) const noexcept {
    return {data + begin * ld, count, cols, ld};
  }
  operator MatView<const T>() const noexcept { return {data, rows, cols, ld}; }  // NOLINT
  Shape shape() const { return {rows, cols}; }
};

// A borrowed contiguous tensor of any rank.
template <class T>
struct TensorView {
  T* data = nullptr;
  Shape shape;

  std::int64_t numel() const noexcept { return shape.numel(); }
  T& operator[](std::int64_t i) const noexcept { return data[i]; }
  operator TensorView<const T>() const noexcept { return {data, shape}; }  // NOLINT
  // Views the tensor as [prod(leading dims), last dim].
  MatView<T> mat() const noexcept {
    std::int64_t cols = shape.rank() ? shape.dim(-1) : 1;
    std::int64_t rows = cols ? shape.numel() / cols : 0;
    return {data, rows, cols, cols};
  }
};

}  // namespace ferrite
