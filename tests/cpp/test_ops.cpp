// The circle_quant:: operators used from a plain C++ program through the dispatcher (no Python):
// numerics against loops written here, memory layouts, argument errors and autograd.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>
#include <initializer_list>
#include <string>
#include <tuple>

namespace {

template <typename Signature>
c10::TypedOperatorHandle<Signature> find_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

at::Tensor quantize(const at::Tensor& x, double scale, int64_t zp, int64_t qmin, int64_t qmax, at::ScalarType dtype) {
  static const auto op = find_op<at::Tensor(const at::Tensor&, double, int64_t, int64_t, int64_t, at::ScalarType)>(
      "circle_quant::quantize_per_tensor");
  return op.call(x, scale, zp, qmin, qmax, dtype);
}

at::Tensor dequantize(const at::Tensor& q, double scale, int64_t zp, int64_t qmin, int64_t qmax, at::ScalarType dtype) {
  static const auto op = find_op<at::Tensor(const at::Tensor&, double, int64_t, int64_t, int64_t, at::ScalarType,
                                            c10::optional<at::ScalarType>)>("circle_quant::dequantize_per_tensor");
  return op.call(q, scale, zp, qmin, qmax, dtype, c10::nullopt);
}

at::Tensor quantize_per_channel(const at::Tensor& x, const at::Tensor& scales, const at::Tensor& zps, int64_t axis,
                                int64_t qmin, int64_t qmax, at::ScalarType dtype) {
  static const auto op = find_op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t, int64_t,
                                            int64_t, at::ScalarType)>("circle_quant::quantize_per_channel");
  return op.call(x, scales, zps, axis, qmin, qmax, dtype);
}

std::tuple<at::Tensor, at::Tensor> minmax(const at::Tensor& x) {
  static const auto op = find_op<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&)>("circle_quant::minmax");
  return op.call(x);
}

at::Tensor fake_quantize(const at::Tensor& x, double scale, int64_t zp, int64_t qmin, int64_t qmax) {
  static const auto op = find_op<at::Tensor(const at::Tensor&, double, int64_t, int64_t, int64_t)>(
      "circle_quant::fake_quantize_per_tensor");
  return op.call(x, scale, zp, qmin, qmax);
}

// The spec's quantization of one value, for loops over tensors.
int64_t expected_level(float x, float scale, int64_t zp, int64_t qmin, int64_t qmax) {
  const float inv = static_cast<float>(1.0 / static_cast<double>(scale));
  const float v = std::nearbyint(x * inv) + static_cast<float>(zp);
  return static_cast<int64_t>(std::fmin(std::fmax(v, static_cast<float>(qmin)), static_cast<float>(qmax)));
}

