// The CUDA backend of this build: the one translation unit that defines ferrite's CUDA host API
// (backend/cuda/*.hpp) and holds its kernels. Compiled by nvcc with -DFERRITE_WITH_CUDA into the
// static library ferrite_cuda (src/meson.build); programs that use it get FERRITE_WITH_CUDA too.
#include "ferrite/backend/cuda/impl/implementation.cuh"
