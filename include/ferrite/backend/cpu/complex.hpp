#pragma once
// Complex cells on the CPU: the QCA state psi[H, W, d, 2] (re, im) of one sample, to and from the
// planar layout the U-Net reads. TBB over image rows; every cell is computed by one thread in a fixed
// order, so results do not depend on the thread count. T = float (fast path) or double (reference).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include <tbb/parallel_for.h>

namespace ferrite::cpu {

// x[2d, P]: x[c] = Re psi[:, :, c], x[d + c] = Im psi[:, :, c], P = H*W (rows of W pixels).
template <class T>
void complex_pack_planar(const T* psi, std::int64_t height, std::int64_t width, std::int64_t d, T* x) {
  const std::int64_t HW = height * width;
  tbb::parallel_for(std::int64_t{0}, height, [&](std::int64_t y) {
    for (std::int64_t p = y * width; p < (y + 1) * width; ++p)
      for (std::int64_t c = 0; c < d; ++c) {
        x[c * HW + p] = psi[(p * d + c) * 2];
        x[(d + c) * HW + p] = psi[(p * d + c) * 2 + 1];
      }
  });
}

// Per cell, from the law's output o[2d, P] (+ bias[2d] if non-null, added here: the outc
// convolution's bias fused into this pass):
//   m_c = (o[c] + b[c]) + i (o[d + c] + b[d + c]);  g_c = m_c psi_c (unitary) or m_c;
//   psi1 = psi + g - gamma psi;  psi' = psi1 / (sqrt(sum_c |psi1_c|^2) + 1e-9)     (in place)
template <class T>
void complex_cell_update(const T* o, const T* bias, T* psi, std::int64_t height, std::int64_t width, std::int64_t d,
                         bool unitary, T gamma) {
  const std::int64_t HW = height * width;
  tbb::parallel_for(std::int64_t{0}, height, [&](std::int64_t y) {
    constexpr int kMaxD = 64;
    T re1[kMaxD], im1[kMaxD];
    for (std::int64_t p = y * width; p < (y + 1) * width; ++p) {
      T* v = psi + p * d * 2;
      T norm2 = 0;
      for (std::int64_t c0 = 0; c0 < d; c0 += kMaxD) {  // d > 64 is processed in chunks, same formulas
        const std::int64_t c1 = std::min(d, c0 + kMaxD);
        for (std::int64_t c = c0; c < c1; ++c) {
          const T pr = v[2 * c], pi = v[2 * c + 1];
          const T mr = bias ? o[c * HW + p] + bias[c] : o[c * HW + p];
          const T mi = bias ? o[(d + c) * HW + p] + bias[d + c] : o[(d + c) * HW + p];
          const T gr = unitary ? mr * pr - mi * pi : mr;
          const T gi = unitary ? mr * pi + mi * pr : mi;
          const T r = (pr + gr) - gamma * pr, i = (pi + gi) - gamma * pi;
          re1[c - c0] = r;
          im1[c - c0] = i;
          norm2 += r * r + i * i;
        }
        for (std::int64_t c = c0; c < c1; ++c) {  // store psi1 until the norm is known
          v[2 * c] = re1[c - c0];
          v[2 * c + 1] = im1[c - c0];
        }
      }
      const T inv = T(1) / (std::sqrt(norm2) + T(1e-9));
      for (std::int64_t c = 0; c < 2 * d; ++c) v[c] *= inv;
    }
  });
}

}  // namespace ferrite::cpu
