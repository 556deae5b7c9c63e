#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "ferrite/io/half.hpp"
#include "ferrite/io/safetensors.hpp"

using namespace ferrite;
using namespace ferrite::io;
namespace fs = std::filesystem;

namespace {

// A file in bytes: u64 little-endian header length, header text, data bytes.
std::vector<std::byte> file_bytes(std::string_view header, const std::vector<std::uint8_t>& data = {}) {
  std::vector<std::byte> out(8);
  const std::uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  for (char c : header) out.push_back(static_cast<std::byte>(c));
  for (auto b : data) out.push_back(static_cast<std::byte>(b));
  return out;
}

template <class T>
void append_le(std::vector<std::uint8_t>& out, T value) {
  std::uint8_t raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));
  out.insert(out.end(), raw, raw + sizeof(T));
}

std::vector<std::uint8_t> zeros(std::size_t n) { return std::vector<std::uint8_t>(n, 0); }

std::uint32_t bits(float f) { return std::bit_cast<std::uint32_t>(f); }

// A fresh temporary directory per test, removed afterwards.
class SafetensorsFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("ferrite-safetensors-" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path path(const std::string& name) const { return dir_ / name; }
  // Whether a temporary of the atomic writer ("<name>.tmp.<pid>.<n>") is left beside `name`.
  bool temporary_left(const std::string& name) const {
    for (const auto& entry : fs::directory_iterator(dir_))
      if (entry.path().filename().string().rfind(name + ".tmp", 0) == 0) return true;
    return false;
  }
  void write_file(const fs::path& p, const std::vector<std::byte>& bytes) const {
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good());
  }
  std::vector<std::byte> read_file(const fs::path& p) const {
    std::ifstream in(p, std::ios::binary);
    std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> out(raw.size());
    std::memcpy(out.data(), raw.data(), raw.size());
    return out;
  }
  fs::path dir_;
};

}  // namespace

// ---------------------------------------------------------------- half.hpp

TEST(Half, EveryF16ConvertsExactlyAndRoundTrips) {
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const auto half = static_cast<std::uint16_t>(h);
    const float f = half_to_float(half);
    const int sign = (h & 0x8000) ? -1 : 1;
    const int exponent = (h >> 10) & 0x1f;
    const int mantissa = h & 0x3ff;
    if (exponent == 0x1f) {
      if (mantissa == 0) {
        EXPECT_TRUE(std::isinf(f) && std::signbit(f) == (sign < 0)) << h;
      } else {
        EXPECT_TRUE(std::isnan(f)) << h;
        EXPECT_TRUE(std::isnan(half_to_float(float_to_half(f)))) << h;
      }
      continue;
    }
    const double expected = exponent == 0 ? sign * std::ldexp(mantissa, -24)
                                          : sign * std::ldexp(1024 + mantissa, exponent - 25);
    ASSERT_EQ(static_cast<double>(f), expected) << "f16 bits " << h;
    ASSERT_EQ(std::signbit(f), sign < 0) << h;  // -0 stays -0
    ASSERT_EQ(float_to_half(f), half) << "round trip of f16 bits " << h;
  }
}

TEST(Half, FloatToHalfRoundsToNearestEven) {
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie -> even (down)
  EXPECT_EQ(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie -> even (up)
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3c01);
  EXPECT_EQ(float_to_half(65519.0f), 0x7bff);
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);  // tie at the top rounds to inf
  EXPECT_EQ(float_to_half(-1e10f), 0xfc00);
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);      // tie between 0 and 2^-24 -> 0
  EXPECT_EQ(float_to_half(3 * std::ldexp(1.0f, -25)), 0x0002);  // tie between 1 and 2 ulp -> 2
  EXPECT_EQ(float_to_half(-1e-10f), 0x8000);
  EXPECT_EQ(float_to_half(std::ldexp(1023.5f, -24)), 0x0400);   // rounds up into the normals
}

