#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "ferrite/bench/harness.hpp"

using namespace ferrite;
using namespace ferrite::bench;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test, removed afterwards.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) {
    path = fs::temp_directory_path() / ("ferrite_bench_" + name + "_" + std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

BuildInfo test_build() {
  return BuildInfo{"0.1.0", "gcc 12.2.0", "-O3 -march=native", "0123456789abcdef0123456789abcdef01234567",
                   "release", false};
}

// A report filled the way bench/mnist fills it.
json filled_success_report() {
  const Environment env = collect_environment(test_build());
  json report = make_report_skeleton("mnist", test_build(), env, device_strings({Device::cpu()}));
  report["device"] = device_json(Device::cpu(), env.cpu, 2);
  report["config"] = {{"epochs", 2}, {"batch_size", 128}, {"lr", 1e-3}, {"device", "cpu"}};
  auto stats = summarize_ms({2.0, 2.5, 1.9, 3.1, 2.2});
  EXPECT_TRUE(stats.ok());
  auto peak = peak_host_rss_mb();
  EXPECT_TRUE(peak.ok());
  report["metrics"] = {{"throughput", throughput_json(60000.0, "samples/s", "median of timed epochs")},
                       {"latency_ms", stats.value()},
                       {"peak_memory_mb", {{"host", peak.value()}, {"device", nullptr}}},
                       {"flops_per_step", 83460096},
                       {"gflops", 39.9},
                       {"samples_per_s_per_epoch", {59000.0, 60000.0}}};
  report["quality"] = {{"loss_per_epoch", {0.6, 0.25}},
                       {"final_loss", 0.25},
                       {"train_accuracy", 0.95},
                       {"test_accuracy", 0.94}};
  return report;
}

// Runs scripts/validate_json.py on `file`; its exit status. The script lives next to tests/data.
int run_validator(const fs::path& file, bool expect_invalid = false) {
  const fs::path script = fs::path(FERRITE_TEST_DATA_DIR) / ".." / ".." / "scripts" / "validate_json.py";
  const std::string cmd = "python3 '" + script.string() + "' " + (expect_invalid ? "--expect-invalid " : "") +
                          "'" + file.string() + "'";
  const int status = std::system(cmd.c_str());
  return (status != -1 && WIFEXITED(status)) ? WEXITSTATUS(status) : -1;
}

}  // namespace

// ---- percentiles (expected values are numpy.percentile's, method="linear") ----

TEST(Stats, OddCount) {
  auto s = summarize_ms({3.0, 1.0, 2.0});
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ(s->mean, 2.0);
  EXPECT_DOUBLE_EQ(s->p50, 2.0);
  EXPECT_DOUBLE_EQ(s->p95, 2.9);   // h = 0.95 * 2 = 1.9 -> 2 + 0.9 * (3 - 2)
  EXPECT_DOUBLE_EQ(s->p99, 2.98);
  EXPECT_DOUBLE_EQ(s->min, 1.0);
  EXPECT_DOUBLE_EQ(s->max, 3.0);
  EXPECT_DOUBLE_EQ(s->stddev, 1.0);
  EXPECT_EQ(s->count, 3u);
}

TEST(Stats, EvenCountInterpolatesTheMiddle) {
  auto s = summarize_ms({4.0, 1.0, 3.0, 2.0});
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ(s->p50, 2.5);
  EXPECT_NEAR(s->p95, 3.85, 1e-12);  // h = 2.85
  EXPECT_NEAR(s->p99, 3.97, 1e-12);  // h = 2.97
  EXPECT_DOUBLE_EQ(s->mean, 2.5);
  EXPECT_NEAR(s->stddev, 1.2909944487358056, 1e-12);
  auto ten = summarize_ms({10, 9, 8, 7, 6, 5, 4, 3, 2, 1});
  ASSERT_TRUE(ten.ok());
  EXPECT_DOUBLE_EQ(ten->p50, 5.5);
  EXPECT_NEAR(ten->p95, 9.55, 1e-12);  // h = 8.55
  EXPECT_NEAR(ten->p99, 9.91, 1e-12);  // h = 8.91
}

TEST(Stats, SingleSampleIsEveryStatistic) {
  auto s = summarize_ms({7.0});
  ASSERT_TRUE(s.ok());
  for (double v : {s->mean, s->p50, s->p95, s->p99, s->min, s->max}) EXPECT_DOUBLE_EQ(v, 7.0);
  EXPECT_DOUBLE_EQ(s->stddev, 0.0);
  EXPECT_EQ(s->count, 1u);
}

TEST(Stats, EmptyNonFiniteAndNegativeAreErrors) {
  auto empty = summarize_ms({});
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(empty.error().op, "bench::summarize_ms");
  EXPECT_FALSE(median({}).ok());
  EXPECT_FALSE(percentile({}, 50.0).ok());

  auto nan = summarize_ms({1.0, std::numeric_limits<double>::quiet_NaN()});
  ASSERT_FALSE(nan.ok());
  EXPECT_NE(nan.error().message.find("sample 1"), std::string::npos) << nan.error().to_string();
  EXPECT_FALSE(median({std::numeric_limits<double>::infinity()}).ok());
  EXPECT_FALSE(summarize_ms({1.0, -0.5}).ok());
}

TEST(Stats, MedianAndPercentile) {
  EXPECT_DOUBLE_EQ(median({5.0, 1.0, 3.0}).value(), 3.0);
  EXPECT_DOUBLE_EQ(median({5.0, 1.0, 3.0, 4.0}).value(), 3.5);
  EXPECT_DOUBLE_EQ(median({-2.0}).value(), -2.0);  // median (unlike latency) accepts negatives
  EXPECT_DOUBLE_EQ(percentile({1, 2, 3, 4, 5}, 0.0).value(), 1.0);
  EXPECT_DOUBLE_EQ(percentile({1, 2, 3, 4, 5}, 100.0).value(), 5.0);
  EXPECT_DOUBLE_EQ(percentile({1, 2, 3, 4, 5}, 25.0).value(), 2.0);
  EXPECT_DOUBLE_EQ(percentile({10, 20}, 30.0).value(), 13.0);
  EXPECT_FALSE(percentile({1.0}, 100.5).ok());
  EXPECT_FALSE(percentile({1.0}, -1.0).ok());
  EXPECT_FALSE(percentile({1.0}, std::numeric_limits<double>::quiet_NaN()).ok());
}

TEST(Stats, PercentilesAreOrderedOnAwkwardValues) {
  std::vector<double> samples;
  for (int i = 0; i < 997; ++i) samples.push_back(0.1 * i + 1e-9 * (i % 7));
  auto s = summarize_ms(samples);
  ASSERT_TRUE(s.ok());
  EXPECT_LE(s->min, s->p50);
  EXPECT_LE(s->p50, s->p95);
  EXPECT_LE(s->p95, s->p99);
  EXPECT_LE(s->p99, s->max);
  EXPECT_LE(s->min, s->mean);
  EXPECT_LE(s->mean, s->max);
}

// ---- timing ----

TEST(Timer, StopwatchMeasuresAtLeastTheSleep) {
  Stopwatch watch;
  const double t0 = now_seconds();
  std::this_thread::sleep_for(std::chrono::milliseconds(3));  // sleeps at least this long
  EXPECT_GE(watch.elapsed_ms(), 3.0);
  EXPECT_GE(now_seconds() - t0, 0.003);
  const double lap = watch.lap_ms();
  EXPECT_GE(lap, 3.0);
  EXPECT_GE(watch.elapsed_seconds(), 0.0);
  EXPECT_LT(watch.elapsed_ms(), lap + 1e6);  // the lap restarted the watch (loose, not a timing bound)
}

// ---- memory ----

TEST(Memory, RssIsPositiveAndPeakSeesATouchedAllocation) {
  auto current_before = current_host_rss_mb();
  auto peak_before = peak_host_rss_mb();
  ASSERT_TRUE(current_before.ok()) << current_before.error().to_string();
  ASSERT_TRUE(peak_before.ok()) << peak_before.error().to_string();
  EXPECT_GT(current_before.value(), 0.0);
  EXPECT_GT(peak_before.value(), 0.0);
  EXPECT_GE(peak_before.value() + 1.0, current_before.value());

  constexpr std::size_t kBytes = 64u << 20;
  std::vector<unsigned char> block(kBytes, 1);  // writes every page, so they become resident
  volatile unsigned char sink = block[kBytes / 2];
  (void)sink;
  auto current_during = current_host_rss_mb();
  auto peak_after = peak_host_rss_mb();
  ASSERT_TRUE(current_during.ok());
  ASSERT_TRUE(peak_after.ok());
  EXPECT_GE(current_during.value(), current_before.value() + 60.0);
  EXPECT_GE(peak_after.value(), current_before.value() + 60.0);
  EXPECT_GE(peak_after.value(), peak_before.value());
}

// ---- environment ----

TEST(Environment, CollectedFieldsAreNonEmpty) {
  const Environment env = collect_environment(test_build());
  EXPECT_FALSE(env.cpu.empty());
  EXPECT_GE(env.cores, 1);
  EXPECT_EQ(env.compiler, "gcc 12.2.0");
  EXPECT_EQ(env.flags, "-O3 -march=native");
  EXPECT_EQ(env.git_commit, "0123456789abcdef0123456789abcdef01234567");
  EXPECT_EQ(env.build_type, "release");
  EXPECT_FALSE(env.os.empty());
  EXPECT_TRUE(std::regex_match(env.timestamp, std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)"))) << env.timestamp;
#if defined(__linux__)
  EXPECT_EQ(env.os.rfind("Linux ", 0), 0u) << env.os;
#endif
#if defined(__linux__) && (defined(__x86_64__) || defined(__i386__))
  EXPECT_NE(env.cpu, "unknown") << "/proc/cpuinfo has a model name on x86 Linux";
#endif
}

TEST(Environment, MissingBuildFactsBecomeUnknown) {
  const Environment env = collect_environment(BuildInfo{});
  EXPECT_EQ(env.compiler, "unknown");
  EXPECT_EQ(env.flags, "unknown");
  EXPECT_EQ(env.git_commit, "unknown");
}

TEST(Environment, ParsesCpuinfoAndFallsBack) {
  std::istringstream x86("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14 96-Core Processor  \n"
                         "processor\t: 1\nmodel name\t: other\n");
  EXPECT_EQ(detail::parse_cpu_model(x86), "AMD EPYC 9R14 96-Core Processor");
  std::istringstream arm("processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n");
  EXPECT_EQ(detail::parse_cpu_model(arm), "");
  EXPECT_EQ(or_unknown(detail::parse_cpu_model(arm)), "unknown");
}

TEST(Environment, UtcTimestampFormat) {
  using std::chrono::system_clock;
  EXPECT_EQ(utc_timestamp(system_clock::from_time_t(0)), "1970-01-01T00:00:00Z");
  EXPECT_EQ(utc_timestamp(system_clock::from_time_t(1778312125)), "2026-05-09T07:35:25Z");
}

// ---- report ----

TEST(Report, SkeletonHasIdentityAndNullPlaceholders) {
  const Environment env = collect_environment(test_build());
  const json r = make_report_skeleton("mnist", test_build(), env, {"cpu", "cuda:0"});
  EXPECT_EQ(r["schema"], "ferrite-bench/1");
  EXPECT_EQ(r["benchmark"], "mnist");
  EXPECT_EQ(r["framework"]["name"], "ferrite");
  EXPECT_EQ(r["framework"]["version"], "0.1.0");
  EXPECT_EQ(r["status"], "success");
  EXPECT_EQ(r["available_devices"], json::array({"cpu", "cuda:0"}));
  EXPECT_TRUE(r["metrics"].is_null());
  EXPECT_TRUE(r["quality"].is_null());
  EXPECT_TRUE(r["device"].is_null());
  EXPECT_EQ(r["env"]["cpu"], env.cpu);
  EXPECT_EQ(r["env"]["cores"], env.cores);
  EXPECT_FALSE(r["env"].contains("hostname"));
}

TEST(Report, DeviceAndLatencyJson) {
  const json cuda = device_json(Device::cuda(1), "NVIDIA H100", 16);
  EXPECT_EQ(cuda["type"], "cuda");
  EXPECT_EQ(cuda["index"], 1);
  EXPECT_EQ(cuda["threads"], 16);
  EXPECT_FALSE(device_json(Device::cpu(), "", 1).contains("index"));
  EXPECT_EQ(device_json(Device::cpu(), "", 1)["name"], "unknown");
  const json lat = summarize_ms({1.0, 2.0}).value();
  EXPECT_DOUBLE_EQ(lat["p50"].get<double>(), 1.5);
  EXPECT_EQ(lat["count"], 2);
  EXPECT_EQ(device_strings({Device::cpu(), Device::cuda(0)}), (std::vector<std::string>{"cpu", "cuda:0"}));
}

TEST(Report, ErrorReportKeepsContextAndDropsNumbers) {
  json r = filled_success_report();
  const json e = error_report(std::move(r), make_error(ErrorCode::device_unavailable, "check_device", "cuda:0 is not available"));
  EXPECT_EQ(e["status"], "error");
  EXPECT_EQ(e["message"], "check_device: device_unavailable: cuda:0 is not available");
  EXPECT_EQ(e["error"]["code"], "device_unavailable");
  EXPECT_EQ(e["error"]["op"], "check_device");
  EXPECT_TRUE(e["metrics"].is_null());
  EXPECT_TRUE(e["quality"].is_null());
  EXPECT_EQ(e["config"]["batch_size"], 128);
  EXPECT_EQ(error_report(json::object(), "")["message"], "unspecified error");
}

TEST(Report, WriteReadRoundTripIsAtomic) {
  TempDir dir("roundtrip");
  const fs::path out = dir.path / "mnist.json";
  const json report = filled_success_report();
  ASSERT_TRUE(write_json(out, report).ok());
  auto back = read_json(out);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(back.value(), report);

  std::ifstream in(out);
  std::string first, second;
  std::getline(in, first);
  std::getline(in, second);
  EXPECT_EQ(first, "{");
  EXPECT_EQ(second.rfind("  \"", 0), 0u) << "pretty-printed with 2 spaces: " << second;

  json changed = report;
  changed["config"]["epochs"] = 9;
  ASSERT_TRUE(write_json(out, changed).ok());  // replaces the previous file
  EXPECT_EQ(read_json(out).value()["config"]["epochs"], 9);
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir.path)) {
    ++files;
    EXPECT_EQ(entry.path().filename(), "mnist.json") << "temporary file left behind";
  }
  EXPECT_EQ(files, 1);
}

