#pragma once
// Wall-clock timing (the training loop, the profiler hook and the benchmarks use it). steady_clock only: it is monotonic, whereas system_clock may
// jump (NTP, suspend) in the middle of a run.
//
// The harness cannot see the device: a caller timing GPU work synchronizes the device *before*
// reading the clock, otherwise it measures kernel launches rather than kernels.
#include <chrono>

namespace ferrite {

// Seconds on the steady clock since an unspecified epoch; only differences mean anything.
inline double now_seconds() noexcept {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Starts on construction.
//   Stopwatch watch;  step();  sync();  samples_ms.push_back(watch.lap_ms());
class Stopwatch {
 public:
  using Clock = std::chrono::steady_clock;

  Stopwatch() noexcept : start_(Clock::now()) {}

  void reset() noexcept { start_ = Clock::now(); }

  double elapsed_seconds() const noexcept {
    return std::chrono::duration<double>(Clock::now() - start_).count();
  }
  double elapsed_ms() const noexcept {
    return std::chrono::duration<double, std::milli>(Clock::now() - start_).count();
  }
  // Elapsed milliseconds, then restarts: one call per step in a timed loop, no gap between laps.
  double lap_ms() noexcept {
    const auto now = Clock::now();
    const double ms = std::chrono::duration<double, std::milli>(now - start_).count();
    start_ = now;
    return ms;
  }

 private:
  Clock::time_point start_;
};

}  // namespace ferrite