TEST(Half, Bfloat16) {
  EXPECT_EQ(bits(bfloat16_to_float(0x3f80)), bits(1.0f));
  EXPECT_EQ(bits(bfloat16_to_float(0x0001)), 0x00010000u);  // bf16 subnormal
  EXPECT_EQ(float_to_bfloat16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);      // tie -> even
  EXPECT_EQ(float_to_bfloat16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);  // tie -> even
  EXPECT_EQ(float_to_bfloat16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_TRUE(std::isnan(bfloat16_to_float(float_to_bfloat16(std::numeric_limits<float>::quiet_NaN()))));
  // A NaN whose payload lives only in the low 16 bits must not round to inf.
  EXPECT_TRUE(std::isnan(bfloat16_to_float(float_to_bfloat16(std::bit_cast<float>(0x7f800001u)))));
}

// ---------------------------------------------------------------- round trips

TEST_F(SafetensorsFiles, RoundTripF32I32I64WithMetadata) {
  auto w = Tensor::empty({2, 3}).value();
  for (int i = 0; i < 6; ++i) w.data<float>()[i] = 0.25f * static_cast<float>(i) - 1.0f;
  w.data<float>()[5] = -0.0f;
  const std::int32_t labels[] = {7, -3, 2147483647};
  auto lab = Tensor::from_data<std::int32_t>({3}, labels, 3).value();
  const std::int64_t order[] = {std::numeric_limits<std::int64_t>::min(), 0, 42, 1LL << 40};
  auto idx = Tensor::from_data<std::int64_t>({2, 2}, order, 4).value();

  const auto file = path("model.safetensors");
  const SafetensorsMetadata metadata{{"format", "pt"}, {"epoch", "3"}, {"note", "ünïcode \"quoted\"\n"}};
  ASSERT_TRUE(save_safetensors(file, {{"fc.weight", &w}, {"labels", &lab}, {"batch.order", &idx}}, metadata).ok());
  EXPECT_FALSE(temporary_left("model.safetensors"));

  // Data starts 8-byte aligned.
  const auto raw = read_file(file);
  std::uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);

  auto loaded = load_safetensors(file);
  ASSERT_TRUE(loaded.ok()) << loaded.error().to_string();
  EXPECT_EQ(loaded->metadata, metadata);
  // File order: descending dtype alignment (I64, F32, I32), like python safetensors.
  EXPECT_EQ(loaded->names(), (std::vector<std::string>{"batch.order", "fc.weight", "labels"}));

  const Tensor* w2 = loaded->find("fc.weight");
  ASSERT_NE(w2, nullptr);
  EXPECT_EQ(w2->dtype(), DType::f32);
  EXPECT_EQ(w2->shape(), (Shape{2, 3}));
  EXPECT_EQ(std::memcmp(w2->raw_data(), w.raw_data(), w.nbytes()), 0);
  EXPECT_TRUE(std::signbit(w2->data<float>()[5]));

  const Tensor* lab2 = loaded->find("labels");
  ASSERT_NE(lab2, nullptr);
  EXPECT_EQ(lab2->dtype(), DType::i32);
  EXPECT_EQ(lab2->shape(), (Shape{3}));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(lab2->data<std::int32_t>()[i], labels[i]);

  auto idx2 = loaded->take("batch.order");
  ASSERT_TRUE(idx2.ok());
  EXPECT_EQ(idx2->dtype(), DType::i64);
  EXPECT_EQ(idx2->shape(), (Shape{2, 2}));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(idx2->data<std::int64_t>()[i], order[i]);
  EXPECT_EQ(loaded->find("batch.order"), nullptr);  // taken
  auto missing = loaded->take("batch.order");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("no tensor named 'batch.order'"), std::string::npos);
  EXPECT_NE(missing.error().message.find("fc.weight"), std::string::npos);

  // Saving what was loaded reproduces the file byte for byte. (take() erased an entry: find again.)
  ASSERT_TRUE(save_safetensors(path("again.safetensors"), {{"fc.weight", loaded->find("fc.weight")},
                                                           {"labels", loaded->find("labels")},
                                                           {"batch.order", &*idx2}}, metadata).ok());
  EXPECT_EQ(read_file(path("again.safetensors")), raw);

  // The in-memory path reads the same thing.
  auto bytes = serialize_safetensors({{"fc.weight", &w}, {"labels", &lab}, {"batch.order", &idx}}, metadata);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, raw);
  auto parsed = parse_safetensors(*bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
  EXPECT_EQ(parsed->tensors.size(), 3u);
}

// U8 (decoded images): written as "U8", read back as u8 bytes, byte for byte; an odd length needs no padding.
TEST_F(SafetensorsFiles, RoundTripU8) {
  std::vector<std::uint8_t> pixels(3 * 5 * 7);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>(i * 29 + 3);
  auto t = Tensor::from_data<std::uint8_t>({3, 5, 7}, pixels.data(), static_cast<std::int64_t>(pixels.size())).value();
  auto w = Tensor::full<float>({2}, 1.5f).value();
  const auto file = path("u8.safetensors");
  ASSERT_TRUE(save_safetensors(file, {{"pixels", &t}, {"w", &w}}).ok());
  auto loaded = load_safetensors(file);
  ASSERT_TRUE(loaded.ok()) << loaded.error().to_string();
  const Tensor* back = loaded->find("pixels");
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->dtype(), DType::u8);
  EXPECT_EQ(back->shape(), (Shape{3, 5, 7}));
  EXPECT_EQ(std::memcmp(back->raw_data(), pixels.data(), pixels.size()), 0);
  EXPECT_EQ(loaded->find("w")->data<float>()[1], 1.5f);
}