TEST(Report, WriteFailsWithThePathNamed) {
  TempDir dir("unwritable");
  const fs::path missing_dir = dir.path / "no_such_dir" / "out.json";
  auto status = write_json(missing_dir, json{{"a", 1}});
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::io);
  EXPECT_NE(status.error().message.find(missing_dir.string()), std::string::npos) << status.error().to_string();

  auto onto_directory = write_json(dir.path, json{{"a", 1}});  // a directory cannot be replaced by a file
  ASSERT_FALSE(onto_directory.ok());
  EXPECT_EQ(onto_directory.error().code, ErrorCode::io);
  EXPECT_NE(onto_directory.error().message.find(dir.path.string()), std::string::npos);

  EXPECT_FALSE(read_json(dir.path / "absent.json").ok());
  std::ofstream(dir.path / "broken.json") << "{\"a\": ";
  auto broken = read_json(dir.path / "broken.json");
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.error().code, ErrorCode::parse);
}

TEST(Report, RefusesNonFiniteNumbersAndNamesThem) {
  TempDir dir("nonfinite");
  json report = filled_success_report();
  report["metrics"]["latency_ms"]["p99"] = std::numeric_limits<double>::quiet_NaN();
  report["quality"]["loss_per_epoch"][1] = -std::numeric_limits<double>::infinity();
  report["extra"]["a/b"] = std::numeric_limits<double>::infinity();
  EXPECT_EQ(non_finite_paths(report),
            (std::vector<std::string>{"/extra/a~1b", "/metrics/latency_ms/p99", "/quality/loss_per_epoch/1"}));
  const fs::path out = dir.path / "r.json";
  auto status = write_json(out, report);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(status.error().message.find("/metrics/latency_ms/p99"), std::string::npos) << status.error().to_string();
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(non_finite_paths(filled_success_report()).empty());
}

