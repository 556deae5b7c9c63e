// The smallest complete ferrite program: build the MNIST-shaped MLP (784→128→64→10), train it with Adam
// on the synthetic dataset for 3 epochs, report loss and accuracy, save the weights as safetensors
// (loadable in PyTorch with safetensors.torch.load_file: same names and layouts as nn.Sequential).
// The same code runs on the CPU or a GPU: only the Context and the ParameterStore name the device.
//
//   ./build/examples/train_mlp [weights.safetensors] [cpu|cuda|cuda:N]   (default: mlp.safetensors cpu)
//
// Every fallible call returns a Result; FE_TRY / FE_TRY_ASSIGN hand errors up to main, which prints
// them. Nothing here throws or aborts on bad input.
#include <cstdio>
#include <string>

#include "ferrite/data/synthetic.hpp"
#include "ferrite/models/mlp.hpp"
#include "ferrite/nn/parameter_store.hpp"
#include "ferrite/nn/state_dict.hpp"
#include "ferrite/optim/factory.hpp"
#include "ferrite/train/classifier.hpp"

using namespace ferrite;

static Status run(const std::string& weights_path, const std::string& device_name) {
  const std::uint64_t seed = 42;
  FE_TRY_ASSIGN(const Device device, Device::parse(device_name));
  FE_TRY_ASSIGN(Context ctx, Context::create(device));  // device_unavailable names what is there

  // Data: 2,000 training and 500 held-out samples, images f32 [N, 784] in [0, 1], labels i32 [N].
  FE_TRY_ASSIGN(data::Dataset train, data::make_synthetic(2000, seed, data::Split::train));
  FE_TRY_ASSIGN(data::Dataset test, data::make_synthetic(500, seed, data::Split::test));

  // Model: Linear(784,128) → ReLU → Linear(128,64) → ReLU → Linear(64,10), PyTorch's default init.
  FE_TRY_ASSIGN(nn::Sequential model, models::make_mlp(train.features(), {128, 64}, train.num_classes, seed));

  // Parameters: one flat buffer on the device (the model's tensors become views into it).
  auto params = model.parameters();
  FE_TRY_ASSIGN(nn::ParameterStore store, nn::ParameterStore::create(params, device));

  // Optimizer: Adam, lr 1e-3, over the model's parameters (borrowed: the model owns them).
  optim::OptimizerOptions adam;
  adam.name = "adam";
  adam.lr = 1e-3;
  FE_TRY_ASSIGN(auto optimizer, optim::make_optimizer(params, adam, &store));

  // Train: batch 32, 3 epochs, batch order shuffled from the seed.
  train::TrainOptions options;
  options.batch = 32;
  options.epochs = 3;
  options.seed = seed;
  FE_TRY_ASSIGN(train::TrainHistory history, train::train_classifier(ctx, model, *optimizer, train, options));
  for (std::size_t e = 0; e < history.epoch_loss.size(); ++e)
    std::printf("epoch %zu  mean loss %.4f  (%.2f s)\n", e + 1, history.epoch_loss[e], history.epoch_seconds[e]);

  // Evaluate on both splits (forward only, no parameter change).
  FE_TRY_ASSIGN(train::Evaluation on_train, train::evaluate_classifier(ctx, model, train));
  FE_TRY_ASSIGN(train::Evaluation on_test, train::evaluate_classifier(ctx, model, test));
  std::printf("train  loss %.4f  accuracy %.1f%%\n", on_train.loss, 100.0 * on_train.accuracy);
  std::printf("test   loss %.4f  accuracy %.1f%%\n", on_test.loss, 100.0 * on_test.accuracy);

  // Save: 0.weight [128, 784], 0.bias [128], 2.weight, 2.bias, 4.weight, 4.bias (f32).
  FE_TRY(nn::save_parameters(params, weights_path));  // copied to the host first if on a GPU
  std::printf("saved %s\n", weights_path.c_str());
  return ok_status();
}

int main(int argc, char** argv) {
  const std::string weights_path = argc > 1 ? argv[1] : "mlp.safetensors";
  const Status status = run(weights_path, argc > 2 ? argv[2] : "cpu");
  if (!status.ok()) {
    std::fprintf(stderr, "train_mlp: %s\n", status.error().to_string().c_str());
    return 1;
  }
  return 0;
}
