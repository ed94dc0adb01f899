// The Circle exporter without Python: FX graphs built by hand go through the importer, the passes
// and the writer, and the bytes are read back with the hostile-file reader.
#include "exporter/exporter.h"
#include "exporter/import/fx_importer.h"
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"
#include "exporter/reader/circle_reader.h"

#include <circle_schema_generated.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>

namespace ex = torch_circle::exporter;
namespace rd = torch_circle::reader;
using ex::FxArg;

namespace {

// Builds an FxGraph node by node, the way the Python side copies torch.fx graphs.
struct FxBuilder {
  ex::FxGraph graph;

  int add(ex::FxNode node) {
    graph.nodes.push_back(std::move(node));
    return static_cast<int>(graph.nodes.size() - 1);
  }
  int placeholder(const std::string& name, std::vector<int64_t> shape) {
    ex::FxNode n;
    n.name = name;
    n.op = "placeholder";
    n.target = name;
    n.meta = {{std::move(shape), at::kFloat}};
    return add(std::move(n));
  }
  int constant(const std::string& name, const at::Tensor& value) {
    ex::FxNode n;
    n.name = name;
    n.op = "get_attr";
    n.target = name;
    n.constant = value;
    return add(std::move(n));
  }
  // A call whose output has `shape` / `dtype` (what node.meta["val"] says); no meta for q / dq.
  int call(const std::string& target, std::vector<FxArg> args, std::vector<int64_t> shape,
           at::ScalarType dtype = at::kFloat, bool with_meta = true) {
    ex::FxNode n;
    n.name = "n" + std::to_string(graph.nodes.size());
    n.op = "call_function";
    n.target = target;
    n.args = std::move(args);
    if (with_meta) n.meta = {{std::move(shape), dtype}};
    return add(std::move(n));
  }
  void output(std::vector<int> results) {
    ex::FxNode n;
    n.name = "output";
    n.op = "output";
    n.target = "output";
    std::vector<FxArg> items;
    for (int r : results) items.push_back(FxArg::of_node(r));
    n.args = {FxArg::of_list(items)};
    add(std::move(n));
  }
};

FxArg node(int i) { return FxArg::of_node(i); }
FxArg ints(std::vector<int64_t> v) {
  std::vector<FxArg> items;
  for (int64_t x : v) items.push_back(FxArg::of_int(x));
  return FxArg::of_list(items);
}
FxArg num(double v) { return FxArg::of_float(v); }
FxArg i64(int64_t v) { return FxArg::of_int(v); }

rd::ModelInfo export_and_read(const ex::FxGraph& fx, ex::ExportOptions options = {}) {
  std::string bytes = ex::export_fx_graph(fx, options);
  return rd::read_model(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "test.circle");
}

std::vector<std::string> op_names(const rd::ModelInfo& info) {
  std::vector<std::string> names;
  for (const auto& op : info.subgraphs.at(0).operators) names.push_back(op.op);
  return names;
}

const rd::TensorInfo& tensor(const rd::ModelInfo& info, int32_t index) {
  return info.subgraphs.at(0).tensors.at(index);
}

// x → conv2d(3x3, pad 1) → relu, NCHW.
ex::FxGraph conv_relu_graph(int64_t stride, int64_t groups, int64_t channels = 4) {
  FxBuilder b;
  int x = b.placeholder("x", {1, channels, 8, 8});
  int64_t out_ch = groups == 1 ? 6 : channels;
  int w = b.constant("w", at::randn({out_ch, channels / groups, 3, 3}));
  int bias = b.constant("b", at::randn({out_ch}));
  int64_t out_hw = (8 + 2 - 3) / stride + 1;
  int conv = b.call("aten.conv2d.default",
                    {node(x), node(w), node(bias), ints({stride, stride}), ints({1, 1}), ints({1, 1}), i64(groups)},
                    {1, out_ch, out_hw, out_hw});
  int relu = b.call("aten.relu.default", {node(conv)}, {1, out_ch, out_hw, out_hw});
  b.output({relu});
  return b.graph;
}

}  // namespace

