// io/png.hpp: the writer's bytes are read back by an independent little reader (signature, chunk
// lengths and CRCs, IHDR fields, tEXt, IEND, and the inflated IDAT stream against the pixels), plus
// the colormaps, the atomic write and every validation error.
#include <gtest/gtest.h>

#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "ferrite/io/png.hpp"

using namespace ferrite;
using namespace ferrite::io;
namespace fs = std::filesystem;

namespace {

struct Chunk {
  std::string type;
  std::vector<std::uint8_t> data;
};

std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
}

// Splits a PNG into chunks, checking the signature, every length and every CRC on the way.
std::vector<Chunk> read_chunks(const std::vector<std::uint8_t>& png) {
  const std::uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  EXPECT_GE(png.size(), 8u);
  EXPECT_TRUE(std::equal(sig, sig + 8, png.begin())) << "bad signature";
  std::vector<Chunk> chunks;
  std::size_t at = 8;
  while (at < png.size()) {
    if (png.size() - at < 12) {
      ADD_FAILURE() << "truncated chunk at byte " << at;
      break;
    }
    const std::uint32_t n = be32(png.data() + at);
    if (png.size() - at - 12 < n) {
      ADD_FAILURE() << "chunk at byte " << at << " claims " << n << " bytes, past the end";
      break;
    }
    Chunk c{std::string(reinterpret_cast<const char*>(png.data() + at + 4), 4),
            std::vector<std::uint8_t>(png.begin() + long(at + 8), png.begin() + long(at + 8 + n))};
    const std::uint32_t want = static_cast<std::uint32_t>(crc32(crc32(0L, Z_NULL, 0), png.data() + at + 4, 4 + n));
    EXPECT_EQ(be32(png.data() + at + 8 + n), want) << "CRC of chunk " << c.type << " at byte " << at;
    chunks.push_back(std::move(c));
    at += 12 + n;
  }
  return chunks;
}

struct Decoded {
  std::uint32_t width = 0, height = 0;
  int depth = 0, color = 0, interlace = -1;
  std::vector<std::uint8_t> pixels;  // without filter bytes
  std::vector<std::pair<std::string, std::string>> text;
  int idat_chunks = 0;
};

// Decodes what the writer produces (filter 0 only; anything else fails the test).
Decoded decode(const std::vector<std::uint8_t>& png) {
  Decoded d;
  const auto chunks = read_chunks(png);
  EXPECT_GE(chunks.size(), 3u);
  if (chunks.size() < 3) return d;
  EXPECT_EQ(chunks.front().type, "IHDR");
  EXPECT_EQ(chunks.front().data.size(), 13u);
  EXPECT_EQ(chunks.back().type, "IEND");
  EXPECT_TRUE(chunks.back().data.empty());
  // IEND is always the same 12 bytes: length 0, "IEND", CRC ae 42 60 82.
  const std::uint8_t iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
  EXPECT_TRUE(std::equal(iend, iend + 12, png.end() - 12));
  const auto& h = chunks.front().data;
  d.width = be32(h.data());
  d.height = be32(h.data() + 4);
  d.depth = h[8];
  d.color = h[9];
  EXPECT_EQ(h[10], 0) << "compression method";
  EXPECT_EQ(h[11], 0) << "filter method";
  d.interlace = h[12];
  std::vector<std::uint8_t> stream;
  bool idat_done = false;
  for (std::size_t i = 1; i + 1 < chunks.size(); ++i) {
    const auto& c = chunks[i];
    if (c.type == "IDAT") {
      EXPECT_FALSE(idat_done) << "IDAT chunks must be consecutive";
      stream.insert(stream.end(), c.data.begin(), c.data.end());
      ++d.idat_chunks;
    } else {
      if (d.idat_chunks) idat_done = true;
      if (c.type == "tEXt") {
        const auto nul = std::find(c.data.begin(), c.data.end(), 0);
        EXPECT_NE(nul, c.data.end());
        d.text.emplace_back(std::string(c.data.begin(), nul), std::string(nul + 1, c.data.end()));
      }
    }
  }
  const std::size_t channels = d.color == 0 ? 1 : 3, row = d.width * channels;
  std::vector<std::uint8_t> raw((row + 1) * d.height + 1);  // one spare byte: detect a too-long stream
  uLongf raw_size = raw.size();
  EXPECT_EQ(uncompress(raw.data(), &raw_size, stream.data(), stream.size()), Z_OK);
  EXPECT_EQ(raw_size, (row + 1) * d.height) << "inflated size";
  for (std::size_t y = 0; y < d.height && (y + 1) * (row + 1) <= raw_size; ++y) {
    EXPECT_EQ(raw[y * (row + 1)], 0) << "filter byte of row " << y;
    d.pixels.insert(d.pixels.end(), raw.begin() + long(y * (row + 1) + 1), raw.begin() + long((y + 1) * (row + 1)));
  }
  return d;
}

