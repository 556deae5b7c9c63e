// A program outside ferrite's build that uses ferrite the way another project would (by include path,
// pkg-config, CMake or Meson: see README.md): a one-epoch MLP fit on a small synthetic set, then a
// safetensors round trip of the weights. Exits 0 when everything worked.
//
//   consumer [cpu|cuda|cuda:N]   (default cpu; cuda needs a build linked with ferrite's CUDA backend)
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "ferrite/ferrite.hpp"

using namespace ferrite;

static Status run(const char* device_name) {
  // Which backends this binary carries (ferrite::cuda / ferrite-cuda.pc add the CUDA one).
  std::printf("consumer: CUDA backend %s, %d GPU(s) visible\n", cuda::compiled_with_cuda() ? "linked" : "not linked",
              cuda::device_count());
  FE_TRY_ASSIGN(const Device device, Device::parse(device_name));
  FE_TRY_ASSIGN(Context ctx, Context::create(device));  // device_unavailable names the devices there are

  FE_TRY_ASSIGN(data::Dataset train, data::make_synthetic(256, /*seed=*/7, data::Split::train));
  FE_TRY_ASSIGN(nn::Sequential model, models::make_mlp(train.features(), {32}, train.num_classes, 7));
  auto params = model.parameters();
  FE_TRY_ASSIGN(nn::ParameterStore store, nn::ParameterStore::create(params, device));  // weights move there
  FE_TRY_ASSIGN(auto adam, optim::make_optimizer(params, optim::OptimizerOptions{}, &store));  // Adam, lr 1e-3
  FE_TRY_ASSIGN(auto history, train::train_classifier(ctx, model, *adam, train, {.batch = 32, .epochs = 1}));
  FE_TRY_ASSIGN(auto eval, train::evaluate_classifier(ctx, model, train));
  std::printf("consumer: 1 epoch on %s, loss %.4f, train accuracy %.1f%%\n", device.to_string().c_str(),
              history.epoch_loss.back(), 100.0 * eval.accuracy);

  // Save, reload into the same parameters (strict: names, shapes and dtypes must all match).
  // (The process id in the name: ferrite's tests build and run this consumer several ways at once.)
  const auto path = std::filesystem::temp_directory_path() /
                    ("ferrite_consumer_mlp_" + std::to_string(::getpid()) + ".safetensors");
  FE_TRY(nn::save_parameters(params, path));
  FE_TRY(nn::load_parameters(params, path));
  std::filesystem::remove(path);
  std::printf("consumer: saved and reloaded %zu tensors\n", params.size());
  return ok_status();
}

int main(int argc, char** argv) {
  if (argc > 2) {
    std::fprintf(stderr, "usage: consumer [cpu|cuda|cuda:N]\n");
    return 2;
  }
  const Status status = run(argc > 1 ? argv[1] : "cpu");
  if (!status.ok()) {
    std::fprintf(stderr, "consumer: %s\n", status.error().to_string().c_str());
    return 1;
  }
  return 0;
}
