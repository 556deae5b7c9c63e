// The complex-cell kernels of backend/cuda/kernels.hpp (the QCA state's pack and per-cell update).
// Compiled by nvcc with -DFERRITE_WITH_CUDA into the static library ferrite_cuda (src/meson.build).
#include "ferrite/backend/cuda/impl/complex.cuh"
