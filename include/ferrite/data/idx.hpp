#pragma once
// IDX files (the MNIST / Fashion-MNIST format, http://yann.lecun.com/exdb/mnist/), gzip-compressed or
// raw: zlib's gzread reads both transparently.
//
//   images: u32 magic 0x00000803 (ubyte, 3 dims), u32 count, u32 rows, u32 cols, count*rows*cols bytes
//   labels: u32 magic 0x00000801 (ubyte, 1 dim),  u32 count,                      count bytes
// All header integers are big-endian. Files come from outside, so every field is validated before it
// sizes an allocation, and every way a file can be wrong has its own message.
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "ferrite/core/result.hpp"
#include "ferrite/tensor/tensor.hpp"
#include "ferrite/data/dataset.hpp"

namespace ferrite::data {

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

inline constexpr std::uint32_t kIdxImagesMagic = 0x00000803;  // unsigned bytes, 3 dimensions
inline constexpr std::uint32_t kIdxLabelsMagic = 0x00000801;  // unsigned bytes, 1 dimension

// Sanity limits, checked before anything is allocated from header values.
inline constexpr std::uint32_t kIdxMaxImageSide = 16384;
inline constexpr std::uint64_t kIdxMaxPixelsPerImage = std::uint64_t{1} << 24;
inline constexpr std::uint64_t kIdxMaxTotalBytes = std::uint64_t{1} << 34;  // 16 GiB of u8 (64 GiB as f32)
// The default bound on the pixel bytes load_idx inflates (2 GiB: 8 GiB as f32). Fashion-MNIST's training
// set is 47 MB, EMNIST's largest split 640 MB.
inline constexpr std::uint64_t kIdxDefaultMaxPayloadBytes = std::uint64_t{1} << 31;
// Deflate cannot compress better than about 1032:1, so a gzip file of S bytes holds at most ~1032*S
// bytes: a header that promises more is lying, whatever memory the machine has.
inline constexpr std::uint64_t kDeflateMaxRatio = 1032;

namespace detail {

// One IDX file being read: a gzFile that closes itself, with errors phrased for this path.
class IdxReader {
 public:
  IdxReader(const IdxReader&) = delete;
  IdxReader& operator=(const IdxReader&) = delete;
  IdxReader(IdxReader&& o) noexcept
      : file_(std::exchange(o.file_, nullptr)), path_(std::move(o.path_)), op_(std::move(o.op_)),
        file_bytes_(o.file_bytes_), consumed_(o.consumed_) {}
  ~IdxReader() {
    if (file_) gzclose(file_);
  }

  static Result<IdxReader> open(const std::filesystem::path& path, std::string op) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(status)) {
      std::string message = "file '" + path.string() + "' does not exist";
      if (path.parent_path() == std::filesystem::path(kFashionMnistDir))
        message += " (Fashion-MNIST is installed by `apt-get install dataset-fashion-mnist`)";
      return make_error(ErrorCode::io, std::move(op), std::move(message));
    }
    if (!std::filesystem::is_regular_file(status))
      return make_error(ErrorCode::io, std::move(op), "'" + path.string() + "' is not a regular file");
    const std::uintmax_t bytes = std::filesystem::file_size(path, ec);
    if (ec)
      return make_error(ErrorCode::io, std::move(op),
                        "cannot read the size of '" + path.string() + "': " + ec.message());
    errno = 0;
    gzFile file = gzopen(path.c_str(), "rb");
    if (!file)
      return make_error(ErrorCode::io, std::move(op),
                        "cannot open '" + path.string() + "': " +
                            (errno ? std::strerror(errno) : "zlib could not allocate its state"));
    gzbuffer(file, 1u << 17);  // fewer read() calls than zlib's 8 KiB default
    return IdxReader(file, path.string(), std::move(op), bytes);
  }