TEST(Exporter, FloatConvBecomesNhwcConvWithFusedReluBetweenTransposes) {
  rd::ModelInfo info = export_and_read(conv_relu_graph(1, 1));
  EXPECT_EQ(info.identifier, "CIR0");
  EXPECT_EQ(info.version, 0u);
  EXPECT_EQ(op_names(info), (std::vector<std::string>{"TRANSPOSE", "CONV_2D", "TRANSPOSE"}));
  const auto& conv = info.subgraphs[0].operators[1];
  EXPECT_EQ(conv.options, "Conv2DOptions");
  EXPECT_EQ(tensor(info, conv.inputs[1]).shape, (std::vector<int32_t>{6, 3, 3, 4}));   // OHWI
  EXPECT_EQ(tensor(info, conv.outputs[0]).shape, (std::vector<int32_t>{1, 8, 8, 6}));  // NHWC
  // The model keeps PyTorch's layout at its edges.
  EXPECT_EQ(tensor(info, info.subgraphs[0].inputs[0]).shape, (std::vector<int32_t>{1, 4, 8, 8}));
  EXPECT_EQ(tensor(info, info.subgraphs[0].outputs[0]).shape, (std::vector<int32_t>{1, 6, 8, 8}));
}

TEST(Exporter, StridedConvWhosePaddingIsNotSameGetsAnExplicitPad) {
  // PyTorch pads 1 on both sides; SAME with stride 2 on 8 pixels pads 0 before and 1 after.
  // (The input transpose sinks below the PAD, which then pads the NCHW input.)
  std::string bytes = ex::export_fx_graph(conv_relu_graph(2, 1));
  rd::ModelInfo info = rd::read_model(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "test.circle");
  EXPECT_EQ(op_names(info), (std::vector<std::string>{"PAD", "TRANSPOSE", "CONV_2D", "TRANSPOSE"}));
  // The PAD's amounts (NCHW: [[0, 0], [0, 0], [1, 1], [1, 1]]) and a VALID convolution after it:
  // 8 + 1 + 1 pixels, 3x3 kernel, stride 2 → PyTorch's 4x4 output.
  const circle::Model* model = circle::GetModel(bytes.data());
  const circle::SubGraph* sub = model->subgraphs()->Get(0);
  const circle::Tensor* paddings = sub->tensors()->Get(sub->operators()->Get(0)->inputs()->Get(1));
  EXPECT_EQ(std::vector<int32_t>(paddings->shape()->begin(), paddings->shape()->end()), (std::vector<int32_t>{4, 2}));
  const flatbuffers::Vector<uint8_t>* data = model->buffers()->Get(paddings->buffer())->data();
  ASSERT_NE(data, nullptr);
  ASSERT_EQ(data->size(), 8 * sizeof(int32_t));
  std::vector<int32_t> amounts(8);
  std::memcpy(amounts.data(), data->data(), data->size());
  EXPECT_EQ(amounts, (std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1, 1}));
  EXPECT_EQ(tensor(info, info.subgraphs[0].operators[0].outputs[0]).shape, (std::vector<int32_t>{1, 4, 10, 10}));
  const circle::Conv2DOptions* conv = sub->operators()->Get(2)->builtin_options_as_Conv2DOptions();
  ASSERT_NE(conv, nullptr);
  EXPECT_EQ(conv->padding(), circle::Padding_VALID);
  EXPECT_EQ(conv->stride_h(), 2);
  EXPECT_EQ(tensor(info, info.subgraphs[0].operators[2].outputs[0]).shape, (std::vector<int32_t>{1, 4, 4, 6}));
}

