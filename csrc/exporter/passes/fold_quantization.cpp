// A PT2E-converted graph computes in float between DEQUANTIZE and QUANTIZE nodes:
//     q_in → DEQUANTIZE → op → QUANTIZE → q_out
// When every float input of `op` is dequantized (or a constant) and its output is only
// quantized, Circle runs `op` on the integers directly: this pass rewires it to read q_in and
// write q_out, which carries the quantization parameters. Integer weights behind a DEQUANTIZE
// become quantized constants (per-channel parameters and quantized_dimension included); float
// constants an integer op reads are quantized here, but never a conv / fully connected layer's
// float weights: those mark a layer the quantizer left in float. Ops Circle runtimes have no
// integer kernel for stay in float, with their DEQUANTIZE / QUANTIZE edges.
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

namespace torch_circle::exporter {
namespace {

bool has_bias_slot(const Op& op) {
  return op.type == "torch.conv2d" || op.type == "torch.conv_transpose2d" || op.type == "FULLY_CONNECTED";
}
bool is_weight_slot(const Op& op, size_t slot) { return has_bias_slot(op) && slot == 1; }

bool is_float(const Tensor* t) { return t && (t->dtype == DType::kFloat32 || t->dtype == DType::kFloat16); }

Op* dequantize_producer(const Tensor* t) {
  Op* p = t->producer;
  return p && p->type == "DEQUANTIZE" ? p : nullptr;
}

}  // namespace

void fold_quantization(Graph& graph) {
  for (Op* op : graph.live_ops()) {
    if (op->dead || !runs_quantized(graph, op->type)) continue;

    // Outputs: each read only by one QUANTIZE.
    std::vector<Op*> quantizes;
    for (Tensor* out : op->outputs) {
      Op* q = sole_user(graph, out);
      if (!q || q->type != "QUANTIZE" || !is_float(out)) break;
      quantizes.push_back(q);
    }
    if (quantizes.size() != op->outputs.size()) continue;
    DType qtype = quantizes[0]->outputs[0]->dtype;
    bool same_type = true;
    for (Op* q : quantizes) same_type &= q->outputs[0]->dtype == qtype && !q->outputs[0]->quant->per_channel();
    if (!same_type) continue;

    // Inputs: dequantized, constant, or not float at all (indices, masks).
    bool ok = true, any_dequantized = false;
    for (size_t slot = 0; slot < op->inputs.size() && ok; ++slot) {
      const Tensor* in = op->inputs[slot];
      if (!is_float(in) || (has_bias_slot(*op) && slot == 2)) continue;
      if (Op* dq = dequantize_producer(in)) {
        const Tensor* q = dq->inputs[0];
        bool weight = is_weight_slot(*op, slot);
        ok = weight ? q->is_constant() || q->dtype == qtype : (q->dtype == qtype && !q->quant->per_channel());
        any_dequantized |= !weight;
      } else {
        // A float weight means the quantizer left this layer in float (e.g. set_module_name(...,
        // None)): it stays a float op between DEQUANTIZE and QUANTIZE. Other float constants
        // (a scalar operand, clamp bounds) are quantized below.
        ok = in->is_constant() && !is_weight_slot(*op, slot);
      }
    }
    if (!ok || !any_dequantized) continue;

    // Rewire inputs. The bias is handled by quantize_bias; if PT2E quantized it (int32 behind a
    // DEQUANTIZE), those integers are taken as they are.
    for (size_t slot = 0; slot < op->inputs.size(); ++slot) {
      Tensor* in = op->inputs[slot];
      if (!is_float(in)) continue;
      bool bias = has_bias_slot(*op) && slot == 2;
      if (Op* dq = dequantize_producer(in)) {
        graph.set_input(op, slot, dq->inputs[0]);
      } else if (in->is_constant() && !bias) {
        QuantParams quant = choose_constant_quant(in->data, qtype);
        Tensor* qc = graph.add_constant(in->name + "_quantized", quantize_constant(in->data, quant, qtype));
        qc->quant = quant;
        graph.set_input(op, slot, qc);
      }
    }

    // Rewire outputs: the op now produces what its QUANTIZE produced.
    for (size_t k = 0; k < op->outputs.size(); ++k) {
      Op* q = quantizes[k];
      Tensor* float_out = op->outputs[k];
      Tensor* q_out = q->outputs[0];
      graph.remove_op(q);
      op->outputs[k] = q_out;
      q_out->producer = op;
      float_out->producer = nullptr;
    }
  }
  remove_dead_code(graph);
}

}  // namespace torch_circle::exporter