TEST_F(SafetensorsFiles, EmptyTensorAndScalar) {
  auto empty = Tensor::empty({0}).value();
  auto empty2d = Tensor::empty({3, 0}, DType::i64).value();
  auto scalar = Tensor::full<float>({}, 2.5f).value();
  const auto file = path("edge.safetensors");
  ASSERT_TRUE(save_safetensors(file, {{"empty", &empty}, {"empty2d", &empty2d}, {"scalar", &scalar}}).ok());
  auto loaded = load_safetensors(file);
  ASSERT_TRUE(loaded.ok()) << loaded.error().to_string();
  EXPECT_TRUE(loaded->metadata.empty());
  ASSERT_NE(loaded->find("empty"), nullptr);
  EXPECT_EQ(loaded->find("empty")->shape(), (Shape{0}));
  EXPECT_EQ(loaded->find("empty")->numel(), 0);
  EXPECT_EQ(loaded->find("empty2d")->shape(), (Shape{3, 0}));
  EXPECT_EQ(loaded->find("empty2d")->dtype(), DType::i64);
  const Tensor* s = loaded->find("scalar");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->shape().rank(), 0);
  EXPECT_EQ(s->data<float>()[0], 2.5f);

  // A zero dimension makes a shape empty however large the others (as for a Tensor, and as numpy
  // counts); the reader used to multiply left to right and call [2^32, 2^32, 0] an overflow.
  const auto huge_but_empty = parse_safetensors(
      file_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,0],\"data_offsets\":[0,0]}}"));
  ASSERT_TRUE(huge_but_empty.ok()) << huge_but_empty.error().to_string();
  ASSERT_NE(huge_but_empty->find("a"), nullptr);
  EXPECT_EQ(huge_but_empty->find("a")->numel(), 0);

  // A file with no tensors at all is valid (python writes exactly these bytes for save({})).
  auto none = serialize_safetensors({});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, file_bytes("{}      "));
  auto parsed = parse_safetensors(*none);
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->tensors.empty());
}

// ---------------------------------------------------------------- python compatibility

TEST(Safetensors, ByteExactGoldenOfPythonSafetensors) {
  // safetensors.numpy.save({"a": np.array([1, 2], np.float32)})
  auto a = Tensor::full<float>({2}, 1.0f).value();
  a.data<float>()[1] = 2.0f;
  auto out = serialize_safetensors({{"a", &a}});
  ASSERT_TRUE(out.ok());
  const std::vector<std::uint8_t> data = {0, 0, 0x80, 0x3f, 0, 0, 0, 0x40};
  EXPECT_EQ(*out, file_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}  ", data));

  // safetensors.numpy.save({}, metadata={"framework": "pt"})
  auto meta_only = serialize_safetensors({}, {{"framework", "pt"}});
  ASSERT_TRUE(meta_only.ok());
  EXPECT_EQ(*meta_only, file_bytes("{\"__metadata__\":{\"framework\":\"pt\"}}     "));
}

TEST(Safetensors, ByteExactGoldenMixedDtypes) {
  // Bytes of safetensors 0.8.0 (python):
  //   save({"w": np.arange(6, dtype=np.float32).reshape(2, 3), "idx": np.array([3, -1], np.int64),
  //         "lab": np.array([7], np.int32), "h": np.array([1], np.float16),
  //         "bb": np.zeros((0,), np.float32), "s": np.array(2.5, np.float64)},
  //        metadata={"format": "pt"})
  const std::string header =
      "{\"__metadata__\":{\"format\":\"pt\"},"
      "\"idx\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
      "\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[16,24]},"
      "\"bb\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[24,24]},"
      "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[24,48]},"
      "\"lab\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[48,52]},"
      "\"h\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[52,54]}} ";
  ASSERT_EQ(header.size(), 0x170u);
  const std::vector<std::uint8_t> data = {3,   0,   0,   0,   0,   0,   0,   0,    255, 255, 255, 255, 255, 255,
                                          255, 255, 0,   0,   0,   0,   0,   0,    4,   64,  0,   0,   0,   0,
                                          0,   0,   128, 63,  0,   0,   0,   64,   0,   0,   64,  64,  0,   0,
                                          128, 64,  0,   0,   160, 64,  7,   0,    0,   0,   0,   60};
  const auto golden = file_bytes(header, data);

  auto w = Tensor::empty({2, 3}).value();
  for (int i = 0; i < 6; ++i) w.data<float>()[i] = static_cast<float>(i);
  const std::int64_t idx_values[] = {3, -1};
  auto idx = Tensor::from_data<std::int64_t>({2}, idx_values, 2).value();
  auto lab = Tensor::full<std::int32_t>({1}, 7).value();
  auto h = Tensor::empty({1}, DType::f16).value();
  const std::uint16_t one = 0x3c00;
  std::memcpy(h.raw_data(), &one, 2);
  auto bb = Tensor::empty({0}).value();
  auto s = Tensor::full<double>({}, 2.5).value();

  // Insertion order does not matter: the writer orders like python.
  auto out = serialize_safetensors(
      {{"h", &h}, {"w", &w}, {"s", &s}, {"lab", &lab}, {"bb", &bb}, {"idx", &idx}}, {{"format", "pt"}});
  ASSERT_TRUE(out.ok()) << out.error().to_string();
  EXPECT_EQ(*out, golden);

  auto parsed = parse_safetensors(golden, "golden");
  ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
  EXPECT_EQ(parsed->names(), (std::vector<std::string>{"idx", "s", "bb", "w", "lab", "h"}));
  EXPECT_EQ(parsed->find("h")->dtype(), DType::f32);  // widened
  EXPECT_EQ(parsed->find("h")->data<float>()[0], 1.0f);
  EXPECT_EQ(parsed->find("s")->data<float>()[0], 2.5f);
  EXPECT_EQ(parsed->find("idx")->data<std::int64_t>()[1], -1);
  EXPECT_EQ(parsed->metadata.at("format"), "pt");
}

