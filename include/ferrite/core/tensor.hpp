#pragma once
// Tensor: owns its storage, move-only; copies only through clone(). Views (TensorView, MatView) borrow
// a tensor's memory and must not outlive it, like std::span.
//
// Storage is 64-byte aligned so that SIMD kernels may use aligned loads on row starts of
// contiguous tensors. CPU only for now; a device tensor would carry a different deleter.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <utility>

#include "ferrite/core/device.hpp"
#include "ferrite/core/dtype.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/core/shape.hpp"

namespace ferrite {

inline constexpr std::size_t kTensorAlignment = 64;

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

class Tensor {
 public:
  Tensor() = default;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;
  Tensor(Tensor&& other) noexcept { swap(other); }
  Tensor& operator=(Tensor&& other) noexcept {
    if (this != &other) {
      release();
      swap(other);
    }
    return *this;
  }
  ~Tensor() { release(); }

  // Uninitialized storage.
  static Result<Tensor> empty(Shape shape, DType dtype = DType::f32, Device device = Device::cpu()) {
    if (!device.is_cpu())
      return make_error(ErrorCode::device_unavailable, "Tensor::empty",
                        "tensors on " + device.to_string() + " are not supported by this build");
    for (int i = 0; i < shape.rank(); ++i)
      if (shape[i] < 0)
        return make_error(ErrorCode::invalid_argument, "Tensor::empty", "negative dimension",
                          shape.to_string());
    Tensor t;
    t.shape_ = shape;
    t.dtype_ = dtype;
    t.device_ = device;
    const std::size_t bytes = t.nbytes();
    if (bytes) {
      // Round up so the allocation size is a multiple of the alignment (aligned new requires nothing,
      // but kernels may read whole SIMD vectors at the tail of the last row).
      const std::size_t rounded = (bytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
      t.data_ = ::operator new(rounded, std::align_val_t(kTensorAlignment), std::nothrow);
      if (!t.data_)
        return make_error(ErrorCode::out_of_memory, "Tensor::empty",
                          "could not allocate " + std::to_string(bytes) + " bytes", shape.to_string());
    }
    return t;
  }

  static Result<Tensor> zeros(Shape shape, DType dtype = DType::f32, Device device = Device::cpu()) {
    FE_TRY_ASSIGN(Tensor t, empty(shape, dtype, device));
    if (t.nbytes()) std::memset(t.data_, 0, t.nbytes());
    return t;
  }

  template <class T>
  static Result<Tensor> full(Shape shape, T value) {
    FE_TRY_ASSIGN(Tensor t, empty(shape, dtype_of<T>::value));
    T* p = t.data<T>();
    for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = value;
    return t;
  }

  // Copies `count` elements of `src` into a new tensor of `shape` (count must equal numel).
  template <class T>
  static Result<Tensor> from_data(Shape shape, const T* src, std::int64_t count) {
    if (count != shape.numel())
      return make_error(ErrorCode::shape_mismatch, "Tensor::from_data",
                        std::to_string(count) + " elements given for a tensor of " +
                            std::to_string(shape.numel()),
                        shape.to_string());
    FE_TRY_ASSIGN(Tensor t, empty(shape, dtype_of<T>::value));
    if (count) std::memcpy(t.data_, src, static_cast<std::size_t>(count) * sizeof(T));
    return t;
  }

  Result<Tensor> clone() const {
    FE_TRY_ASSIGN(Tensor t, empty(shape_, dtype_, device_));
    if (nbytes()) std::memcpy(t.data_, data_, nbytes());
    return t;
  }

  Result<Tensor> to(Device device) const {
    if (device == device_) return clone();
    return make_error(ErrorCode::device_unavailable, "Tensor::to",
                      "copy from " + device_.to_string() + " to " + device.to_string() +
                          " is not supported by this build");
  }

  // Same storage, new shape with the same number of elements. Consumes the tensor.
  Result<Tensor> reshape(Shape shape) && {
    if (shape.numel() != shape_.numel())
      return make_error(ErrorCode::shape_mismatch, "Tensor::reshape", "element counts differ",
                        shape_.to_string() + " -> " + shape.to_string());
    shape_ = shape;
    return std::move(*this);
  }

  bool defined() const noexcept { return data_ != nullptr || shape_.rank() > 0; }
  const Shape& shape() const noexcept { return shape_; }
  DType dtype() const noexcept { return dtype_; }
  Device device() const noexcept { return device_; }
  std::int64_t numel() const noexcept { return shape_.numel(); }
  std::int64_t dim(int i) const noexcept { return shape_.dim(i); }
  std::size_t nbytes() const noexcept {
    return static_cast<std::size_t>(numel()) * dtype_size(dtype_);
  }

  void* raw_data() noexcept { return data_; }
  const void* raw_data() const noexcept { return data_; }
  template <class T>
  T* data() noexcept {
    assert(dtype_of<T>::value == dtype_);
    return static_cast<T*>(data_);
  }
  template <class T>
  const T* data() const noexcept {
    assert(dtype_of<T>::value == dtype_);
    return static_cast<const T*>(data_);
  }

  template <class T = float>
  TensorView<T> view() noexcept { return {data<T>(), shape_}; }
  template <class T = float>
  TensorView<const T> view() const noexcept { return {data<T>(), shape_}; }
  template <class T = float>
  MatView<T> mat() noexcept { return view<T>().mat(); }
  template <class T = float>
  MatView<const T> mat() const noexcept { return view<T>().mat(); }

  // "f32[32, 784] on cpu"
  std::string describe() const {
    return std::string(dtype_name(dtype_)) + shape_.to_string() + " on " + device_.to_string();
  }

 private:
  void release() noexcept {
    if (data_) ::operator delete(data_, std::align_val_t(kTensorAlignment));
    data_ = nullptr;
  }
  void swap(Tensor& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(shape_, o.shape_);
    std::swap(dtype_, o.dtype_);
    std::swap(device_, o.device_);
  }

  void* data_ = nullptr;
  Shape shape_{};
  DType dtype_ = DType::f32;
  Device device_{};
};

}  // namespace ferrite
