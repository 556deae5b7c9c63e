// Suite "cuda": every CUDA kernel against its CPU oracle on odd sizes, the device Philox against
// the CPU's, the caching allocator's statistics and errors. Where no GPU is present (or the build
// has no CUDA backend) the device tests GTEST_SKIP with the reason, and the tests that need no GPU
// check that every entry point then reports device_unavailable naming the available devices.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "ferrite/backend/cpu/reference/gemm.hpp"
#include "ferrite/backend/cpu/reference/nn_ops.hpp"
#include "ferrite/backend/cuda/memory.hpp"
#include "ferrite/backend/cuda/ops.hpp"
#include "ferrite/backend/cuda/runtime.hpp"
#include "ferrite/backend/devices.hpp"
#include "ferrite/core/rng.hpp"
#include "ferrite/ops/nn_ops.hpp"
#include "ferrite/optim/reference.hpp"

#include "require_gpu.hpp"

using namespace ferrite;

namespace {

// A host matrix with a leading dimension `pad` wider than its columns (the padding holds a
// sentinel that no kernel may touch), values from Philox normals * scale + shift.
struct HostMat {
  std::vector<float> data;
  std::int64_t rows = 0, cols = 0, ld = 0;
  HostMat(std::int64_t r, std::int64_t c, std::int64_t pad, std::uint64_t stream, float scale = 1.f, float shift = 0.f)
      : data(static_cast<std::size_t>(std::max<std::int64_t>(r * (c + pad), 1)), 12345.f), rows(r), cols(c), ld(c + pad) {
    Philox rng(7, stream);
    for (std::int64_t i = 0; i < r; ++i)
      for (std::int64_t j = 0; j < c; ++j) data[static_cast<std::size_t>(i * ld + j)] = shift + scale * rng.normal(i * c + j);
  }
  MatView<float> view() { return {data.data(), rows, cols, ld}; }
  MatView<const float> cview() const { return {data.data(), rows, cols, ld}; }
  float at(std::int64_t i, std::int64_t j) const { return data[static_cast<std::size_t>(i * ld + j)]; }
};

void expect_padding_untouched(const HostMat& m) {
  for (std::int64_t i = 0; i < m.rows; ++i)
    for (std::int64_t j = m.cols; j < m.ld; ++j) ASSERT_EQ(m.at(i, j), 12345.f) << "padding written at " << i << "," << j;
}

std::vector<float> normals(std::int64_t n, std::uint64_t stream, float scale = 1.f) {
  std::vector<float> v(static_cast<std::size_t>(n));
  Philox rng(11, stream);
  for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = scale * rng.normal(i);
  return v;
}

const std::vector<std::pair<std::int64_t, std::int64_t>> kSizes{{1, 1}, {1, 17}, {3, 10}, {7, 33},
                                                               {32, 128}, {33, 65}, {100, 3}, {257, 129}};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Without a GPU (this runs everywhere)

TEST(CudaRuntime, MissingDevicesAreReportedWithTheAvailableOnes) {
  const int n = cuda::device_count();
  EXPECT_GE(n, 0);
  const Status s = check_device(Device::cuda(n));  // one past the last device
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::device_unavailable);
  EXPECT_NE(s.error().message.find("available devices: cpu"), std::string::npos) << s.error().to_string();

  auto info = cuda::device_info(n);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, ErrorCode::device_unavailable);
  EXPECT_NE(info.error().message.find("available devices: cpu"), std::string::npos) << info.error().to_string();
  EXPECT_EQ(cuda::device_name(n), "");

  auto stats = cuda::memory_stats(n);
  ASSERT_FALSE(stats.ok());
  EXPECT_EQ(stats.error().code, ErrorCode::device_unavailable);
  for (const Status& st : {cuda::empty_cache(n), cuda::reset_peak_memory_stats(n), cuda::synchronize(n)}) {
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, ErrorCode::device_unavailable) << st.error().to_string();
  }
  auto buffer = cuda::DeviceBuffer::allocate(64, n);
  ASSERT_FALSE(buffer.ok());
  EXPECT_EQ(buffer.error().code, ErrorCode::device_unavailable);

  std::vector<float> out(5);
  const Status f = cuda::ops::fill(out, 1.f, n);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code, ErrorCode::device_unavailable);
  EXPECT_NE(f.error().message.find("available devices: cpu"), std::string::npos) << f.error().to_string();
  if (!cuda::compiled_with_cuda()) {
    EXPECT_EQ(cuda::device_count(), 0);
  }
}

