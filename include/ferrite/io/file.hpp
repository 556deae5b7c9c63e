#pragma once
// write_file_atomic: the one way ferrite writes an output file (safetensors, PNG, benchmark JSON).
//
//   FE_TRY(io::write_file_atomic(path, std::as_bytes(std::span(bytes)), "png::write"));
//   FE_TRY(io::write_file_atomic(path, [&](io::FileWriter& out) -> Status {
//     FE_TRY(out.write(header.data(), header.size()));
//     return out.write(payload.data(), payload.size());
//   }, "safetensors::save"));
//
// The bytes go to a temporary file beside the target, "<path>.tmp.<pid>.<n>" (the pid keeps two
// processes apart, n two writes of one process), which is renamed over <path> only once every write,
// the flush and the close have succeeded. On any failure — a write, the flush, the close, the rename,
// an error returned or an exception thrown by the callback — the temporary is removed and <path> is
// left as it was: a reader sees the old file or the whole new one, never half of one. No fsync: this
// guards against failed writes (disk full, missing directory), not against power loss.
//
// What is at <path> decides where the bytes go: a symbolic link is followed to the file it names
// (the link stays; a dangling link's target is created); an existing character device or FIFO is
// written through in place (/dev/null stays /dev/null: renaming over it would replace the device
// with a regular file); a directory, block device or socket is refused before anything is written.
//
// Errors are ErrorCode::io with the given op (a directory, block device or socket at <path> too); the
// message names <path>, the temporary where it matters and the OS's reason ("No such file or
// directory"). An error returned by the callback is passed through unchanged; an empty path is
// invalid_argument.
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#elif defined(_WIN32)
#include <process.h>
#endif

#include "ferrite/core/error.hpp"
#include "ferrite/core/macros.hpp"
#include "ferrite/core/result.hpp"

namespace ferrite::io {

namespace detail {

inline std::string os_reason(int err) {
  return err ? std::error_code(err, std::generic_category()).message() : std::string("unknown error");
}

inline long process_id() noexcept {
#if defined(__unix__) || defined(__APPLE__)
  return static_cast<long>(::getpid());
#elif defined(_WIN32)
  return static_cast<long>(::_getpid());
#else
  return 0;
#endif
}

// "<path>.tmp.<pid>.<n>", n counting the writes of this process (threads writing the same target).
inline std::filesystem::path temporary_path_for(const std::filesystem::path& path) {
  static std::atomic<unsigned long> counter{0};
  std::filesystem::path tmp = path;
  tmp += ".tmp." + std::to_string(process_id()) + "." + std::to_string(counter.fetch_add(1));
  return tmp;
}

// Where write_file_atomic puts the bytes for `path` (see the top): the file to replace, or the
// special file to write through in place.
struct OutputTarget {
  std::filesystem::path path;
  bool in_place = false;
};

inline Result<OutputTarget> resolve_output(const std::filesystem::path& path, std::string_view op) {
  namespace fs = std::filesystem;
  auto refuse = [&](const std::string& what) -> Error {
    return make_error(ErrorCode::io, std::string(op),
                      "cannot write '" + path.string() + "': " + what + "; nothing was written");
  };
  std::error_code ec;
  const fs::file_status followed = fs::status(path, ec);  // through every link
  switch (followed.type()) {
    case fs::file_type::regular:
      if (fs::is_symlink(fs::symlink_status(path, ec))) {
        fs::path target = fs::canonical(path, ec);  // the file the links name: replaced, the links kept
        if (ec) return make_error(ErrorCode::io, std::string(op), "cannot resolve the link '" + path.string() + "': " + ec.message());
        return OutputTarget{std::move(target), false};
      }
      return OutputTarget{path, false};
    case fs::file_type::character:
    case fs::file_type::fifo:
      return OutputTarget{path, true};  // opened through the links, written in place
    case fs::file_type::directory:
      return refuse("it is a directory");
    case fs::file_type::block:
      return refuse("it is a block device");
    case fs::file_type::socket:
      return refuse("it is a socket");
    case fs::file_type::not_found:
      break;
    default:
      if (ec && ec.value() == ELOOP) return refuse("too many levels of symbolic links");
      if (ec) return refuse(ec.message());  // e.g. "Permission denied" on a directory of the path
      return refuse("it is not a regular file");
  }
  if (ec && ec.value() == ELOOP) return refuse("too many levels of symbolic links");
  // Nothing there, or a dangling link: follow the links (at most 40, as the kernel does) to the name
  // to create.
  fs::path p = path;
  for (int hops = 0; fs::is_symlink(fs::symlink_status(p, ec)); ++hops) {
    if (hops == 40) return refuse("too many levels of symbolic links");
    const fs::path link = fs::read_symlink(p, ec);
    if (ec) return make_error(ErrorCode::io, std::string(op), "cannot read the link '" + p.string() + "': " + ec.message());
    p = link.is_absolute() ? link : p.parent_path() / link;
  }
  return OutputTarget{p, false};
}

}  // namespace detail

class FileWriter;

namespace detail {
using FillFn = Status (*)(void* context, FileWriter& out);
Status write_file_atomic_impl(const std::filesystem::path& path, FillFn fill, void* context, std::string_view op);
}  // namespace detail

// The open temporary file handed to write_file_atomic's callback. The first failed write is also
// remembered, so a callback that drops a write's Status still cannot produce a truncated file.
class FileWriter {
 public:
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;