TEST(Exporter, DepthwiseConvUsesOneHwoWeights) {
  rd::ModelInfo info = export_and_read(conv_relu_graph(1, 4));
  ASSERT_EQ(op_names(info)[1], "DEPTHWISE_CONV_2D");
  EXPECT_EQ(tensor(info, info.subgraphs[0].operators[1].inputs[1]).shape, (std::vector<int32_t>{1, 3, 3, 4}));
}

TEST(Exporter, QuantizedConvFoldsQdqIntoIntegerTensors) {
  FxBuilder b;
  int x = b.placeholder("x", {1, 4, 8, 8});
  const std::string q = "quantized_decomposed.quantize_per_tensor.default";
  const std::string dq = "quantized_decomposed.dequantize_per_tensor.default";
  FxArg u8 = FxArg::of_dtype(at::kByte);
  int qx = b.call(q, {node(x), num(0.05), i64(128), i64(0), i64(255), u8}, {}, at::kByte, false);
  int dqx = b.call(dq, {node(qx), num(0.05), i64(128), i64(0), i64(255), u8}, {}, at::kFloat, false);
  at::Tensor w_scales = at::tensor({0.01f, 0.02f, 0.03f, 0.04f, 0.05f, 0.06f});
  int wq = b.constant("w_q", at::randint(-127, 128, {6, 4, 3, 3}).to(at::kChar));
  int ws = b.constant("w_scales", w_scales);
  int wz = b.constant("w_zero_points", at::zeros({6}, at::kLong));
  int w = b.call("quantized_decomposed.dequantize_per_channel.default",
                 {node(wq), node(ws), node(wz), i64(0), i64(-127), i64(127), FxArg::of_dtype(at::kChar)}, {},
                 at::kFloat, false);
  int bias = b.constant("b", at::randn({6}));
  int conv = b.call("aten.conv2d.default", {node(dqx), node(w), node(bias), ints({1, 1}), ints({1, 1})}, {1, 6, 8, 8});
  int qy = b.call(q, {node(conv), num(0.1), i64(120), i64(0), i64(255), u8}, {}, at::kByte, false);
  int dqy = b.call(dq, {node(qy), num(0.1), i64(120), i64(0), i64(255), u8}, {}, at::kFloat, false);
  b.output({dqy});

  rd::ModelInfo info = export_and_read(b.graph);
  // The output transpose stays on the uint8 side of the model's last DEQUANTIZE.
  EXPECT_EQ(op_names(info), (std::vector<std::string>{"QUANTIZE", "TRANSPOSE", "CONV_2D", "TRANSPOSE", "DEQUANTIZE"}));
  const auto& conv_op = info.subgraphs[0].operators[2];
  const auto& in = tensor(info, conv_op.inputs[0]);
  const auto& weight = tensor(info, conv_op.inputs[1]);
  const auto& b32 = tensor(info, conv_op.inputs[2]);
  const auto& out = tensor(info, conv_op.outputs[0]);
  EXPECT_EQ(in.dtype, "UINT8");
  EXPECT_EQ(in.zero_point, (std::vector<int64_t>{128}));
  // int8 weights under uint8 activations are stored as uint8 + 128 (legalize_weight_signedness).
  EXPECT_EQ(weight.dtype, "UINT8");
  EXPECT_EQ(weight.zero_point, std::vector<int64_t>(6, 128));
  EXPECT_EQ(weight.shape, (std::vector<int32_t>{6, 3, 3, 4}));
  EXPECT_EQ(weight.quantized_dimension, 0);
  ASSERT_EQ(weight.scale.size(), 6u);
  EXPECT_FLOAT_EQ(weight.scale[5], 0.06f);
  EXPECT_EQ(b32.dtype, "INT32");  // bias at s_in * s_w[c], zero point 0
  ASSERT_EQ(b32.scale.size(), 6u);
  EXPECT_FLOAT_EQ(b32.scale[2], 0.05f * 0.03f);
  EXPECT_EQ(out.dtype, "UINT8");
  EXPECT_FLOAT_EQ(out.scale[0], 0.1f);
  EXPECT_EQ(out.zero_point[0], 120);
}

