// Single exporter passes on small hand-built IR graphs: what each pass rewrites, and what it
// must leave alone. No importer, no Python; each test builds the IR a pass sees in the pipeline.
#include "exporter/ir/circle_ops.h"
#include "exporter/ir/graph.h"
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"
#include "exporter/serialize/op_writers.h"

#include <circle_schema_generated.h>
#include <gtest/gtest.h>

#include <set>

namespace ex = torch_circle::exporter;
using ex::DType;
using ex::Graph;
using ex::Op;
using ex::QuantParams;
using ex::Tensor;

namespace {

QuantParams per_tensor(float scale, int64_t zero_point) {
  QuantParams q;
  q.scale = {scale};
  q.zero_point = {zero_point};
  return q;
}

Tensor* quantized_tensor(Graph& g, const std::string& name, std::vector<int64_t> shape, DType dtype,
                         const QuantParams& q) {
  Tensor* t = g.add_tensor(name, std::move(shape), dtype);
  t->quant = q;
  return t;
}

Tensor* graph_input(Graph& g, const std::string& name, std::vector<int64_t> shape, DType dtype = DType::kFloat32) {
  Tensor* t = g.add_tensor(name, std::move(shape), dtype);
  g.inputs.push_back(t);
  return t;
}

std::vector<std::string> op_types(const Graph& g) {
  std::vector<std::string> types;
  for (const Op* op : g.live_ops()) types.push_back(op->type);
  return types;
}

Op* only_op(const Graph& g, const std::string& type) {
  Op* found = nullptr;
  for (Op* op : g.live_ops())
    if (op->type == type) {
      EXPECT_EQ(found, nullptr) << "more than one " << type;
      found = op;
    }
  EXPECT_NE(found, nullptr) << "no " << type;
  return found;
}

// x (float) → QUANTIZE → DEQUANTIZE, the way a PT2E graph hands an activation to an op.
Tensor* dequantized_input(Graph& g, const std::string& name, std::vector<int64_t> shape, DType dtype,
                          const QuantParams& q) {
  Tensor* x = graph_input(g, name, shape);
  Tensor* xq = quantized_tensor(g, name + "_q", shape, dtype, q);
  g.add_op("QUANTIZE", {x}, {xq});
  Tensor* xdq = g.add_tensor(name + "_dq", shape, DType::kFloat32);
  g.add_op("DEQUANTIZE", {xq}, {xdq});
  return xdq;
}

// float `y` → QUANTIZE → DEQUANTIZE → graph output.
void quantized_output(Graph& g, Tensor* y, DType dtype, const QuantParams& q) {
  Tensor* yq = quantized_tensor(g, y->name + "_q", y->shape, dtype, q);
  g.add_op("QUANTIZE", {y}, {yq});
  Tensor* out = g.add_tensor(y->name + "_out", y->shape, DType::kFloat32);
  g.add_op("DEQUANTIZE", {yq}, {out});
  g.outputs.push_back(out);
}

}  // namespace

// --- the op table (ir/circle_ops.lst) ---------------------------------------------------------------
// The X-macro makes a row with a missing column a compile error; these check that every stated
// value is one the passes understand, and that the columns agree with each other.

TEST(OpTable, EveryRowStatesEveryField) {
  std::set<std::string_view> seen;
  ASSERT_GT(ex::op_table().size(), 50u);
  for (const ex::OpInfo& info : ex::op_table()) {
    SCOPED_TRACE(std::string(info.type));
    EXPECT_TRUE(seen.insert(info.type).second) << "two rows";
    EXPECT_LE(static_cast<int>(info.layout), static_cast<int>(ex::OpLayout::kFixedFrame));
    EXPECT_LE(static_cast<int>(info.quant), static_cast<int>(ex::QuantRule::kFloatOnly));
    EXPECT_EQ(info.flags & ~0xFu, 0u) << "unknown flag";
    EXPECT_GE(info.min_inputs, 1);
    EXPECT_TRUE(info.max_inputs == ex::kAnyInputs || info.max_inputs >= info.min_inputs);
    // An op with an integer kernel somewhere must say what the kernel does with parameters.
    if (info.has(ex::kOnertInt) || info.has(ex::kLitertInt)) EXPECT_NE(info.quant, ex::QuantRule::kFloatOnly);
    if (info.has(ex::kRearranges)) EXPECT_EQ(info.quant, ex::QuantRule::kSameParams);
    if (info.builtin == ex::kNotABuiltin) {
      EXPECT_EQ(info.type.substr(0, 6), "torch.") << "an importer-only op is named torch.*";
      EXPECT_TRUE(info.operands.empty());
      continue;
    }
    // The builtin code is the schema's for the row's name, and the writer knows the op.
    EXPECT_EQ(info.type, circle::EnumNameBuiltinOperator(static_cast<circle::BuiltinOperator>(info.builtin)));
    EXPECT_EQ(ex::find_builtin(info.builtin), &info);
    const ex::OpWriter* writer = ex::find_op_writer(std::string(info.type));
    ASSERT_NE(writer, nullptr);
    EXPECT_EQ(static_cast<int>(writer->code), info.builtin);
    EXPECT_TRUE(static_cast<bool>(writer->options));
    // Materialized operands are inputs too: the row's maximum leaves room for them.
    int operands =
        info.operands.empty() ? 0 : 1 + static_cast<int>(std::count(info.operands.begin(), info.operands.end(), ','));
    if (info.max_inputs != ex::kAnyInputs) EXPECT_GE(info.max_inputs, 1 + operands);
  }
  EXPECT_EQ(ex::find_op("NOT_AN_OP"), nullptr);
  EXPECT_EQ(ex::find_op_writer("SQUARED_DIFFERENCE"), nullptr) << "only the table's ops are written";
}

