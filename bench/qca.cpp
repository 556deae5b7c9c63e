// bench/qca: the QCA simulation step (shared/specs/qca-step.md) — a U-Net law applied to every cell
// of an H x W lattice of complex d-vectors, then per-cell renormalization — timed over many steps,
// reported as one ferrite-bench/1 JSON document (docs/json-schema.md).
//
//   ./build/bench/qca                                   128x128, d 8, hidden 32, unet-unitary, 100 steps
//   ./build/bench/qca --grid 64 --save-weights w.safetensors --save-state s.safetensors
//   python scripts/pytorch/qca.py --weights w.safetensors --initial-state s.safetensors --save-state t.safetensors
//   ./build/bench/qca --grid 64 --weights w.safetensors --initial-state s.safetensors --reference-state t.safetensors
//
// The timed steps start from the initial state (warm-up steps run on a copy). --save-state writes
// "psi0" (initial) and "psi" (after --steps steps), f32 [1, H, W, d, 2]; --reference-state compares
// "psi" of another run (same steps) by relative L2 error.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <optional>
#include <string>
#include <vector>

#include "build_info.hpp"
#include "ferrite/backend/cpu/threading.hpp"
#include "ferrite/backend/devices.hpp"
#include "ferrite/bench/environment.hpp"
#include "ferrite/bench/memory.hpp"
#include "ferrite/bench/report.hpp"
#include "ferrite/bench/stats.hpp"
#include "ferrite/bench/timer.hpp"
#include "ferrite/io/safetensors.hpp"
#include "ferrite/models/qca.hpp"

using namespace ferrite;
using json = nlohmann::json;