TEST(Exporter, ReportsEveryUnsupportedNodeAtOnce) {
  FxBuilder b;
  int x = b.placeholder("x", {2, 3});
  int a = b.call("aten.frobnicate.default", {node(x)}, {2, 3});
  int c = b.call("aten.relu.default", {node(a)}, {2, 3});
  int d = b.call("aten.unknown_op.default", {node(x)}, {2, 3});
  int e = b.call("aten.downstream_unknown.default", {node(c)}, {2, 3});  // behind a failed node
  b.output({e, d});
  try {
    ex::export_fx_graph(b.graph);
    FAIL() << "expected an ExportError";
  } catch (const ex::ExportError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("3 node(s)"), std::string::npos) << message;
    EXPECT_NE(message.find("aten.downstream_unknown.default"), std::string::npos) << message;
    EXPECT_NE(message.find("aten.frobnicate.default"), std::string::npos) << message;
    EXPECT_NE(message.find("aten.unknown_op.default"), std::string::npos) << message;
    EXPECT_EQ(message.find("aten.relu"), std::string::npos) << "a node fed by an unsupported one is not blamed";
  }
}

TEST(Exporter, NodesWithoutModelInputsAreEvaluatedToConstants) {
  FxBuilder b;
  int x = b.placeholder("x", {4, 4});
  int full = b.call("aten.full.default", {ints({4, 4}), num(-2.0)}, {4, 4});
  int triu = b.call("aten.triu.default", {node(full), i64(1)}, {4, 4});
  int add = b.call("aten.add.Tensor", {node(x), node(triu)}, {4, 4});
  b.output({add});
  rd::ModelInfo info = export_and_read(b.graph);
  EXPECT_EQ(op_names(info), (std::vector<std::string>{"ADD"}));
  EXPECT_EQ(tensor(info, info.subgraphs[0].operators[0].inputs[1]).data_bytes, 64u);
}

TEST(Exporter, DynamicBatchIsWrittenAsShapeSignature) {
  FxBuilder b;
  int x = b.placeholder("x", {-1, 8});
  int w = b.constant("w", at::randn({3, 8}));
  int fc = b.call("aten.linear.default", {node(x), node(w)}, {-1, 3});
  b.output({fc});
  rd::ModelInfo info = export_and_read(b.graph);
  const auto& in = tensor(info, info.subgraphs[0].inputs[0]);
  EXPECT_EQ(in.shape, (std::vector<int32_t>{1, 8}));
  EXPECT_EQ(in.shape_signature, (std::vector<int32_t>{-1, 8}));
}

TEST(Exporter, ExtendedBufferLayoutPutsDataAfterTheFlatbuffer) {
  ex::ExportOptions options;
  options.write.extended_buffer_threshold = 16;  // as if the weights were past 2 GB
  std::string bytes = ex::export_fx_graph(conv_relu_graph(1, 1), options);
  rd::ModelInfo info = rd::read_model(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "big.circle");
  EXPECT_TRUE(info.extended_buffers);
  const auto& weight = tensor(info, info.subgraphs[0].operators[1].inputs[1]);
  EXPECT_EQ(weight.data_bytes, 6u * 3 * 3 * 4 * sizeof(float));
  // The same graph written normally carries the same constants inline.
  rd::ModelInfo inline_info = export_and_read(conv_relu_graph(1, 1));
  EXPECT_FALSE(inline_info.extended_buffers);
}

TEST(Exporter, TfliteFormatWritesTheTfliteIdentifierAndVersion) {
  ex::ExportOptions options;
  options.write.format = ex::FileFormat::kTflite;
  rd::ModelInfo info = export_and_read(conv_relu_graph(1, 1), options);
  EXPECT_EQ(info.identifier, "TFL3");
  EXPECT_EQ(info.version, 3u);
}

// --- passes on hand-built IR ----------------------------------------------------------------

