#pragma once
// The benchmarks' names for the clock (core/clock.hpp, where the lower layers find it too).
#include "ferrite/core/clock.hpp"

namespace ferrite::bench {
using ferrite::now_seconds;
using ferrite::Stopwatch;
}  // namespace ferrite::bench
