// Second translation unit of the umbrella link check (see umbrella_a.cpp).
#include <cmath>
#include <cstdio>

#include "ferrite/ferrite.hpp"

using namespace ferrite;

static Status smoke() {
  FE_TRY_ASSIGN(data::Dataset train, data::make_synthetic(64, /*seed=*/1, data::Split::train));
  FE_TRY_ASSIGN(nn::Sequential model, models::make_mlp(train.features(), {16}, train.num_classes, 1));
  Context ctx = Context::cpu();
  FE_TRY_ASSIGN(auto optimizer, optim::make_optimizer(model.parameters(), optim::OptimizerOptions{}));
  FE_TRY_ASSIGN(auto history, train::train_classifier(ctx, model, *optimizer, train, {.batch = 16, .epochs = 1}));
  if (history.step_loss.size() != 4 || !std::isfinite(history.epoch_loss.back()))
    return make_error(ErrorCode::invalid_argument, "umbrella_smoke", "unexpected training history");
  return ok_status();
}

int umbrella_smoke_b() {
  const Status status = smoke();
  if (!status.ok()) {
    std::fprintf(stderr, "%s\n", status.error().to_string().c_str());
    return 1;
  }
  std::printf("two translation units including ferrite/ferrite.hpp link and run\n");
  return 0;
}