TEST(Passes, InverseTransposesAroundElementwiseOpsCancel) {
  ex::Graph g;
  ex::Tensor* x = g.add_tensor("x", {1, 4, 5, 6}, ex::DType::kFloat32);
  g.inputs = {x};
  ex::Tensor* t1 = g.add_tensor("t1", {1, 5, 6, 4}, ex::DType::kFloat32);
  g.add_op("TRANSPOSE", {x}, {t1})->attrs["perm"] = ex::kNchwToNhwc;
  ex::Tensor* r = g.add_tensor("r", {1, 5, 6, 4}, ex::DType::kFloat32);
  g.add_op("RELU", {t1}, {r});
  ex::Tensor* t2 = g.add_tensor("t2", {1, 4, 5, 6}, ex::DType::kFloat32);
  g.add_op("TRANSPOSE", {r}, {t2})->attrs["perm"] = ex::kNhwcToNchw;
  ex::Tensor* y = g.add_tensor("y", {1, 4, 5, 6}, ex::DType::kFloat32);
  g.add_op("LOGISTIC", {t2}, {y});
  g.outputs = {y};
  ex::sink_transposes(g);
  ex::validate(g);
  std::vector<std::string> types;
  for (ex::Op* op : g.live_ops()) types.push_back(op->type);
  EXPECT_EQ(types, (std::vector<std::string>{"RELU", "LOGISTIC"}));
  EXPECT_EQ(g.live_ops()[0]->inputs[0], x);
}

TEST(Passes, TransposeOfConstantFoldsAndRemapsPerChannelAxis) {
  ex::Graph g;
  ex::Tensor* w = g.add_constant("w", at::arange(24, at::kFloat).reshape({2, 3, 4}).to(at::kChar));
  w->quant = ex::QuantParams{{0.5f, 0.25f}, {0, 0}, 0};
  at::Tensor original = w->data;  // `w` itself is dropped once folded
  ex::Tensor* t = ex::insert_transpose(g, nullptr, w, {2, 0, 1}, "_t");
  ex::Tensor* y = g.add_tensor("y", t->shape, ex::DType::kInt8);
  g.add_op("NEG", {t}, {y});
  g.outputs = {y};
  ex::fold_constants(g);
  ex::Tensor* folded = g.live_ops()[0]->inputs[0];
  ASSERT_TRUE(folded->is_constant());
  EXPECT_EQ(folded->shape, (std::vector<int64_t>{4, 2, 3}));
  EXPECT_EQ(folded->quant->axis, 1);  // the channel axis moved from 0 to 1
  EXPECT_TRUE(at::equal(folded->data, original.permute({2, 0, 1})));
}

// --- the reader on hostile input ------------------------------------------------------------

TEST(Reader, RejectsTruncatedFlippedAndGarbageFilesWithoutCrashing) {
  std::string good = ex::export_fx_graph(conv_relu_graph(1, 1));
  auto read = [](const std::string& bytes) {
    return rd::read_model(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "bad.circle");
  };
  EXPECT_NO_THROW(read(good));
  size_t rejected = 0;
  for (size_t length = 0; length < good.size(); length += 7) {
    try {
      read(good.substr(0, length));
    } catch (const rd::ReadError&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0u);
  std::mt19937 rng(1);
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bad = good;
    for (int flips = 0; flips < 4; ++flips) bad[rng() % bad.size()] ^= static_cast<char>(1u << (rng() % 8));
    try {
      read(bad);  // either fine (a flip in weight data) or a ReadError; never a crash
    } catch (const rd::ReadError&) {
    }
  }
  EXPECT_THROW(read(std::string(64, 'x')), rd::ReadError);
  EXPECT_THROW(read(""), rd::ReadError);
}

