// The CUDA runtime part of the backend: device queries, the caching allocator and DeviceBuffer, the
// blocking copies, cuda::Stream (backend/cuda/{runtime,memory,stream}.hpp).
// Compiled by nvcc with -DFERRITE_WITH_CUDA into the static library ferrite_cuda (src/meson.build).
#include "ferrite/backend/cuda/impl/runtime.cuh"
