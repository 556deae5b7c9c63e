// tensor/xtensor.hpp: ferrite <-> xtensor without copies. xt_view (contiguous, transposed, sliced,
// permuted, fixed rank, const), tensor_ref (xtensor, xarray, column-major, strided views, const),
// round trips, to_tensor of expressions, the errors, and ferrite ops (gemm, Linear) on xtensor memory.
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <string>
#include <type_traits>

#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xreducer.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include "ferrite/nn/linear.hpp"
#include "ferrite/ops/gemm.hpp"
#include "ferrite/tensor/context.hpp"
#include "ferrite/tensor/tensor.hpp"
#include "ferrite/tensor/xtensor.hpp"

using namespace ferrite;

namespace {
template <class T = float>
Tensor iota(Shape shape) {
  Tensor t = Tensor::empty(shape, dtype_of<T>::value).value();
  std::iota(t.data<T>(), t.data<T>() + t.numel(), T(0));
  return t;
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

// ---- ferrite -> xtensor ----------------------------------------------------------------------------

TEST(XtView, ContiguousTensorIsTheSameMemory) {
  Tensor t = iota({2, 3});
  auto v = xt_view<float>(t.ref()).value();
  ASSERT_EQ(v.dimension(), 2u);
  EXPECT_EQ(v.shape()[0], 2u);
  EXPECT_EQ(v.shape()[1], 3u);
  EXPECT_EQ(v.data(), t.data<float>());
  EXPECT_EQ(v.layout(), xt::layout_type::row_major);  // xtensor's contiguous fast paths apply
  EXPECT_EQ(v(1, 2), 5.f);
  EXPECT_EQ(xt::sum(v)(), 15.f);
  // Zero-copy both ways: write through xtensor, read ferrite; write ferrite, read xtensor.
  v(1, 2) = 42.f;
  EXPECT_EQ(t.data<float>()[5], 42.f);
  t.data<float>()[0] = -7.f;
  EXPECT_EQ(v(0, 0), -7.f);
  xt::noalias(v) = xt::ones<float>({2, 3}) * 3.f;
  for (std::int64_t i = 0; i < t.numel(); ++i) EXPECT_EQ(t.data<float>()[i], 3.f);
}

TEST(XtView, ConstViewAndWholeTensorOverloads) {
  const Tensor t = iota<double>({4});
  auto v = xt_view<double>(t.cref()).value();
  static_assert(std::is_const_v<std::remove_pointer_t<decltype(v.data())>>, "a const view is read-only");
  EXPECT_EQ(v(3), 3.0);
  auto w = xt_view<double>(t).value();  // const Tensor& -> read-only
  static_assert(std::is_const_v<std::remove_pointer_t<decltype(w.data())>>);
  EXPECT_EQ(w.data(), t.data<double>());
  Tensor m = iota<std::int32_t>({2, 2});
  auto mv = xt_view<std::int32_t>(m).value();  // Tensor& -> writable
  mv(0, 1) = 9;
  EXPECT_EQ(m.data<std::int32_t>()[1], 9);
  Tensor l = iota<std::int64_t>({3});
  EXPECT_EQ(xt_view<std::int64_t>(l).value()(2), 2);
}

TEST(XtView, TransposedViewEqualsXtTranspose) {
  Tensor t = iota({3, 4});
  auto original = xt_view<float>(t.ref()).value();
  TensorRef tr = t.ref().transpose();  // [4, 3], strides [1, 4]
  auto v = xt_view<float>(tr).value();
  EXPECT_EQ(v.shape()[0], 4u);
  EXPECT_EQ(v.shape()[1], 3u);
  EXPECT_EQ(v.strides()[0], 1);
  EXPECT_EQ(v.strides()[1], 4);
  EXPECT_EQ(v.layout(), xt::layout_type::column_major);
  xt::xarray<float> expected = xt::transpose(original);
  EXPECT_EQ(v, expected);
  EXPECT_EQ(v(2, 1), t.data<float>()[1 * 4 + 2]);
  // Writes through the transposed view land transposed in the tensor.
  v(3, 0) = 100.f;
  EXPECT_EQ(t.data<float>()[0 * 4 + 3], 100.f);
  // Evaluating it makes a row-major copy in xtensor's own container.
  xt::xtensor<float, 2> copy = v;
  EXPECT_EQ(copy(3, 0), 100.f);
}

TEST(XtView, SlicedAndPermutedViews) {
  Tensor t = iota({4, 6});
  auto original = xt_view<float, 2>(t.cref()).value();
  auto cols = t.ref().slice(1, 2, 5).value();  // [4, 3], strides [6, 1]
  auto v = xt_view<float>(cols).value();
  EXPECT_EQ(v.layout(), xt::layout_type::dynamic);
  EXPECT_EQ(v.strides()[0], 6);
  xt::xarray<float> expected = xt::view(original, xt::all(), xt::range(2, 5));
  EXPECT_EQ(v, expected);
  EXPECT_EQ(xt::sum(v)(), xt::sum(expected)());
  // Writing into the slice leaves the columns outside it alone.
  xt::noalias(v) = xt::zeros<float>({4, 3});
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 6; ++c) EXPECT_EQ(t.data<float>()[r * 6 + c], (c >= 2 && c < 5) ? 0.f : float(r * 6 + c));

  Tensor u = iota({2, 3, 4});
  auto p = u.cref().permute({2, 0, 1}).value();  // [4, 2, 3], strides [1, 12, 4]
  auto pv = xt_view<float, 3>(p).value();
  auto uv = xt_view<float, 3>(u.cref()).value();
  xt::xtensor<float, 3> permuted = xt::transpose(uv, {2, 0, 1});
  EXPECT_EQ(pv, permuted);
  // A rows slice stays row-major (still xtensor's fast path, offset data pointer).
  auto rows = u.cref().slice(0, 1, 2).value();
  auto rv = xt_view<float>(rows).value();
  EXPECT_EQ(rv.layout(), xt::layout_type::row_major);
  EXPECT_EQ(rv(0, 0, 0), 12.f);
}

TEST(XtView, Errors) {
  Tensor d = iota<double>({2, 3});
  auto wrong = xt_view<float>(d.ref());
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(wrong.error().op, "xt_view");
  EXPECT_TRUE(contains(wrong.error().message, "f64")) << wrong.error().to_string();
  EXPECT_TRUE(contains(wrong.error().message, "f32")) << wrong.error().to_string();
  EXPECT_TRUE(contains(wrong.error().shapes, "[2, 3]")) << wrong.error().to_string();

  // A GPU view: device memory is not host-addressable. The pointer is a dummy, never dereferenced.
  const TensorRef gpu(reinterpret_cast<void*>(std::uintptr_t{0x1000}), DType::f32, Device::cuda(0), {2, 3});
  auto on_gpu = xt_view<float>(gpu);
  ASSERT_FALSE(on_gpu.ok());
  EXPECT_EQ(on_gpu.error().code, ErrorCode::unsupported);
  EXPECT_EQ(on_gpu.error().op, "xt_view");
  EXPECT_TRUE(contains(on_gpu.error().message, "host-addressable")) << on_gpu.error().to_string();
  EXPECT_TRUE(contains(on_gpu.error().message, "to(Device::cpu())")) << on_gpu.error().to_string();
  EXPECT_TRUE(contains(on_gpu.error().shapes, "cuda:0")) << on_gpu.error().to_string();
  EXPECT_FALSE((xt_view<float, 2>(ConstTensorRef(gpu)).ok()));

  Tensor t = iota({2, 3});
  auto rank = xt_view<float, 3>(t.ref());
  ASSERT_FALSE(rank.ok());
  EXPECT_EQ(rank.error().code, ErrorCode::shape_mismatch);
  EXPECT_TRUE(contains(rank.error().to_string(), "rank-2")) << rank.error().to_string();

  TensorRef reversed = t.ref();
  reversed.strides[1] = -1;
  auto negative = xt_view<float>(reversed);
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.error().code, ErrorCode::unsupported);
}

