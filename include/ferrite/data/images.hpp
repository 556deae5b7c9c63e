#pragma once
// Image classification sets decoded once into memory as 8-bit pixels (CIFAR-10 and the like).
//
//   ImageSet                          pixels u8 [N, C, H, W] (channel planes, RGB), labels i32 [N], class names
//   load_image_folder(root, options)  torchvision's ImageFolder layout, root/<class>/<file>.jpg|.jpeg: classes
//                                     are the sorted folder names, files sorted by name; JPEGs decoded with
//                                     libjpeg-turbo, in parallel (TBB), every image the same size
//   load_cifar10_binary(dir, split)   the official binary format: data_batch_1..5.bin (train) or
//                                     test_batch.bin (test), records of 1 label byte + 3,072 pixel bytes
//   to_dataset(set)                   f32 [N, C·H·W] in [0, 1] (byte / 255, torchvision's ToTensor)
//
// Every problem names the file (or folder) and what is wrong: a corrupt or truncated JPEG (decoding
// stops on libjpeg's warnings too, so a cut-off file is an error, not a grey bottom half), an image of
// another size, an empty class folder, a .bin whose length is not whole records or whose label is not
// a CIFAR-10 class. Nothing is returned half-read.
//
// JPEG needs libjpeg-turbo (Debian libturbojpeg0-dev; meson -Djpeg=auto defines FERRITE_WITH_JPEG for the
// programs that link it): without it load_image_folder says so; the CIFAR binary reader needs nothing.
#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include <tbb/parallel_for.h>

#if defined(FERRITE_WITH_JPEG)
#include <turbojpeg.h>
#endif

#include "ferrite/core/format.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/data/dataset.hpp"
#include "ferrite/tensor/tensor.hpp"

namespace ferrite::data {

struct ImageSet {
  Tensor pixels;  // u8 [N, C, H, W]
  Tensor labels;  // i32 [N]
  std::vector<std::string> classes;  // label i is classes[i]
  std::string name;                  // e.g. "cifar10/test"

  std::int64_t size() const noexcept { return labels.defined() ? labels.dim(0) : 0; }
  std::int64_t channels() const noexcept { return pixels.defined() ? pixels.dim(1) : 0; }
  std::int64_t height() const noexcept { return pixels.defined() ? pixels.dim(2) : 0; }
  std::int64_t width() const noexcept { return pixels.defined() ? pixels.dim(3) : 0; }
};

// CIFAR-10's classes in label order (= the sorted folder names of the ImageFolder copy).
inline const std::array<const char*, 10> kCifar10Classes = {"airplane", "automobile", "bird", "cat", "deer",
                                                            "dog", "frog", "horse", "ship", "truck"};

struct ImageFolderOptions {
  std::int64_t max_per_class = 0;  // > 0: the first this many files of each class (sorted by name)
  std::int64_t max_file_bytes = std::int64_t{64} << 20;  // a larger file is refused before it is read
};

namespace images_detail {

// A file's size, so that callers check it before reading (errors name `op` and the file).
inline Result<std::int64_t> file_bytes(const std::filesystem::path& path, const char* op) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return make_error(ErrorCode::io, op, fe_format("cannot read '{}': {}", path.string(), ec.message()));
  return static_cast<std::int64_t>(size);
}
// Its first `size` bytes (the size file_bytes gave).
inline Result<std::vector<unsigned char>> read_bytes(const std::filesystem::path& path, std::int64_t size, const char* op) {
  std::vector<unsigned char> bytes(static_cast<std::size_t>(size));
  std::ifstream in(path, std::ios::binary);
  if (!in || !in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size())))
    return make_error(ErrorCode::io, op, fe_format("cannot read '{}'", path.string()));
  return bytes;
}
// An image file, refused unread above `limit` bytes.
inline Result<std::vector<unsigned char>> read_image_file(const std::filesystem::path& path, std::int64_t limit, const char* op) {
  FE_TRY_ASSIGN(const std::int64_t size, file_bytes(path, op));
  if (size > limit)
    return make_error(ErrorCode::invalid_argument, op,
                      fe_format("'{}' is {} bytes, more than the {} an image may have", path.string(), size, limit));
  return read_bytes(path, size, op);
}

inline bool is_jpeg_name(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg";
}

