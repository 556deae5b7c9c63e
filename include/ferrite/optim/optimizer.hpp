#pragma once
// Optimizer: what SGD, Adam and AdamW share. It binds a ParameterList (borrowed: the module owns
// values and grads and must outlive the optimizer), owns the per-parameter state tensors (momentum
// buffers, exp_avg, ...), the learning rate and the step count, and splits the update into chunks
// that TBB may run in parallel.
//
// Every update is elementwise and the SIMD body and the scalar tail compute the same float
// operations in the same order, so results are bit-identical whatever the thread count or chunking.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>
#include <xsimd/xsimd.hpp>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "ferrite/backend/cpu/threading.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/core/tensor.hpp"
#include "ferrite/nn/parameter.hpp"

namespace ferrite::optim {

namespace detail {

// Below this many elements in total a step runs on the calling thread: a TBB fork/join costs a few
// microseconds, about what 64k elements of a fused update cost on one core.
inline constexpr std::int64_t kParallelMinElements = 64 * 1024;
// Parallel work is cut at multiples of this many elements of a parameter (a multiple of every SIMD
// width, so every piece starts 64-byte aligned), and no task gets fewer than kGrainBlocks blocks.
inline constexpr std::int64_t kBlockElements = 256;
inline constexpr std::int64_t kGrainBlocks = 16;

// Forces `x` to be rounded to float here. PyTorch runs each tensor op of an optimizer as its own
// kernel, so a product such as `v * beta2` is rounded before the following add; GCC's default
// -ffp-contract=fast would otherwise fuse our product and add into one FMA (one rounding fewer)
// and, worse, might do so differently in the SIMD body and the scalar tail. The empty asm makes the
// value opaque to the optimizer at zero cost (it stays in its register).
template <class T>
inline T rounded(T x) noexcept {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  if constexpr (std::is_same_v<T, float>) {
    asm("" : "+x"(x));
    return x;
  } else {
    auto reg = static_cast<typename T::register_type>(x);
    asm("" : "+x"(reg));
    return T(reg);
  }
#elif defined(__GNUC__) && defined(__aarch64__)
  if constexpr (std::is_same_v<T, float>) {
    asm("" : "+w"(x));
    return x;
  } else {
    auto reg = static_cast<typename T::register_type>(x);
    asm("" : "+w"(reg));
    return T(reg);
  }
#else
  return x;  // other compilers do not contract across statements by default
#endif
}

// Whether the build targets FMA hardware (any -march=native x86-64 since 2013, every aarch64).
#if defined(__FMA__) || defined(__aarch64__)
inline constexpr bool kHardwareFma = true;
#else
inline constexpr bool kHardwareFma = false;
#endif

// a * b + c, PyTorch's vec::fmadd: one rounding where the hardware has FMA (as PyTorch's
// AVX2/AVX512 kernels), two where it has not (as PyTorch's DEFAULT kernels and xsimd's fallback),
// so that the scalar tail always agrees with the SIMD body.
inline float fused_mul_add(float a, float b, float c) noexcept {
  if constexpr (kHardwareFma)
    return std::fma(a, b, c);
  else
    return rounded(a * b) + c;
}
// xsimd 8.1 has no AVX-512 fma kernel: its generic fallback is x * y + z, fused only if the
// compiler happens to contract it (GCC does, clang does not). So call the FMA intrinsics ourselves.
template <class B>
inline B fused_mul_add(const B& a, const B& b, const B& c) noexcept {
  static_assert(std::is_same_v<typename B::value_type, float>);
  // On x86 a float batch of 16 / 8 / 4 lanes is a zmm / ymm / xmm register.
#if defined(__AVX512F__)
  if constexpr (B::size == 16) return B(_mm512_fmadd_ps(a, b, c));
#endif
#if defined(__FMA__)
  if constexpr (B::size == 8) return B(_mm256_fmadd_ps(a, b, c));
  if constexpr (B::size == 4) return B(_mm_fmadd_ps(a, b, c));
#endif
  return xsimd::fma(a, b, c);
}

// Rejects NaN and infinities as well as negatives: `!(x >= 0)` is true for NaN.
inline Status check_non_negative(std::string_view op, std::string_view what, double x) {
  if (!(x >= 0.0) || !std::isfinite(x))
    return make_error(
        ErrorCode::invalid_argument, std::string(op),
        "invalid " + std::string(what) + ": " + std::to_string(x) + " (must be finite and >= 0)");
  return ok_status();
}

}  // namespace detail

class Optimizer {
 public:
  virtual ~Optimizer() = default;

