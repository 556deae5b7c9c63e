// data/images.hpp: ImageFolder JPEG sets (written here with libjpeg-turbo), the CIFAR-10 binary format
// (written here), their refusals by name, and the real CIFAR-10 JPEGs of ../shared/data where present.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#if defined(FERRITE_WITH_JPEG)
#include <turbojpeg.h>
#endif

#include "ferrite/data/augment.hpp"
#include "ferrite/data/images.hpp"
#include "ferrite/data/synthetic_images.hpp"
#include "ferrite/backend/cpu/threading.hpp"

using namespace ferrite;
using namespace ferrite::data;
namespace fs = std::filesystem;

namespace {

class ImageFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("ferrite-images-" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;
};

void write_bytes(const fs::path& p, const std::vector<unsigned char>& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

// Pixel (c, y, x) of test image `k`: smooth, so that JPEG at quality 100 keeps it within a few levels.
std::uint8_t pattern(int k, int c, int y, int x) { return static_cast<std::uint8_t>(40 + 20 * k + 30 * c + 6 * y + 4 * x); }

#if defined(FERRITE_WITH_JPEG)
std::vector<unsigned char> encode_jpeg(int k, int w, int h) {
  std::vector<unsigned char> rgb(static_cast<std::size_t>(w * h * 3));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) rgb[static_cast<std::size_t>((y * w + x) * 3 + c)] = pattern(k, c, y, x);
  tjhandle t = tjInitCompress();
  unsigned char* out = nullptr;
  unsigned long size = 0;
  const int rc = tjCompress2(t, rgb.data(), w, 0, h, TJPF_RGB, &out, &size, TJSAMP_444, 100, TJFLAG_ACCURATEDCT);
  std::vector<unsigned char> bytes;
  if (rc == 0) bytes.assign(out, out + size);
  tjFree(out);
  tjDestroy(t);
  return bytes;
}
#endif

}  // namespace

#if defined(FERRITE_WITH_JPEG)
TEST_F(ImageFiles, ImageFolderDecodesSortedClassesAndFiles) {
  const int w = 8, h = 6;
  // Written out of order: classes and files must come back sorted by name.
  write_bytes(dir_ / "zebra" / "b.jpg", encode_jpeg(5, w, h));
  write_bytes(dir_ / "zebra" / "a.jpg", encode_jpeg(4, w, h));
  write_bytes(dir_ / "ant" / "1.jpeg", encode_jpeg(1, w, h));
  write_bytes(dir_ / "ant" / "0.JPG", encode_jpeg(0, w, h));
  write_bytes(dir_ / "bee" / "x.jpg", encode_jpeg(2, w, h));
  write_bytes(dir_ / "bee" / "notes.txt", {'h', 'i'});  // not an image: ignored
  auto set = load_image_folder(dir_);
  ASSERT_TRUE(set.ok()) << set.error().to_string();
  EXPECT_EQ(set->classes, (std::vector<std::string>{"ant", "bee", "zebra"}));
  ASSERT_EQ(set->pixels.shape(), (Shape{5, 3, h, w}));
  EXPECT_EQ(set->pixels.dtype(), DType::u8);
  const std::int32_t* l = set->labels.data<std::int32_t>();
  EXPECT_EQ(std::vector<std::int32_t>(l, l + 5), (std::vector<std::int32_t>{0, 0, 1, 2, 2}));
  const int order[5] = {0, 1, 2, 4, 5};  // the pattern index of each sorted file
  int worst = 0;
  for (int i = 0; i < 5; ++i)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          const int got = set->pixels.data<std::uint8_t>()[((i * 3 + c) * h + y) * w + x];
          worst = std::max(worst, std::abs(got - int(pattern(order[i], c, y, x))));
        }
  EXPECT_LE(worst, 3) << "JPEG quality 100, 4:4:4 keeps a smooth image within a few levels";
  // max_per_class keeps the first files by name; to_dataset scales bytes by 1/255.
  auto few = load_image_folder(dir_, {1});
  ASSERT_TRUE(few.ok());
  EXPECT_EQ(few->size(), 3);
  auto d = to_dataset(*few);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->features(), 3 * h * w);
  EXPECT_EQ(d->images.data<float>()[0], float(few->pixels.data<std::uint8_t>()[0]) / 255.0f);
}

