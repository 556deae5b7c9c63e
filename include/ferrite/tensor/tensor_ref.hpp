#pragma once
// TensorRef / ConstTensorRef: a borrowed, device-tagged, possibly strided view of a tensor's elements
// — what ops take and modules pass between each other. Like std::span it does not own or keep alive
// the memory it views. Strides are in elements; a contiguous (row-major) view has
// strides[i] = prod(shape[i+1:]).
//
//   Tensor t = ...;                       // f32[8, 6] on cpu
//   TensorRef r = t.ref();                //   the whole tensor
//   auto rows = r.slice(0, 2, 5);         //   rows 2..4, still row-contiguous (ld 6)
//   auto tr = r.transpose(0, 1);          //   [6, 8] with strides [1, 6]: no copy
//   auto flat = r.reshape({48});          //   contiguous only
#include <cstdint>
#include <string>
#include <type_traits>

#include "ferrite/core/device.hpp"
#include "ferrite/core/dtype.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/core/shape.hpp"
#include "ferrite/core/view.hpp"

namespace ferrite {

// Strides use Shape's inline storage (same rank limit, no allocation).
using Strides = Shape;

inline Strides contiguous_strides(const Shape& shape) {
  Strides s = shape;
  std::int64_t step = 1;
  for (int i = shape.rank() - 1; i >= 0; --i) {
    s[i] = step;
    step *= shape[i];
  }
  return s;
}

template <bool Const>
struct BasicTensorRef {
  using Pointer = std::conditional_t<Const, const void*, void*>;

  Pointer data = nullptr;
  DType dtype = DType::f32;
  Device device{};
  Shape shape{};
  Strides strides{};

  BasicTensorRef() = default;
  BasicTensorRef(Pointer d, DType t, Device dev, Shape s) : data(d), dtype(t), device(dev), shape(s), strides(contiguous_strides(s)) {}
  BasicTensorRef(Pointer d, DType t, Device dev, Shape s, Strides st)
      : data(d), dtype(t), device(dev), shape(s), strides(st) {}
  // A mutable view converts to a const one.
  template <bool C = Const, class = std::enable_if_t<C>>
  BasicTensorRef(const BasicTensorRef<false>& o)  // NOLINT: implicit by design
      : data(o.data), dtype(o.dtype), device(o.device), shape(o.shape), strides(o.strides) {}

  bool defined() const noexcept { return data != nullptr || shape.rank() > 0; }
  int rank() const noexcept { return shape.rank(); }
  std::int64_t numel() const noexcept { return shape.numel(); }
  std::int64_t dim(int i) const noexcept { return shape.dim(i); }
  std::int64_t stride(int i) const noexcept { return strides.dim(i); }

  bool is_contiguous() const noexcept {
    std::int64_t step = 1;
    for (int i = rank() - 1; i >= 0; --i) {
      if (shape[i] != 1 && strides[i] != step) return false;
      step *= shape[i];
    }
    return true;
  }

  template <class T>
  auto ptr() const noexcept {
    using Q = std::conditional_t<Const, const T, T>;
    return static_cast<Q*>(data);
  }
  // The byte address of element `offset` (in elements).
  Pointer offset_by(std::int64_t offset) const noexcept {
    using Byte = std::conditional_t<Const, const char, char>;
    return static_cast<Pointer>(static_cast<Byte*>(data) + offset * static_cast<std::int64_t>(dtype_size(dtype)));
  }

