#pragma once
// Where and how a benchmark ran: CPU model, logical cores, OS, compiler, flags, commit, time.
// Recorded in every JSON (the "env" object) so that two numbers are only compared when comparable.
//
// Library headers cannot include the build's generated build_info.hpp, so the program passes the
// build facts in, straight from its macros:
//   #include "build_info.hpp"
//   const bench::BuildInfo build{FERRITE_VERSION, FERRITE_COMPILER, FERRITE_FLAGS,
//                                FERRITE_GIT_COMMIT, FERRITE_BUILD_TYPE, FERRITE_CUDA_BUILT != 0};
//   const bench::Environment env = bench::collect_environment(build);
#include <chrono>
#include <ctime>
#include <fstream>
#include <istream>
#include <string>
#include <string_view>
#include <thread>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/utsname.h>
#include <unistd.h>
#endif

namespace ferrite::bench {

// Facts fixed at build time (the FERRITE_* macros of build_info.hpp).
struct BuildInfo {
  std::string version;     // ferrite version, "0.1.0"
  std::string compiler;    // "gcc 12.2.0"
  std::string flags;       // "-O3 -march=native"
  std::string git_commit;  // 40 hex digits, or "unknown" outside a git checkout
  std::string build_type;  // "release", "debugoptimized", ...
  bool cuda_built = false;
};

// Facts about this run. Every string is non-empty ("unknown" when it cannot be found out), as the
// schema requires. No hostname, on purpose: JSON files get shared.
struct Environment {
  std::string cpu;         // "AMD EPYC 9R14 96-Core Processor"
  int cores = 1;           // logical CPUs (hardware threads) the OS reports, >= 1
  std::string compiler;
  std::string flags;
  std::string git_commit;
  std::string timestamp;   // ISO 8601 UTC, "2026-05-09T07:35:25Z": when collect_environment ran
  std::string os;          // "Linux 6.1.0-18-amd64 x86_64"
  std::string build_type;
};

inline std::string or_unknown(std::string text) { return text.empty() ? std::string("unknown") : text; }

// ISO 8601 UTC with second resolution and a 'Z' suffix, the only form the schema accepts.
inline std::string utc_timestamp(std::chrono::system_clock::time_point when = std::chrono::system_clock::now()) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(when);
  std::tm utc{};
#if defined(_WIN32)
  gmtime_s(&utc, &seconds);
#else
  gmtime_r(&seconds, &utc);
#endif
  char text[32];
  const std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return n ? std::string(text, n) : std::string("1970-01-01T00:00:00Z");
}

namespace detail {

inline std::string trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(first, last - first + 1));
}

// The first "model name : ..." line of a /proc/cpuinfo-formatted stream; empty if there is none
// (ARM kernels often print no model name).
inline std::string parse_cpu_model(std::istream& cpuinfo) {
  std::string line;
  while (std::getline(cpuinfo, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (trim(std::string_view(line).substr(0, colon)) == "model name")
      return trim(std::string_view(line).substr(colon + 1));
  }
  return {};
}

}  // namespace detail

// CPU model from /proc/cpuinfo, or "unknown".
inline std::string cpu_model_name() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  return or_unknown(cpuinfo ? detail::parse_cpu_model(cpuinfo) : std::string());
}

// Logical CPUs (hardware threads), never less than 1. Not the CPUs this process may use: a
// benchmark pins its thread count explicitly and records it in "device.threads".
inline int logical_cores() {
  unsigned n = std::thread::hardware_concurrency();  // 0 means "could not tell"
#if defined(__unix__) || defined(__APPLE__)
  if (n == 0) {
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online > 0) n = static_cast<unsigned>(online);
  }
#endif
  return n > 0 ? static_cast<int>(n) : 1;
}

// "Linux 6.1.0-18-amd64 x86_64" (uname: sysname release machine), or "unknown".
inline std::string os_description() {
#if defined(__unix__) || defined(__APPLE__)
  utsname names{};
  if (uname(&names) == 0)
    return std::string(names.sysname) + " " + names.release + " " + names.machine;
#endif
  return "unknown";
}

inline Environment collect_environment(const BuildInfo& build) {
  Environment env;
  env.cpu = cpu_model_name();
  env.cores = logical_cores();
  env.compiler = or_unknown(build.compiler);
  env.flags = or_unknown(build.flags);
  env.git_commit = or_unknown(build.git_commit);
  env.timestamp = utc_timestamp();
  env.os = os_description();
  env.build_type = or_unknown(build.build_type);
  return env;
}

}  // namespace ferrite::bench