namespace {

struct Config {
  std::int64_t grid = 128;
  std::int64_t d_state = 8;
  std::int64_t hidden = 32;
  std::string law = "unet-unitary";
  double gamma = 0.01;
  std::int64_t steps = 100;
  std::int64_t warmup_steps = 10;
  std::string init = "complex_noise";
  std::uint64_t seed = 42;
  std::string device = "cpu";
  int threads = 0;
  std::string weights;
  bool small_outc = true;
  std::string save_weights;
  std::string initial_state;
  std::string save_state;
  std::string reference_state;
  std::string json_path;
  bool pin = true;
};

json config_json(const Config& c) {
  return {{"grid", c.grid}, {"d_state", c.d_state}, {"hidden", c.hidden}, {"law", c.law}, {"gamma", c.gamma},
          {"steps", c.steps}, {"warmup_steps", c.warmup_steps}, {"init", c.init}, {"seed", c.seed},
          {"device", c.device}, {"threads", c.threads}, {"weights", c.weights}, {"small_outc", c.small_outc},
          {"save_weights", c.save_weights}, {"initial_state", c.initial_state}, {"save_state", c.save_state},
          {"reference_state", c.reference_state}, {"pin_threads", c.pin}};
}

bench::BuildInfo build_info() {
  return {FERRITE_VERSION, FERRITE_COMPILER, FERRITE_FLAGS, FERRITE_GIT_COMMIT, FERRITE_BUILD_TYPE,
          FERRITE_CUDA_BUILT != 0};
}

Result<Tensor> load_tensor(const std::string& path, const std::string& name) {
  FE_TRY_ASSIGN(auto file, io::load_safetensors(path));
  return file.take(name);
}

struct RunOutput {
  json device, metrics, quality, extra;
  std::vector<std::string> summary;
};

Result<RunOutput> run(const Config& c, int threads) {
  FE_TRY_ASSIGN(Device device, Device::parse(c.device));
  FE_TRY(check_device(device));
  FE_TRY_ASSIGN(const models::QcaLaw law_kind, models::parse_qca_law(c.law));
  FE_TRY_ASSIGN(const models::QcaInit init, models::parse_qca_init(c.init));
  FE_TRY(models::check_qca_grid(c.grid, c.grid));
  FE_TRY_ASSIGN(auto law, models::QcaUnet::create(c.d_state, c.hidden));
  if (c.weights.empty())
    law.init_default(c.seed, c.small_outc);
  else
    FE_TRY(law.load(c.weights));
  if (!c.save_weights.empty()) FE_TRY(law.save(c.save_weights));

  Tensor psi0;
  if (c.initial_state.empty()) {
    FE_TRY_ASSIGN(psi0, models::make_qca_state(init, 1, c.grid, c.grid, c.d_state, c.seed));
  } else {
    FE_TRY_ASSIGN(psi0, load_tensor(c.initial_state, "psi0"));
    FE_TRY(models::check_qca_state(psi0, c.d_state, "qca --initial-state"));
    if (psi0.dim(0) != 1 || psi0.dim(1) != c.grid || psi0.dim(2) != c.grid)
      return make_error(ErrorCode::shape_mismatch, "qca --initial-state",
                        "the state's grid differs from --grid " + std::to_string(c.grid), psi0.describe());
  }
  const float gamma = static_cast<float>(c.gamma);
  models::QcaScratch scratch;

  {  // warm-up on a copy: page faults, TBB threads, caches, scratch buffers
    FE_TRY_ASSIGN(Tensor warm, psi0.clone());
    for (std::int64_t s = 0; s < c.warmup_steps; ++s) FE_TRY(models::qca_step(law, law_kind, gamma, warm, scratch));
  }

  FE_TRY_ASSIGN(Tensor psi, psi0.clone());
  std::vector<double> step_ms;
  step_ms.reserve(static_cast<std::size_t>(c.steps));
  bench::Stopwatch total;
  bench::Stopwatch watch;
  for (std::int64_t s = 0; s < c.steps; ++s) {
    FE_TRY(models::qca_step(law, law_kind, gamma, psi, scratch));
    step_ms.push_back(watch.lap_ms());
  }
  const double seconds = total.elapsed_seconds();

  const double max_norm_error = models::qca_max_norm_error(psi);
  const double energy = models::qca_energy(psi);
  std::optional<double> rel_l2;
  if (!c.reference_state.empty()) {
    FE_TRY_ASSIGN(Tensor ref, load_tensor(c.reference_state, "psi"));
    FE_TRY_ASSIGN(rel_l2, models::relative_l2_error(psi, ref));
  }
  if (!c.save_state.empty())
    FE_TRY(io::save_safetensors(c.save_state, {{"psi0", &psi0}, {"psi", &psi}},
                                {{"steps", std::to_string(c.steps)}, {"law", c.law}, {"gamma", fmt::format("{}", c.gamma)},
                                 {"layout", "f32 [B, H, W, d, 2] = view_as_real(complex64 psi)"}, {"producer", "ferrite"}}));
  if (!std::isfinite(energy) || !std::isfinite(max_norm_error))
    return make_error(ErrorCode::internal, "qca", "the state became non-finite");

  FE_TRY_ASSIGN(const auto latency, bench::summarize_ms(step_ms));
  FE_TRY_ASSIGN(const double peak_rss, bench::peak_host_rss_mb());
  const double steps_per_s = double(c.steps) / seconds;
  const double flops = law.flops(c.grid, c.grid);

  RunOutput out;
  out.device = bench::device_json(device, bench::cpu_model_name(), threads);
  out.metrics = {{"throughput", bench::throughput_json(steps_per_s, "steps/s", "timed steps / their total wall time")},
                 {"latency_ms", latency},
                 {"peak_memory_mb", {{"host", peak_rss}, {"device", nullptr}}},
                 {"flops_per_step", flops},
                 {"gflops", flops * steps_per_s / 1e9},
                 {"cells_per_s", steps_per_s * double(c.grid * c.grid)},
                 {"total_seconds", seconds}};
  out.quality = {{"loss_per_epoch", {energy}}, {"final_loss", energy},  // the schema's required slots: energy
                 {"train_accuracy", nullptr}, {"test_accuracy", nullptr},
                 {"energy", energy}, {"max_norm_error", max_norm_error},
                 {"rel_l2_vs_reference", rel_l2 ? json(*rel_l2) : json(nullptr)}};
  out.extra = {{"model", "qca unet (Aetheria 2-level U-Net)"}, {"parameters", law.parameter_count()},
               {"cells", c.grid * c.grid},
               {"note", "quality.loss_per_epoch / final_loss hold the energy mean|psi|^2 (the schema requires "
                        "them; a simulation has no loss). flops_per_step counts the convolutions only."}};

  auto& s = out.summary;
  s.push_back(fmt::format("ferrite bench/qca — {}x{}, d {}, hidden {}, law {}, gamma {:g}, {} steps, {} thread(s)",
                          c.grid, c.grid, c.d_state, c.hidden, c.law, c.gamma, c.steps, threads));
  s.push_back(fmt::format("throughput   {:.2f} steps/s, {:.1f} GFLOP/s ({:.2f} GFLOP/step)", steps_per_s,
                          flops * steps_per_s / 1e9, flops / 1e9));
  s.push_back(fmt::format("step latency p50 {:.2f} ms, p95 {:.2f} ms, min {:.2f} ms", latency.p50, latency.p95, latency.min));
  s.push_back(fmt::format("energy       {:.8f} (1/d = {:.8f}), max |norm - 1| {:.3g}", energy, 1.0 / double(c.d_state),
                          max_norm_error));
  if (rel_l2) s.push_back(fmt::format("vs reference relative L2 error {:.3g}", *rel_l2));
  s.push_back(fmt::format("memory       peak host {:.1f} MiB", peak_rss));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  CLI::App app{"ferrite bench/qca: time the QCA U-Net law step and report speed and accuracy as JSON"};
  app.add_option("--grid", c.grid, "lattice side (H = W, multiple of 4)")->check(CLI::PositiveNumber);
  app.add_option("--d-state", c.d_state, "complex components per cell")->check(CLI::PositiveNumber);
  app.add_option("--hidden", c.hidden, "U-Net base width h")->check(CLI::PositiveNumber);
  app.add_option("--law", c.law, "unet | unet-unitary")->check(CLI::IsMember({"unet", "unet-unitary"}));
  app.add_option("--gamma", c.gamma, "decay per step");
  app.add_option("--steps", c.steps, "timed steps")->check(CLI::PositiveNumber);
  app.add_option("--warmup-steps", c.warmup_steps, "untimed steps before (on a copy of the state)")->check(CLI::NonNegativeNumber);
  app.add_option("--init", c.init, "complex_noise | random")->check(CLI::IsMember({"complex_noise", "random"}));
  app.add_option("--seed", c.seed, "seed for weights and initial state");
  app.add_option("--device", c.device, "cpu | cuda | cuda:N");
  app.add_option("--threads", c.threads, "CPU threads (0 = all)")->check(CLI::NonNegativeNumber);
  app.add_option("--weights", c.weights, "load the law (safetensors, PyTorch state_dict names)");
  app.add_flag("--small-outc,!--no-small-outc", c.small_outc, "default init with outc.weight ~ N(0, 1e-5^2) (Aetheria's; default on)");
  app.add_option("--save-weights", c.save_weights, "write the law's weights (safetensors)");
  app.add_option("--initial-state", c.initial_state, "start from tensor 'psi0' of this safetensors file");
  app.add_option("--save-state", c.save_state, "write 'psi0' and 'psi' (after --steps steps)");
  app.add_option("--reference-state", c.reference_state, "compare 'psi' of this file (same steps) with ours");
  app.add_option("--json", c.json_path, "write the ferrite-bench/1 JSON report here");
  app.add_flag("--pin,!--no-pin", c.pin, "pin threads to distinct CPUs (default on)");
  CLI11_PARSE(app, argc, argv);

  cpu::ThreadLimit limit(c.threads);
  std::optional<cpu::ThreadPinning> pinning;
  if (c.pin) pinning.emplace();
  const auto env = bench::collect_environment(build_info());
  json report = bench::make_report_skeleton("qca", build_info(), env, bench::device_strings(available_devices()));
  report["config"] = config_json(c);

  auto result = run(c, limit.threads());
  int status = 0;
  if (result.ok()) {
    report["device"] = result->device;
    report["metrics"] = result->metrics;
    report["quality"] = result->quality;
    report["extra"] = result->extra;
    for (const auto& line : result->summary) fmt::print("{}\n", line);
  } else {
    fmt::print(stderr, "qca: error: {}\n", result.error().to_string());
    report["device"] = bench::device_json(Device::parse(c.device).ok() ? *Device::parse(c.device) : Device::cpu(),
                                          "unavailable", limit.threads());
    report = bench::error_report(std::move(report), result.error());
    status = 1;
  }
  if (!c.json_path.empty()) {
    if (auto w = bench::write_json(c.json_path, report); !w.ok()) {
      fmt::print(stderr, "qca: error: {}\n", w.error().to_string());
      return 1;
    }
    if (status == 0) fmt::print("json         {}\n", c.json_path);
  }
  return status;
}
