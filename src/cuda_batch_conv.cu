// The batch convolution and normalization family of backend/cuda/kernels.hpp (im2col_cnhw & co.).
// Compiled by nvcc with -DFERRITE_WITH_CUDA into the static library ferrite_cuda (src/meson.build).
#include "ferrite/backend/cuda/impl/batch_conv.cuh"
