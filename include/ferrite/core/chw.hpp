#pragma once
// ChwView: one image (one sample of a batch) in planar layout [C, H, W], contiguous, borrowed.
// The convolution family (ops/conv.hpp, ops/norm.hpp, ops/pool.hpp) works on these: planar layout
// makes a channel a contiguous H*W plane (so a channel slice of a bigger [C', H, W] buffer is itself a
// ChwView, which is how the U-Net concatenates without copying) and turns a convolution into one
// GEMM  Y[Cout, H*W] = W[Cout, Cin*k*k] x cols[Cin*k*k, H*W]  with PyTorch's weight layout as it is.
#include <cstdint>
#include <string>

#include "ferrite/core/shape.hpp"

namespace ferrite {

template <class T>
struct ChwView {
  T* data = nullptr;
  std::int64_t channels = 0, height = 0, width = 0;

  std::int64_t plane() const noexcept { return height * width; }
  std::int64_t numel() const noexcept { return channels * height * width; }
  T* channel(std::int64_t c) const noexcept { return data + c * plane(); }
  T& operator()(std::int64_t c, std::int64_t y, std::int64_t x) const noexcept {
    return data[(c * height + y) * width + x];
  }
  // Channels [begin, begin + count): contiguous, so again a ChwView.
  ChwView channel_slice(std::int64_t begin, std::int64_t count) const noexcept {
    return {channel(begin), count, height, width};
  }
  operator ChwView<const T>() const noexcept { return {data, channels, height, width}; }  // NOLINT
  Shape shape() const { return {channels, height, width}; }
};

}  // namespace ferrite