// ---- xtensor -> ferrite ----------------------------------------------------------------------------

TEST(TensorRefOfXt, XtensorContainerIsTheSameMemory) {
  xt::xtensor<float, 2> a = {{1, 2, 3}, {4, 5, 6}};
  TensorRef r = tensor_ref(a).value();
  EXPECT_EQ(r.data, a.data());
  EXPECT_EQ(r.dtype, DType::f32);
  EXPECT_TRUE(r.device.is_cpu());
  EXPECT_EQ(r.shape, (Shape{2, 3}));
  EXPECT_EQ(r.strides, (Strides{3, 1}));
  EXPECT_TRUE(r.is_contiguous());
  r.ptr<float>()[4] = 50.f;  // ferrite writes, xtensor reads
  EXPECT_EQ(a(1, 1), 50.f);
  a(0, 2) = 30.f;  // xtensor writes, ferrite reads
  EXPECT_EQ(r.ptr<float>()[2], 30.f);

  xt::xarray<double> column = xt::arange<double>(1.0, 4.0);
  column.reshape({3, 1});  // [3, 1]: xtensor's stride of the 1 is 0
  const xt::xarray<double>& c = column;
  auto cr = tensor_ref(c).value();
  static_assert(std::is_same_v<decltype(cr), ConstTensorRef>, "a const container gives a ConstTensorRef");
  EXPECT_EQ(cr.shape, (Shape{3, 1}));
  EXPECT_EQ(cr.strides, contiguous_strides(cr.shape));
  EXPECT_EQ(cr.dtype, DType::f64);

  xt::xarray<std::int32_t> i32 = xt::arange<std::int32_t>(6);
  EXPECT_EQ(tensor_ref(i32).value().dtype, DType::i32);
  xt::xtensor<std::int64_t, 1> i64 = {7, 8};
  EXPECT_EQ(tensor_ref(i64).value().dtype, DType::i64);
}

