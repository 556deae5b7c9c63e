// Fuzz target: the weight and state loaders on a parsed safetensors file — nn::load_parameters into a
// small MLP (784-128-64-10's names at 4-3-2 sizes) and into a QCA U-Net law (d_state 2, hidden 4), and
// the QCA state check on 'psi0'. Properties: a refused load leaves the parameters exactly as they were
// (strict loading changes nothing unless everything matches); an accepted one holds only finite values.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "fuzz_check.hpp"
#include "ferrite/io/safetensors.hpp"
#include "ferrite/models/mlp.hpp"
#include "ferrite/models/qca.hpp"
#include "ferrite/nn/state_dict.hpp"

namespace {

std::vector<float> snapshot(const ferrite::nn::ParameterList& params) {
  std::vector<float> out;
  for (const auto& p : params) {
    const float* v = p.value->data<float>();
    out.insert(out.end(), v, v + p.value->numel());
  }
  return out;
}

void check_load(ferrite::nn::ParameterList params, const ferrite::io::SafetensorsFile& file) {
  const std::vector<float> before = snapshot(params);
  const ferrite::Status s = ferrite::nn::load_parameters(params, file, "fuzz");
  const std::vector<float> after = snapshot(params);
  if (!s.ok()) {
    FUZZ_CHECK(!s.error().message.empty());
    FUZZ_CHECK(before.size() == after.size() &&
               std::memcmp(before.data(), after.data(), before.size() * sizeof(float)) == 0);
    return;
  }
  for (const float v : after) FUZZ_CHECK(std::isfinite(v));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ferrite;
  auto file = io::parse_safetensors(std::span(reinterpret_cast<const std::byte*>(data), size), "fuzz");
  if (!file.ok()) return 0;

  static auto mlp = models::make_mlp(4, {3}, 2, 0).value();
  check_load(mlp.parameters(), *file);

  static auto law = models::QcaUnet::create(2, 4).value();
  check_load(law.parameters(), *file);

  if (const Tensor* psi0 = file->find("psi0")) {
    const Status s = models::check_qca_state(*psi0, 2, "fuzz");
    if (s.ok()) FUZZ_CHECK(psi0->dtype() == DType::f32 && psi0->shape().rank() == 5);
  }
  return 0;
}
