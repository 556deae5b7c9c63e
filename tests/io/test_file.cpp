// io::write_file_atomic: writes and replaces files, and on every failure leaves the target as it was,
// no temporary behind, and an io error naming the path and the OS's reason.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <thread>
#if defined(__linux__)
#include <csignal>
#include <sys/resource.h>
#endif

#include "ferrite/io/file.hpp"

using namespace ferrite;
using io::FileWriter;
using io::write_file_atomic;
namespace fs = std::filesystem;

namespace {

std::span<const std::byte> bytes_of(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class AtomicFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ferrite_test_file_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ignored);
    fs::remove_all(dir_, ignored);
  }
  // Names of everything in `dir` (to spot a left-over temporary).
  static std::vector<std::string> entries(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
  fs::path dir_;
};

}  // namespace

TEST_F(AtomicFile, WritesAndReplacesAFile) {
  const fs::path target = dir_ / "out.bin";
  ASSERT_TRUE(write_file_atomic(target, bytes_of("first version, longer"), "test").ok());
  EXPECT_EQ(read_text(target), "first version, longer");
  ASSERT_TRUE(write_file_atomic(target, bytes_of("second"), "test").ok());
  EXPECT_EQ(read_text(target), "second");  // replaced whole, not overwritten in place
  EXPECT_EQ(entries(dir_), std::vector<std::string>{"out.bin"});

  ASSERT_TRUE(write_file_atomic(target, std::span<const std::byte>{}, "test").ok());
  EXPECT_TRUE(fs::exists(target));
  EXPECT_EQ(fs::file_size(target), 0u);
}

TEST_F(AtomicFile, CallbackWritesPiecesAndSeesTheTemporaryOnly) {
  const fs::path target = dir_ / "pieces.txt";
  auto status = write_file_atomic(
      target,
      [&](FileWriter& out) -> Status {
        EXPECT_EQ(out.target(), target);
        EXPECT_FALSE(fs::exists(target)) << "the target appears only on success";
        const auto names = entries(dir_);
        EXPECT_EQ(names.size(), 1u);
        if (!names.empty()) {
          EXPECT_EQ(names[0].rfind("pieces.txt.tmp." + std::to_string(::getpid()) + ".", 0), 0u) << names[0];
        }
        FE_TRY(out.write("abc", 3));
        FE_TRY(out.write(bytes_of("def")));
        FE_TRY(out.write(nullptr, 0));
        EXPECT_EQ(out.bytes_written(), 6u);
        return ok_status();
      },
      "test");
  ASSERT_TRUE(status.ok()) << status.error().to_string();
  EXPECT_EQ(read_text(target), "abcdef");
  EXPECT_EQ(entries(dir_), std::vector<std::string>{"pieces.txt"});
}

TEST_F(AtomicFile, MissingDirectoryIsAnIoErrorNamingThePath) {
  const fs::path target = dir_ / "no" / "such" / "dir" / "x.bin";
  auto status = write_file_atomic(target, bytes_of("x"), "test::op");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::io);
  EXPECT_EQ(status.error().op, "test::op");
  EXPECT_NE(status.error().message.find(target.string()), std::string::npos) << status.error().to_string();
  EXPECT_NE(status.error().message.find("No such file or directory"), std::string::npos) << status.error().to_string();
  EXPECT_TRUE(entries(dir_).empty());
}

TEST_F(AtomicFile, UnwritableDirectoryIsAnIoErrorAndLeavesNoTemporary) {
  const fs::path locked = dir_ / "locked";
  fs::create_directories(locked);
  ASSERT_TRUE(write_file_atomic(locked / "keep.txt", bytes_of("old"), "test").ok());
  fs::permissions(locked, fs::perms::owner_read | fs::perms::owner_exec, fs::perm_options::replace);
  if (::access(locked.c_str(), W_OK) == 0) {
    fs::permissions(locked, fs::perms::owner_all, fs::perm_options::add);
    GTEST_SKIP() << "running with privileges that ignore directory permissions (root?)";
  }
  auto status = write_file_atomic(locked / "keep.txt", bytes_of("new"), "test");
  fs::permissions(locked, fs::perms::owner_all, fs::perm_options::add);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::io);
  EXPECT_NE(status.error().message.find((locked / "keep.txt").string()), std::string::npos) << status.error().to_string();
  EXPECT_NE(status.error().message.find("Permission denied"), std::string::npos) << status.error().to_string();
  EXPECT_EQ(read_text(locked / "keep.txt"), "old");
  EXPECT_EQ(entries(locked), std::vector<std::string>{"keep.txt"});
}

TEST_F(AtomicFile, FailedRenameKeepsTheTargetAndRemovesTheTemporary) {
  // A directory that appears at the target while the file is written (a directory there beforehand
  // is refused up front): a non-empty directory cannot be replaced by a file.
  const fs::path target = dir_ / "occupied";
  auto status = write_file_atomic(
      target,
      [&](FileWriter& out) -> Status {
        fs::create_directories(target / "inside");
        return out.write("x", 1);
      },
      "test");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::io);
  EXPECT_NE(status.error().message.find("cannot rename"), std::string::npos) << status.error().to_string();
  EXPECT_NE(status.error().message.find(target.string()), std::string::npos);
  EXPECT_TRUE(fs::is_directory(target / "inside"));
  EXPECT_EQ(entries(dir_), std::vector<std::string>{"occupied"});
}

