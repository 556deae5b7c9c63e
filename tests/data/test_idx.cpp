#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ferrite/data/idx.hpp"

using namespace ferrite;
using namespace ferrite::data;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<unsigned char>;

void put_be32(Bytes& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<unsigned char>(v >> shift));
}

// An IDX images file: header (magic, count, rows, cols) + `pixels` bytes (pixel k = k % 256).
Bytes images_bytes(std::uint32_t count, std::uint32_t rows, std::uint32_t cols, std::uint64_t pixels,
                   std::uint32_t magic = kIdxImagesMagic) {
  Bytes b;
  put_be32(b, magic);
  put_be32(b, count);
  put_be32(b, rows);
  put_be32(b, cols);
  for (std::uint64_t k = 0; k < pixels; ++k) b.push_back(static_cast<unsigned char>(k % 256));
  return b;
}
Bytes images_bytes(std::uint32_t count, std::uint32_t rows, std::uint32_t cols) {
  return images_bytes(count, rows, cols, std::uint64_t{count} * rows * cols);
}

Bytes labels_bytes(std::uint32_t count, const Bytes& labels, std::uint32_t magic = kIdxLabelsMagic) {
  Bytes b;
  put_be32(b, magic);
  put_be32(b, count);
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

class IdxFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("ferrite_test_idx_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write_gz(const std::string& name, const Bytes& bytes) {
    const fs::path p = dir_ / name;
    gzFile f = gzopen(p.c_str(), "wb");
    EXPECT_NE(f, nullptr);
    if (!bytes.empty()) {
      EXPECT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
    }
    gzclose(f);
    return p;
  }
  fs::path write_raw(const std::string& name, const Bytes& bytes) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                             static_cast<std::streamsize>(bytes.size()));
    return p;
  }
  Bytes read_raw(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), {});
  }
  // A valid pair of 3 images of 2x3 with labels 1, 9, 0.
  fs::path good_labels() { return write_gz("labels.gz", labels_bytes(3, {1, 9, 0})); }

  // Expects the load to fail with `code` and a message containing every fragment.
  static void expect_error(const Result<Dataset>& r, ErrorCode code, std::vector<std::string> fragments) {
    ASSERT_FALSE(r.ok()) << "expected an error containing '" << fragments.front() << "'";
    EXPECT_EQ(r.error().code, code) << r.error().to_string();
    EXPECT_EQ(r.error().op, "load_idx");
    for (const auto& f : fragments)
      EXPECT_NE(r.error().to_string().find(f), std::string::npos)
          << "'" << f << "' missing from: " << r.error().to_string();
  }

  fs::path dir_;
};

TEST_F(IdxFiles, LoadsGzipAndScalesPixels) {
  auto r = load_idx(write_gz("images.gz", images_bytes(3, 2, 3)), good_labels());
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  const Dataset& d = *r;
  EXPECT_EQ(d.size(), 3);
  EXPECT_EQ(d.rows, 2);
  EXPECT_EQ(d.cols, 3);
  EXPECT_EQ(d.features(), 6);
  EXPECT_EQ(d.num_classes, 10);
  EXPECT_EQ(d.images.shape(), (Shape{3, 6}));
  EXPECT_EQ(d.images.dtype(), DType::f32);
  EXPECT_EQ(d.labels.shape(), (Shape{3}));
  EXPECT_EQ(d.labels.dtype(), DType::i32);
  for (int k = 0; k < 18; ++k) EXPECT_EQ(d.images.data<float>()[k], static_cast<float>(k) / 255.0f);
  EXPECT_EQ(d.label_data()[0], 1);
  EXPECT_EQ(d.label_data()[1], 9);
  EXPECT_EQ(d.label_data()[2], 0);
}

TEST_F(IdxFiles, AcceptsRawUncompressedFiles) {
  // A 300-pixel image has bytes up to 255 so the full value range is exercised.
  auto r = load_idx(write_raw("images.raw", images_bytes(1, 10, 30)),
                    write_raw("labels.raw", labels_bytes(1, {7})));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->size(), 1);
  EXPECT_EQ(r->images.data<float>()[255], 1.0f);
  EXPECT_EQ(r->images.data<float>()[256], 0.0f);
  EXPECT_EQ(r->label_data()[0], 7);
}

TEST_F(IdxFiles, MissingFileNamesPath) {
  const fs::path missing = dir_ / "no-such-images.gz";
  expect_error(load_idx(missing, good_labels()), ErrorCode::io, {"does not exist", missing.string()});
  expect_error(load_idx(write_gz("images.gz", images_bytes(3, 2, 3)), dir_ / "gone.gz"), ErrorCode::io,
               {"does not exist", "gone.gz"});
}

