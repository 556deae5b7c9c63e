#pragma once
// Context: where ops run. Every op takes one (ops/*.hpp); a program makes one per device
// (Context::create(Device::cuda(0))) and passes it to modules, losses and optimizers, so the same
// model code runs on the CPU or a GPU and only the context says which.
//
// A context holds:
// - the device; on CUDA a cuda::Stream (stream + cuBLAS handle + graph capture), created here;
// - a workspace arena: ops and modules take their activations and scratch from it with bump
//   allocation; reset() at the start of every step rewinds it, so a step sees the same addresses
//   every time (after the first, which sizes it) — which is what lets a whole step be captured into a
//   CUDA graph and replayed;
// - an optional profiler hook: every op brackets itself with ProfileScope, so --profile times every
//   op on both backends;
// - numerics options (allow_tf32).
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ferrite/backend/cuda/runtime.hpp"
#include "ferrite/backend/cuda/stream.hpp"
#include "ferrite/backend/devices.hpp"
#include "ferrite/core/macros.hpp"
#include "ferrite/tensor/tensor.hpp"

namespace ferrite {

// Bump allocation from device memory in chunks that never move while in use. reset() rewinds to the
// start; if the last pass needed more than one chunk, the chunks are merged into one of the total
// size then, so from the second pass on every request gets the same offset of one block.
class Workspace {
 public:
  explicit Workspace(Device device = Device::cpu()) : device_(device) {}

  Result<TensorRef> allocate(Shape shape, DType dtype = DType::f32) {
    for (int i = 0; i < shape.rank(); ++i)
      if (shape[i] < 0)
        return make_error(ErrorCode::invalid_argument, "Workspace::allocate", "negative dimension", shape.to_string());
    const std::size_t bytes = round_up(static_cast<std::size_t>(shape.numel()) * dtype_size(dtype), kTensorAlignment);
    // Buffers of a page or more start on a page boundary: packed side by side at 64 bytes, the MLP's
    // activations and gradients alias in the L1/L2 sets (measured: +7% step time at batch 32, 2
    // threads, against page-aligned starts, which match separate allocations).
    const std::size_t boundary = bytes >= kPage ? kPage : kTensorAlignment;
    std::size_t pad = chunks_.empty() ? 0 : padding(chunks_[current_], used_, boundary);
    if (chunks_.empty() || used_ + pad + bytes > chunks_[current_].nbytes()) {
      // The next chunk, or a new one big enough (at least double the last; slack for the boundary).
      if (!chunks_.empty() && current_ + 1 < chunks_.size() && bytes + kPage <= chunks_[current_ + 1].nbytes()) {
        ++current_;
      } else {
        const std::size_t last = chunks_.empty() ? 0 : chunks_.back().nbytes();
        FE_TRY_ASSIGN(Tensor raw, Tensor::empty({static_cast<std::int64_t>(std::max(bytes + kPage, 2 * last) / 4)},
                                                DType::f32, device_));
        chunks_.push_back(std::move(raw));
        current_ = chunks_.size() - 1;
        ++generation_;
      }
      used_ = 0;
      pad = padding(chunks_[current_], 0, boundary);
    }
    void* p = static_cast<char*>(chunks_[current_].raw_data()) + used_ + pad;
    used_ += pad + bytes;
    pass_bytes_ += pad + bytes;
    high_water_ = std::max(high_water_, pass_bytes_);
    return TensorRef(p, dtype, device_, shape);
  }

  // Everything allocated since the last reset is dead from here on.
  Status reset() {
    if (chunks_.size() > 1) {  // merge: one block of the whole last pass from now on (+ a page of slack per
                               // chunk: the page padding depends on where each buffer falls)
      const std::size_t slack = kPage * chunks_.size();
      chunks_.clear();
      FE_TRY_ASSIGN(Tensor merged, Tensor::empty({static_cast<std::int64_t>((high_water_ + slack) / 4)}, DType::f32, device_));
      chunks_.push_back(std::move(merged));
      ++generation_;
    }
    current_ = 0;
    used_ = 0;
    pass_bytes_ = 0;
    return ok_status();
  }

  std::size_t capacity_bytes() const noexcept {
    std::size_t n = 0;
    for (const auto& c : chunks_) n += c.nbytes();
    return n;
  }
  std::size_t high_water_bytes() const noexcept { return high_water_; }
  Device device() const noexcept { return device_; }
  // Changes whenever memory is added or replaced: a captured CUDA graph holds the addresses of the
  // pass it recorded and is valid only while the generation it saw lasts (train/step_graph.hpp).
  std::uint64_t generation() const noexcept { return generation_; }

 private:
  static constexpr std::size_t kPage = 4096;
  static std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }
  // Bytes to skip after `used` bytes of `chunk` so that the next buffer's address is a multiple of
  // `boundary` (addresses, not offsets: device and host blocks are only 64-byte aligned themselves).
  static std::size_t padding(const Tensor& chunk, std::size_t used, std::size_t boundary) {
    const auto address = reinterpret_cast<std::uintptr_t>(chunk.raw_data()) + used;
    return (boundary - address % boundary) % boundary;
  }
  Device device_;
  std::vector<Tensor> chunks_;
  std::size_t current_ = 0, used_ = 0, pass_bytes_ = 0, high_water_ = 0;
  std::uint64_t generation_ = 0;
};