#if defined(FERRITE_WITH_JPEG)
// One decompressor per thread of the decode loop (tjhandle is not thread-safe).
class Decoder {
 public:
  Decoder() : handle_(tjInitDecompress()) {}
  ~Decoder() {
    if (handle_) tjDestroy(handle_);
  }
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // Decodes `bytes` as RGB into planes [3, h, w] at `out`; the image must be h x w (h = 0: any, reported).
  Status decode(const std::vector<unsigned char>& bytes, const std::string& source, int& h, int& w,
                std::vector<unsigned char>& rgb, std::uint8_t* out) {
    if (!handle_) return make_error(ErrorCode::internal, "load_image_folder", "tjInitDecompress failed");
    int width = 0, height = 0, subsampling = 0, colorspace = 0;
    if (tjDecompressHeader3(handle_, bytes.data(), static_cast<unsigned long>(bytes.size()), &width, &height, &subsampling,
                            &colorspace) != 0)
      return make_error(ErrorCode::parse, "load_image_folder",
                        fe_format("'{}' is not a readable JPEG: {}", source, tjGetErrorStr2(handle_)));
    if (h != 0 && (width != w || height != h))
      return make_error(ErrorCode::shape_mismatch, "load_image_folder",
                        fe_format("'{}' is {}x{} pixels, the set's images are {}x{}", source, width, height, w, h));
    rgb.resize(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3);
    if (tjDecompress2(handle_, bytes.data(), static_cast<unsigned long>(bytes.size()), rgb.data(), width, 0, height, TJPF_RGB,
                      TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING) != 0)
      return make_error(ErrorCode::parse, "load_image_folder",
                        fe_format("'{}' could not be decoded (corrupt or truncated JPEG): {}", source, tjGetErrorStr2(handle_)));
    h = height;
    w = width;
    if (out) {  // HWC -> CHW
      const std::size_t plane = static_cast<std::size_t>(width) * static_cast<std::size_t>(height);
      for (std::size_t i = 0; i < plane; ++i)
        for (std::size_t c = 0; c < 3; ++c) out[c * plane + i] = rgb[i * 3 + c];
    }
    return ok_status();
  }

 private:
  tjhandle handle_;
};
#endif

}  // namespace images_detail

// root/<class>/<file>.jpg, as torchvision.datasets.ImageFolder (JPEG files only; other files are ignored).
inline Result<ImageSet> load_image_folder(const std::filesystem::path& root, const ImageFolderOptions& options = {}) {
  constexpr const char* op = "load_image_folder";
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec))
    return make_error(ErrorCode::io, op, fe_format("'{}' is not a directory", root.string()));
  std::vector<std::filesystem::path> class_dirs;
  for (const auto& e : std::filesystem::directory_iterator(root, ec))
    if (e.is_directory()) class_dirs.push_back(e.path());
  if (ec) return make_error(ErrorCode::io, op, fe_format("cannot list '{}': {}", root.string(), ec.message()));
  std::sort(class_dirs.begin(), class_dirs.end());
  if (class_dirs.empty()) return make_error(ErrorCode::invalid_argument, op, fe_format("'{}' has no class folders", root.string()));
  if (class_dirs.size() > 1u << 20) return make_error(ErrorCode::invalid_argument, op, fe_format("'{}' has {} class folders", root.string(), class_dirs.size()));
  ImageSet set;
  set.name = root.filename().string();
  std::vector<std::filesystem::path> files;
  std::vector<std::int32_t> labels;
  for (std::size_t c = 0; c < class_dirs.size(); ++c) {
    std::vector<std::filesystem::path> mine;
    for (const auto& e : std::filesystem::directory_iterator(class_dirs[c], ec))
      if (e.is_regular_file() && images_detail::is_jpeg_name(e.path())) mine.push_back(e.path());
    if (ec) return make_error(ErrorCode::io, op, fe_format("cannot list '{}': {}", class_dirs[c].string(), ec.message()));
    if (mine.empty())
      return make_error(ErrorCode::invalid_argument, op,
                        fe_format("class folder '{}' holds no .jpg/.jpeg images", class_dirs[c].string()));
    std::sort(mine.begin(), mine.end());
    if (options.max_per_class > 0 && static_cast<std::int64_t>(mine.size()) > options.max_per_class)
      mine.resize(static_cast<std::size_t>(options.max_per_class));
    for (auto& f : mine) {
      files.push_back(std::move(f));
      labels.push_back(static_cast<std::int32_t>(c));
    }
    set.classes.push_back(class_dirs[c].filename().string());
  }
  if (static_cast<std::int64_t>(files.size()) > kMaxDatasetSize)
    return make_error(ErrorCode::invalid_argument, op, fe_format("{} images: more than a data set may hold", files.size()));