TEST_F(IdxFiles, MissingFileInDefaultDirSaysHowToInstall) {
  auto r = load_idx(fs::path(kFashionMnistDir) / "no-such-file-idx3-ubyte.gz", good_labels());
  expect_error(r, ErrorCode::io, {"does not exist", "apt-get install dataset-fashion-mnist"});
  // ...but not for other directories.
  auto other = load_idx(dir_ / "x.gz", good_labels());
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().message.find("apt-get"), std::string::npos);
}

TEST_F(IdxFiles, MissingFashionMnistDir) {
  auto r = load_fashion_mnist(Split::train, dir_ / "nowhere");
  expect_error(r, ErrorCode::io, {"does not exist", "train-images-idx3-ubyte.gz"});
}

TEST_F(IdxFiles, DirectoryIsNotAFile) {
  fs::create_directories(dir_ / "adir");
  expect_error(load_idx(dir_ / "adir", good_labels()), ErrorCode::io, {"not a regular file"});
}

TEST_F(IdxFiles, TruncatedGzip) {
  const fs::path p = write_gz("images.gz", images_bytes(50, 28, 28));
  fs::resize_file(p, fs::file_size(p) / 2);
  expect_error(load_idx(p, good_labels()), ErrorCode::io, {"gzip stream is truncated", "(zlib: unexpected end of file)"});
}

TEST_F(IdxFiles, CorruptGzip) {
  const fs::path p = write_gz("images.gz", images_bytes(3, 2, 3));
  Bytes bytes = read_raw(p);
  ASSERT_GT(bytes.size(), 20u);
  bytes[bytes.size() - 6] ^= 0xFF;  // inside the CRC-32 of the gzip trailer
  write_raw("images.gz", bytes);
  expect_error(load_idx(p, good_labels()), ErrorCode::io, {"gzip data is corrupt", "(zlib: incorrect data check)"});
  // Damage inside the deflate stream itself (whatever zlib then says, it is a decompression error).
  const fs::path big = write_gz("big.gz", images_bytes(40, 28, 28));
  Bytes body = read_raw(big);
  for (std::size_t k = 12; k < body.size() - 8; k += 7) body[k] ^= 0x5A;
  write_raw("big.gz", body);
  expect_error(load_idx(big, good_labels()), ErrorCode::io, {"cannot decompress", "(zlib: "});
}

TEST_F(IdxFiles, HeaderCutShort) {
  Bytes header = images_bytes(3, 2, 3);
  header.resize(10);
  expect_error(load_idx(write_gz("images.gz", header), good_labels()), ErrorCode::parse,
               {"ends inside the 16-byte images header", "expected 12 bytes, found 6"});
  expect_error(load_idx(write_gz("empty.gz", {}), good_labels()), ErrorCode::parse,
               {"ends inside the magic number"});
}

TEST_F(IdxFiles, WrongMagicSaysExpectedAndFound) {
  // Images and labels swapped.
  const fs::path images = write_gz("images.gz", images_bytes(3, 2, 3));
  expect_error(load_idx(good_labels(), images), ErrorCode::parse,
               {"not an IDX images file", "expected 0x00000803", "found 0x00000801",
                "looks like a labels file"});
  expect_error(load_idx(images, images), ErrorCode::parse,
               {"not an IDX labels file", "expected 0x00000801", "found 0x00000803"});
  // Not IDX at all.
  expect_error(load_idx(write_raw("text.txt", {'h', 'e', 'l', 'l', 'o', '!'}), good_labels()),
               ErrorCode::parse, {"found 0x68656C6C", "not an IDX file"});
}

TEST_F(IdxFiles, WrongRankOrTypeIsAMagicError) {
  // 0x0804: four dimensions; 0x0D03: float pixels.
  expect_error(load_idx(write_gz("rank4.gz", images_bytes(3, 2, 3, 18, 0x00000804)), good_labels()),
               ErrorCode::parse, {"found 0x00000804 (ubyte, 4 dims)"});
  expect_error(load_idx(write_gz("float.gz", images_bytes(3, 2, 3, 18, 0x00000D03)), good_labels()),
               ErrorCode::parse, {"found 0x00000D03 (float, 3 dims)"});
}

