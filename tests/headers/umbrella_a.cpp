// Two translation units that include every public header, linked into one program: a function or
// variable defined in a header without `inline` would be defined twice and fail to link. The program
// then runs a tiny training step through the umbrella header, so what it declares also works.
#include <cstdio>

#include "ferrite/ferrite.hpp"

int umbrella_smoke_b();  // umbrella_b.cpp

int main() {
  auto ones = ferrite::Tensor::full<float>({2, 3}, 1.0f);
  if (!ones.ok() || ones->numel() != 6) {
    std::fprintf(stderr, "Tensor::full through the umbrella header failed\n");
    return 1;
  }
  return umbrella_smoke_b();
}