TEST(OpTable, FusableActivationsAreTableOpsAndTheirProducersSayFusesActivation) {
  for (std::string_view name : ex::fusable_activations()) {
    const ex::OpInfo* info = ex::find_op(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_FALSE(info->has(ex::kFusesActivation)) << name;
  }
  for (const char* producer : {"torch.conv2d", "FULLY_CONNECTED", "ADD", "CONCATENATION", "torch.max_pool2d"})
    EXPECT_TRUE(ex::find_op(producer)->has(ex::kFusesActivation)) << producer;
}

TEST(OpTable, RuntimeSupportComesFromTheFlags) {
  Graph circle, tflite;
  tflite.format = ex::FileFormat::kTflite;
  EXPECT_TRUE(ex::runs_quantized(circle, "CONV_2D"));
  EXPECT_TRUE(ex::runs_quantized(circle, "torch.conv_transpose2d"));
  EXPECT_FALSE(ex::runs_quantized(circle, "TRANSPOSE_CONV"));
  EXPECT_TRUE(ex::runs_quantized(tflite, "TRANSPOSE_CONV"));
  EXPECT_FALSE(ex::runs_quantized(circle, "BATCH_MATMUL"));
  EXPECT_TRUE(ex::runs_quantized(tflite, "BATCH_MATMUL"));
  EXPECT_FALSE(ex::runs_quantized(tflite, "EXP"));
  EXPECT_FALSE(ex::runs_quantized(tflite, "NOT_AN_OP"));
}

// --- fuse_batch_norm -----------------------------------------------------------------------------

namespace {
Op* add_batch_norm(Graph& g, Tensor* x, Tensor* y, const at::Tensor& gamma, const at::Tensor& beta,
                   const at::Tensor& mean, const at::Tensor& var, double eps) {
  Op* bn = g.add_op("torch.batch_norm",
                    {x, g.add_constant("gamma", gamma), g.add_constant("beta", beta), g.add_constant("mean", mean),
                     g.add_constant("var", var)},
                    {y});
  bn->attrs["eps"] = eps;
  return bn;
}
}  // namespace

TEST(FuseBatchNorm, FoldsIntoTheFloatConvBeforeIt) {
  Graph g;
  Tensor* x = graph_input(g, "x", {1, 2, 4, 4});
  at::Tensor w = at::randn({3, 2, 3, 3});
  at::Tensor b = at::randn({3});
  Tensor* c = g.add_tensor("c", {1, 3, 4, 4}, DType::kFloat32);
  g.add_op("torch.conv2d", {x, g.add_constant("w", w), g.add_constant("b", b)}, {c});
  Tensor* y = g.add_tensor("y", {1, 3, 4, 4}, DType::kFloat32);
  at::Tensor gamma = at::tensor({1.5f, -2.0f, 0.5f}), beta = at::tensor({0.1f, 0.2f, -0.3f});
  at::Tensor mean = at::tensor({0.3f, -1.0f, 2.0f}), var = at::tensor({4.0f, 0.25f, 1.0f});
  add_batch_norm(g, c, y, gamma, beta, mean, var, 0.0);
  g.outputs.push_back(y);

  ex::fuse_batch_norm(g);
  ex::validate(g);
  ASSERT_EQ(op_types(g), std::vector<std::string>{"torch.conv2d"});
  Op* conv = only_op(g, "torch.conv2d");
  EXPECT_EQ(conv->outputs[0]->name, "y");  // the block keeps its user-visible name
  at::Tensor a = gamma / at::sqrt(var);
  EXPECT_TRUE(at::allclose(conv->inputs[1]->data, w * a.reshape({-1, 1, 1, 1})));
  EXPECT_TRUE(at::allclose(conv->inputs[2]->data, (b - mean) * a + beta));
}

TEST(FuseBatchNorm, ElsewhereBecomesMulAndAddPerChannel) {
  Graph g;
  Tensor* x = graph_input(g, "x", {1, 3, 2, 2});
  Tensor* y = g.add_tensor("y", {1, 3, 2, 2}, DType::kFloat32);
  at::Tensor gamma = at::tensor({2.0f, 1.0f, 4.0f}), beta = at::tensor({1.0f, 0.0f, -1.0f});
  at::Tensor mean = at::tensor({0.0f, 1.0f, 2.0f}), var = at::tensor({1.0f, 4.0f, 16.0f});
  add_batch_norm(g, x, y, gamma, beta, mean, var, 0.0);
  g.outputs.push_back(y);

  ex::fuse_batch_norm(g);
  ex::validate(g);
  ASSERT_EQ(op_types(g), (std::vector<std::string>{"MUL", "ADD"}));
  Op* mul = only_op(g, "MUL");
  Op* add = only_op(g, "ADD");
  EXPECT_EQ(mul->inputs[0], x);
  EXPECT_EQ(add->outputs[0], y);
  // Shaped [C, 1, 1] to broadcast over dim 1 of NCHW.
  EXPECT_EQ(mul->inputs[1]->shape, (std::vector<int64_t>{3, 1, 1}));
  EXPECT_TRUE(at::allclose(mul->inputs[1]->data.flatten(), at::tensor({2.0f, 0.5f, 1.0f})));
  EXPECT_TRUE(at::allclose(add->inputs[1]->data.flatten(), at::tensor({1.0f, -0.5f, -3.0f})));
}

TEST(FuseBatchNorm, ConvWhoseOutputIsReadElsewhereIsNotChanged) {
  Graph g;
  Tensor* x = graph_input(g, "x", {1, 2, 4, 4});
  at::Tensor w = at::randn({2, 2, 1, 1});
  Tensor* c = g.add_tensor("c", {1, 2, 4, 4}, DType::kFloat32);
  g.add_op("torch.conv2d", {x, g.add_constant("w", w)}, {c});
  Tensor* y = g.add_tensor("y", {1, 2, 4, 4}, DType::kFloat32);
  add_batch_norm(g, c, y, at::ones({2}), at::zeros({2}), at::zeros({2}), at::full({2}, 4.0f), 0.0);
  g.outputs = {y, c};  // the conv's own output is a model output too

  ex::fuse_batch_norm(g);
  ex::validate(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"torch.conv2d", "MUL", "ADD"}));
  EXPECT_TRUE(at::equal(only_op(g, "torch.conv2d")->inputs[1]->data, w));
}

// --- propagate_qparams ---------------------------------------------------------------------------

TEST(PropagateQparams, DequantizeSinksBelowReshapeWhichThenRunsOnIntegers) {
  Graph g;
  QuantParams q = per_tensor(0.05f, 128);
  Tensor* xdq = dequantized_input(g, "x", {2, 8}, DType::kUInt8, q);
  Tensor* r = g.add_tensor("r", {2, 2, 4}, DType::kFloat32);
  g.add_op("RESHAPE", {xdq}, {r});
  Tensor* y = g.add_tensor("y", {2, 2, 4}, DType::kFloat32);
  g.add_op("TANH", {r}, {y});  // a float reader
  g.outputs.push_back(y);

  ex::propagate_qparams(g);
  ex::validate(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"QUANTIZE", "RESHAPE", "DEQUANTIZE", "TANH"}));
  Op* reshape = only_op(g, "RESHAPE");
  EXPECT_EQ(reshape->inputs[0]->dtype, DType::kUInt8);
  EXPECT_EQ(reshape->outputs[0]->dtype, DType::kUInt8);
  EXPECT_EQ(reshape->outputs[0]->quant, q);
}

TEST(PropagateQparams, PerChannelAxisFollowsATranspose) {
  Graph g;
  QuantParams q;
  q.scale = {0.1f, 0.2f, 0.3f};
  q.zero_point = {0, 0, 0};
  q.axis = 0;
  Tensor* w = g.add_constant("w", at::randint(-127, 128, {3, 5}).to(at::kChar));
  w->quant = q;
  Tensor* wdq = g.add_tensor("w_dq", {3, 5}, DType::kFloat32);
  g.add_op("DEQUANTIZE", {w}, {wdq});
  Tensor* wt = g.add_tensor("w_t", {5, 3}, DType::kFloat32);
  g.add_op("TRANSPOSE", {wdq}, {wt})->attrs["perm"] = std::vector<int64_t>{1, 0};
  g.outputs.push_back(wt);

  ex::propagate_qparams(g);
  ex::validate(g);
  Op* transpose = only_op(g, "TRANSPOSE");
  ASSERT_TRUE(transpose->outputs[0]->quant);
  EXPECT_EQ(transpose->outputs[0]->quant->axis, 1);
  EXPECT_EQ(transpose->outputs[0]->quant->scale, q.scale);
}

TEST(PropagateQparams, QuantizeRisesAboveReshapeAndEqualPairsCancel) {
  Graph g;
  QuantParams q = per_tensor(0.02f, 3);
  Tensor* xdq = dequantized_input(g, "x", {4, 4}, DType::kInt8, q);
  Tensor* r = g.add_tensor("r", {16}, DType::kFloat32);
  g.add_op("RESHAPE", {xdq}, {r});
  quantized_output(g, r, DType::kInt8, q);  // the same parameters again: the requantize is a no-op

  ex::propagate_qparams(g);
  ex::validate(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"QUANTIZE", "RESHAPE", "DEQUANTIZE"}));
  EXPECT_EQ(only_op(g, "RESHAPE")->inputs[0]->dtype, DType::kInt8);
}

TEST(PropagateQparams, DequantizeQuantizeAcrossDtypesBecomesOneQuantize) {
  Graph g;
  Tensor* xdq = dequantized_input(g, "x", {4}, DType::kUInt8, per_tensor(0.1f, 128));
  quantized_output(g, xdq, DType::kInt8, per_tensor(0.1f, 0));

  ex::propagate_qparams(g);
  ex::validate(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"QUANTIZE", "QUANTIZE", "DEQUANTIZE"}));
  Op* requantize = g.live_ops()[1];
  EXPECT_EQ(requantize->inputs[0]->dtype, DType::kUInt8);
  EXPECT_EQ(requantize->outputs[0]->dtype, DType::kInt8);
}

// --- fold_quantization ---------------------------------------------------------------------------