#if defined(FERRITE_WITH_JPEG)
  const auto n = static_cast<std::int64_t>(files.size());
  // The first image fixes the size every other must have.
  int h = 0, w = 0;
  {
    FE_TRY_ASSIGN(auto bytes, images_detail::read_image_file(files[0], options.max_file_bytes, op));
    images_detail::Decoder d;
    std::vector<unsigned char> rgb;
    FE_TRY(d.decode(bytes, files[0].string(), h, w, rgb, nullptr));
  }
  FE_TRY_ASSIGN(set.pixels, Tensor::empty({n, 3, h, w}, DType::u8));
  FE_TRY_ASSIGN(set.labels, Tensor::from_data<std::int32_t>({n}, labels.data(), n));
  std::vector<Status> status(files.size(), ok_status());
  const std::int64_t image_bytes = 3 * std::int64_t(h) * w;
  std::uint8_t* out = set.pixels.data<std::uint8_t>();
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n, 64), [&](const tbb::blocked_range<std::int64_t>& r) {
    images_detail::Decoder d;
    std::vector<unsigned char> rgb;
    for (std::int64_t i = r.begin(); i < r.end(); ++i) {
      auto bytes = images_detail::read_image_file(files[static_cast<std::size_t>(i)], options.max_file_bytes, op);
      if (!bytes.ok()) {
        status[static_cast<std::size_t>(i)] = std::move(bytes).error();
        continue;
      }
      int hh = h, ww = w;
      status[static_cast<std::size_t>(i)] = d.decode(*bytes, files[static_cast<std::size_t>(i)].string(), hh, ww, rgb, out + i * image_bytes);
    }
  });
  for (auto& s : status)  // the first bad file in sorted order, whatever the threads did
    if (!s.ok()) return std::move(s).error();
  return set;
#else
  (void)labels;
  return make_error(ErrorCode::unsupported, op,
                    fe_format("'{}': this build has no JPEG decoder (install libturbojpeg0-dev and rebuild; meson -Djpeg)",
                              root.string()));
#endif
}

// CIFAR-10's binary version (cifar-10-batches-bin): `dir`/data_batch_1.bin … data_batch_5.bin (train)
// or test_batch.bin (test); every file whole records of <label byte><1024 R><1024 G><1024 B>.
inline Result<ImageSet> load_cifar10_binary(const std::filesystem::path& dir, Split split) {
  constexpr const char* op = "load_cifar10_binary";
  constexpr std::int64_t record = 1 + 3 * 32 * 32;
  std::vector<std::filesystem::path> files;
  if (split == Split::train)
    for (int i = 1; i <= 5; ++i) files.push_back(dir / ("data_batch_" + std::to_string(i) + ".bin"));
  else
    files.push_back(dir / "test_batch.bin");
  std::vector<std::vector<unsigned char>> contents;
  std::int64_t n = 0;
  for (const auto& f : files) {
    FE_TRY_ASSIGN(const std::int64_t size, images_detail::file_bytes(f, op));
    if (size == 0 || size % record != 0)
      return make_error(ErrorCode::parse, op,
                        fe_format("'{}' is {} bytes, not a whole number of {}-byte CIFAR-10 records", f.string(), size, record));
    if (size / record > kMaxDatasetSize - n)
      return make_error(ErrorCode::invalid_argument, op, fe_format("'{}' holds more records than a data set may", f.string()));
    FE_TRY_ASSIGN(auto bytes, images_detail::read_bytes(f, size, op));
    n += size / record;
    contents.push_back(std::move(bytes));
  }
  ImageSet set;
  set.name = std::string("cifar10-bin/") + std::string(split_name(split));
  for (const char* c : kCifar10Classes) set.classes.emplace_back(c);
  FE_TRY_ASSIGN(set.pixels, Tensor::empty({n, 3, 32, 32}, DType::u8));
  FE_TRY_ASSIGN(set.labels, Tensor::empty({n}, DType::i32));
  std::uint8_t* px = set.pixels.data<std::uint8_t>();
  std::int32_t* lab = set.labels.data<std::int32_t>();
  std::int64_t i = 0;
  for (std::size_t k = 0; k < contents.size(); ++k)
    for (std::int64_t r = 0; r < static_cast<std::int64_t>(contents[k].size()) / record; ++r, ++i) {
      const unsigned char* rec = contents[k].data() + r * record;
      if (rec[0] >= 10)
        return make_error(ErrorCode::parse, op,
                          fe_format("'{}': record {} has label {}, CIFAR-10 has classes 0..9", files[k].string(), r, rec[0]));
      lab[i] = rec[0];
      std::memcpy(px + i * (record - 1), rec + 1, static_cast<std::size_t>(record - 1));
    }
  return set;
}

// The f32 data set the training loop consumes: [N, C·H·W] in [0, 1] (byte / 255).
inline Result<Dataset> to_dataset(const ImageSet& set) {
  Dataset d;
  const std::int64_t n = set.size(), f = set.channels() * set.height() * set.width();
  FE_TRY_ASSIGN(d.images, Tensor::empty({n, f}, DType::f32));
  FE_TRY_ASSIGN(d.labels, set.labels.clone());
  const std::uint8_t* px = set.pixels.data<std::uint8_t>();
  float* out = d.images.data<float>();
  for (std::int64_t i = 0; i < n * f; ++i) out[i] = float(px[i]) / 255.0f;
  d.num_classes = static_cast<int>(set.classes.size());
  d.channels = set.channels();
  d.rows = set.height();
  d.cols = set.width();
  d.name = set.name;
  return d;
}

}  // namespace ferrite::data
