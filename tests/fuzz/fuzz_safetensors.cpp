// Fuzz target: the safetensors reader (io/safetensors.hpp) on arbitrary bytes.
//
// Properties beyond "no crash, no leak, no UB": a file that parses has tensors whose sizes agree with
// their shapes, and it survives a round trip (serialize, parse again) with the same names, dtypes,
// shapes and bytes. Built with libFuzzer by scripts/fuzz.sh; replayed over its corpus by meson test.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "fuzz_check.hpp"
#include "ferrite/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ferrite;
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  auto file = io::parse_safetensors(bytes, "fuzz");
  if (!file.ok()) {
    FUZZ_CHECK(!file.error().message.empty());  // every refusal says why
    return 0;
  }
  for (const auto& t : file->tensors) {
    FUZZ_CHECK(t.tensor.shape().checked_numel().has_value());
    FUZZ_CHECK(t.tensor.nbytes() == static_cast<std::size_t>(t.tensor.numel()) * dtype_size(t.tensor.dtype()));
  }
  auto again_bytes = io::serialize_safetensors(file->refs(), file->metadata);
  FUZZ_CHECK(again_bytes.ok());
  auto again = io::parse_safetensors(*again_bytes, "fuzz round trip");
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->tensors.size() == file->tensors.size());
  FUZZ_CHECK(again->metadata == file->metadata);
  for (const auto& [name, a] : file->tensors) {  // (the writer may order the data differently)
    const Tensor* found = again->find(name);
    FUZZ_CHECK(found != nullptr);
    const Tensor& b = *found;
    FUZZ_CHECK(a.dtype() == b.dtype() && a.shape() == b.shape());
    FUZZ_CHECK(a.nbytes() == 0 || std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0);
  }
  return 0;
}