  Status write(const void* data, std::size_t size) {
    if (!failed_.ok()) return failed_;
    if (size == 0) return {};
    errno = 0;
    const std::size_t written = std::fwrite(data, 1, size, file_);
    if (written != size) {
      const std::string reason = detail::os_reason(errno);
      Status failure = error(in_place_ ? "writing '" + path_.string() + "' failed after " + std::to_string(bytes_ + written) +
                                             " bytes: " + reason
                                       : "writing '" + tmp_.string() + "' failed after " + std::to_string(bytes_ + written) +
                                             " bytes: " + reason + " (disk full?); '" + path_.string() +
                                             "' was left untouched");
      failed_ = failure;  // (a named temporary: nvcc warns on a discarded [[nodiscard]] assignment result)
      return failure;
    }
    bytes_ += size;
    return {};
  }
  Status write(std::span<const std::byte> bytes) { return write(bytes.data(), bytes.size()); }

  std::size_t bytes_written() const noexcept { return bytes_; }
  const std::filesystem::path& target() const noexcept { return path_; }

 private:
  friend Status detail::write_file_atomic_impl(const std::filesystem::path&, detail::FillFn, void*,
                                               std::string_view);

  FileWriter(detail::OutputTarget target, std::string_view op)
      : path_(std::move(target.path)),
        tmp_(target.in_place ? path_ : detail::temporary_path_for(path_)),
        op_(op),
        in_place_(target.in_place) {}
  ~FileWriter() {
    // Reached with an open file or an uncommitted temporary only on a failure or an exception.
    if (file_) std::fclose(file_);
    if (!committed_ && !in_place_) {
      std::error_code ignored;
      std::filesystem::remove(tmp_, ignored);
    }
  }

  Error error(std::string message) const { return make_error(ErrorCode::io, std::string(op_), std::move(message)); }

  Status open() {
    errno = 0;
#if defined(_WIN32)
    file_ = ::_wfopen(tmp_.c_str(), L"wb");
#else
    file_ = std::fopen(tmp_.c_str(), "wb");
#endif
    if (!file_) {
      if (in_place_) return error("cannot open '" + path_.string() + "' for writing: " + detail::os_reason(errno));
      return error("cannot create '" + tmp_.string() + "' to write '" + path_.string() + "': " +
                   detail::os_reason(errno) + " (does the directory exist and is it writable?)");
    }
    return {};
  }

  // Flush, close, rename over the target.
  Status commit() {
    if (!failed_.ok()) return failed_;
    errno = 0;
    if (std::fflush(file_) != 0)
      return error("writing '" + tmp_.string() + "' failed: " + detail::os_reason(errno) + " (disk full?); '" +
                   path_.string() + "' was left untouched");
    errno = 0;
    const int closed = std::fclose(file_);
    const int close_errno = errno;
    file_ = nullptr;
    if (closed != 0)
      return error("closing '" + tmp_.string() + "' failed: " + detail::os_reason(close_errno) + "; '" +
                   path_.string() + "' was left untouched");
    if (in_place_) {  // a device or FIFO: the bytes went straight to it
      committed_ = true;
      return {};
    }
    std::error_code ec;
    std::filesystem::rename(tmp_, path_, ec);
    if (ec)
      return error("cannot rename '" + tmp_.string() + "' to '" + path_.string() + "': " + ec.message() + "; '" +
                   path_.string() + "' was left untouched");
    committed_ = true;
    return {};
  }

  std::filesystem::path path_;  // the file written: the target of the caller's links
  std::filesystem::path tmp_;   // the temporary beside it (the path itself when in place)
  std::string_view op_;
  bool in_place_ = false;
  std::FILE* file_ = nullptr;
  std::size_t bytes_ = 0;
  Status failed_{};
  bool committed_ = false;
};

namespace detail {
inline Status write_file_atomic_impl(const std::filesystem::path& path, FillFn fill, void* context,
                                     std::string_view op) {
  if (path.empty()) return make_error(ErrorCode::invalid_argument, std::string(op), "empty output path");
  FE_TRY_ASSIGN(OutputTarget target, resolve_output(path, op));
  FileWriter out(std::move(target), op);  // its destructor removes the temporary unless commit() renamed it
  FE_TRY(out.open());
  FE_TRY(fill(context, out));
  return out.commit();
}
}  // namespace detail

// Writes a file atomically; `fill(FileWriter&)` produces its bytes and returns a Status. See the top.
template <class Fill, std::enable_if_t<std::is_invocable_r_v<Status, Fill&, FileWriter&>, int> = 0>
Status write_file_atomic(const std::filesystem::path& path, Fill&& fill, std::string_view op) {
  using F = std::remove_reference_t<Fill>;
  return detail::write_file_atomic_impl(
      path, [](void* context, FileWriter& out) -> Status { return (*static_cast<F*>(context))(out); },
      const_cast<void*>(static_cast<const void*>(std::addressof(fill))), op);
}

// The same for bytes already in memory.
inline Status write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes,
                                std::string_view op) {
  return write_file_atomic(path, [bytes](FileWriter& out) { return out.write(bytes); }, op);
}

}  // namespace ferrite::io