  const std::string& path() const noexcept { return path_; }
  std::uint64_t file_bytes() const noexcept { return file_bytes_; }
  // Whether the file is raw (gzread passes it through) rather than gzip.
  bool is_raw() { return gzdirect(file_) != 0; }
  // The most decompressed bytes this file can possibly hold (see kDeflateMaxRatio).
  std::uint64_t max_content_bytes() { return is_raw() ? file_bytes_ : file_bytes_ * kDeflateMaxRatio + 1024; }

  // Reads up to `n` bytes; returns how many were read before the end of the data. A short count with
  // no error means the (decompressed) data ended cleanly. Truncated or corrupt gzip is an error.
  Result<std::size_t> read(void* dst, std::size_t n) {
    auto* out = static_cast<unsigned char*>(dst);
    std::size_t done = 0;
    while (done < n) {
      const auto chunk = static_cast<unsigned>(std::min<std::size_t>(n - done, 1u << 30));
      const int got = gzread(file_, out + done, chunk);
      if (got < 0) return zlib_error();
      done += static_cast<std::size_t>(got);
      consumed_ += static_cast<std::uint64_t>(got);
      if (static_cast<unsigned>(got) < chunk) break;
    }
    // zlib reports a gzip stream cut short (Z_BUF_ERROR) as a short read plus an error state.
    int errnum = Z_OK;
    gzerror(file_, &errnum);
    if (errnum != Z_OK) return zlib_error();
    return done;
  }

  // Reads exactly `n` bytes of `what`, or says how far the data got.
  Status read_exact(void* dst, std::size_t n, const std::string& what) {
    FE_TRY_ASSIGN(std::size_t got, read(dst, n));
    if (got != n)
      return make_error(ErrorCode::parse, op_,
                        "'" + path_ + "' ends inside the " + what + ": expected " + std::to_string(n) +
                            " bytes, found " + std::to_string(got));
    return ok_status();
  }

  // After the payload the data must end: extra bytes mean the header's count is wrong.
  Status expect_end() {
    unsigned char probe[4096];
    std::uint64_t extra = 0;
    for (;;) {
      FE_TRY_ASSIGN(std::size_t got, read(probe, sizeof probe));
      extra += got;
      if (got < sizeof probe || extra >= (std::uint64_t{1} << 20)) break;
    }
    if (extra)
      return make_error(ErrorCode::parse, op_,
                        "'" + path_ + "' has " + (extra >= (std::uint64_t{1} << 20) ? "at least " : "") +
                            std::to_string(extra) + (extra == 1 ? " trailing byte" : " trailing bytes") + " after the " +
                            std::to_string(consumed_ - extra) +
                            " bytes its header describes (the header's count or dimensions are wrong)");
    return ok_status();
  }

 private:
  IdxReader(gzFile file, std::string path, std::string op, std::uint64_t bytes)
      : file_(file), path_(std::move(path)), op_(std::move(op)), file_bytes_(bytes) {}

  Error zlib_error() {
    int errnum = Z_OK;
    const char* text = gzerror(file_, &errnum);
    std::string message = "cannot decompress '" + path_ + "' after " + std::to_string(consumed_) +
                          " decompressed bytes: ";
    if (errnum == Z_BUF_ERROR)
      message += "the gzip stream is truncated";
    else if (errnum == Z_DATA_ERROR)
      message += "the gzip data is corrupt";
    else if (errnum == Z_ERRNO)
      message += std::string("read error: ") + std::strerror(errno);
    else
      message += "zlib error " + std::to_string(errnum);
    std::string detail = text && *text ? text : "no detail";
    if (detail.rfind(path_ + ": ", 0) == 0) detail.erase(0, path_.size() + 2);  // zlib prefixes the path
    message += " (zlib: " + detail + ")";
    return make_error(ErrorCode::io, op_, std::move(message));
  }

  gzFile file_ = nullptr;
  std::string path_;
  std::string op_;
  std::uint64_t file_bytes_ = 0;
  std::uint64_t consumed_ = 0;
};

inline std::uint32_t read_be32(const unsigned char* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

inline std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", v);
  return buf;
}

