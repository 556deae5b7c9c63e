#pragma once
// The benchmark JSON document, schema "ferrite-bench/1" (docs/json-schema.md,
// schemas/ferrite-bench-1.schema.json): builders for its parts and an atomic writer.
//
//   json report = make_report_skeleton("mnist", build, env, device_strings(available_devices()));
//   report["device"] = device_json(Device::cpu(), env.cpu, threads);
//   report["config"] = {{"epochs", 5}, {"batch_size", 128}};
//   report["metrics"] = {{"throughput", throughput_json(median_samples_per_s, "samples/s")},
//                        {"latency_ms", stats}, ...};
//   if (!result.ok()) report = error_report(std::move(report), result.error());
//   FE_TRY(write_json(path, report));
//
// Non-finite numbers: nlohmann silently writes NaN and infinities as `null`, which would turn a
// broken measurement into a plausible-looking "not applicable". write_json therefore refuses any
// document holding a non-finite number and names every offending path; a run whose loss became NaN
// must say so as an error report (status "error", message), not as numbers.
#include <cmath>
#include <cerrno>
#include <exception>
#include <new>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ferrite/bench/environment.hpp"
#include "ferrite/bench/stats.hpp"
#include "ferrite/core/device.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/io/file.hpp"

namespace ferrite::bench {

using json = nlohmann::json;

inline constexpr std::string_view kSchemaId = "ferrite-bench/1";

// nlohmann's ADL hooks: `report["metrics"]["latency_ms"] = stats;` and `report["env"] = env;`.
inline void to_json(json& j, const LatencyStats& s) {
  j = json{{"mean", s.mean}, {"p50", s.p50},       {"p95", s.p95},    {"p99", s.p99},
           {"min", s.min},   {"max", s.max},       {"stddev", s.stddev}, {"count", s.count}};
}

inline void to_json(json& j, const Environment& e) {
  j = json{{"cpu", e.cpu},           {"cores", e.cores},
           {"compiler", e.compiler}, {"flags", e.flags},
           {"git_commit", e.git_commit}, {"timestamp", e.timestamp},
           {"os", e.os},             {"build_type", e.build_type}};
}

// {"value": 12345.6, "unit": "samples/s"[, "method": "median of timed epochs"]}
inline json throughput_json(double value, std::string_view unit, std::string_view method = {}) {
  json j{{"value", value}, {"unit", std::string(unit)}};
  if (!method.empty()) j["method"] = std::string(method);
  return j;
}

// {"type": "cpu", "name": "AMD EPYC ...", "threads": 2} or {"type": "cuda", "index": 0, "name": ...}.
inline json device_json(const Device& device, std::string_view name, int threads) {
  json j{{"type", device.is_cpu() ? "cpu" : "cuda"}, {"name", or_unknown(std::string(name))}, {"threads", threads}};
  if (device.is_cuda()) j["index"] = device.index;
  return j;
}

// ["cpu", "cuda:0", ...], the form of "available_devices".
inline std::vector<std::string> device_strings(const std::vector<Device>& devices) {
  std::vector<std::string> names;
  names.reserve(devices.size());
  for (const auto& d : devices) names.push_back(d.to_string());
  return names;
}

// Everything a report needs before the run: identity, framework, environment, devices.
// device / metrics / quality start as null: a "success" document in which the program forgot to
// fill them fails validation instead of passing with made-up values.
inline json make_report_skeleton(std::string_view benchmark, const BuildInfo& build, const Environment& env,
                                 const std::vector<std::string>& available_devices) {
  return json{
      {"schema", std::string(kSchemaId)},
      {"benchmark", std::string(benchmark)},
      {"framework",
       {{"name", "ferrite"}, {"version", or_unknown(build.version)}, {"backend", {{"cuda_built", build.cuda_built}}}}},
      {"status", "success"},
      {"available_devices", available_devices},
      {"device", nullptr},
      {"config", json::object()},
      {"metrics", nullptr},
      {"quality", nullptr},
      {"env", env},
      {"extra", json::object()},
  };
}

// Turns a (possibly half-filled) report into an error report: status "error", the message, and the
// error's code and operation. metrics and quality become null, since half-measured numbers must not
// be compared; config, device, env and extra are kept to say what was attempted.
inline json error_report(json report, std::string_view message) {
  report["status"] = "error";
  report["message"] = message.empty() ? std::string("unspecified error") : std::string(message);
  report["metrics"] = nullptr;
  report["quality"] = nullptr;
  return report;
}

inline json error_report(json report, const Error& error) {
  report = error_report(std::move(report), error.to_string());
  report["error"] = {{"code", std::string(to_string(error.code))}, {"op", error.op}};
  return report;
}

namespace detail {

inline std::string escape_pointer_token(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

inline void collect_non_finite(const json& node, const std::string& path, std::vector<std::string>& out) {
  if (node.is_number_float()) {
    if (!std::isfinite(node.get<double>())) out.push_back(path.empty() ? "/" : path);
  } else if (node.is_object()) {
    for (auto it = node.begin(); it != node.end(); ++it)
      collect_non_finite(it.value(), path + "/" + escape_pointer_token(it.key()), out);
  } else if (node.is_array()) {
    for (std::size_t i = 0; i < node.size(); ++i) collect_non_finite(node[i], path + "/" + std::to_string(i), out);
  }
}

}  // namespace detail

// JSON pointers ("/metrics/latency_ms/p99") of every NaN or infinite number in `doc`.
inline std::vector<std::string> non_finite_paths(const json& doc) {
  std::vector<std::string> paths;
  detail::collect_non_finite(doc, "", paths);
  return paths;
}

// Writes `doc` pretty-printed (2 spaces, trailing newline) to `path`, atomically (io::write_file_atomic):
// into a temporary file beside it, then rename(), so a reader never sees half a document and a failed
// run never clobbers the previous result. Refuses non-finite numbers (see the top of this file).
inline Status write_json(const std::filesystem::path& path, const json& doc) {
  constexpr const char* op = "bench::write_json";
  if (const auto bad = non_finite_paths(doc); !bad.empty()) {
    std::string list;
    for (std::size_t i = 0; i < bad.size() && i < 8; ++i) list += (i ? ", " : "") + bad[i];
    if (bad.size() > 8) list += ", ... (" + std::to_string(bad.size()) + " in all)";
    return make_error(ErrorCode::invalid_argument, op,
                      "refusing to write '" + path.string() + "': non-finite number(s) at " + list +
                          " (JSON has no NaN/inf; report a diverged run as an error)");
  }
  if (path.empty()) return make_error(ErrorCode::invalid_argument, op, "empty output path");

  // Invalid UTF-8 (a strange CPU name) is replaced rather than thrown: a report must not abort.
  const std::string text = doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";

  return io::write_file_atomic(path, std::as_bytes(std::span<const char>(text.data(), text.size())), op);
}

// What a benchmark's run() hands to its report: the document's sections and the summary it prints.
struct RunSections {
  json device, metrics, quality, extra;
  json backend = json::object();  // merged into framework.backend
  json distributed = nullptr;     // data-parallel runs: the top-level `distributed` section
  std::vector<std::string> summary;
};

// Runs a benchmark's body and turns an exception that escapes it — std::bad_alloc from an absurd size
// flag, anything a dependency throws — into an error, so that every failure reaches the JSON report
// and the exit status instead of std::terminate (an abort with no report).
template <class Body>
Result<RunSections> run_guarded(std::string_view program, Body&& body) noexcept {
  const std::string op(program);
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return make_error(ErrorCode::out_of_memory, op,
                      "out of host memory (std::bad_alloc): the run asked for more memory than this machine can give; "
                      "check the size flags (steps, grid, batch, samples, hidden sizes)");
  } catch (const std::exception& e) {
    return make_error(ErrorCode::internal, op, std::string("unexpected exception: ") + e.what());
  } catch (...) {
    return make_error(ErrorCode::internal, op, "unexpected exception of unknown type");
  }
}

// The common end of a benchmark's main(): fills `report` from the run (or turns it into an error
// report, with a device object naming `device`, unavailable), prints the summary to stdout or
// "<program>: error: ..." to stderr, writes the JSON if `json_path` is set, and returns the exit
// status: 0 on success, 1 if the run or the write failed.
inline int finish_report(std::string_view program, json report, const Result<RunSections>& result, const Device& device,
                         int threads, const std::string& json_path) {
  int status = 0;
  if (result.ok()) {
    report["device"] = result->device;
    report["metrics"] = result->metrics;
    report["quality"] = result->quality;
    report["extra"] = result->extra;
    if (!result->distributed.is_null()) report["distributed"] = result->distributed;
    for (auto& [key, value] : result->backend.items()) report["framework"]["backend"][key] = value;
    for (const auto& line : result->summary) std::printf("%s\n", line.c_str());
  } else {
    std::fprintf(stderr, "%.*s: error: %s\n", int(program.size()), program.data(), result.error().to_string().c_str());
    report["device"] = device_json(device, "unavailable", threads);
    report = error_report(std::move(report), result.error());
    status = 1;
  }
  if (!json_path.empty()) {
    if (auto w = write_json(json_path, report); !w.ok()) {
      std::fprintf(stderr, "%.*s: error: %s\n", int(program.size()), program.data(), w.error().to_string().c_str());
      return 1;
    }
    if (status == 0) std::printf("json         %s\n", json_path.c_str());
  }
  // A summary that could not be written (stdout on a full disk, a closed pipe) is a failure, not exit 0.
  errno = 0;
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    const int err = errno;
    std::fprintf(stderr, "%.*s: error: cannot write the summary to standard output: %s\n", int(program.size()),
                 program.data(), err ? std::strerror(err) : "write error");
    return 1;
  }
  return status;
}

// Reads and parses a JSON file (tests, and programs that merge results).
inline Result<json> read_json(const std::filesystem::path& path) {
  constexpr const char* op = "bench::read_json";
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    return make_error(ErrorCode::io, op, "cannot open '" + path.string() + "': " + std::strerror(err));
  }
  std::ostringstream text;
  text << in.rdbuf();
  json doc = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded())
    return make_error(ErrorCode::parse, op, "'" + path.string() + "' is not valid JSON");
  return doc;
}

}  // namespace ferrite::bench
