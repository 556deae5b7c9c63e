// bench/qca: the QCA simulation step (shared/specs/qca-step.md) — a U-Net law applied to every cell
// of an H x W lattice of complex d-vectors, then per-cell renormalization — timed over many steps,
// reported as one ferrite-bench/1 JSON document (docs/json-schema.md).
//
//   ./build/bench/qca                                   128x128, d 8, hidden 32, unet-unitary, 100 steps
//   ./build/bench/qca --device cuda [--tf32] [--gpu-conv im2col|winograd]   the same code on the GPU (only the Context differs)
//   ./build/bench/qca --grid 64 --save-weights w.safetensors --save-state s.safetensors
//   python scripts/pytorch/qca.py --weights w.safetensors --initial-state s.safetensors --save-state t.safetensors
//   ./build/bench/qca --grid 64 --weights w.safetensors --initial-state s.safetensors --reference-state t.safetensors
//
// The timed steps start from the initial state (warm-up steps run on a copy). --save-state writes
// "psi0" (initial), "psi" (after --steps steps) and "psi.<k>" (after k steps, --save-steps k,...), f32
// [1, H, W, d, 2]; --reference-state compares "psi" and every "psi.<k>" of another run from the same start
// by relative L2 error (quality.rel_l2_steps / rel_l2_by_step; copying the states out of the timed loop
// is not timed). --density-png writes the final density sum_c |psi_c|^2 per cell as a PNG (io/png.hpp):
// after any step every cell has norm 1, so expect a flat picture (its range is in the PNG's text).
//
// Bad input is an error with an error JSON and exit status 1, never a crash: a grid that is not a multiple
// of 4, a weights file made for another --d-state / --hidden (the message names the ones it was made
// for), non-finite numbers in a weights or state file, a state of another shape.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "build_info.hpp"
#include "ferrite/backend/cpu/threading.hpp"
#include "ferrite/backend/cuda/memory.hpp"
#include "cli.hpp"  // bench/cli.hpp: the programs' command-line helpers (CLI11 is theirs, not the library's)
#include "ferrite/bench/paths.hpp"
#include "ferrite/bench/profile.hpp"
#include "ferrite/backend/devices.hpp"
#include "ferrite/bench/cuda_device.hpp"
#include "ferrite/bench/environment.hpp"
#include "ferrite/bench/memory.hpp"
#include "ferrite/bench/report.hpp"
#include "ferrite/bench/stats.hpp"
#include "ferrite/bench/timer.hpp"
#include "ferrite/io/png.hpp"
#include "ferrite/io/safetensors.hpp"
#include "ferrite/models/qca.hpp"

using namespace ferrite;
using json = nlohmann::json;

namespace {

// Bounds of the size flags (CLI11 names the bound when a value is outside it). Far above any real
// run (a 16384^2 lattice of 1024 components is 2 TiB); they exist so that no product of flags can
// overflow the size arithmetic downstream (--grid 2^32 once wrapped the state's element count).
constexpr std::int64_t kMaxGrid = 16384;
constexpr std::int64_t kMaxDState = 1024;
constexpr std::int64_t kMaxHidden = 4096;
constexpr std::int64_t kMaxSteps = 10'000'000;  // --steps, --warmup-steps, --profile (a timing per step)

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
  std::string density_png;
  std::string density_colormap = "heat";
  std::vector<std::int64_t> save_steps;
  bool pin = true;
  bool cuda_graphs = false;  // --device cuda: replay each step as one CUDA graph (not yet on the generic core)
  bool tf32 = false;        // --device cuda: TF32 tensor cores in the SGEMMs (off: FP32 parity)
  std::string gpu_conv = "winograd";  // --device cuda: 3x3 convolutions as winograd | winograd-fused | im2col
  std::int64_t profile_steps = 0;     // per-op time breakdown over this many extra steps (any device)
};

json config_json(const Config& c) {
  return {{"grid", c.grid}, {"d_state", c.d_state}, {"hidden", c.hidden}, {"law", c.law}, {"gamma", c.gamma},
          {"steps", c.steps}, {"warmup_steps", c.warmup_steps}, {"init", c.init}, {"seed", c.seed},
          {"device", c.device}, {"threads", c.threads}, {"weights", c.weights}, {"small_outc", c.small_outc},
          {"save_weights", c.save_weights}, {"initial_state", c.initial_state}, {"save_state", c.save_state},
          {"reference_state", c.reference_state}, {"density_png", c.density_png},
          {"density_colormap", c.density_colormap}, {"save_steps", c.save_steps}, {"pin_threads", c.pin},
          {"cuda_graphs", c.cuda_graphs}, {"tf32", c.tf32}, {"gpu_conv", c.gpu_conv}, {"profile_steps", c.profile_steps}};
}