TEST(TensorRefOfXt, StridesOfColumnMajorAndViews) {
  xt::xarray<float, xt::layout_type::column_major> cm = {{1, 2, 3}, {4, 5, 6}};
  auto r = tensor_ref(cm).value();
  EXPECT_EQ(r.strides, (Strides{1, 2}));
  EXPECT_FALSE(r.is_contiguous());
  // Reading it through xt_view again gives back the same values.
  EXPECT_EQ(xt_view<float>(r).value(), cm);

  xt::xtensor<float, 2> a = xt::arange<float>(20.f).reshape({4, 5});
  auto tr = xt::transpose(a);  // an xstrided_view over a's memory
  auto rt = tensor_ref(tr).value();
  EXPECT_EQ(rt.shape, (Shape{5, 4}));
  EXPECT_EQ(rt.strides, (Strides{1, 5}));
  EXPECT_EQ(rt.data, a.data());

  auto block = xt::view(a, xt::range(1, 3), xt::range(2, 5));  // starts at a(1, 2)
  auto rb = tensor_ref(block).value();
  EXPECT_EQ(rb.shape, (Shape{2, 3}));
  EXPECT_EQ(rb.strides, (Strides{5, 1}));
  EXPECT_EQ(rb.ptr<float>(), &a(1, 2));
  EXPECT_EQ(xt_view<float>(rb).value(), xt::xarray<float>(block));
}

TEST(TensorRefOfXt, RankAboveSixIsAnError) {
  xt::xarray<float> big = xt::zeros<float>({1, 1, 1, 1, 1, 1, 2});
  auto r = tensor_ref(big);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::unsupported);
  EXPECT_EQ(r.error().op, "tensor_ref");
  EXPECT_TRUE(contains(r.error().message, "rank 7")) << r.error().to_string();
  EXPECT_TRUE(contains(r.error().shapes, "f32[1, 1, 1, 1, 1, 1, 2]")) << r.error().to_string();
  xt::xarray<float> six = xt::zeros<float>({1, 2, 1, 2, 1, 2});
  EXPECT_TRUE(tensor_ref(six).ok());
  EXPECT_FALSE(to_tensor(big).ok());
}

TEST(RoundTrip, FerriteToXtensorToFerriteAndBack) {
  Tensor t = iota({3, 4});
  const TensorRef tr = t.ref().transpose();
  auto v = xt_view<float>(tr).value();
  auto back = tensor_ref(v).value();
  EXPECT_EQ(back.data, tr.data);
  EXPECT_EQ(back.shape, tr.shape);
  EXPECT_EQ(back.strides, tr.strides);

  xt::xtensor<double, 3> x = xt::arange<double>(24.0).reshape({2, 3, 4});
  auto xr = tensor_ref(x).value();
  auto xv = xt_view<double, 3>(xr).value();
  EXPECT_EQ(xv.data(), x.data());
  EXPECT_EQ(xv, x);
  xv(1, 2, 3) = -1.0;
  EXPECT_EQ(x(1, 2, 3), -1.0);
}

