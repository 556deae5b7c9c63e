#pragma once
// xtensor interop, zero-copy in both directions (xtensor 0.24).
//
//   ferrite -> xtensor: xt_view<T>(ref) is an xt::adapt over the view's own memory with its shape and
//     strides (a transposed or sliced TensorRef stays a correct xtensor expression). Host memory only.
//       Tensor t = ...;                                    // f32[8, 6] on cpu
//       FE_TRY_ASSIGN(auto v, xt_view<float>(t.ref()));     //   xt::xarray_adaptor over t's elements
//       v(0, 0) = 1.f;                                      //   writes t
//       FE_TRY_ASSIGN(auto m, (xt_view<float, 2>(t.cref())));  // fixed rank 2, read-only (the
//                                                            //   () hide the comma from the macro)
//   xtensor -> ferrite: tensor_ref(c) borrows any lvalue xtensor container or strided view that has
//     data(), shape() and strides() (xt::xarray, xt::xtensor<T, N>, xt::adapt, xt::transpose(a),
//     xt::view(a, xt::range(..), xt::all())...): a TensorRef, or a ConstTensorRef when the elements
//     are const, on cpu, with the container's strides.
//       xt::xtensor<float, 2> a = ...;
//       FE_TRY_ASSIGN(TensorRef r, tensor_ref(a));          //   ops::gemm(ctx, ..., r, ...) reads a
//   to_tensor(expr) evaluates any xtensor expression into a new owning, contiguous (row-major) Tensor:
//       FE_TRY_ASSIGN(Tensor y, to_tensor(a * 2.f + xt::ones<float>({2, 3})));
//
// Like TensorRef, both views borrow: they must not outlive the memory they view. Element types are
// float, double, std::int32_t and std::int64_t (ferrite's dtypes with a C++ type). Every check is a
// Result error naming the op, the view and the dtype; nothing here throws or aborts.
#include <array>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xexception.hpp>
#include <xtensor/xexpression.hpp>
#include <xtensor/xlayout.hpp>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xoperation.hpp>
#include <xtensor/xshape.hpp>

#include "ferrite/core/device.hpp"
#include "ferrite/core/dtype.hpp"
#include "ferrite/core/error.hpp"
#include "ferrite/core/format.hpp"
#include "ferrite/core/macros.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/core/shape.hpp"
#include "ferrite/tensor/tensor.hpp"
#include "ferrite/tensor/tensor_ref.hpp"

