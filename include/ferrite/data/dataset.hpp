#pragma once
// Dataset: an in-memory image classification set, as the training loop consumes it.
//   images  f32 [N, channels * rows * cols]  flattened pixels (channel planes, then rows) in [0, 1]
//                                 (byte / 255, like torchvision's ToTensor), one sample per row so a batch
//                                 is a row gather.
//   labels  i32 [N]               class index in [0, num_classes)
// N is at most INT32_MAX: batch orders are i32 index lists (see loader.hpp).
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>

#include "ferrite/core/result.hpp"
#include "ferrite/tensor/tensor.hpp"

namespace ferrite::data {

// Which half of a dataset: the training images or the held-out test images.
enum class Split : std::uint8_t { train = 0, test = 1 };

inline constexpr std::string_view split_name(Split split) noexcept {
  return split == Split::train ? "train" : "test";
}

inline constexpr std::int64_t kMaxDatasetSize = std::numeric_limits<std::int32_t>::max();

struct Dataset {
  Tensor images;  // f32 [N, channels * rows * cols], values in [0, 1]
  Tensor labels;  // i32 [N]
  int num_classes = 10;
  std::int64_t channels = 1;  // colour planes (CIFAR: 3)
  std::int64_t rows = 28;  // image height, kept so that conv models can view a row as [1, rows, cols]
  std::int64_t cols = 28;  // image width
  std::string name;        // e.g. "fashion-mnist/train", "synthetic/test"

  std::int64_t size() const noexcept { return labels.defined() ? labels.dim(0) : 0; }
  std::int64_t features() const noexcept { return channels * rows * cols; }

  MatView<const float> image_matrix() const noexcept { return images.mat<float>(); }
  const std::int32_t* label_data() const noexcept { return labels.data<std::int32_t>(); }

  // A deep copy of samples [begin, begin + count): e.g. the first 1,000 training images.
  Result<Dataset> slice(std::int64_t begin, std::int64_t count) const {
    if (begin < 0 || count < 0 || begin > size() || count > size() - begin)
      return make_error(ErrorCode::invalid_argument, "Dataset::slice",
                        "samples [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
                            ") are outside dataset '" + name + "' of " + std::to_string(size()) +
                            " samples");
    Dataset out;
    out.num_classes = num_classes;
    out.channels = channels;
    out.rows = rows;
    out.cols = cols;
    out.name = name + "[" + std::to_string(begin) + ":" + std::to_string(begin + count) + "]";
    const std::int64_t f = features();
    FE_TRY_ASSIGN(out.images,
                  Tensor::from_data<float>({count, f}, images.data<float>() + begin * f, count * f));
    FE_TRY_ASSIGN(out.labels,
                  Tensor::from_data<std::int32_t>({count}, label_data() + begin, count));
    return out;
  }
};

}  // namespace ferrite::data