// Runs f, which must throw E with a message holding every one of `parts`.
template <typename E, typename F>
void expect_error(F&& f, std::initializer_list<const char*> parts) {
  try {
    f();
    ADD_FAILURE() << "no exception";
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const char* part : parts) {
      EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

struct QuantType {
  at::ScalarType dtype;
  int64_t qmin, qmax, zero_point;
};

const QuantType kQuantTypes[] = {{at::kByte, 0, 255, 10},        {at::kChar, -128, 127, 0},
                                 {at::kChar, -127, 127, -3},     {at::kUInt16, 0, 65535, 30000},
                                 {at::kShort, -32768, 32767, 5}, {at::kInt, INT32_MIN, INT32_MAX, 0}};

class Ops : public ::testing::Test {
 protected:
  void SetUp() override { torch::manual_seed(0); }
};

TEST_F(Ops, RoundTripErrorIsAtMostHalfAScale) {
  const double scale = 0.02;
  for (const auto& t : kQuantTypes) {
    // Values inside the representable range, including its ends; large enough to be split
    // across threads.
    const double lo = std::max(-1000.0, (t.qmin - t.zero_point) * scale);
    const double hi = std::min(1000.0, (t.qmax - t.zero_point) * scale);
    auto x = torch::rand({150001}) * (hi - lo) + lo;
    x[0] = lo;
    x[1] = hi;
    const auto q = quantize(x, scale, t.zero_point, t.qmin, t.qmax, t.dtype);
    ASSERT_EQ(q.scalar_type(), t.dtype);
    const auto y = dequantize(q, scale, t.zero_point, t.qmin, t.qmax, t.dtype);
    ASSERT_EQ(y.scalar_type(), at::kFloat);
    // Half a step, plus the float rounding of x * (1 / scale) and of the dequantized value.
    const auto bound = scale / 2 + x.abs() * 3e-7;
    EXPECT_TRUE((y - x).abs().le(bound).all().item<bool>())
        << t.dtype << ": max error " << (y - x).abs().max().item<float>();
  }
}

TEST_F(Ops, PerChannelMatchesElementLoop) {
  const auto x = torch::randn({4, 3, 5, 5}) * 2;
  for (int64_t axis : {0, 1, 3, -1}) {
    const int64_t dim = axis < 0 ? axis + x.dim() : axis;
    const int64_t channels = x.size(dim);
    const auto scales = torch::rand({channels}) * 0.04 + 0.01;
    const auto zps = torch::randint(-20, 20, {channels}, torch::kLong);
    const auto q = quantize_per_channel(x, scales, zps, axis, -128, 127, at::kChar);
    ASSERT_EQ(q.sizes(), x.sizes());
    // Walk the contiguous input; the channel of flat index i is (i / inner) % channels.
    const auto xc = x.contiguous();
    const auto qc = q.contiguous().to(at::kLong);
    int64_t inner = 1;
    for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
    for (int64_t i = 0; i < x.numel(); ++i) {
      const int64_t c = (i / inner) % channels;
      const int64_t want =
          expected_level(xc.data_ptr<float>()[i], scales[c].item<float>(), zps[c].item<int64_t>(), -128, 127);
      ASSERT_EQ(qc.data_ptr<int64_t>()[i], want) << "axis " << axis << ", flat index " << i;
    }
  }
}

TEST_F(Ops, ChannelsLastGivesTheSameValuesAsContiguous) {
  const auto x = torch::randn({2, 6, 4, 5}) * 3;
  const auto x_cl = x.contiguous(at::MemoryFormat::ChannelsLast);
  ASSERT_FALSE(x_cl.is_contiguous());
  const auto per_tensor = [](const at::Tensor& t) { return quantize(t, 0.03, 7, -128, 127, at::kChar); };
  const auto q_cl = per_tensor(x_cl);
  EXPECT_TRUE(q_cl.is_contiguous(at::MemoryFormat::ChannelsLast)) << "layout not preserved";
  EXPECT_TRUE(torch::equal(q_cl, per_tensor(x)));
  EXPECT_TRUE(torch::equal(dequantize(q_cl, 0.03, 7, -128, 127, at::kChar),
                           dequantize(per_tensor(x), 0.03, 7, -128, 127, at::kChar)));
  // Axis 1 is innermost in channels_last memory, axis 0 outermost.
  for (int64_t axis : {0, 1, 2}) {
    const auto scales = torch::rand({x.size(axis)}) * 0.05 + 0.01;
    const auto zps = torch::randint(0, 255, {x.size(axis)}, torch::kLong);
    EXPECT_TRUE(torch::equal(quantize_per_channel(x_cl, scales, zps, axis, 0, 255, at::kByte),
                             quantize_per_channel(x, scales, zps, axis, 0, 255, at::kByte)))
        << "axis " << axis;
  }
}

TEST_F(Ops, MinMaxMatchesATen) {
  for (const auto& x :
       {torch::randn({37, 101}), torch::randn({200003}) * 50,
        torch::randn({2, 3, 8, 8}).contiguous(at::MemoryFormat::ChannelsLast), torch::randn({64, 32}).t()}) {
    const auto [mn, mx] = minmax(x);
    const auto [amn, amx] = at::aminmax(x);
    EXPECT_EQ(mn.item<float>(), amn.item<float>()) << x.sizes();
    EXPECT_EQ(mx.item<float>(), amx.item<float>()) << x.sizes();
  }
}

TEST_F(Ops, ArgumentErrorsNameTheOpAndArgument) {
  const auto x = torch::randn({4, 3});
  const char* qpt = "circle_quant::quantize_per_tensor";
  const char* qpc = "circle_quant::quantize_per_channel";
  expect_error<c10::ValueError>([&] { quantize(x, 0.0, 0, 0, 255, at::kByte); }, {qpt, "scale"});
  expect_error<c10::ValueError>([&] { quantize(x, -0.1, 0, 0, 255, at::kByte); }, {qpt, "scale"});
  expect_error<c10::ValueError>([&] { quantize(x, 0.1, 256, 0, 255, at::kByte); }, {qpt, "zero_point", "256"});
  expect_error<c10::ValueError>([&] { quantize(x, 0.1, 0, 0, 256, at::kByte); },
                                {qpt, "quant_min", "quant_max", "256"});
  expect_error<c10::ValueError>([&] { quantize(x, 0.1, 0, -129, 127, at::kChar); }, {qpt, "quant_min", "-129"});
  expect_error<c10::TypeError>([&] { quantize(torch::ones({4}, torch::kInt), 0.1, 0, 0, 255, at::kByte); },
                               {qpt, "input"});

  const auto x4 = torch::randn({2, 3, 4, 5});
  const auto s3 = torch::full({3}, 0.1), z3 = torch::zeros({3}, torch::kLong);
  expect_error<c10::IndexError>([&] { quantize_per_channel(x4, s3, z3, 4, -128, 127, at::kChar); }, {qpc, "axis", "4"});
  expect_error<c10::IndexError>([&] { quantize_per_channel(x4, s3, z3, -5, -128, 127, at::kChar); },
                                {qpc, "axis", "-5"});
  expect_error<c10::ValueError>([&] { quantize_per_channel(x4, torch::full({4}, 0.1), z3, 1, -128, 127, at::kChar); },
                                {qpc, "scales"});
  expect_error<c10::ValueError>(
      [&] { quantize_per_channel(x4, s3, torch::zeros({2}, torch::kLong), 1, -128, 127, at::kChar); },
      {qpc, "zero_points"});
}

TEST_F(Ops, NanInputIsReportedWithItsIndex) {
  auto x = torch::zeros({3, 4});
  x[1][2] = std::nanf("");
  x[2][0] = std::nanf("");
  expect_error<c10::ValueError>([&] { quantize(x, 0.1, 0, -128, 127, at::kChar); },
                                {"circle_quant::quantize_per_tensor", "NaN", "[1, 2]"});
  expect_error<c10::ValueError>([&] { minmax(x); }, {"circle_quant::minmax", "NaN", "[1, 2]"});
}

TEST_F(Ops, FakeQuantizeGradientPassesOnlyInsideTheRange) {
  const double scale = 0.1;
  constexpr int64_t zp = 3, qmin = -128, qmax = 127;
  // In range for roughly [-13.1, 12.4]; the values run well past both ends.
  const auto x = torch::linspace(-20, 20, 801).requires_grad_();
  const auto y = fake_quantize(x, scale, zp, qmin, qmax);
  y.sum().backward();
  ASSERT_TRUE(x.grad().defined());
  const auto xd = x.detach();
  const auto grad = x.grad();
  int64_t inside = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float xi = xd[i].item<float>();
    const float v = std::nearbyint(xi * static_cast<float>(1.0 / scale)) + float{zp};
    const bool in_range = v >= float{qmin} && v <= float{qmax};
    inside += in_range;
    ASSERT_EQ(grad[i].item<float>(), in_range ? 1.0f : 0.0f) << "x = " << xi;
    const float q = std::fmin(std::fmax(v, float{qmin}), float{qmax});
    ASSERT_EQ(y[i].item<float>(), (q - float{zp}) * static_cast<float>(scale)) << "x = " << xi;
  }
  EXPECT_GT(inside, 0);
  EXPECT_LT(inside, x.numel());
}

}  // namespace