// dq(x) → conv(weight) → q, with integer weights behind a DEQUANTIZE or float weights.
namespace {
void conv_between_qdq(Graph& g, bool integer_weights) {
  Tensor* xdq = dequantized_input(g, "x", {1, 2, 4, 4}, DType::kUInt8, per_tensor(0.05f, 128));
  Tensor* weight;
  if (integer_weights) {
    QuantParams wq;
    wq.scale = {0.01f, 0.02f};
    wq.zero_point = {0, 0};
    Tensor* w = g.add_constant("w", at::randint(-127, 128, {2, 2, 3, 3}).to(at::kChar));
    w->quant = wq;
    weight = g.add_tensor("w_dq", {2, 2, 3, 3}, DType::kFloat32);
    g.add_op("DEQUANTIZE", {w}, {weight});
  } else {
    weight = g.add_constant("w", at::randn({2, 2, 3, 3}));
  }
  Tensor* y = g.add_tensor("y", {1, 2, 4, 4}, DType::kFloat32);
  g.add_op("torch.conv2d", {xdq, weight, g.add_constant("b", at::randn({2}))}, {y}, "node 'conv'");
  quantized_output(g, y, DType::kUInt8, per_tensor(0.1f, 100));
}
}  // namespace

TEST(FoldQuantization, ConvWithIntegerWeightsBecomesAnIntegerConv) {
  Graph g;
  conv_between_qdq(g, true);
  ex::fold_quantization(g);
  ex::validate(g);
  Op* conv = only_op(g, "torch.conv2d");
  EXPECT_EQ(conv->inputs[0]->dtype, DType::kUInt8);
  EXPECT_EQ(conv->inputs[1]->dtype, DType::kInt8);
  EXPECT_EQ(conv->inputs[1]->quant->scale.size(), 2u);
  EXPECT_EQ(conv->outputs[0]->dtype, DType::kUInt8);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"QUANTIZE", "torch.conv2d", "DEQUANTIZE"}));
}

TEST(FoldQuantization, ConvWithFloatWeightsStaysFloatBetweenDequantizeAndQuantize) {
  // A layer the quantizer left in float (CircleQuantizer(...).set_module_name(name, None)) keeps
  // float weights and a float op; quantizing its weights here would change its numbers.
  Graph g;
  conv_between_qdq(g, false);
  ex::fold_quantization(g);
  ex::validate(g);
  EXPECT_EQ(op_types(g),
            (std::vector<std::string>{"QUANTIZE", "DEQUANTIZE", "torch.conv2d", "QUANTIZE", "DEQUANTIZE"}));
  Op* conv = only_op(g, "torch.conv2d");
  for (const Tensor* t : {conv->inputs[0], conv->inputs[1], conv->outputs[0]}) {
    EXPECT_EQ(t->dtype, DType::kFloat32) << t->name;
    EXPECT_FALSE(t->quant) << t->name;
  }
}

TEST(FoldQuantization, FloatScalarOperandOfAnIntegerOpIsQuantized) {
  Graph g;
  Tensor* xdq = dequantized_input(g, "x", {4}, DType::kInt8, per_tensor(0.05f, 0));
  Tensor* y = g.add_tensor("y", {4}, DType::kFloat32);
  g.add_op("MUL", {xdq, g.add_constant("half", at::scalar_tensor(0.5f))}, {y});
  quantized_output(g, y, DType::kInt8, per_tensor(0.025f, 0));
  ex::fold_quantization(g);
  ex::validate(g);
  Op* mul = only_op(g, "MUL");
  ASSERT_TRUE(mul->inputs[1]->is_constant());
  EXPECT_EQ(mul->inputs[1]->dtype, DType::kInt8);
  EXPECT_NEAR(ex::dequantize_constant(mul->inputs[1]->data, *mul->inputs[1]->quant).item<float>(), 0.5f, 0.005f);
}

// --- legalize_weight_signedness ------------------------------------------------------------------

// An integer conv as fold_quantization leaves it: uint8 activations, int8 per-channel weights.
namespace {
Op* uint8_conv_with_int8_weights(Graph& g, const at::Tensor& w, const QuantParams& wq) {
  Tensor* x = graph_input(g, "x", {1, 2, 4, 4}, DType::kUInt8);
  x->quant = per_tensor(0.05f, 128);
  Tensor* weight = g.add_constant("w", w);
  weight->quant = wq;
  Tensor* y = quantized_tensor(g, "y", {1, 2, 4, 4}, DType::kUInt8, per_tensor(0.1f, 100));
  g.outputs.push_back(y);
  return g.add_op("torch.conv2d", {x, weight}, {y}, "node 'conv' (aten.conv2d.default)");
}
}  // namespace

TEST(LegalizeWeightSignedness, Int8WeightsUnderUint8ActivationsBecomeTheSameUint8Weights) {
  Graph g;
  at::Tensor w = at::tensor({-128, -1, 0, 127}, at::kChar).repeat({9}).reshape({2, 2, 3, 3});
  QuantParams wq;
  wq.scale = {0.01f, 0.02f};
  wq.zero_point = {0, -3};
  Op* conv = uint8_conv_with_int8_weights(g, w, wq);
  ex::legalize_weight_signedness(g);
  ex::validate(g);
  const Tensor* shifted = conv->inputs[1];
  EXPECT_EQ(shifted->dtype, DType::kUInt8);
  EXPECT_EQ(shifted->quant->zero_point, (std::vector<int64_t>{128, 125}));
  EXPECT_EQ(shifted->quant->scale, wq.scale);
  // Bit-exact: every weight dequantizes to the same real value.
  EXPECT_TRUE(at::equal(ex::dequantize_constant(shifted->data, *shifted->quant), ex::dequantize_constant(w, wq)));
}

TEST(LegalizeWeightSignedness, TfliteRefusesNamingTheNodeAndTheInt8Preset) {
  Graph g;
  g.format = ex::FileFormat::kTflite;
  QuantParams wq;
  wq.scale = {0.01f, 0.02f};
  wq.zero_point = {0, 0};
  uint8_conv_with_int8_weights(g, at::zeros({2, 2, 3, 3}, at::kChar), wq);
  try {
    ex::legalize_weight_signedness(g);
    FAIL() << "expected an ExportError";
  } catch (const ex::ExportError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("node 'conv'"), std::string::npos) << message;
    EXPECT_NE(message.find("uint8 activations with int8 weights"), std::string::npos) << message;
    EXPECT_NE(message.find("CircleQuantizer(\"int8\")"), std::string::npos) << message;
  }
}

TEST(LegalizeWeightSignedness, MatchingTypesAreLeftAlone) {
  Graph g;
  Tensor* x = graph_input(g, "x", {1, 2, 4, 4}, DType::kInt8);
  x->quant = per_tensor(0.05f, 0);
  Tensor* w = g.add_constant("w", at::zeros({2, 2, 3, 3}, at::kChar));
  w->quant = per_tensor(0.01f, 0);
  Tensor* y = quantized_tensor(g, "y", {1, 2, 4, 4}, DType::kInt8, per_tensor(0.1f, 0));
  g.outputs.push_back(y);
  Op* conv = g.add_op("torch.conv2d", {x, w}, {y});
  ex::legalize_weight_signedness(g);
  EXPECT_EQ(conv->inputs[1], w);
}

// --- insert_requantize ---------------------------------------------------------------------------

TEST(InsertRequantize, AveragePoolAveragesInItsInputParametersThenRequantizes) {
  // Runtimes' integer AVERAGE_POOL_2D assume equal input and output parameters. Requantizing
  // after the pool (not before) keeps the window's elements from being clamped to the output's
  // narrower range before they are averaged.
  Graph g;
  QuantParams in_q = per_tensor(0.1f, 128), out_q = per_tensor(0.03f, 90);
  Tensor* x = graph_input(g, "x", {1, 4, 4, 2}, DType::kUInt8);
  x->quant = in_q;
  Tensor* y = quantized_tensor(g, "y", {1, 2, 2, 2}, DType::kUInt8, out_q);
  g.add_op("AVERAGE_POOL_2D", {x}, {y});
  g.outputs.push_back(y);

  ex::insert_requantize(g);
  ex::validate(g);
  ASSERT_EQ(op_types(g), (std::vector<std::string>{"AVERAGE_POOL_2D", "DEQUANTIZE", "QUANTIZE"}));
  Op* pool = only_op(g, "AVERAGE_POOL_2D");
  EXPECT_EQ(pool->inputs[0], x);
  EXPECT_EQ(pool->outputs[0]->quant, in_q);
  EXPECT_EQ(only_op(g, "QUANTIZE")->outputs[0], y);  // the model output is still `y`
  EXPECT_EQ(y->quant, out_q);
}