// "0x00000801 (ubyte, 1 dim: looks like a labels file)": helps when images and labels are swapped.
inline std::string describe_magic(std::uint32_t magic, bool guess_kind) {
  std::string s = hex32(magic);
  if ((magic >> 16) != 0) return s + " (not an IDX file: the first two bytes must be zero)";
  const unsigned type = (magic >> 8) & 0xFF, rank = magic & 0xFF;
  const char* type_name = type == 0x08   ? "ubyte"
                          : type == 0x09 ? "sbyte"
                          : type == 0x0B ? "short"
                          : type == 0x0C ? "int"
                          : type == 0x0D ? "float"
                          : type == 0x0E ? "double"
                                         : "unknown type";
  s += std::string(" (") + type_name + ", " + std::to_string(rank) + (rank == 1 ? " dim" : " dims");
  if (guess_kind && magic == kIdxLabelsMagic) s += ": looks like a labels file";
  if (guess_kind && magic == kIdxImagesMagic) s += ": looks like an images file";
  return s + ")";
}

inline Status check_magic(std::uint32_t found, std::uint32_t expected, const std::string& what,
                          const std::string& path, const std::string& op) {
  if (found == expected) return ok_status();
  return make_error(ErrorCode::parse, op,
                    "'" + path + "' is not an IDX " + what + " file: magic number expected " +
                        describe_magic(expected, false) + ", found " + describe_magic(found, true));
}

}  // namespace detail

// How much of an IDX pair load_idx reads. A small gzip file can promise a huge payload (a 762 KB file
// holds a million blank 28x28 images), so what is inflated is bounded by what the caller asked for:
struct IdxLimits {
  // The first max_samples samples only (0: all). The rest of both files is not read (nor checked):
  // --samples 100 costs 100 samples of memory and time, whatever the file declares.
  std::int64_t max_samples = 0;
  // Refuse to inflate more pixel bytes than this (checked against the header before any allocation).
  std::uint64_t max_payload_bytes = kIdxDefaultMaxPayloadBytes;
};

