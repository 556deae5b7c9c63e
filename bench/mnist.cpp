// bench/mnist: trains the MNIST-shaped MLP 784→128→64→10 with Adam (default) and reports speed and
// quality as one ferrite-bench/1 JSON document (docs/json-schema.md).
//
//   ./build/bench/mnist                                    synthetic 1,000 samples, batch 32, 5 epochs
//   ./build/bench/mnist --dataset fashion-mnist --samples 0 --json out.json
//   ./build/bench/mnist --save-init w.safetensors --export-data d.safetensors   (inputs for PyTorch)
//   ./build/bench/mnist --device cuda                      the same code on the GPU (only the Context differs)
//   mpirun -np 2 ./build/bench/mnist                       data parallel: 2 ranks × batch 16 (global batch 32)
//   ./build/bench/mnist --epochs 2 --checkpoint ck.safetensors, then --epochs 5 --resume ck.safetensors
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <optional>
#include <cstdio>
#include <unistd.h>
#include <string>
#include <vector>

#include "build_info.hpp"
#include "ferrite/backend/cpu/threading.hpp"
#include "ferrite/backend/cuda/memory.hpp"
#include "ferrite/backend/cuda/runtime.hpp"
#include "ferrite/backend/devices.hpp"
#include "ferrite/bench/cuda_device.hpp"
#include "ferrite/bench/environment.hpp"
#include "ferrite/bench/memory.hpp"
#include "ferrite/bench/report.hpp"
#include "ferrite/bench/stats.hpp"
#include "ferrite/data/idx.hpp"
#include "ferrite/data/synthetic.hpp"
#include "ferrite/io/safetensors.hpp"
#include "ferrite/models/mlp.hpp"
#include "ferrite/nn/parameter_store.hpp"
#include "ferrite/ops/fill.hpp"
#include "cli.hpp"  // bench/cli.hpp: the programs' command-line helpers (CLI11 is theirs, not the library's)
#include "ferrite/bench/paths.hpp"
#include "ferrite/bench/profile.hpp"
#include "ferrite/nn/state_dict.hpp"
#include "ferrite/optim/factory.hpp"
#include "ferrite/train/checkpoint.hpp"
#include "ferrite/train/classifier.hpp"

using namespace ferrite;
using json = nlohmann::json;

