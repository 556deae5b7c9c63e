// A program outside ferrite's build that uses it by include path only: a one-epoch MLP fit on a small
// synthetic set, then a safetensors round trip of the weights. Exits 0 when everything worked.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "ferrite/ferrite.hpp"

using namespace ferrite;

static Status run() {
  FE_TRY_ASSIGN(data::Dataset train, data::make_synthetic(256, /*seed=*/7, data::Split::train));
  FE_TRY_ASSIGN(nn::Sequential model, models::make_mlp(train.features(), {32}, train.num_classes, 7));
  auto params = model.parameters();
  FE_TRY_ASSIGN(auto adam, optim::make_optimizer(params, optim::OptimizerOptions{}));  // Adam, lr 1e-3
  Context ctx = Context::cpu();  // Context::create(Device::cuda(0)) in a CUDA build: the same code
  FE_TRY_ASSIGN(auto history, train::train_classifier(ctx, model, *adam, train, {.batch = 32, .epochs = 1}));
  FE_TRY_ASSIGN(auto eval, train::evaluate_classifier(ctx, model, train));
  std::printf("consumer: 1 epoch, loss %.4f, train accuracy %.1f%%\n", history.epoch_loss.back(),
              100.0 * eval.accuracy);

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

int main() {
  const Status status = run();
  if (!status.ok()) {
    std::fprintf(stderr, "consumer: %s\n", status.error().to_string().c_str());
    return 1;
  }
  return 0;
}