TEST(InsertRequantize, EveryOpWhoseKernelDoesNotRescaleGetsMatchingParameters) {
  for (const char* type : {"AVERAGE_POOL_2D", "MAX_POOL_2D", "RESHAPE", "TRANSPOSE", "SLICE", "STRIDED_SLICE", "PAD",
                           "GATHER", "BROADCAST_TO", "TILE", "REDUCE_MAX"}) {
    Graph g;
    Tensor* x = graph_input(g, "x", {4}, DType::kInt8);
    x->quant = per_tensor(0.1f, -3);
    Tensor* y = quantized_tensor(g, "y", {4}, DType::kInt8, per_tensor(0.2f, 5));
    g.add_op(type, {x}, {y});
    g.outputs.push_back(y);
    ex::insert_requantize(g);
    ex::validate(g);
    Op* op = only_op(g, type);
    EXPECT_EQ(op->inputs[0]->quant, op->outputs[0]->quant) << type;
    EXPECT_EQ(op->inputs[0]->dtype, op->outputs[0]->dtype) << type;
  }
}

TEST(InsertRequantize, OpsThatRescaleThemselvesAreLeftAlone) {
  for (const char* type : {"MEAN", "SUM", "ADD", "CONV_2D"}) {
    Graph g;
    Tensor* x = graph_input(g, "x", {4}, DType::kUInt8);
    x->quant = per_tensor(0.1f, 128);
    Tensor* y = quantized_tensor(g, "y", {4}, DType::kUInt8, per_tensor(0.2f, 5));
    g.add_op(type, {x}, {y});
    g.outputs.push_back(y);
    ex::insert_requantize(g);
    EXPECT_EQ(op_types(g), std::vector<std::string>{type});
  }
}

TEST(InsertRequantize, MaximumHasEachInputRequantizedAndConstantsAtExportTime) {
  Graph g;
  QuantParams out_q = per_tensor(0.02f, -10);
  Tensor* a = graph_input(g, "a", {4}, DType::kInt8);
  a->quant = per_tensor(0.05f, 3);
  Tensor* bound = g.add_constant("bound", at::tensor({-64}, at::kChar));
  bound->quant = per_tensor(0.01f, 0);  // -0.64
  Tensor* y = quantized_tensor(g, "y", {4}, DType::kInt8, out_q);
  g.add_op("MAXIMUM", {a, bound}, {y});
  g.outputs.push_back(y);

  ex::insert_requantize(g);
  ex::validate(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"DEQUANTIZE", "QUANTIZE", "MAXIMUM"}));
  Op* maximum = only_op(g, "MAXIMUM");
  EXPECT_EQ(maximum->outputs[0], y);
  for (const Tensor* in : maximum->inputs) EXPECT_EQ(in->quant, out_q) << in->name;
  const Tensor* c = maximum->inputs[1];
  ASSERT_TRUE(c->is_constant());
  EXPECT_EQ(c->data.item<int8_t>(), -42);  // round(-0.64 / 0.02) - 10
}

TEST(InsertRequantize, ConcatenationInputsAreRequantizedToTheOutput) {
  Graph g;
  QuantParams out_q = per_tensor(0.1f, 128);
  Tensor* a = graph_input(g, "a", {2}, DType::kUInt8);
  a->quant = out_q;
  Tensor* b = graph_input(g, "b", {2}, DType::kUInt8);
  b->quant = per_tensor(0.3f, 10);
  Tensor* y = quantized_tensor(g, "y", {4}, DType::kUInt8, out_q);
  g.add_op("CONCATENATION", {a, b}, {y})->attrs["axis"] = int64_t{0};
  g.outputs.push_back(y);

  ex::insert_requantize(g);
  ex::validate(g);
  Op* concat = only_op(g, "CONCATENATION");
  EXPECT_EQ(concat->inputs[0], a);  // already matching
  EXPECT_EQ(concat->inputs[1]->quant, out_q);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"DEQUANTIZE", "QUANTIZE", "CONCATENATION"}));
}

TEST(InsertRequantize, RequantizeAcrossDtypesIsOneQuantize) {
  Graph g;
  Tensor* x = graph_input(g, "x", {4}, DType::kUInt8);
  x->quant = per_tensor(0.1f, 128);
  Tensor* y = quantized_tensor(g, "y", {2, 2}, DType::kInt8, per_tensor(0.1f, 0));
  g.add_op("RESHAPE", {x}, {y});
  g.outputs.push_back(y);
  ex::insert_requantize(g);
  ex::validate(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"RESHAPE", "QUANTIZE"}));
  EXPECT_EQ(only_op(g, "RESHAPE")->outputs[0]->dtype, DType::kUInt8);
}

TEST(InsertRequantize, LogisticWritesTheFixedRangeItsKernelAssumes) {
  Graph g;
  Tensor* x = graph_input(g, "x", {4}, DType::kUInt8);
  x->quant = per_tensor(0.1f, 128);
  Tensor* y = quantized_tensor(g, "y", {4}, DType::kUInt8, per_tensor(0.003f, 2));
  g.add_op("LOGISTIC", {x}, {y});
  g.outputs.push_back(y);
  ex::insert_requantize(g);
  ex::validate(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"LOGISTIC", "DEQUANTIZE", "QUANTIZE"}));
  EXPECT_EQ(only_op(g, "LOGISTIC")->outputs[0]->quant, per_tensor(1.0f / 256, 0));
}

// --- promote_operand_types / legalize_batch_matmul / check_exportable ---------------------------

namespace {
DType input_dtype(const Op* op, size_t slot) { return op->inputs.at(slot)->dtype; }
}  // namespace

TEST(PromoteOperandTypes, ArithmeticOperandsAreCastToTheOutputDtype) {
  Graph g;
  Tensor* x = graph_input(g, "x", {2, 3});
  Tensor* c = g.add_constant("c", at::arange(3, at::kLong));  // x + torch.arange(3)
  Tensor* y = g.add_tensor("y", {2, 3}, DType::kFloat32);
  g.add_op("ADD", {x, c}, {y});
  g.outputs = {y};
  ex::promote_operand_types(g);
  Op* add = only_op(g, "ADD");
  EXPECT_EQ(input_dtype(add, 0), DType::kFloat32);
  EXPECT_EQ(input_dtype(add, 1), DType::kFloat32);
  EXPECT_EQ(only_op(g, "CAST")->inputs[0], c);
  ex::fold_constants(g);  // the cast of a constant is folded
  EXPECT_EQ(op_types(g), std::vector<std::string>{"ADD"});
}

TEST(PromoteOperandTypes, IntegerTrueDivisionAndPowComputeInFloat) {
  Graph g;
  Tensor* i = graph_input(g, "i", {4}, DType::kInt32);
  Tensor* j = graph_input(g, "j", {4}, DType::kInt32);
  Tensor* q = g.add_tensor("q", {4}, DType::kFloat32);  // i / j is float in PyTorch
  g.add_op("DIV", {i, j}, {q});
  Tensor* p = g.add_tensor("p", {4}, DType::kFloat32);  // q ** int32 constant
  g.add_op("POW", {q, g.add_constant("e", at::scalar_tensor(3, at::kInt))}, {p});
  g.outputs = {p};
  ex::promote_operand_types(g);
  for (const Op* op : g.live_ops())
    if (op->type != "CAST")
      for (const Tensor* in : op->inputs) EXPECT_EQ(in->dtype, DType::kFloat32) << op->type;
}

