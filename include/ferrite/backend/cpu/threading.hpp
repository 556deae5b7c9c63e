#pragma once
// Thread control for the CPU backend. All CPU kernels run on TBB; their results never depend on the
// thread count (work is split over outputs, never over a reduction's order).
#include <cstddef>
#include <memory>
#include <thread>

#include <tbb/global_control.h>
#include <tbb/info.h>

namespace ferrite::cpu {

// Caps the threads TBB may use while this object lives. threads <= 0 means all hardware threads.
class ThreadLimit {
 public:
  explicit ThreadLimit(int threads)
      : threads_(threads > 0 ? threads : default_threads()),
        control_(std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                       static_cast<std::size_t>(threads_))) {}
  int threads() const noexcept { return threads_; }
  static int default_threads() { return tbb::info::default_concurrency(); }

 private:
  int threads_;
  std::unique_ptr<tbb::global_control> control_;
};

// The parallelism TBB will use right now.
inline int current_threads() {
  return static_cast<int>(
      tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
}

}  // namespace ferrite::cpu
