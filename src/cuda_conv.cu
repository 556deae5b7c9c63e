// The convolution family of backend/cuda/kernels.hpp: batched SGEMM, im2col, the Winograd transforms,
// the channel bias, the ConvTranspose k2 s2 scatter, 2x2 max pooling.
// Compiled by nvcc with -DFERRITE_WITH_CUDA into the static library ferrite_cuda (src/meson.build).
#include "ferrite/backend/cuda/impl/conv.cuh"
