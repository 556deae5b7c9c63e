#pragma once
// The JSON "device" object of a GPU run (docs/json-schema.md): device_json's fields plus what a
// reader needs to compare GPUs. No CUDA types: cuda::DeviceInfo comes from backend/cuda/runtime.hpp.
#include <string>

#include <nlohmann/json.hpp>

#include "ferrite/backend/cuda/memory.hpp"
#include "ferrite/backend/cuda/runtime.hpp"
#include "ferrite/bench/report.hpp"
#include "ferrite/core/device.hpp"

namespace ferrite::bench {

inline nlohmann::json cuda_device_json(const Device& device, const cuda::DeviceInfo& info, int host_threads) {
  nlohmann::json j = device_json(device, info.name, host_threads);
  j["compute_capability"] = std::to_string(info.compute_major) + "." + std::to_string(info.compute_minor);
  j["memory_total_mb"] = cuda::bytes_to_mib(info.total_memory_bytes);
  j["multiprocessors"] = info.multiprocessors;
  j["driver_version"] = info.driver_version;
  j["runtime_version"] = info.runtime_version;
  return j;
}

}  // namespace ferrite::bench
