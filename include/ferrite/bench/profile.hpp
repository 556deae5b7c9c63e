#pragma once
// The JSON of an OpProfiler (tensor/context.hpp): per op, calls, total and per-step milliseconds,
// most expensive first — `extra.profile` of a benchmark run with --profile N.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ferrite/tensor/context.hpp"

namespace ferrite::bench {

inline nlohmann::json profile_json(const OpProfiler& profiler, std::int64_t steps) {
  std::vector<std::pair<std::string, OpProfiler::Entry>> rows(profiler.entries().begin(), profiler.entries().end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.total_ms > b.second.total_ms; });
  nlohmann::json ops = nlohmann::json::array();
  double total = 0;
  for (const auto& [name, e] : rows) total += e.total_ms;
  for (const auto& [name, e] : rows)
    ops.push_back({{"op", name},
                   {"calls", e.calls},
                   {"total_ms", e.total_ms},
                   {"ms_per_step", steps > 0 ? e.total_ms / double(steps) : 0.0},
                   {"share", total > 0 ? e.total_ms / total : 0.0}});
  return {{"steps", steps},
          {"method", "each op synchronizes its context before and after (wall time per op; GPU: includes launch)"},
          {"ops", ops}};
}

}  // namespace ferrite::bench