TEST_F(AtomicFile, CallbackErrorOrExceptionLeavesTheOldFile) {
  const fs::path target = dir_ / "keep.txt";
  ASSERT_TRUE(write_file_atomic(target, bytes_of("old"), "test").ok());

  auto status = write_file_atomic(
      target,
      [](FileWriter& out) -> Status {
        FE_TRY(out.write("partial", 7));
        return make_error(ErrorCode::invalid_argument, "producer", "gave up half way");
      },
      "test");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::invalid_argument);  // passed through unchanged
  EXPECT_EQ(status.error().op, "producer");
  EXPECT_EQ(read_text(target), "old");
  EXPECT_EQ(entries(dir_), std::vector<std::string>{"keep.txt"});

  EXPECT_THROW((void)write_file_atomic(
                   target,
                   [](FileWriter& out) -> Status {
                     (void)out.write("partial", 7);
                     throw std::runtime_error("boom");
                   },
                   "test"),
               std::runtime_error);
  EXPECT_EQ(read_text(target), "old");
  EXPECT_EQ(entries(dir_), std::vector<std::string>{"keep.txt"});
}

// A link is followed: the file it names is replaced, the link stays a link (it used to be replaced
// by a regular file). A dangling link's target is created; a loop is refused.
TEST_F(AtomicFile, SymlinksAreFollowedToTheirTarget) {
  const fs::path real = dir_ / "real.txt", link = dir_ / "link.txt", chain = dir_ / "chain.txt";
  ASSERT_TRUE(write_file_atomic(real, bytes_of("old"), "test").ok());
  fs::create_symlink("real.txt", link);  // relative, as `ln -s` makes them
  fs::create_symlink(link, chain);       // a link to a link
  auto status = write_file_atomic(chain, bytes_of("new"), "test");
  ASSERT_TRUE(status.ok()) << status.error().to_string();
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_TRUE(fs::is_symlink(chain));
  EXPECT_EQ(read_text(real), "new");
  EXPECT_EQ(entries(dir_), (std::vector<std::string>{"chain.txt", "link.txt", "real.txt"}));

  const fs::path dangling = dir_ / "dangling.txt";
  fs::create_symlink("created.txt", dangling);
  status = write_file_atomic(dangling, bytes_of("made"), "test");
  ASSERT_TRUE(status.ok()) << status.error().to_string();
  EXPECT_TRUE(fs::is_symlink(dangling));
  EXPECT_EQ(read_text(dir_ / "created.txt"), "made");

  fs::create_symlink("loop-b", dir_ / "loop-a");
  fs::create_symlink("loop-a", dir_ / "loop-b");
  status = write_file_atomic(dir_ / "loop-a", bytes_of("x"), "test");
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().message.find("symbolic links"), std::string::npos) << status.error().to_string();
  EXPECT_TRUE(fs::is_symlink(dir_ / "loop-a"));
}

// A FIFO (like a character device such as /dev/null) is written through in place, never renamed over.
TEST_F(AtomicFile, SpecialFilesAreWrittenThroughNotReplaced) {
  const fs::path fifo = dir_ / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::string received;
  std::thread reader([&] { received = read_text(fifo); });  // opening blocks until the writer opens
  auto status = write_file_atomic(fifo, bytes_of("through the pipe"), "test");
  reader.join();
  ASSERT_TRUE(status.ok()) << status.error().to_string();
  EXPECT_EQ(received, "through the pipe");
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(fifo)));
  EXPECT_EQ(entries(dir_), std::vector<std::string>{"pipe"});  // no temporary, nothing renamed
  // /dev/null is classified as a device to write in place (not written here: a wrong answer would
  // replace the system's /dev/null when the tests run as root).
  if (fs::is_character_file("/dev/null")) {
    auto target = io::detail::resolve_output("/dev/null", "test");
    ASSERT_TRUE(target.ok());
    EXPECT_TRUE(target->in_place);
  }
}

TEST_F(AtomicFile, DirectoriesAreRefusedAndKept) {
  const fs::path sub = dir_ / "results";
  fs::create_directories(sub);
  auto status = write_file_atomic(sub, bytes_of("x"), "test");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::io);
  EXPECT_NE(status.error().message.find("is a directory"), std::string::npos) << status.error().to_string();
  EXPECT_NE(status.error().message.find(sub.string()), std::string::npos) << status.error().to_string();
  EXPECT_TRUE(fs::is_directory(sub));
  EXPECT_EQ(entries(dir_), std::vector<std::string>{"results"});
}

TEST_F(AtomicFile, EmptyPathIsInvalid) {
  auto status = write_file_atomic(fs::path{}, bytes_of("x"), "test");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::invalid_argument);
}

#if defined(__linux__)
// A failing write (here: over the file-size limit, EFBIG; "disk full" would look the same) is caught
// even when the callback ignores the Status of its writes.
TEST_F(AtomicFile, FailedWriteIsReportedAndLeavesTheOldFile) {
  const fs::path target = dir_ / "big.bin";
  ASSERT_TRUE(write_file_atomic(target, bytes_of("old"), "test").ok());

  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < 4096) GTEST_SKIP() << "file-size limit already tiny";
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);  // get EFBIG instead of the signal
  rlimit small = saved;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::vector<std::byte> big(1 << 20, std::byte{1});
  auto status = write_file_atomic(
      target,
      [&](FileWriter& out) -> Status {
        (void)out.write(big.data(), big.size());  // the failure is remembered ...
        (void)out.write(big.data(), 16);
        return ok_status();                       // ... even though this callback says "fine"
      },
      "test");
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old_handler);

  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::io);
  EXPECT_NE(status.error().message.find(target.string()), std::string::npos) << status.error().to_string();
  EXPECT_NE(status.error().message.find("File too large"), std::string::npos) << status.error().to_string();
  EXPECT_EQ(read_text(target), "old");
  EXPECT_EQ(entries(dir_), std::vector<std::string>{"big.bin"});
}
#endif
