#pragma once
// Device: where a tensor lives and an op runs. "cpu" or "cuda:N".
#include <charconv>
#include <string>
#include <string_view>
#include <vector>

#include "ferrite/core/result.hpp"

namespace ferrite {

enum class DeviceType { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;

  static constexpr Device cpu() noexcept { return {DeviceType::cpu, 0}; }
  static constexpr Device cuda(int index = 0) noexcept { return {DeviceType::cuda, index}; }

  bool is_cpu() const noexcept { return type == DeviceType::cpu; }
  bool is_cuda() const noexcept { return type == DeviceType::cuda; }

  std::string to_string() const {
    return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
  }
  friend bool operator==(const Device& a, const Device& b) noexcept {
    return a.type == b.type && (a.is_cpu() || a.index == b.index);
  }
  friend bool operator!=(const Device& a, const Device& b) noexcept { return !(a == b); }

  // Parses "cpu", "cuda" (= cuda:0) or "cuda:N".
  static Result<Device> parse(std::string_view text) {
    if (text == "cpu") return cpu();
    if (text == "cuda") return cuda(0);
    if (text.substr(0, 5) == "cuda:") {
      int idx = -1;
      auto digits = text.substr(5);
      auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), idx);
      if (ec == std::errc() && ptr == digits.data() + digits.size() && idx >= 0) return cuda(idx);
    }
    return make_error(ErrorCode::invalid_argument, "Device::parse",
                      "unknown device '" + std::string(text) + "' (expected cpu, cuda or cuda:N)");
  }
};

}  // namespace ferrite
