#pragma once
// CIFAR-style training augmentation, torchvision's standard recipe, as one fused pass from 8-bit
// pixels to the normalized f32 batch the network reads:
//
//   RandomCrop(32, padding=4)  pad every side with `pad` zero pixels, take the H x W window at a uniform
//                              offset (dy, dx) in [0, 2·pad]²
//   RandomHorizontalFlip()     mirror the columns with probability 1/2
//   ToTensor + Normalize       x = (byte / 255 - mean[c]) / std[c] in f32, in torchvision's order of
//                              operations (so the same bits); the padding is byte 0
//
//   augment_params(seed, epoch, sample, options)   the draw of one sample: Philox(seed, stream augment +
//                                                  epoch) at counter `sample` (its index in the data set),
//                                                  so it depends on nothing else: not the batch, the
//                                                  thread count or the rank (and can be exported, so that
//                                                  PyTorch trains on exactly the same crops and flips)
//   augment_batch(set, indices, epoch, seed, options, out[B, C·H·W])   also writes the labels
//   normalize_batch(...)                           the same without crop and flip (evaluation)
#include <array>
#include <cstdint>
#include <span>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "ferrite/core/format.hpp"
#include "ferrite/core/result.hpp"
#include "ferrite/core/rng.hpp"
#include "ferrite/core/view.hpp"
#include "ferrite/data/images.hpp"

namespace ferrite::data {

// CIFAR-10's per-channel mean and standard deviation of the 50,000 training images (pixel / 255), the
// values fast CIFAR recipes normalize with.
inline constexpr std::array<float, 3> kCifar10Mean = {0.4914f, 0.4822f, 0.4465f};
inline constexpr std::array<float, 3> kCifar10Std = {0.2470f, 0.2435f, 0.2616f};

struct AugmentOptions {
  int pad = 4;        // RandomCrop padding (0: no crop)
  bool flip = true;   // RandomHorizontalFlip
  std::array<float, 3> mean = kCifar10Mean;
  std::array<float, 3> std = kCifar10Std;
};

struct AugmentDraw {
  int dy = 0, dx = 0;  // top-left corner of the window in the padded image, each in [0, 2·pad]
  bool flip = false;
};

inline AugmentDraw augment_params(std::uint64_t seed, std::int64_t epoch, std::int64_t sample, const AugmentOptions& o) {
  const Philox rng(seed, rng_stream::augment + static_cast<std::uint64_t>(epoch));
  const Philox::Block b = rng(static_cast<std::uint64_t>(sample));
  const auto span = static_cast<std::uint64_t>(2 * o.pad + 1);
  AugmentDraw d;
  d.dy = static_cast<int>((std::uint64_t{b[0]} * span) >> 32);
  d.dx = static_cast<int>((std::uint64_t{b[1]} * span) >> 32);
  d.flip = o.flip && (b[2] >> 31) != 0;
  return d;
}

namespace augment_detail {
inline Status check(const char* op, const ImageSet& set, std::span<const std::int32_t> indices, MatView<float> out,
                    const AugmentOptions& o) {
  const std::int64_t c = set.channels(), f = c * set.height() * set.width();
  if (!set.pixels.defined() || set.pixels.dtype() != DType::u8 || set.pixels.shape().rank() != 4)
    return make_error(ErrorCode::invalid_argument, op, "the image set has no u8 [N, C, H, W] pixels");
  if (c > 3) return make_error(ErrorCode::unsupported, op, fe_format("{} channels: mean/std hold 3", c));
  if (o.pad < 0 || o.pad > 64) return make_error(ErrorCode::invalid_argument, op, fe_format("pad {} (expected 0..64)", o.pad));
  for (int k = 0; k < c; ++k)
    if (!(o.std[static_cast<std::size_t>(k)] > 0))
      return make_error(ErrorCode::invalid_argument, op, fe_format("std[{}] = {} must be positive", k, o.std[static_cast<std::size_t>(k)]));
  if (out.rows < static_cast<std::int64_t>(indices.size()) || out.cols != f)
    return make_error(ErrorCode::shape_mismatch, op,
                      fe_format("output [{}, {}] cannot hold {} images of {} values", out.rows, out.cols, indices.size(), f));
  for (std::size_t b = 0; b < indices.size(); ++b)
    if (indices[b] < 0 || indices[b] >= set.size())
      return make_error(ErrorCode::invalid_argument, op,
                        fe_format("index {} at batch position {} is outside '{}' of {} images", indices[b], b, set.name, set.size()));
  return ok_status();
}

// One image: window (dy, dx) of the zero-padded source, mirrored if asked, normalized, into `dst`.
inline void render(const std::uint8_t* src, std::int64_t c, std::int64_t h, std::int64_t w, int pad, AugmentDraw d,
                   const AugmentOptions& o, float* dst) {
  for (std::int64_t k = 0; k < c; ++k) {
    const float mean = o.mean[static_cast<std::size_t>(k)], stdev = o.std[static_cast<std::size_t>(k)];
    for (std::int64_t y = 0; y < h; ++y) {
      const std::int64_t sy = y + d.dy - pad;
      float* row = dst + (k * h + y) * w;
      for (std::int64_t x = 0; x < w; ++x) {
        const std::int64_t sx = (d.flip ? w - 1 - x : x) + d.dx - pad;
        const bool inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
        const float byte = inside ? float(src[(k * h + sy) * w + sx]) : 0.0f;
        row[x] = (byte / 255.0f - mean) / stdev;  // torchvision's rounding: ToTensor's div, then Normalize
      }
    }
  }
}
}  // namespace augment_detail

// out[b] = the augmented, normalized image indices[b] (its draw from (seed, epoch, indices[b]));
// labels[b] = its label (labels may be null). Parallel over images; the result does not depend on it.
inline Status augment_batch(const ImageSet& set, std::span<const std::int32_t> indices, std::int64_t epoch, std::uint64_t seed,
                            const AugmentOptions& o, MatView<float> out, std::int32_t* labels) {
  FE_TRY(augment_detail::check("augment_batch", set, indices, out, o));
  const std::int64_t c = set.channels(), h = set.height(), w = set.width();
  const std::uint8_t* px = set.pixels.data<std::uint8_t>();
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, indices.size(), 8), [&](const tbb::blocked_range<std::size_t>& r) {
    for (std::size_t b = r.begin(); b < r.end(); ++b) {
      const AugmentDraw d = augment_params(seed, epoch, indices[b], o);
      augment_detail::render(px + std::int64_t(indices[b]) * c * h * w, c, h, w, o.pad, d, o, out.row(static_cast<std::int64_t>(b)));
    }
  });
  if (labels)
    for (std::size_t b = 0; b < indices.size(); ++b) labels[b] = set.labels.data<std::int32_t>()[indices[b]];
  return ok_status();
}

// Evaluation: normalization alone (no crop, no flip).
inline Status normalize_batch(const ImageSet& set, std::span<const std::int32_t> indices, const AugmentOptions& o,
                              MatView<float> out, std::int32_t* labels) {
  AugmentOptions plain = o;
  plain.pad = 0;
  plain.flip = false;
  return augment_batch(set, indices, 0, 0, plain, out, labels);
}

}  // namespace ferrite::data