TEST(CudaRuntime, DeviceInfo) {
  FE_REQUIRE_GPU();
  auto info = cuda::device_info(0);
  ASSERT_TRUE(info.ok()) << info.error().to_string();
  EXPECT_FALSE(info->name.empty());
  EXPECT_EQ(cuda::device_name(0), info->name);
  EXPECT_GE(info->compute_major, 5);
  EXPECT_GT(info->total_memory_bytes, 0);
  EXPECT_GT(info->multiprocessors, 0);
  EXPECT_GT(info->runtime_version, 0);
  EXPECT_GT(info->driver_version, 0);
  EXPECT_TRUE(check_device(Device::cuda(0)).ok());
  EXPECT_TRUE(cuda::synchronize(0).ok());
}

// ---------------------------------------------------------------------------------------------
// Kernels against the CPU

TEST(CudaOps, GemmMatchesReferenceAllTransposes) {
  FE_REQUIRE_GPU();
  const std::vector<std::array<std::int64_t, 3>> shapes{{1, 1, 1}, {3, 5, 7}, {17, 33, 65}, {32, 128, 784},
                                                        {100, 3, 129}, {64, 10, 64}, {5, 9, 0}};
  for (auto [m, n, k] : shapes)
    for (Trans ta : {Trans::no, Trans::yes})
      for (Trans tb : {Trans::no, Trans::yes})
        for (auto [alpha, beta] : {std::pair{1.f, 0.f}, std::pair{0.5f, -1.5f}}) {
          SCOPED_TRACE(::testing::Message() << "M=" << m << " N=" << n << " K=" << k << " " << trans_name(ta)
                                            << trans_name(tb) << " alpha=" << alpha << " beta=" << beta);
          HostMat a(ta == Trans::no ? m : k, ta == Trans::no ? k : m, 3, 1);
          HostMat b(tb == Trans::no ? k : n, tb == Trans::no ? n : k, 1, 2);
          HostMat c(m, n, 2, 3), ref(m, n, 2, 3);
          ASSERT_TRUE(cuda::ops::gemm(ta, tb, alpha, a.cview(), b.cview(), beta, c.view()).ok());
          cpu::reference::gemm<float>(ta, tb, alpha, a.cview(), b.cview(), beta, ref.view());
          for (std::int64_t i = 0; i < m; ++i)
            for (std::int64_t j = 0; j < n; ++j) {
              double magnitude = 0;  // sum |a b|: the scale of float rounding in the dot product
              for (std::int64_t p = 0; p < k; ++p)
                magnitude += std::abs(double(ta == Trans::no ? a.at(i, p) : a.at(p, i)) *
                                      double(tb == Trans::no ? b.at(p, j) : b.at(j, p)));
              const double tol = 3e-5 * (std::abs(alpha) * magnitude + std::abs(beta * ref.at(i, j))) + 1e-6;
              ASSERT_NEAR(c.at(i, j), ref.at(i, j), tol) << "at " << i << "," << j;
            }
          expect_padding_untouched(c);
        }
}

TEST(CudaOps, GemmTf32IsCloseAndShapeErrorsAreCaught) {
  FE_REQUIRE_GPU();
  HostMat a(32, 784, 0, 4), b(128, 784, 0, 5), c(32, 128, 0, 6), ref(32, 128, 0, 6);
  cuda::ops::GemmOptions tf32;
  tf32.allow_tf32 = true;
  ASSERT_TRUE(cuda::ops::gemm(Trans::no, Trans::yes, 1.f, a.cview(), b.cview(), 0.f, c.view(), tf32).ok());
  cpu::reference::gemm<float>(Trans::no, Trans::yes, 1.f, a.cview(), b.cview(), 0.f, ref.view());
  for (std::int64_t i = 0; i < 32; ++i)
    for (std::int64_t j = 0; j < 128; ++j) ASSERT_NEAR(c.at(i, j), ref.at(i, j), 0.1) << "TF32 far off";  // |c| ~ 28
  const Status bad = cuda::ops::gemm(Trans::no, Trans::no, 1.f, a.cview(), b.cview(), 0.f, c.view());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::shape_mismatch);
}

