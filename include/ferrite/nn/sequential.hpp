#pragma once
// Sequential: modules chained in order, named by index like torch.nn.Sequential ("0.weight", …).
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ferrite/nn/activation.hpp"
#include "ferrite/nn/linear.hpp"
#include "ferrite/nn/module.hpp"

namespace ferrite::nn {

class Sequential final : public Module {
 public:
  template <class M>
  M& add(M module) {
    auto owned = std::make_unique<M>(std::move(module));
    M& ref = *owned;
    modules_.push_back(std::move(owned));
    return ref;
  }

  // Fuses every Linear immediately followed by a ReLU (bias + ReLU in one pass). Idempotent.
  void fuse_activations() {
    for (std::size_t i = 0; i + 1 < modules_.size(); ++i) {
      auto* linear = dynamic_cast<Linear*>(modules_[i].get());
      auto* relu = dynamic_cast<ReLU*>(modules_[i + 1].get());
      if (linear && relu && linear->activation() == Activation::none) {
        linear->set_activation(Activation::relu);
        relu->set_fused_into_previous(true);
      }
    }
  }

  Result<ConstTensorRef> forward(Context& ctx, ConstTensorRef x) override {
    if (!modules_.empty()) modules_.front()->set_input_grad(this->input_grad_);
    ConstTensorRef h = x;
    for (auto& m : modules_) {
      FE_TRY_ASSIGN(h, m->forward(ctx, h));
    }
    return h;
  }

  Result<ConstTensorRef> backward(Context& ctx, ConstTensorRef dy) override {
    ConstTensorRef g = dy;
    for (auto it = modules_.rbegin(); it != modules_.rend(); ++it) {
      FE_TRY_ASSIGN(g, (*it)->backward(ctx, g));
    }
    return g;
  }

  void collect_parameters(const std::string& prefix, ParameterList& out) override {
    for (std::size_t i = 0; i < modules_.size(); ++i)
      modules_[i]->collect_parameters(prefix + std::to_string(i) + ".", out);
  }
  void collect_buffers(const std::string& prefix, BufferList& out) override {
    for (std::size_t i = 0; i < modules_.size(); ++i) modules_[i]->collect_buffers(prefix + std::to_string(i) + ".", out);
  }

  std::string describe() const override {
    std::string s = "Sequential(\n";
    for (std::size_t i = 0; i < modules_.size(); ++i)
      s += "  (" + std::to_string(i) + "): " + modules_[i]->describe() + "\n";
    return s + ")";
  }

  std::size_t size() const noexcept { return modules_.size(); }
  Module& operator[](std::size_t i) { return *modules_[i]; }

 protected:
  void on_mode_change(bool training) override {
    for (auto& m : modules_) m->train(training);
  }

 private:
  std::vector<std::unique_ptr<Module>> modules_;
};

}  // namespace ferrite::nn
