#pragma once
// Host memory of this process, in MiB ("MB" in the JSON schema means MiB = 2^20 bytes).
//
// peak_host_rss_mb() is the kernel's high-water mark of resident memory (getrusage ru_maxrss) since
// the process started: it includes data loading and everything else the program did, which is what
// the PyTorch reference measures too (resource.getrusage). It never goes down, so a program that
// wants the training phase alone must run it in its own process.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "ferrite/core/result.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/resource.h>
#include <unistd.h>
#endif

namespace ferrite::bench {

inline constexpr double kBytesPerMiB = 1024.0 * 1024.0;

// Peak resident set size of this process, MiB.
inline Result<double> peak_host_rss_mb() {
#if defined(__unix__) || defined(__APPLE__)
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0)
    return make_error(ErrorCode::io, "bench::peak_host_rss_mb",
                      std::string("getrusage(RUSAGE_SELF) failed: ") + std::strerror(errno));
#if defined(__APPLE__)
  return static_cast<double>(usage.ru_maxrss) / kBytesPerMiB;  // bytes on macOS
#else
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // KiB on Linux and the BSDs
#endif
#else
  return make_error(ErrorCode::unsupported, "bench::peak_host_rss_mb",
                    "peak RSS is only measured on POSIX systems (getrusage)");
#endif
}

// Resident set size right now, MiB: /proc/self/statm, second field (resident pages) x page size.
inline Result<double> current_host_rss_mb() {
#if defined(__linux__)
  std::ifstream statm("/proc/self/statm");
  long long total_pages = 0;
  long long resident_pages = 0;
  if (!(statm >> total_pages >> resident_pages))
    return make_error(ErrorCode::io, "bench::current_host_rss_mb",
                      "cannot read the resident page count from /proc/self/statm");
  const long page_bytes = sysconf(_SC_PAGESIZE);
  if (page_bytes <= 0)
    return make_error(ErrorCode::io, "bench::current_host_rss_mb", "sysconf(_SC_PAGESIZE) failed");
  return static_cast<double>(resident_pages) * static_cast<double>(page_bytes) / kBytesPerMiB;
#else
  return make_error(ErrorCode::unsupported, "bench::current_host_rss_mb",
                    "current RSS is only measured on Linux (/proc/self/statm)");
#endif
}

}  // namespace ferrite::bench