std::vector<std::uint8_t> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class PngFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ferrite_test_png_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

}  // namespace

TEST(Png, GrayImageRoundTrips) {
  const std::vector<std::uint8_t> pixels = {0, 1, 2, 250, 254, 255};  // 3 x 2
  auto png = encode_png(pixels, 3, 2, PngColor::gray);
  ASSERT_TRUE(png.ok()) << png.error().to_string();
  const Decoded d = decode(*png);
  EXPECT_EQ(d.width, 3u);
  EXPECT_EQ(d.height, 2u);
  EXPECT_EQ(d.depth, 8);
  EXPECT_EQ(d.color, 0);
  EXPECT_EQ(d.interlace, 0);
  EXPECT_EQ(d.idat_chunks, 1);
  EXPECT_EQ(d.pixels, pixels);
}

TEST(Png, RgbImageWithTextRoundTrips) {
  std::vector<std::uint8_t> pixels;
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 7; ++x) pixels.insert(pixels.end(), {std::uint8_t(x * 30), std::uint8_t(y * 50), std::uint8_t(x ^ y)});
  auto png = encode_png(pixels, 7, 5, PngColor::rgb, {{"Title", "density"}, {"Comment", "range [0.5, 1]"}});
  ASSERT_TRUE(png.ok()) << png.error().to_string();
  const Decoded d = decode(*png);
  EXPECT_EQ(d.width, 7u);
  EXPECT_EQ(d.height, 5u);
  EXPECT_EQ(d.color, 2);
  EXPECT_EQ(d.pixels, pixels);
  ASSERT_EQ(d.text.size(), 2u);
  EXPECT_EQ(d.text[0], (std::pair<std::string, std::string>{"Title", "density"}));
  EXPECT_EQ(d.text[1].second, "range [0.5, 1]");
}

TEST(Png, LargeIncompressibleImageSpansSeveralIdatChunks) {
  const std::int64_t w = 1200, h = 1000;  // 1.2 MB of noise: deflate cannot fit it in one 1 MiB chunk
  std::vector<std::uint8_t> pixels(static_cast<std::size_t>(w * h));
  std::uint64_t s = 0x9e3779b97f4a7c15ull;
  for (auto& p : pixels) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    p = static_cast<std::uint8_t>(s >> 56);
  }
  auto png = encode_png(pixels, w, h, PngColor::gray);
  ASSERT_TRUE(png.ok()) << png.error().to_string();
  const Decoded d = decode(*png);
  EXPECT_GE(d.idat_chunks, 2);
  EXPECT_TRUE(d.pixels == pixels);
}

TEST(Png, HeatmapMapsTheRangeAndClamps) {
  const std::vector<float> values = {0.f, 0.5f, 1.f, -3.f, 7.f, 0.25f};
  auto gray = heatmap_pixels(values, 3, 2, 0.f, 1.f, PngColormap::gray);
  ASSERT_TRUE(gray.ok()) << gray.error().to_string();
  EXPECT_EQ(*gray, (std::vector<std::uint8_t>{0, 128, 255, 0, 255, 64}));
  auto heat = heatmap_pixels(values, 3, 2, 0.f, 1.f, PngColormap::heat);
  ASSERT_TRUE(heat.ok());
  ASSERT_EQ(heat->size(), 18u);
  EXPECT_EQ((std::vector<std::uint8_t>(heat->begin(), heat->begin() + 3)), (std::vector<std::uint8_t>{0, 0, 0}));
  EXPECT_EQ((std::vector<std::uint8_t>(heat->begin() + 6, heat->begin() + 9)), (std::vector<std::uint8_t>{255, 255, 255}));
  EXPECT_EQ((*heat)[3], 255);  // 0.5: red saturated, green half, no blue
  EXPECT_EQ((*heat)[4], 128);
  EXPECT_EQ((*heat)[5], 0);
  // brightness grows with the value
  int last = -1;
  for (int i = 0; i <= 20; ++i) {
    const float v = float(i) / 20;
    auto p = heatmap_pixels(std::span<const float>(&v, 1), 1, 1, 0.f, 1.f, PngColormap::heat);
    ASSERT_TRUE(p.ok());
    const int sum = (*p)[0] + (*p)[1] + (*p)[2];
    EXPECT_GE(sum, last) << v;
    last = sum;
  }
}