TEST_F(ImageFiles, ImageFolderRefusesBadFilesByName) {
  const auto good = encode_jpeg(0, 8, 6);
  auto expect_refused = [&](const std::string& needle) {
    auto set = load_image_folder(dir_);
    ASSERT_FALSE(set.ok()) << "expected a refusal mentioning " << needle;
    EXPECT_NE(set.error().to_string().find(needle), std::string::npos) << set.error().to_string();
  };
  expect_refused("has no class folders");
  write_bytes(dir_ / "a" / "0.jpg", good);
  fs::create_directories(dir_ / "b");
  expect_refused("class folder '" + (dir_ / "b").string() + "' holds no");
  write_bytes(dir_ / "b" / "0.jpg", encode_jpeg(1, 7, 6));  // another size
  expect_refused("0.jpg' is 7x6 pixels, the set's images are 8x6");
  // Cut inside the entropy-coded data (the headers intact): libjpeg only warns, which must still fail.
  // (A larger image, so that there is scan data to cut; both images the same size.)
  const auto big = encode_jpeg(3, 64, 48);
  write_bytes(dir_ / "a" / "0.jpg", big);
  write_bytes(dir_ / "b" / "0.jpg", std::vector<unsigned char>(big.begin(), big.end() - 200));
  expect_refused("b/0.jpg' could not be decoded (corrupt or truncated JPEG)");
  write_bytes(dir_ / "a" / "0.jpg", good);
  write_bytes(dir_ / "b" / "0.jpg", std::vector<unsigned char>(good.begin(), good.begin() + long(good.size() / 3)));
  expect_refused("b/0.jpg' is not a readable JPEG");  // cut inside the headers
  write_bytes(dir_ / "b" / "0.jpg", {0x12, 0x34, 0x56, 0x78, 0x9a});
  expect_refused("b/0.jpg' is not a readable JPEG");
  auto missing = load_image_folder(dir_ / "nowhere");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().to_string().find("nowhere' is not a directory"), std::string::npos);
}

// The real CIFAR-10 JPEGs (../shared/data/cifar10), where this machine has them: 20 per class of the
// test split, 32x32 RGB, labels in CIFAR-10's order.
TEST(Cifar10Jpeg, SharedTestSplitLoads) {
  const fs::path root = fs::path(FERRITE_SHARED_DATA_DIR) / "cifar10" / "test";
  if (!fs::is_directory(root)) GTEST_SKIP() << root << " is not here (a fresh machine has no shared data)";
  auto set = load_image_folder(root, {20});
  ASSERT_TRUE(set.ok()) << set.error().to_string();
  ASSERT_EQ(set->pixels.shape(), (Shape{200, 3, 32, 32}));
  ASSERT_EQ(set->classes.size(), 10u);
  for (int c = 0; c < 10; ++c) EXPECT_EQ(set->classes[std::size_t(c)], kCifar10Classes[std::size_t(c)]);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(set->labels.data<std::int32_t>()[i], i / 20);
  double mean = 0;  // a real photo set, not zeros: CIFAR-10's mean pixel is ~120
  for (std::int64_t i = 0; i < set->pixels.numel(); ++i) mean += set->pixels.data<std::uint8_t>()[i];
  mean /= double(set->pixels.numel());
  EXPECT_GT(mean, 90);
  EXPECT_LT(mean, 150);
}
#else
TEST_F(ImageFiles, WithoutLibjpegTurboTheFolderLoaderSaysSo) {
  fs::create_directories(dir_ / "a");
  write_bytes(dir_ / "a" / "0.jpg", {0xff, 0xd8});
  auto set = load_image_folder(dir_);
  ASSERT_FALSE(set.ok());
  EXPECT_NE(set.error().to_string().find("no JPEG decoder"), std::string::npos) << set.error().to_string();
}
#endif

TEST_F(ImageFiles, Cifar10BinaryRecordsAndRefusals) {
  std::vector<unsigned char> bytes;
  for (int r = 0; r < 3; ++r) {
    bytes.push_back(static_cast<unsigned char>(r * 4));  // labels 0, 4, 8
    for (int i = 0; i < 3072; ++i) bytes.push_back(static_cast<unsigned char>((i + r * 7) % 251));
  }
  write_bytes(dir_ / "test_batch.bin", bytes);
  auto set = load_cifar10_binary(dir_, Split::test);
  ASSERT_TRUE(set.ok()) << set.error().to_string();
  ASSERT_EQ(set->pixels.shape(), (Shape{3, 3, 32, 32}));
  EXPECT_EQ(set->labels.data<std::int32_t>()[2], 8);
  EXPECT_EQ(set->pixels.data<std::uint8_t>()[3072 + 1024], static_cast<std::uint8_t>((1024 + 7) % 251));  // record 1, G plane
  EXPECT_EQ(set->classes[8], "ship");
  // The train split needs all five batches.
  auto train = load_cifar10_binary(dir_, Split::train);
  ASSERT_FALSE(train.ok());
  EXPECT_NE(train.error().to_string().find("data_batch_1.bin"), std::string::npos);
  // Not whole records, and a label that is no CIFAR-10 class.
  write_bytes(dir_ / "test_batch.bin", std::vector<unsigned char>(bytes.begin(), bytes.end() - 1));
  auto cut = load_cifar10_binary(dir_, Split::test);
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.error().to_string().find("is 9218 bytes, not a whole number of 3073-byte"), std::string::npos)
      << cut.error().to_string();
  bytes[3073] = 10;
  write_bytes(dir_ / "test_batch.bin", bytes);
  auto bad = load_cifar10_binary(dir_, Split::test);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().to_string().find("record 1 has label 10"), std::string::npos) << bad.error().to_string();
}