TEST(PromoteOperandTypes, ComparisonsUsePyTorchsCategoryRule) {
  Graph g;
  Tensor* x = graph_input(g, "x", {3});
  Tensor* i = graph_input(g, "i", {3}, DType::kInt64);
  Tensor* ge = g.add_tensor("ge", {3}, DType::kBool);
  g.add_op("GREATER_EQUAL", {x, i}, {ge});  // float beats integer whatever the width
  Tensor* k = graph_input(g, "k", {3}, DType::kInt32);
  Tensor* lt = g.add_tensor("lt", {3}, DType::kBool);
  g.add_op("LESS", {k, g.add_constant("two", at::scalar_tensor(2, at::kLong))},
           {lt});  // a dimensioned int32 beats a scalar int64
  g.outputs = {ge, lt};
  ex::promote_operand_types(g);
  Op* greater_equal = only_op(g, "GREATER_EQUAL");
  EXPECT_EQ(input_dtype(greater_equal, 1), DType::kFloat32);
  Op* less = only_op(g, "LESS");
  EXPECT_EQ(input_dtype(less, 0), DType::kInt32);
  EXPECT_EQ(input_dtype(less, 1), DType::kInt32);
}

TEST(PromoteOperandTypes, SelectCastsItsValuesNotItsCondition) {
  Graph g;
  Tensor* cond = graph_input(g, "cond", {3}, DType::kBool);
  Tensor* i = graph_input(g, "i", {3}, DType::kInt32);
  Tensor* x = graph_input(g, "x", {3});
  Tensor* y = g.add_tensor("y", {3}, DType::kFloat32);
  g.add_op("SELECT_V2", {cond, i, x}, {y});
  g.outputs = {y};
  ex::promote_operand_types(g);
  Op* select = only_op(g, "SELECT_V2");
  EXPECT_EQ(select->inputs[0], cond);
  EXPECT_EQ(input_dtype(select, 1), DType::kFloat32);
  EXPECT_EQ(select->inputs[2], x);
}

TEST(CheckExportable, RefusesMixedOperandTypesARuntimeWouldMiscompute) {
  Graph g;  // onert 0.1.0 loads POW(FLOAT32, INT32) and returns inf / NaN
  Tensor* x = graph_input(g, "x", {3});
  Tensor* y = g.add_tensor("y", {3}, DType::kFloat32);
  g.add_op("POW", {x, g.add_constant("e", at::scalar_tensor(3, at::kInt))}, {y}, "node 'pow' (aten.pow.Tensor_Tensor)");
  g.outputs = {y};
  try {
    ex::check_exportable(g);
    FAIL() << "a mixed POW was accepted";
  } catch (const ex::ExportError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("node 'pow'"), std::string::npos) << message;
    EXPECT_NE(message.find("float32 and int32"), std::string::npos) << message;
  }
}

TEST(LegalizeBatchMatmul, ConstantLeftOperandMovesRight) {
  Graph g;
  Tensor* w = g.add_constant("w", at::randn({4, 5}));
  Tensor* x = graph_input(g, "x", {2, 5, 8});
  Tensor* y = g.add_tensor("y", {2, 4, 8}, DType::kFloat32);
  g.add_op("BATCH_MATMUL", {w, x}, {y})->attrs = {{"adj_x", int64_t{0}}, {"adj_y", int64_t{0}}};
  g.outputs = {y};
  ex::legalize_batch_matmul(g);
  ex::fold_constants(g);
  Op* matmul = only_op(g, "BATCH_MATMUL");
  EXPECT_FALSE(matmul->inputs[0]->is_constant());
  ASSERT_TRUE(matmul->inputs[1]->is_constant());
  EXPECT_EQ(matmul->inputs[1]->shape, (std::vector<int64_t>{5, 4}));
  EXPECT_EQ(matmul->outputs[0]->shape, (std::vector<int64_t>{2, 8, 4}));
  EXPECT_EQ(y->producer->type, "TRANSPOSE");
}

// --- decompose_norms ------------------------------------------------------------------------------

TEST(DecomposeNorms, LayerNormBecomesMeanSubMulRsqrtOverTheLastDims) {
  Graph g;
  Tensor* x = graph_input(g, "x", {2, 3, 8});
  Tensor* y = g.add_tensor("y", {2, 3, 8}, DType::kFloat32);
  Op* ln =
      g.add_op("torch.layer_norm", {x, g.add_constant("w", at::ones({8})), g.add_constant("b", at::zeros({8}))}, {y});
  ln->attrs = {{"dims", int64_t{1}}, {"eps", 1e-5}};
  g.outputs.push_back(y);
  ex::decompose_norms(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"MEAN", "SUB", "MUL", "MEAN", "ADD", "RSQRT", "MUL", "MUL", "ADD"}));
  for (const Op* op : g.live_ops())
    if (op->type == "MEAN") {
      EXPECT_EQ(op->ints("axes"), (std::vector<int64_t>{2}));
      EXPECT_EQ(op->i("keep_dims"), 1);
    }
  EXPECT_EQ(y->producer->type, "ADD");  // the graph output is still written
  ex::validate(g);
}

TEST(DecomposeNorms, RmsNormWithoutWeightEndsInTheNormalizingMul) {
  Graph g;
  Tensor* x = graph_input(g, "x", {4, 16});
  Tensor* y = g.add_tensor("y", {4, 16}, DType::kFloat32);
  g.add_op("torch.rms_norm", {x, nullptr}, {y})->attrs["eps"] = 1e-6;
  g.outputs.push_back(y);
  ex::decompose_norms(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"MUL", "MEAN", "ADD", "RSQRT", "MUL"}));
  EXPECT_EQ(y->producer->type, "MUL");
  EXPECT_EQ(y->producer->inputs[0], x);
}

// --- quantize_bias ------------------------------------------------------------------------------------

namespace {
// A quantized FULLY_CONNECTED: uint8 x (scale sx), int8 per-channel weights, `bias` (or none).
Op* quantized_fc(Graph& g, float sx, std::vector<float> weight_scales, Tensor* bias, DType x_dtype = DType::kUInt8) {
  int64_t n = static_cast<int64_t>(weight_scales.size());
  Tensor* x = quantized_tensor(g, "x", {1, 4}, x_dtype, per_tensor(sx, x_dtype == DType::kUInt8 ? 128 : 0));
  g.inputs.push_back(x);
  Tensor* w = g.add_constant("w", at::ones({n, 4}, at::kChar));
  w->dtype = DType::kInt8;
  QuantParams wq;
  wq.scale = std::move(weight_scales);
  wq.zero_point.assign(wq.scale.size(), 0);
  w->quant = wq;
  Tensor* y = quantized_tensor(g, "y", {1, n}, x_dtype, per_tensor(0.1f, 0));
  g.outputs.push_back(y);
  std::vector<Tensor*> inputs{x, w};
  if (bias) inputs.push_back(bias);
  return g.add_op("FULLY_CONNECTED", inputs, {y});
}
}  // namespace

TEST(QuantizeBias, FloatBiasBecomesInt32AtInputTimesWeightScale) {
  Graph g;
  Op* fc = quantized_fc(g, 0.5f, {0.25f, 0.125f}, g.add_constant("b", at::tensor({1.0f, -0.3f})));
  ex::quantize_bias(g);
  Tensor* b = fc->inputs[2];
  EXPECT_EQ(b->dtype, DType::kInt32);
  ASSERT_TRUE(b->quant);
  EXPECT_EQ(b->quant->scale, (std::vector<float>{0.125f, 0.0625f}));
  EXPECT_EQ(b->quant->zero_point, (std::vector<int64_t>{0, 0}));
  // 1.0 / 0.125 = 8; -0.3 / 0.0625 = -4.8 → -5
  EXPECT_TRUE(at::equal(b->data, at::tensor({8, -5}, at::kInt))) << b->data;
}

TEST(QuantizeBias, MissingBiasBecomesZerosAndInt16ActivationsGetInt64) {
  Graph g;
  Op* fc = quantized_fc(g, 0.5f, {0.25f}, nullptr, DType::kInt16);
  ex::quantize_bias(g);
  ASSERT_EQ(fc->inputs.size(), 3u);
  Tensor* b = fc->inputs[2];
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, DType::kInt64);
  EXPECT_TRUE(at::equal(b->data, at::zeros({1}, at::kLong)));
}

