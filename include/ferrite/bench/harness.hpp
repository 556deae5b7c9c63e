#pragma once
// The benchmark harness in one include: timing, percentiles, memory, environment, JSON report.
// Every benchmark program (bench/mnist, bench/qca, ...) writes one "ferrite-bench/1" document.
#include "ferrite/bench/environment.hpp"
#include "ferrite/bench/memory.hpp"
#include "ferrite/bench/report.hpp"
#include "ferrite/bench/stats.hpp"
#include "ferrite/bench/timer.hpp"