namespace ferrite {

namespace detail {
// The element types with a ferrite dtype.
template <class T>
inline constexpr bool xt_element_v = std::is_same_v<T, float> || std::is_same_v<T, double> ||
                                     std::is_same_v<T, std::int32_t> || std::is_same_v<T, std::int64_t>;

// Q is T or const T.
template <class Q>
using XtBuffer = xt::xbuffer_adaptor<Q*, xt::no_ownership, std::allocator<std::remove_const_t<Q>>>;
}  // namespace detail

// The xtensor types of xt_view: a dynamic-rank xt::xarray_adaptor (xt_view<T>) and a fixed-rank
// xt::xtensor_adaptor (xt_view<T, N>) over borrowed elements of type Q (T, or const T for a const view).
template <class Q>
using XtArrayView = xt::xarray_adaptor<detail::XtBuffer<Q>, xt::layout_type::dynamic, xt::dynamic_shape<std::size_t>>;
template <class Q, std::size_t N>
using XtTensorView = xt::xtensor_adaptor<detail::XtBuffer<Q>, N, xt::layout_type::dynamic>;

namespace detail {

// Dimensions of extent 1 are skipped: any stride addresses the same element there.
inline bool xt_is_row_major(const Shape& shape, const Strides& strides) {
  std::int64_t step = 1;
  for (int i = shape.rank() - 1; i >= 0; --i) {
    if (shape[i] != 1 && strides[i] != step) return false;
    step *= shape[i];
  }
  return true;
}
inline bool xt_is_col_major(const Shape& shape, const Strides& strides) {
  std::int64_t step = 1;
  for (int i = 0; i < shape.rank(); ++i) {
    if (shape[i] != 1 && strides[i] != step) return false;
    step *= shape[i];
  }
  return true;
}

// The checks shared by both ranks of xt_view: host memory, dtype T, a shape and strides xtensor can
// address from the data pointer.
template <class T, bool Const>
Status check_xt_view(const BasicTensorRef<Const>& ref, const char* op) {
  static_assert(xt_element_v<T>, "xt_view<T>: T must be float, double, std::int32_t or std::int64_t");
  if (!ref.device.is_cpu())
    return make_error(ErrorCode::unsupported, op,
                      fe_format("the view is in {} memory, which is not host-addressable: xtensor can only view "
                                "host memory (copy it to the host first: tensor.to(Device::cpu()))",
                                ref.device.to_string()),
                      ref.describe());
  if (ref.dtype != dtype_of<T>::value)
    return make_error(ErrorCode::invalid_argument, op,
                      fe_format("the view holds {} elements, but {} was asked for", dtype_name(ref.dtype),
                                dtype_name(dtype_of<T>::value)),
                      ref.describe());
  for (int i = 0; i < ref.rank(); ++i) {
    if (ref.shape[i] < 0)
      return make_error(ErrorCode::invalid_argument, op, fe_format("dimension {} is negative", i), ref.describe());
    if (ref.strides[i] < 0)
      return make_error(ErrorCode::unsupported, op,
                        fe_format("dimension {} has a negative stride (xtensor adaptors address elements forward "
                                  "from the data pointer)",
                                  i),
                        ref.describe());
  }
  if (ref.data == nullptr && ref.numel() > 0)
    return make_error(ErrorCode::invalid_argument, op, "the view has elements but no data pointer", ref.describe());
  return ok_status();
}

// xt::adapt of `ref`'s elements: with a row- or column-major layout when the view has one (xtensor's
// linear fast paths then apply), with its strides otherwise. The size is the element count, which is
// what xtensor's strided containers expect of their storage. The pointer goes in by value (an lvalue
// would make xt::adapt hold a reference to it); the return statements check that each xt::adapt
// gives exactly View.
template <class View, class Q, bool Const, class ShapeT>
View make_xt_view(const BasicTensorRef<Const>& ref, const ShapeT& shape) {
  using StridesT = typename View::inner_strides_type;
  const auto n = static_cast<std::size_t>(ref.numel());
  Q* const data = ref.template ptr<std::remove_const_t<Q>>();
  if (xt_is_row_major(ref.shape, ref.strides))
    return xt::adapt<xt::layout_type::dynamic>(static_cast<Q*>(data), n, xt::no_ownership(), shape,
                                               xt::layout_type::row_major);
  if (xt_is_col_major(ref.shape, ref.strides))
    return xt::adapt<xt::layout_type::dynamic>(static_cast<Q*>(data), n, xt::no_ownership(), shape,
                                               xt::layout_type::column_major);
  auto strides = xtl::make_sequence<StridesT>(static_cast<std::size_t>(ref.rank()), 0);
  for (int i = 0; i < ref.rank(); ++i) strides[static_cast<std::size_t>(i)] = static_cast<std::ptrdiff_t>(ref.strides[i]);
  return xt::adapt(static_cast<Q*>(data), n, xt::no_ownership(), shape, std::move(strides));
}

template <class T, bool Const>
Result<XtArrayView<std::conditional_t<Const, const T, T>>> xt_view_dynamic(const BasicTensorRef<Const>& ref) {
  using Q = std::conditional_t<Const, const T, T>;
  FE_TRY(check_xt_view<T>(ref, "xt_view"));
  auto shape = xtl::make_sequence<xt::dynamic_shape<std::size_t>>(static_cast<std::size_t>(ref.rank()), 0);
  for (int i = 0; i < ref.rank(); ++i) shape[static_cast<std::size_t>(i)] = static_cast<std::size_t>(ref.shape[i]);
  return make_xt_view<XtArrayView<Q>, Q>(ref, shape);
}

template <class T, std::size_t N, bool Const>
Result<XtTensorView<std::conditional_t<Const, const T, T>, N>> xt_view_fixed(const BasicTensorRef<Const>& ref) {
  using Q = std::conditional_t<Const, const T, T>;
  FE_TRY(check_xt_view<T>(ref, "xt_view"));
  if (ref.rank() != static_cast<int>(N))
    return make_error(ErrorCode::shape_mismatch, "xt_view",
                      fe_format("a rank-{} view cannot be a rank-{} xtensor (use xt_view<T> for any rank)", ref.rank(), N),
                      ref.describe());
  std::array<std::size_t, N> shape{};
  for (std::size_t i = 0; i < N; ++i) shape[i] = static_cast<std::size_t>(ref.shape[static_cast<int>(i)]);
  return make_xt_view<XtTensorView<Q, N>, Q>(ref, shape);
}

// What tensor_ref accepts: an object with a data pointer, shape() and strides() (xtensor's strided
// containers and views; a view's data() is its expression's, data_offset() says where it starts).
template <class C>
concept XtStrided = requires(C& c) {
  c.shape();
  c.strides();
  { c.data() };
} && std::is_pointer_v<decltype(std::declval<C&>().data())>;

template <class C>
std::size_t xt_data_offset(C& c) {
  if constexpr (requires { c.data_offset(); })
    return static_cast<std::size_t>(c.data_offset());
  else
    return 0;
}
}  // namespace detail

// ---- ferrite -> xtensor --------------------------------------------------------------------------

// An xtensor expression over `ref`'s elements, same shape and strides, no copy. Errors: a view not
// in host memory (a GPU tensor: copy it with .to(Device::cpu()) first), a dtype that is not T,
// negative strides. The mutable overload gives a writable adaptor, the const one a read-only one.
template <class T>
Result<XtArrayView<T>> xt_view(TensorRef ref) {
  return detail::xt_view_dynamic<T>(ref);
}
template <class T>
Result<XtArrayView<const T>> xt_view(ConstTensorRef ref) {
  return detail::xt_view_dynamic<T>(ref);
}
// Fixed rank N (std::array shape and strides: cheaper indexing); a view of another rank is an error.
template <class T, std::size_t N>
Result<XtTensorView<T, N>> xt_view(TensorRef ref) {
  return detail::xt_view_fixed<T, N>(ref);
}
template <class T, std::size_t N>
Result<XtTensorView<const T, N>> xt_view(ConstTensorRef ref) {
  return detail::xt_view_fixed<T, N>(ref);
}
// The whole tensor (t.ref() / t.cref()). Not of a temporary: the adaptor would outlive its memory.
template <class T>
Result<XtArrayView<T>> xt_view(Tensor& t) {
  return xt_view<T>(t.ref());
}
template <class T>
Result<XtArrayView<const T>> xt_view(const Tensor& t) {
  return xt_view<T>(t.cref());
}
template <class T>
void xt_view(Tensor&&) = delete;
template <class T, std::size_t N>
Result<XtTensorView<T, N>> xt_view(Tensor& t) {
  return xt_view<T, N>(t.ref());
}
template <class T, std::size_t N>
Result<XtTensorView<const T, N>> xt_view(const Tensor& t) {
  return xt_view<T, N>(t.cref());
}
template <class T, std::size_t N>
void xt_view(Tensor&&) = delete;

// ---- xtensor -> ferrite --------------------------------------------------------------------------

// A cpu view of an xtensor container's (or strided view's) elements with its shape and strides, no
// copy: a TensorRef, or a ConstTensorRef when the elements are const (a const container). Errors: rank
// above Shape::kMaxDims, negative strides (a reversed xt::view). The container must outlive the view
// and must not be resized while it is used; an rvalue is refused at compile time.
template <class C>
  requires detail::XtStrided<std::remove_reference_t<C>>
auto tensor_ref(C&& container) {
  static_assert(std::is_lvalue_reference_v<C>,
                "tensor_ref borrows the container's memory: pass an lvalue (a temporary would dangle)");
  using Ptr = decltype(container.data());
  using Q = std::remove_pointer_t<Ptr>;
  using T = std::remove_cv_t<Q>;
  static_assert(detail::xt_element_v<T>,
                "tensor_ref: the element type must be float, double, std::int32_t or std::int64_t");
  using Ref = BasicTensorRef<std::is_const_v<Q>>;
  const auto& xshape = container.shape();
  const auto& xstrides = container.strides();
  const std::size_t rank = xshape.size();
  const auto describe = [&] {
    std::string dims;
    for (std::size_t i = 0; i < rank; ++i) dims += (i ? ", " : "") + std::to_string(xshape[i]);
    return fe_format("{}[{}] (xtensor)", dtype_name(dtype_of<T>::value), dims);
  };
  if (rank > static_cast<std::size_t>(Shape::kMaxDims))
    return Result<Ref>(make_error(ErrorCode::unsupported, "tensor_ref",
                                  fe_format("rank {} is above ferrite's maximum of {}", rank, Shape::kMaxDims),
                                  describe()));
  std::vector<std::int64_t> dims(rank), steps(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    dims[i] = static_cast<std::int64_t>(xshape[i]);
    steps[i] = static_cast<std::int64_t>(xstrides[i]);
    if (steps[i] < 0)
      return Result<Ref>(make_error(ErrorCode::unsupported, "tensor_ref",
                                    fe_format("dimension {} has a negative stride ({}); ferrite views step forward "
                                              "(copy it first: to_tensor)",
                                              i, steps[i]),
                                    describe()));
  }
  // xtensor gives dimensions of extent 1 a stride of 0; give them the row-major value instead, so a
  // contiguous container is a contiguous TensorRef with exactly contiguous_strides().
  std::int64_t next = 1;  // the row-major stride of dimension i: stride * extent of dimension i + 1
  for (std::size_t i = rank; i-- > 0;) {
    if (dims[i] == 1) steps[i] = next;
    next = steps[i] * dims[i];
  }
  Q* data = container.data() + detail::xt_data_offset(container);
  return Result<Ref>(Ref(data, dtype_of<T>::value, Device::cpu(), Shape(dims), Shape(steps)));
}

// Evaluates an xtensor expression into a new owning, contiguous (row-major) Tensor (a copy), on
// `device` (evaluated on the host, then moved). The element type is the expression's, or T when given
// (to_tensor<float>(xt::arange(6)) casts). Errors: rank above Shape::kMaxDims, shapes that do not
// broadcast (xtensor's broadcast_error as a shape_mismatch), allocation.
template <class T = void, class E>
Result<Tensor> to_tensor(const xt::xexpression<E>& expression, Device device = Device::cpu()) {
  using V = std::conditional_t<std::is_void_v<T>, std::decay_t<typename E::value_type>, T>;
  static_assert(detail::xt_element_v<V>,
                "to_tensor: the element type must be float, double, std::int32_t or std::int64_t "
                "(name it to cast: to_tensor<float>(expr))");
  static constexpr const char* kOp = "to_tensor";
  const E& e = expression.derived_cast();
#if defined(__cpp_exceptions)
  try {
#endif
    const auto& xshape = e.shape();  // may throw xt::broadcast_error for shapes that do not broadcast
    const std::size_t rank = xshape.size();
    if (rank > static_cast<std::size_t>(Shape::kMaxDims))
      return make_error(ErrorCode::unsupported, kOp,
                        fe_format("rank {} is above ferrite's maximum of {}", rank, Shape::kMaxDims));
    std::vector<std::int64_t> dims(rank);
    for (std::size_t i = 0; i < rank; ++i) dims[i] = static_cast<std::int64_t>(xshape[i]);
    FE_TRY_ASSIGN(Tensor t, Tensor::empty(Shape(dims), dtype_of<V>::value));
    if (t.numel() > 0) {
      auto shape = xtl::make_sequence<xt::dynamic_shape<std::size_t>>(rank, 0);
      for (std::size_t i = 0; i < rank; ++i) shape[i] = static_cast<std::size_t>(xshape[i]);
      XtArrayView<V> out(detail::XtBuffer<V>(t.data<V>(), static_cast<std::size_t>(t.numel())), shape,
                         xt::layout_type::row_major);
      if constexpr (std::is_same_v<V, std::decay_t<typename E::value_type>>)
        xt::noalias(out) = e;
      else
        xt::noalias(out) = xt::cast<V>(e);
    }
    if (device.is_cpu()) return t;
    return t.to(device);
#if defined(__cpp_exceptions)
  } catch (const xt::broadcast_error& err) {
    return make_error(ErrorCode::shape_mismatch, kOp, fe_format("the expression's shapes do not broadcast: {}", err.what()));
  } catch (const std::exception& err) {
    return make_error(ErrorCode::invalid_argument, kOp, fe_format("xtensor: {}", err.what()));
  }
#endif
}

}  // namespace ferrite