TEST(Reader, RejectsOperatorsThatReadTensorsNothingWroteYet) {
  std::string bytes = ex::export_fx_graph(conv_relu_graph(1, 1));
  auto read = [&] { rd::read_model(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "loop.circle"); };
  ASSERT_NO_THROW(read());
  // Well formed to the flatbuffers verifier, every index in range: the first operator now reads
  // the last one's output, which runtimes would read uninitialized (or crash on).
  auto* operators =
      circle::GetMutableModel(bytes.data())->mutable_subgraphs()->GetMutableObject(0)->mutable_operators();
  ASSERT_GE(operators->size(), 2u);
  int32_t last_output = operators->Get(operators->size() - 1)->outputs()->Get(0);
  operators->GetMutableObject(0)->mutable_inputs()->Mutate(0, last_output);
  try {
    read();
    FAIL() << "accepted an operator reading a tensor written after it";
  } catch (const rd::ReadError& e) {
    EXPECT_NE(std::string(e.what()).find("operator 0"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no earlier operator writes"), std::string::npos) << e.what();
  }
}

TEST(Reader, ErrorsNameTheFileAndTheBrokenElement) {
  std::string bytes = ex::export_fx_graph(conv_relu_graph(1, 1));
  bytes[4] = 'X';
  try {
    rd::read_model(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "model.circle");
    FAIL();
  } catch (const rd::ReadError& e) {
    EXPECT_NE(std::string(e.what()).find("model.circle"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("identifier"), std::string::npos);
  }
}

// --- importers for ops written out in other ops ------------------------------------------------

namespace {
ex::ExportOptions tflite_options() {
  ex::ExportOptions options;
  options.write.format = ex::FileFormat::kTflite;
  return options;
}
}  // namespace

TEST(Importers, HardsigmoidIsRelu6OfXPlusThreeDividedBySix) {
  FxBuilder b;
  int x = b.placeholder("x", {2, 3});
  b.output({b.call("aten.hardsigmoid.default", {node(x)}, {2, 3})});
  rd::ModelInfo info = export_and_read(b.graph);
  EXPECT_EQ(op_names(info), (std::vector<std::string>{"ADD", "DIV"}));  // the RELU6 fuses into the ADD
  EXPECT_EQ(info.subgraphs[0].operators[0].options, "AddOptions");
}

TEST(Importers, ReductionsWithoutDimsReduceEveryDim) {
  FxBuilder b;
  int x = b.placeholder("x", {2, 3, 4});
  int sum = b.call("aten.sum.default", {node(x)}, {});
  int max = b.call("aten.max.default", {node(x)}, {});
  b.output({sum, max});
  rd::ModelInfo info = export_and_read(b.graph);
  EXPECT_EQ(op_names(info), (std::vector<std::string>{"SUM", "RESHAPE", "REDUCE_MAX", "RESHAPE"}));
  const auto& axes = tensor(info, info.subgraphs[0].operators[0].inputs[1]);
  EXPECT_EQ(axes.shape, (std::vector<int32_t>{3}));
  EXPECT_TRUE(tensor(info, info.subgraphs[0].outputs[0]).shape.empty());
}

TEST(Importers, GatherReadsTheFlattenedInputAtComputedPositions) {
  FxBuilder b;
  int x = b.placeholder("x", {2, 5, 8});
  ex::FxNode index;
  index.name = "index";
  index.op = "placeholder";
  index.target = "index";
  index.meta = {{{2, 3, 8}, at::kLong}};
  int i = b.add(std::move(index));
  b.output({b.call("aten.gather.default", {node(x), i64(1), node(i)}, {2, 3, 8})});
  rd::ModelInfo info = export_and_read(b.graph);
  // int64 index → int32, times the stride of dim 1 (8), plus each element's offset elsewhere.
  EXPECT_EQ(op_names(info), (std::vector<std::string>{"RESHAPE", "CAST", "MUL", "ADD", "GATHER"}));
  EXPECT_EQ(tensor(info, info.subgraphs[0].outputs[0]).shape, (std::vector<int32_t>{2, 3, 8}));
}

TEST(Importers, ReflectPaddingIsOneGatherPerPaddedDim) {
  FxBuilder b;
  int x = b.placeholder("x", {1, 2, 4, 4});
  FxArg mode = FxArg::of_string("reflect");
  b.output({b.call("aten.pad.default", {node(x), ints({1, 1, 2, 0}), mode}, {1, 2, 6, 6})});
  rd::ModelInfo info = export_and_read(b.graph);
  ASSERT_EQ(op_names(info), (std::vector<std::string>{"GATHER", "GATHER"}));
  // Height padded 2 before: one source row per output row.
  const auto& rows = tensor(info, info.subgraphs[0].operators[0].inputs[1]);
  EXPECT_EQ(rows.shape, (std::vector<int32_t>{6}));
}

TEST(Importers, ChunkSplitsIntoPiecesOfCeilSize) {
  FxBuilder b;
  int x = b.placeholder("x", {2, 5});
  ex::FxNode chunk;
  chunk.name = "chunk";
  chunk.op = "call_function";
  chunk.target = "aten.chunk.default";
  chunk.args = {node(x), i64(2), i64(1)};
  chunk.meta = {{{2, 3}, at::kFloat}, {{2, 2}, at::kFloat}};
  int c = b.add(std::move(chunk));
  int first = b.call("getitem", {node(c), i64(0)}, {2, 3});
  int second = b.call("getitem", {node(c), i64(1)}, {2, 2});
  b.output({first, second});
  rd::ModelInfo info = export_and_read(b.graph);
  EXPECT_EQ(op_names(info), (std::vector<std::string>{"SLICE", "SLICE"}));
  EXPECT_EQ(tensor(info, info.subgraphs[0].outputs[1]).shape, (std::vector<int32_t>{2, 2}));
}

TEST(Importers, CeilModeMaxPoolPadsTheWindowsPastTheEdge) {
  FxBuilder b;
  int x = b.placeholder("x", {1, 2, 8, 8});
  // 3x3 windows, stride 2, padding 1 over 8 pixels: 4 windows fit, ceil_mode adds a 5th, which
  // needs one more row / column of padding at the end (2 there, 1 before: not SAME).
  b.output(
      {b.call("aten.max_pool2d.default",
              {node(x), ints({3, 3}), ints({2, 2}), ints({1, 1}), ints({1, 1}), FxArg::of_bool(true)}, {1, 2, 5, 5})});
  rd::ModelInfo info = export_and_read(b.graph);
  std::vector<std::string> ops = op_names(info);
  EXPECT_NE(std::find(ops.begin(), ops.end(), "PADV2"), ops.end());
  EXPECT_NE(std::find(ops.begin(), ops.end(), "MAX_POOL_2D"), ops.end());
  EXPECT_EQ(tensor(info, info.subgraphs[0].outputs[0]).shape, (std::vector<int32_t>{1, 2, 5, 5}));
}

TEST(Importers, TfliteTransposedConvWithOutputPaddingCropsTheValidOutput) {
  FxBuilder b;
  int x = b.placeholder("x", {1, 4, 5, 5});
  int w = b.constant("w", at::randn({4, 3, 3, 3}));
  int bias = b.constant("b", at::randn({3}));
  // stride 2, padding 1, output_padding 1: 10x10 out of the 11x11 VALID result.
  int y = b.call("aten.conv_transpose2d.input",
                 {node(x), node(w), node(bias), ints({2, 2}), ints({1, 1}), ints({1, 1})}, {1, 3, 10, 10});
  b.output({y});
  rd::ModelInfo info = export_and_read(b.graph, tflite_options());
  std::vector<std::string> ops = op_names(info);
  EXPECT_NE(std::find(ops.begin(), ops.end(), "TRANSPOSE_CONV"), ops.end());
  EXPECT_NE(std::find(ops.begin(), ops.end(), "STRIDED_SLICE"), ops.end());
  EXPECT_EQ(tensor(info, info.subgraphs[0].outputs[0]).shape, (std::vector<int32_t>{1, 3, 10, 10}));
}