bench::BuildInfo build_info() {
  return {FERRITE_VERSION, FERRITE_COMPILER, FERRITE_FLAGS, FERRITE_GIT_COMMIT, FERRITE_BUILD_TYPE,
          FERRITE_CUDA_BUILT != 0};
}

using nn::check_finite;  // the one finite check of every weight and state loader (nn/state_dict.hpp)

// Tensor `name` of a safetensors file, f32 and finite; errors name the file.
Result<Tensor> load_tensor(const std::string& path, const std::string& name, const std::string& op) {
  FE_TRY_ASSIGN(auto file, io::load_safetensors(path));
  auto t = file.take(name);
  if (!t.ok()) return make_error(ErrorCode::invalid_argument, op, path + ": " + t.error().message);
  if (t->dtype() != DType::f32)
    return make_error(ErrorCode::invalid_argument, op, path + ": '" + name + "' must be floating point", t->describe());
  FE_TRY(check_finite(*t, op, path + ": '" + name + "'"));
  return t;
}

// Loads the law. A file made for another d_state / hidden would fail on every tensor's shape; the
// first convolution, inc.conv_block.0.weight [h, 2d, 3, 3], tells which ones it was made for.
Status load_law(models::QcaUnet& law, const std::string& path) {
  constexpr const char* op = "qca --weights";
  FE_TRY_ASSIGN(auto file, io::load_safetensors(path));
  if (const Tensor* first = file.find("inc.conv_block.0.weight"); first && first->shape().rank() == 4) {
    const std::int64_t h = first->dim(0), d2 = first->dim(1);
    if ((h != law.hidden() || d2 != 2 * law.d_state()) && d2 % 2 == 0)
      return make_error(ErrorCode::shape_mismatch, op,
                        path + " holds a law for --d-state " + std::to_string(d2 / 2) + " --hidden " + std::to_string(h) +
                            " (its inc.conv_block.0.weight is [hidden, 2*d_state, 3, 3]), but this run has --d-state " +
                            std::to_string(law.d_state()) + " --hidden " + std::to_string(law.hidden()),
                        first->shape().to_string());
  }
  return law.load(file, path);  // nn::load_parameters: names, shapes and finite values
}