TEST_F(IdxFiles, AbsurdDimensions) {
  expect_error(load_idx(write_gz("wide.gz", images_bytes(3, 28, 100000, 0)), good_labels()),
               ErrorCode::parse, {"absurd image dimensions 28x100000"});
  expect_error(load_idx(write_gz("zero.gz", images_bytes(3, 0, 28, 0)), good_labels()),
               ErrorCode::parse, {"absurd image dimensions 0x28"});
  expect_error(load_idx(write_gz("many.gz", images_bytes(0xFFFFFFFFu, 28, 28, 0)), good_labels()),
               ErrorCode::parse, {"absurd image count 4294967295"});
  expect_error(load_idx(write_gz("none.gz", images_bytes(0, 28, 28, 0)), good_labels()),
               ErrorCode::parse, {"declares 0 images"});
  // A billion 28x28 images claimed by a tiny file: refused before allocating 3 TB.
  expect_error(load_idx(write_gz("huge.gz", images_bytes(1000000000u, 28, 28, 784)), good_labels()),
               ErrorCode::parse, {"declares 784000000000 bytes of pixels", "gzip file can hold"});
  expect_error(load_idx(write_raw("huge.raw", images_bytes(100, 28, 28, 784)), good_labels()),
               ErrorCode::parse, {"declares 78400 bytes of pixels", "raw file can hold"});
}

TEST_F(IdxFiles, CountMismatch) {
  expect_error(load_idx(write_gz("images.gz", images_bytes(3, 2, 3)),
                        write_gz("labels4.gz", labels_bytes(4, {1, 2, 3, 4}))),
               ErrorCode::shape_mismatch, {"image and label counts differ", "has 3 images", "has 4 labels"});
}

TEST_F(IdxFiles, PayloadShorterThanHeader) {
  expect_error(load_idx(write_gz("images.gz", images_bytes(3, 2, 3, 17)), good_labels()), ErrorCode::parse,
               {"ends inside the pixel payload", "promises 18 bytes", "found 17"});
  expect_error(load_idx(write_gz("images.gz", images_bytes(3, 2, 3)), write_gz("l.gz", labels_bytes(3, {1, 2}))),
               ErrorCode::parse, {"ends inside the label payload", "expected 3 bytes, found 2"});
}

TEST_F(IdxFiles, TrailingBytes) {
  expect_error(load_idx(write_gz("images.gz", images_bytes(3, 2, 3, 20)), good_labels()), ErrorCode::parse,
               {"2 trailing bytes", "after the 34 bytes its header describes"});
  expect_error(load_idx(write_gz("images.gz", images_bytes(3, 2, 3)),
                        write_raw("l.raw", labels_bytes(3, {1, 2, 3, 4}))),
               ErrorCode::parse, {"1 trailing byte after"});
}

TEST_F(IdxFiles, LabelOutOfRange) {
  expect_error(load_idx(write_gz("images.gz", images_bytes(3, 2, 3)), write_gz("l.gz", labels_bytes(3, {1, 2, 10}))),
               ErrorCode::parse, {"label 2 is 10", "outside [0, 10)"});
  // With more classes declared, the same file is fine.
  auto r = load_idx(write_gz("images.gz", images_bytes(3, 2, 3)), write_gz("l.gz", labels_bytes(3, {1, 2, 10})), 11);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->num_classes, 11);
  expect_error(load_idx(dir_ / "a", dir_ / "b", 0), ErrorCode::invalid_argument, {"num_classes"});
}

TEST_F(IdxFiles, GunzippedFashionMnistNamesAreFound) {
  write_raw("t10k-images-idx3-ubyte", images_bytes(2, 28, 28));
  write_raw("t10k-labels-idx1-ubyte", labels_bytes(2, {3, 4}));
  auto r = load_fashion_mnist(Split::test, dir_);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->size(), 2);
  EXPECT_EQ(r->name, "fashion-mnist/test");
}

// Issue 16, item 8: a small gzip file can declare a huge payload (deflate reaches ~1032:1 on blank
// images). max_samples reads a prefix only; max_payload_bytes bounds what is inflated at all.
TEST_F(IdxFiles, PrefixLoadReadsOnlyTheSamplesAskedFor) {
  // 200,000 blank 28x28 images: a ~150 KB gzip file that inflates to 157 MB (627 MB as f32).
  constexpr std::uint32_t kCount = 200'000;
  const fs::path images = dir_ / "blank-images.gz";
  {
    gzFile f = gzopen(images.c_str(), "wb9");
    ASSERT_NE(f, nullptr);
    Bytes header;
    for (std::uint32_t v : {kIdxImagesMagic, kCount, 28u, 28u}) put_be32(header, v);
    ASSERT_EQ(gzwrite(f, header.data(), 16), 16);
    const Bytes zeros(784 * 1000, 0);
    for (std::uint32_t i = 0; i < kCount / 1000; ++i)
      ASSERT_EQ(gzwrite(f, zeros.data(), static_cast<unsigned>(zeros.size())), static_cast<int>(zeros.size()));
    gzclose(f);
  }
  ASSERT_LT(fs::file_size(images), 400'000u);
  const fs::path labels = write_gz("blank-labels.gz", labels_bytes(kCount, Bytes(kCount, 3)));

  auto r = load_idx(images, labels, 10, {.max_samples = 100});
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->images.shape(), (Shape{100, 784}));  // 313 KB, not 627 MB
  EXPECT_EQ(r->labels.shape(), (Shape{100}));
  EXPECT_EQ(r->label_data()[99], 3);
  EXPECT_EQ(r->name, "blank-images.gz[0:100]");

  // The whole file is over a 100 MB bound: refused before anything is allocated, naming the bound.
  expect_error(load_idx(images, labels, 10, {.max_payload_bytes = 100'000'000}), ErrorCode::invalid_argument,
               {"would inflate 156800000 bytes", "limit of 100000000", "ask for fewer samples"});
  // A prefix within the bound loads; asking for more samples than the file holds loads them all.
  EXPECT_TRUE(load_idx(images, labels, 10, {.max_samples = 1000, .max_payload_bytes = 1'000'000}).ok());
  auto all = load_idx(write_gz("images.gz", images_bytes(3, 2, 3)), good_labels(), 10, {.max_samples = 50});
  ASSERT_TRUE(all.ok()) << all.error().to_string();
  EXPECT_EQ(all->size(), 3);
  EXPECT_EQ(all->name, "images.gz");
  expect_error(load_idx(images, labels, 10, {.max_samples = -1}), ErrorCode::invalid_argument, {"max_samples"});
}