  // One update of every parameter from its gradient. Fails, changing nothing, if a parameter's
  // value or grad no longer has the shape the state was allocated for.
  virtual Status step() = 0;

  // Sets every gradient to 0 (0.0f is all-zero bits, so memset is exact).
  void zero_grad() noexcept {
    for (auto& p : params_)
      if (p.grad->nbytes()) std::memset(p.grad->raw_data(), 0, p.grad->nbytes());
  }

  double lr() const noexcept { return lr_; }
  Status set_lr(double lr) {
    FE_TRY(detail::check_non_negative(op_name_, "learning rate", lr));
    lr_ = lr;
    return ok_status();
  }

  // Completed steps (PyTorch's state["step"], shared by all parameters here). Restoring a
  // checkpoint sets it together with the state tensors.
  std::int64_t step_count() const noexcept { return step_; }
  Status set_step_count(std::int64_t steps) {
    if (steps < 0)
      return make_error(ErrorCode::invalid_argument, op_name_,
                        "step count must be >= 0, got " + std::to_string(steps));
    step_ = steps;
    return ok_status();
  }

  // The state tensor `key` (see state_keys()) of parameter `param_name`; nullptr if either is
  // unknown.
  const Tensor* state(std::string_view param_name, std::string_view key) const noexcept {
    return const_cast<Optimizer*>(this)->state(param_name, key);
  }
  Tensor* state(std::string_view param_name, std::string_view key) noexcept {
    const auto slot = std::find(keys_.begin(), keys_.end(), key);
    if (slot == keys_.end()) return nullptr;
    for (std::size_t i = 0; i < params_.size(); ++i)
      if (params_[i].name == param_name)
        return &state_[i * keys_.size() + static_cast<std::size_t>(slot - keys_.begin())];
    return nullptr;
  }
  // Names of the per-parameter state tensors, PyTorch's: "momentum_buffer"; "exp_avg", "exp_avg_sq"
  // (+ "max_exp_avg_sq" with amsgrad).
  const std::vector<std::string>& state_keys() const noexcept { return keys_; }
  const nn::ParameterList& params() const noexcept { return params_; }

 protected:
  Optimizer() = default;
  Optimizer(Optimizer&&) noexcept = default;
  Optimizer& operator=(Optimizer&&) noexcept = default;

  // A contiguous range [begin, end) of one parameter's elements: what one kernel call updates.
  struct Chunk {
    std::size_t param = 0;
    std::int64_t begin = 0;
    std::int64_t end = 0;
  };

  // Validates the parameters and allocates one zeroed f32 state tensor per (parameter, key).
  Status bind(std::string op_name, nn::ParameterList params, std::vector<std::string> keys,
              double lr) {
    op_name_ = std::move(op_name);
    FE_TRY(detail::check_non_negative(op_name_, "learning rate", lr));
    if (params.empty())
      return make_error(ErrorCode::invalid_argument, op_name_, "got an empty parameter list");
    for (std::size_t i = 0; i < params.size(); ++i) {
      const auto& p = params[i];
      if (!p.value || !p.grad)
        return make_error(
            ErrorCode::invalid_argument, op_name_,
            "parameter '" + p.name + "' has no " + (p.value ? "grad" : "value") + " tensor");
      if (p.value->dtype() != DType::f32 || p.grad->dtype() != DType::f32 ||
          !p.value->device().is_cpu() || !p.grad->device().is_cpu())
        return make_error(ErrorCode::unsupported, op_name_,
                          "parameter '" + p.name + "' must be f32 on cpu, got value " +
                              p.value->describe() + " and grad " + p.grad->describe());
      if (p.value->shape() != p.grad->shape())
        return make_error(ErrorCode::shape_mismatch, op_name_,
                          "parameter '" + p.name + "': grad shape differs from value shape",
                          p.value->shape().to_string() + " vs " + p.grad->shape().to_string());
      if (p.value->numel() > 0 && (!p.value->raw_data() || !p.grad->raw_data()))
        return make_error(ErrorCode::invalid_argument, op_name_,
                          "parameter '" + p.name + "' has no storage (moved-from tensor?)");
      for (std::size_t j = 0; j < i; ++j) {
        if (params[j].name == p.name)
          return make_error(ErrorCode::invalid_argument, op_name_,
                            "parameter name '" + p.name + "' appears twice");
        if (params[j].value == p.value || params[j].grad == p.grad)
          return make_error(
              ErrorCode::invalid_argument, op_name_,
              "parameters '" + params[j].name + "' and '" + p.name + "' share a tensor");
      }
    }
    state_.clear();
    state_.reserve(params.size() * keys.size());
    shapes_.clear();
    block_offsets_.assign(1, 0);
    total_elements_ = 0;
    for (std::size_t i = 0; i < params.size(); ++i) {
      const std::int64_t n = params[i].value->numel();
      shapes_.push_back(params[i].value->shape());
      for (std::size_t k = 0; k < keys.size(); ++k) {
        FE_TRY_ASSIGN(Tensor t, Tensor::zeros(params[i].value->shape()));
        state_.push_back(std::move(t));
      }
      const std::int64_t blocks = (n + detail::kBlockElements - 1) / detail::kBlockElements;
      block_offsets_.push_back(block_offsets_.back() + blocks);
      total_elements_ += n;
    }
    params_ = std::move(params);
    keys_ = std::move(keys);
    lr_ = lr;
    step_ = 0;
    return ok_status();
  }

