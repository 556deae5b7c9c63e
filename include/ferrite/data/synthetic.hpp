#pragma once
// A synthetic MNIST-shaped dataset that is learnable but not trivial, for runs without real data.
//
// Ten class templates, each a few smooth pen strokes (quadratic Bezier curves with a Gaussian cross
// section) drawn on 28x28 from the seed. A sample is its class template shifted by up to ±2 px,
// scaled in intensity, plus Gaussian per-pixel noise, clipped to [0, 1]:
//   x[p] = clamp(scale * template[label][p - shift] + noise_std * n[p], 0, 1)
// Train and test share the templates (so the test split measures generalization to new shifts and
// noise) but draw everything else from disjoint Philox streams.
//
// Every value is a pure function of (seed, split, sample index): samples are generated in parallel
// and the result is bit-identical for any thread count.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "ferrite/core/result.hpp"
#include "ferrite/core/rng.hpp"
#include "ferrite/tensor/tensor.hpp"
#include "ferrite/data/dataset.hpp"

namespace ferrite::data {

struct SyntheticOptions {
  // Defaults chosen so that the MNIST MLP (784-128-64-10, Adam 1e-3, batch 32, 5 epochs) on 1,000
  // samples clears 90% held-out accuracy while one sample per class does not solve the task.
  float noise_std = 0.3f;  // per-pixel Gaussian noise, before clipping
  int max_shift = 2;       // uniform integer shift in [-max_shift, max_shift] on each axis
  float min_scale = 0.6f;  // intensity scale uniform in [min_scale, 1]
  int strokes = 3;         // pen strokes per class template
};

inline constexpr std::int64_t kSyntheticSide = 28;
inline constexpr std::int64_t kSyntheticPixels = kSyntheticSide * kSyntheticSide;
inline constexpr int kSyntheticClasses = 10;

namespace detail {

// Sub-streams of rng_stream::data, so each kind of randomness has its own counter space.
inline constexpr std::uint64_t synthetic_stream(int purpose, Split split) {
  return rng_stream::data + 1 + static_cast<std::uint64_t>(split) * 8 + static_cast<std::uint64_t>(purpose);
}
inline constexpr std::uint64_t kTemplateStream = rng_stream::data;
inline constexpr int kLabelPurpose = 0, kParamPurpose = 1, kNoisePurpose = 2;

// Uniform integer in [0, bound) from one word (multiply-shift; the bias ~bound/2^32 is irrelevant here).
inline constexpr std::uint32_t below(std::uint32_t word, std::uint32_t bound) noexcept {
  return static_cast<std::uint32_t>((std::uint64_t{word} * bound) >> 32);
}

// The label of sample i: samples come in blocks of ten holding each class once, in an order drawn
// per block. Classes stay exactly balanced (up to the last partial block) and labels look random.
inline int synthetic_label(const Philox& rng, std::int64_t index) noexcept {
  const auto block = static_cast<std::uint64_t>(index / kSyntheticClasses);
  std::array<int, kSyntheticClasses> perm{};
  for (int k = 0; k < kSyntheticClasses; ++k) perm[k] = k;
  const Philox::Block w0 = rng(block * 3), w1 = rng(block * 3 + 1), w2 = rng(block * 3 + 2);
  const std::array<std::uint32_t, 12> words{w0[0], w0[1], w0[2], w0[3], w1[0], w1[1],
                                            w1[2], w1[3], w2[0], w2[1], w2[2], w2[3]};
  for (int k = kSyntheticClasses - 1; k > 0; --k)  // Fisher-Yates
    std::swap(perm[k], perm[below(words[k], static_cast<std::uint32_t>(k + 1))]);
  return perm[index % kSyntheticClasses];
}

}  // namespace detail

// The ten class templates, f32 [10, 784] in [0, 1]: a pure function of the seed.
inline Result<Tensor> synthetic_templates(std::uint64_t seed, int strokes = SyntheticOptions{}.strokes) {
  if (strokes < 1 || strokes > 16)
    return make_error(ErrorCode::invalid_argument, "synthetic_templates",
                      "strokes must be in [1, 16], got " + std::to_string(strokes));
  FE_TRY_ASSIGN(Tensor templates, Tensor::zeros({kSyntheticClasses, kSyntheticPixels}));
  const Philox rng(seed, detail::kTemplateStream);
  constexpr int kSegments = 12;  // each Bezier curve is drawn as a 12-segment polyline
  for (int c = 0; c < kSyntheticClasses; ++c) {
    float* t = templates.data<float>() + c * kSyntheticPixels;
    for (int s = 0; s < strokes; ++s) {
      // 8 words: 3 control points (x, y) inside [4, 24), the stroke width, one spare.
      const std::uint64_t counter = (static_cast<std::uint64_t>(c) * 16 + s) * 2;
      const Philox::Block a = rng(counter), b = rng(counter + 1);
      auto coord = [](std::uint32_t w) { return 4.0f + 20.0f * Philox::to_unit_float(w); };
      const float x0 = coord(a[0]), y0 = coord(a[1]), x1 = coord(a[2]), y1 = coord(a[3]);
      const float x2 = coord(b[0]), y2 = coord(b[1]);
      const float width = 0.9f + 0.7f * Philox::to_unit_float(b[2]);
      std::array<float, kSegments + 1> px{}, py{};
      for (int k = 0; k <= kSegments; ++k) {
        const float u = static_cast<float>(k) / kSegments, v = 1.0f - u;
        px[k] = v * v * x0 + 2.0f * u * v * x1 + u * u * x2;
        py[k] = v * v * y0 + 2.0f * u * v * y1 + u * u * y2;
      }
      for (std::int64_t r = 0; r < kSyntheticSide; ++r)
        for (std::int64_t col = 0; col < kSyntheticSide; ++col) {
          const float qx = static_cast<float>(col), qy = static_cast<float>(r);
          float best = 1e30f;  // squared distance to the polyline
          for (int k = 0; k < kSegments; ++k) {
            const float ex = px[k + 1] - px[k], ey = py[k + 1] - py[k];
            const float len2 = ex * ex + ey * ey;
            float h = len2 > 0.f ? ((qx - px[k]) * ex + (qy - py[k]) * ey) / len2 : 0.f;
            h = std::clamp(h, 0.0f, 1.0f);
            const float dx = qx - px[k] - h * ex, dy = qy - py[k] - h * ey;
            best = std::min(best, dx * dx + dy * dy);
          }
          float& out = t[r * kSyntheticSide + col];
          out = std::max(out, std::exp(-best / (2.0f * width * width)));  // overlapping ink saturates
        }
    }
  }
  return templates;
}

// `samples` MNIST-shaped samples (images f32 [samples, 784], labels i32 [samples]) of one split.
inline Result<Dataset> make_synthetic(std::int64_t samples, std::uint64_t seed, Split split,
                                      const SyntheticOptions& options = {}) {
  const std::string op = "make_synthetic";
  if (samples < 1 || samples > kMaxDatasetSize)
    return make_error(ErrorCode::invalid_argument, op,
                      "samples must be in [1, " + std::to_string(kMaxDatasetSize) + "], got " +
                          std::to_string(samples));
  if (!(options.noise_std >= 0.f && options.noise_std <= 10.f) || options.max_shift < 0 ||
      options.max_shift > 8 || !(options.min_scale > 0.f && options.min_scale <= 1.f))
    return make_error(ErrorCode::invalid_argument, op,
                      "options out of range: need noise_std in [0, 10], max_shift in [0, 8], "
                      "min_scale in (0, 1]");
  FE_TRY_ASSIGN(Tensor templates, synthetic_templates(seed, options.strokes));

  Dataset out;
  out.num_classes = kSyntheticClasses;
  out.rows = kSyntheticSide;
  out.cols = kSyntheticSide;
  out.name = "synthetic/" + std::string(split_name(split));
  FE_TRY_ASSIGN(out.images, Tensor::empty({samples, kSyntheticPixels}, DType::f32));
  FE_TRY_ASSIGN(out.labels, Tensor::empty({samples}, DType::i32));

  const Philox label_rng(seed, detail::synthetic_stream(detail::kLabelPurpose, split));
  const Philox param_rng(seed, detail::synthetic_stream(detail::kParamPurpose, split));
  const Philox noise_rng(seed, detail::synthetic_stream(detail::kNoisePurpose, split));
  const float* tmpl = templates.data<float>();
  float* images = out.images.data<float>();
  std::int32_t* labels = out.labels.data<std::int32_t>();
  const auto shifts = static_cast<std::uint32_t>(2 * options.max_shift + 1);

  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, samples, 64),
                    [&](const tbb::blocked_range<std::int64_t>& range) {
    for (std::int64_t i = range.begin(); i != range.end(); ++i) {
      const int label = detail::synthetic_label(label_rng, i);
      labels[i] = label;
      const Philox::Block p = param_rng(static_cast<std::uint64_t>(i));
      const auto dx = static_cast<std::int64_t>(detail::below(p[0], shifts)) - options.max_shift;
      const auto dy = static_cast<std::int64_t>(detail::below(p[1], shifts)) - options.max_shift;
      const float scale = options.min_scale + (1.0f - options.min_scale) * Philox::to_unit_float(p[2]);
      const float* t = tmpl + label * kSyntheticPixels;
      float* x = images + i * kSyntheticPixels;
      const std::uint64_t noise_base = static_cast<std::uint64_t>(i) * kSyntheticPixels;
      for (std::int64_t r = 0; r < kSyntheticSide; ++r)
        for (std::int64_t c = 0; c < kSyntheticSide; ++c) {
          const std::int64_t sr = r - dy, sc = c - dx;  // the template pixel that moves here
          const float ink = (sr >= 0 && sr < kSyntheticSide && sc >= 0 && sc < kSyntheticSide)
                                ? t[sr * kSyntheticSide + sc]
                                : 0.0f;
          const std::int64_t pix = r * kSyntheticSide + c;
          const float noise = options.noise_std * noise_rng.normal(noise_base + pix);
          x[pix] = std::clamp(scale * ink + noise, 0.0f, 1.0f);
        }
    }
  });
  return out;
}

}  // namespace ferrite::data