// ---------------------------------------------------------------- reading F16 / BF16 / F64

TEST(Safetensors, ReadsF16Bf16F64AsF32) {
  const std::vector<std::uint16_t> f16 = {0x3c00, 0xc000, 0x0001, 0x03ff, 0x0400, 0x7bff,
                                          0x7c00, 0xfc00, 0x7e00, 0x8000, 0x3555, 0x8001};
  const std::vector<std::uint16_t> bf16 = {0x3f80, 0xc049, 0x7f80, 0xff80, 0x7fc0, 0x8000, 0x0001};
  const std::vector<double> f64 = {1.5, -0.1, 1e300, 1e-50, std::numeric_limits<double>::quiet_NaN(), -0.0};
  std::vector<std::uint8_t> data;
  for (auto v : f64) append_le(data, v);    // [0, 48)
  for (auto v : f16) append_le(data, v);    // [48, 72)
  for (auto v : bf16) append_le(data, v);   // [72, 86)
  const auto bytes = file_bytes(
      "{\"b\":{\"dtype\":\"BF16\",\"shape\":[7],\"data_offsets\":[72,86]},"
      "\"d\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0,48]},"
      "\"h\":{\"dtype\":\"F16\",\"shape\":[3,4],\"data_offsets\":[48,72]}}",
      data);
  auto file = parse_safetensors(bytes, "mixed.safetensors");
  ASSERT_TRUE(file.ok()) << file.error().to_string();
  EXPECT_EQ(file->names(), (std::vector<std::string>{"d", "h", "b"}));  // file (offset) order

  const Tensor* h = file->find("h");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->dtype(), DType::f32);
  EXPECT_EQ(h->shape(), (Shape{3, 4}));
  const float* hv = h->data<float>();
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(hv[0], 1.0f);
  EXPECT_EQ(hv[1], -2.0f);
  EXPECT_EQ(hv[2], std::ldexp(1.0f, -24));          // smallest subnormal
  EXPECT_EQ(hv[3], std::ldexp(1023.0f, -24));       // largest subnormal
  EXPECT_EQ(hv[4], std::ldexp(1.0f, -14));          // smallest normal
  EXPECT_EQ(hv[5], 65504.0f);                       // largest finite
  EXPECT_EQ(hv[6], inf);
  EXPECT_EQ(hv[7], -inf);
  EXPECT_TRUE(std::isnan(hv[8]));
  EXPECT_EQ(bits(hv[9]), bits(-0.0f));              // negative zero keeps its sign
  EXPECT_EQ(hv[10], 0.333251953125f);               // 0x3555
  EXPECT_EQ(hv[11], -std::ldexp(1.0f, -24));        // negative subnormal

  const float* bv = file->find("b")->data<float>();
  EXPECT_EQ(bv[0], 1.0f);
  EXPECT_EQ(bv[1], -3.140625f);
  EXPECT_EQ(bv[2], inf);
  EXPECT_EQ(bv[3], -inf);
  EXPECT_TRUE(std::isnan(bv[4]));
  EXPECT_EQ(bits(bv[5]), bits(-0.0f));
  EXPECT_EQ(bits(bv[6]), 0x00010000u);

  const Tensor* d = file->find("d");
  EXPECT_EQ(d->dtype(), DType::f32);
  const float* dv = d->data<float>();
  EXPECT_EQ(dv[0], 1.5f);
  EXPECT_EQ(dv[1], -0.1f);  // nearest f32 to the double -0.1
  EXPECT_EQ(dv[2], inf);
  EXPECT_EQ(bits(dv[3]), 0u);
  EXPECT_TRUE(std::isnan(dv[4]));
  EXPECT_EQ(bits(dv[5]), bits(-0.0f));
}

