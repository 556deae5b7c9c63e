// train/image_classifier.hpp: the image training loop (augmentation prefetched by a TBB task,
// per-step learning rate, running training accuracy) on a narrow ResNet and synthetic CIFAR-shaped
// images: it learns, it is bit-identical with 1 and 2 threads, and bad sets are refused by name.
#include <gtest/gtest.h>

#include <tbb/global_control.h>

#include <vector>

#include "ferrite/data/synthetic_images.hpp"
#include "ferrite/models/resnet.hpp"
#include "ferrite/nn/parameter_store.hpp"
#include "ferrite/optim/sgd.hpp"
#include "ferrite/train/image_classifier.hpp"

using namespace ferrite;

namespace {

struct TrainedRun {
  train::TrainHistory history;
  train::Evaluation test;
};

TrainedRun train_narrow_resnet(int threads, std::int64_t epochs) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, std::size_t(threads));
  auto train_set = data::make_synthetic_images(256, 3, data::Split::train).value();
  auto test_set = data::make_synthetic_images(128, 3, data::Split::test).value();
  models::ResNetConfig cfg;
  cfg.width = 4;
  cfg.blocks = {1, 1, 1, 1};
  auto net = models::ResNet::create(cfg, 9).value();
  auto params = net.parameters();
  auto store = nn::ParameterStore::create(params).value();
  optim::SGDOptions so;
  so.lr = 0.05;
  so.momentum = 0.9;
  so.weight_decay = 5e-4;
  auto sgd = optim::SGD::create(params, so, &store).value();
  Context ctx = Context::cpu();
  train::ImageTrainOptions o;
  o.batch = 32;
  o.epochs = epochs;
  o.seed = 5;
  o.use_schedule = true;
  o.schedule.kind = optim::LrSchedule::Kind::cosine;
  o.schedule.lr = 0.05;
  o.schedule.total_steps = 8 * epochs;
  o.schedule.warmup_steps = 2;
  TrainedRun r;
  r.history = train::train_image_classifier(ctx, net, sgd, train_set, o).value();
  r.test = train::evaluate_image_classifier(ctx, net, test_set, 64).value();
  return r;
}

}  // namespace

TEST(ImageClassifier, NarrowResNetLearnsSyntheticImages) {
  const TrainedRun r = train_narrow_resnet(2, 4);
  ASSERT_EQ(r.history.epoch_loss.size(), 4u);
  ASSERT_EQ(r.history.step_loss.size(), 32u);  // 256 / 32 = 8 steps per epoch
  EXPECT_LT(r.history.epoch_loss.back(), r.history.epoch_loss.front());
  EXPECT_GT(r.history.epoch_accuracy.back(), r.history.epoch_accuracy.front());
  EXPECT_GT(r.test.accuracy, 0.2) << "10 balanced classes: chance is 0.1";
}

TEST(ImageClassifier, OneAndTwoThreadsGiveTheSameBits) {
  const TrainedRun a = train_narrow_resnet(1, 1), b = train_narrow_resnet(2, 1);
  EXPECT_EQ(a.history.step_loss, b.history.step_loss);
  EXPECT_EQ(a.test.loss, b.test.loss);
}

TEST(ImageClassifier, EmptyOrMislabelledSetsAreRefused) {
  auto net = models::ResNet::create({{1, 1, 1, 1}, 4, 3, 10}, 1).value();
  auto params = net.parameters();
  auto sgd = optim::SGD::create(params, {}).value();
  Context ctx = Context::cpu();
  data::ImageSet empty;
  EXPECT_FALSE(train::train_image_classifier(ctx, net, sgd, empty, {}).ok());
  auto bad = data::make_synthetic_images(16, 1, data::Split::train).value();
  bad.labels.data<std::int32_t>()[3] = 42;
  const auto r = train::train_image_classifier(ctx, net, sgd, bad, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().to_string().find("label 42 of image 3"), std::string::npos) << r.error().to_string();
}