namespace {

// Bounds of the size flags (CLI11 names the bound when a value is outside it). Far above any real
// run; they exist so that no product of flags can overflow the size arithmetic downstream.
constexpr std::int64_t kMaxBatch = std::int64_t{1} << 20;
constexpr std::int64_t kMaxEpochs = 1'000'000;
constexpr std::int64_t kMaxExtraSteps = 1'000'000;  // --warmup-steps, --profile

struct Config {
  std::string dataset = "synthetic";
  std::string data_dir = data::kFashionMnistDir;
  std::int64_t samples = 1000;       // training samples; 0 = the whole set
  std::int64_t test_samples = 1000;  // held-out samples; 0 = the whole set (synthetic: 0 means 1000)
  std::int64_t batch = 32;
  std::int64_t epochs = 5;
  double lr = 1e-3;
  std::string optimizer = "adam";
  double momentum = 0.9;      // sgd only
  double weight_decay = -1;   // < 0: the optimizer's PyTorch default (0; AdamW 1e-2)
  std::uint64_t seed = 42;
  int threads = 0;            // 0: all hardware threads
  std::string device = "cpu";
  std::int64_t warmup_steps = 10;
  std::int64_t eval_batch = 1000;
  std::string json_path;
  std::string save_init;
  std::string init_from;
  std::string export_data;
  bool quiet = false;
  bool pin = true;            // pin the main thread and TBB workers to distinct CPUs
  bool cuda_graphs = false;   // each full-batch step as one CUDA graph launch (train/step_graph.hpp); on by default with cuda
  bool tf32 = false;          // --device cuda: TF32 tensor cores in the GEMMs (off: FP32 parity)
  std::int64_t profile_steps = 0;  // > 0: after the timed run, time every op over this many steps
  double comm_timeout = 30;   // data parallel: a collective that takes longer means a lost peer
  std::string checkpoint;     // written after every epoch (rank 0, atomically)
  std::string resume;         // continue from this checkpoint (any world size)
  bool distributed = false;   // join the launcher's group even with one rank (mpirun -np 1: the MPI / NCCL path)
  bool zero1 = false;         // data parallel: shard the optimizer state across ranks (ZeRO-1)
  bool drop_last = false;     // data parallel: drop each epoch's tail instead of padding it to whole shards
};

json config_json(const Config& c) {
  return {{"dataset", c.dataset}, {"data_dir", c.data_dir}, {"samples", c.samples},
          {"test_samples", c.test_samples}, {"batch", c.batch}, {"epochs", c.epochs}, {"lr", c.lr},
          {"optimizer", c.optimizer}, {"momentum", c.momentum}, {"weight_decay", c.weight_decay},
          {"seed", c.seed}, {"threads", c.threads}, {"device", c.device},
          {"warmup_steps", c.warmup_steps}, {"eval_batch", c.eval_batch}, {"pin_threads", c.pin},
          {"init_from", c.init_from}, {"save_init", c.save_init}, {"export_data", c.export_data},
          {"cuda_graphs", c.cuda_graphs}, {"tf32", c.tf32}, {"profile_steps", c.profile_steps},
          {"comm_timeout_s", c.comm_timeout}, {"drop_last", c.drop_last}, {"distributed", c.distributed},
          {"checkpoint", c.checkpoint}, {"resume", c.resume}, {"zero1", c.zero1}};
}

bench::BuildInfo build_info() {
  return {FERRITE_VERSION, FERRITE_COMPILER, FERRITE_FLAGS, FERRITE_GIT_COMMIT, FERRITE_BUILD_TYPE,
          FERRITE_CUDA_BUILT != 0};
}

// 2·in·out multiply-adds per sample for each of forward, dW, and dX (dX not for the first layer).
double flops_per_sample(nn::Sequential& model) {
  double flops = 0;
  bool first = true;
  for (std::size_t i = 0; i < model.size(); ++i)
    if (auto* l = dynamic_cast<nn::Linear*>(&model[i])) {
      const double mac = double(l->in_features()) * double(l->out_features());
      flops += 2 * mac * (first ? 2 : 3);
      first = false;
    }
  return flops;
}

Result<std::pair<data::Dataset, data::Dataset>> load_data(const Config& c) {
  if (c.dataset == "synthetic") {
    FE_TRY_ASSIGN(auto train, data::make_synthetic(c.samples > 0 ? c.samples : 1000, c.seed, data::Split::train));
    FE_TRY_ASSIGN(auto test, data::make_synthetic(c.test_samples > 0 ? c.test_samples : 1000, c.seed, data::Split::test));
    return std::pair{std::move(train), std::move(test)};
  }
  // Only the samples asked for are read (a small gzip file can declare a million images).
  FE_TRY_ASSIGN(auto train, data::load_fashion_mnist(data::Split::train, c.data_dir, {c.samples}));
  FE_TRY_ASSIGN(auto test, data::load_fashion_mnist(data::Split::test, c.data_dir, {c.test_samples}));
  return std::pair{std::move(train), std::move(test)};
}

// The exact inputs of this run, for another framework: both splits and every epoch's batch order.
Status export_data(const std::string& path, const Config& c, const data::Dataset& train, const data::Dataset& test) {
  const std::int64_t n = train.size();
  FE_TRY_ASSIGN(Tensor order, Tensor::empty({c.epochs, n}, DType::i32));
  for (std::int64_t e = 0; e < c.epochs; ++e) {
    const auto perm = data::epoch_order(n, c.seed, e);
    std::copy(perm.begin(), perm.end(), order.data<std::int32_t>() + e * n);
  }
  return io::save_safetensors(path,
                              {{"train_images", &train.images}, {"train_labels", &train.labels},
                               {"test_images", &test.images}, {"test_labels", &test.labels},
                               {"batch_order", &order}},
                              {{"batch", std::to_string(c.batch)}, {"epochs", std::to_string(c.epochs)},
                               {"seed", std::to_string(c.seed)}, {"dataset", c.dataset},
                               {"layout", "batch b of epoch e = batch_order[e, b*batch:(b+1)*batch]"}});
}

// The epochs that `steps` steps span (no product of flags: warmup_steps * batch once overflowed).
std::int64_t epochs_spanning(std::int64_t steps, std::int64_t train_size, std::int64_t batch) {
  const std::int64_t batches = std::max<std::int64_t>(data::num_batches(train_size, batch), 1);
  return std::max<std::int64_t>(1, steps / batches + (steps % batches != 0));
}

// Warm-up: a few real steps (page faults, TBB threads, caches, cuBLAS kernels), then back to the
// initial weights and a fresh optimizer, so the timed run starts exactly where PyTorch's does.
train::TrainOptions warmup_options(const Config& c, std::int64_t train_size) {
  return {c.batch, epochs_spanning(c.warmup_steps, train_size, c.batch), c.seed ^ 0x5eedull, c.warmup_steps,
          c.cuda_graphs};
}

// What a checkpoint must agree on to be resumed by this run (not the world size or threads: a
// checkpoint holds the global state and resumes anywhere).
io::SafetensorsMetadata checkpoint_fields(const Config& c, const data::Dataset& train) {
  return {{"model", "mlp 784-128-64-10"},        {"dataset", c.dataset},
          {"train_samples", std::to_string(train.size())}, {"batch", std::to_string(c.batch)},
          {"seed", std::to_string(c.seed)},       {"optimizer_flags", fmt::format("lr={:g} momentum={:g} weight_decay={:g}", c.lr, c.momentum, c.weight_decay)}};
}

// Every file the run reads (the weights, the Fashion-MNIST files) and every file it writes but the
// JSON report (checked in main, before a report could overwrite anything).
std::vector<bench::NamedPath> input_paths(const Config& c) {
  std::vector<bench::NamedPath> in{{"--init-from", c.init_from}};
  // Resuming from the file the run keeps checkpointing to is the usual loop: it is read before any write.
  if (c.resume != c.checkpoint) in.push_back({"--resume", c.resume});
  if (c.dataset == "fashion-mnist")
    for (const char* name : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                             "t10k-labels-idx1-ubyte"})
      for (const char* ext : {".gz", ""})
        in.push_back({"--data-dir", (std::filesystem::path(c.data_dir) / (std::string(name) + ext)).string()});
  return in;
}
std::vector<bench::NamedPath> output_paths(const Config& c) {
  return {{"--save-init", c.save_init}, {"--export-data", c.export_data}, {"--checkpoint", c.checkpoint}};
}

