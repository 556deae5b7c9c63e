// Fuzz target: the IDX / gzip reader (data/idx.hpp), which takes paths, so each input becomes two
// files in a private directory:
//
//   byte 0        max_samples = byte % 4 (0: all), to exercise the prefix load
//   bytes 1..4    n = little-endian u32: the images file is the next min(n, rest) bytes
//   the rest      the labels file
//
// Each file is raw IDX or gzip (zlib tells them apart), so the seeds hold both. Properties: a load that
// succeeds returns consistent sizes, pixels in [0, 1] and labels in [0, 10); a failure has a message.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "fuzz_check.hpp"
#include "ferrite/data/idx.hpp"

namespace {

const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const std::filesystem::path base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    std::filesystem::path d = base / ("ferrite_fuzz_idx_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

void write_file(const std::filesystem::path& p, const std::uint8_t* data, std::size_t size) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

struct RemoveScratch {
  ~RemoveScratch() {
    std::error_code ec;
    std::filesystem::remove_all(scratch_dir(), ec);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ferrite;
  static RemoveScratch cleanup;  // the directory goes when the process exits normally
  if (size < 5) return 0;
  const std::int64_t max_samples = data[0] % 4;
  std::uint32_t n = 0;
  std::memcpy(&n, data + 1, 4);
  const std::size_t rest = size - 5;
  const std::size_t image_bytes = std::min<std::size_t>(n, rest);
  const auto images = scratch_dir() / "images";
  const auto labels = scratch_dir() / "labels";
  write_file(images, data + 5, image_bytes);
  write_file(labels, data + 5 + image_bytes, rest - image_bytes);

  // A 64 MiB bound on what is inflated keeps every input fast (the reader must honour it).
  auto r = data::load_idx(images, labels, 10, {.max_samples = max_samples, .max_payload_bytes = 1u << 26});
  if (!r.ok()) {
    FUZZ_CHECK(!r.error().message.empty());
    return 0;
  }
  const data::Dataset& d = *r;
  FUZZ_CHECK(d.size() >= 1 && (max_samples == 0 || d.size() <= max_samples));
  FUZZ_CHECK(d.images.shape() == (Shape{d.size(), d.rows * d.cols}));
  FUZZ_CHECK(static_cast<std::uint64_t>(d.images.numel()) <= (1u << 26));
  const float* x = d.images.data<float>();
  for (std::int64_t k = 0; k < d.images.numel(); ++k) FUZZ_CHECK(x[k] >= 0.0f && x[k] <= 1.0f);
  for (std::int64_t i = 0; i < d.size(); ++i) FUZZ_CHECK(d.label_data()[i] >= 0 && d.label_data()[i] < 10);
  return 0;
}
