// kernels::group_norm and group_norm_scratch_bytes (backend/cuda/kernels.hpp).
// Compiled by nvcc with -DFERRITE_WITH_CUDA into the static library ferrite_cuda (src/meson.build).
#include "ferrite/backend/cuda/impl/norm.cuh"