TEST(CudaOps, BiasActivationIsBitIdenticalToCpu) {
  FE_REQUIRE_GPU();
  for (auto [rows, cols] : kSizes)
    for (bool relu : {false, true})
      for (bool with_bias : {false, true}) {
        HostMat y(rows, cols, 3, 1), cpu_y(rows, cols, 3, 1);
        const auto bias = normals(cols, 2);
        const float* b = with_bias ? bias.data() : nullptr;
        const Activation act = relu ? Activation::relu : Activation::none;
        ASSERT_TRUE(cuda::ops::bias_activation(y.view(), b, act).ok());
        bias_activation<float>(cpu_y.view(), b, act);
        for (std::int64_t i = 0; i < rows; ++i)
          for (std::int64_t j = 0; j < cols; ++j) ASSERT_EQ(y.at(i, j), cpu_y.at(i, j));
        expect_padding_untouched(y);
      }
}

TEST(CudaOps, ReluBackwardIsBitIdenticalToCpu) {
  FE_REQUIRE_GPU();
  for (auto [rows, cols] : kSizes) {
    HostMat y(rows, cols, 1, 3), dy(rows, cols, 2, 4), dx(rows, cols, 3, 5), cpu_dx(rows, cols, 3, 5);
    ASSERT_TRUE(cuda::ops::relu_backward(y.cview(), dy.cview(), dx.view()).ok());
    ASSERT_TRUE(relu_backward<float>(y.cview(), dy.cview(), cpu_dx.view()).ok());
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < cols; ++j) ASSERT_EQ(dx.at(i, j), cpu_dx.at(i, j));
    expect_padding_untouched(dx);
  }
}

TEST(CudaOps, ColumnSumsMatchReferenceAndAreDeterministic) {
  FE_REQUIRE_GPU();
  auto sizes = kSizes;
  sizes.push_back({1000, 10});
  sizes.push_back({0, 5});
  for (auto [rows, cols] : sizes) {
    HostMat x(rows, cols, 2, 6);
    std::vector<float> out(static_cast<std::size_t>(cols), -1.f), again(out.size()), ref(out.size());
    ASSERT_TRUE(cuda::ops::column_sums(x.cview(), out.data()).ok());
    ASSERT_TRUE(cuda::ops::column_sums(x.cview(), again.data()).ok());
    cpu::reference::column_sums<float>(x.cview(), ref.data());
    for (std::int64_t j = 0; j < cols; ++j) {
      double magnitude = 0;
      for (std::int64_t i = 0; i < rows; ++i) magnitude += std::abs(double(x.at(i, j)));
      ASSERT_NEAR(out[static_cast<std::size_t>(j)], ref[static_cast<std::size_t>(j)], 1e-6 * magnitude + 1e-7);
      ASSERT_EQ(out[static_cast<std::size_t>(j)], again[static_cast<std::size_t>(j)]) << "not deterministic";
    }
  }
}

TEST(CudaOps, FusedReluBackwardColumnSums) {
  FE_REQUIRE_GPU();
  for (auto [rows, cols] : kSizes) {
    HostMat y(rows, cols, 0, 7), dy(rows, cols, 1, 8), dx(rows, cols, 2, 9), cpu_dx(rows, cols, 2, 9);
    std::vector<float> db(static_cast<std::size_t>(cols)), ref(db.size());
    ASSERT_TRUE(cuda::ops::relu_backward_column_sums(y.cview(), dy.cview(), dx.view(), db.data()).ok());
    ASSERT_TRUE(relu_backward<float>(y.cview(), dy.cview(), cpu_dx.view()).ok());
    cpu::reference::column_sums<float>(cpu_dx.cview(), ref.data());
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < cols; ++j) ASSERT_EQ(dx.at(i, j), cpu_dx.at(i, j));
    for (std::int64_t j = 0; j < cols; ++j) {
      double magnitude = 0;
      for (std::int64_t i = 0; i < rows; ++i) magnitude += std::abs(double(cpu_dx.at(i, j)));
      ASSERT_NEAR(db[static_cast<std::size_t>(j)], ref[static_cast<std::size_t>(j)], 1e-6 * magnitude + 1e-7);
    }
    expect_padding_untouched(dx);
  }
}