// Loads an images file and a labels file (gzip or raw) into a Dataset. Images may have any size
// rows x cols (recorded in the Dataset); labels must be below num_classes.
inline Result<Dataset> load_idx(const std::filesystem::path& images_path,
                                const std::filesystem::path& labels_path, int num_classes = 10,
                                const IdxLimits& limits = {}) {
  const std::string op = "load_idx";
  if (limits.max_samples < 0)
    return make_error(ErrorCode::invalid_argument, op,
                      "max_samples must be >= 0 (0 = all), got " + std::to_string(limits.max_samples));
  if (num_classes < 1 || num_classes > 256)
    return make_error(ErrorCode::invalid_argument, op,
                      "num_classes must be in [1, 256] for byte labels, got " + std::to_string(num_classes));

  // ---- images header
  FE_TRY_ASSIGN(detail::IdxReader images_file, detail::IdxReader::open(images_path, op));
  const std::string& ipath = images_file.path();
  std::array<unsigned char, 16> ih{};
  FE_TRY(images_file.read_exact(ih.data(), 4, "magic number"));
  FE_TRY(detail::check_magic(detail::read_be32(ih.data()), kIdxImagesMagic, "images", ipath, op));
  FE_TRY(images_file.read_exact(ih.data() + 4, 12, "16-byte images header"));
  const std::uint32_t count = detail::read_be32(ih.data() + 4);
  const std::uint32_t rows = detail::read_be32(ih.data() + 8);
  const std::uint32_t cols = detail::read_be32(ih.data() + 12);
  const std::string dims = "[" + std::to_string(count) + ", " + std::to_string(rows) + ", " +
                           std::to_string(cols) + "]";
  if (rows == 0 || cols == 0 || rows > kIdxMaxImageSide || cols > kIdxMaxImageSide ||
      std::uint64_t{rows} * cols > kIdxMaxPixelsPerImage)
    return make_error(ErrorCode::parse, op,
                      "'" + ipath + "' declares absurd image dimensions " + std::to_string(rows) + "x" +
                          std::to_string(cols) + " (each side must be in [1, " +
                          std::to_string(kIdxMaxImageSide) + "], at most " +
                          std::to_string(kIdxMaxPixelsPerImage) + " pixels per image)",
                      dims);
  if (count == 0)
    return make_error(ErrorCode::parse, op, "'" + ipath + "' declares 0 images", dims);
  if (count > static_cast<std::uint64_t>(kMaxDatasetSize))
    return make_error(ErrorCode::parse, op,
                      "'" + ipath + "' declares an absurd image count " + std::to_string(count) +
                          " (at most " + std::to_string(kMaxDatasetSize) + ")",
                      dims);
  const std::uint64_t pixels = std::uint64_t{rows} * cols;  // <= 2^24, so count * pixels < 2^55
  const std::uint64_t declared_payload = std::uint64_t{count} * pixels;
  if (declared_payload > kIdxMaxTotalBytes || declared_payload > images_file.max_content_bytes())
    return make_error(ErrorCode::parse, op,
                      "'" + ipath + "' declares " + std::to_string(declared_payload) +
                          " bytes of pixels, more than a " + std::to_string(images_file.file_bytes()) +
                          "-byte " + (images_file.is_raw() ? "raw" : "gzip") +
                          " file can hold (header corrupt?)",
                      dims);
  // What is read: a prefix when the caller asked for fewer samples than the file holds.
  const bool prefix = limits.max_samples > 0 && limits.max_samples < static_cast<std::int64_t>(count);
  const std::uint32_t wanted = prefix ? static_cast<std::uint32_t>(limits.max_samples) : count;
  const std::uint64_t payload = std::uint64_t{wanted} * pixels;
  if (payload > limits.max_payload_bytes)
    return make_error(ErrorCode::invalid_argument, op,
                      "loading " + std::to_string(wanted) + " images of " + std::to_string(rows) + "x" +
                          std::to_string(cols) + " from '" + ipath + "' would inflate " + std::to_string(payload) +
                          " bytes of pixels, more than the limit of " + std::to_string(limits.max_payload_bytes) +
                          " (IdxLimits::max_payload_bytes; ask for fewer samples)",
                      dims);

  // ---- labels header, checked before the big allocation so mismatches fail fast
  FE_TRY_ASSIGN(detail::IdxReader labels_file, detail::IdxReader::open(labels_path, op));
  const std::string& lpath = labels_file.path();
  std::array<unsigned char, 8> lh{};
  FE_TRY(labels_file.read_exact(lh.data(), 4, "magic number"));
  FE_TRY(detail::check_magic(detail::read_be32(lh.data()), kIdxLabelsMagic, "labels", lpath, op));
  FE_TRY(labels_file.read_exact(lh.data() + 4, 4, "8-byte labels header"));
  const std::uint32_t label_count = detail::read_be32(lh.data() + 4);
  if (label_count != count)
    return make_error(ErrorCode::shape_mismatch, op,
                      "image and label counts differ: '" + ipath + "' has " + std::to_string(count) +
                          " images, '" + lpath + "' has " + std::to_string(label_count) + " labels",
                      dims + " vs [" + std::to_string(label_count) + "]");

  if (count > labels_file.max_content_bytes())
    return make_error(ErrorCode::parse, op,
                      "'" + lpath + "' declares " + std::to_string(count) + " labels, more than a " +
                          std::to_string(labels_file.file_bytes()) + "-byte " + (labels_file.is_raw() ? "raw" : "gzip") +
                          " file can hold (header corrupt?)");

  // ---- labels payload
  const auto n = static_cast<std::int64_t>(wanted);
  std::vector<unsigned char> raw_labels(wanted);
  FE_TRY(labels_file.read_exact(raw_labels.data(), wanted, "label payload"));
  if (!prefix) FE_TRY(labels_file.expect_end());
  Dataset out;
  FE_TRY_ASSIGN(out.labels, Tensor::empty({n}, DType::i32));
  std::int32_t* labels = out.labels.data<std::int32_t>();
  for (std::int64_t i = 0; i < n; ++i) {
    if (raw_labels[i] >= num_classes)
      return make_error(ErrorCode::parse, op,
                        "'" + lpath + "' label " + std::to_string(i) + " is " +
                            std::to_string(raw_labels[i]) + ", outside [0, " +
                            std::to_string(num_classes) + ")");
    labels[i] = raw_labels[i];
  }

  // ---- image payload, decoded chunk by chunk straight into the f32 tensor (no u8 copy of it all)
  FE_TRY_ASSIGN(out.images, Tensor::empty({n, static_cast<std::int64_t>(pixels)}, DType::f32));
  std::array<float, 256> to_unit{};  // byte / 255 computed in f32, the same bits as ToTensor
  for (int v = 0; v < 256; ++v) to_unit[v] = static_cast<float>(v) / 255.0f;
  float* dst = out.images.data<float>();
  std::vector<unsigned char> chunk(static_cast<std::size_t>(std::min<std::uint64_t>(payload, std::uint64_t{1} << 20)));
  for (std::uint64_t done = 0; done < payload;) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), payload - done));
    FE_TRY_ASSIGN(std::size_t got, images_file.read(chunk.data(), want));
    for (std::size_t i = 0; i < got; ++i) dst[done + i] = to_unit[chunk[i]];
    done += got;
    if (got < want)
      return make_error(ErrorCode::parse, op,
                        "'" + ipath + "' ends inside the pixel payload: the header promises " +
                            std::to_string(payload) + " bytes (" + std::to_string(wanted) + " images of " +
                            std::to_string(rows) + "x" + std::to_string(cols) + "), found " +
                            std::to_string(done),
                        dims);
  }
  if (!prefix) FE_TRY(images_file.expect_end());

  out.num_classes = num_classes;
  out.rows = rows;
  out.cols = cols;
  out.name = images_path.filename().string();
  if (prefix) out.name += "[0:" + std::to_string(wanted) + "]";  // as Dataset::slice names a prefix
  return out;
}