// A reference trajectory: {k: psi after k steps}, from 'psi' (k = steps) and any 'psi.<k>' (1 <= k <= steps).
Result<std::map<std::int64_t, Tensor>> load_reference(const std::string& path, std::int64_t steps, const Shape& shape) {
  constexpr const char* op = "qca --reference-state";
  FE_TRY_ASSIGN(auto file, io::load_safetensors(path));
  std::map<std::int64_t, Tensor> out;
  for (auto& [name, t] : file.tensors) {
    std::int64_t k = 0;
    if (name == "psi") {
      k = steps;
    } else if (name.rfind("psi.", 0) == 0 && name.size() > 4 && name.size() < 15 &&
               std::all_of(name.begin() + 4, name.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
      k = std::stoll(name.substr(4));
      if (k < 1 || k > steps)
        return make_error(ErrorCode::invalid_argument, op,
                          path + ": '" + name + "' is a state after " + std::to_string(k) + " steps, this run makes " +
                              std::to_string(steps) + " (--steps)");
    } else {
      continue;  // psi0 and anything else
    }
    if (t.dtype() != DType::f32 || t.shape() != shape)
      return make_error(ErrorCode::shape_mismatch, op,
                        path + ": '" + name + "' is " + t.describe() + ", this run's state is f32 " + shape.to_string() +
                            " (same --grid and --d-state needed)");
    FE_TRY(check_finite(t, op, path + ": '" + name + "'"));
    if (name != "psi" && out.count(k)) continue;  // 'psi' wins over a 'psi.<steps>'
    out.insert_or_assign(k, std::move(t));
  }
  if (!out.count(steps) || file.find("psi") == nullptr)
    return make_error(ErrorCode::invalid_argument, op, path + ": no tensor named 'psi' (the state after --steps steps)");
  return out;
}

struct DensityImage {
  double lo = 0, hi = 0;
};

// Density sum_c |psi_c|^2 of sample 0 as a PNG, mapped linearly from [min, max]. After any step every
// cell has norm 1, so the map is flat up to rounding: when max - min <= 1e-6 * max the range becomes
// [0, max] (a uniform picture), rather than stretching rounding noise over the whole scale.
Result<DensityImage> write_density_png(const Tensor& psi, const Config& c) {
  FE_TRY_ASSIGN(const Tensor density, models::qca_density(psi));
  const std::int64_t H = psi.dim(1), W = psi.dim(2);
  const std::span<const float> values(density.data<float>(), static_cast<std::size_t>(H * W));
  const auto [lo_it, hi_it] = std::minmax_element(values.begin(), values.end());
  DensityImage out{*lo_it, *hi_it};
  float lo = *lo_it, hi = *hi_it;
  if (!(hi - lo > 1e-6f * hi)) {  // flat (densities are >= 0): show it flat
    lo = 0.f;
    hi = std::max(hi, 1e-30f);
  }
  const auto map = c.density_colormap == "gray" ? io::PngColormap::gray : io::PngColormap::heat;
  FE_TRY(io::write_png_heatmap(
      c.density_png, values, W, H, lo, hi, map,
      {{"Title", "ferrite bench/qca: density sum_c |psi_c|^2 per cell"},
       {"Comment", fmt::format("{}x{}, d {}, hidden {}, law {}, after {} steps; colour scale [{:.9g}, {:.9g}] "
                               "(density min {:.9g}, max {:.9g})", H, W, c.d_state, c.hidden, c.law, c.steps, lo, hi,
                               out.lo, out.hi)},
       {"Software", "ferrite"}}));
  return out;
}

// The timed loop's engine: the one step (models::qca_step) on the context's device. step() returns
// when the step has finished (on a GPU it synchronizes), so per-step wall times are step latencies.
class Engine {
 public:
  static Result<Engine> create(const Config& c, Device device, models::QcaUnet& law, models::QcaLaw kind) {
    Engine e;
    e.law_ = &law;
    e.kind_ = kind;
    e.gamma_ = static_cast<float>(c.gamma);
    e.algorithm_ = c.gpu_conv == "im2col" ? ConvAlgorithm::direct : ConvAlgorithm::automatic;
    FE_TRY_ASSIGN(e.ctx_, Context::create(device, {c.tf32}));
    FE_TRY(law.to(e.ctx_));
    if (device.is_cuda() && e.algorithm_ == ConvAlgorithm::direct) law.drop_winograd_weights();
    return e;
  }
  // The device state starts from `psi` (on the CPU the state is psi itself).
  Status load(Tensor& psi) {
    if (!ctx_.is_cuda()) return {};
    FE_TRY_ASSIGN(state_, psi.to(ctx_.device()));
    return {};
  }
  Status step(Tensor& psi) {
    FE_TRY(models::qca_step(ctx_, *law_, kind_, gamma_, ctx_.is_cuda() ? state_ : psi));
    return ctx_.synchronize();
  }
  // The current state into out.
  Status read(const Tensor& psi, Tensor& out) const {
    if (ctx_.is_cuda()) return out.copy_from(state_);
    if (&out != &psi) std::memcpy(out.raw_data(), psi.raw_data(), psi.nbytes());
    return {};
  }
  Context& context() { return ctx_; }
  bool cuda() const { return ctx_.is_cuda(); }

 private:
  Engine() : ctx_(Context::cpu()) {}
  models::QcaUnet* law_ = nullptr;
  models::QcaLaw kind_ = models::QcaLaw::unet_unitary;
  float gamma_ = 0.01f;
  ConvAlgorithm algorithm_ = ConvAlgorithm::automatic;
  Context ctx_;
  Tensor state_;  // the GPU's copy of psi
};

// Every file the run reads, and every file it writes but the JSON report (checked in main).
std::vector<bench::NamedPath> input_paths(const Config& c) {
  return {{"--weights", c.weights}, {"--initial-state", c.initial_state}, {"--reference-state", c.reference_state}};
}
std::vector<bench::NamedPath> output_paths(const Config& c) {
  return {{"--save-weights", c.save_weights}, {"--save-state", c.save_state}, {"--density-png", c.density_png}};
}

Result<bench::RunSections> run(const Config& c, int threads) {
  FE_TRY(bench::check_output_paths("bench/qca", input_paths(c), output_paths(c)));
  FE_TRY_ASSIGN(Device device, Device::parse(c.device));
  FE_TRY(check_device(device));
  if (c.cuda_graphs)
    return make_error(ErrorCode::unsupported, "bench/qca",
                      "--cuda-graphs: whole-step CUDA graph capture is not yet implemented on the device-generic core "
                      "(steps run eagerly on the stream); run without it");
  if (c.gpu_conv != "winograd" && c.gpu_conv != "im2col")
    return make_error(ErrorCode::invalid_argument, "qca --gpu-conv", "expected winograd or im2col, got '" + c.gpu_conv + "'");
  FE_TRY_ASSIGN(const models::QcaLaw law_kind, models::parse_qca_law(c.law));
  FE_TRY_ASSIGN(const models::QcaInit init, models::parse_qca_init(c.init));
  FE_TRY(models::check_qca_grid(c.grid, c.grid));
  FE_TRY_ASSIGN(auto law, models::QcaUnet::create(c.d_state, c.hidden));
  if (c.weights.empty())
    law.init_default(c.seed, c.small_outc);
  else
    FE_TRY(load_law(law, c.weights));
  if (!c.save_weights.empty()) FE_TRY(law.save(c.save_weights));

  Tensor psi0;
  if (c.initial_state.empty()) {
    FE_TRY_ASSIGN(psi0, models::make_qca_state(init, 1, c.grid, c.grid, c.d_state, c.seed));
  } else {
    FE_TRY_ASSIGN(psi0, load_tensor(c.initial_state, "psi0", "qca --initial-state"));
    FE_TRY(models::check_qca_state(psi0, c.d_state, "qca --initial-state"));
    if (psi0.dim(0) != 1)  // (once reported as a grid mismatch)
      return make_error(ErrorCode::shape_mismatch, "qca --initial-state",
                        "the state holds a batch of " + std::to_string(psi0.dim(0)) +
                            " lattices; bench/qca steps one ([1, grid, grid, d_state, 2])",
                        psi0.describe());
    if (psi0.dim(1) != c.grid || psi0.dim(2) != c.grid)
      return make_error(ErrorCode::shape_mismatch, "qca --initial-state",
                        "the state's grid differs from --grid " + std::to_string(c.grid), psi0.describe());
  }
  FE_TRY_ASSIGN(Engine engine, Engine::create(c, device, law, law_kind));

  json profile = nullptr;
  {  // warm-up on a copy: page faults, TBB threads, caches, the workspace; on the GPU also cuBLAS's kernels
    FE_TRY_ASSIGN(Tensor warm, psi0.clone());
    FE_TRY(engine.load(warm));
    const std::int64_t warmup = engine.cuda() ? std::max<std::int64_t>(c.warmup_steps, 2) : c.warmup_steps;
    for (std::int64_t s = 0; s < warmup; ++s) FE_TRY(engine.step(warm));
    // The per-op breakdown (every op synchronizes around itself), untimed, before the timed steps.
    if (c.profile_steps > 0) {
      OpProfiler profiler;
      engine.context().set_profiler(&profiler);
      for (std::int64_t s = 0; s < c.profile_steps; ++s) FE_TRY(engine.step(warm));
      engine.context().set_profiler(nullptr);
      profile = bench::profile_json(profiler, c.profile_steps);
    }
  }

  // The reference (read before timing, so a bad file fails fast): 'psi' after --steps steps, and
  // 'psi.<k>' after k steps for any k it holds.
  std::map<std::int64_t, Tensor> reference;
  if (!c.reference_state.empty()) {
    FE_TRY_ASSIGN(reference, load_reference(c.reference_state, c.steps, psi0.shape()));
  }
  // States to keep from inside the timed loop (--save-steps and the reference's steps), allocated up front;
  // the copies are excluded from the timings.
  std::map<std::int64_t, Tensor> kept;
  for (const std::int64_t k : c.save_steps) {
    if (k < 1 || k > c.steps)
      return make_error(ErrorCode::invalid_argument, "qca --save-steps",
                        "step " + std::to_string(k) + " is outside 1.." + std::to_string(c.steps) + " (--steps)");
    kept.emplace(k, Tensor());
  }
  for (const auto& r : reference) kept.emplace(r.first, Tensor());
  for (auto& entry : kept) {
    FE_TRY_ASSIGN(entry.second, Tensor::empty(psi0.shape()));
  }

  FE_TRY_ASSIGN(Tensor psi, psi0.clone());
  FE_TRY(engine.load(psi));
  if (engine.cuda()) FE_TRY(cuda::reset_peak_memory_stats(device.index));
  std::vector<double> step_ms;
  step_ms.reserve(static_cast<std::size_t>(c.steps));
  double excluded_seconds = 0;
  bench::Stopwatch total;
  bench::Stopwatch watch;
  for (std::int64_t s = 0; s < c.steps; ++s) {
    FE_TRY(engine.step(psi));
    step_ms.push_back(watch.lap_ms());
    if (auto it = kept.find(s + 1); it != kept.end()) {
      FE_TRY(engine.read(psi, it->second));
      excluded_seconds += watch.lap_ms() / 1e3;
    }
  }
  const double seconds = total.elapsed_seconds() - excluded_seconds;
  FE_TRY(engine.read(psi, psi));  // the GPU's final state to the host

  const double max_norm_error = models::qca_max_norm_error(psi);
  const double energy = models::qca_energy(psi);
  std::optional<double> rel_l2;
  std::vector<std::int64_t> rel_l2_steps;
  std::vector<double> rel_l2_by_step;
  for (const auto& [k, ref] : reference) {
    FE_TRY_ASSIGN(const double r, models::relative_l2_error(kept.at(k), ref));
    rel_l2_steps.push_back(k);
    rel_l2_by_step.push_back(r);
    if (k == c.steps) rel_l2 = r;
  }
  if (!c.save_state.empty()) {
    io::TensorRefs refs = {{"psi0", &psi0}, {"psi", &psi}};
    for (const auto& [k, t] : kept)
      if (std::find(c.save_steps.begin(), c.save_steps.end(), k) != c.save_steps.end())
        refs.emplace_back("psi." + std::to_string(k), &t);
    FE_TRY(io::save_safetensors(c.save_state, refs,
                                {{"steps", std::to_string(c.steps)}, {"law", c.law}, {"gamma", fmt::format("{}", c.gamma)},
                                 {"layout", "f32 [B, H, W, d, 2] = view_as_real(complex64 psi); psi.<k>: after k steps"},
                                 {"producer", "ferrite"}}));
  }
  if (!std::isfinite(energy) || !std::isfinite(max_norm_error))
    return make_error(ErrorCode::internal, "qca", "the state became non-finite");
  std::optional<DensityImage> density;
  if (!c.density_png.empty()) {
    FE_TRY_ASSIGN(density, write_density_png(psi, c));
  }

  FE_TRY_ASSIGN(const auto latency, bench::summarize_ms(step_ms));
  FE_TRY_ASSIGN(const double peak_rss, bench::peak_host_rss_mb());
  const double steps_per_s = double(c.steps) / seconds;
  const double flops = law.flops(c.grid, c.grid);

  bench::RunSections out;
  json peak_device = nullptr;
  if (engine.cuda()) {
    FE_TRY_ASSIGN(const cuda::DeviceInfo info, cuda::device_info(device.index));
    FE_TRY_ASSIGN(const cuda::MemoryStats memory, cuda::memory_stats(device.index));
    out.device = bench::cuda_device_json(device, info, threads);
    peak_device = cuda::bytes_to_mib(memory.peak_allocated_bytes);
    out.backend = {{"conv3x3", c.gpu_conv == "im2col" ? "im2col kernel + cublasSgemm"
                                                      : "Winograd F(2x2,3x3): transform kernels + cublasSgemmStridedBatched"},
                   {"cuda_graphs", false}, {"tf32", c.tf32}};
  } else {
    out.device = bench::device_json(device, bench::cpu_model_name(), threads);
  }
  out.metrics = {{"throughput", bench::throughput_json(steps_per_s, "steps/s", "timed steps / their total wall time")},
                 {"latency_ms", latency},
                 {"peak_memory_mb", {{"host", peak_rss}, {"device", peak_device}}},
                 {"flops_per_step", flops},
                 {"gflops", flops * steps_per_s / 1e9},
                 {"cells_per_s", steps_per_s * double(c.grid * c.grid)},
                 {"total_seconds", seconds}};
  out.quality = {{"loss_per_epoch", nullptr}, {"final_loss", nullptr},  // a simulation trains nothing
                 {"train_accuracy", nullptr}, {"test_accuracy", nullptr},
                 {"energy", energy}, {"max_norm_error", max_norm_error},
                 {"rel_l2_vs_reference", rel_l2 ? json(*rel_l2) : json(nullptr)}};
  if (!rel_l2_steps.empty()) {  // the error's growth with the horizon (chaotic laws amplify rounding)
    out.quality["rel_l2_steps"] = rel_l2_steps;
    out.quality["rel_l2_by_step"] = rel_l2_by_step;
  }
  out.extra = {{"model", "qca unet (Aetheria 2-level U-Net)"}, {"parameters", law.parameter_count()},
               {"cells", c.grid * c.grid},
               {"note", "quality.energy is mean|psi|^2 (Aetheria's 'energy'); loss_per_epoch / final_loss are null "
                        "(nothing is trained). flops_per_step counts the convolutions only."}};
  if (!profile.is_null()) out.extra["profile"] = profile;
  if (density)
    out.extra["density_png"] = {{"path", c.density_png}, {"min", density->lo}, {"max", density->hi},
                                {"colormap", c.density_colormap}};

  auto& s = out.summary;
  s.push_back(fmt::format("ferrite bench/qca — {}x{}, d {}, hidden {}, law {}, gamma {:g}, {} steps, {} thread(s)",
                          c.grid, c.grid, c.d_state, c.hidden, c.law, c.gamma, c.steps, threads));
  if (engine.cuda())
    s.push_back(fmt::format("device       {} ({}), 3x3 convs {}, CUDA graphs off, TF32 {}", device.to_string(),
                            out.device["name"].get<std::string>(), c.gpu_conv, c.tf32 ? "on" : "off"));
  s.push_back(fmt::format("throughput   {:.2f} steps/s, {:.1f} GFLOP/s ({:.2f} GFLOP/step)", steps_per_s,
                          flops * steps_per_s / 1e9, flops / 1e9));
  s.push_back(fmt::format("step latency p50 {:.2f} ms, p95 {:.2f} ms, min {:.2f} ms", latency.p50, latency.p95, latency.min));
  s.push_back(fmt::format("energy       {:.8f} (1/d = {:.8f}), max |norm - 1| {:.3g}", energy, 1.0 / double(c.d_state),
                          max_norm_error));
  if (rel_l2) {
    std::string by_step;
    for (std::size_t i = 0; i + 1 < rel_l2_steps.size(); ++i)
      by_step += fmt::format("{}{}: {:.3g}", i ? ", " : " (after step ", rel_l2_steps[i], rel_l2_by_step[i]);
    s.push_back(fmt::format("vs reference relative L2 error {:.3g}{}", *rel_l2, by_step.empty() ? "" : by_step + ")"));
  }
  if (density)
    s.push_back(fmt::format("density png  {} (density min {:.9g}, max {:.9g})", c.density_png, density->lo, density->hi));
  if (!profile.is_null()) {
    s.push_back(fmt::format("profile      {} extra steps, every op synchronized around itself:", c.profile_steps));
    for (const auto& e : profile["ops"])
      s.push_back(fmt::format("  {:<22} {:8.3f} ms/step {:5.1f} %  {:5d} calls", e["op"].get<std::string>(),
                              e["ms_per_step"].get<double>(), 100.0 * e["share"].get<double>(), e["calls"].get<std::int64_t>()));
  }
  if (peak_device.is_null())
    s.push_back(fmt::format("memory       peak host {:.1f} MiB", peak_rss));
  else
    s.push_back(fmt::format("memory       peak host {:.1f} MiB, peak device {:.1f} MiB (allocated)", peak_rss,
                            peak_device.get<double>()));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  CLI::App app{"ferrite bench/qca: time the QCA U-Net law step and report speed and accuracy as JSON"};
  app.add_option("--grid", c.grid, "lattice side (H = W, multiple of 4)")->check(CLI::Range(std::int64_t{1}, kMaxGrid));
  app.add_option("--d-state", c.d_state, "complex components per cell")->check(CLI::Range(std::int64_t{1}, kMaxDState));
  app.add_option("--hidden", c.hidden, "U-Net base width h")->check(CLI::Range(std::int64_t{1}, kMaxHidden));
  app.add_option("--law", c.law, "unet | unet-unitary")->check(CLI::IsMember({"unet", "unet-unitary"}));
  app.add_option("--gamma", c.gamma, "decay per step")->check(bench::kFinite);
  app.add_option("--steps", c.steps, "timed steps")->check(CLI::Range(std::int64_t{1}, kMaxSteps));
  app.add_option("--warmup-steps", c.warmup_steps, "untimed steps before (on a copy of the state; on the GPU at least 2)")->check(CLI::Range(std::int64_t{0}, kMaxSteps));
  app.add_option("--init", c.init, "complex_noise | random")->check(CLI::IsMember({"complex_noise", "random"}));
  app.add_option("--seed", c.seed, "seed for weights and initial state")->check(bench::kSeed);
  app.add_option("--device", c.device, "cpu | cuda | cuda:N");
  app.add_option("--threads", c.threads, "CPU threads (0 = all; more than the CPUs allowed are clamped)")->check(CLI::Range(0, bench::kMaxThreadsFlag));
  app.add_option("--weights", c.weights, "load the law (safetensors, PyTorch state_dict names)")->check(bench::kPath);
  app.add_flag("--small-outc,!--no-small-outc", c.small_outc, "default init with outc.weight ~ N(0, 1e-5^2) (Aetheria's; default on)");
  app.add_option("--save-weights", c.save_weights, "write the law's weights (safetensors)")->check(bench::kPath);
  app.add_option("--initial-state", c.initial_state, "start from tensor 'psi0' of this safetensors file")->check(bench::kPath);
  app.add_option("--save-state", c.save_state, "write 'psi0' and 'psi' (after --steps steps)")->check(bench::kPath);
  app.add_option("--save-steps", c.save_steps, "also write 'psi.<k>' after these steps k (comma-separated)")
      ->delimiter(',');
  app.add_option("--reference-state", c.reference_state,
                 "compare 'psi' (and any 'psi.<k>') of this file, from the same start, with ours")->check(bench::kPath);
  app.add_option("--json", c.json_path, "write the ferrite-bench/1 JSON report here")->check(bench::kPath);
  app.add_option("--density-png", c.density_png, "write the final density sum_c |psi_c|^2 per cell as a PNG")->check(bench::kPath);
  app.add_option("--density-colormap", c.density_colormap, "heat | gray")->check(CLI::IsMember({"heat", "gray"}));
  app.add_flag("--pin,!--no-pin", c.pin, "pin threads to distinct CPUs (default on)");
  app.add_flag("--cuda-graphs,!--no-cuda-graphs", c.cuda_graphs, "--device cuda: replay each step as one CUDA graph (not yet available on the generic core: refused)");
  app.add_flag("--tf32", c.tf32, "--device cuda: allow TF32 tensor cores in the SGEMMs (default off: FP32)");
  app.add_option("--profile", c.profile_steps,
                 "after warm-up, time every op over this many extra untimed steps (extra.profile; any device)")
      ->check(CLI::Range(std::int64_t{0}, kMaxSteps));
  app.add_option("--gpu-conv", c.gpu_conv,
                 "--device cuda: 3x3 convolutions as winograd (default) or im2col")
      ->check(CLI::IsMember({"winograd", "im2col"}));
  // A rejected command line still answers --json (an error report replaces a stale one: bench/cli.hpp).
  if (const auto exit = bench::parse_or_report(app, argc, argv, "qca", [&] {
        json r = bench::make_report_skeleton("qca", build_info(), bench::collect_environment(build_info()),
                                             bench::device_strings(available_devices()));
        r["config"] = {{"command_line", std::vector<std::string>(argv, argv + argc)}};
        return r;
      }))
    return *exit;

  {  // A report over an input (or another output) would destroy it: refuse before writing anything.
    if (const Status s = bench::check_report_path("bench/qca", c.json_path, input_paths(c), output_paths(c)); !s.ok()) {
      std::fprintf(stderr, "qca: error: %s\n", s.error().to_string().c_str());
      return 1;
    }
  }

  cpu::JoinWorkersAtExit join_workers;  // outlives the limit, the pinning and every parallel loop
  cpu::ThreadLimit limit(c.threads);
  std::optional<cpu::ThreadPinning> pinning;
  if (c.pin) pinning.emplace();
  const auto env = bench::collect_environment(build_info());
  json report = bench::make_report_skeleton("qca", build_info(), env, bench::device_strings(available_devices()));
  report["config"] = config_json(c);

  const auto result = bench::run_guarded("qca", [&] { return run(c, limit.threads()); });
  auto device = Device::parse(c.device);
  return bench::finish_report("qca", std::move(report), result, device.ok() ? *device : Device::cpu(), limit.threads(),
                              c.json_path);
}
