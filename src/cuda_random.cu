// kernels::philox_uniform (backend/cuda/kernels.hpp).
// Compiled by nvcc with -DFERRITE_WITH_CUDA into the static library ferrite_cuda (src/meson.build).
#include "ferrite/backend/cuda/impl/random.cuh"
