#pragma once
// Summaries of timing samples: mean, percentiles, spread.
//
// Percentiles use linear interpolation between closest ranks, exactly like numpy.percentile's
// default (method="linear"): for sorted x[0..n-1] and q in [0, 100], the position is
// h = q/100 * (n-1) and the value x[floor h] + (h - floor h) * (x[floor h + 1] - x[floor h]).
// So p50 of an even count is the mean of the two middle samples, and every percentile of one
// sample is that sample. The PyTorch reference scripts use numpy.percentile, so both sides agree.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "ferrite/core/result.hpp"

namespace ferrite::bench {

// Latency of one unit of work (a training step, unless a benchmark's docs say otherwise), in ms.
struct LatencyStats {
  double mean = 0.0;
  double p50 = 0.0;
  double p95 = 0.0;
  double p99 = 0.0;
  double min = 0.0;
  double max = 0.0;
  double stddev = 0.0;     // sample standard deviation (n - 1); 0 for a single sample
  std::size_t count = 0;   // number of timed samples (warm-up excluded by the caller)
};

namespace detail {

// Empty, NaN or infinite samples are user-visible mistakes (an empty timed loop, a broken clock):
// errors, not asserts.
inline Status check_samples(const std::vector<double>& samples, const char* op) {
  if (samples.empty())
    return make_error(ErrorCode::invalid_argument, op,
                      "no samples: at least one timed measurement is needed (were all steps warm-up?)");
  for (std::size_t i = 0; i < samples.size(); ++i)
    if (!std::isfinite(samples[i]))
      return make_error(ErrorCode::invalid_argument, op,
                        "sample " + std::to_string(i) + " is not finite (" + std::to_string(samples[i]) + ")");
  return {};
}

// numpy.percentile(method="linear") on already sorted, non-empty samples; q in [0, 100].
inline double percentile_sorted(const std::vector<double>& sorted, double q) noexcept {
  const double h = q / 100.0 * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(h));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double t = h - static_cast<double>(lo);
  // Clamped so rounding can never break min <= p50 <= p95 <= p99 <= max (the validator checks it).
  return std::clamp(sorted[lo] + t * (sorted[hi] - sorted[lo]), sorted[lo], sorted[hi]);
}

}  // namespace detail

// The q-th percentile (q in [0, 100]) of `samples`, interpolated linearly as numpy does.
inline Result<double> percentile(std::vector<double> samples, double q) {
  FE_TRY(detail::check_samples(samples, "bench::percentile"));
  if (!(q >= 0.0 && q <= 100.0))
    return make_error(ErrorCode::invalid_argument, "bench::percentile",
                      "q must lie in [0, 100], got " + std::to_string(q));
  std::sort(samples.begin(), samples.end());
  return detail::percentile_sorted(samples, q);
}

// The median (= percentile 50): the middle sample, or the mean of the two middle ones.
inline Result<double> median(std::vector<double> samples) {
  FE_TRY(detail::check_samples(samples, "bench::median"));
  std::sort(samples.begin(), samples.end());
  return detail::percentile_sorted(samples, 50.0);
}

// mean / p50 / p95 / p99 / min / max / stddev of per-step latencies in milliseconds.
// Negative durations cannot come from a steady clock, so they are reported as a caller error.
inline Result<LatencyStats> summarize_ms(std::vector<double> samples_ms) {
  FE_TRY(detail::check_samples(samples_ms, "bench::summarize_ms"));
  std::sort(samples_ms.begin(), samples_ms.end());
  if (samples_ms.front() < 0.0)
    return make_error(ErrorCode::invalid_argument, "bench::summarize_ms",
                      "latency samples must be non-negative, smallest is " + std::to_string(samples_ms.front()));
  const auto n = samples_ms.size();
  double sum = 0.0;
  for (double s : samples_ms) sum += s;
  const double mean = sum / static_cast<double>(n);
  double squares = 0.0;  // two-pass: no catastrophic cancellation on near-equal samples
  for (double s : samples_ms) squares += (s - mean) * (s - mean);

  LatencyStats stats;
  stats.count = n;
  // Clamp guards the last-ulp case where rounding puts the mean just outside [min, max].
  stats.mean = std::clamp(mean, samples_ms.front(), samples_ms.back());
  stats.p50 = detail::percentile_sorted(samples_ms, 50.0);
  stats.p95 = detail::percentile_sorted(samples_ms, 95.0);
  stats.p99 = detail::percentile_sorted(samples_ms, 99.0);
  stats.min = samples_ms.front();
  stats.max = samples_ms.back();
  stats.stddev = n > 1 ? std::sqrt(squares / static_cast<double>(n - 1)) : 0.0;
  return stats;
}

}  // namespace ferrite::bench
