#pragma once
// The convolution family of backend/cuda/kernels.hpp on planar images [C, H, W] of one sample, P = H*W
// (nvcc only; included by src/cuda_conv.cu alone): the batched SGEMM of Winograd, im2col for 3x3,
// the Winograd F(2x2, 3x3) input and output transforms, the channel bias, the ConvTranspose k2 s2
// scatter and 2x2 max pooling. Formulas from the former QCA stepper's plan; CPU oracles (ops/conv.hpp,
// backend/cpu/winograd.hpp, ops/pool.hpp):
//   im2col3x3, the scatter's taps, maxpool2x2   copies and selects: bit for bit
//   add_channel_bias, the scatter's bias         one __fadd_rn (without a bias the scatter adds 0.f,
//                                                as the CPU: -0 becomes +0 alike)
//   Winograd transforms                          the CPU's sums in the CPU's order (additions only:
//                                                nothing for nvcc to contract), the bias added last
//                                                (0.f without one, as the CPU)
//   maxpool2x2                                   std::max(std::max(a, b), std::max(c, d)) of the CPU:
//                                                a NaN propagates where std::max's does (first argument)
// Launch shapes: impl/planar.cuh (grid (ceil(n / 256), channels), 32-bit in-plane indices).
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "ferrite/backend/cuda/impl/check.cuh"
#include "ferrite/backend/cuda/impl/handles.cuh"
#include "ferrite/backend/cuda/impl/planar.cuh"
#include "ferrite/backend/cuda/impl/stream.cuh"
#include "ferrite/backend/cuda/kernels.hpp"
#include "ferrite/core/op_params.hpp"
#include "ferrite/core/result.hpp"

namespace ferrite::cuda::kernels {

namespace {

using detail::thread_x;

// cols[row, p] = x[ci, py + ky - 1, px + kx - 1] (0 outside the image), row = ci*9 + ky*3 + kx:
// grid (ceil(P / 256), rows = Cin*9).
__global__ void im2col3x3_kernel(const float* __restrict__ x, i64 rows, int height, int width,
                                 float* __restrict__ cols) {
  const int plane = height * width;  // <= INT_MAX (checked by the launcher)
  const i64 q = thread_x();
  if (q >= plane) return;
  const int p = static_cast<int>(q), py = p / width, px = p - py * width;
  for (i64 row = blockIdx.y; row < rows; row += gridDim.y) {
    const i64 ci = row / 9;
    const int tap = static_cast<int>(row - ci * 9), ky = tap / 3, kx = tap - ky * 3;
    const int sy = py + ky - 1, sx = px + kx - 1;
    cols[row * plane + p] = (sy >= 0 && sy < height && sx >= 0 && sx < width) ? x[ci * plane + sy * width + sx] : 0.f;
  }
}

// Winograd F(2x2, 3x3): tile t = ty * tiles_x + tx covers the outputs (2ty .. 2ty+1, 2tx .. 2tx+1).
// v[xi][ci][t] (xi = 4i + j) = (B^T d B)[i][j] of tile t of channel ci, d = rows 2ty-1 .. 2ty+2,
// columns 2tx-1 .. 2tx+2 (zero outside the image), B^T = [[1,0,-1,0], [0,1,1,0], [0,-1,1,0], [0,1,0,-1]]:
// grid (ceil(T / 256), Cin).
__global__ void winograd_input_kernel(const float* __restrict__ x, i64 cin, int height, int width, int tiles,
                                      float* __restrict__ v) {
  const i64 q = thread_x();
  if (q >= tiles) return;
  const int t = static_cast<int>(q), tiles_x = (width + 1) / 2, ty = t / tiles_x, tx = t - ty * tiles_x;
  const i64 plane = i64{height} * width, slab = cin * tiles;
  for (i64 ci = blockIdx.y; ci < cin; ci += gridDim.y) {
    const float* img = x + ci * plane;
    float d[4][4];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int yy = 2 * ty - 1 + r;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int xx = 2 * tx - 1 + c;
        d[r][c] = (yy >= 0 && yy < height && xx >= 0 && xx < width) ? img[yy * width + xx] : 0.f;
      }
    }
    float b[4][4];  // B^T d
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      b[0][c] = d[0][c] - d[2][c];
      b[1][c] = d[1][c] + d[2][c];
      b[2][c] = d[2][c] - d[1][c];
      b[3][c] = d[1][c] - d[3][c];
    }
    float* out = v + ci * tiles + t;
#pragma unroll
    for (int r = 0; r < 4; ++r) {  // (B^T d) B
      out[(4 * r + 0) * slab] = b[r][0] - b[r][2];
      out[(4 * r + 1) * slab] = b[r][1] + b[r][2];
      out[(4 * r + 2) * slab] = b[r][2] - b[r][1];
      out[(4 * r + 3) * slab] = b[r][1] - b[r][3];
    }
  }
}

