#pragma once
// A small PNG writer (8-bit grayscale or RGB, no interlace, no palette) on zlib: enough to save a picture
// of a tensor (bench/qca's density map) without an image library.
//
//   FE_TRY(io::write_png("out.png", pixels, width, height, io::PngColor::gray));
//   FE_TRY(io::write_png_heatmap("density.png", values, width, height, lo, hi, io::PngColormap::heat,
//                                {{"Title", "density"}}));
//
// File layout (PNG 1.2 / ISO 15948): the 8-byte signature, then chunks [u32 length, big-endian]
// [4-byte type] [data] [u32 CRC-32 of type + data]: IHDR, optional tEXt, one or more IDAT, IEND. IDAT
// holds one zlib stream (compress2) of the scanlines, each prefixed by filter byte 0 (None): the
// better filters would shrink photos, not the smooth maps we write. The stream is split over IDAT
// chunks of at most kPngMaxIdatBytes so no chunk comes near the format's 2^31 - 1 length limit.
// Writing is atomic (io/file.hpp): bytes go to "<path>.tmp.<pid>.<n>", renamed over <path> only once
// fully written.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <zlib.h>

#include "ferrite/core/error.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/io/file.hpp"

namespace ferrite::io {

// PNG colour types (the values are the format's own).
enum class PngColor : std::uint8_t { gray = 0, rgb = 2 };
inline constexpr int png_channels(PngColor color) { return color == PngColor::gray ? 1 : 3; }

// How write_png_heatmap turns a value in [0, 1] into a pixel.
enum class PngColormap {
  gray,  // black -> white (one channel)
  heat,  // black -> red -> yellow -> white (RGB): brightness still grows with the value
};

// tEXt chunks: (keyword, text) pairs, Latin-1; keyword 1..79 printable characters.
using PngText = std::vector<std::pair<std::string, std::string>>;

inline constexpr std::int64_t kPngMaxSide = 0x7fffffff;          // the format's limit for width, height
inline constexpr std::size_t kPngMaxIdatBytes = std::size_t{1} << 20;

namespace detail {

inline constexpr std::string_view kPngOp = "png::write";
inline constexpr std::array<std::uint8_t, 8> kPngSignature = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

inline void append_be32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  const std::uint8_t b[4] = {std::uint8_t(v >> 24), std::uint8_t(v >> 16), std::uint8_t(v >> 8), std::uint8_t(v)};
  out.insert(out.end(), b, b + 4);
}

// [length][type][data][crc32(type + data)]
inline void append_chunk(std::vector<std::uint8_t>& out, const char (&type)[5], const std::uint8_t* data,
                         std::size_t n) {
  append_be32(out, static_cast<std::uint32_t>(n));
  const std::size_t type_at = out.size();
  out.insert(out.end(), type, type + 4);
  if (n) out.insert(out.end(), data, data + n);
  uLong crc = crc32(0L, Z_NULL, 0);
  // crc32 takes a uInt length: feed the (at most kPngMaxIdatBytes + 4) bytes in one call.
  crc = crc32(crc, out.data() + type_at, static_cast<uInt>(4 + n));
  append_be32(out, static_cast<std::uint32_t>(crc));
}

inline Error invalid(const std::string& what, const std::string& message, const std::string& shapes = {}) {
  return make_error(ErrorCode::invalid_argument, std::string(kPngOp), what + ": " + message, shapes);
}

inline Status check_text(const PngText& text, const std::string& what) {
  for (const auto& [key, value] : text) {
    if (key.empty() || key.size() > 79)
      return invalid(what, "tEXt keyword must have 1 to 79 characters, got " + std::to_string(key.size()));
    const bool printable = std::all_of(key.begin(), key.end(), [](unsigned char c) { return c >= 32 && c <= 126; });
    if (!printable || key.front() == ' ' || key.back() == ' ' || key.find("  ") != std::string::npos)
      return invalid(what, "tEXt keyword '" + key + "' must be printable ASCII without leading, trailing or double spaces");
    if (value.find('\0') != std::string::npos || value.size() > kPngMaxIdatBytes)
      return invalid(what, "tEXt value of '" + key + "' contains a NUL byte or is longer than 1 MiB");
  }
  return {};
}

inline Result<std::vector<std::uint8_t>> encode(std::span<const std::uint8_t> pixels, std::int64_t width,
                                                std::int64_t height, PngColor color, const PngText& text,
                                                const std::string& what) {
  const std::string dims = std::to_string(width) + " x " + std::to_string(height);
  if (width <= 0 || height <= 0 || width > kPngMaxSide || height > kPngMaxSide)
    return invalid(what, "width and height must be in [1, 2^31 - 1], got " + dims, "[" + dims + "]");
  const std::uint64_t channels = static_cast<std::uint64_t>(png_channels(color));
  const std::uint64_t row = static_cast<std::uint64_t>(width) * channels;
  // (1 + row) * height must fit a size_t and zlib's uLong: refuse rather than wrap.
  if (row + 1 > std::uint64_t(-1) / static_cast<std::uint64_t>(height) ||
      (row + 1) * static_cast<std::uint64_t>(height) > std::uint64_t(static_cast<uLong>(-1)) / 2)
    return invalid(what, "image too large: " + dims, "[" + dims + "]");
  if (pixels.size() != row * static_cast<std::uint64_t>(height))
    return invalid(what,
                   "pixel buffer has " + std::to_string(pixels.size()) + " bytes, a " + dims + " image with " +
                       std::to_string(channels) + " channel(s) needs " +
                       std::to_string(row * static_cast<std::uint64_t>(height)),
                   "[" + dims + "]");
  FE_TRY(check_text(text, what));

  try {
    // Scanlines with filter byte 0 (None).
    std::vector<std::uint8_t> raw(static_cast<std::size_t>((row + 1) * static_cast<std::uint64_t>(height)));
    for (std::int64_t y = 0; y < height; ++y) {
      std::uint8_t* dst = raw.data() + static_cast<std::size_t>(y) * (row + 1);
      dst[0] = 0;
      std::memcpy(dst + 1, pixels.data() + static_cast<std::size_t>(y) * row, row);
    }
    uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
    std::vector<std::uint8_t> packed(packed_size);
    const int z = compress2(packed.data(), &packed_size, raw.data(), static_cast<uLong>(raw.size()), 6);
    if (z != Z_OK)
      return make_error(ErrorCode::internal, std::string(kPngOp),
                        what + ": zlib compress2 failed (code " + std::to_string(z) + ")");
    packed.resize(packed_size);

    std::vector<std::uint8_t> out(kPngSignature.begin(), kPngSignature.end());
    std::vector<std::uint8_t> ihdr;
    append_be32(ihdr, static_cast<std::uint32_t>(width));
    append_be32(ihdr, static_cast<std::uint32_t>(height));
    const std::uint8_t rest[5] = {8, static_cast<std::uint8_t>(color), 0, 0, 0};  // depth, colour, deflate, filter 0, no interlace
    ihdr.insert(ihdr.end(), rest, rest + 5);
    append_chunk(out, "IHDR", ihdr.data(), ihdr.size());
    for (const auto& [key, value] : text) {
      std::vector<std::uint8_t> t(key.begin(), key.end());
      t.push_back(0);
      t.insert(t.end(), value.begin(), value.end());
      append_chunk(out, "tEXt", t.data(), t.size());
    }
    for (std::size_t at = 0; at < packed.size(); at += kPngMaxIdatBytes)
      append_chunk(out, "IDAT", packed.data() + at, std::min(kPngMaxIdatBytes, packed.size() - at));
    append_chunk(out, "IEND", nullptr, 0);
    return out;
  } catch (const std::bad_alloc&) {
    return make_error(ErrorCode::out_of_memory, std::string(kPngOp), what + ": out of memory encoding " + dims);
  }
}

// value in [0, 1] -> 1 (gray) or 3 (heat) bytes.
inline void colormap_pixel(float t, PngColormap map, std::uint8_t* out) {
  const auto byte = [](float v) { return static_cast<std::uint8_t>(std::lround(std::clamp(v, 0.f, 1.f) * 255.f)); };
  if (map == PngColormap::gray) {
    out[0] = byte(t);
    return;
  }
  out[0] = byte(3.f * t);        // red rises over the first third,
  out[1] = byte(3.f * t - 1.f);  // green over the second,
  out[2] = byte(3.f * t - 2.f);  // blue over the last: black -> red -> yellow -> white
}

}  // namespace detail