TEST(QuantizeBias, IntegerBiasAtTheRightScaleIsKept) {
  Graph g;
  Tensor* bias = g.add_constant("b", at::tensor({3, -7}, at::kInt));
  bias->dtype = DType::kInt32;
  QuantParams bq;
  bq.scale = {0.125f, 0.0625f};
  bq.zero_point = {0, 0};
  bias->quant = bq;
  Op* fc = quantized_fc(g, 0.5f, {0.25f, 0.125f}, bias);
  ex::quantize_bias(g);
  EXPECT_EQ(fc->inputs[2], bias);
}

TEST(QuantizeBias, NonConstantBiasIsRefused) {
  Graph g;
  Tensor* bias = graph_input(g, "b", {1});
  quantized_fc(g, 0.5f, {0.25f}, bias);
  EXPECT_THROW(ex::quantize_bias(g), ex::ExportError);
}

// --- legalize_layout ------------------------------------------------------------------------------

TEST(LegalizeLayout, ConvBecomesNhwcConv2dBetweenTransposesWithOhwiWeights) {
  Graph g;
  Tensor* x = graph_input(g, "x", {1, 3, 8, 8});
  Tensor* w = g.add_constant("w", at::randn({6, 3, 3, 3}));
  Tensor* y = g.add_tensor("y", {1, 6, 8, 8}, DType::kFloat32);
  Op* conv = g.add_op("torch.conv2d", {x, w, nullptr}, {y});
  conv->attrs = {{"stride", std::vector<int64_t>{1, 1}},
                 {"dilation", std::vector<int64_t>{1, 1}},
                 {"padding", std::vector<int64_t>{1, 1, 1, 1}},
                 {"groups", int64_t{1}}};
  g.outputs.push_back(y);
  ex::legalize_layout(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"TRANSPOSE", "TRANSPOSE", "CONV_2D", "TRANSPOSE"}));
  Op* c = only_op(g, "CONV_2D");
  EXPECT_EQ(c->s("padding"), "SAME");
  EXPECT_EQ(c->inputs[0]->shape, (std::vector<int64_t>{1, 8, 8, 3}));
  EXPECT_EQ(c->inputs[1]->shape, (std::vector<int64_t>{6, 3, 3, 3}));  // OHWI
  EXPECT_EQ(c->inputs[1]->producer->ints("perm"), (std::vector<int64_t>{0, 2, 3, 1}));
  EXPECT_EQ(c->outputs[0]->shape, (std::vector<int64_t>{1, 8, 8, 6}));
  EXPECT_EQ(y->producer->ints("perm"), ex::kNhwcToNchw);
  ex::validate(g);
}

TEST(LegalizeLayout, DepthwiseConvGetsOneHwoWeightsAndAMultiplier) {
  Graph g;
  Tensor* x = graph_input(g, "x", {1, 4, 6, 6});
  Tensor* y = g.add_tensor("y", {1, 8, 4, 4}, DType::kFloat32);
  Op* conv = g.add_op("torch.conv2d", {x, g.add_constant("w", at::randn({8, 1, 3, 3})), nullptr}, {y});
  conv->attrs = {{"stride", std::vector<int64_t>{1, 1}},
                 {"dilation", std::vector<int64_t>{1, 1}},
                 {"padding", std::vector<int64_t>{0, 0, 0, 0}},
                 {"groups", int64_t{4}}};
  g.outputs.push_back(y);
  ex::legalize_layout(g);
  Op* dw = only_op(g, "DEPTHWISE_CONV_2D");
  EXPECT_EQ(dw->s("padding"), "VALID");
  EXPECT_EQ(dw->i("depth_multiplier"), 2);
  EXPECT_EQ(dw->inputs[1]->shape, (std::vector<int64_t>{1, 3, 3, 8}));
}

TEST(LegalizeLayout, AveragePoolWithPaddingCircleCannotExpressIsRefused) {
  Graph g;
  Tensor* x = graph_input(g, "x", {1, 2, 5, 5});
  Tensor* y = g.add_tensor("y", {1, 2, 3, 3}, DType::kFloat32);
  Op* pool = g.add_op("torch.avg_pool2d", {x}, {y});
  pool->attrs = {{"kernel", std::vector<int64_t>{2, 2}},
                 {"stride", std::vector<int64_t>{2, 2}},
                 {"padding", std::vector<int64_t>{1, 1, 1, 1}}};
  pool->origin = "avg_pool2d_1";
  g.outputs.push_back(y);
  try {
    ex::legalize_layout(g);
    ADD_FAILURE() << "no error";
  } catch (const ex::ExportError& e) {
    EXPECT_NE(std::string(e.what()).find("avg_pool2d_1"), std::string::npos) << e.what();
  }
}

// --- materialize_operands ---------------------------------------------------------------------------

TEST(MaterializeOperands, AttributesBecomeInt32InputsInTheTablesOrder) {
  Graph g;
  Tensor* x = graph_input(g, "x", {2, 3, 4});
  Tensor* r = g.add_tensor("r", {6, 4}, DType::kFloat32);
  g.add_op("RESHAPE", {x}, {r})->attrs["shape"] = std::vector<int64_t>{6, 4};
  Tensor* s = g.add_tensor("s", {2, 4}, DType::kFloat32);
  g.add_op("STRIDED_SLICE", {r}, {s})->attrs = {{"begin", std::vector<int64_t>{0, 0}},
                                                {"end", std::vector<int64_t>{6, 4}},
                                                {"strides", std::vector<int64_t>{3, 1}}};
  Tensor* p = g.add_tensor("p", {4, 6}, DType::kFloat32);
  g.add_op("PAD", {s}, {p})->attrs["paddings"] = std::vector<int64_t>{1, 1, 0, 2};
  Tensor* m = g.add_tensor("m", {4}, DType::kInt32);
  g.add_op("ARG_MAX", {p}, {m})->attrs["axis"] = int64_t{1};
  g.outputs.push_back(m);
  ex::materialize_operands(g);
  const Op* reshape = r->producer;
  ASSERT_EQ(reshape->inputs.size(), 2u);
  EXPECT_TRUE(at::equal(reshape->inputs[1]->data, at::tensor({6, 4}, at::kInt)));
  const Op* slice = s->producer;
  ASSERT_EQ(slice->inputs.size(), 4u);
  EXPECT_TRUE(at::equal(slice->inputs[3]->data, at::tensor({3, 1}, at::kInt)));
  const Op* pad = p->producer;
  ASSERT_EQ(pad->inputs.size(), 2u);
  EXPECT_TRUE(at::equal(pad->inputs[1]->data, at::tensor({1, 1, 0, 2}, at::kInt).reshape({2, 2})));
  const Op* argmax = m->producer;
  EXPECT_TRUE(at::equal(argmax->inputs[1]->data, at::tensor({1}, at::kInt)));
  ex::validate(g);
}

TEST(MaterializeOperands, TransposeConvTakesOutputShapeWeightsInputBias) {
  Graph g;
  Tensor* x = graph_input(g, "x", {1, 4, 4, 2});
  Tensor* w = g.add_constant("w", at::randn({3, 2, 2, 2}));
  Tensor* b = g.add_constant("b", at::randn({3}));
  Tensor* y = g.add_tensor("y", {1, 8, 8, 3}, DType::kFloat32);
  g.add_op("TRANSPOSE_CONV", {x, w, b}, {y})->attrs["output_shape"] = std::vector<int64_t>{1, 8, 8, 3};
  g.outputs.push_back(y);
  ex::materialize_operands(g);
  const Op* op = y->producer;
  ASSERT_EQ(op->inputs.size(), 4u);
  EXPECT_TRUE(at::equal(op->inputs[0]->data, at::tensor({1, 8, 8, 3}, at::kInt)));
  EXPECT_EQ(op->inputs[1], w);
  EXPECT_EQ(op->inputs[2], x);
  EXPECT_EQ(op->inputs[3], b);
  ex::validate(g);
}

