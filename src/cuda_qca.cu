// cuda::QcaStepper and the QCA per-op entry points (backend/cuda/qca.hpp). The one CUDA unit that
// includes CPU library code (models/qca.hpp, ops/conv.hpp: xsimd, TBB), so it alone gets the C++
// build's host flags (src/meson.build). Compiled by nvcc with -DFERRITE_WITH_CUDA into the static
// library ferrite_cuda.
#include "ferrite/backend/cuda/impl/qca_impl.cuh"