// Fashion-MNIST from the Debian package `dataset-fashion-mnist` (or any directory with the four
// standard file names, gzip or not); `limits.max_samples` > 0 loads only the first samples.
inline Result<Dataset> load_fashion_mnist(Split split, const std::filesystem::path& dir = kFashionMnistDir,
                                          const IdxLimits& limits = {}) {
  const char* prefix = split == Split::train ? "train" : "t10k";
  std::filesystem::path images = dir / (std::string(prefix) + "-images-idx3-ubyte.gz");
  std::filesystem::path labels = dir / (std::string(prefix) + "-labels-idx1-ubyte.gz");
  // Accept unpacked copies too (people gunzip these files).
  std::error_code ec;
  if (!std::filesystem::exists(images, ec) &&
      std::filesystem::exists(std::filesystem::path(images).replace_extension(), ec))
    images.replace_extension();
  if (!std::filesystem::exists(labels, ec) &&
      std::filesystem::exists(std::filesystem::path(labels).replace_extension(), ec))
    labels.replace_extension();
  FE_TRY_ASSIGN(Dataset out, load_idx(images, labels, 10, limits));
  if (out.rows != 28 || out.cols != 28)
    return make_error(ErrorCode::shape_mismatch, "load_fashion_mnist",
                      "'" + images.string() + "' holds " + std::to_string(out.rows) + "x" +
                          std::to_string(out.cols) + " images; Fashion-MNIST images are 28x28 "
                          "(use load_idx for other IDX files)");
  // load_idx named it "<file name>[0:N]" when it read a prefix; keep that suffix (the standard file
  // names hold no '[').
  const std::size_t suffix = out.name.find('[');
  out.name = "fashion-mnist/" + std::string(split_name(split)) +
             (suffix == std::string::npos ? std::string() : out.name.substr(suffix));
  return out;
}

}  // namespace ferrite::data