TEST_F(SafetensorsFiles, LargeF16TensorConvertsAcrossChunks) {
  // 1.5 MiB of F16: the file reader converts it in 1 MiB pieces.
  const std::size_t count = 3 * (1u << 18);
  std::vector<std::uint8_t> data;
  data.reserve(2 * count);
  for (std::size_t i = 0; i < count; ++i) append_le(data, static_cast<std::uint16_t>((i * 7919) & 0x7bff));
  const std::string header = "{\"x\":{\"dtype\":\"F16\",\"shape\":[" + std::to_string(count) +
                             "],\"data_offsets\":[0," + std::to_string(2 * count) + "]}}";
  const auto file = path("big.safetensors");
  write_file(file, file_bytes(header, data));
  auto loaded = load_safetensors(file);
  ASSERT_TRUE(loaded.ok()) << loaded.error().to_string();
  const float* x = loaded->find("x")->data<float>();
  for (std::size_t i = 0; i < count; ++i)
    ASSERT_EQ(bits(x[i]), bits(half_to_float(static_cast<std::uint16_t>((i * 7919) & 0x7bff)))) << i;
}

// ---------------------------------------------------------------- malformed input

namespace {

struct BadCase {
  const char* what;
  std::vector<std::byte> bytes;
  ErrorCode code;
  std::string expected;  // a substring of the message
};

std::vector<std::byte> length_only(std::uint64_t n, std::size_t extra) {
  std::vector<std::byte> out(8 + extra, std::byte{'{'});
  std::memcpy(out.data(), &n, 8);
  return out;
}

std::string entry(const std::string& name, const std::string& body) {
  return "\"" + name + "\":{" + body + "}";
}

std::vector<BadCase> bad_cases() {
  const std::string f32x2 = "\"dtype\":\"F32\",\"shape\":[2],";
  const auto P = ErrorCode::parse;
  std::vector<BadCase> cases = {
      {"shorter than 8 bytes", {std::byte{1}, std::byte{2}, std::byte{3}}, P, "is 3 bytes, too short"},
      {"header length over 100 MB", length_only(200'000'000, 16), P, "exceeds the 100000000-byte limit"},
      {"header length past the end", length_only(100, 16), P, "header length 100 is larger than the 16 bytes"},
      {"empty header", file_bytes(""), P, "header is not valid JSON"},
      {"invalid JSON", file_bytes("{\"a\":"), P, "header is not valid JSON"},
      {"invalid UTF-8", file_bytes("{\"\xff\":{}}"), P, "header is not valid JSON"},
      {"header not an object", file_bytes("[1,2]"), P, "header is a JSON array, expected an object"},
      {"entry not an object", file_bytes("{\"a\":5}"), P, "tensor 'a': entry is a JSON number"},
      {"missing key", file_bytes("{" + entry("a", "\"dtype\":\"F32\",\"shape\":[2]") + "}"), P,
       "tensor 'a': missing key \"data_offsets\""},
      {"extra key",
       file_bytes("{" + entry("a", f32x2 + "\"data_offsets\":[0,8],\"foo\":1") + "}", zeros(8)), P,
       "tensor 'a': unexpected key \"foo\""},
      {"unknown dtype",
       file_bytes("{" + entry("a", "\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]") + "}", zeros(8)), P,
       "tensor 'a': unknown dtype \"F33\""},
      {"dtype not a string",
       file_bytes("{" + entry("a", "\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]") + "}", zeros(8)), P,
       "tensor 'a': dtype is a JSON number"},
      {"unsupported dtype",
       file_bytes("{" + entry("mask", "\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]") + "}", zeros(2)),
       ErrorCode::unsupported, "tensor 'mask': dtype BOOL is not supported"},
      {"shape not an array",
       file_bytes("{" + entry("a", "\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]") + "}", zeros(8)), P,
       "tensor 'a': shape is a JSON number"},
      {"negative dimension",
       file_bytes("{" + entry("a", "\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,8]") + "}", zeros(8)), P,
       "tensor 'a': shape[1] is -1, expected a non-negative integer"},
      {"fractional dimension",
       file_bytes("{" + entry("a", "\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]") + "}", zeros(8)), P,
       "tensor 'a': shape[0] is 1.5"},
      {"rank above kMaxDims",
       file_bytes("{" + entry("a", "\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,2],\"data_offsets\":[0,8]") + "}",
                  zeros(8)),
       P, "has rank 7, more than the 6 dimensions"},
      {"element count overflow",
       file_bytes("{" + entry("a", "\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]") +
                      "}",
                  zeros(8)),
       P, "has more elements than fit in 64 bits"},
      {"bytes overflow",
       file_bytes("{" + entry("a", "\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]") +
                      "}",
                  zeros(8)),
       P, "needs more than 2^64"},
      {"data_offsets with one number", file_bytes("{" + entry("a", f32x2 + "\"data_offsets\":[0]") + "}", zeros(8)),
       P, "tensor 'a': data_offsets is [0], expected [begin, end]"},
      {"negative offset", file_bytes("{" + entry("a", f32x2 + "\"data_offsets\":[-1,7]") + "}", zeros(8)), P,
       "tensor 'a': data_offsets is [-1,7], expected"},
      {"begin after end", file_bytes("{" + entry("a", f32x2 + "\"data_offsets\":[8,0]") + "}", zeros(8)), P,
       "tensor 'a': data_offsets [8, 0]: begin is after end"},
      {"size does not match shape", file_bytes("{" + entry("a", f32x2 + "\"data_offsets\":[0,4]") + "}", zeros(4)),
       P, "tensor 'a': data_offsets [0, 4] span 4 bytes but F32[2] needs 8"},
      {"range outside the buffer", file_bytes("{" + entry("a", f32x2 + "\"data_offsets\":[8,16]") + "}", zeros(8)),
       P, "tensor 'a': data_offsets [8, 16] extend past the end of the 8-byte data section"},
      {"overlapping ranges",
       file_bytes("{" + entry("a", f32x2 + "\"data_offsets\":[0,8]") + "," +
                      entry("b", f32x2 + "\"data_offsets\":[4,12]") + "}",
                  zeros(12)),
       P, "tensor 'b': data_offsets [4, 12] overlap tensor 'a' [0, 8]"},
      {"gap between tensors",
       file_bytes("{" + entry("a", f32x2 + "\"data_offsets\":[0,8]") + "," +
                      entry("b", f32x2 + "\"data_offsets\":[12,20]") + "}",
                  zeros(20)),
       P, "gap of 4 unused bytes in the data section before tensor 'b'"},
      {"first tensor not at 0", file_bytes("{" + entry("a", f32x2 + "\"data_offsets\":[4,12]") + "}", zeros(12)),
       P, "gap of 4 unused bytes in the data section before tensor 'a'"},
      {"trailing bytes", file_bytes("{" + entry("a", f32x2 + "\"data_offsets\":[0,8]") + "}", zeros(12)), P,
       "data section is 12 bytes but the tensors cover only 8 (trailing bytes"},
      {"duplicate tensor name",
       file_bytes("{" + entry("a", f32x2 + "\"data_offsets\":[0,8]") + "," +
                      entry("a", f32x2 + "\"data_offsets\":[0,8]") + "}",
                  zeros(8)),
       P, "tensor name 'a' appears more than once"},
      {"duplicate key inside an entry",
       file_bytes("{" + entry("a", f32x2 + "\"data_offsets\":[0,8],\"dtype\":\"F32\"") + "}", zeros(8)), P,
       "'a': key \"dtype\" appears more than once"},
      {"metadata not an object", file_bytes("{\"__metadata__\":[1]}"), P, "__metadata__ is a JSON array"},
      {"metadata value not a string", file_bytes("{\"__metadata__\":{\"k\":\"v\",\"epoch\":3}}"), P,
       "__metadata__[\"epoch\"] is a JSON number (3), expected a string"},
  };
  return cases;
}

}  // namespace

