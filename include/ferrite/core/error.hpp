#pragma once
// Error: what went wrong, in which operation, on which shapes. Errors are values (see result.hpp).
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferrite {

enum class ErrorCode {
  shape_mismatch,
  invalid_argument,
  io,
  parse,
  device_unavailable,
  out_of_memory,
  cuda,
  unsupported,
  internal,
};

inline constexpr std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::shape_mismatch: return "shape_mismatch";
    case ErrorCode::invalid_argument: return "invalid_argument";
    case ErrorCode::io: return "io";
    case ErrorCode::parse: return "parse";
    case ErrorCode::device_unavailable: return "device_unavailable";
    case ErrorCode::out_of_memory: return "out_of_memory";
    case ErrorCode::cuda: return "cuda";
    case ErrorCode::unsupported: return "unsupported";
    case ErrorCode::internal: return "internal";
  }
  return "unknown";
}

struct Error {
  ErrorCode code = ErrorCode::internal;
  std::string op;       // the operation that failed, e.g. "gemm", "safetensors::load"
  std::string shapes;   // the shapes / dtypes involved, already formatted ("[32, 784] x [128, 700]")
  std::string message;  // a human sentence: what was wrong and where

  // "gemm: shape_mismatch: inner dimensions differ (shapes [32, 784] x [700, 128])"
  std::string to_string() const {
    std::string s = op.empty() ? std::string() : op + ": ";
    s += std::string(ferrite::to_string(code)) + ": " + message;
    if (!shapes.empty()) s += " (shapes " + shapes + ")";
    return s;
  }
};

inline Error make_error(ErrorCode code, std::string op, std::string message, std::string shapes = {}) {
  return Error{code, std::move(op), std::move(shapes), std::move(message)};
}

}  // namespace ferrite
