// bench/resnet18: trains ResNet-18 (CIFAR variant, models/resnet.hpp) with SGD + momentum on CIFAR-10
// (or a synthetic CIFAR-shaped set, or any ImageFolder) and reports speed and quality as one
// ferrite-bench/1 JSON document (docs/json-schema.md).
//
//   ./build/bench/resnet18                                    synthetic 2,560 images, batch 128, 1 epoch
//   ./build/bench/resnet18 --dataset cifar10 --train-samples 10000 --epochs 2 --json out.json
//   ./build/bench/resnet18 --dataset cifar10 --max-steps 10 --warmup-steps 2   (a timing run)
//   ./build/bench/resnet18 --save-init w.safetensors --export-data d.safetensors   (PyTorch's inputs)
//   ./build/bench/resnet18 --device cuda                      the same code on the GPU
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "build_info.hpp"
#include "cli.hpp"
#include "ferrite/backend/cpu/threading.hpp"
#include "ferrite/backend/cuda/memory.hpp"
#include "ferrite/backend/cuda/runtime.hpp"
#include "ferrite/backend/devices.hpp"
#include "ferrite/bench/cuda_device.hpp"
#include "ferrite/bench/environment.hpp"
#include "ferrite/bench/memory.hpp"
#include "ferrite/bench/paths.hpp"
#include "ferrite/bench/profile.hpp"
#include "ferrite/bench/report.hpp"
#include "ferrite/bench/stats.hpp"
#include "ferrite/data/augment.hpp"
#include "ferrite/data/images.hpp"
#include "ferrite/data/synthetic_images.hpp"
#include "ferrite/io/safetensors.hpp"
#include "ferrite/models/resnet.hpp"
#include "ferrite/nn/parameter_store.hpp"
#include "ferrite/nn/state_dict.hpp"
#include "ferrite/ops/fill.hpp"
#include "ferrite/optim/schedule.hpp"
#include "ferrite/optim/sgd.hpp"
#include "ferrite/train/checkpoint.hpp"
#include "ferrite/train/image_classifier.hpp"

using namespace ferrite;
using json = nlohmann::json;

