#pragma once
// How every op picks its kernel: the operands' devices and dtypes are checked once against the
// context, then the op runs one of
//   cpu_f32   the fast CPU kernels (xsimd + TBB, backend/cpu)
//   cpu_f64   the scalar reference in double (keeps finite-difference checks exact without
//             templating modules on the scalar type)
//   cuda_f32  the CUDA kernels (backend/cuda/kernels.hpp), enqueued on the context's stream
// An (op, device, dtype) without a kernel is an `unsupported` error naming the op and its operands;
// an operand on another device than the context is `invalid_argument`. Never a crash.
#include <initializer_list>
#include <string>

#include "ferrite/core/format.hpp"
#include "ferrite/tensor/context.hpp"
#include "ferrite/tensor/tensor_ref.hpp"

namespace ferrite::ops {

enum class Kernel { cpu_f32, cpu_f64, cuda_f32 };

// One operand as the dispatcher sees it (null `ref` = an optional operand that is absent).
struct Operand {
  const char* name;
  const ConstTensorRef* ref;
};

// The kernels an op has; cuda_f64 never exists.
struct KernelSet {
  bool cpu_f32 = true, cpu_f64 = true, cuda_f32 = true;
};

namespace detail {
inline std::string describe_operands(std::initializer_list<Operand> operands) {
  std::string s;
  for (const auto& o : operands)
    if (o.ref) s += (s.empty() ? "" : ", ") + std::string(o.name) + " " + o.ref->describe();
  return s;
}
}  // namespace detail

// Checks that every present operand is on ctx's device and has dtype `dtype` (the op's compute type;
// integer operands such as labels are checked by the op itself), and returns the kernel to run.
inline Result<Kernel> select_kernel(const char* op, const Context& ctx, DType dtype,
                                    std::initializer_list<Operand> operands, KernelSet have = {}) {
  for (const auto& o : operands) {
    if (!o.ref) continue;
    if (o.ref->device != ctx.device())
      return make_error(ErrorCode::invalid_argument, op,
                        fe_format("operand {} is on {} but the context runs on {}", o.name, o.ref->device.to_string(),
                                  ctx.device().to_string()),
                        detail::describe_operands(operands));
    if (o.ref->dtype != dtype)
      return make_error(ErrorCode::invalid_argument, op,
                        fe_format("operand {} is {}, expected {}", o.name, dtype_name(o.ref->dtype), dtype_name(dtype)),
                        detail::describe_operands(operands));
  }
  const bool cuda = ctx.device().is_cuda();
  if (!cuda && dtype == DType::f32 && have.cpu_f32) return Kernel::cpu_f32;
  if (!cuda && dtype == DType::f64 && have.cpu_f64) return Kernel::cpu_f64;
  if (cuda && dtype == DType::f32 && have.cuda_f32) return Kernel::cuda_f32;
  return make_error(ErrorCode::unsupported, op,
                    fe_format("no {} kernel for {}", cuda ? "cuda" : "cpu", dtype_name(dtype)),
                    detail::describe_operands(operands));
}

// Shape checks shared by the ops.
inline Status expect_shape(const char* op, const char* name, const ConstTensorRef& t, const Shape& shape) {
  if (t.shape != shape)
    return make_error(ErrorCode::shape_mismatch, op, fe_format("{} must be {}", name, shape.to_string()),
                      fe_format("{} {}", name, t.describe()));
  return ok_status();
}
inline Status expect_rank(const char* op, const char* name, const ConstTensorRef& t, int rank) {
  if (t.rank() != rank)
    return make_error(ErrorCode::shape_mismatch, op, fe_format("{} must have rank {}", name, rank),
                      fe_format("{} {}", name, t.describe()));
  return ok_status();
}

}  // namespace ferrite::ops
