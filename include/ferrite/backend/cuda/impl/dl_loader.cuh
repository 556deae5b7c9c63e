#pragma once
// Opening a CUDA library at run time (dlopen) and binding its entry points: what cublas_loader.cuh and
// nccl.cuh share (nvcc only).
#include <dlfcn.h>

#include <string>
#include <type_traits>
#include <vector>

namespace ferrite::cuda::detail {

// The first of `candidates` that dlopen accepts (RTLD_NOW | RTLD_LOCAL), or null; `tried` lists every
// file tried with dlerror's reason, for the caller's message.
inline void* open_first(const std::vector<std::string>& candidates, std::string& tried) {
  for (const auto& name : candidates) {
    if (void* handle = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL)) return handle;
    const char* why = dlerror();
    tried += (tried.empty() ? "" : "; ") + name + ": " + (why ? why : "not found");
  }
  return nullptr;
}

// fn := the symbol's address; a missing symbol is appended to `missing` (comma-separated).
template <class Fn>
void bind_symbol(void* handle, Fn& fn, const char* symbol, std::string& missing) {
  fn = reinterpret_cast<std::remove_reference_t<Fn>>(dlsym(handle, symbol));
  if (!fn) missing += std::string(missing.empty() ? "" : ", ") + symbol;
}

}  // namespace ferrite::cuda::detail