// The documents the harness writes are valid against the schema (scripts/validate_json.py needs
// python3 and the jsonschema package; a missing validator fails here, as in CI).
TEST(Report, WrittenDocumentsValidateAgainstTheSchema) {
  TempDir dir("schema");
  const fs::path success = dir.path / "success.json";
  ASSERT_TRUE(write_json(success, filled_success_report()).ok());
  EXPECT_EQ(run_validator(success), 0);

  const fs::path error = dir.path / "error.json";
  const json err = error_report(filled_success_report(),
                                make_error(ErrorCode::io, "idx::load", "cannot open 'train-images-idx3-ubyte.gz'"));
  ASSERT_TRUE(write_json(error, err).ok());
  EXPECT_EQ(run_validator(error), 0);

  // A skeleton whose metrics were never filled must not pass as a success.
  const fs::path unfilled = dir.path / "unfilled.json";
  const Environment env = collect_environment(test_build());
  ASSERT_TRUE(write_json(unfilled, make_report_skeleton("mnist", test_build(), env, {"cpu"})).ok());
  EXPECT_EQ(run_validator(unfilled, /*expect_invalid=*/true), 0);
}

// No exception reaches std::terminate (issue 16, item 4): run_guarded turns each into an error.
TEST(Report, RunGuardedTurnsExceptionsIntoErrors) {
  using ferrite::ErrorCode;
  auto oom = ferrite::bench::run_guarded("prog", []() -> ferrite::Result<ferrite::bench::RunSections> { throw std::bad_alloc(); });
  ASSERT_FALSE(oom.ok());
  EXPECT_EQ(oom.error().code, ErrorCode::out_of_memory);
  EXPECT_EQ(oom.error().op, "prog");
  auto other = ferrite::bench::run_guarded("prog", []() -> ferrite::Result<ferrite::bench::RunSections> {
    throw std::runtime_error("boom");
  });
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, ErrorCode::internal);
  EXPECT_NE(other.error().message.find("boom"), std::string::npos);
  auto odd = ferrite::bench::run_guarded("prog", []() -> ferrite::Result<ferrite::bench::RunSections> { throw 42; });
  ASSERT_FALSE(odd.ok());
  EXPECT_EQ(odd.error().code, ErrorCode::internal);
  auto fine = ferrite::bench::run_guarded("prog", [] { return ferrite::Result<ferrite::bench::RunSections>(ferrite::bench::RunSections{}); });
  EXPECT_TRUE(fine.ok());
}
