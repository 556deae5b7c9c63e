// kernels::sgemm (backend/cuda/kernels.hpp), through cuBLAS.
// Compiled by nvcc with -DFERRITE_WITH_CUDA into the static library ferrite_cuda (src/meson.build).
#include "ferrite/backend/cuda/impl/gemm.cuh"