TEST(MaterializeOperands, QuantizedPadValueIsInTheInputsIntegerDomain) {
  Graph g;
  Tensor* x = quantized_tensor(g, "x", {1, 4}, DType::kUInt8, per_tensor(0.5f, 10));
  g.inputs.push_back(x);
  Tensor* y = quantized_tensor(g, "y", {1, 6}, DType::kUInt8, per_tensor(0.5f, 10));
  Op* pad = g.add_op("PADV2", {x}, {y});
  pad->attrs = {{"paddings", std::vector<int64_t>{0, 0, 1, 1}}, {"value", 2.0}};
  g.outputs.push_back(y);
  ex::materialize_operands(g);
  ASSERT_EQ(pad->inputs.size(), 3u);
  EXPECT_TRUE(at::equal(pad->inputs[2]->data, at::tensor({14}, at::kByte)));  // 2.0 / 0.5 + 10
}

// --- fuse_activation, merge_duplicate_ops, legalize_integer_ops, sink_transposes ----------------------

TEST(FuseActivation, ReluAfterAnAddBecomesItsFusedActivation) {
  Graph g;
  Tensor* a = graph_input(g, "a", {4});
  Tensor* s = g.add_tensor("s", {4}, DType::kFloat32);
  Op* add = g.add_op("ADD", {a, a}, {s});
  Tensor* y = g.add_tensor("y", {4}, DType::kFloat32);
  g.add_op("RELU6", {s}, {y});
  g.outputs.push_back(y);
  ex::fuse_activation(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"ADD"}));
  EXPECT_EQ(add->s("fused_activation"), "RELU6");
  EXPECT_EQ(y->producer, add);
}

TEST(FuseActivation, AnOpWithoutAFusedActivationOptionKeepsItsRelu) {
  Graph g;
  Tensor* a = graph_input(g, "a", {4});
  Tensor* s = g.add_tensor("s", {4}, DType::kFloat32);
  g.add_op("MAXIMUM", {a, a}, {s});
  Tensor* y = g.add_tensor("y", {4}, DType::kFloat32);
  g.add_op("RELU", {s}, {y});
  g.outputs.push_back(y);
  ex::fuse_activation(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"MAXIMUM", "RELU"}));
}

TEST(MergeDuplicateOps, TheSameOpOnTheSameInputsIsComputedOnce) {
  Graph g;
  Tensor* x = graph_input(g, "x", {2, 3});
  Tensor* t1 = g.add_tensor("t1", {3, 2}, DType::kFloat32);
  Tensor* t2 = g.add_tensor("t2", {3, 2}, DType::kFloat32);
  g.add_op("TRANSPOSE", {x}, {t1})->attrs["perm"] = std::vector<int64_t>{1, 0};
  g.add_op("TRANSPOSE", {x}, {t2})->attrs["perm"] = std::vector<int64_t>{1, 0};
  Tensor* y = g.add_tensor("y", {3, 2}, DType::kFloat32);
  g.add_op("ADD", {t1, t2}, {y});
  g.outputs.push_back(y);
  ex::merge_duplicate_ops(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"TRANSPOSE", "ADD"}));
  EXPECT_EQ(y->producer->inputs[0], y->producer->inputs[1]);
}

TEST(LegalizeIntegerOps, CircleGathersInt64DataAsInt32BetweenCasts) {
  Graph g;
  Tensor* x = graph_input(g, "x", {5}, DType::kInt64);
  Tensor* i = graph_input(g, "i", {2}, DType::kInt32);
  Tensor* y = g.add_tensor("y", {2}, DType::kInt64);
  g.add_op("GATHER", {x, i}, {y})->attrs["axis"] = int64_t{0};
  g.outputs.push_back(y);
  ex::legalize_integer_ops(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"CAST", "GATHER", "CAST"}));
  EXPECT_EQ(only_op(g, "GATHER")->inputs[0]->dtype, DType::kInt32);
  EXPECT_EQ(y->producer->type, "CAST");

  Graph tflite;
  tflite.format = ex::FileFormat::kTflite;
  Tensor* x2 = graph_input(tflite, "x", {5}, DType::kInt64);
  Tensor* y2 = tflite.add_tensor("y", {2}, DType::kInt64);
  tflite.add_op("GATHER", {x2, graph_input(tflite, "i", {2}, DType::kInt32)}, {y2})->attrs["axis"] = int64_t{0};
  ex::legalize_integer_ops(tflite);
  EXPECT_EQ(op_types(tflite), (std::vector<std::string>{"GATHER"}));
}

TEST(LegalizeIntegerOps, IntegerSelectsBecomeProductsInCircleFilesOnly) {
  // MAXIMUM of int64: x·(x >= y) + y·(x < y); LiteRT has the kernel, so a .tflite keeps it.
  for (ex::FileFormat format : {ex::FileFormat::kCircle, ex::FileFormat::kTflite}) {
    Graph g;
    g.format = format;
    Tensor* x = graph_input(g, "x", {2, 3}, DType::kInt64);
    Tensor* y = graph_input(g, "y", {3}, DType::kInt64);
    Tensor* larger = g.add_tensor("larger", {2, 3}, DType::kInt64);
    g.add_op("MAXIMUM", {x, y}, {larger});
    g.outputs.push_back(larger);
    ex::legalize_integer_ops(g);
    if (format == ex::FileFormat::kTflite) {
      EXPECT_EQ(op_types(g), (std::vector<std::string>{"MAXIMUM"}));
      continue;
    }
    EXPECT_EQ(op_types(g), (std::vector<std::string>{"GREATER_EQUAL", "LESS", "CAST", "MUL", "CAST", "MUL", "ADD"}));
    Op* add = only_op(g, "ADD");
    EXPECT_EQ(add->outputs[0], larger);
    for (Op* op : g.live_ops())
      if (op->type == "CAST") EXPECT_EQ(op->inputs[0]->shape, op->outputs[0]->shape);
  }
}

TEST(LegalizeIntegerOps, CircleRewritesIntegerOpsOnertCannotRun) {
  // SLICE / PAD of int64: a GATHER of the kept positions (on int32), a CONCATENATION with zeros;
  // TILE of size-1 dims: BROADCAST_TO; FLOOR_DIV of int64: int32 in both formats.
  for (ex::FileFormat format : {ex::FileFormat::kCircle, ex::FileFormat::kTflite}) {
    Graph g;
    g.format = format;
    Tensor* x = graph_input(g, "x", {2, 5}, DType::kInt64);
    Tensor* sliced = g.add_tensor("sliced", {2, 3}, DType::kInt64);
    g.add_op("SLICE", {x}, {sliced})->attrs = {{"begin", std::vector<int64_t>{0, 1}},
                                               {"size", std::vector<int64_t>{2, 3}}};
    Tensor* padded = g.add_tensor("padded", {2, 4}, DType::kInt64);
    g.add_op("PAD", {sliced}, {padded})->attrs["paddings"] = std::vector<int64_t>{0, 0, 1, 0};
    Tensor* halved = g.add_tensor("halved", {2, 4}, DType::kInt64);
    g.add_op("FLOOR_DIV", {padded, g.add_constant("two", at::full({}, 2, at::kLong))}, {halved});
    Tensor* column = g.add_tensor("column", {2, 4, 1}, DType::kInt64);
    g.add_op("RESHAPE", {halved}, {column})->attrs["shape"] = column->shape;
    Tensor* wide = g.add_tensor("wide", {2, 4, 3}, DType::kInt64);
    g.add_op("TILE", {column}, {wide})->attrs["multiples"] = std::vector<int64_t>{1, 1, 3};
    g.outputs.push_back(wide);
    ex::legalize_integer_ops(g);
    if (format == ex::FileFormat::kTflite) {
      EXPECT_EQ(op_types(g),
                (std::vector<std::string>{"SLICE", "PAD", "CAST", "FLOOR_DIV", "CAST", "RESHAPE", "TILE"}));
      continue;
    }
    EXPECT_EQ(op_types(g), (std::vector<std::string>{"CAST", "GATHER", "CAST", "CONCATENATION", "CAST", "FLOOR_DIV",
                                                     "CAST", "RESHAPE", "CAST", "BROADCAST_TO", "CAST"}));
    Op* gather = only_op(g, "GATHER");
    EXPECT_TRUE(at::equal(gather->inputs[1]->data, at::arange(1, 4, at::kInt)));
    EXPECT_EQ(gather->i("axis"), 1);
    Op* concat = only_op(g, "CONCATENATION");
    ASSERT_EQ(concat->inputs.size(), 2u);
    EXPECT_TRUE(at::equal(concat->inputs[0]->data, at::zeros({2, 1}, at::kLong)));
    EXPECT_EQ(only_op(g, "FLOOR_DIV")->inputs[1]->dtype, DType::kInt32);
    EXPECT_EQ(only_op(g, "BROADCAST_TO")->ints("shape"), (std::vector<int64_t>{2, 4, 3}));
    ex::validate(g);
  }
}

