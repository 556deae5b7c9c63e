#pragma once
// ResNet-18 for CIFAR-10 (the "CIFAR variant" of He et al. as fast CIFAR recipes use it): a 3x3
// stride-1 stem convolution (64, no bias) + BatchNorm + ReLU and no max-pool; four stages of two
// BasicBlocks (64, 128, 256, 512 channels; stride 2 and a 1x1 conv + BatchNorm shortcut at the first
// block of stages 2-4); global average pooling; Linear 512 -> 10. 11,173,962 parameters.
// Names as torchvision's resnet18 state_dict (conv1.weight, bn1.running_mean, layer2.0.downsample.0.weight,
// layer2.0.downsample.1.num_batches_tracked, fc.bias, ...), so a PyTorch checkpoint of this network
// loads by name.
//
// Input: images x[N, C, H, W] (NCHW, the data pipeline's layout); the network runs on the channel-major
// batch layout [C, N, H, W] inside (ops/batch_conv.hpp: one GEMM per convolution over the batch) and
// returns logits [N, classes]. Fused: every BatchNorm with its ReLU, each block's second BatchNorm with
// the shortcut add and ReLU (one pass), the classifier's softmax + cross-entropy + gradient
// (nn::CrossEntropyLoss); in backward, the shortcut's gradient is accumulated straight into the data
// gradient of the block's first convolution (no separate add).
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ferrite/core/rng.hpp"
#include "ferrite/nn/batch_norm.hpp"
#include "ferrite/nn/conv2d.hpp"
#include "ferrite/nn/linear.hpp"
#include "ferrite/ops/pool.hpp"

namespace ferrite::models {

// conv3x3 -> BN -> ReLU -> conv3x3 -> BN -> (+ shortcut) -> ReLU; the shortcut a 1x1 strided conv + BN
// when the shape changes (torchvision's BasicBlock, expansion 1).
class BasicBlock final : public nn::Module {
 public:
  static Result<BasicBlock> create(std::int64_t in, std::int64_t out, std::int64_t stride, DType dtype = DType::f32) {
    BasicBlock b;
    FE_TRY_ASSIGN(b.conv1_, make<nn::Conv2d>(nn::Conv2d::create(in, out, 3, stride, 1, dtype)));
    FE_TRY_ASSIGN(b.bn1_, make<nn::BatchNorm2d>(nn::BatchNorm2d::create(out, 1e-5, 0.1, dtype)));
    FE_TRY_ASSIGN(b.conv2_, make<nn::Conv2d>(nn::Conv2d::create(out, out, 3, 1, 1, dtype)));
    FE_TRY_ASSIGN(b.bn2_, make<nn::BatchNorm2d>(nn::BatchNorm2d::create(out, 1e-5, 0.1, dtype)));
    if (stride != 1 || in != out) {
      FE_TRY_ASSIGN(b.down_conv_, make<nn::Conv2d>(nn::Conv2d::create(in, out, 1, stride, 0, dtype)));
      FE_TRY_ASSIGN(b.down_bn_, make<nn::BatchNorm2d>(nn::BatchNorm2d::create(out, 1e-5, 0.1, dtype)));
    }
    return b;
  }

  // Seeds each convolution from its own Philox stream: stream, stream + 1, (stream + 2 for the shortcut).
  void reset_parameters(std::uint64_t seed, std::uint64_t stream) {
    conv1_->reset_parameters(seed, stream);
    conv2_->reset_parameters(seed, stream + 1);
    if (down_conv_) down_conv_->reset_parameters(seed, stream + 2);
  }

  Result<ConstTensorRef> forward(Context& ctx, ConstTensorRef x) override {
    block_input_shape_ = x.shape;
    FE_TRY_ASSIGN(ConstTensorRef h, conv1_->forward(ctx, x));
    FE_TRY_ASSIGN(h, bn1_->forward_fused(ctx, h, {}, true));
    FE_TRY_ASSIGN(ConstTensorRef h2, conv2_->forward(ctx, h));
    ConstTensorRef shortcut = x;
    if (down_conv_) {
      FE_TRY_ASSIGN(ConstTensorRef s, down_conv_->forward(ctx, x));
      FE_TRY_ASSIGN(shortcut, down_bn_->forward_fused(ctx, s, {}, false));
    }
    return bn2_->forward_fused(ctx, h2, shortcut, true);
  }

  Result<ConstTensorRef> backward(Context& ctx, ConstTensorRef dy) override {
    TensorRef dshortcut;  // relu'(out) * dy: the gradient of the shortcut's output
    FE_TRY_ASSIGN(ConstTensorRef g, bn2_->backward_fused(ctx, dy, &dshortcut));
    FE_TRY_ASSIGN(g, conv2_->backward(ctx, g));
    FE_TRY_ASSIGN(g, bn1_->backward(ctx, g));
    TensorRef dx = dshortcut;  // identity shortcut: dx = dshortcut + conv1's data gradient
    if (down_conv_) {
      FE_TRY_ASSIGN(ConstTensorRef ds, down_bn_->backward(ctx, dshortcut));
      FE_TRY_ASSIGN(dx, ctx.workspace().allocate(block_input_shape_, ds.dtype));
      FE_TRY(down_conv_->backward_into(ctx, ds, dx, false));
    }
    FE_TRY(conv1_->backward_into(ctx, g, dx, true));
    return ConstTensorRef(dx);
  }

