#pragma once
// Command-line parsing for the benchmark programs (CLI11), with two guarantees a user relies on:
//
//   app.add_option("--lr", c.lr)->check(bench::kFinite);         // "inf" and "nan" are refused up front
//   if (auto exit = bench::parse_or_report(app, argc, argv, "mnist", skeleton)) return *exit;
//
// - kFinite refuses a non-finite number ("--gamma inf" used to run, "--weight-decay nan" silently became
//   the default).
// - A rejected command line still answers --json: when it names a fresh path or an earlier
//   ferrite-bench report, that report is replaced by an error report of this run, so a failed run never
//   leaves the previous run's success in place. Any other existing file is left alone.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "ferrite/bench/report.hpp"
#include "ferrite/core/device.hpp"

namespace ferrite::bench {

inline const CLI::Validator kFinite(
    [](std::string& text) -> std::string {
      char* end = nullptr;
      const double v = std::strtod(text.c_str(), &end);
      if (end == text.c_str()) return {};  // not a number: the option's own conversion reports it
      return std::isfinite(v) ? std::string{} : "must be a finite number, got " + text;
    },
    "FINITE");

// A path flag given with an empty value ("--json ''") is an error, not a silent "no output".
inline const CLI::Validator kPath(
    [](std::string& text) -> std::string { return text.empty() ? "must not be empty (omit the flag instead)" : ""; },
    "PATH");

// A seed is a decimal integer in [0, 2^64 - 1]: "-1" and "18446744073709551616" used to wrap silently
// into other seeds (a run labelled with one seed that used another).
inline const CLI::Validator kSeed(
    [](std::string& text) -> std::string {
      const std::string bad = "must be a decimal integer in [0, 18446744073709551615], got " + text;
      if (text.empty() || text.size() > 20 || !std::all_of(text.begin(), text.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
        return bad;
      errno = 0;
      (void)std::strtoull(text.c_str(), nullptr, 10);
      return errno == ERANGE ? bad : std::string{};
    },
    "SEED");

// --threads above this is refused as a typo; below it, more threads than the CPUs allowed are clamped
// (cpu::ThreadLimit) and the report names the threads that ran.
inline constexpr int kMaxThreadsFlag = 4096;

namespace detail {
// The value of --json in argv ("--json X" or "--json=X"), or empty.
inline std::string json_flag(int argc, char** argv) {
  std::string path;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a(argv[i]);
    if (a == "--json" && i + 1 < argc) path = argv[++i];
    else if (a.rfind("--json=", 0) == 0) path = std::string(a.substr(7));
  }
  return path;
}
// Whether `path` may receive an error report: nothing there yet, or an earlier ferrite-bench report.
inline bool replaceable_report(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return !ec;
  if (!std::filesystem::is_regular_file(path, ec) || std::filesystem::file_size(path, ec) > (64u << 20)) return false;
  std::ifstream in(path, std::ios::binary);
  const nlohmann::json doc = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("schema") || !doc["schema"].is_string()) return false;
  return doc["schema"].get<std::string>().rfind("ferrite-bench/", 0) == 0;
}
}  // namespace detail

// Parses argv into `app`. Returns nothing when the run should go on, else the exit status (0 after
// --help). `skeleton()` builds the report skeleton (environment, build) for an error report.
template <class Skeleton>
std::optional<int> parse_or_report(CLI::App& app, int argc, char** argv, std::string_view program, Skeleton&& skeleton) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);  // prints the message (or the help)
    if (status == 0) return 0;
    const std::string json_path = detail::json_flag(argc, argv);
    if (!json_path.empty() && detail::replaceable_report(json_path)) {
      nlohmann::json report = skeleton();
      const Result<RunSections> failed = make_error(ErrorCode::invalid_argument, std::string(program),
                                                    std::string("command line rejected: ") + e.what());
      (void)finish_report(program, std::move(report), failed, Device::cpu(), 1, json_path);
    }
    return status;
  }
}

}  // namespace ferrite::bench