Result<bench::RunSections> run(const Config& c, int threads, train::ProcessGroup& group) {
  const int world = group.world_size();
  if (group.active()) {  // before anything else: every rank must run the same job
    std::vector<std::pair<std::string, std::string>> fields;
    const json config = config_json(c);
    for (const auto& [key, value] : config.items()) fields.emplace_back(key, value.dump());
    FE_TRY(group.check_same_config(fields));
    if (c.batch % world != 0)
      return make_error(ErrorCode::invalid_argument, "bench/mnist",
                        fmt::format("--batch {} is the global batch and must divide among the {} ranks", c.batch, world));
  }
  FE_TRY(bench::check_output_paths("bench/mnist", input_paths(c), output_paths(c)));
  FE_TRY_ASSIGN(Device device, Device::parse(c.device));
  if (world > 1 && device.is_cuda() && c.device == "cuda") device = Device::cuda(group.local_rank());  // a GPU per local rank
  if (c.cuda_graphs && !device.is_cuda())
    return make_error(ErrorCode::invalid_argument, "bench/mnist",
                      fmt::format("--cuda-graphs needs --device cuda:N (got --device {})", device.to_string()));
  FE_TRY(check_device(device));
  FE_TRY_ASSIGN(auto datasets, load_data(c));
  auto& [train, test] = datasets;

  FE_TRY_ASSIGN(auto model, models::make_mlp(train.features(), {128, 64}, train.num_classes, c.seed));
  auto params = model.parameters();
  if (!c.init_from.empty()) FE_TRY(nn::load_parameters(params, c.init_from));
  // Files are written by rank 0 alone (the weights are rank 0's, which every rank starts from).
  if (!c.save_init.empty() && group.is_root()) FE_TRY(nn::save_parameters(params, c.save_init));
  if (!c.export_data.empty() && group.is_root()) FE_TRY(export_data(c.export_data, c, train, test));

  optim::OptimizerOptions opt;
  opt.name = c.optimizer;
  opt.lr = c.lr;
  opt.momentum = c.momentum;
  opt.weight_decay = c.weight_decay;

  const bool progress = !c.quiet && train.size() >= 20000;
  // In a terminal, a live line every 200 steps; otherwise (logs, CI) one line per epoch. (On CUDA the
  // steps of an epoch are reported when the epoch has finished.)
  const bool live = isatty(fileno(stderr)) != 0;
  auto on_step = [&](std::int64_t epoch, std::int64_t b, std::int64_t batches, double loss) {
    if (!progress || !group.is_root()) return;
    if (live && (b + 1) % 200 == 0)
      fmt::print(stderr, "\repoch {}/{}  step {}/{}  loss {:.4f}", epoch + 1, c.epochs, b + 1, batches, loss);
    if (b + 1 == batches)
      fmt::print(stderr, "{}epoch {}/{} done (last batch loss {:.4f})\n", live ? "\r" : "", epoch + 1, c.epochs, loss);
  };

  // One code path for every device: the context and the parameter store are on `device`.
  FE_TRY_ASSIGN(Context ctx, Context::create(device, {c.tf32}));
  OpProfiler profiler;
  FE_TRY_ASSIGN(nn::ParameterStore store, nn::ParameterStore::create(params, device));
  FE_TRY(group.broadcast(ctx, store.values(), 0, "the initial-weights broadcast"));
  train::ProcessGroup* parallel = group.active() ? &group : nullptr;
  if (c.warmup_steps > 0) {
    FE_TRY_ASSIGN(Tensor initial, store.value_buffer().clone());
    FE_TRY_ASSIGN(auto warm_opt, optim::make_optimizer(params, opt, &store));
    FE_TRY(train::train_classifier(ctx, model, *warm_opt, train, warmup_options(c, train.size())));
    FE_TRY(ctx.synchronize());
    FE_TRY(ops::copy(ctx, initial.cref(), store.values()));
    FE_TRY(ctx.synchronize());
  }
  if (device.is_cuda()) FE_TRY(cuda::reset_peak_memory_stats(device.index));
  FE_TRY_ASSIGN(auto optimizer, optim::make_optimizer(params, opt, &store));
  if (c.zero1 && !group.active())
    return make_error(ErrorCode::invalid_argument, "bench/mnist", "--zero1 needs a data-parallel run (mpirun -np N)");
  std::int64_t first_epoch = 0;
  if (!c.resume.empty()) {  // every rank reads the same file: the same weights and state everywhere
    FE_TRY_ASSIGN(const train::CheckpointInfo info, train::load_checkpoint(c.resume, *optimizer, checkpoint_fields(c, train)));
    if (info.epochs_done >= c.epochs)
      return make_error(ErrorCode::invalid_argument, "bench/mnist",
                        fmt::format("{}: the checkpoint has {} epoch(s) done, --epochs {} leaves nothing to train", c.resume,
                                    info.epochs_done, c.epochs));
    first_epoch = info.epochs_done;
  }
  if (c.zero1) {  // after a resume: each rank keeps its slice of the restored state
    const auto shard = group.shard_of(store.total_elements());
    FE_TRY(optimizer->shard(shard.begin, shard.end));
  }
  auto on_epoch = [&](std::int64_t done) -> Status {
    if (c.checkpoint.empty()) return ok_status();
    return train::save_checkpoint(ctx, group, store, c.checkpoint, *optimizer, done, checkpoint_fields(c, train));
  };
  const train::CommStats comm_before = group.stats();
  FE_TRY_ASSIGN(const train::TrainHistory history,
                train::train_classifier(ctx, model, *optimizer, train,
                                        {c.batch, c.epochs, c.seed, -1, c.cuda_graphs, parallel, store.grads(), c.drop_last,
                                         first_epoch, c.zero1, store.values()},
                                        on_step, on_epoch));
  const train::CommStats comm_after = group.stats();
  FE_TRY_ASSIGN(auto train_eval, train::evaluate_classifier(ctx, model, train, c.eval_batch));
  FE_TRY_ASSIGN(auto test_eval, train::evaluate_classifier(ctx, model, test, c.eval_batch));
  json profile = nullptr;
  if (c.profile_steps > 0) {  // separate, untimed: per-op time of a few more steps (ops synchronize)
    ctx.set_profiler(&profiler);
    FE_TRY_ASSIGN(auto prof_opt, optim::make_optimizer(params, opt, &store));
    // As many epochs as the steps asked for need, and the per-step figures divided by the steps that
    // ran (one epoch of the default set has 32 batches: --profile 50 once divided 32 steps' time by 50).
    const std::int64_t epochs = epochs_spanning(c.profile_steps, train.size(), c.batch);
    FE_TRY_ASSIGN(const train::TrainHistory profiled,
                  train::train_classifier(ctx, model, *prof_opt, train,
                                          {c.batch, epochs, c.seed, c.profile_steps, false, parallel, store.grads(), c.drop_last}));
    ctx.set_profiler(nullptr);
    profile = bench::profile_json(profiler, static_cast<std::int64_t>(profiled.step_loss.size()));
  }

  json device_json = device.is_cuda() ? json(nullptr) : bench::device_json(Device::cpu(), bench::cpu_model_name(), threads);
  json peak_device_mb = nullptr, peak_device_reserved_mb = nullptr, backend = json::object();
  std::string step_time = "host wall clock per step (gather + forward + backward + update)";
  if (device.is_cuda()) {
    FE_TRY_ASSIGN(const cuda::DeviceInfo info, cuda::device_info(device.index));
    FE_TRY_ASSIGN(const cuda::MemoryStats memory, cuda::memory_stats(device.index));
    device_json = bench::cuda_device_json(device, info, threads);
    peak_device_mb = cuda::bytes_to_mib(memory.peak_allocated_bytes);
    peak_device_reserved_mb = cuda::bytes_to_mib(memory.peak_reserved_bytes);
    backend = {{"gemm", "cublasSgemm"}, {"cuda_graphs", c.cuda_graphs}, {"tf32", c.tf32}};
    step_time = "GPU time per step: CUDA events recorded between steps (losses read back once per epoch)";
  }
  struct {
    json device, peak_device_mb, peak_device_reserved_mb, backend;
    std::string step_time;
  } trained{device_json, peak_device_mb, peak_device_reserved_mb, backend, step_time};

  std::vector<double> epoch_throughput;
  for (std::size_t e = 0; e < history.epoch_seconds.size(); ++e)
    epoch_throughput.push_back(double(history.epoch_samples[e]) / history.epoch_seconds[e]);
  FE_TRY_ASSIGN(const double throughput, bench::median(epoch_throughput));
  FE_TRY_ASSIGN(const auto latency, bench::summarize_ms(history.step_ms));
  FE_TRY_ASSIGN(const double peak_rss, bench::peak_host_rss_mb());
  const double flops_step = flops_per_sample(model) * double(c.batch);
  const double total_seconds = [&] { double s = 0; for (double t : history.epoch_seconds) s += t; return s; }();

  bench::RunSections out;
  std::string ranks_line;
  if (group.active()) {  // every rank takes part in the gather; rank 0 reports
    FE_TRY_ASSIGN(const std::vector<double> p50, group.all_gather(latency.p50, "the step-time gather"));
    const double comm_s = comm_after.seconds - comm_before.seconds;
    const auto steps = static_cast<double>(std::max<std::size_t>(history.step_ms.size(), 1));
    out.distributed = {{"world_size", world}, {"backend", group.backend()}, {"launcher", group.launcher()},
                       {"global_batch", c.batch}, {"per_rank_batch", c.batch / world},
                       {"gradient_sync", c.zero1 ? "ZeRO-1: after backward, the flat gradient buffer reduce-scattered "
                                                   "(MPI_Alltoall, sum in rank order), this rank's shard updated, the "
                                                   "parameters all-gathered; losses: one all-gather per epoch"
                                         : group.backend() == "nccl"
                                             ? "after backward, one ncclAllReduce (ncclAvg) of the flat gradient buffer on the "
                                               "step's stream; losses: one all-gather per epoch"
                                             : "after backward, one all-reduce of the flat gradient buffer (2 ranks: "
                                               "MPI_Allreduce; more: MPI_Alltoall, sum in rank order, MPI_Allgather); "
                                               "losses: one all-gather per epoch"},
                       {"per_rank_step_ms_p50", p50}, {"comm_seconds", comm_s},
                       {"zero1", c.zero1}, {"optimizer_state_elements", optimizer->state_elements()},
                       {"comm_share", total_seconds > 0 ? comm_s / total_seconds : 0.0},
                       {"comm_bytes_per_step", double(comm_after.bytes - comm_before.bytes) / steps}};
    ranks_line = fmt::format("ranks        {} × batch {} (global {}), {} via {}, {:.1f} % of training time in collectives",
                             world, c.batch / world, c.batch, group.backend(), group.launcher(),
                             100 * out.distributed["comm_share"].get<double>());
  }
  out.device = trained.device;
  out.backend = trained.backend;
  json peak_memory = {{"host", peak_rss}, {"device", trained.peak_device_mb}};
  if (!trained.peak_device_reserved_mb.is_null()) peak_memory["device_reserved"] = trained.peak_device_reserved_mb;
  out.metrics = {{"throughput", bench::throughput_json(throughput, "samples/s", "median over epochs")},
                 {"latency_ms", latency},
                 {"peak_memory_mb", peak_memory},
                 {"flops_per_step", flops_step},
                 {"gflops", throughput * flops_per_sample(model) / 1e9},
                 {"samples_per_s_per_epoch", epoch_throughput},
                 {"train_seconds", total_seconds}};
  out.quality = {{"loss_per_epoch", history.epoch_loss}, {"final_loss", history.epoch_loss.back()},
                 {"train_accuracy", train_eval.accuracy}, {"test_accuracy", test_eval.accuracy},
                 {"test_loss", test_eval.loss}, {"loss_per_step", history.step_loss}};
  out.extra = {{"model", "mlp 784-128-64-10"}, {"profile", profile}, {"parameters", [&] { std::int64_t n = 0; for (auto& p : params) n += p.value->numel(); return n; }()},
               {"train_samples", train.size()}, {"test_samples", test.size()},
               {"steps", static_cast<std::int64_t>(history.step_ms.size())}, {"step_time", trained.step_time},
               {"resumed_after_epochs", first_epoch}};

  auto& s = out.summary;
  s.push_back(fmt::format("ferrite bench/mnist — {} ({} train / {} test), batch {}, {} epochs, {} lr {:g}, {} thread(s)",
                          c.dataset, train.size(), test.size(), c.batch, c.epochs, c.optimizer, c.lr, threads));
  if (device.is_cuda())
    s.push_back(fmt::format("device       {} ({}), CUDA graphs {}, TF32 {}", device.to_string(),
                            trained.device["name"].get<std::string>(), c.cuda_graphs ? "on" : "off", c.tf32 ? "on" : "off"));
  if (!ranks_line.empty()) s.push_back(ranks_line);
  s.push_back(fmt::format("{:>6} {:>12} {:>14}", "epoch", "mean loss", "samples/s"));
  for (std::size_t e = 0; e < history.epoch_loss.size(); ++e)
    s.push_back(fmt::format("{:>6} {:>12.5f} {:>14.0f}", first_epoch + std::int64_t(e) + 1, history.epoch_loss[e], epoch_throughput[e]));
  s.push_back(fmt::format("throughput   {:.0f} samples/s (median of epochs), {:.1f} GFLOP/s", throughput,
                          throughput * flops_per_sample(model) / 1e9));
  s.push_back(fmt::format("step latency p50 {:.1f} µs, p95 {:.1f} µs, p99 {:.1f} µs", latency.p50 * 1e3,
                          latency.p95 * 1e3, latency.p99 * 1e3));
  s.push_back(fmt::format("accuracy     train {:.2f} %, test {:.2f} %   (test loss {:.4f})", 100 * train_eval.accuracy,
                          100 * test_eval.accuracy, test_eval.loss));
  s.push_back(fmt::format("time         {:.2f} s training, peak host memory {:.1f} MiB", total_seconds, peak_rss));
  if (!trained.peak_device_mb.is_null())
    s.push_back(fmt::format("device mem   peak {:.1f} MiB allocated, {:.1f} MiB reserved",
                            trained.peak_device_mb.get<double>(), trained.peak_device_reserved_mb.get<double>()));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  CLI::App app{"ferrite bench/mnist: train the MLP 784-128-64-10 and report speed and quality as JSON"};
  app.add_option("--dataset", c.dataset, "synthetic | fashion-mnist")->check(CLI::IsMember({"synthetic", "fashion-mnist"}));
  app.add_option("--data-dir", c.data_dir, "Fashion-MNIST IDX directory (Debian package dataset-fashion-mnist)")->check(bench::kPath);
  app.add_option("--samples", c.samples, "training samples (0 = whole set; synthetic default 1000)")->check(CLI::Range(std::int64_t{0}, data::kMaxDatasetSize));
  app.add_option("--test-samples", c.test_samples, "held-out samples (0 = whole set)")->check(CLI::Range(std::int64_t{0}, data::kMaxDatasetSize));
  app.add_option("--batch", c.batch, "batch size")->check(CLI::Range(std::int64_t{1}, kMaxBatch));
  app.add_option("--epochs", c.epochs, "epochs")->check(CLI::Range(std::int64_t{1}, kMaxEpochs));
  app.add_option("--lr", c.lr, "learning rate")->check(CLI::PositiveNumber & bench::kFinite);
  app.add_option("--optimizer", c.optimizer, "adam | adamw | sgd")->check(CLI::IsMember({"adam", "adamw", "sgd"}));
  app.add_option("--momentum", c.momentum, "SGD momentum")->check(CLI::Range(0.0, 1.0) & bench::kFinite);
  app.add_option("--weight-decay", c.weight_decay, "weight decay (default: the optimizer's PyTorch default)")->check(bench::kFinite);
  app.add_option("--seed", c.seed, "seed for initialization, data and batch order")->check(bench::kSeed);
  app.add_option("--threads", c.threads, "CPU threads (0 = all; more than the CPUs allowed are clamped)")->check(CLI::Range(0, bench::kMaxThreadsFlag));
  app.add_option("--device", c.device, "cpu | cuda | cuda:N");
  app.add_option("--warmup-steps", c.warmup_steps, "untimed steps before training (weights are restored after)")->check(CLI::Range(std::int64_t{0}, kMaxExtraSteps));
  app.add_option("--eval-batch", c.eval_batch, "batch size for evaluation")->check(CLI::Range(std::int64_t{1}, kMaxBatch));
  app.add_option("--json", c.json_path, "write the ferrite-bench/1 JSON report here")->check(bench::kPath);
  app.add_option("--save-init", c.save_init, "write the initial weights (safetensors, PyTorch names)")->check(bench::kPath);
  app.add_option("--init-from", c.init_from, "start from these weights (safetensors, PyTorch names)")->check(bench::kPath);
  app.add_option("--export-data", c.export_data, "write the data and every epoch's batch order (safetensors)")->check(bench::kPath);
  app.add_flag("--quiet", c.quiet, "no progress on stderr");
  app.add_flag("--pin,!--no-pin", c.pin, "pin threads to distinct CPUs (default on)");
  CLI::Option* graphs = app.add_flag("--cuda-graphs,!--no-cuda-graphs", c.cuda_graphs,
                                     "--device cuda: run each full-batch step as one CUDA graph launch, captured after one "
                                     "eager step (default: on with --device cuda; --no-cuda-graphs for eager launches)");
  app.add_option("--profile", c.profile_steps, "after the timed run, time every op over this many extra steps (extra.profile)")->check(CLI::Range(std::int64_t{0}, kMaxExtraSteps));
  app.add_flag("--tf32", c.tf32, "--device cuda: allow TF32 tensor cores in the GEMMs (default off: FP32)");
  app.add_option("--comm-timeout", c.comm_timeout, "data parallel (mpirun): seconds a collective may take before this rank gives its peers up (0 = wait forever)")->check(CLI::Range(0.0, 86400.0));
  app.add_flag("--distributed", c.distributed, "run the data-parallel path even with one rank (under mpirun -np 1: checks MPI, and NCCL with --device cuda)");
  app.add_option("--checkpoint", c.checkpoint, "after every epoch, write weights + optimizer state + step here (safetensors, atomically; rank 0)")->check(bench::kPath);
  app.add_option("--resume", c.resume, "continue from this checkpoint: the epochs after those it has done (any world size)")->check(bench::kPath);
  app.add_flag("--zero1", c.zero1, "data parallel: shard the optimizer state across ranks (ZeRO-1: reduce-scatter, shard update, all-gather)");
  app.add_flag("--drop-last", c.drop_last, "data parallel: drop each epoch's last samples instead of padding them to whole shards");
  // A rejected command line still answers --json (an error report replaces a stale one: bench/cli.hpp).
  if (const auto exit = bench::parse_or_report(app, argc, argv, "mnist", [&] {
        json r = bench::make_report_skeleton("mnist", build_info(), bench::collect_environment(build_info()),
                                             bench::device_strings(available_devices()));
        r["config"] = {{"command_line", std::vector<std::string>(argv, argv + argc)}};
        return r;
      }))
    return *exit;
  // Graph replay is the default on CUDA: its losses and weights are bit-identical to eager launches
  // (tests/train/test_train_devices.cpp) and a batch-32 step took 60 us instead of 149 (p50, H200,
  // docs/results/nvidia-h200). Asked for explicitly on the CPU, it is refused in run().
  if (graphs->count() == 0) {
    const auto d = Device::parse(c.device);
    c.cuda_graphs = d.ok() && d->is_cuda();
  }

  {  // A report over an input (or another output) would destroy it: refuse before writing anything.
    if (const Status s = bench::check_report_path("bench/mnist", c.json_path, input_paths(c), output_paths(c)); !s.ok()) {
      std::fprintf(stderr, "mnist: error: %s\n", s.error().to_string().c_str());
      return 1;
    }
  }

  cpu::JoinWorkersAtExit join_workers;  // outlives the limit, the pinning and every parallel loop
  // The process group of the launcher (mpirun -np N: MPI; none: world 1). Ranks other than 0 print
  // only errors and write no files.
  auto group = train::ProcessGroup::join({"bench/mnist", c.comm_timeout, c.distributed});
  const bool root = group.ok() ? group->is_root() : [] { auto l = train::detect_launch(); return !l.ok() || l->rank == 0; }();
  cpu::ThreadLimit limit(c.threads);
  std::optional<cpu::ThreadPinning> pinning;
  if (c.pin) pinning.emplace();
  const auto env = bench::collect_environment(build_info());
  json report = bench::make_report_skeleton("mnist", build_info(), env, bench::device_strings(available_devices()));
  report["config"] = config_json(c);

  auto result = group.ok() ? bench::run_guarded("mnist", [&] { return run(c, limit.threads(), *group); })
                           : Result<bench::RunSections>(group.error());
  if (!root && result.ok()) result->summary.clear();
  auto device = Device::parse(c.device);
  return bench::finish_report("mnist", std::move(report), result, device.ok() ? *device : Device::cpu(), limit.threads(),
                              root ? c.json_path : std::string());
}