  void collect_parameters(const std::string& prefix, nn::ParameterList& out) override {
    conv1_->collect_parameters(prefix + "conv1.", out);
    bn1_->collect_parameters(prefix + "bn1.", out);
    conv2_->collect_parameters(prefix + "conv2.", out);
    bn2_->collect_parameters(prefix + "bn2.", out);
    if (down_conv_) {
      down_conv_->collect_parameters(prefix + "downsample.0.", out);
      down_bn_->collect_parameters(prefix + "downsample.1.", out);
    }
  }
  void collect_buffers(const std::string& prefix, nn::BufferList& out) override {
    bn1_->collect_buffers(prefix + "bn1.", out);
    bn2_->collect_buffers(prefix + "bn2.", out);
    if (down_bn_) down_bn_->collect_buffers(prefix + "downsample.1.", out);
  }
  std::string describe() const override {
    return "BasicBlock(" + conv1_->describe() + ", " + conv2_->describe() +
           (down_conv_ ? ", downsample=" + down_conv_->describe() : std::string()) + ")";
  }

  // Multiply-adds of one forward per sample for an h x w input; (h, w) becomes the output's size.
  std::int64_t macs_per_sample(std::int64_t& h, std::int64_t& w) const {
    std::int64_t m = conv1_->macs_per_sample(h, w);
    if (down_conv_) m += down_conv_->macs_per_sample(h, w);
    h = conv1_->out_size(h);
    w = conv1_->out_size(w);
    return m + conv2_->macs_per_sample(h, w);
  }

 protected:
  void on_mode_change(bool training) override {
    for (nn::Module* m : children()) m->train(training);
  }

 private:
  BasicBlock() = default;
  std::vector<nn::Module*> children() {
    std::vector<nn::Module*> c{conv1_.get(), bn1_.get(), conv2_.get(), bn2_.get()};
    if (down_conv_) c.insert(c.end(), {down_conv_.get(), down_bn_.get()});
    return c;
  }

  template <class M>
  static Result<std::unique_ptr<M>> make(Result<M> m) {
    FE_TRY_ASSIGN(M v, std::move(m));
    return std::make_unique<M>(std::move(v));
  }

  std::unique_ptr<nn::Conv2d> conv1_, conv2_, down_conv_;  // down_*: the 1x1 shortcut (null: identity)
  std::unique_ptr<nn::BatchNorm2d> bn1_, bn2_, down_bn_;
  Shape block_input_shape_;
};

struct ResNetConfig {
  std::array<int, 4> blocks{2, 2, 2, 2};  // BasicBlocks per stage (ResNet-18)
  std::int64_t width = 64;                // stage 1's channels (doubling per stage); 64 is ResNet-18
  std::int64_t in_channels = 3;
  std::int64_t classes = 10;
};

class ResNet final : public nn::Module {
 public:
  // Host parameters of `dtype` (f32, or f64 for gradient checks), PyTorch's default init from
  // Philox(seed): convolutions and Linear U(+-1/sqrt(fan_in)), BatchNorm weight 1, bias 0.
  static Result<ResNet> create(const ResNetConfig& config, std::uint64_t seed, DType dtype = DType::f32) {
    if (config.width <= 0 || config.in_channels <= 0 || config.classes <= 0)
      return make_error(ErrorCode::invalid_argument, "ResNet", "width, in_channels and classes must be positive");
    ResNet r;
    r.config_ = config;
    FE_TRY_ASSIGN(auto conv1, nn::Conv2d::create(config.in_channels, config.width, 3, 1, 1, dtype));
    FE_TRY_ASSIGN(auto bn1, nn::BatchNorm2d::create(config.width, 1e-5, 0.1, dtype));
    r.conv1_ = std::make_unique<nn::Conv2d>(std::move(conv1));
    r.bn1_ = std::make_unique<nn::BatchNorm2d>(std::move(bn1));
    std::uint64_t stream = rng_stream::init;
    r.conv1_->reset_parameters(seed, stream++);
    r.conv1_->set_input_grad(false);  // nobody needs d loss / d image
    std::int64_t in = config.width;
    for (int stage = 0; stage < 4; ++stage) {
      if (config.blocks[stage] < 1) return make_error(ErrorCode::invalid_argument, "ResNet", "every stage needs a block");
      const std::int64_t out = config.width << stage;
      for (int j = 0; j < config.blocks[stage]; ++j) {
        FE_TRY_ASSIGN(auto block, BasicBlock::create(in, out, j == 0 && stage > 0 ? 2 : 1, dtype));
        block.reset_parameters(seed, stream);
        stream += 3;
        r.blocks_.push_back(std::make_unique<BasicBlock>(std::move(block)));
        r.stage_of_.push_back(stage);
        in = out;
      }
    }
    FE_TRY_ASSIGN(auto fc, nn::Linear::create(in, config.classes, true, dtype));
    fc.reset_parameters(seed, stream);
    r.fc_ = std::make_unique<nn::Linear>(std::move(fc));
    return r;
  }

