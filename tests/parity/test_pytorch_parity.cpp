// PyTorch parity: ferrite's MLP (forward, cross-entropy loss, backward) and its optimizers (Adam,
// AdamW, SGD with momentum / Nesterov) against numbers recorded from torch 2.5.1 in
// tests/data/parity/*.safetensors (made by scripts/pytorch/make_fixtures.py; see the README there).
// No python is needed here: the fixtures are committed.
//
// Every check prints its largest observed difference ("[parity] ..." lines in the test log), and
// the *Control tests make sure that the tolerances are tight enough to catch a real mistake (a
// perturbed weight, a wrong hyper-parameter), i.e. that every comparison here can fail.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "ferrite/io/safetensors.hpp"
#include "ferrite/models/mlp.hpp"
#include "ferrite/nn/activation.hpp"
#include "ferrite/nn/linear.hpp"
#include "ferrite/nn/loss.hpp"
#include "ferrite/nn/sequential.hpp"
#include "ferrite/nn/state_dict.hpp"
#include "ferrite/optim/adam.hpp"
#include "ferrite/optim/sgd.hpp"

using namespace ferrite;

namespace {

std::filesystem::path fixture_path(const std::string& name) {
  return std::filesystem::path(FERRITE_TEST_DATA_DIR "/parity") / name;
}

// ---- comparison --------------------------------------------------------------------------------

// Distance in units in the last place: how many floats lie between a and b (0: bit-identical).
std::int64_t ulp_distance(float a, float b) {
  if (a == b) return 0;  // also +0 == -0
  if (std::isnan(a) || std::isnan(b)) return INT64_MAX;
  auto ordered = [](float f) {
    const auto bits = static_cast<std::int64_t>(std::bit_cast<std::int32_t>(f));
    return bits < 0 ? -(bits & 0x7fffffff) : bits;  // monotonic in f, -0 and +0 both 0
  };
  return std::abs(ordered(a) - ordered(b));
}

// An element passes if |got - want| <= abs + normwise * max|want| (over the whole tensor), or if
// it is within `ulps` of want. Normwise, because the rounding error of a sum of products scales
// with the size of the summands, not of the result: an entry where they nearly cancel (a gradient
// summed over a few samples, a ReLU-masked row) is tiny but carries the same absolute error.
struct Tolerance {
  double abs = 0.0;
  double normwise = 0.0;
  std::int64_t ulps = 0;
};

struct Comparison {
  std::string what;
  std::int64_t count = 0;
  std::int64_t violations = 0;
  double max_abs = 0.0;       // max |got - want|
  double max_normwise = 0.0;  // max |got - want| / max|want|
  std::int64_t max_ulps = 0;   // max ulp distance
  std::string first_violation;