TEST(CudaOps, SoftmaxCrossEntropyForwardBackwardMatchReference) {
  FE_REQUIRE_GPU();
  const std::vector<std::pair<std::int64_t, std::int64_t>> sizes{{1, 1},  {1, 10}, {3, 2},   {32, 10}, {33, 31},
                                                                 {7, 33}, {100, 100}, {1000, 10}, {5, 1000}};
  for (auto [rows, cols] : sizes)
    for (auto [scale, shift] : {std::pair{1.f, 0.f}, std::pair{30.f, 1e4f}}) {  // large logits: stability
      SCOPED_TRACE(::testing::Message() << rows << "x" << cols << " scale " << scale << " shift " << shift);
      HostMat logits(rows, cols, 1, 10, scale, shift), probs(rows, cols, 2, 11), dlogits(rows, cols, 3, 12);
      HostMat ref_probs(rows, cols, 0, 11), ref_d(rows, cols, 0, 12);
      std::vector<std::int32_t> labels(static_cast<std::size_t>(rows));
      for (std::int64_t i = 0; i < rows; ++i) labels[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 7 + 3) % cols);
      std::vector<float> dbias(static_cast<std::size_t>(cols)), ref_dbias(dbias.size());
      auto loss = cuda::ops::softmax_cross_entropy(logits.cview(), labels.data(), probs.view(), dlogits.view(), dbias.data());
      ASSERT_TRUE(loss.ok()) << loss.error().to_string();
      const double ref_loss = cpu::reference::softmax_cross_entropy<float>(logits.cview(), labels.data(), ref_probs.view());
      cpu::reference::softmax_cross_entropy_backward<float>(ref_probs.cview(), labels.data(), ref_d.view());
      cpu::reference::column_sums<float>(ref_d.cview(), ref_dbias.data());
      EXPECT_NEAR(*loss, ref_loss, 1e-5 * std::max(1.0, std::abs(ref_loss)));
      for (std::int64_t i = 0; i < rows; ++i)
        for (std::int64_t j = 0; j < cols; ++j) {
          ASSERT_NEAR(probs.at(i, j), ref_probs.at(i, j), 2e-6 * std::max(1.f, ref_probs.at(i, j) * 10)) << i << "," << j;
          ASSERT_NEAR(dlogits.at(i, j), ref_d.at(i, j), 2e-6 / double(rows) + 1e-9) << i << "," << j;
        }
      for (std::int64_t j = 0; j < cols; ++j)
        ASSERT_NEAR(dbias[static_cast<std::size_t>(j)], ref_dbias[static_cast<std::size_t>(j)], 1e-5);
      expect_padding_untouched(probs);
      expect_padding_untouched(dlogits);
      // Only the loss: no probabilities, no gradient.
      auto loss_only = cuda::ops::softmax_cross_entropy(logits.cview(), labels.data(), {}, {}, nullptr);
      ASSERT_TRUE(loss_only.ok());
      EXPECT_EQ(*loss_only, *loss);
    }
  HostMat logits(2, 3, 0, 1), probs(2, 3, 0, 2);
  std::vector<std::int32_t> bad{0, 3};
  auto r = cuda::ops::softmax_cross_entropy(logits.cview(), bad.data(), probs.view(), {}, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(r.error().message.find("label 3 at row 1"), std::string::npos) << r.error().to_string();
}

