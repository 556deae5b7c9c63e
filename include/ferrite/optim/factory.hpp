#pragma once
// Builds an optimizer by name ("adam" | "adamw" | "sgd"), for programs that pick it from a flag.
#include <memory>
#include <string>

#include "ferrite/optim/adam.hpp"
#include "ferrite/optim/sgd.hpp"

namespace ferrite::optim {

struct OptimizerOptions {
  std::string name = "adam";
  double lr = 1e-3;
  double momentum = 0.0;      // sgd only
  double weight_decay = -1.0; // < 0: the optimizer's PyTorch default (Adam/SGD 0, AdamW 1e-2)
};

// With `store` holding exactly `params` (the usual case: a model moved into a ParameterStore), the
// optimizer's state is flat and a step is one fused op.
inline Result<std::unique_ptr<Optimizer>> make_optimizer(nn::ParameterList params, const OptimizerOptions& o,
                                                         const nn::ParameterStore* store = nullptr) {
  if (o.name == "adam") {
    AdamOptions a;
    a.lr = o.lr;
    if (o.weight_decay >= 0) a.weight_decay = o.weight_decay;
    FE_TRY_ASSIGN(auto opt, Adam::create(std::move(params), a, store));
    return std::unique_ptr<Optimizer>(std::make_unique<Adam>(std::move(opt)));
  }
  if (o.name == "adamw") {
    AdamWOptions a;
    a.lr = o.lr;
    if (o.weight_decay >= 0) a.weight_decay = o.weight_decay;
    FE_TRY_ASSIGN(auto opt, AdamW::create(std::move(params), a, store));
    return std::unique_ptr<Optimizer>(std::make_unique<AdamW>(std::move(opt)));
  }
  if (o.name == "sgd") {
    SGDOptions s;
    s.lr = o.lr;
    s.momentum = o.momentum;
    if (o.weight_decay >= 0) s.weight_decay = o.weight_decay;
    FE_TRY_ASSIGN(auto opt, SGD::create(std::move(params), s, store));
    return std::unique_ptr<Optimizer>(std::make_unique<SGD>(std::move(opt)));
  }
  return make_error(ErrorCode::invalid_argument, "make_optimizer",
                    "unknown optimizer '" + o.name + "' (expected adam, adamw or sgd)");
}

}  // namespace ferrite::optim