namespace {
// A [1, 2, 3, 4] graph input x and its NHWC transpose, as legalize_layout leaves them.
std::pair<Tensor*, Tensor*> input_and_nhwc(Graph& g) {
  Tensor* x = graph_input(g, "x", {1, 2, 3, 4});
  Tensor* t = g.add_tensor("t", {1, 3, 4, 2}, DType::kFloat32);
  g.add_op("TRANSPOSE", {x}, {t})->attrs["perm"] = ex::kNchwToNhwc;
  return {x, t};
}
}  // namespace

TEST(SinkTransposes, InverseTransposesAroundAnElementwiseOpCancel) {
  // x → TRANSPOSE(NCHW→NHWC) → ABS → TRANSPOSE(back) → NEG: ABS runs on x directly.
  Graph g;
  auto [x, t] = input_and_nhwc(g);
  Tensor* a = g.add_tensor("a", {1, 3, 4, 2}, DType::kFloat32);
  Op* abs = g.add_op("ABS", {t}, {a});
  Tensor* back = g.add_tensor("back", {1, 2, 3, 4}, DType::kFloat32);
  g.add_op("TRANSPOSE", {a}, {back})->attrs["perm"] = ex::kNhwcToNchw;
  Tensor* y = g.add_tensor("y", {1, 2, 3, 4}, DType::kFloat32);
  Op* neg = g.add_op("NEG", {back}, {y});
  g.outputs.push_back(y);
  ex::sink_transposes(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"ABS", "NEG"}));
  EXPECT_EQ(abs->inputs[0], x);
  EXPECT_EQ(neg->inputs[0], abs->outputs[0]);
  EXPECT_EQ(abs->outputs[0]->shape, (std::vector<int64_t>{1, 2, 3, 4}));
  ex::validate(g);
}

TEST(SinkTransposes, ATransposeStaysInFrontOfAnOpThatReadsAxesInItsOwnFrame) {
  // SOFTMAX (kFixedFrame) works on the last axis: moving the transpose would change the result.
  Graph g;
  Tensor* t = input_and_nhwc(g).second;
  Tensor* y = g.add_tensor("y", {1, 3, 4, 2}, DType::kFloat32);
  g.add_op("SOFTMAX", {t}, {y})->attrs["beta"] = 1.0;
  g.outputs.push_back(y);
  ex::sink_transposes(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"TRANSPOSE", "SOFTMAX"}));
}

// --- legalize_fully_connected, fold_constants, fold_constant_dequantize, remove_dead_code ------------

TEST(LegalizeFullyConnected, Rank3InputIsFlattenedAndReshapedBack) {
  Graph g;
  Tensor* x = graph_input(g, "x", {2, 5, 4});
  Tensor* y = g.add_tensor("y", {2, 5, 3}, DType::kFloat32);
  Op* fc = g.add_op("FULLY_CONNECTED", {x, g.add_constant("w", at::randn({3, 4}))}, {y});
  fc->attrs["keep_num_dims"] = int64_t{1};
  g.outputs.push_back(y);
  ex::legalize_fully_connected(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"RESHAPE", "FULLY_CONNECTED", "RESHAPE"}));
  EXPECT_EQ(fc->inputs[0]->shape, (std::vector<int64_t>{10, 4}));
  EXPECT_EQ(fc->i("keep_num_dims"), 0);
  EXPECT_EQ(y->producer->ints("shape"), (std::vector<int64_t>{2, 5, 3}));
}

TEST(LegalizeFullyConnected, Uint8PerChannelWeightsBecomeAOneByOneConv) {
  Graph g;
  Tensor* x = quantized_tensor(g, "x", {2, 4}, DType::kUInt8, per_tensor(0.5f, 128));
  g.inputs.push_back(x);
  Tensor* w = g.add_constant("w", at::full({3, 4}, 130, at::kByte));
  w->dtype = DType::kUInt8;
  QuantParams wq;
  wq.scale = {0.1f, 0.2f, 0.3f};
  wq.zero_point = {128, 128, 128};
  w->quant = wq;
  Tensor* y = quantized_tensor(g, "y", {2, 3}, DType::kUInt8, per_tensor(0.25f, 128));
  g.add_op("FULLY_CONNECTED", {x, w}, {y})->attrs["fused_activation"] = std::string("RELU");
  g.outputs.push_back(y);
  ex::legalize_fully_connected(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"RESHAPE", "RESHAPE", "CONV_2D", "RESHAPE"}));
  Op* conv = only_op(g, "CONV_2D");
  EXPECT_EQ(conv->inputs[1]->shape, (std::vector<int64_t>{3, 1, 1, 4}));
  EXPECT_EQ(conv->s("fused_activation"), "RELU");
  EXPECT_EQ(conv->inputs[1]->quant->scale, wq.scale);
}

TEST(FoldConstants, ArithmeticOnConstantsBecomesAConstant) {
  Graph g;
  Tensor* x = graph_input(g, "x", {2});
  Tensor* s = g.add_tensor("s", {2}, DType::kFloat32);
  g.add_op("ADD", {g.add_constant("a", at::tensor({1.0f, 2.0f})), g.add_constant("b", at::tensor({0.5f, 0.5f}))}, {s});
  Tensor* y = g.add_tensor("y", {2}, DType::kFloat32);
  Op* mul = g.add_op("MUL", {x, s}, {y});
  g.outputs.push_back(y);
  ex::fold_constants(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"MUL"}));
  ASSERT_TRUE(mul->inputs[1]->is_constant());
  EXPECT_TRUE(at::equal(mul->inputs[1]->data, at::tensor({1.5f, 2.5f})));
}

TEST(FoldConstantDequantize, AWeightLeftInFloatIsDequantizedAtExportTime) {
  Graph g;
  Tensor* x = graph_input(g, "x", {2});
  Tensor* q = g.add_constant("q", at::tensor({10, 14}, at::kByte));
  q->dtype = DType::kUInt8;
  q->quant = per_tensor(0.5f, 10);
  Tensor* dq = g.add_tensor("dq", {2}, DType::kFloat32);
  g.add_op("DEQUANTIZE", {q}, {dq});
  Tensor* y = g.add_tensor("y", {2}, DType::kFloat32);
  Op* add = g.add_op("ADD", {x, dq}, {y});
  g.outputs.push_back(y);
  ex::fold_constant_dequantize(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"ADD"}));
  EXPECT_TRUE(at::equal(add->inputs[1]->data, at::tensor({0.0f, 2.0f})));
}

TEST(RemoveDeadCode, OpsNobodyReadsGoAndGraphOutputsStay) {
  Graph g;
  Tensor* x = graph_input(g, "x", {2});
  Tensor* unused = g.add_tensor("unused", {2}, DType::kFloat32);
  g.add_op("NEG", {x}, {unused});
  Tensor* y = g.add_tensor("y", {2}, DType::kFloat32);
  g.add_op("ABS", {x}, {y});
  g.outputs.push_back(y);
  ex::remove_dead_code(g);
  EXPECT_EQ(op_types(g), (std::vector<std::string>{"ABS"}));
}
