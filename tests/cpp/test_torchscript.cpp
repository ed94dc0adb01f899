// A C++ program runs a TorchScript int8 model that calls the fused circle_quant ops, with no
// Python: what an application shipping the model does. The files come from
// make_torchscript_model.py (CMake target torchscript_models); each model's outputs are compared
// bit for bit with the same ops run in Python, and within one quantization step with the PT2E
// reference graph (dequantize → float op → quantize).
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>
#include <string>

#ifndef TORCHSCRIPT_MODEL_DIR
#error "TORCHSCRIPT_MODEL_DIR must name the directory make_torchscript_model.py writes"
#endif

namespace {

std::string model_path(const std::string& name) { return std::string(TORCHSCRIPT_MODEL_DIR) + "/" + name; }

at::Tensor buffer(torch::jit::script::Module& m, const char* name) { return m.attr(name).toTensor(); }

// Loads <name>.pt and <name>_data.pt, runs the model on the stored input, checks both references.
void check_model(const std::string& name) {
  torch::jit::script::Module model = torch::jit::load(model_path(name + ".pt"));
  torch::jit::script::Module data = torch::jit::load(model_path(name + "_data.pt"));
  model.eval();
  const at::Tensor input = buffer(data, "input");
  const at::Tensor expected = buffer(data, "expected");
  const at::Tensor reference = buffer(data, "reference");
  const double tolerance = buffer(data, "tolerance").item<double>();

  torch::NoGradGuard no_grad;
  const at::Tensor out = model.forward({input}).toTensor();
  ASSERT_EQ(out.sizes(), expected.sizes());
  ASSERT_EQ(out.scalar_type(), expected.scalar_type());
  // Bit for bit: the kernels give the same bits on every ISA and thread count.
  EXPECT_TRUE(at::equal(out, expected)) << "max difference " << (out - expected).abs().max().item<double>();
  const double error = (out - reference).abs().max().item<double>();
  EXPECT_LE(error, tolerance) << "the PT2E reference graph disagrees by " << error;

  // A second batch through the same loaded module (the plan buffers are reused, not repacked).
  const at::Tensor again = model.forward({input}).toTensor();
  EXPECT_TRUE(at::equal(again, out));
}

TEST(TorchScript, LinearModelRunsFromCpp) { check_model("mlp"); }

TEST(TorchScript, ConvModelRunsFromCpp) { check_model("cnn"); }

TEST(TorchScript, CorruptPlanIsRejectedWithAClearError) {
  torch::jit::script::Module model = torch::jit::load(model_path("mlp.pt"));
  torch::jit::script::Module data = torch::jit::load(model_path("mlp_data.pt"));
  at::Tensor params = buffer(model, "fc1_params");
  params[0] = 0;  // the magic number
  try {
    model.forward({buffer(data, "input")});
    ADD_FAILURE() << "no exception";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("circle_quant::quantized_linear"), std::string::npos) << e.what();
  }
}

}  // namespace