TEST(ToTensor, EvaluatesExpressionsIntoOwningTensors) {
  xt::xtensor<float, 2> a = {{1, 2, 3}, {4, 5, 6}};
  Tensor y = to_tensor(a * 2.f + xt::ones<float>({2, 3})).value();
  EXPECT_EQ(y.dtype(), DType::f32);
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_TRUE(y.device().is_cpu());
  EXPECT_NE(y.raw_data(), static_cast<const void*>(a.data()));  // a copy
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y.data<float>()[i], 2.f * float(i + 1) + 1.f);

  // A transposed expression comes out row-major.
  Tensor t = to_tensor(xt::transpose(a)).value();
  EXPECT_EQ(t.shape(), (Shape{3, 2}));
  const float expect_t[] = {1, 4, 2, 5, 3, 6};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t.data<float>()[i], expect_t[i]);

  // Broadcasting, the other dtypes, an explicit cast, rank 0, empty.
  xt::xtensor<double, 1> row = {10, 20, 30};
  Tensor b = to_tensor(xt::xtensor<double, 2>(xt::zeros<double>({2, 3})) + row).value();
  EXPECT_EQ(b.dtype(), DType::f64);
  EXPECT_EQ(b.data<double>()[4], 20.0);
  Tensor i32 = to_tensor(xt::arange<std::int32_t>(5) * 3).value();
  EXPECT_EQ(i32.dtype(), DType::i32);
  EXPECT_EQ(i32.data<std::int32_t>()[4], 12);
  Tensor i64 = to_tensor(xt::arange<std::int64_t>(3)).value();
  EXPECT_EQ(i64.dtype(), DType::i64);
  Tensor f = to_tensor<float>(xt::arange<std::int32_t>(4)).value();
  EXPECT_EQ(f.dtype(), DType::f32);
  EXPECT_EQ(f.data<float>()[3], 3.f);
  Tensor s = to_tensor(xt::sum(a)).value();
  EXPECT_EQ(s.shape().rank(), 0);
  EXPECT_EQ(s.data<float>()[0], 21.f);
  Tensor e = to_tensor(xt::xtensor<float, 2>::from_shape({0, 3})).value();
  EXPECT_EQ(e.shape(), (Shape{0, 3}));

  // A ferrite view through xtensor back into a tensor: a contiguous copy of the slice.
  Tensor src = iota({4, 6});
  auto cols = xt_view<float>(src.ref().slice(1, 1, 3).value()).value();
  Tensor c = to_tensor(cols * 1.f).value();
  EXPECT_EQ(c.shape(), (Shape{4, 2}));
  EXPECT_EQ(c.data<float>()[2], 7.f);

  // Shapes that do not broadcast: an error value, not an exception.
  xt::xarray<float> p = xt::zeros<float>({2, 3}), q = xt::zeros<float>({4});
  auto bad = to_tensor(p + q);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::shape_mismatch);
  EXPECT_EQ(bad.error().op, "to_tensor");

  // Another device: evaluated on the host, then moved (device_unavailable without a GPU/backend).
  auto gpu = to_tensor(a, Device::cuda(0));
  if (!gpu.ok()) {
    EXPECT_EQ(gpu.error().code, ErrorCode::device_unavailable) << gpu.error().to_string();
  }
}

// ---- ferrite ops on xtensor memory -----------------------------------------------------------------

namespace {
// C = op(A) op(B) by loops over xtensor's element access (no xt::linalg).
xt::xtensor<float, 2> reference_gemm(const xt::xtensor<float, 2>& a, const xt::xtensor<float, 2>& b) {
  const std::size_t m = a.shape()[0], k = a.shape()[1], n = b.shape()[1];
  xt::xtensor<float, 2> c = xt::zeros<float>({m, n});
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      double s = 0;
      for (std::size_t p = 0; p < k; ++p) s += double(a(i, p)) * double(b(p, j));
      c(i, j) = static_cast<float>(s);
    }
  return c;
}
xt::xtensor<float, 2> filled(std::size_t rows, std::size_t cols, float scale) {
  xt::xtensor<float, 2> x = xt::zeros<float>({rows, cols});
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) x(i, j) = scale * float((i * 7 + j * 3) % 11) - 2.f;
  return x;
}
}  // namespace