TEST(CudaOps, GatherRowsCopiesTheIndexedSamples) {
  FE_REQUIRE_GPU();
  for (std::int64_t features : {784, 7, 1}) {
    const std::int64_t n = 53;
    HostMat images(n, features, 0, 13);
    std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) labels[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i % 10);
    const std::vector<std::int32_t> idx{52, 0, 17, 17, 3, 40, 1};
    HostMat out(9, features, features % 4 ? 1 : 4, 14);  // room for more rows than gathered
    std::vector<std::int32_t> out_labels(idx.size(), -1);
    ASSERT_TRUE(cuda::ops::gather_rows(images.cview(), labels.data(), idx, out.view(), out_labels.data()).ok());
    for (std::size_t r = 0; r < idx.size(); ++r) {
      ASSERT_EQ(out_labels[r], labels[static_cast<std::size_t>(idx[r])]);
      for (std::int64_t j = 0; j < features; ++j)
        ASSERT_EQ(out.at(static_cast<std::int64_t>(r), j), images.at(idx[r], j)) << "row " << r;
    }
    expect_padding_untouched(out);
  }
  HostMat images(4, 3, 0, 1), out(2, 3, 0, 2);
  const std::vector<std::int32_t> bad{1, 4};
  const Status s = cuda::ops::gather_rows(images.cview(), nullptr, bad, out.view(), nullptr);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::invalid_argument);
}

namespace {

// n floats per tensor; the states start as small non-zero values (a run already under way).
struct OptimCase {
  std::vector<std::vector<float>> p, g, s0, s1, s2;
  explicit OptimCase(const std::vector<std::int64_t>& sizes) {
    std::uint64_t stream = 100;
    for (auto n : sizes) {
      p.push_back(normals(n, stream++));
      g.push_back(normals(n, stream++, 0.1f));
      auto m = normals(n, stream++, 0.01f);
      auto v = normals(n, stream++, 0.001f);
      for (auto& x : v) x = x * x;
      s0.push_back(m);
      s1.push_back(v);
      s2.push_back(v);
    }
  }
  std::vector<cuda::ops::OptimTensor> tensors() {
    std::vector<cuda::ops::OptimTensor> t;
    for (std::size_t i = 0; i < p.size(); ++i)
      t.push_back({p[i].data(), g[i].data(), s0[i].data(), s1[i].data(), s2[i].data(), std::int64_t(p[i].size())});
    return t;
  }
};

// Bit-identical where the CPU has FMA (as the GPU always has); otherwise a few ulps apart.
void expect_same_floats(const std::vector<float>& gpu, const std::vector<float>& cpu, const char* what) {
  ASSERT_EQ(gpu.size(), cpu.size());
  for (std::size_t i = 0; i < gpu.size(); ++i) {
    if (optim::detail::kHardwareFma)
      ASSERT_EQ(gpu[i], cpu[i]) << what << "[" << i << "]";
    else
      ASSERT_NEAR(gpu[i], cpu[i], 4e-7f * std::max(1.f, std::abs(cpu[i]))) << what << "[" << i << "]";
  }
}

}  // namespace

TEST(CudaOps, FusedMultiTensorAdamMatchesCpuOracle) {
  FE_REQUIRE_GPU();
  struct Config {
    const char* name;
    optim::AdamOptions o;
    bool decoupled;
  };
  std::vector<Config> configs;
  configs.push_back({"adam", {}, false});
  configs.push_back({"adam l2", {1e-2, 0.9, 0.999, 1e-8, 0.1, false, false}, false});
  configs.push_back({"adamw", {1e-3, 0.9, 0.999, 1e-8, 1e-2, false, false}, true});
  configs.push_back({"adam amsgrad", {1e-3, 0.9, 0.99, 1e-6, 0.0, true, false}, false});
  configs.push_back({"adamw amsgrad maximize", {3e-3, 0.8, 0.95, 1e-8, 0.05, true, true}, true});
  configs.push_back({"beta1 0.3 (lerp from g)", {1e-3, 0.3, 0.999, 1e-8, 0.0, false, false}, false});
  const std::vector<std::int64_t> sizes{1, 5, 64, 1037, 4099, 0, 3};
  for (const auto& cfg : configs) {
    SCOPED_TRACE(cfg.name);
    OptimCase gpu(sizes), cpu(sizes);
    for (std::int64_t step = 1; step <= 6; ++step) {
      const auto tensors = gpu.tensors();
      const Status s = cuda::ops::adam_update(tensors, cfg.o, cfg.decoupled, step);
      ASSERT_TRUE(s.ok()) << s.error().to_string();
      for (std::size_t i = 0; i < sizes.size(); ++i)
        optim::reference::adam_step(cpu.p[i].data(), cpu.g[i].data(), cpu.s0[i].data(), cpu.s1[i].data(),
                                    cpu.s2[i].data(), sizes[i], cfg.o, cfg.o.lr, cfg.decoupled, step);
      for (std::size_t i = 0; i < sizes.size(); ++i) {
        expect_same_floats(gpu.p[i], cpu.p[i], "param");
        expect_same_floats(gpu.s0[i], cpu.s0[i], "exp_avg");
        expect_same_floats(gpu.s1[i], cpu.s1[i], "exp_avg_sq");
        if (cfg.o.amsgrad) expect_same_floats(gpu.s2[i], cpu.s2[i], "max_exp_avg_sq");
      }
    }
  }
  OptimCase c({4});
  const auto tensors = c.tensors();
  EXPECT_FALSE(cuda::ops::adam_update(tensors, {}, false, 0).ok());  // steps are 1-based
  optim::AdamOptions bad;
  bad.beta1 = 1.0;
  EXPECT_EQ(cuda::ops::adam_update(tensors, bad, false, 1).error().code, ErrorCode::invalid_argument);
}