namespace {
// A set of n images [3, h, w] with pixel (i, c, y, x) = (i * 50 + c * 80 + y * 7 + x * 3) % 256, labels i % 10.
ImageSet counting_images(std::int64_t n, std::int64_t h, std::int64_t w) {
  ImageSet set;
  set.pixels = Tensor::empty({n, 3, h, w}, DType::u8).value();
  set.labels = Tensor::empty({n}, DType::i32).value();
  for (std::int64_t i = 0; i < n; ++i) {
    set.labels.data<std::int32_t>()[i] = static_cast<std::int32_t>(i % 10);
    for (std::int64_t c = 0; c < 3; ++c)
      for (std::int64_t y = 0; y < h; ++y)
        for (std::int64_t x = 0; x < w; ++x)
          set.pixels.data<std::uint8_t>()[((i * 3 + c) * h + y) * w + x] = static_cast<std::uint8_t>((i * 50 + c * 80 + y * 7 + x * 3) % 256);
  }
  set.classes.assign(10, "c");
  set.name = "counting";
  return set;
}
}  // namespace

// Crop with zero padding, flip and normalization against a direct reading of torchvision's recipe.
TEST(Augment, CropFlipNormalizeMatchTheRecipe) {
  const std::int64_t h = 6, w = 5;
  const ImageSet set = counting_images(12, h, w);
  AugmentOptions o;
  o.pad = 2;
  std::vector<std::int32_t> idx{11, 3, 3, 0, 7};
  std::vector<float> out(idx.size() * 3 * h * w);
  std::vector<std::int32_t> labels(idx.size());
  ASSERT_TRUE(augment_batch(set, idx, 4, 99, o, {out.data(), std::int64_t(idx.size()), 3 * h * w, 3 * h * w}, labels.data()).ok());
  bool any_flip = false, any_shift = false;
  for (std::size_t b = 0; b < idx.size(); ++b) {
    EXPECT_EQ(labels[b], idx[b] % 10);
    const AugmentDraw d = augment_params(99, 4, idx[b], o);
    any_flip = any_flip || d.flip;
    any_shift = any_shift || d.dx != o.pad || d.dy != o.pad;
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          // padded image P[y'][x'] = src[y' - pad][x' - pad] (0 outside); crop at (dy, dx); then flip the crop
          const int cx = d.flip ? int(w) - 1 - x : x;
          const int sy = y + d.dy - o.pad, sx = cx + d.dx - o.pad;
          const float byte = (sy >= 0 && sy < h && sx >= 0 && sx < w)
                                 ? float(set.pixels.data<std::uint8_t>()[((idx[b] * 3 + c) * h + sy) * w + sx])
                                 : 0.0f;
          const float want = (byte / 255.0f - o.mean[std::size_t(c)]) / o.std[std::size_t(c)];
          ASSERT_EQ(out[((b * 3 + c) * h + y) * w + x], want) << "image " << b << " c " << c << " y " << y << " x " << x;
        }
  }
  // The same sample twice in a batch gets the same draw (it depends on the sample, not the position).
  EXPECT_TRUE(std::equal(out.begin() + 1 * 3 * h * w, out.begin() + 2 * 3 * h * w, out.begin() + 2 * 3 * h * w));
  EXPECT_TRUE(any_flip && any_shift) << "five draws without a flip or a shift: the test proves little";
}