// Per-op timing. CPU: wall time of the call. CUDA: the context synchronizes around each op while a
// profiler is attached (so the numbers are GPU time per op plus launch overhead; profile runs are
// separate from timed runs).
class OpProfiler {
 public:
  struct Entry {
    std::int64_t calls = 0;
    double total_ms = 0;
  };
  void record(const char* op, double ms) {
    auto& e = entries_[op];
    ++e.calls;
    e.total_ms += ms;
  }
  const std::map<std::string, Entry>& entries() const noexcept { return entries_; }
  void clear() { entries_.clear(); }

 private:
  std::map<std::string, Entry> entries_;
};

struct ContextOptions {
  bool allow_tf32 = false;  // CUDA GEMMs on TF32 tensor cores (off: full FP32, the CPU's numbers)
};

class Context {
 public:
  // A context on `device`: device_unavailable (naming the available devices) when it cannot run here.
  static Result<Context> create(Device device = Device::cpu(), ContextOptions options = {}) {
    FE_TRY(check_device(device));
    Context c(device, options);
    if (device.is_cuda()) {
      FE_TRY_ASSIGN(c.stream_, FE_DETAIL_CUDA_RESULT(std::shared_ptr<cuda::Stream>, "Context::create", device.index,
                                                    cuda::Stream::create(device.index)));
    }
    return c;
  }
  static Context cpu() { return Context(Device::cpu(), {}); }

  Device device() const noexcept { return device_; }
  bool is_cuda() const noexcept { return device_.is_cuda(); }
  const ContextOptions& options() const noexcept { return options_; }
  void set_allow_tf32(bool allow) noexcept { options_.allow_tf32 = allow; }

  // The CUDA stream (null on the CPU).
  const cuda::Stream* stream() const noexcept { return stream_.get(); }
  cuda::Stream* stream() noexcept { return stream_.get(); }

  Workspace& workspace() noexcept { return workspace_; }
  // Starts a step: the workspace rewinds (all refs into it from the last step die).
  Status begin_step() { return workspace_.reset(); }

  // Waits for everything enqueued (a no-op on the CPU).
  Status synchronize() const {
    if (!stream_) return ok_status();
    return FE_DETAIL_CUDA("Context::synchronize", device_.index, stream_->synchronize());
  }

  // Graph mode (CUDA): a step counter in device memory. Ops with per-step operands — the batch's
  // rows of an epoch order (ops::gather_batch), a per-step loss slot (ops::softmax_cross_entropy),
  // the optimizer's per-step constants (Optimizer::plan_steps) — take the whole per-epoch buffer and
  // the host's step number s; without a counter the host number picks the entry, with one the
  // kernels read it on the device, so that one captured step serves every step. The two agree
  // because the loop resets the counter to s at the epoch's start (ops::set_step_counter) and every
  // step ends with ops::advance_step_counter. Null on the CPU and until enabled.
  Status enable_step_counter() {
    if (!device_.is_cuda())
      return make_error(ErrorCode::unsupported, "Context::enable_step_counter", "a device step counter is for CUDA contexts",
                        device_.to_string());
    if (!step_counter_.defined()) {
      FE_TRY_ASSIGN(step_counter_, Tensor::zeros({1}, DType::i64, device_));
    }
    return ok_status();
  }
  void disable_step_counter() noexcept { step_counter_ = Tensor(); }
  const std::int64_t* step_counter() const noexcept {
    return step_counter_.defined() ? static_cast<const std::int64_t*>(step_counter_.raw_data()) : nullptr;
  }
  std::int64_t* step_counter() noexcept {
    return step_counter_.defined() ? static_cast<std::int64_t*>(step_counter_.raw_data()) : nullptr;
  }

  void set_profiler(OpProfiler* profiler) noexcept { profiler_ = profiler; }
  OpProfiler* profiler() const noexcept { return profiler_; }

  Context(Context&&) noexcept = default;
  Context& operator=(Context&&) noexcept = default;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

 private:
  Context(Device device, ContextOptions options) : device_(device), options_(options), workspace_(device) {}
  Device device_;
  ContextOptions options_;
  std::shared_ptr<cuda::Stream> stream_;  // shared_ptr: its deleter is bound where it is created
  Workspace workspace_;
  Tensor step_counter_;  // i64[1] on the device in graph mode (see enable_step_counter)
  OpProfiler* profiler_ = nullptr;
};

// Brackets one op call for the context's profiler (nothing happens without one).
class ProfileScope {
 public:
  ProfileScope(const Context& ctx, const char* op) : ctx_(ctx.profiler() ? &ctx : nullptr), op_(op) {
    if (ctx_) {
      (void)ctx_->synchronize();
      start_ = std::chrono::steady_clock::now();
    }
  }
  ~ProfileScope() {
    if (!ctx_) return;
    (void)ctx_->synchronize();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
    ctx_->profiler()->record(op_, ms);
  }
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  const Context* ctx_;
  const char* op_;
  std::chrono::steady_clock::time_point start_{};
};

}  // namespace ferrite
