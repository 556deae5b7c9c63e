// A CUDA translation unit that includes the whole public API (tests/headers: `nvcc-umbrella`).
// DESIGN: public headers hold no CUDA types and compile under nvcc as well as g++, so a user's .cu file
// can include them next to its kernels. The host function below instantiates the main templates
// (Result of a move-only Tensor, Sequential, the optimizers, the training loop, safetensors) under
// nvcc's front end; it is compiled, not run (no GPU needed).
#include "ferrite/ferrite.hpp"

__global__ void scale_kernel(float* x, float a, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] *= a;
}

ferrite::Status umbrella_host_smoke(const char* weights_path) {
  using namespace ferrite;
  FE_TRY_ASSIGN(Tensor t, Tensor::zeros({4, 8}));
  FE_TRY_ASSIGN(Tensor copy, t.clone());
  FE_TRY_ASSIGN(data::Dataset train, data::make_synthetic(64, 1, data::Split::train));
  FE_TRY_ASSIGN(nn::Sequential model, models::make_mlp(train.features(), {16}, train.num_classes, 1));
  auto params = model.parameters();
  FE_TRY_ASSIGN(nn::ParameterStore store, nn::ParameterStore::create(params, Device::cpu()));
  FE_TRY_ASSIGN(auto optimizer, optim::make_optimizer(params, optim::OptimizerOptions{}, &store));
  FE_TRY_ASSIGN(Context ctx, Context::create(Device::cpu()));
  train::TrainOptions options;
  options.batch = 16;
  options.epochs = 1;
  FE_TRY_ASSIGN(auto history, train::train_classifier(ctx, model, *optimizer, train, options));
  FE_TRY_ASSIGN(auto eval, train::evaluate_classifier(ctx, model, train));
  (void)history;
  (void)eval;
  FE_TRY(nn::save_parameters(model.parameters(), weights_path));
  FE_TRY_ASSIGN(auto file, io::load_safetensors(weights_path));
  (void)file;
  return check_device(Device::cpu());
}
