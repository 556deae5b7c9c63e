#pragma once
// Output paths that would destroy an input: the benchmark programs refuse a run in which an output
// flag names the same file as an input flag (or as another output), compared by file identity — the
// same inode through links and other spellings — before anything is read or written.
//
//   FE_TRY(bench::check_output_paths("qca", {{"--weights", c.weights}}, {{"--json", c.json_path}}));
//
// Special files (/dev/null, FIFOs) are exempt: two outputs may both go to /dev/null.
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "ferrite/core/macros.hpp"
#include "ferrite/core/result.hpp"

namespace ferrite::bench {

struct NamedPath {
  std::string_view flag;  // "--init-from"
  std::string path;       // empty: not given
};

// Whether a and b name the same file: the same inode when both exist, else the same absolute path
// once the links of its existing part are resolved (an output not created yet).
inline bool same_file(const std::string& a, const std::string& b) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool ea = fs::exists(a, ec), eb = fs::exists(b, ec);
  if (ea && eb) return fs::equivalent(a, b, ec) && !ec;
  if (ea != eb) return false;  // one exists and the other does not: different files
  const fs::path ca = fs::weakly_canonical(a, ec);
  if (ec) return false;
  const fs::path cb = fs::weakly_canonical(b, ec);
  return !ec && ca == cb;
}

inline bool is_special_file(const std::string& p) {
  std::error_code ec;
  const auto type = std::filesystem::status(p, ec).type();
  return !ec && (type == std::filesystem::file_type::character || type == std::filesystem::file_type::fifo);
}

namespace detail {
// outputs[k] against every input and every later output.
inline Status check_output(const std::string& op, const std::vector<NamedPath>& inputs,
                           const std::vector<NamedPath>& outputs, std::size_t k) {
  const NamedPath& out = outputs[k];
  if (out.path.empty() || is_special_file(out.path)) return ok_status();
  for (const NamedPath& in : inputs)
    if (!in.path.empty() && same_file(out.path, in.path))
      return make_error(ErrorCode::invalid_argument, op,
                        std::string(out.flag) + " '" + out.path + "' is the same file as " + std::string(in.flag) +
                            " '" + in.path + "': refusing to overwrite an input; nothing was read or written");
  for (std::size_t j = k + 1; j < outputs.size(); ++j)
    if (!outputs[j].path.empty() && same_file(out.path, outputs[j].path))
      return make_error(ErrorCode::invalid_argument, op,
                        std::string(out.flag) + " and " + std::string(outputs[j].flag) + " both name '" + out.path +
                            "': one would overwrite the other; nothing was read or written");
  return ok_status();
}
}  // namespace detail

inline Status check_output_paths(std::string_view program, const std::vector<NamedPath>& inputs,
                                 const std::vector<NamedPath>& outputs) {
  const std::string op(program);
  for (std::size_t k = 0; k < outputs.size(); ++k) FE_TRY(detail::check_output(op, inputs, outputs, k));
  return ok_status();
}

// The JSON report's path alone, against the inputs and the other outputs: checked before any report
// is written (an error report over an input would destroy it as surely as a success).
inline Status check_report_path(std::string_view program, const std::string& json_path,
                                const std::vector<NamedPath>& inputs, const std::vector<NamedPath>& outputs) {
  std::vector<NamedPath> all{{"--json", json_path}};
  all.insert(all.end(), outputs.begin(), outputs.end());
  return detail::check_output(std::string(program), inputs, all, 0);
}

}  // namespace ferrite::bench
