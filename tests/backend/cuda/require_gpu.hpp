#pragma once
// FE_REQUIRE_GPU(): the first statement of a suite-`cuda` test that needs a GPU. Where there is none
// (or the build has no CUDA backend) the test is skipped with the reason, never passed silently.
#include <gtest/gtest.h>

#include "ferrite/backend/cuda/runtime.hpp"

#define FE_REQUIRE_GPU()                                                                          \
  do {                                                                                            \
    if (::ferrite::cuda::device_count() == 0)                                                     \
      GTEST_SKIP() << (::ferrite::cuda::compiled_with_cuda()                                      \
                           ? "no CUDA device: the CUDA backend is built but cudaGetDeviceCount "  \
                             "found no GPU; run this suite on a GPU machine (docs/cuda-todo.md)"  \
                           : "this build has no CUDA backend (-Dcuda=disabled or no nvcc)");       \
  } while (0)