  std::string summary() const {
    char line[256];
    std::snprintf(line, sizeof line, "%-34s n=%-6lld max|diff|=%-9.3g max|diff|/max|torch|=%-9.3g max ulps=%lld%s",
                  what.c_str(), static_cast<long long>(count), max_abs, max_normwise,
                  static_cast<long long>(max_ulps),
                  violations ? ("  VIOLATIONS=" + std::to_string(violations)).c_str() : "");
    return line;
  }
};

Comparison compare(const std::string& what, const float* got, const Tensor& want, Tolerance tol) {
  Comparison c;
  c.what = what;
  c.count = want.numel();
  const float* w = want.data<float>();
  double scale = 0.0;  // max|want|
  for (std::int64_t i = 0; i < c.count; ++i) scale = std::max(scale, std::abs(double{w[i]}));
  const double allowed = tol.abs + tol.normwise * scale;
  for (std::int64_t i = 0; i < c.count; ++i) {
    const double diff = std::abs(double{got[i]} - double{w[i]});
    const std::int64_t ulps = ulp_distance(got[i], w[i]);
    c.max_abs = std::max(c.max_abs, diff);
    c.max_normwise = std::max(c.max_normwise, scale > 0 ? diff / scale : diff);
    c.max_ulps = std::max(c.max_ulps, ulps);
    const bool ok = diff <= allowed || ulps <= tol.ulps;
    if (!ok && c.violations++ == 0) {
      std::ostringstream s;
      s.precision(9);
      s << what << "[" << i << "]: ferrite " << got[i] << ", torch " << w[i] << " (|diff| " << diff
        << ", " << ulps << " ulps; allowed |diff| " << allowed << " = " << tol.abs << " + "
        << tol.normwise << " * max|torch| " << scale << ", or " << tol.ulps << " ulps)";
      c.first_violation = s.str();
    }
  }
  return c;
}

void expect_pass(const Comparison& c) {
  std::printf("[parity] %s\n", c.summary().c_str());
  EXPECT_EQ(c.violations, 0) << c.first_violation;
}

// ---- fixtures ----------------------------------------------------------------------------------

io::SafetensorsFile load_fixture(const std::string& name) {
  auto file = io::load_safetensors(fixture_path(name));
  if (!file.ok()) {
    ADD_FAILURE() << "cannot load fixture " << name << ": " << file.error().to_string()
                  << " (regenerate with scripts/pytorch/make_fixtures.py)";
    return {};
  }
  return std::move(file).value();
}

const Tensor& tensor(const io::SafetensorsFile& file, const std::string& name) {
  const Tensor* t = file.find(name);
  if (!t) {
    ADD_FAILURE() << "fixture has no tensor '" << name << "'";
    static const Tensor empty;
    return empty;
  }
  return *t;
}

std::string metadata(const io::SafetensorsFile& file, const std::string& key) {
  auto it = file.metadata.find(key);
  if (it == file.metadata.end()) {
    ADD_FAILURE() << "fixture metadata has no '" << key << "'";
    return "0";
  }
  return it->second;
}

// The fixture stores each hyper-parameter as Python's repr of the float, which strtod reads back
// as the identical double.
double metadata_number(const io::SafetensorsFile& file, const std::string& key) {
  return std::strtod(metadata(file, key).c_str(), nullptr);
}

// ---- MLP forward / backward --------------------------------------------------------------------

// fused: models::make_mlp's network (bias + ReLU fused into Linear); unfused: Linear, ReLU, Linear
// as separate modules. Both must give PyTorch's numbers and names (0.weight, 2.weight, ...).
enum class Build { fused, unfused };

// For the negative controls: value = value * (1 + relative) + absolute, for one element of one
// parameter, after loading.
struct Perturbation {
  std::string param;
  std::int64_t index = 0;
  float relative = 0.f;
  float absolute = 0.f;
};

struct MlpTolerances {
  Tolerance logits, loss, grad_logits, grad_input, grad_params;
};

std::vector<Comparison> run_mlp(const std::string& fixture, Build build, const MlpTolerances& tol,
                                const Perturbation* perturb = nullptr) {
  std::vector<Comparison> out;
  const auto file = load_fixture(fixture);
  if (file.tensors.empty()) return out;

  // "784,128,64,10" -> {784, 128, 64, 10}
  std::vector<std::int64_t> sizes;
  {
    std::stringstream layers(metadata(file, "layers"));
    for (std::string item; std::getline(layers, item, ',');) sizes.push_back(std::stoll(item));
  }
  if (sizes.size() < 2) {
    ADD_FAILURE() << fixture << ": bad 'layers' metadata";
    return out;
  }

  nn::Sequential model;
  if (build == Build::fused) {
    std::vector<std::int64_t> hidden(sizes.begin() + 1, sizes.end() - 1);
    auto made = models::make_mlp(sizes.front(), hidden, sizes.back(), /*seed=*/1);
    if (!made.ok()) {
      ADD_FAILURE() << made.error().to_string();
      return out;
    }
    model = std::move(made).value();
  } else {
    for (std::size_t i = 0; i + 1 < sizes.size(); ++i) {
      auto linear = nn::Linear::create(sizes[i], sizes[i + 1]);
      if (!linear.ok()) {
        ADD_FAILURE() << linear.error().to_string();
        return out;
      }
      model.add(std::move(linear).value());
      if (i + 2 < sizes.size()) model.add(nn::ReLU{});
    }
  }
  model.set_input_grad(true);  // the fixture records d loss / d input too

  // The weights, by PyTorch name, through the strict state-dict loader (it rejects a file with
  // anything else in it, so copy the parameters into a file of their own).
  auto params = model.parameters();
  io::SafetensorsFile weights;
  for (const auto& p : params) {
    auto copy = tensor(file, p.name).clone();
    if (!copy.ok()) return out;
    weights.tensors.push_back({p.name, std::move(copy).value()});
  }
  auto loaded = nn::load_parameters(params, weights, fixture);
  if (!loaded.ok()) {
    ADD_FAILURE() << loaded.error().to_string();
    return out;
  }
  if (perturb)
    for (auto& p : params)
      if (p.name == perturb->param) {
        float& v = p.value->data<float>()[perturb->index];
        v = v * (1.f + perturb->relative) + perturb->absolute;
      }

  const Tensor& x = tensor(file, "input");  // [B, in]
  const Tensor& labels64 = tensor(file, "labels");  // [B] i64, torch's label dtype
  if (x.dim(0) != labels64.numel() || labels64.dtype() != DType::i64) {
    ADD_FAILURE() << fixture << ": input " << x.describe() << " and labels " << labels64.describe();
    return out;
  }
  std::vector<std::int32_t> labels(labels64.data<std::int64_t>(),
                                   labels64.data<std::int64_t>() + labels64.numel());

  Context ctx = Context::cpu();
  Tensor labels_t = Tensor::from_data<std::int32_t>({labels64.numel()}, labels.data(), labels64.numel()).value();
  (void)nn::reset_gradients(params);
  auto logits = model.forward(ctx, x.cref());
  if (!logits.ok()) {
    ADD_FAILURE() << logits.error().to_string();
    return out;
  }
  out.push_back(compare("logits", logits->ptr<float>(), tensor(file, "logits"), tol.logits));

  nn::CrossEntropyLoss criterion;
  auto loss = criterion.forward(ctx, *logits, labels_t.cref());
  if (!loss.ok()) {
    ADD_FAILURE() << loss.error().to_string();
    return out;
  }
  const float loss_f = *loss->ptr<float>();
  out.push_back(compare("loss", &loss_f, tensor(file, "loss"), tol.loss));

  auto dlogits = criterion.backward();
  if (!dlogits.ok()) {
    ADD_FAILURE() << dlogits.error().to_string();
    return out;
  }
  out.push_back(compare("grad.logits", dlogits->ptr<float>(), tensor(file, "grad.logits"), tol.grad_logits));

  auto dx = model.backward(ctx, *dlogits);
  if (!dx.ok()) {
    ADD_FAILURE() << dx.error().to_string();
    return out;
  }
  out.push_back(compare("grad.input", dx->ptr<float>(), tensor(file, "grad.input"), tol.grad_input));
  for (const auto& p : params)
    out.push_back(compare("grad." + p.name, p.grad->data<float>(), tensor(file, "grad." + p.name),
                          tol.grad_params));
  return out;
}

// Tolerances for the fp32 forward/backward of a small MLP. Every number here is a sum of products
// (gemm with K = in / hidden / batch, softmax sums): ferrite's gemm (xsimd micro-kernel, its own
// blocking) and MKL's sgemm add the K products in different orders, and torch's exp/log (Sleef,
// vectorized) may differ from libm's by an ulp. Two summation orders differ by at most ~2·K·u·Σ|a·b|
// (u = 2^-24 ≈ 6e-8), typically ~√K·u·Σ|a·b|: ≈ 1.7e-6·Σ|a·b| for K = 784, and Σ|a·b| is of the
// order of the tensor's largest entry here. So compare normwise: |diff| ≤ 1e-5·max|torch| (≈ 170 u,
// ~10x the largest difference measured, 1.0e-6·max, in grad.4.weight of the MNIST net).
// Measured (this machine, AVX-512): logits ≤ 3.5e-7·max (8e-8 absolute), d logits ≤ 5e-8·max,
// parameter gradients ≤ 1.0e-6·max, loss bit-identical.
MlpTolerances mlp_tolerances() {
  MlpTolerances t;
  t.logits = {.normwise = 1e-5};       // two or three chained gemms
  t.grad_logits = {.normwise = 1e-5};  // softmax: exp differs by an ulp, plus the logits' difference
  t.grad_input = {.normwise = 1e-5};   // d logits through the transposed gemms (K = C, hidden)
  t.grad_params = {.normwise = 1e-5};  // dW = dyᵀ·x over the batch (K = B), db = column sums
  // The mean of B terms (x_y - max - log Σ exp) in float, summed in row order like torch's: it moves
  // by at most 2·max|Δlogit| (log-softmax is 1-Lipschitz per logit) plus a few ulps of rounding:
  // 1e-6 relative to the loss (≈ 16 ulps of a loss of 2). Measured: bit-identical.
  t.loss = {.normwise = 1e-6};
  return t;
}

void expect_mlp_parity(const std::string& fixture, Build build) {
  const auto checks = run_mlp(fixture, build, mlp_tolerances());
  ASSERT_FALSE(checks.empty());
  std::printf("[parity] --- %s (%s) ---\n", fixture.c_str(), build == Build::fused ? "fused" : "unfused");
  for (const auto& c : checks) expect_pass(c);
}

TEST(ParityMlp, SmallFused) { expect_mlp_parity("mlp_forward_backward.safetensors", Build::fused); }
TEST(ParityMlp, SmallUnfused) { expect_mlp_parity("mlp_forward_backward.safetensors", Build::unfused); }
TEST(ParityMlp, MnistFused) { expect_mlp_parity("mlp_mnist_forward_backward.safetensors", Build::fused); }
TEST(ParityMlp, MnistUnfused) { expect_mlp_parity("mlp_mnist_forward_backward.safetensors", Build::unfused); }

// Negative controls: small errors in a weight must be caught (so the tolerances are not vacuous).
struct MlpControl {
  const char* fixture;
  Perturbation perturb;
  const char* must_catch;  // the check that has to see it ("" = any)
};

void expect_detected(const MlpControl& c) {
  const auto checks = run_mlp(c.fixture, Build::fused, mlp_tolerances(), &c.perturb);
  ASSERT_FALSE(checks.empty());
  std::int64_t caught = 0, total = 0;
  std::string where;
  for (const auto& k : checks) {
    total += k.violations;
    if (k.violations) where += " " + k.what;
    if (k.what == c.must_catch || (!*c.must_catch && k.violations)) caught += k.violations;
  }
  std::printf("[parity] control %s: %s[%lld] * (1 + %g) + %g -> %lld violating elements in:%s\n", c.fixture,
              c.perturb.param.c_str(), static_cast<long long>(c.perturb.index), c.perturb.relative,
              c.perturb.absolute, static_cast<long long>(total), where.c_str());
  EXPECT_GT(caught, 0) << c.fixture << ": perturbing " << c.perturb.param << " went unnoticed"
                       << (*c.must_catch ? std::string(" in ") + c.must_catch : std::string());
}

// The output bias shifted by 2e-5 (~1e-4 of the largest logit, ~10x the logits' tolerance) moves
// one logit per sample by exactly that.
TEST(ParityMlpControl, ShiftedOutputBiasIsDetected) {
  expect_detected({"mlp_forward_backward.safetensors", {"2.bias", 0, 0.f, 2e-5f}, "logits"});
  expect_detected({"mlp_mnist_forward_backward.safetensors", {"4.bias", 0, 0.f, 2e-5f}, "logits"});
}

// A first-layer weight off by 1%: the most diluted place (one of 784 inputs of one hidden unit).
// In the MNIST fixture hidden unit 0 is inactive (ReLU) for all four samples, so its weights rightly
// change nothing; unit 4 is active for all of them: element [4, 0] = 4 * 784.
TEST(ParityMlpControl, FirstLayerWeightOffByOnePercentIsDetected) {
  expect_detected({"mlp_forward_backward.safetensors", {"0.weight", 0, 1e-2f, 0.f}, ""});
  expect_detected({"mlp_mnist_forward_backward.safetensors", {"0.weight", 4 * 784, 1e-2f, 0.f}, ""});
}

// ---- optimizers --------------------------------------------------------------------------------

enum class Kind { adam, adamw, sgd };

// Two parameters ("weight" [7, 5], "bias" [5]) owned here, as a module would own them.
struct OwnedParams {
  std::vector<std::string> names{"weight", "bias"};
  std::vector<Tensor> values, grads;
  nn::ParameterList list;
};

// Ulps allowed after step t (1-based): per_step * t + offset, at least 0. Differences that arise
// once per step (a rounding that differs) can accumulate, one per step at most.
struct StepUlps {
  std::int64_t per_step = 0;
  std::int64_t offset = 0;
  Tolerance at(int step) const {
    // Without hardware FMA ferrite's kernels round a*b+c twice where torch's AVX2/AVX-512 kernels
    // (which recorded the fixtures) round once (see optim/optimizer.hpp): allow that, as tests/optim.
    return {.abs = optim::detail::kHardwareFma ? 0.0 : 1e-6,
            .ulps = std::max<std::int64_t>(0, per_step * step + offset)};
  }
};

// A hyper-parameter changed from the fixture's value, for the negative control.
struct Override {
  std::string key;
  double value = 0.0;
};

std::vector<Comparison> run_optimizer(const std::string& fixture, Kind kind, StepUlps param_tol,
                                      StepUlps state_tol, const Override* override_ = nullptr) {
  std::vector<Comparison> out;
  const auto file = load_fixture(fixture);
  if (file.tensors.empty()) return out;
  auto hp = [&](const std::string& key) {
    return override_ && override_->key == key ? override_->value : metadata_number(file, key);
  };
  auto flag = [&](const std::string& key) { return metadata(file, key) == "true"; };

  OwnedParams ps;
  for (const auto& name : ps.names) {
    const Tensor& start = tensor(file, "param.0." + name);
    auto value = start.clone();
    auto grad = Tensor::zeros(start.shape());
    if (!value.ok() || !grad.ok()) return out;
    ps.values.push_back(std::move(value).value());
    ps.grads.push_back(std::move(grad).value());
  }
  for (std::size_t i = 0; i < ps.names.size(); ++i) ps.list.push_back({ps.names[i], &ps.values[i], &ps.grads[i]});

  std::unique_ptr<optim::Optimizer> opt;
  std::vector<std::string> state_keys;
  if (kind == Kind::sgd) {
    optim::SGDOptions o{.lr = hp("lr"), .momentum = hp("momentum"), .dampening = hp("dampening"),
                        .weight_decay = hp("weight_decay"), .nesterov = flag("nesterov"),
                        .maximize = flag("maximize")};
    auto sgd = optim::SGD::create(ps.list, o);
    if (!sgd.ok()) {
      ADD_FAILURE() << sgd.error().to_string();
      return out;
    }
    opt = std::make_unique<optim::SGD>(std::move(sgd).value());
    state_keys = {"momentum_buffer"};
  } else {
    optim::AdamOptions o{.lr = hp("lr"), .beta1 = hp("beta1"), .beta2 = hp("beta2"), .eps = hp("eps"),
                         .weight_decay = hp("weight_decay"), .amsgrad = flag("amsgrad"),
                         .maximize = flag("maximize")};
    if (kind == Kind::adam) {
      auto adam = optim::Adam::create(ps.list, o);
      if (!adam.ok()) {
        ADD_FAILURE() << adam.error().to_string();
        return out;
      }
      opt = std::make_unique<optim::Adam>(std::move(adam).value());
    } else {
      optim::AdamWOptions w{.lr = o.lr, .beta1 = o.beta1, .beta2 = o.beta2, .eps = o.eps,
                            .weight_decay = o.weight_decay, .amsgrad = o.amsgrad, .maximize = o.maximize};
      auto adamw = optim::AdamW::create(ps.list, w);
      if (!adamw.ok()) {
        ADD_FAILURE() << adamw.error().to_string();
        return out;
      }
      opt = std::make_unique<optim::AdamW>(std::move(adamw).value());
    }
    state_keys = {"exp_avg", "exp_avg_sq"};
  }

  const auto steps = static_cast<int>(metadata_number(file, "steps"));
  for (int t = 1; t <= steps; ++t) {
    const std::string step = std::to_string(t);
    for (std::size_t i = 0; i < ps.names.size(); ++i) {
      const Tensor& g = tensor(file, "grad." + step + "." + ps.names[i]);
      if (g.shape() != ps.grads[i].shape()) {
        ADD_FAILURE() << "grad." << step << "." << ps.names[i] << " has shape " << g.shape().to_string();
        return out;
      }
      std::memcpy(ps.grads[i].raw_data(), g.raw_data(), g.nbytes());
    }
    auto stepped = opt->step();
    if (!stepped.ok()) {
      ADD_FAILURE() << stepped.error().to_string();
      return out;
    }
    for (std::size_t i = 0; i < ps.names.size(); ++i) {
      const std::string name = step + "." + ps.names[i];
      out.push_back(compare("param." + name, ps.values[i].data<float>(), tensor(file, "param." + name),
                            param_tol.at(t)));
      for (const auto& key : state_keys) {
        const Tensor* state = opt->state(ps.names[i], key);
        if (!state) {
          ADD_FAILURE() << "optimizer has no state '" << key << "'";
          return out;
        }
        out.push_back(compare("state." + name + "." + key, state->data<float>(),
                              tensor(file, "state." + name + "." + key), state_tol.at(t)));
      }
    }
  }
  return out;
}

void expect_optimizer_parity(const std::string& fixture, Kind kind, StepUlps param_tol, StepUlps state_tol) {
  const auto checks = run_optimizer(fixture, kind, param_tol, state_tol);
  ASSERT_FALSE(checks.empty());
  std::printf("[parity] --- %s ---\n", fixture.c_str());
  for (const auto& c : checks) expect_pass(c);
}

// SGD: ferrite's kernel replays torch's single-tensor CPU path operation by operation (the same
// float roundings, FMAs where torch's compiled kernels have them; see optim/sgd.hpp), and there is
// no transcendental function in it, so params and momentum buffers must be bit-identical: 0 ulps.
// Measured: 0 ulps, every step.
TEST(ParityOptim, SgdMomentumDampeningWeightDecay) {
  expect_optimizer_parity("optim_sgd_momentum.safetensors", Kind::sgd, {}, {});
}
TEST(ParityOptim, SgdNesterov) {
  expect_optimizer_parity("optim_sgd_nesterov.safetensors", Kind::sgd, {}, {});
}

// Adam / AdamW: the same rounding sequence as torch (eps added after dividing sqrt(v) by
// sqrt(1 - b2^t); bias corrections in double, rounded to float once), except sqrt itself: torch's
// CPU sqrt is MKL VML's, 1 ulp off the correctly rounded root for some inputs (~16%, measured in
// tests/optim/test_optim.cpp), ferrite's is IEEE sqrt. One ulp in the denominator moves the update
// by an ulp of the update, so p may differ by 1 ulp more per step: t ulps after step t.
// exp_avg / exp_avg_sq depend on the gradients only for AdamW (bit-identical, 0 ulps); Adam's L2
// term (g += wd·p) feeds the parameter's difference from step t - 1 into them: t - 1 ulps.
// Measured: Adam params ≤ 1 ulp (weight[34] at step 2, weight[15] and [34] at step 3), its states
// 0 ulps; AdamW 0 ulps. Checked that sqrt is the only cause: torch.optim.Adam re-run with
// Tensor.sqrt replaced by a correctly rounded one (sqrt in double, rounded to float) gives
// ferrite's parameters bit for bit, at every step, for both fixtures.
TEST(ParityOptim, AdamL2) {
  expect_optimizer_parity("optim_adam.safetensors", Kind::adam, {.per_step = 1}, {.per_step = 1, .offset = -1});
}
TEST(ParityOptim, AdamW) {
  expect_optimizer_parity("optim_adamw.safetensors", Kind::adamw, {.per_step = 1}, {});
}

// Negative control: a slightly wrong hyper-parameter must be caught by the same tolerances.
TEST(ParityOptimControl, WrongHyperParameterIsDetected) {
  struct Case {
    const char* fixture;
    Kind kind;
    Override wrong;
  };
  const Case cases[] = {
      {"optim_adam.safetensors", Kind::adam, {"eps", 2e-8}},              // eps 1e-8 in the fixture
      {"optim_adamw.safetensors", Kind::adamw, {"weight_decay", 0.099}},  // 0.1
      {"optim_sgd_momentum.safetensors", Kind::sgd, {"dampening", 0.0}},  // 0.1
      {"optim_sgd_nesterov.safetensors", Kind::sgd, {"momentum", 0.89}},  // 0.9
  };
  for (const auto& c : cases) {
    const auto checks = run_optimizer(c.fixture, c.kind, {.per_step = 1}, {.per_step = 1}, &c.wrong);
    ASSERT_FALSE(checks.empty());
    std::int64_t violations = 0;
    for (const auto& k : checks) violations += k.violations;
    std::printf("[parity] control %s with %s = %g: %lld violating elements\n", c.fixture,
                c.wrong.key.c_str(), c.wrong.value, static_cast<long long>(violations));
    EXPECT_GT(violations, 0) << c.fixture << ": " << c.wrong.key << " = " << c.wrong.value << " went unnoticed";
  }
}

}  // namespace