namespace {

constexpr std::int64_t kMaxBatch = 1 << 16;
constexpr std::int64_t kMaxEpochs = 100'000;
constexpr std::int64_t kMaxSteps = 100'000'000;
const char* const kCifarDir = "../shared/data/cifar10";

struct Config {
  std::string dataset = "synthetic";  // synthetic | cifar10 | imagefolder
  std::string data_dir = kCifarDir;
  std::int64_t train_samples = 2560;  // 0 = the whole split (synthetic: 2560)
  std::int64_t test_samples = 1000;   // 0 = the whole split (synthetic: 1000)
  std::int64_t batch = 128;
  std::int64_t epochs = 1;
  std::int64_t max_steps = -1;        // < 0: every step of every epoch
  double lr = 0.1;                    // peak learning rate of the schedule
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 5e-4;
  std::string schedule = "onecycle";  // constant | cosine | onecycle
  std::int64_t warmup_lr_steps = 0;   // cosine: linear warm-up steps
  std::int64_t schedule_steps = 0;    // > 0: the schedule spans this many steps (e.g. a whole run's, cut by --max-steps)
  std::int64_t width = 64;            // 64 = ResNet-18
  std::uint64_t seed = 42;
  int threads = 0;
  std::string device = "cpu";
  std::int64_t warmup_steps = 2;      // untimed steps first (weights, statistics and optimizer restored)
  std::int64_t eval_batch = 500;
  bool augment = true;
  std::string json_path, save_init, init_from, export_data;
  std::string save;    // checkpoint after every epoch (weights, BatchNorm buffers, optimizer state, step)
  std::string resume;  // continue from this checkpoint: the epochs after those it has done
  std::int64_t profile_steps = 0;
  bool tf32 = false;
  bool quiet = false;
  bool pin = true;
};

json config_json(const Config& c) {
  return {{"dataset", c.dataset},       {"data_dir", c.data_dir},       {"train_samples", c.train_samples},
          {"test_samples", c.test_samples}, {"batch", c.batch},          {"epochs", c.epochs},
          {"max_steps", c.max_steps},   {"lr", c.lr},                   {"momentum", c.momentum},
          {"nesterov", c.nesterov},     {"weight_decay", c.weight_decay}, {"schedule", c.schedule},
          {"warmup_lr_steps", c.warmup_lr_steps}, {"schedule_steps", c.schedule_steps}, {"width", c.width},   {"seed", c.seed},
          {"threads", c.threads},       {"device", c.device},           {"warmup_steps", c.warmup_steps},
          {"eval_batch", c.eval_batch}, {"augment", c.augment},         {"init_from", c.init_from},
          {"save_init", c.save_init},   {"export_data", c.export_data}, {"profile_steps", c.profile_steps},
          {"tf32", c.tf32},             {"pin_threads", c.pin},         {"save", c.save},
          {"resume", c.resume}};
}

bench::BuildInfo build_info() {
  return {FERRITE_VERSION, FERRITE_COMPILER, FERRITE_FLAGS, FERRITE_GIT_COMMIT, FERRITE_BUILD_TYPE, FERRITE_CUDA_BUILT != 0};
}

// The first `n` images (0: all) in a class-balanced way: ImageFolder's per-class cap, so a 10,000-image
// subset of CIFAR-10 is 1,000 per class.
Result<data::ImageSet> load_split(const Config& c, const char* split, std::int64_t n) {
  const std::filesystem::path dir = std::filesystem::path(c.data_dir) / split;
  data::ImageFolderOptions o;
  o.max_per_class = n > 0 ? (n + 9) / 10 : 0;
  if (c.dataset == "cifar10" && std::filesystem::exists(std::filesystem::path(c.data_dir) / "data_batch_1.bin")) {
    FE_TRY_ASSIGN(data::ImageSet set, data::load_cifar10_binary(c.data_dir, std::string(split) == "train" ? data::Split::train
                                                                                                         : data::Split::test));
    return set;
  }
  FE_TRY_ASSIGN(data::ImageSet set, data::load_image_folder(dir, o));
  return set;
}

Result<std::pair<data::ImageSet, data::ImageSet>> load_data(const Config& c) {
  if (c.dataset == "synthetic") {
    FE_TRY_ASSIGN(auto train, data::make_synthetic_images(c.train_samples > 0 ? c.train_samples : 2560, c.seed, data::Split::train));
    FE_TRY_ASSIGN(auto test, data::make_synthetic_images(c.test_samples > 0 ? c.test_samples : 1000, c.seed, data::Split::test));
    return std::pair{std::move(train), std::move(test)};
  }
  FE_TRY_ASSIGN(auto train, load_split(c, "train", c.train_samples));
  FE_TRY_ASSIGN(auto test, load_split(c, "test", c.test_samples));
  if (train.classes != test.classes)
    return make_error(ErrorCode::invalid_argument, "bench/resnet18",
                      fmt::format("{}: the train and test folders have different classes", c.data_dir));
  return std::pair{std::move(train), std::move(test)};
}

// Exactly what this run trains on, for PyTorch (scripts/pytorch/resnet18.py --data): the 8-bit
// images and labels of both splits, every epoch's batch order and every sample's crop offset and flip.
Status export_data(const std::string& path, const Config& c, const data::ImageSet& train, const data::ImageSet& test,
                   const data::AugmentOptions& aug) {
  const std::int64_t n = train.size();
  FE_TRY_ASSIGN(Tensor order, Tensor::empty({c.epochs, n}, DType::i32));
  FE_TRY_ASSIGN(Tensor draws, Tensor::empty({c.epochs, n, 3}, DType::i32));  // (dy, dx, flip) of sample i in epoch e
  for (std::int64_t e = 0; e < c.epochs; ++e) {
    const auto perm = data::epoch_order(n, c.seed, e);
    std::copy(perm.begin(), perm.end(), order.data<std::int32_t>() + e * n);
    for (std::int64_t i = 0; i < n; ++i) {
      const data::AugmentDraw d = c.augment ? data::augment_params(c.seed, e, i, aug) : data::AugmentDraw{aug.pad, aug.pad, false};
      std::int32_t* row = draws.data<std::int32_t>() + (e * n + i) * 3;
      row[0] = d.dy;
      row[1] = d.dx;
      row[2] = d.flip ? 1 : 0;
    }
  }
  return io::save_safetensors(path,
                              {{"train_images", &train.pixels}, {"train_labels", &train.labels},
                               {"test_images", &test.pixels}, {"test_labels", &test.labels},
                               {"batch_order", &order}, {"augment", &draws}},
                              {{"batch", std::to_string(c.batch)}, {"epochs", std::to_string(c.epochs)},
                               {"seed", std::to_string(c.seed)}, {"dataset", c.dataset}, {"pad", std::to_string(aug.pad)},
                               {"classes", std::to_string(train.classes.size())},
                               {"layout", "batch b of epoch e = batch_order[e, b*batch:(b+1)*batch]; sample i of epoch e is "
                                          "the zero-padded image cropped at (augment[e, i, 0], augment[e, i, 1]), mirrored "
                                          "if augment[e, i, 2]; then (x/255 - mean) / std"}});
}

std::vector<bench::NamedPath> input_paths(const Config& c) {
  std::vector<bench::NamedPath> in{{"--init-from", c.init_from}};
  // Resuming from the file the run keeps saving to is the usual loop: it is read before any write.
  if (c.resume != c.save) in.push_back({"--resume", c.resume});
  if (c.dataset != "synthetic") in.push_back({"--data-dir", c.data_dir});
  return in;
}
std::vector<bench::NamedPath> output_paths(const Config& c) {
  return {{"--save-init", c.save_init}, {"--export-data", c.export_data}, {"--save", c.save}};
}

// What a checkpoint must agree on to be resumed by this run: the model, the data, the batches and the
// schedule (a resumed run continues the same learning rates, orders and draws).
io::SafetensorsMetadata checkpoint_fields(const Config& c, const data::ImageSet& train, std::int64_t schedule_steps) {
  return {{"model", fmt::format("resnet18-cifar width {}", c.width)},
          {"dataset", c.dataset},
          {"train_samples", std::to_string(train.size())},
          {"batch", std::to_string(c.batch)},
          {"seed", std::to_string(c.seed)},
          {"augment", c.augment ? "on" : "off"},
          {"optimizer_flags", fmt::format("lr={:g} momentum={:g} nesterov={} weight_decay={:g}", c.lr, c.momentum,
                                          c.nesterov, c.weight_decay)},
          {"schedule", fmt::format("{} over {} steps, warm-up {}", c.schedule, schedule_steps, c.warmup_lr_steps)}};
}

// Copies of the model's buffers (BatchNorm statistics): the warm-up restores them with the weights
// (those as bench/mnist does, through the store's one flat buffer), so the timed run starts where
// PyTorch's does.
Result<std::vector<Tensor>> copy_buffers(const nn::BufferList& b) {
  std::vector<Tensor> out;
  for (const auto& x : b) {
    FE_TRY_ASSIGN(out.emplace_back(), x.value->clone());
  }
  return out;
}
Status restore_buffers(const nn::BufferList& b, const std::vector<Tensor>& saved) {
  for (std::size_t i = 0; i < b.size(); ++i) FE_TRY(b[i].value->copy_from(saved[i]));
  return ok_status();
}

Result<bench::RunSections> run(const Config& c, int threads) {
  FE_TRY(bench::check_output_paths("bench/resnet18", input_paths(c), output_paths(c)));
  FE_TRY_ASSIGN(const Device device, Device::parse(c.device));
  FE_TRY(check_device(device));
  FE_TRY_ASSIGN(const optim::LrSchedule::Kind kind, optim::LrSchedule::parse_kind(c.schedule));
  FE_TRY_ASSIGN(auto datasets, load_data(c));
  auto& [train, test] = datasets;

  models::ResNetConfig mc;
  mc.width = c.width;
  mc.in_channels = train.channels();
  mc.classes = static_cast<std::int64_t>(train.classes.size());
  FE_TRY_ASSIGN(models::ResNet model, models::ResNet::create(mc, c.seed));
  auto params = model.parameters();
  const auto buffers = model.buffers();
  if (!c.init_from.empty()) FE_TRY(nn::load_state_dict(params, buffers, c.init_from));
  if (!c.save_init.empty()) FE_TRY(nn::save_state_dict(params, buffers, c.save_init));
  data::AugmentOptions aug;
  if (!c.export_data.empty()) FE_TRY(export_data(c.export_data, c, train, test, aug));

  FE_TRY_ASSIGN(Context ctx, Context::create(device, {c.tf32}));
  FE_TRY_ASSIGN(nn::ParameterStore store, nn::ParameterStore::create(params, device));
  FE_TRY(nn::move_buffers(buffers, device));
  optim::SGDOptions so;
  so.lr = c.lr;
  so.momentum = c.momentum;
  so.nesterov = c.nesterov;
  so.weight_decay = c.weight_decay;

  train::ImageTrainOptions o;
  o.batch = c.batch;
  o.epochs = c.epochs;
  o.max_steps = c.max_steps;
  o.seed = c.seed;
  o.augment = c.augment;
  o.augmentation = aug;
  const std::int64_t steps_per_epoch = data::num_batches(train.size(), c.batch);
  const std::int64_t total_steps =
      c.max_steps >= 0 ? std::min(c.max_steps, steps_per_epoch * c.epochs) : steps_per_epoch * c.epochs;
  o.use_schedule = true;
  o.schedule.kind = kind;
  o.schedule.lr = c.lr;
  o.schedule.total_steps = c.schedule_steps > 0 ? c.schedule_steps : std::max<std::int64_t>(total_steps, 1);
  o.schedule.warmup_steps = c.warmup_lr_steps;
  FE_TRY(o.schedule.check());

  if (c.warmup_steps > 0) {  // page faults, thread start-up, caches; then everything back as it was
    FE_TRY_ASSIGN(const Tensor initial, store.value_buffer().clone());
    FE_TRY_ASSIGN(const std::vector<Tensor> initial_buffers, copy_buffers(buffers));
    FE_TRY_ASSIGN(auto warm_opt, optim::SGD::create(params, so, &store));
    train::ImageTrainOptions w = o;
    w.max_steps = c.warmup_steps;
    w.use_schedule = false;
    FE_TRY(train::train_image_classifier(ctx, model, warm_opt, train, w));
    FE_TRY(ctx.synchronize());
    FE_TRY(ops::copy(ctx, initial.cref(), store.values()));
    FE_TRY(restore_buffers(buffers, initial_buffers));
    FE_TRY(ctx.synchronize());
  }
  if (device.is_cuda()) FE_TRY(cuda::reset_peak_memory_stats(device.index));
  FE_TRY_ASSIGN(auto optimizer, optim::SGD::create(params, so, &store));
  const io::SafetensorsMetadata fields = checkpoint_fields(c, train, o.schedule.total_steps);
  if (!c.resume.empty()) {
    FE_TRY_ASSIGN(const train::CheckpointInfo info, train::load_checkpoint(c.resume, optimizer, fields, buffers));
    if (info.epochs_done >= c.epochs)
      return make_error(ErrorCode::invalid_argument, "bench/resnet18",
                        fmt::format("{}: the checkpoint has {} epoch(s) done, --epochs {} leaves nothing to train", c.resume,
                                    info.epochs_done, c.epochs));
    o.first_epoch = info.epochs_done;
  }

  const bool live = isatty(fileno(stderr)) != 0;
  std::vector<double> test_accuracy, test_loss;
  Stopwatch run_clock;
  double seconds_to_target = -1;
  auto on_step = [&](std::int64_t epoch, std::int64_t b, std::int64_t batches, double loss) {
    if (c.quiet) return;
    const double elapsed = run_clock.elapsed_seconds();
    const std::int64_t done = (epoch - o.first_epoch) * batches + b + 1;  // steps of this run
    const double eta = elapsed / double(done) * double(total_steps - o.first_epoch * batches - done);
    if (live)
      fmt::print(stderr, "\repoch {}/{}  step {}/{}  loss {:.4f}  {:.1f} img/s  ETA {:.0f} s   ", epoch + 1, c.epochs, b + 1,
                 batches, loss, double(done * c.batch) / elapsed, eta);
    else if ((b + 1) % 10 == 0 || b + 1 == batches)
      fmt::print(stderr, "epoch {}/{} step {}/{} loss {:.4f} {:.1f} img/s ETA {:.0f} s\n", epoch + 1, c.epochs, b + 1, batches,
                 loss, double(done * c.batch) / elapsed, eta);
  };
  auto on_epoch = [&](std::int64_t done) -> Status {
    FE_TRY_ASSIGN(const train::Evaluation e, train::evaluate_image_classifier(ctx, model, test, c.eval_batch, aug));
    test_accuracy.push_back(e.accuracy);
    test_loss.push_back(e.loss);
    if (seconds_to_target < 0 && e.accuracy >= 0.93) seconds_to_target = run_clock.elapsed_seconds();
    if (!c.quiet)
      fmt::print(stderr, "{}epoch {} done: test accuracy {:.2f} %, test loss {:.4f}\n", live ? "\n" : "", done,
                 100 * e.accuracy, e.loss);
    if (!c.save.empty()) FE_TRY(train::save_checkpoint(c.save, optimizer, done, fields, {}, buffers));
    return ok_status();
  };
  FE_TRY_ASSIGN(const train::TrainHistory history,
                train::train_image_classifier(ctx, model, optimizer, train, o, on_step, on_epoch));
  if (test_accuracy.size() < history.epoch_loss.size()) {  // a --max-steps cut inside an epoch: evaluate its end too
    FE_TRY_ASSIGN(const train::Evaluation e, train::evaluate_image_classifier(ctx, model, test, c.eval_batch, aug));
    test_accuracy.push_back(e.accuracy);
    test_loss.push_back(e.loss);
  }

  json profile = nullptr;
  if (c.profile_steps > 0) {  // untimed: per-op time of a few more steps (every op synchronizes)
    OpProfiler profiler;
    ctx.set_profiler(&profiler);
    FE_TRY_ASSIGN(auto prof_opt, optim::SGD::create(params, so, &store));
    train::ImageTrainOptions p = o;
    p.max_steps = c.profile_steps;
    p.use_schedule = false;
    FE_TRY_ASSIGN(const train::TrainHistory profiled, train::train_image_classifier(ctx, model, prof_opt, train, p));
    ctx.set_profiler(nullptr);
    profile = bench::profile_json(profiler, static_cast<std::int64_t>(profiled.step_loss.size()));
  }

  json device_json = bench::device_json(Device::cpu(), bench::cpu_model_name(), threads);
  json peak_device_mb = nullptr;
  if (device.is_cuda()) {
    FE_TRY_ASSIGN(const cuda::DeviceInfo info, cuda::device_info(device.index));
    FE_TRY_ASSIGN(const cuda::MemoryStats memory, cuda::memory_stats(device.index));
    device_json = bench::cuda_device_json(device, info, threads);
    peak_device_mb = cuda::bytes_to_mib(memory.peak_allocated_bytes);
  }
  // Throughput: images over the steps' own time (the per-epoch test evaluation is not training).
  double step_seconds = 0;
  for (double ms : history.step_ms) step_seconds += ms / 1e3;
  std::int64_t images = 0;
  for (auto n : history.epoch_samples) images += n;
  const double throughput = step_seconds > 0 ? double(images) / step_seconds : 0;
  FE_TRY_ASSIGN(const auto latency, bench::summarize_ms(history.step_ms));
  FE_TRY_ASSIGN(const double peak_rss, bench::peak_host_rss_mb());
  const double macs = double(model.macs_per_sample(train.height(), train.width()));
  const double flops_image = 3 * 2 * macs;  // forward + data gradient + weight gradient (the stem's data gradient is skipped)

  bench::RunSections out;
  out.device = device_json;
  out.backend = {{"conv", "im2col + SGEMM over the channel-major batch [C, N, H, W]"}, {"tf32", c.tf32}};
  out.metrics = {{"throughput", bench::throughput_json(throughput, "images/s", "images over the summed step times")},
                 {"latency_ms", latency},
                 {"peak_memory_mb", {{"host", peak_rss}, {"device", peak_device_mb}}},
                 {"flops_per_step", flops_image * double(c.batch)},
                 {"gflops", throughput * flops_image / 1e9},
                 {"train_seconds", run_clock.elapsed_seconds()}};
  if (seconds_to_target >= 0) out.metrics["seconds_to_93_percent"] = seconds_to_target;
  out.quality = {{"loss_per_epoch", history.epoch_loss},
                 {"final_loss", history.epoch_loss.empty() ? json(nullptr) : json(history.epoch_loss.back())},
                 {"test_accuracy_per_epoch", test_accuracy},
                 {"test_loss_per_epoch", test_loss},
                 {"test_accuracy", test_accuracy.empty() ? json(nullptr) : json(test_accuracy.back())},
                 {"train_accuracy", history.epoch_accuracy.empty() ? json(nullptr) : json(history.epoch_accuracy.back())},
                 {"train_accuracy_per_epoch", history.epoch_accuracy},
                 {"loss_per_step", history.step_loss}};
  out.extra = {{"model", fmt::format("resnet18-cifar width {}", c.width)},
               {"train_accuracy", "running accuracy over each epoch's augmented training batches (the steps' own logits)"},
               {"parameters", model.parameter_count()},
               {"macs_per_image", macs},
               {"flops_per_image", flops_image},
               {"flop_count", "3 x 2 x the forward multiply-adds (convolutions + classifier) per image"},
               {"train_samples", train.size()},
               {"test_samples", test.size()},
               {"steps", static_cast<std::int64_t>(history.step_ms.size())},
               {"step_time", "host wall clock per step (batch upload + forward + loss + backward + SGD, synchronized)"},
               {"profile", profile},
               {"resumed_after_epochs", o.first_epoch}};

  auto& s = out.summary;
  s.push_back(fmt::format("ferrite bench/resnet18 — {} ({} train / {} test), batch {}, {} epoch(s), SGD lr {:g} ({}), "
                          "momentum {:g}{}, wd {:g}, {} thread(s)",
                          c.dataset, train.size(), test.size(), c.batch, c.epochs, c.lr, c.schedule, c.momentum,
                          c.nesterov ? " nesterov" : "", c.weight_decay, threads));
  s.push_back(fmt::format("{:>6} {:>12} {:>14}", "epoch", "mean loss", "test acc %"));
  for (std::size_t e = 0; e < history.epoch_loss.size(); ++e)
    s.push_back(fmt::format("{:>6} {:>12.5f} {:>14.2f}", o.first_epoch + std::int64_t(e) + 1, history.epoch_loss[e],
                            e < test_accuracy.size() ? 100 * test_accuracy[e] : 0.0));
  s.push_back(fmt::format("throughput   {:.1f} images/s, {:.1f} GFLOP/s ({:.2f} GFLOP per image)", throughput,
                          throughput * flops_image / 1e9, flops_image / 1e9));
  s.push_back(fmt::format("step latency p50 {:.1f} ms, p95 {:.1f} ms, p99 {:.1f} ms", latency.p50, latency.p95, latency.p99));
  s.push_back(fmt::format("time         {:.1f} s, peak host memory {:.0f} MiB", run_clock.elapsed_seconds(), peak_rss));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  CLI::App app{"ferrite bench/resnet18: train ResNet-18 (CIFAR variant) and report speed and quality as JSON"};
  app.add_option("--dataset", c.dataset, "synthetic | cifar10 (ImageFolder copy or the official .bin files) | imagefolder")
      ->check(CLI::IsMember({"synthetic", "cifar10", "imagefolder"}));
  app.add_option("--data-dir", c.data_dir, "folder with train/<class>/*.jpg and test/<class>/*.jpg (or data_batch_1.bin ...)")
      ->check(bench::kPath);
  app.add_option("--train-samples", c.train_samples, "training images (0 = all; a class-balanced subset)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 30));
  app.add_option("--test-samples", c.test_samples, "test images (0 = all)")->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 30));
  app.add_option("--batch", c.batch, "batch size")->check(CLI::Range(std::int64_t{1}, kMaxBatch));
  app.add_option("--epochs", c.epochs, "epochs")->check(CLI::Range(std::int64_t{1}, kMaxEpochs));
  app.add_option("--max-steps", c.max_steps, "stop after this many steps (a timing run; the schedule spans them)")
      ->check(CLI::Range(std::int64_t{1}, kMaxSteps));
  app.add_option("--lr", c.lr, "peak learning rate")->check(CLI::PositiveNumber & bench::kFinite);
  app.add_option("--momentum", c.momentum, "SGD momentum")->check(CLI::Range(0.0, 1.0) & bench::kFinite);
  app.add_flag("--nesterov", c.nesterov, "Nesterov momentum");
  app.add_option("--weight-decay", c.weight_decay, "weight decay (PyTorch's coupled L2)")->check(CLI::Range(0.0, 1.0) & bench::kFinite);
  app.add_option("--schedule", c.schedule, "constant | cosine | onecycle (torch.optim.lr_scheduler's formulas)")
      ->check(CLI::IsMember({"constant", "cosine", "onecycle"}));
  app.add_option("--warmup-lr-steps", c.warmup_lr_steps, "cosine: linear warm-up steps")->check(CLI::Range(std::int64_t{0}, kMaxSteps));
  app.add_option("--schedule-steps", c.schedule_steps,
                 "the steps the schedule spans (default: this run's); e.g. the first --max-steps 10 of a 30-epoch schedule")
      ->check(CLI::Range(std::int64_t{0}, kMaxSteps));
  app.add_option("--width", c.width, "channels of the first stage (64 = ResNet-18)")->check(CLI::Range(std::int64_t{1}, std::int64_t{1024}));
  app.add_option("--seed", c.seed, "seed of initialization, data, batch order and augmentation")->check(bench::kSeed);
  app.add_option("--threads", c.threads, "CPU threads (0 = all)")->check(CLI::Range(0, bench::kMaxThreadsFlag));
  app.add_option("--device", c.device, "cpu | cuda | cuda:N");
  app.add_option("--warmup-steps", c.warmup_steps, "untimed steps first (weights and statistics restored after)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1000}));
  app.add_option("--eval-batch", c.eval_batch, "batch size of the test evaluation")->check(CLI::Range(std::int64_t{1}, kMaxBatch));
  app.add_flag("--augment,!--no-augment", c.augment, "random crop (pad 4) + horizontal flip (default on)");
  app.add_option("--json", c.json_path, "write the ferrite-bench/1 JSON report here")->check(bench::kPath);
  app.add_option("--save-init", c.save_init, "write the initial state_dict (safetensors, torchvision names)")->check(bench::kPath);
  app.add_option("--init-from", c.init_from, "start from this state_dict (safetensors, torchvision names)")->check(bench::kPath);
  app.add_option("--export-data", c.export_data, "write the images, batch orders and augmentation draws (safetensors)")
      ->check(bench::kPath);
  app.add_option("--save", c.save, "after every epoch, write a checkpoint here (weights, BatchNorm buffers, optimizer state, step)")
      ->check(bench::kPath);
  app.add_option("--resume", c.resume, "continue from this checkpoint: the epochs after those it has done, bit-identically")
      ->check(bench::kPath);
  app.add_option("--profile", c.profile_steps, "after the timed run, time every op over this many steps (extra.profile)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1000}));
  app.add_flag("--tf32", c.tf32, "--device cuda: TF32 tensor cores in the convolution GEMMs (default off: FP32)");
  app.add_flag("--quiet", c.quiet, "no progress on stderr");
  app.add_flag("--pin,!--no-pin", c.pin, "pin threads to distinct CPUs (default on)");
  if (const auto exit = bench::parse_or_report(app, argc, argv, "resnet18", [&] {
        json r = bench::make_report_skeleton("resnet18", build_info(), bench::collect_environment(build_info()),
                                             bench::device_strings(available_devices()));
        r["config"] = {{"command_line", std::vector<std::string>(argv, argv + argc)}};
        return r;
      }))
    return *exit;
  if (const Status s = bench::check_report_path("bench/resnet18", c.json_path, input_paths(c), output_paths(c)); !s.ok()) {
    std::fprintf(stderr, "resnet18: error: %s\n", s.error().to_string().c_str());
    return 1;
  }
  cpu::JoinWorkersAtExit join_workers;
  cpu::ThreadLimit limit(c.threads);
  std::optional<cpu::ThreadPinning> pinning;
  if (c.pin) pinning.emplace();
  const auto env = bench::collect_environment(build_info());
  json report = bench::make_report_skeleton("resnet18", build_info(), env, bench::device_strings(available_devices()));
  report["config"] = config_json(c);
  auto result = bench::run_guarded("resnet18", [&] { return run(c, limit.threads()); });
  auto device = Device::parse(c.device);
  return bench::finish_report("resnet18", std::move(report), result, device.ok() ? *device : Device::cpu(), limit.threads(),
                              c.json_path);
}