TEST(CudaOps, FusedMultiTensorSgdMatchesCpuOracle) {
  FE_REQUIRE_GPU();
  std::vector<std::pair<const char*, optim::SGDOptions>> configs{
      {"plain", {0.1, 0.0, 0.0, 0.0, false, false}},
      {"momentum", {0.05, 0.9, 0.0, 0.0, false, false}},
      {"nesterov wd", {0.05, 0.9, 0.0, 1e-3, true, false}},
      {"dampening maximize", {0.01, 0.5, 0.1, 0.0, false, true}},
  };
  const std::vector<std::int64_t> sizes{1, 7, 1037, 64};
  for (const auto& [name, o] : configs) {
    SCOPED_TRACE(name);
    OptimCase gpu(sizes), cpu(sizes);
    for (int step = 0; step < 4; ++step) {
      const Status s = cuda::ops::sgd_update(gpu.tensors(), o, step == 0);
      ASSERT_TRUE(s.ok()) << s.error().to_string();
      for (std::size_t i = 0; i < sizes.size(); ++i)
        optim::reference::sgd_step(cpu.p[i].data(), cpu.g[i].data(), cpu.s0[i].data(), sizes[i], o, o.lr, step == 0);
      for (std::size_t i = 0; i < sizes.size(); ++i) {
        expect_same_floats(gpu.p[i], cpu.p[i], "param");
        if (o.momentum != 0.0) expect_same_floats(gpu.s0[i], cpu.s0[i], "momentum_buffer");
      }
    }
  }
}

TEST(CudaOps, PhiloxStreamsEqualTheCpuStreams) {
  FE_REQUIRE_GPU();
  for (auto [seed, stream, offset] : {std::tuple<std::uint64_t, std::uint64_t, std::uint64_t>{42, 7, 0},
                                      {0, 0, 3},
                                      {0xdeadbeefcafef00dull, rng_stream::shuffle + 3, (1ull << 34) - 5}}) {
    const Philox cpu(seed, stream);
    std::vector<std::uint32_t> words(1001);
    std::vector<float> uniform(1001), normal(1001);
    ASSERT_TRUE(cuda::ops::philox_words(seed, stream, offset, words).ok());
    ASSERT_TRUE(cuda::ops::philox_uniform(seed, stream, offset, uniform).ok());
    ASSERT_TRUE(cuda::ops::philox_normal(seed, stream, offset, normal).ok());
    for (std::size_t i = 0; i < words.size(); ++i) {
      ASSERT_EQ(words[i], cpu.word(offset + i)) << i;
      ASSERT_EQ(uniform[i], cpu.uniform(offset + i)) << i;
      // logf / cosf on the GPU are within 2 ulp of glibc's, not always equal.
      ASSERT_NEAR(normal[i], cpu.normal(offset + i), 1e-5f * std::max(1.f, std::abs(normal[i]))) << i;
    }
  }
}