TEST(Safetensors, EveryMalformedInputIsASpecificError) {
  for (const auto& c : bad_cases()) {
    SCOPED_TRACE(c.what);
    auto result = parse_safetensors(c.bytes, "case.safetensors");
    ASSERT_FALSE(result.ok());
    const Error& e = result.error();
    EXPECT_EQ(e.code, c.code) << e.to_string();
    EXPECT_EQ(e.op, "safetensors::load");
    EXPECT_NE(e.message.find(c.expected), std::string::npos) << e.to_string();
    EXPECT_NE(e.message.find("case.safetensors"), std::string::npos) << e.to_string();
  }
}

TEST(Safetensors, MessagesAreDistinct) {
  std::set<std::string> seen;
  for (const auto& c : bad_cases()) {
    auto result = parse_safetensors(c.bytes, "x");
    ASSERT_FALSE(result.ok()) << c.what;
    seen.insert(result.error().message);
  }
  EXPECT_EQ(seen.size(), bad_cases().size());
}

TEST(Safetensors, RandomCorruptionNeverCrashes) {
  // Flip, overwrite and cut bytes of a valid file: every result is a value (ok or error), never a crash,
  // and whatever loads fits in the file. (Run under ASan/UBSan to make this test bite harder.)
  auto w = Tensor::full<float>({3, 5}, 1.5f).value();
  auto i = Tensor::full<std::int64_t>({2}, -7).value();
  auto s = Tensor::full<float>({}, 2.0f).value();
  const auto good = serialize_safetensors({{"weight", &w}, {"index", &i}, {"s", &s}}, {{"k", "v"}}).value();
  std::mt19937 rng(1234);
  int loaded = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    auto bytes = good;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = rng() % bytes.size();
      switch (rng() % 4) {
        case 0: bytes[at] ^= static_cast<std::byte>(1u << (rng() % 8)); break;
        case 1: bytes[at] = static_cast<std::byte>("0123456789[]{},:\" -\"e"[rng() % 20]); break;
        case 2: bytes.resize(at); break;
        default: bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(at), static_cast<std::byte>(rng())); break;
      }
      if (bytes.empty()) break;
    }
    auto result = parse_safetensors(bytes, "fuzz");
    if (!result.ok()) continue;
    ++loaded;
    std::size_t total = 0;
    for (const auto& t : result->tensors) total += t.tensor.numel() * dtype_size(t.tensor.dtype());
    EXPECT_LE(total, 2 * bytes.size());  // F16 widens to f32 at most 2x
  }
  EXPECT_GT(loaded, 0);  // some edits (inside tensor data) leave the file valid
}