// The 2x2 outputs of tile t of channel co from m[xi][co][t]: Y = A^T M A, A^T = [[1,1,1,0], [0,1,-1,-1]],
// + bias[co] (0.f without), written where inside the image: grid (ceil(T / 256), Cout).
__global__ void winograd_output_kernel(const float* __restrict__ m, i64 cout, int height, int width, int tiles,
                                       const float* __restrict__ bias, float* __restrict__ y) {
  const i64 q = thread_x();
  if (q >= tiles) return;
  const int t = static_cast<int>(q), tiles_x = (width + 1) / 2, ty = t / tiles_x, tx = t - ty * tiles_x;
  const i64 plane = i64{height} * width, slab = cout * tiles;
  for (i64 co = blockIdx.y; co < cout; co += gridDim.y) {
    const float* in = m + co * tiles + t;
    float v[16];
#pragma unroll
    for (int xi = 0; xi < 16; ++xi) v[xi] = in[xi * slab];
    float s[2][4];  // A^T M
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      s[0][c] = v[c] + v[4 + c] + v[8 + c];
      s[1][c] = v[4 + c] - v[8 + c] - v[12 + c];
    }
    const float b = bias ? bias[co] : 0.f;
    float* img = y + co * plane;
#pragma unroll
    for (int a = 0; a < 2; ++a) {
      const int oy = 2 * ty + a;
      if (oy >= height) continue;
      img[oy * width + 2 * tx] = __fadd_rn(s[a][0] + s[a][1] + s[a][2], b);
      if (2 * tx + 1 < width) img[oy * width + 2 * tx + 1] = __fadd_rn(s[a][1] - s[a][2] - s[a][3], b);
    }
  }
}

// y[c, p] += bias[c]: grid (ceil(P / 256), C).
__global__ void add_channel_bias_kernel(float* __restrict__ y, i64 channels, int plane,
                                        const float* __restrict__ bias) {
  const i64 p = thread_x();
  if (p >= plane) return;
  for (i64 c = blockIdx.y; c < channels; c += gridDim.y) y[c * plane + p] = __fadd_rn(y[c * plane + p], bias[c]);
}

// y[co, oy, ox] = taps[co*4 + (oy&1)*2 + (ox&1), (oy/2)*W + ox/2] + bias[co] (0.f without):
// grid (ceil(4HW / 256), Cout).
__global__ void conv_transpose_k2s2_scatter_kernel(const float* __restrict__ taps, i64 cout, int in_height,
                                                   int in_width, const float* __restrict__ bias,
                                                   float* __restrict__ y) {
  const int out_width = 2 * in_width, out_plane = 4 * in_height * in_width;  // <= INT_MAX (checked)
  const i64 q = thread_x();
  if (q >= out_plane) return;
  const int o = static_cast<int>(q), oy = o / out_width, ox = o - oy * out_width;
  const int tap = (oy & 1) * 2 + (ox & 1), src = (oy >> 1) * in_width + (ox >> 1);
  const i64 in_plane = i64{in_height} * in_width;
  for (i64 co = blockIdx.y; co < cout; co += gridDim.y)
    y[co * out_plane + o] = __fadd_rn(taps[(co * 4 + tap) * in_plane + src], bias ? bias[co] : 0.f);
}

// y[c, oy, ox] = max of the 2x2 window at (2oy, 2ox), as std::max: grid (ceil(Ho*Wo / 256), C).
__device__ __forceinline__ float std_max(float a, float b) { return (a < b) ? b : a; }

__global__ void maxpool2x2_kernel(const float* __restrict__ x, i64 channels, int height, int width,
                                  float* __restrict__ y) {
  const int out_height = height / 2, out_width = width / 2, out_plane = out_height * out_width;
  const i64 q = thread_x();
  if (q >= out_plane) return;
  const int o = static_cast<int>(q), oy = o / out_width, ox = o - oy * out_width;
  const i64 plane = i64{height} * width;
  for (i64 c = blockIdx.y; c < channels; c += gridDim.y) {
    const float* r0 = x + c * plane + (2 * oy) * width + 2 * ox;
    const float* r1 = r0 + width;
    y[c * out_plane + o] = std_max(std_max(r0[0], r0[1]), std_max(r1[0], r1[1]));
  }
}

i64 winograd_tiles(i64 height, i64 width) { return ((height + 1) / 2) * ((width + 1) / 2); }

}  // namespace