  // Elements [begin, end) of dimension `d` (negative d counts from the back).
  Result<BasicTensorRef> slice(int d, std::int64_t begin, std::int64_t end) const {
    if (d < 0) d += rank();
    if (d < 0 || d >= rank() || begin < 0 || end < begin || end > shape[d])
      return make_error(ErrorCode::invalid_argument, "TensorRef::slice",
                        "slice [" + std::to_string(begin) + ", " + std::to_string(end) + ") of dimension " +
                            std::to_string(d) + " is out of range",
                        describe());
    BasicTensorRef r = *this;
    r.data = offset_by(begin * strides[d]);
    r.shape[d] = end - begin;
    return r;
  }
  // Rows [begin, begin + count) of dimension 0 (unchecked: the caller knows the extent).
  BasicTensorRef rows(std::int64_t begin, std::int64_t count) const noexcept {
    BasicTensorRef r = *this;
    r.data = offset_by(begin * strides[0]);
    r.shape[0] = count;
    return r;
  }
  // Dimensions a and b swapped (no copy).
  BasicTensorRef transpose(int a = 0, int b = 1) const noexcept {
    if (a < 0) a += rank();
    if (b < 0) b += rank();
    BasicTensorRef r = *this;
    std::swap(r.shape[a], r.shape[b]);
    std::swap(r.strides[a], r.strides[b]);
    return r;
  }
  // Dimension i of the result is dimension dims[i] of this view.
  Result<BasicTensorRef> permute(std::initializer_list<int> dims) const {
    if (static_cast<int>(dims.size()) != rank())
      return make_error(ErrorCode::invalid_argument, "TensorRef::permute",
                        std::to_string(dims.size()) + " dimensions given for a rank-" + std::to_string(rank()) + " view",
                        describe());
    BasicTensorRef r = *this;
    int i = 0;
    unsigned seen = 0;
    for (int d : dims) {
      if (d < 0 || d >= rank() || (seen & (1u << d)))
        return make_error(ErrorCode::invalid_argument, "TensorRef::permute", "not a permutation", describe());
      seen |= 1u << d;
      r.shape[i] = shape[d];
      r.strides[i] = strides[d];
      ++i;
    }
    return r;
  }
  // Same elements, new shape: contiguous views only (a strided view has no single reshaped layout).
  Result<BasicTensorRef> reshape(Shape s) const {
    if (s.numel() != numel())
      return make_error(ErrorCode::shape_mismatch, "TensorRef::reshape", "element counts differ",
                        shape.to_string() + " -> " + s.to_string());
    if (!is_contiguous())
      return make_error(ErrorCode::unsupported, "TensorRef::reshape", "the view is not contiguous (clone it first)",
                        describe());
    return BasicTensorRef(data, dtype, device, s);
  }

  // The view as a row-major matrix [prod(leading dims), last dim] with a leading dimension: needs a
  // unit last stride and leading dimensions that collapse (each stride = next stride * next size).
  // Rank 1 is one row; rank 0 one element.
  template <class T>
  Result<MatView<std::conditional_t<Const, const T, T>>> mat(const char* op = "TensorRef::mat") const {
    using Q = std::conditional_t<Const, const T, T>;
    if (dtype != dtype_of<T>::value)
      return make_error(ErrorCode::invalid_argument, op, "expected " + std::string(dtype_name(dtype_of<T>::value)),
                        describe());
    if (rank() == 0) return MatView<Q>{ptr<T>(), 1, 1, 1};
    const std::int64_t cols = shape[rank() - 1];
    if (cols > 1 && strides[rank() - 1] != 1)
      return make_error(ErrorCode::unsupported, op, "the last dimension is not contiguous", describe());
    if (rank() == 1) return MatView<Q>{ptr<T>(), 1, cols, cols};
    std::int64_t rows = 1;
    for (int i = 0; i + 1 < rank(); ++i) rows *= shape[i];
    const std::int64_t ld = strides[rank() - 2];
    for (int i = 0; i + 2 < rank(); ++i)
      if (shape[i] > 1 && strides[i] != strides[i + 1] * shape[i + 1])
        return make_error(ErrorCode::unsupported, op, "the leading dimensions do not collapse into rows", describe());
    return MatView<Q>{ptr<T>(), rows, cols, rows > 1 ? ld : std::max<std::int64_t>(ld, cols)};
  }

  // "f32[32, 784] on cpu" (+ " strides [..]" when not contiguous)
  std::string describe() const {
    std::string s = std::string(dtype_name(dtype)) + shape.to_string() + " on " + device.to_string();
    if (!is_contiguous()) s += " strides " + strides.to_string();
    return s;
  }
};

using TensorRef = BasicTensorRef<false>;
using ConstTensorRef = BasicTensorRef<true>;

}  // namespace ferrite