// Draws are a pure function of (seed, epoch, sample): uniform offsets over [0, 2·pad], flips near 1/2,
// another epoch or seed draws anew.
TEST(Augment, DrawsArePureAndCoverTheRange) {
  AugmentOptions o;
  std::array<int, 9> dx{}, dy{};
  int flips = 0;
  for (std::int64_t s = 0; s < 9000; ++s) {
    const AugmentDraw d = augment_params(5, 2, s, o);
    ASSERT_GE(d.dx, 0);
    ASSERT_LE(d.dx, 8);
    ++dx[std::size_t(d.dx)];
    ++dy[std::size_t(d.dy)];
    flips += d.flip;
    const AugmentDraw again = augment_params(5, 2, s, o);
    ASSERT_TRUE(again.dx == d.dx && again.dy == d.dy && again.flip == d.flip);
  }
  for (int k = 0; k < 9; ++k) {
    EXPECT_NEAR(dx[std::size_t(k)], 1000, 150) << k;
    EXPECT_NEAR(dy[std::size_t(k)], 1000, 150) << k;
  }
  EXPECT_NEAR(flips, 4500, 250);
  int same = 0;
  for (std::int64_t s = 0; s < 200; ++s) {
    const AugmentDraw a = augment_params(5, 2, s, o), b = augment_params(5, 3, s, o);
    same += a.dx == b.dx && a.dy == b.dy && a.flip == b.flip;
  }
  EXPECT_LT(same, 20) << "the next epoch should draw new crops";
}

TEST(Augment, EvaluationNormalizesOnlyAndBadInputIsRefused) {
  const ImageSet set = counting_images(3, 4, 4);
  AugmentOptions o;
  std::vector<std::int32_t> idx{2};
  std::vector<float> out(48);
  ASSERT_TRUE(normalize_batch(set, idx, o, {out.data(), 1, 48, 48}, nullptr).ok());
  EXPECT_EQ(out[5], (float(set.pixels.data<std::uint8_t>()[2 * 48 + 5]) / 255.0f - o.mean[0]) / o.std[0]);
  std::vector<std::int32_t> bad{3};
  auto e = augment_batch(set, bad, 0, 1, o, {out.data(), 1, 48, 48}, nullptr);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().to_string().find("index 3 at batch position 0 is outside"), std::string::npos) << e.error().to_string();
  auto shape = augment_batch(set, idx, 0, 1, o, {out.data(), 1, 47, 47}, nullptr);
  ASSERT_FALSE(shape.ok());
  EXPECT_EQ(shape.error().code, ErrorCode::shape_mismatch);
}

// The synthetic CIFAR-shaped set: the shape, balanced labels, identical for any thread count, and
// learnable: a nearest-class-mean classifier on the train split's class means beats chance on test.
TEST(SyntheticImages, ShapeBalanceDeterminismAndSignal) {
  auto train = make_synthetic_images(500, 7, Split::train);
  ASSERT_TRUE(train.ok()) << train.error().to_string();
  ASSERT_EQ(train->pixels.shape(), (Shape{500, 3, 32, 32}));
  std::array<int, 10> count{};
  for (int i = 0; i < 500; ++i) ++count[std::size_t(train->labels.data<std::int32_t>()[i])];
  for (int k = 0; k < 10; ++k) EXPECT_EQ(count[std::size_t(k)], 50);
  {
    cpu::ThreadLimit one(1);
    auto again = make_synthetic_images(500, 7, Split::train);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(std::memcmp(again->pixels.raw_data(), train->pixels.raw_data(), train->pixels.nbytes()), 0);
  }
  auto test = make_synthetic_images(200, 7, Split::test);
  ASSERT_TRUE(test.ok());
  EXPECT_NE(std::memcmp(test->pixels.raw_data(), train->pixels.raw_data(), test->pixels.nbytes()), 0);
  const std::int64_t f = 3 * 32 * 32;
  std::vector<double> mean(10 * f, 0.0);
  for (int i = 0; i < 500; ++i)
    for (std::int64_t p = 0; p < f; ++p)
      mean[std::size_t(train->labels.data<std::int32_t>()[i] * f + p)] += train->pixels.data<std::uint8_t>()[i * f + p] / 50.0;
  int correct = 0;
  for (int i = 0; i < 200; ++i) {
    int best = 0;
    double best_d = 1e300;
    for (int k = 0; k < 10; ++k) {
      double d = 0;
      for (std::int64_t p = 0; p < f; ++p) {
        const double e = test->pixels.data<std::uint8_t>()[i * f + p] - mean[std::size_t(k * f + p)];
        d += e * e;
      }
      if (d < best_d) best_d = d, best = k;
    }
    correct += best == test->labels.data<std::int32_t>()[i];
  }
  std::printf("synthetic images: nearest class mean classifies %d / 200 test images\n", correct);
  EXPECT_GT(correct, 40) << "nearest class mean: " << correct << " / 200 (chance: 20)";
  EXPECT_LT(correct, 200) << "every test image classified by its class mean: too easy to tell a network apart";
  EXPECT_FALSE(make_synthetic_images(0, 7, Split::train).ok());
}