Status sgemm_strided_batched(const Stream& s, Trans ta, Trans tb, i64 m, i64 n, i64 k, float alpha, const float* a,
                             i64 lda, i64 stride_a, const float* b, i64 ldb, i64 stride_b, float beta, float* c,
                             i64 ldc, i64 stride_c, i64 batch, bool tf32) {
  if (m <= 0 || n <= 0 || batch <= 0) return ok_status();
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  Stream::Impl& t = *s.impl();
  FE_TRY(detail::use_tf32(t, tf32));
  return detail::sgemm_strided_batched(t.blas, ta, tb, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c,
                                       ldc, stride_c, batch);
}

Status im2col3x3(const Stream& s, const float* x, i64 cin, i64 height, i64 width, float* cols) {
  if (cin <= 0 || height <= 0 || width <= 0) return ok_status();
  FE_TRY(detail::check_plane("cuda::kernels::im2col3x3", "a plane", height * width));
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  im2col3x3_kernel<<<detail::planar_grid(height * width, cin * 9), detail::kBlock, 0, detail::raw_stream(s)>>>(
      x, cin * 9, static_cast<int>(height), static_cast<int>(width), cols);
  return detail::check_launch("im2col3x3_kernel");
}

Status winograd_input_transform(const Stream& s, const float* x, i64 cin, i64 height, i64 width, float* v) {
  if (cin <= 0 || height <= 0 || width <= 0) return ok_status();
  const i64 tiles = winograd_tiles(height, width);
  FE_TRY(detail::check_plane("cuda::kernels::winograd_input_transform", "a plane", height * width));
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  winograd_input_kernel<<<detail::planar_grid(tiles, cin), detail::kBlock, 0, detail::raw_stream(s)>>>(
      x, cin, static_cast<int>(height), static_cast<int>(width), static_cast<int>(tiles), v);
  return detail::check_launch("winograd_input_kernel");
}

Status winograd_output_transform(const Stream& s, const float* m, i64 cout, i64 height, i64 width,
                                 const float* bias, float* y) {
  if (cout <= 0 || height <= 0 || width <= 0) return ok_status();
  const i64 tiles = winograd_tiles(height, width);
  FE_TRY(detail::check_plane("cuda::kernels::winograd_output_transform", "a plane", height * width));
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  winograd_output_kernel<<<detail::planar_grid(tiles, cout), detail::kBlock, 0, detail::raw_stream(s)>>>(
      m, cout, static_cast<int>(height), static_cast<int>(width), static_cast<int>(tiles), bias, y);
  return detail::check_launch("winograd_output_kernel");
}

Status add_channel_bias(const Stream& s, float* y, i64 channels, i64 plane, const float* bias) {
  if (channels <= 0 || plane <= 0 || !bias) return ok_status();
  FE_TRY(detail::check_plane("cuda::kernels::add_channel_bias", "a plane", plane));
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  add_channel_bias_kernel<<<detail::planar_grid(plane, channels), detail::kBlock, 0, detail::raw_stream(s)>>>(
      y, channels, static_cast<int>(plane), bias);
  return detail::check_launch("add_channel_bias_kernel");
}

Status conv_transpose_k2s2_scatter(const Stream& s, const float* taps, i64 cout, i64 height, i64 width,
                                   const float* bias, float* y) {
  if (cout <= 0 || height <= 0 || width <= 0) return ok_status();
  const i64 out_plane = 4 * height * width;
  FE_TRY(detail::check_plane("cuda::kernels::conv_transpose_k2s2_scatter", "an output plane", out_plane));
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  conv_transpose_k2s2_scatter_kernel<<<detail::planar_grid(out_plane, cout), detail::kBlock, 0,
                                       detail::raw_stream(s)>>>(taps, cout, static_cast<int>(height),
                                                                static_cast<int>(width), bias, y);
  return detail::check_launch("conv_transpose_k2s2_scatter_kernel");
}

Status maxpool2x2(const Stream& s, const float* x, i64 channels, i64 height, i64 width, float* y) {
  if (channels <= 0 || height < 2 || width < 2) return ok_status();
  const i64 out_plane = (height / 2) * (width / 2);
  FE_TRY(detail::check_plane("cuda::kernels::maxpool2x2", "a plane", height * width));
  FE_TRY_ASSIGN(auto guard, detail::enter(s));
  maxpool2x2_kernel<<<detail::planar_grid(out_plane, channels), detail::kBlock, 0, detail::raw_stream(s)>>>(
      x, channels, static_cast<int>(height), static_cast<int>(width), y);
  return detail::check_launch("maxpool2x2_kernel");
}

}  // namespace ferrite::cuda::kernels