TEST_F(SafetensorsFiles, MalformedFilesFailThroughTheFileReaderToo) {
  for (const auto& c : bad_cases()) {
    SCOPED_TRACE(c.what);
    const auto file = path("bad.safetensors");
    write_file(file, c.bytes);
    auto result = load_safetensors(file);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code, c.code) << result.error().to_string();
    EXPECT_NE(result.error().message.find(c.expected), std::string::npos) << result.error().to_string();
    EXPECT_NE(result.error().message.find(file.string()), std::string::npos) << result.error().to_string();
  }
}

// A hostile header nested a million levels deep (valid JSON, or cut short) crashed every loader: the
// error path rendered the offending value recursively and overflowed the stack. Now the depth is
// checked before parsing; values in messages are rendered with a budget, so a huge one stays short.
TEST_F(SafetensorsFiles, DeeplyNestedOrHugeHeaderValuesAreShortParseErrors) {
  const std::size_t levels = 1'000'000;
  for (const bool closed : {true, false}) {
    SCOPED_TRACE(closed ? "balanced" : "unbalanced");
    std::string header = "{\"w\":{\"dtype\":\"F32\",\"shape\":" + std::string(levels, '[');
    if (closed) header += std::string(levels, ']') + ",\"data_offsets\":[0,0]}}";
    const auto file = path("deep.safetensors");
    write_file(file, file_bytes(header));
    auto result = load_safetensors(file);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code, ErrorCode::parse);
    EXPECT_NE(result.error().message.find("levels deep"), std::string::npos) << result.error().message.substr(0, 300);
    EXPECT_LT(result.error().to_string().size(), 400u);
  }
  // Eight levels (the limit) parse; the entry is then wrong in an ordinary way.
  const auto ok_depth = path("eight.safetensors");
  write_file(ok_depth, file_bytes("{\"w\":{\"dtype\":\"F32\",\"shape\":[[[[[[1]]]]]],\"data_offsets\":[0,4]}}",
                                  {0, 0, 128, 63}));
  auto result = load_safetensors(ok_depth);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().message.find("levels deep"), std::string::npos) << result.error().to_string();
  // A shape of a million entries: the message quotes ~60 characters of it.
  std::string wide = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1";
  for (int i = 0; i < 1'000'000; ++i) wide += ",1";
  wide += "],\"data_offsets\":[0,4]}}";
  const auto wide_file = path("wide.safetensors");
  write_file(wide_file, file_bytes(wide, {0, 0, 128, 63}));
  result = load_safetensors(wide_file);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message.find("rank"), std::string::npos) << result.error().to_string().substr(0, 300);
  EXPECT_LT(result.error().to_string().size(), 400u);
}

TEST_F(SafetensorsFiles, TruncatedFile) {
  auto w = Tensor::full<float>({4, 4}, 3.0f).value();
  auto b = Tensor::full<float>({4}, 1.0f).value();
  const auto good = serialize_safetensors({{"w", &w}, {"b", &b}}).value();
  for (std::size_t cut : {good.size() - 1, good.size() - 20, good.size() - 64}) {
    SCOPED_TRACE(cut);
    const auto file = path("cut.safetensors");
    write_file(file, std::vector<std::byte>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut)));
    auto result = load_safetensors(file);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code, ErrorCode::parse);
    EXPECT_NE(result.error().message.find("extend past the end"), std::string::npos) << result.error().to_string();
    EXPECT_NE(result.error().message.find("truncated"), std::string::npos);
  }
  // Cut inside the header.
  const auto file = path("cut-header.safetensors");
  write_file(file, std::vector<std::byte>(good.begin(), good.begin() + 30));
  auto result = load_safetensors(file);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message.find("is larger than the 22 bytes that follow it"), std::string::npos)
      << result.error().to_string();
}

TEST(Safetensors, AcceptsWhitespaceAndAnyKeyOrder) {
  const auto bytes = file_bytes(
      "  {\n \"__metadata__\" : { } ,\"a\" : {\"data_offsets\":[0,4],\"shape\":[],\"dtype\":\"I32\"} }   \t",
      {5, 0, 0, 0});
  auto file = parse_safetensors(bytes);
  ASSERT_TRUE(file.ok()) << file.error().to_string();
  EXPECT_EQ(file->find("a")->data<std::int32_t>()[0], 5);
}

TEST_F(SafetensorsFiles, MissingFileIsAnIoError) {
  auto result = load_safetensors(path("nope.safetensors"));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, ErrorCode::io);
  EXPECT_NE(result.error().message.find("nope.safetensors: file does not exist"), std::string::npos);
  auto dir = load_safetensors(dir_);
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.error().code, ErrorCode::io);
  EXPECT_NE(dir.error().message.find("not a regular file"), std::string::npos);
}

// ---------------------------------------------------------------- writing