TEST_F(IdxFiles, LabelCountBeyondWhatTheFileCanHoldIsRefusedBeforeAllocating) {
  // A 12-byte labels file that declares 2^24 labels, beside a (valid) images file of 2^24 1x1 images:
  // refused from the header, before a 16 MB label buffer is allocated.
  constexpr std::uint32_t kCount = 1u << 24;
  Bytes big;
  for (std::uint32_t v : {kIdxImagesMagic, kCount, 1u, 1u}) put_be32(big, v);
  big.resize(16 + kCount, 0);
  const fs::path images = write_gz("images.gz", big);
  const fs::path labels = write_raw("labels.raw", labels_bytes(kCount, {1, 2, 3, 4}));
  expect_error(load_idx(images, labels), ErrorCode::parse, {"declares 16777216 labels", "12-byte raw file"});
}

TEST_F(IdxFiles, FashionMnistMustBe28x28) {
  write_gz("train-images-idx3-ubyte.gz", images_bytes(3, 2, 3));
  write_gz("train-labels-idx1-ubyte.gz", labels_bytes(3, {1, 2, 3}));
  auto r = load_fashion_mnist(Split::train, dir_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::shape_mismatch);
  EXPECT_NE(r.error().message.find("holds 2x3 images"), std::string::npos) << r.error().to_string();
}

// ---- the real dataset (Debian package dataset-fashion-mnist)

void check_real_split(Split split, std::int64_t expected_count, const std::vector<int>& first_labels,
                      double first_image_byte_sum) {
  if (!fs::is_directory(kFashionMnistDir))
    GTEST_SKIP() << kFashionMnistDir << " is absent: `apt-get install dataset-fashion-mnist` to run this test";
  auto r = load_fashion_mnist(split);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  const Dataset& d = *r;
  EXPECT_EQ(d.size(), expected_count);
  EXPECT_EQ(d.rows, 28);
  EXPECT_EQ(d.cols, 28);
  EXPECT_EQ(d.images.shape(), (Shape{expected_count, 784}));
  for (std::size_t i = 0; i < first_labels.size(); ++i) EXPECT_EQ(d.label_data()[i], first_labels[i]) << i;
  const float* x = d.images.data<float>();
  float lo = 1.f, hi = 0.f;
  for (std::int64_t k = 0; k < d.images.numel(); ++k) {
    lo = std::min(lo, x[k]);
    hi = std::max(hi, x[k]);
  }
  EXPECT_EQ(lo, 0.0f);
  EXPECT_EQ(hi, 1.0f);
  double sum = 0;  // first image's byte sum, computed independently with Python's gzip module
  for (int k = 0; k < 784; ++k) sum += std::lround(x[k] * 255.0f);
  EXPECT_EQ(sum, first_image_byte_sum);
  std::vector<std::int64_t> per_class(10, 0);
  for (std::int64_t i = 0; i < d.size(); ++i) per_class.at(static_cast<std::size_t>(d.label_data()[i]))++;
  for (auto c : per_class) EXPECT_EQ(c, expected_count / 10);  // Fashion-MNIST is exactly balanced
}

TEST(FashionMnist, RealTrainSplit) { check_real_split(Split::train, 60000, {9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, 76247); }
TEST(FashionMnist, RealTestSplit) { check_real_split(Split::test, 10000, {9, 2, 1, 1, 6, 1, 4, 6, 5, 7}, 33456); }

}  // namespace
