// cuda::NcclComm (backend/cuda/collectives.hpp): NCCL, loaded on first use, for device buffers.
// Compiled by nvcc with -DFERRITE_WITH_CUDA into the static library ferrite_cuda (src/meson.build).
#include "ferrite/backend/cuda/impl/nccl.cuh"
