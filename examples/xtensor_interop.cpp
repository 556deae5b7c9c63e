// ferrite and xtensor on the same memory: a batch built with xtensor goes through a ferrite Linear
// layer without a copy, and the layer's output is read back with xtensor's printing and reductions,
// again without a copy (ferrite/tensor/xtensor.hpp).
//
//   ./build/examples/xtensor_interop
#include <cstdio>
#include <iostream>

#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xtensor.hpp>
// xtensor's printer trips a known GCC 12 -O3 false positive (-Wrestrict inside std::string::insert).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wrestrict"
#endif
#include <xtensor/xio.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include "ferrite/nn/linear.hpp"
#include "ferrite/tensor/xtensor.hpp"

using namespace ferrite;

static Status run() {
  // A batch of 4 samples with 3 features, built in xtensor.
  xt::xtensor<float, 2> batch = xt::linspace<float>(-1.f, 1.f, 12).reshape({4, 3});

  // A ferrite Linear(3 -> 2), PyTorch's default init from a seed.
  FE_TRY_ASSIGN(nn::Linear linear, nn::Linear::create(3, 2));
  linear.reset_parameters(/*seed=*/7, /*stream=*/0);

  // xtensor -> ferrite: the layer reads `batch` where it lies (tensor_ref borrows, no copy).
  Context ctx = Context::cpu();
  FE_TRY_ASSIGN(TensorRef x, tensor_ref(batch));
  FE_TRY_ASSIGN(ConstTensorRef y, linear.forward(ctx, x));

  // ferrite -> xtensor: the output (in the context's workspace) as an xtensor expression, no copy.
  FE_TRY_ASSIGN(auto out, (xt_view<float, 2>(y)));  // () around the comma
  std::cout << "input " << x.describe() << ":\n" << batch << "\n";
  std::cout << "Linear(3, 2) output " << y.describe() << ":\n" << out << "\n";
  std::cout << "row sums: " << xt::sum(out, {1}) << "\n";
  std::cout << "row maxima: " << xt::amax(out, {1}) << "\n";
  std::printf("mean %.4f, max |y| %.4f\n", static_cast<double>(xt::mean(out)()),
              static_cast<double>(xt::amax(xt::abs(out))()));

  // The layer's weights are tensors too: look at them (or set them) through xtensor.
  FE_TRY_ASSIGN(auto w, (xt_view<float, 2>(linear.weight().cref())));
  std::cout << "weight [out, in]:\n" << w << "\n";

  // An owning ferrite copy of any xtensor expression, when the result must outlive its inputs.
  FE_TRY_ASSIGN(Tensor relu, to_tensor(xt::maximum(out, 0.f)));
  std::printf("relu(output) kept as %s\n", relu.describe().c_str());
  return ok_status();
}

int main() {
  const Status status = run();
  if (!status.ok()) {
    std::fprintf(stderr, "xtensor_interop: %s\n", status.error().to_string().c_str());
    return 1;
  }
  return 0;
}
