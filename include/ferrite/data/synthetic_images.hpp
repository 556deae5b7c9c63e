#pragma once
// A synthetic CIFAR-shaped set (u8 [N, 3, 32, 32], 10 classes) for machines without CIFAR-10: learnable
// by a convolutional network but not by looking at one pixel.
//
// Class k's template is a background colour and three Gaussian colour blobs (centre, width and RGB
// drawn from the seed). A sample is its class template, mirrored with probability 1/2, shifted by up to
// ±6 px on each axis, its brightness scaled by [0.5, 1], plus Gaussian noise of 40 levels per pixel,
// rounded and clipped to bytes (so a nearest-class-mean classifier is far from perfect). Train and test share the templates and draw everything else from disjoint Philox streams;
// every byte is a pure function of (seed, split, sample index), so the set is the same for any thread
// count. Labels come in shuffled blocks of ten (data/synthetic.hpp), so classes stay balanced.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "ferrite/core/rng.hpp"
#include "ferrite/data/images.hpp"
#include "ferrite/data/synthetic.hpp"

namespace ferrite::data {

inline Result<ImageSet> make_synthetic_images(std::int64_t samples, std::uint64_t seed, Split split) {
  constexpr const char* op = "make_synthetic_images";
  constexpr std::int64_t side = 32, plane = side * side, classes = 10;
  constexpr int blobs = 3, max_shift = 6;
  if (samples < 1 || samples > kMaxDatasetSize)
    return make_error(ErrorCode::invalid_argument, op, fe_format("samples must be in [1, {}], got {}", kMaxDatasetSize, samples));
  // Templates in [0, 255] floats, [class][c][y][x].
  std::vector<float> tmpl(static_cast<std::size_t>(classes * 3 * plane));
  const Philox trng(seed, rng_stream::data + 100);
  for (std::int64_t k = 0; k < classes; ++k) {
    const Philox::Block bg = trng(static_cast<std::uint64_t>(k * 16));
    for (std::int64_t c = 0; c < 3; ++c)
      for (std::int64_t p = 0; p < plane; ++p)
        tmpl[static_cast<std::size_t>((k * 3 + c) * plane + p)] = 40.0f + 120.0f * Philox::to_unit_float(bg[c]);
    for (int b = 0; b < blobs; ++b) {
      const Philox::Block g = trng(static_cast<std::uint64_t>(k * 16 + 1 + 2 * b));
      const Philox::Block col = trng(static_cast<std::uint64_t>(k * 16 + 2 + 2 * b));
      const float cy = 6.0f + 20.0f * Philox::to_unit_float(g[0]), cx = 6.0f + 20.0f * Philox::to_unit_float(g[1]);
      const float sigma = 3.0f + 4.0f * Philox::to_unit_float(g[2]);
      for (std::int64_t c = 0; c < 3; ++c) {
        const float target = 255.0f * Philox::to_unit_float(col[c]);
        for (std::int64_t y = 0; y < side; ++y)
          for (std::int64_t x = 0; x < side; ++x) {
            const float r2 = (float(y) - cy) * (float(y) - cy) + (float(x) - cx) * (float(x) - cx);
            const float a = std::exp(-r2 / (2 * sigma * sigma));
            float& v = tmpl[static_cast<std::size_t>((k * 3 + c) * plane + y * side + x)];
            v = (1 - a) * v + a * target;
          }
      }
    }
  }
  ImageSet set;
  set.name = "synthetic-images/" + std::string(split_name(split));
  for (std::int64_t k = 0; k < classes; ++k) set.classes.push_back("class" + std::to_string(k));
  FE_TRY_ASSIGN(set.pixels, Tensor::empty({samples, 3, side, side}, DType::u8));
  FE_TRY_ASSIGN(set.labels, Tensor::empty({samples}, DType::i32));
  const std::uint64_t base = rng_stream::data + 200 + 8 * static_cast<std::uint64_t>(split);
  const Philox label_rng(seed, base), param_rng(seed, base + 1), noise_rng(seed, base + 2);
  std::uint8_t* px = set.pixels.data<std::uint8_t>();
  std::int32_t* labels = set.labels.data<std::int32_t>();
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, samples, 32), [&](const tbb::blocked_range<std::int64_t>& r) {
    for (std::int64_t i = r.begin(); i < r.end(); ++i) {
      const int label = detail::synthetic_label(label_rng, i);
      labels[i] = label;
      const Philox::Block p = param_rng(static_cast<std::uint64_t>(i));
      const auto dy = std::int64_t(detail::below(p[0], 2 * max_shift + 1)) - max_shift;
      const auto dx = std::int64_t(detail::below(p[1], 2 * max_shift + 1)) - max_shift;
      const float scale = 0.5f + 0.5f * Philox::to_unit_float(p[2]);
      const bool mirror = (p[3] >> 31) != 0;
      for (std::int64_t c = 0; c < 3; ++c)
        for (std::int64_t y = 0; y < side; ++y)
          for (std::int64_t x = 0; x < side; ++x) {
            const std::int64_t sy = std::clamp<std::int64_t>(y - dy, 0, side - 1);
            const std::int64_t sx = std::clamp<std::int64_t>((mirror ? side - 1 - x : x) - dx, 0, side - 1);
            const float v = scale * tmpl[static_cast<std::size_t>((label * 3 + c) * plane + sy * side + sx)] +
                            40.0f * noise_rng.normal(static_cast<std::uint64_t>((i * 3 + c) * plane + y * side + x));
            px[(i * 3 + c) * plane + y * side + x] = static_cast<std::uint8_t>(std::clamp(std::lround(v), 0L, 255L));
          }
    }
  });
  return set;
}

}  // namespace ferrite::data
