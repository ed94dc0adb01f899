// CPU kernel of quantized_matmul: per matrix of the batch, `other` is packed as the GEMM's B
// (circle_quant::pack_weights_strided reads it in place, transposed views included) and qgemm
// runs every row of `input` against it, with one per-tensor output stage for the whole call.
//
// Threading: whole matrices go to threads (a task packs its B once and runs all its rows); a
// batch with fewer matrices than threads splits each matrix's rows instead. Every output element
// comes from the same instructions either way (qgemm.h), so results do not depend on the thread
// count.
#include <ATen/Parallel.h>

#include <limits>
#include <vector>

#include "../qgemm_plan.h"
#include "../quantized_matmul.h"

namespace torch_circle {
namespace {

// One B packed for qgemm, in buffers a thread reuses from call to call.
struct PackedOther {
  std::vector<int8_t> data;
  std::vector<int32_t> zero_point, column_sum;
  std::vector<int8_t> prepacked;  // the working copy of B the active ISA's kernel reads, if any
  circle_quant::PackedWeightsView view;

  void pack(const at::Tensor& other, const uint8_t* matrix, int32_t zero_point) {
    const int64_t k = other.size(-2), n = other.size(-1);
    data.resize(circle_quant::packed_weight_bytes(n, k));
    this->zero_point.resize(static_cast<size_t>(n));
    column_sum.resize(static_cast<size_t>(n));
    view.n = n;
    view.k = k;
    view.k_padded = circle_quant::packed_k(k);
    view.n_blocks = (n + static_cast<int64_t>(circle_quant::kGemmNr) - 1) / static_cast<int64_t>(circle_quant::kGemmNr);
    // B[k, n] = other[..., k, n]: output channel n steps by other's last stride.
    view.has_weight_zero_point = circle_quant::pack_weights_strided(
        matrix, other.scalar_type() == at::kByte, n, k, static_cast<size_t>(other.stride(-1)),
        static_cast<size_t>(other.stride(-2)), &zero_point, 1, data.data(), this->zero_point.data(), column_sum.data());
    view.data = data.data();
    view.zero_point = this->zero_point.data();
    view.column_sum = column_sum.data();
    const int32_t layout = circle_quant::prepacked_b_layout(circle_quant::active_isa());
    prepacked.resize(circle_quant::prepacked_b_bytes(layout, n, k));
    view.prepacked_layout = prepacked.empty() ? 0 : layout;
    view.prepacked_b = prepacked.empty() ? nullptr : prepacked.data();
    circle_quant::prepack_gemm_b(view.prepacked_layout, view.data, n, k, prepacked.data());
  }
};

// Element offsets of the matrices of t ([..., rows, cols]) in its flattened leading dimensions,
// from its own strides: strided views (Q as a slice of a wider projection, Kᵀ as a transpose,
// heads split out of [batch, seq, heads * dim]) are read in place.
std::vector<int64_t> matrix_offsets(const at::Tensor& t, int64_t batches) {
  std::vector<int64_t> offsets(static_cast<size_t>(batches), 0);
  int64_t span = 1;  // matrices per step of the current dimension
  for (int64_t d = t.dim() - 3; d >= 0; --d) {
    for (int64_t i = 0; i < batches; ++i) offsets[static_cast<size_t>(i)] += (i / span) % t.size(d) * t.stride(d);
    span *= t.size(d);
  }
  return offsets;
}

at::Tensor quantized_matmul_cpu(const at::Tensor& input, double input_scale, int64_t input_zero_point,
                                const at::Tensor& other, double other_scale, int64_t other_zero_point,
                                double output_scale, int64_t output_zero_point, at::ScalarType output_dtype,
                                c10::string_view requant) {
  const char* op = "circle_quant::quantized_matmul";
  auto out = quantized_matmul_allocate(input, input_scale, input_zero_point, other, other_scale, other_zero_point,
                                       output_scale, output_zero_point, output_dtype, requant);
  TORCH_CHECK_VALUE(input.device().is_cpu(), op, ": input must be a CPU tensor, got ", input.device());
  const int64_t m = input.size(-2), k = input.size(-1), n = other.size(-1);
  TORCH_CHECK_VALUE(k <= circle_quant::kMaxGemmK, op, ": reduction length ", k, " exceeds the int8 GEMM's limit of ",
                    circle_quant::kMaxGemmK, " (int32 accumulators could overflow)");
  if (out.numel() == 0) return out;

  const at::Tensor a = input.stride(-1) == 1 ? input : input.contiguous();  // qgemm reads dense rows
  const int64_t batches = out.numel() / (m * n);
  const bool shared_b = other.dim() == 2;
  const std::vector<int64_t> a_offsets = matrix_offsets(a, batches);
  const std::vector<int64_t> b_offsets = shared_b ? std::vector<int64_t>(1, 0) : matrix_offsets(other, batches);

  std::vector<float> multiplier(static_cast<size_t>(n));
  std::vector<int32_t> fixed_multiplier(static_cast<size_t>(n)), fixed_shift(static_cast<size_t>(n));
  const float other_scale_f = static_cast<float>(other_scale);
  circle_quant::OutputStage stage;
  core_call(op, [&] {
    circle_quant::compute_output_stage(output_type(op, output_dtype), requant_mode(op, requant), input_scale,
                                       &other_scale_f, 1, n, output_scale, static_cast<int32_t>(output_zero_point),
                                       -std::numeric_limits<double>::infinity(),
                                       std::numeric_limits<double>::infinity(), multiplier.data(),
                                       fixed_multiplier.data(), fixed_shift.data(), &stage);
    return 0;
  });

  circle_quant::GemmActivations rows;
  rows.is_signed = a.scalar_type() == at::kChar;
  rows.zero_point = static_cast<int32_t>(input_zero_point);
  rows.stride = static_cast<size_t>(a.stride(-2));
  const auto* a_bytes = static_cast<const uint8_t*>(a.const_data_ptr());
  const auto* b_bytes = static_cast<const uint8_t*>(other.const_data_ptr());
  auto* y_bytes = static_cast<uint8_t*>(out.data_ptr());
  const size_t out_element = out.element_size();
  const int32_t b_zero_point = static_cast<int32_t>(other_zero_point);

  auto run_rows = [&](const PackedOther& packed, int64_t batch, int64_t m0, int64_t m1) {
    circle_quant::GemmActivations x = rows;
    x.data = a_bytes + a_offsets[static_cast<size_t>(batch)];
    circle_quant::qgemm(x, m0, m1, packed.view, 0, n, nullptr, stage, y_bytes + batch * m * n * out_element,
                        static_cast<size_t>(n));
  };
  const int64_t matrix_macs = m * n * k;
  const int threads = at::get_num_threads();
  if (batches >= threads || at::in_parallel_region() || batches * matrix_macs < 2 * kMinTaskMacs) {
    const int64_t grain = std::max<int64_t>(1, kMinTaskMacs / std::max<int64_t>(1, matrix_macs));
    at::parallel_for(0, batches, grain, [&](int64_t first, int64_t last) {
      thread_local PackedOther packed;
      circle_quant::GemmSession session;  // AMX: one tile configuration for the task's matrices
      for (int64_t i = first; i < last; ++i) {
        if (i == first || !shared_b) packed.pack(other, b_bytes + b_offsets[shared_b ? 0 : i], b_zero_point);
        run_rows(packed, i, 0, m);
      }
    });
    return out;
  }
  // Fewer matrices than threads: pack each once here, split its rows.
  PackedOther packed;
  for (int64_t i = 0; i < batches; ++i) {
    if (i == 0 || !shared_b) packed.pack(other, b_bytes + b_offsets[shared_b ? 0 : i], b_zero_point);
    const int64_t row_tiles = (m + kRowTile - 1) / kRowTile;
    const int64_t grain = std::max<int64_t>(1, kMinTaskMacs / (kRowTile * n * std::max<int64_t>(1, k)));
    at::parallel_for(0, row_tiles, grain, [&](int64_t t0, int64_t t1) {
      circle_quant::GemmSession session;
      run_rows(packed, i, t0 * kRowTile, std::min(m, t1 * kRowTile));
    });
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(circle_quant, CPU, m)
{ m.impl("quantized_matmul", &quantized_matmul_cpu); }

}  // namespace torch_circle
