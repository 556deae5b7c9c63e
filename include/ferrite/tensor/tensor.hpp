#pragma once
// Tensor: an owning, move-only handle to contiguous elements on one device; copies only through
// clone(), moves between devices through to(). Views (TensorRef, MatView) borrow its memory and must
// not outlive it, like std::span.
//
// Storage is a block on one device: 64-byte aligned host memory (SIMD kernels may use aligned loads
// on row starts and read whole vectors at the tail), or GPU memory from the caching allocator
// (backend/cuda/memory.hpp). A tensor normally owns its block alone. The one exception is explicit:
// Tensor::alias() makes a tensor that shares a block at an offset — nn::ParameterStore uses it so that
// every parameter is a tensor of its own while all values (and all gradients) live in one flat
// buffer per device (one optimizer launch, one zero-fill, one all-reduce).
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <utility>

#include "ferrite/backend/cuda/memory.hpp"
#include "ferrite/core/device.hpp"
#include "ferrite/core/dtype.hpp"
#include "ferrite/core/macros.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/core/shape.hpp"
#include "ferrite/core/view.hpp"
#include "ferrite/tensor/tensor_ref.hpp"

namespace ferrite {

inline constexpr std::size_t kTensorAlignment = 64;
// The largest tensor ferrite will size (2^62 bytes): beyond any memory, and far enough below the
// 64-bit limits that rounding up to the alignment and adding offsets cannot wrap.
inline constexpr std::int64_t kMaxTensorBytes = std::int64_t{1} << 62;

// One block of memory on one device.
class Storage {
 public:
  static Result<std::shared_ptr<Storage>> allocate(std::size_t bytes, Device device) {
    auto s = std::shared_ptr<Storage>(new Storage());
    s->device_ = device;
    s->bytes_ = bytes;
    if (bytes == 0) return s;
    if (device.is_cpu()) {
      // Rounded up to the alignment: kernels may read whole SIMD vectors at the tail.
      const std::size_t rounded = (bytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
      s->host_ = ::operator new(rounded, std::align_val_t(kTensorAlignment), std::nothrow);
      if (!s->host_)
        return make_error(ErrorCode::out_of_memory, "Tensor::empty",
                          "could not allocate " + std::to_string(bytes) + " bytes on cpu");
      return s;
    }
    FE_TRY_ASSIGN(s->device_block_, cuda::DeviceBuffer::allocate(static_cast<std::int64_t>(bytes), device.index));
    return s;
  }
  ~Storage() {
    if (host_) ::operator delete(host_, std::align_val_t(kTensorAlignment));
  }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const noexcept { return host_ ? host_ : device_block_.data(); }
  std::size_t bytes() const noexcept { return bytes_; }
  Device device() const noexcept { return device_; }

 private:
  Storage() = default;
  void* host_ = nullptr;
  cuda::DeviceBuffer device_block_;
  std::size_t bytes_ = 0;
  Device device_{};
};

namespace detail {
// Copies `bytes` between any two devices (blocking). Host to host is memcpy.
inline Status copy_between(void* dst, Device dst_device, const void* src, Device src_device, std::size_t bytes) {
  if (bytes == 0) return ok_status();
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, bytes);
    return ok_status();
  }
  const Device gpu = dst_device.is_cuda() ? dst_device : src_device;
  (void)gpu;
  return FE_DETAIL_CUDA("Tensor copy", gpu.index,
                        cuda::copy_blocking(dst, dst_device.is_cuda(), src, src_device.is_cuda(),
                                            static_cast<std::int64_t>(bytes), gpu.index));
}
inline Status zero_bytes(void* dst, Device device, std::size_t bytes) {
  if (bytes == 0) return ok_status();
  if (device.is_cpu()) {
    std::memset(dst, 0, bytes);
    return ok_status();
  }
  return FE_DETAIL_CUDA("Tensor::zeros", device.index,
                        cuda::memset_blocking(dst, 0, static_cast<std::int64_t>(bytes), device.index));
}
}  // namespace detail

class Tensor {
 public:
  Tensor() = default;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;
  Tensor(Tensor&& other) noexcept { swap(other); }
  Tensor& operator=(Tensor&& other) noexcept {
    if (this != &other) {
      Tensor dead(std::move(*this));
      swap(other);
    }
    return *this;
  }
  ~Tensor() = default;

  // Uninitialized storage on `device` (cpu, or cuda:N in a build with the CUDA backend).
  static Result<Tensor> empty(Shape shape, DType dtype = DType::f32, Device device = Device::cpu()) {
    FE_TRY_ASSIGN(const std::size_t bytes, checked_nbytes(shape, dtype, "Tensor::empty"));
    Tensor t;
    t.shape_ = shape;
    t.dtype_ = dtype;
    t.device_ = device;
    FE_TRY_ASSIGN(t.storage_, Storage::allocate(bytes, device));
    t.data_ = t.storage_->data();
    return t;
  }

  static Result<Tensor> zeros(Shape shape, DType dtype = DType::f32, Device device = Device::cpu()) {
    FE_TRY_ASSIGN(Tensor t, empty(shape, dtype, device));
    FE_TRY(detail::zero_bytes(t.data_, device, t.nbytes()));
    return t;
  }

  // Host tensors only (filled on the host; to(device) moves them).
  template <class T>
  static Result<Tensor> full(Shape shape, T value) {
    FE_TRY_ASSIGN(Tensor t, empty(shape, dtype_of<T>::value));
    T* p = t.data<T>();
    for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = value;
    return t;
  }