  // The module may have replaced a value or grad tensor since bind(); refuse rather than overrun.
  Status check_params() const {
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const auto& p = params_[i];
      const Shape& bound = shapes_[i];
      if (p.value->shape() != bound || p.grad->shape() != bound || p.value->dtype() != DType::f32 ||
          p.grad->dtype() != DType::f32 ||
          (bound.numel() > 0 && (!p.value->raw_data() || !p.grad->raw_data())))
        return make_error(ErrorCode::shape_mismatch, op_name_ + "::step",
                          "parameter '" + p.name +
                              "' changed shape, dtype or storage since the optimizer was created",
                          "value " + p.value->describe() + ", grad " + p.grad->describe() +
                              ", state " + bound.to_string());
    }
    return ok_status();
  }

  float* state_data(std::size_t param, std::size_t slot) noexcept {
    return state_[param * keys_.size() + slot].data<float>();
  }

  // Runs fn(chunk) over all elements of all parameters: serially as one chunk per parameter, or,
  // when the model is large enough to pay for a fork/join, as TBB tasks over the concatenated
  // blocks of all parameters (so a big weight and its small bias balance across threads). Any cut
  // gives the same numbers: the update is elementwise and the SIMD body equals the scalar tail.
  template <class Fn>
  void for_each_chunk(Fn&& fn) const {
    if (total_elements_ < detail::kParallelMinElements || cpu::current_threads() <= 1) {
      for (std::size_t i = 0; i < params_.size(); ++i) fn(Chunk{i, 0, shapes_[i].numel()});
      return;
    }
    tbb::parallel_for(
        tbb::blocked_range<std::int64_t>(0, block_offsets_.back(), detail::kGrainBlocks),
        [&](const tbb::blocked_range<std::int64_t>& r) {
          // The parameter holding block r.begin(): last i with block_offsets_[i] <= r.begin().
          auto i = static_cast<std::size_t>(
              std::upper_bound(block_offsets_.begin(), block_offsets_.end(), r.begin()) -
              block_offsets_.begin() - 1);
          for (; i < params_.size() && block_offsets_[i] < r.end(); ++i) {
            const std::int64_t first = std::max(r.begin(), block_offsets_[i]) - block_offsets_[i];
            const std::int64_t last = std::min(r.end(), block_offsets_[i + 1]) - block_offsets_[i];
            const Chunk c{i, first * detail::kBlockElements,
                          std::min(shapes_[i].numel(), last * detail::kBlockElements)};
            if (c.begin < c.end) fn(c);
          }
        });
  }

  std::string op_name_;
  nn::ParameterList params_;
  std::vector<std::string> keys_;
  std::vector<Tensor> state_;                // [param][key], flattened
  std::vector<Shape> shapes_;                // each parameter's shape at bind()
  std::vector<std::int64_t> block_offsets_;  // [params + 1]: first block of each parameter
  std::int64_t total_elements_ = 0;
  double lr_ = 0.0;
  std::int64_t step_ = 0;
};

}  // namespace ferrite::optim