  // x[N, C, H, W] -> logits[N, classes].
  Result<ConstTensorRef> forward(Context& ctx, ConstTensorRef x) override {
    if (x.rank() != 4 || x.dim(1) != config_.in_channels)
      return make_error(ErrorCode::shape_mismatch, "ResNet::forward",
                        fe_format("expected images [N, {}, H, W]", config_.in_channels), x.describe());
    FE_TRY_ASSIGN(TensorRef cnhw, ctx.workspace().allocate({x.dim(1), x.dim(0), x.dim(2), x.dim(3)}, x.dtype));
    FE_TRY(ops::swap_leading_dims(ctx, x, cnhw));
    FE_TRY_ASSIGN(ConstTensorRef h, conv1_->forward(ctx, cnhw));
    FE_TRY_ASSIGN(h, bn1_->forward_fused(ctx, h, {}, true));
    for (auto& b : blocks_) {
      FE_TRY_ASSIGN(h, b->forward(ctx, h));
    }
    features_shape_ = h.shape;
    FE_TRY_ASSIGN(TensorRef pooled, ctx.workspace().allocate({h.dim(1), h.dim(0)}, h.dtype));
    FE_TRY(ops::global_avg_pool_cnhw(ctx, h, pooled));
    return fc_->forward(ctx, pooled);
  }

  // dlogits[N, classes] -> accumulates every parameter gradient; returns an empty view (no image gradient).
  Result<ConstTensorRef> backward(Context& ctx, ConstTensorRef dlogits) override {
    if (features_shape_.rank() != 4)
      return make_error(ErrorCode::invalid_argument, "ResNet::backward", "backward called before forward");
    FE_TRY_ASSIGN(ConstTensorRef dpooled, fc_->backward(ctx, dlogits));
    FE_TRY_ASSIGN(TensorRef dh, ctx.workspace().allocate(features_shape_, dpooled.dtype));
    FE_TRY(ops::global_avg_pool_cnhw_backward(ctx, dpooled, dh));
    ConstTensorRef g = dh;
    for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it) {
      FE_TRY_ASSIGN(g, (*it)->backward(ctx, g));
    }
    FE_TRY_ASSIGN(g, bn1_->backward(ctx, g));
    FE_TRY_ASSIGN(g, conv1_->backward(ctx, g));
    return ConstTensorRef{};
  }

  void collect_parameters(const std::string& prefix, nn::ParameterList& out) override {
    conv1_->collect_parameters(prefix + "conv1.", out);
    bn1_->collect_parameters(prefix + "bn1.", out);
    for (std::size_t i = 0; i < blocks_.size(); ++i) blocks_[i]->collect_parameters(prefix + block_prefix(i), out);
    fc_->collect_parameters(prefix + "fc.", out);
  }
  void collect_buffers(const std::string& prefix, nn::BufferList& out) override {
    bn1_->collect_buffers(prefix + "bn1.", out);
    for (std::size_t i = 0; i < blocks_.size(); ++i) blocks_[i]->collect_buffers(prefix + block_prefix(i), out);
  }

  std::string describe() const override {
    return fe_format("ResNet(blocks=[{}, {}, {}, {}], width={}, classes={}: {} parameters)", config_.blocks[0],
                     config_.blocks[1], config_.blocks[2], config_.blocks[3], config_.width, config_.classes,
                     parameter_count());
  }

  // Multiply-adds of one forward pass per image of h x w (convolutions + the classifier).
  std::int64_t macs_per_sample(std::int64_t h, std::int64_t w) const {
    std::int64_t m = conv1_->macs_per_sample(h, w);
    for (const auto& b : blocks_) m += b->macs_per_sample(h, w);
    return m + fc_->in_features() * fc_->out_features();
  }
  std::int64_t parameter_count() const {
    std::int64_t n = 0;
    for (const auto& p : const_cast<ResNet*>(this)->parameters()) n += p.value->numel();
    return n;
  }
  const ResNetConfig& config() const noexcept { return config_; }

 protected:
  void on_mode_change(bool training) override {
    conv1_->train(training);
    bn1_->train(training);
    for (auto& b : blocks_) b->train(training);
    fc_->train(training);
  }

 private:
  ResNet() = default;
  // "layer{stage + 1}.{index in stage}."
  std::string block_prefix(std::size_t i) const {
    std::size_t first = i;
    while (first > 0 && stage_of_[first - 1] == stage_of_[i]) --first;
    return "layer" + std::to_string(stage_of_[i] + 1) + "." + std::to_string(i - first) + ".";
  }

  ResNetConfig config_;
  std::unique_ptr<nn::Conv2d> conv1_;
  std::unique_ptr<nn::BatchNorm2d> bn1_;
  std::vector<std::unique_ptr<BasicBlock>> blocks_;
  std::vector<int> stage_of_;
  std::unique_ptr<nn::Linear> fc_;
  Shape features_shape_;  // the last stage's output [C, N, h, w] of the last forward
};

}  // namespace ferrite::models
