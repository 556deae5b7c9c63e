#pragma once
// Which devices this build and machine can run on, and a check that names them when one is missing.
// Backend level (core + backend/cuda/runtime.hpp only): the CUDA units call check_device too.
#include <string>
#include <vector>

#include "ferrite/backend/cuda/runtime.hpp"
#include "ferrite/core/device.hpp"

namespace ferrite {

inline std::vector<Device> available_devices() {
  std::vector<Device> devices{Device::cpu()};
  const int n = cuda::device_count();
  for (int i = 0; i < n; ++i) devices.push_back(Device::cuda(i));
  return devices;
}

inline std::string device_list_string(const std::vector<Device>& devices) {
  std::string s;
  for (const auto& d : devices) s += (s.empty() ? "" : ", ") + d.to_string();
  return s;
}

// Ok when `device` can run here; otherwise device_unavailable saying why and what is available.
inline Status check_device(Device device) {
  const auto devices = available_devices();
  for (const auto& d : devices)
    if (d == device) return {};
  std::string why;
  if (device.is_cuda() && !cuda::compiled_with_cuda())
    why = cuda::detail::kNoCudaBackend;
  else if (device.is_cuda())
    why = "no CUDA device with index " + std::to_string(device.index) + " was found";
  else
    why = "device not available";
  return make_error(ErrorCode::device_unavailable, "check_device",
                    device.to_string() + " is not available: " + why +
                        "; available devices: " + device_list_string(devices));
}

}  // namespace ferrite