// PNG bytes of an 8-bit image: pixels row-major, height rows of width * channels bytes (RGB interleaved).
inline Result<std::vector<std::uint8_t>> encode_png(std::span<const std::uint8_t> pixels, std::int64_t width,
                                                    std::int64_t height, PngColor color, const PngText& text = {}) {
  return detail::encode(pixels, width, height, color, text, "<memory>");
}

// The same, written to `path` atomically. Errors name the path: invalid_argument (sizes, text), io.
inline Status write_png(const std::filesystem::path& path, std::span<const std::uint8_t> pixels, std::int64_t width,
                        std::int64_t height, PngColor color, const PngText& text = {}) {
  if (path.empty()) return detail::invalid("<empty path>", "no output path given");
  FE_TRY_ASSIGN(const auto bytes, detail::encode(pixels, width, height, color, text, path.string()));
  return write_file_atomic(path, std::as_bytes(std::span<const std::uint8_t>(bytes)), detail::kPngOp);
}

// Pixels of values[height * width] (row-major) mapped linearly from [lo, hi] to the colormap, clamped
// outside. lo < hi, both finite; a non-finite value is an error (a NaN would otherwise pass as black).
inline Result<std::vector<std::uint8_t>> heatmap_pixels(std::span<const float> values, std::int64_t width,
                                                        std::int64_t height, float lo, float hi, PngColormap map) {
  const std::string op = "png::heatmap";
  if (width <= 0 || height <= 0 || values.size() != static_cast<std::uint64_t>(width) * static_cast<std::uint64_t>(height))
    return make_error(ErrorCode::invalid_argument, op,
                      std::to_string(values.size()) + " values do not form a " + std::to_string(width) + " x " +
                          std::to_string(height) + " image");
  if (!std::isfinite(lo) || !std::isfinite(hi) || !(lo < hi))
    return make_error(ErrorCode::invalid_argument, op,
                      "the range must be finite with lo < hi, got [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  const int channels = map == PngColormap::gray ? 1 : 3;
  std::vector<std::uint8_t> pixels(values.size() * static_cast<std::size_t>(channels));
  const float scale = 1.f / (hi - lo);
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i]))
      return make_error(ErrorCode::invalid_argument, op,
                        "value at row " + std::to_string(i / static_cast<std::size_t>(width)) + ", column " +
                            std::to_string(i % static_cast<std::size_t>(width)) + " is not finite");
    detail::colormap_pixel((values[i] - lo) * scale, map, pixels.data() + i * static_cast<std::size_t>(channels));
  }
  return pixels;
}

// heatmap_pixels, then write_png (gray -> colour type 0, heat -> RGB).
inline Status write_png_heatmap(const std::filesystem::path& path, std::span<const float> values, std::int64_t width,
                                std::int64_t height, float lo, float hi, PngColormap map, const PngText& text = {}) {
  auto pixels = heatmap_pixels(values, width, height, lo, hi, map);
  if (!pixels.ok()) {
    Error e = std::move(pixels).error();
    e.message = path.string() + ": " + e.message;
    return e;
  }
  return write_png(path, *pixels, width, height, map == PngColormap::gray ? PngColor::gray : PngColor::rgb, text);
}

}  // namespace ferrite::io
