#pragma once
// Thread control for the CPU backend. All CPU kernels run on TBB; their results never depend on the
// thread count (work is split over outputs, never over a reduction's order).
#include <algorithm>
#include <cstddef>
#include <memory>
#include <new>
#include <thread>

#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>
#include <tbb/task_scheduler_observer.h>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif
#include <vector>

namespace ferrite::cpu {

// Caps the threads TBB may use while this object lives. threads <= 0 means all hardware threads.
class ThreadLimit {
 public:
  // More threads than the process may run on are not created by TBB's default arena: the limit (and
  // what reports say) is the number that will actually run (--threads 999 once reported 999).
  explicit ThreadLimit(int threads)
      : threads_(threads > 0 ? std::min(threads, default_threads()) : default_threads()),
        control_(std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                       static_cast<std::size_t>(threads_))) {}
  int threads() const noexcept { return threads_; }
  static int default_threads() { return tbb::info::default_concurrency(); }

 private:
  int threads_;
  std::unique_ptr<tbb::global_control> control_;
};

// Joins TBB's worker threads when it is destroyed (tbb::finalize), for a program's main(): declare it
// first, so that it outlives every ThreadLimit, ThreadPinning and parallel loop. Joined workers leave
// their arenas and release what they hold; without it TBB still references ThreadPinning's observer
// proxy at exit, which LeakSanitizer reports as a 40-byte leak (and fails every sanitized CLI test).
// If finalizing is not possible (another thread still runs TBB work) it is skipped: exit is unaffected.
class JoinWorkersAtExit {
 public:
  JoinWorkersAtExit() : handle_(tbb::attach{}) {}
  ~JoinWorkersAtExit() { (void)tbb::finalize(handle_, std::nothrow); }
  JoinWorkersAtExit(const JoinWorkersAtExit&) = delete;
  JoinWorkersAtExit& operator=(const JoinWorkersAtExit&) = delete;

 private:
  tbb::task_scheduler_handle handle_;
};

// The parallelism TBB will use right now.
inline int current_threads() {
  return static_cast<int>(
      tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
}

// Pins the calling thread to one CPU and every TBB worker of the default arena to its own CPU
// (arena slot i -> i-th CPU of the process's affinity mask), for as long as the object lives.
// Benchmarks use it so that the two threads of a 2-core run never share a core: unpinned, the
// scheduler occasionally left both on one CPU for a whole run (half the throughput, see
// docs/benchmarks.md). On non-Linux systems it does nothing.
class ThreadPinning : public tbb::task_scheduler_observer {
 public:
  ThreadPinning() {
#if defined(__linux__)
    cpu_set_t mask;
    CPU_ZERO(&mask);
    if (sched_getaffinity(0, sizeof(mask), &mask) == 0) {
      original_ = mask;
      for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &mask)) cpus_.push_back(c);
    }
#endif
    // The main thread is pinned on its scheduler entry too, not here: TBB sizes its arena from the
    // affinity mask of the thread that first uses it, and a pinned main thread would leave it one CPU.
    observe(true);
  }
  // Gives the calling thread its original affinity back (workers keep theirs until they exit).
  ~ThreadPinning() override {
    observe(false);
#if defined(__linux__)
    if (!cpus_.empty()) pthread_setaffinity_np(pthread_self(), sizeof(original_), &original_);
#endif
  }
  ThreadPinning(const ThreadPinning&) = delete;
  ThreadPinning& operator=(const ThreadPinning&) = delete;

  void on_scheduler_entry(bool is_worker) override {
    (void)is_worker;
    if (cpus_.empty()) return;
    const int slot = tbb::this_task_arena::current_thread_index();  // 0 is the main thread's slot
    if (slot >= 0) pin_to(cpus_[static_cast<std::size_t>(slot) % cpus_.size()]);
  }

  const std::vector<int>& cpus() const noexcept { return cpus_; }

 private:
  static void pin_to([[maybe_unused]] int cpu) {
#if defined(__linux__)
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
#endif
  }
  std::vector<int> cpus_;
#if defined(__linux__)
  cpu_set_t original_{};
#endif
};

}  // namespace ferrite::cpu
