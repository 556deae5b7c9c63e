// train::StepGraph and graph mode's host side: eager on the CPU; on CUDA warm-up, capture, replay,
// recapture on a new key, and a failed capture that leaves the stream usable (these skip without a
// GPU); Optimizer::plan_steps refusing contexts without a step counter.
#include <gtest/gtest.h>

#include <cstdint>

#include "ferrite/backend/devices.hpp"
#include "ferrite/nn/linear.hpp"
#include "ferrite/ops/fill.hpp"
#include "ferrite/ops/step.hpp"
#include "ferrite/optim/adam.hpp"
#include "ferrite/train/step_graph.hpp"

using namespace ferrite;

namespace {
std::int64_t read_counter(Context& ctx) {
  std::int64_t v = -1;
  EXPECT_TRUE(ops::copy(ctx, ConstTensorRef(ctx.step_counter(), DType::i64, ctx.device(), {1}),
                        TensorRef(&v, DType::i64, Device::cpu(), {1}))
                  .ok());
  EXPECT_TRUE(ctx.synchronize().ok());
  return v;
}
}  // namespace

TEST(StepGraph, RunsEveryStepEagerlyOnTheCpu) {
  Context ctx = Context::cpu();
  train::StepGraph graph;
  int calls = 0;
  for (int i = 0; i < 4; ++i) {
    auto ran = graph.run(ctx, 0, [&] {
      ++calls;
      return ops::advance_step_counter(ctx);  // a no-op without a counter
    });
    ASSERT_TRUE(ran.ok()) << ran.error().to_string();
    EXPECT_EQ(*ran, train::StepGraph::Ran::eager);
  }
  EXPECT_EQ(calls, 4);
  EXPECT_FALSE(graph.captured());
  EXPECT_FALSE(ctx.enable_step_counter().ok());  // graph mode is for CUDA contexts
  EXPECT_EQ(ctx.step_counter(), nullptr);
}

TEST(StepGraph, PlanStepsNeedsACudaContextInGraphMode) {
  nn::Linear layer = nn::Linear::create(3, 2).value();
  auto adam = optim::Adam::create(layer.parameters()).value();
  Context ctx = Context::cpu();
  auto s = adam.plan_steps(ctx, 10);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::unsupported);
  EXPECT_NE(s.error().to_string().find("Adam::plan_steps"), std::string::npos) << s.error().to_string();
  s = adam.count_replayed_step();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().to_string().find("used up"), std::string::npos) << s.error().to_string();
  EXPECT_EQ(adam.step_count(), 0);
}

TEST(StepGraph, CapturesOnceReplaysAndRecapturesOnANewKey) {
  const Device gpu = Device::cuda(0);
  if (const Status ok = check_device(gpu); !ok.ok()) GTEST_SKIP() << "skipped: " << ok.error().to_string();
  Context ctx = Context::create(gpu).value();
  ASSERT_TRUE(ctx.enable_step_counter().ok());
  ASSERT_TRUE(ops::set_step_counter(ctx, 0).ok());
  Tensor out = Tensor::zeros({64}, DType::f32, gpu).value();
  train::StepGraph graph;
  int calls = 0;
  auto step = [&]() -> Status {
    ++calls;
    FE_TRY_ASSIGN(TensorRef scratch, ctx.workspace().allocate({64}));
    FE_TRY(ops::fill(ctx, scratch, 1.5));
    FE_TRY(ops::copy(ctx, ConstTensorRef(scratch), out.ref()));
    return ops::advance_step_counter(ctx);
  };
  std::int64_t replays = 0;
  for (int i = 0; i < 6; ++i) {
    auto ran = graph.run(ctx, 1, step);
    ASSERT_TRUE(ran.ok()) << ran.error().to_string();
    replays += *ran == train::StepGraph::Ran::replayed;
  }
  EXPECT_TRUE(graph.captured());
  EXPECT_EQ(graph.captures(), 1);
  EXPECT_EQ(calls + replays, 6);  // every step ran once, eagerly, captured or replayed
  EXPECT_GE(replays, 3);
  EXPECT_EQ(read_counter(ctx), 6);
  // A new key: warm up and capture again.
  auto ran = graph.run(ctx, 2, step);
  ASSERT_TRUE(ran.ok()) << ran.error().to_string();
  EXPECT_EQ(*ran, train::StepGraph::Ran::eager);
  ran = graph.run(ctx, 2, step);  // the second capture on this stream replaces the first graph
  ASSERT_TRUE(ran.ok()) << ran.error().to_string();
  EXPECT_EQ(*ran, train::StepGraph::Ran::captured);
  EXPECT_EQ(read_counter(ctx), 8);
  // A step that fails while captured: the error comes back, no graph is kept, the stream works.
  train::StepGraph failing;
  int n = 0;
  auto bad = [&]() -> Status {
    if (n++ == 1) return make_error(ErrorCode::invalid_argument, "test step", "fails during capture");
    return ops::advance_step_counter(ctx);
  };
  ASSERT_TRUE(failing.run(ctx, 0, bad).ok());  // eager
  auto f = failing.run(ctx, 0, bad);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.error().to_string().find("fails during capture"), std::string::npos);
  EXPECT_FALSE(failing.captured());
#if defined(FERRITE_WITH_CUDA)  // the stream's graph accessors exist only in CUDA builds
  EXPECT_FALSE(ctx.stream()->has_graph());
#endif
  ASSERT_TRUE(ops::advance_step_counter(ctx).ok());
  EXPECT_EQ(read_counter(ctx), 10);
}
