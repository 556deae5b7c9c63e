#pragma once
// The weight transform of Winograd F(2x2, 3x3), shared by the CPU kernel (backend/cpu/winograd.hpp)
// and the CUDA path's weights (ops::winograd_weights, ops/conv.hpp): U = G g G^T of one 3x3 filter g,
//   G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]],
// computed in double and rounded once, so U is the correctly rounded transform. u[4i + j] = U[i][j].
namespace ferrite {

inline void winograd_f23_weight_tile(const float* g, float* u) {
  double gg[4][3];  // G g
  for (int c = 0; c < 3; ++c) {
    const double g0 = g[c], g1 = g[3 + c], g2 = g[6 + c];
    gg[0][c] = g0;
    gg[1][c] = 0.5 * (g0 + g1 + g2);
    gg[2][c] = 0.5 * (g0 - g1 + g2);
    gg[3][c] = g2;
  }
  for (int i = 0; i < 4; ++i) {  // (G g) G^T, row i -> u[4i .. 4i + 3]
    const double a = gg[i][0], b = gg[i][1], c = gg[i][2];
    u[4 * i + 0] = static_cast<float>(a);
    u[4 * i + 1] = static_cast<float>(0.5 * (a + b + c));
    u[4 * i + 2] = static_cast<float>(0.5 * (a - b + c));
    u[4 * i + 3] = static_cast<float>(c);
  }
}

}  // namespace ferrite