  // Copies `count` host elements of `src` into a new tensor of `shape` on `device`.
  template <class T>
  static Result<Tensor> from_data(Shape shape, const T* src, std::int64_t count, Device device = Device::cpu()) {
    FE_TRY(checked_nbytes(shape, dtype_of<T>::value, "Tensor::from_data"));
    if (count != shape.numel())
      return make_error(ErrorCode::shape_mismatch, "Tensor::from_data",
                        std::to_string(count) + " elements given for a tensor of " + std::to_string(shape.numel()),
                        shape.to_string());
    FE_TRY_ASSIGN(Tensor t, empty(shape, dtype_of<T>::value, device));
    FE_TRY(detail::copy_between(t.data_, device, src, Device::cpu(), t.nbytes()));
    return t;
  }

  // A new tensor that shares `base`'s storage: `shape` elements of `dtype` starting `byte_offset`
  // bytes into base's block (which must hold them). Explicit, for flat parameter buffers.
  static Result<Tensor> alias(const Tensor& base, std::size_t byte_offset, Shape shape, DType dtype) {
    FE_TRY_ASSIGN(const std::size_t bytes, checked_nbytes(shape, dtype, "Tensor::alias"));
    const std::size_t available = base.storage_ ? base.storage_->bytes() - base.byte_offset() : 0;
    if (!base.storage_ || byte_offset > available || bytes > available - byte_offset)
      return make_error(ErrorCode::invalid_argument, "Tensor::alias",
                        "the alias does not fit into the base tensor's storage",
                        base.describe() + " at +" + std::to_string(byte_offset) + " bytes as " +
                            std::string(dtype_name(dtype)) + shape.to_string());
    Tensor t;
    t.storage_ = base.storage_;
    t.data_ = static_cast<char*>(base.data_) + byte_offset;
    t.shape_ = shape;
    t.dtype_ = dtype;
    t.device_ = base.device_;
    return t;
  }

  // A deep copy on the same device.
  Result<Tensor> clone() const { return to(device_); }

  // A deep copy on `device` (host <-> GPU copies are blocking).
  Result<Tensor> to(Device device) const {
    FE_TRY_ASSIGN(Tensor t, empty(shape_, dtype_, device));
    FE_TRY(detail::copy_between(t.data_, device, data_, device_, nbytes()));
    return t;
  }

  // Copies the elements of `src` (same shape and dtype, any device) into this tensor's memory.
  Status copy_from(const Tensor& src) {
    if (src.shape_ != shape_ || src.dtype_ != dtype_)
      return make_error(ErrorCode::shape_mismatch, "Tensor::copy_from", "shape or dtype differs",
                        src.describe() + " -> " + describe());
    return detail::copy_between(data_, device_, src.data_, src.device_, nbytes());
  }

  // Same storage, new shape with the same number of elements. Consumes the tensor.
  Result<Tensor> reshape(Shape shape) && {
    FE_TRY(checked_nbytes(shape, dtype_, "Tensor::reshape"));
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
  std::size_t nbytes() const noexcept { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }
  // The bytes a tensor of `shape` and `dtype` needs, or an error naming `op` and the shape when a
  // dimension is negative or the size does not fit in kMaxTensorBytes. Every factory sizes memory
  // through it, so nbytes() of an existing tensor cannot overflow.
  static Result<std::size_t> checked_nbytes(const Shape& shape, DType dtype, const char* op) {
    // (The message is built only on failure: reshape and empty sit on per-step paths.)
    const auto what = [&] { return std::string(dtype_name(dtype)) + shape.to_string(); };
    const std::optional<std::int64_t> n = shape.checked_numel();  // nothing: negative or overflowing
    std::int64_t bytes = 0;
    if (!n || __builtin_mul_overflow(*n, static_cast<std::int64_t>(dtype_size(dtype)), &bytes) ||
        bytes > kMaxTensorBytes) {
      for (int i = 0; i < shape.rank(); ++i)
        if (shape[i] < 0) return make_error(ErrorCode::invalid_argument, op, "negative dimension", what());
      return make_error(ErrorCode::invalid_argument, op,
                        "the tensor's size overflows: more than 2^62 bytes (the product of the dimensions, "
                        "times the element size, must fit in 64 bits)",
                        what());
    }
    return static_cast<std::size_t>(bytes);
  }
  // Whether this tensor shares its block with another (an alias or the base of one).
  bool shares_storage() const noexcept { return storage_ && storage_.use_count() > 1; }
  std::size_t byte_offset() const noexcept {
    return storage_ ? static_cast<std::size_t>(static_cast<const char*>(data_) -
                                               static_cast<const char*>(storage_->data()))
                    : 0;
  }

  // Raw and typed access. On a GPU tensor these are device addresses: pass them to kernels only.
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

  // The whole tensor as a (contiguous) borrowed view.
  TensorRef ref() noexcept { return {data_, dtype_, device_, shape_}; }
  ConstTensorRef ref() const noexcept { return {data_, dtype_, device_, shape_}; }
  ConstTensorRef cref() const noexcept { return ref(); }

  // Typed host views (the CPU kernels' vocabulary).
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
  void swap(Tensor& o) noexcept {
    std::swap(storage_, o.storage_);
    std::swap(data_, o.data_);
    std::swap(shape_, o.shape_);
    std::swap(dtype_, o.dtype_);
    std::swap(device_, o.device_);
  }

  std::shared_ptr<Storage> storage_;
  void* data_ = nullptr;
  Shape shape_{};
  DType dtype_ = DType::f32;
  Device device_{};
};

}  // namespace ferrite