TEST_F(PngFile, WriteIsAtomicAndReadableBack) {
  const fs::path path = dir_ / "density.png";
  const std::vector<float> values = {1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f, 8.f};
  auto s = write_png_heatmap(path, values, 4, 2, 1.f, 8.f, PngColormap::gray, {{"Title", "test"}});
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  const Decoded d = decode(read_file(path));
  EXPECT_EQ(d.width, 4u);
  EXPECT_EQ(d.height, 2u);
  ASSERT_EQ(d.pixels.size(), 8u);
  EXPECT_EQ(d.pixels.front(), 0);
  EXPECT_EQ(d.pixels.back(), 255);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1) << "a temporary file was left";

  // Overwriting replaces the whole file.
  const std::vector<std::uint8_t> one = {7};
  ASSERT_TRUE(write_png(path, one, 1, 1, PngColor::gray).ok());
  EXPECT_EQ(decode(read_file(path)).pixels, one);
}

TEST_F(PngFile, UnwritablePathIsAnIoErrorNamingIt) {
  const fs::path path = dir_ / "no" / "such" / "dir" / "x.png";
  const std::vector<std::uint8_t> one = {7};
  auto s = write_png(path, one, 1, 1, PngColor::gray);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::io);
  EXPECT_NE(s.error().message.find(path.string()), std::string::npos) << s.error().to_string();
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(PngFile, InvalidInputsAreErrorsNamingThePath) {
  const fs::path path = dir_ / "bad.png";
  const std::vector<std::uint8_t> six(6, 1);
  struct Case {
    std::int64_t w, h;
    PngColor color;
    const char* needle;
  };
  for (const Case& c : {Case{0, 6, PngColor::gray, "width and height"}, Case{6, 0, PngColor::gray, "width and height"},
                        Case{-2, -3, PngColor::gray, "width and height"}, Case{4, 2, PngColor::gray, "needs 8"},
                        Case{3, 2, PngColor::rgb, "needs 18"},
                        Case{std::int64_t{1} << 31, 1, PngColor::gray, "width and height"}}) {
    auto s = write_png(path, six, c.w, c.h, c.color);
    ASSERT_FALSE(s.ok()) << c.w << " x " << c.h;
    EXPECT_EQ(s.error().code, ErrorCode::invalid_argument);
    EXPECT_NE(s.error().message.find(path.string()), std::string::npos) << s.error().to_string();
    EXPECT_NE(s.error().message.find(c.needle), std::string::npos) << s.error().to_string();
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(write_png("", six, 6, 1, PngColor::gray).ok());

  for (const auto& key : {std::string(), std::string(80, 'k'), std::string(" lead"), std::string("tab\tkey")}) {
    auto s = write_png(path, six, 6, 1, PngColor::gray, {{key, "v"}});
    ASSERT_FALSE(s.ok()) << "keyword '" << key << "'";
    EXPECT_NE(s.error().message.find("tEXt"), std::string::npos);
  }
  EXPECT_FALSE(write_png(path, six, 6, 1, PngColor::gray, {{"Key", std::string("a\0b", 3)}}).ok());

  const std::vector<float> values = {0.f, std::nanf(""), 1.f, 2.f};
  auto nan = write_png_heatmap(path, values, 2, 2, 0.f, 2.f, PngColormap::gray);
  ASSERT_FALSE(nan.ok());
  EXPECT_NE(nan.error().message.find("row 0, column 1 is not finite"), std::string::npos) << nan.error().to_string();
  EXPECT_NE(nan.error().message.find(path.string()), std::string::npos);
  const std::vector<float> four = {0.f, 1.f, 2.f, 3.f};
  EXPECT_FALSE(write_png_heatmap(path, four, 2, 2, 1.f, 1.f, PngColormap::gray).ok());  // lo == hi
  EXPECT_FALSE(write_png_heatmap(path, four, 2, 2, 0.f, std::numeric_limits<float>::infinity(), PngColormap::gray).ok());
  EXPECT_FALSE(write_png_heatmap(path, four, 3, 2, 0.f, 3.f, PngColormap::gray).ok());  // 4 values, 6 pixels
  EXPECT_FALSE(fs::exists(path));
}