TEST(CudaOps, Fill) {
  FE_REQUIRE_GPU();
  std::vector<float> v(1000003, 0.f);
  ASSERT_TRUE(cuda::ops::fill(v, -2.5f).ok());
  for (float x : v) ASSERT_EQ(x, -2.5f);
}

// ---------------------------------------------------------------------------------------------
// Caching allocator

TEST(CudaMemory, StatisticsFollowAllocationsAndTheCacheIsReused) {
  FE_REQUIRE_GPU();
  ASSERT_TRUE(cuda::empty_cache(0).ok());
  auto before = cuda::memory_stats(0);
  ASSERT_TRUE(before.ok()) << before.error().to_string();
  EXPECT_EQ(before->reserved_bytes, before->allocated_bytes) << "empty_cache left cached blocks";
  const std::int64_t bytes = (3 << 20) + 5;  // a large block: rounded to 2 MiB multiples
  {
    auto b = cuda::DeviceBuffer::allocate(bytes, 0);
    ASSERT_TRUE(b.ok()) << b.error().to_string();
    EXPECT_EQ(b->bytes(), bytes);
    auto during = cuda::memory_stats(0).value();
    EXPECT_GE(during.allocated_bytes - before->allocated_bytes, bytes);
    EXPECT_LE(during.allocated_bytes - before->allocated_bytes, bytes + (2 << 20));
    EXPECT_EQ(during.allocations, before->allocations + 1);
    EXPECT_EQ(during.device_mallocs, before->device_mallocs + 1);
    EXPECT_GE(during.peak_allocated_bytes, during.allocated_bytes);
    EXPECT_GT(during.device_total_bytes, 0);
    // Round trip through the device.
    std::vector<std::uint8_t> host(static_cast<std::size_t>(bytes)), back(host.size());
    for (std::size_t i = 0; i < host.size(); ++i) host[i] = static_cast<std::uint8_t>(i * 31 + 7);
    ASSERT_TRUE(b->copy_from_host(host.data(), bytes).ok());
    ASSERT_TRUE(b->copy_to_host(back.data(), bytes).ok());
    EXPECT_EQ(host, back);
    EXPECT_EQ(b->copy_from_host(host.data(), bytes + 1).error().code, ErrorCode::invalid_argument);
  }
  auto freed = cuda::memory_stats(0).value();
  EXPECT_EQ(freed.allocated_bytes, before->allocated_bytes);
  EXPECT_GT(freed.reserved_bytes, freed.allocated_bytes) << "the block should stay cached";
  {
    auto again = cuda::DeviceBuffer::allocate(bytes - 100, 0);  // same rounded size: a cache hit
    ASSERT_TRUE(again.ok());
    auto hit = cuda::memory_stats(0).value();
    EXPECT_EQ(hit.device_mallocs, freed.device_mallocs);
    EXPECT_EQ(hit.allocations, freed.allocations + 1);
  }
  ASSERT_TRUE(cuda::reset_peak_memory_stats(0).ok());
  auto reset = cuda::memory_stats(0).value();
  EXPECT_EQ(reset.peak_allocated_bytes, reset.allocated_bytes);
  ASSERT_TRUE(cuda::empty_cache(0).ok());
  auto emptied = cuda::memory_stats(0).value();
  EXPECT_EQ(emptied.reserved_bytes, emptied.allocated_bytes);
  EXPECT_GT(emptied.device_frees, before->device_frees);
}

TEST(CudaMemory, OutOfMemoryNamesTheRequestAndTheFreeMemory) {
  FE_REQUIRE_GPU();
  auto huge = cuda::DeviceBuffer::allocate(std::int64_t{1} << 50, 0);  // 1 PiB
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().code, ErrorCode::out_of_memory);
  const std::string msg = huge.error().to_string();
  EXPECT_NE(msg.find("1125899906842624 bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("free of"), std::string::npos) << msg;
  // The failure left the device usable.
  auto small = cuda::DeviceBuffer::allocate(1024, 0);
  ASSERT_TRUE(small.ok()) << small.error().to_string();
  auto negative = cuda::DeviceBuffer::allocate(-1, 0);
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.error().code, ErrorCode::invalid_argument);
  auto empty = cuda::DeviceBuffer::allocate(0, 0);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}
