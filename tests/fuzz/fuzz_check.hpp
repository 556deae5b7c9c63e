#pragma once
// FUZZ_CHECK(cond): a property of a fuzz target. A violation prints the condition and aborts, so that
// libFuzzer saves the input as a crash and the corpus replay (meson test) fails on it.
#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                        \
  do {                                                                                          \
    if (!(cond)) {                                                                              \
      std::fprintf(stderr, "%s:%d: fuzz property violated: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                             \
    }                                                                                           \
  } while (0)