TEST_F(SafetensorsFiles, SaveIntoMissingDirectoryFailsAndLeavesNothing) {
  auto w = Tensor::full<float>({2}, 1.0f).value();
  const auto file = path("no-such-dir") / "w.safetensors";
  auto status = save_safetensors(file, {{"w", &w}});
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::io);
  EXPECT_EQ(status.error().op, "safetensors::save");
  EXPECT_NE(status.error().message.find(file.string()), std::string::npos) << status.error().to_string();
  EXPECT_FALSE(fs::exists(file));
  EXPECT_FALSE(fs::exists(path("no-such-dir")));
}

TEST_F(SafetensorsFiles, DirectoryTargetIsRefusedAndKept) {
  // The target is a directory: refused before anything is written (the rename failures themselves
  // are tested in tests/io/test_file.cpp).
  const auto target = path("occupied");
  fs::create_directories(target / "inside");
  auto w = Tensor::full<float>({2}, 1.0f).value();
  auto status = save_safetensors(target, {{"w", &w}});
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::io);
  EXPECT_NE(status.error().message.find("is a directory"), std::string::npos) << status.error().to_string();
  EXPECT_TRUE(fs::is_directory(target / "inside"));
  EXPECT_FALSE(temporary_left("occupied"));
}

TEST_F(SafetensorsFiles, RejectedSaveLeavesExistingFileUntouched) {
  auto w = Tensor::full<float>({2}, 1.0f).value();
  const auto file = path("keep.safetensors");
  ASSERT_TRUE(save_safetensors(file, {{"w", &w}}).ok());
  const auto before = read_file(file);

  auto dup = save_safetensors(file, {{"w", &w}, {"w", &w}});
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(dup.error().message.find("tensor name 'w' is given more than once"), std::string::npos);

  auto i = Tensor::full<std::int32_t>({1}, 1).value();
  auto dup_other_dtype = save_safetensors(file, {{"w", &w}, {"x", &i}, {"w", &i}});
  ASSERT_FALSE(dup_other_dtype.ok());
  EXPECT_NE(dup_other_dtype.error().message.find("'w' is given more than once"), std::string::npos);

  auto reserved = save_safetensors(file, {{"__metadata__", &w}});
  ASSERT_FALSE(reserved.ok());
  EXPECT_NE(reserved.error().message.find("reserved"), std::string::npos);

  auto null = save_safetensors(file, {{"w", nullptr}});
  ASSERT_FALSE(null.ok());
  EXPECT_NE(null.error().message.find("tensor 'w' is null"), std::string::npos);

  Tensor undefined;
  auto empty = save_safetensors(file, {{"u", &undefined}});
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message.find("has no storage"), std::string::npos);

  auto bad_utf8 = save_safetensors(file, {{"w\xff", &w}});
  ASSERT_FALSE(bad_utf8.ok());
  EXPECT_EQ(bad_utf8.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(bad_utf8.error().message.find("not valid UTF-8"), std::string::npos);

  auto bad_meta = save_safetensors(file, {{"w", &w}}, {{"k", "\xc3"}});
  ASSERT_FALSE(bad_meta.ok());
  EXPECT_NE(bad_meta.error().message.find("metadata value of 'k' is not valid UTF-8"), std::string::npos);

  EXPECT_EQ(read_file(file), before);
  EXPECT_FALSE(temporary_left("keep.safetensors"));
}

TEST_F(SafetensorsFiles, SaveOverwritesAndSavesAFileObject) {
  auto a = Tensor::full<float>({3}, 1.0f).value();
  const auto file = path("over.safetensors");
  ASSERT_TRUE(save_safetensors(file, {{"a", &a}}).ok());
  auto b = Tensor::full<float>({5}, 2.0f).value();
  ASSERT_TRUE(save_safetensors(file, {{"b", &b}}, {{"v", "2"}}).ok());
  auto loaded = load_safetensors(file);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->names(), (std::vector<std::string>{"b"}));

  const auto copy = path("copy.safetensors");
  ASSERT_TRUE(save_safetensors(copy, *loaded).ok());
  EXPECT_EQ(read_file(copy), read_file(file));
}

TEST(Safetensors, NamesNeedingJsonEscapes) {
  auto a = Tensor::full<float>({1}, 4.0f).value();
  const std::string name = "layer \"1\"\\weight\n\x01 \xce\xb1";  // quote, backslash, control chars, UTF-8
  auto bytes = serialize_safetensors({{name, &a}}, {{"k\"ey", "va\\lue"}});
  ASSERT_TRUE(bytes.ok()) << bytes.error().to_string();
  auto file = parse_safetensors(*bytes);
  ASSERT_TRUE(file.ok()) << file.error().to_string();
  ASSERT_NE(file->find(name), nullptr);
  EXPECT_EQ(file->find(name)->data<float>()[0], 4.0f);
  EXPECT_EQ(file->metadata.at("k\"ey"), "va\\lue");
}