TEST(XtensorWithOps, GemmOnBorrowedXtensorMemory) {
  Context ctx = Context::cpu();
  const std::size_t m = 37, k = 19, n = 23;
  xt::xtensor<float, 2> a = filled(m, k, 0.5f), b = filled(k, n, 0.25f);
  xt::xtensor<float, 2> c = xt::zeros<float>({m, n});
  ASSERT_TRUE(ops::gemm(ctx, Trans::no, Trans::no, 1.0, tensor_ref(a).value(), tensor_ref(b).value(), 0.0,
                        tensor_ref(c).value())
                  .ok());
  EXPECT_TRUE(xt::allclose(c, reference_gemm(a, b), 1e-5, 1e-4));

  // B stored transposed: xt::transpose(bt) is a strided view, gemm reads it with the flag flipped.
  xt::xtensor<float, 2> bt = xt::transpose(b);
  auto b_view = xt::transpose(bt);
  xt::xtensor<float, 2> c2 = xt::zeros<float>({m, n});
  ASSERT_TRUE(ops::gemm(ctx, Trans::no, Trans::no, 1.0, tensor_ref(a).value(), tensor_ref(b_view).value(), 0.0,
                        tensor_ref(c2).value())
                  .ok());
  EXPECT_TRUE(xt::allclose(c2, c, 1e-6, 1e-6));

  // Into a block of a bigger xtensor (ld 30), accumulating: C += A·B on rows 2.. and columns 4..
  xt::xtensor<float, 2> big = xt::ones<float>({m + 4, std::size_t{30}});
  auto block = xt::view(big, xt::range(2, 2 + m), xt::range(4, 4 + n));
  ASSERT_TRUE(ops::gemm(ctx, Trans::no, Trans::no, 1.0, tensor_ref(a).value(), tensor_ref(b).value(), 1.0,
                        tensor_ref(block).value())
                  .ok());
  EXPECT_TRUE(xt::allclose(block, reference_gemm(a, b) + 1.f, 1e-5, 1e-4));
  EXPECT_EQ(big(0, 0), 1.f);
  EXPECT_EQ(big(2, 3), 1.f);
  EXPECT_EQ(big(2, 4 + n), 1.f);

  // And the other way: a ferrite tensor's product seen through xtensor.
  Tensor out = Tensor::zeros({static_cast<std::int64_t>(m), static_cast<std::int64_t>(n)}).value();
  ASSERT_TRUE(ops::gemm(ctx, Trans::no, Trans::no, 1.0, tensor_ref(a).value(), tensor_ref(b).value(), 0.0,
                        out.ref())
                  .ok());
  EXPECT_TRUE(xt::allclose(xt_view<float, 2>(out.cref()).value(), c, 1e-6, 1e-6));

  // Shape errors from the op still name the shapes.
  xt::xtensor<float, 2> wrong = xt::zeros<float>({k + 1, n});
  auto st = ops::gemm(ctx, Trans::no, Trans::no, 1.0, tensor_ref(a).value(), tensor_ref(wrong).value(), 0.0,
                      tensor_ref(c).value());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::shape_mismatch);
}

TEST(XtensorWithOps, LinearForwardOnAnXtensorBatch) {
  Context ctx = Context::cpu();
  auto linear = nn::Linear::create(5, 3).value();
  xt::xtensor<float, 2> w = filled(3, 5, 0.1f);
  xt::xtensor<float, 1> bias = {0.5f, -1.f, 2.f};
  xt::noalias(xt_view<float, 2>(linear.weight()).value()) = w;  // set the weights through xtensor
  xt::noalias(xt_view<float, 1>(linear.bias()).value()) = bias;
  xt::xtensor<float, 2> x = filled(8, 5, 0.3f);
  auto y_ref = linear.forward(ctx, tensor_ref(x).value()).value();
  auto y = xt_view<float, 2>(y_ref).value();
  ASSERT_EQ(y.shape()[0], 8u);
  ASSERT_EQ(y.shape()[1], 3u);
  xt::xtensor<float, 2> expected = reference_gemm(x, xt::xtensor<float, 2>(xt::transpose(w)));
  expected += bias;  // broadcast over rows
  EXPECT_TRUE(xt::allclose(y, expected, 1e-5, 1e-5));
}
