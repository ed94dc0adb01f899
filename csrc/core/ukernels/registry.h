// The kernel registry: for each kernel family, every microkernel with the ISA it needs, as plain
// data. Dispatch (dispatch.cpp, qgemm.cpp, qconv_im2col.cpp, qconv_depthwise.cpp), the kernel
// tests, the benchmarks and Python (torch_circle.ops.registered_kernels()) all read these lists:
// adding a kernel is its own file plus one row in registry.cpp (docs/contributing-kernels.md),
// and a test fails if a row is unreachable or untested.
//
// Reading an entry runs no code of its ISA: the GEMM and depthwise descriptors are constants
// defined in their files, the other entries are function addresses. Only calling a kernel
// executes its ISA's instructions; call one only where isa_supported(entry.isa) (dispatch goes
// through active_isa(), which checked it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "../isa.h"
#include "qdwconv_ukernels.h"
#include "qgemm_ukernels.h"
#include "qwinograd_ukernels.h"
#include "ukernels.h"

namespace circle_quant {
namespace ukernels {

enum class KernelFamily {
  kQuantize,      // f32-quantize-<isa>: float → Q, per tensor and per channel
  kDequantize,    // q-dequantize-<isa>: Q → float
  kFakeQuantize,  // f32-fake-quantize-<isa>
  kMinMax,        // f32-minmax-<isa>
  kHistogram,     // f32-histogram-<isa>
  kGemm,          // qu8-gemm-* / qs8-gemm-*: integer GEMM accumulate (+ its output stage and add)
  kRequantize,    // qs32-requantize-<isa>: the GEMM / conv output stage
  kResidualAdd,   // q8-vadd-<isa>: the fused residual add
  kDwConv,        // q8-dwconv-c<channels>-<isa>: depthwise conv accumulate
  kLookup,        // x8-lut-<isa>: a 256-entry byte table (lookup_table)
  kSoftmax,       // q8-softmax-<isa>: one row of quantized_softmax, up to the probabilities
  kWinograd,      // q8-winograd-f2x3-<isa>: transforms and GEMM of the Winograd 3x3 conv
  kRowSum,        // q8-rowsum-<isa>: activation row sums for weight zero points
};
constexpr KernelFamily kAllFamilies[] = {
    KernelFamily::kQuantize,  KernelFamily::kDequantize, KernelFamily::kFakeQuantize, KernelFamily::kMinMax,
    KernelFamily::kHistogram, KernelFamily::kGemm,       KernelFamily::kRequantize,   KernelFamily::kResidualAdd,
    KernelFamily::kDwConv,    KernelFamily::kLookup,     KernelFamily::kSoftmax,      KernelFamily::kWinograd,
    KernelFamily::kRowSum};
// "quantize", "dequantize", "fake_quantize", "minmax", "histogram", "gemm", "requantize",
// "residual_add", "dwconv", "lookup", "softmax", "winograd", "rowsum".
const char* family_name(KernelFamily family);

template <typename Kernel>
struct RegisteredKernel {
  const char* name;  // the kernel's file name without ".cpp": <input>-<op>[-<tile>]-<isa>
  Isa isa;           // the instructions it needs
  Kernel kernel;
  // false: dispatch never picks it from this list. Either the tests alone run it (the EVEX build
  // of the avxvnni GEMM) or another family's descriptor reaches it (requantize and residual add
  // are the GEMM kernels' requantize / add_residual).
  bool dispatched = true;
};
template <typename Kernel>
using KernelList = std::vector<RegisteredKernel<Kernel>>;

// Entry points of the elementwise families (declared in ukernels.h).
template <typename Q>
struct QuantizeKernel {
  bool (*tensor)(const float* x, Q* y, size_t n, const QuantizeParams& p);
  bool (*channelwise)(const float* x, Q* y, size_t n, const float* inv_scale, const float* zero_point, float qmin,
                      float qmax);
};
template <typename Q>
struct DequantizeKernel {
  void (*tensor)(const Q* x, float* y, size_t n, const DequantizeParams& p);
  void (*channelwise)(const Q* x, float* y, size_t n, const float* scale, const float* zero_point);
};
struct FakeQuantizeKernel {
  bool (*tensor)(const float* x, float* y, uint8_t* mask, size_t n, const QuantizeParams& p, float scale);
  bool (*channelwise)(const float* x, float* y, uint8_t* mask, size_t n, const float* inv_scale,
                      const float* zero_point, const float* scale, float qmin, float qmax);
};
using MinMaxKernel = MinMax (*)(const float* x, size_t n);
using HistogramKernel = size_t (*)(const float* x, size_t n, float lo, float hi, int64_t bins, uint32_t* counts);
using LookupKernel = void (*)(const uint8_t* x, uint8_t* y, size_t n, const uint8_t* table);
using SoftmaxKernel = void (*)(const uint8_t* x, size_t n, uint8_t flip, const float* exp_of_distance, float* p);

// The lists, scalar reference first, then by ISA. Only this architecture's kernels are listed
// (an x86 build has no NEON rows).
template <typename Q>
const KernelList<QuantizeKernel<Q>>& quantize_kernels();
template <typename Q>
const KernelList<DequantizeKernel<Q>>& dequantize_kernels();
const KernelList<FakeQuantizeKernel>& fake_quantize_kernels();
const KernelList<MinMaxKernel>& minmax_kernels();
const KernelList<HistogramKernel>& histogram_kernels();
// Per ISA, the first GEMM row is that ISA's default kernel (see gemm_microkernel_for).
const KernelList<GemmMicrokernel>& gemm_kernels();
const KernelList<RequantizeFn>& requantize_kernels();
const KernelList<LookupKernel>& lookup_kernels();
const KernelList<SoftmaxKernel>& softmax_kernels();
const KernelList<ResidualAddFn>& residual_add_kernels();
const KernelList<DwConvMicrokernel>& dwconv_kernels();
const KernelList<WinogradMicrokernel>& winograd_kernels();
const KernelList<RowSumFn>& rowsum_kernels();

// The level whose kernels of a family run under `isa`: `isa` itself if the family has dispatched
// rows for it, else the first level down the isa_fallback() chain that has (scalar always has).
template <typename Kernel>
Isa resolved_isa(const KernelList<Kernel>& list, Isa isa) {
  for (;; isa = isa_fallback(isa)) {
    for (const auto& entry : list) {
      if (entry.isa == isa && entry.dispatched) return isa;
    }
    if (isa == Isa::kScalar) return isa;
  }
}

// The row dispatch runs under `isa`: the first dispatched row of resolved_isa(list, isa).
template <typename Kernel>
const RegisteredKernel<Kernel>& kernel_for(const KernelList<Kernel>& list, Isa isa) {
  const Isa level = resolved_isa(list, isa);
  for (const auto& entry : list) {
    if (entry.isa == level && entry.dispatched) return entry;
  }
  return list.front();  // not reached: every list starts with a dispatched scalar row
}

// The GEMM kernel set qgemm() runs under `isa`: its default (first) row. Conv uses it so im2col
// writes the A domain the GEMM reads and depthwise shares its output stage.
const GemmMicrokernel& gemm_microkernel_for(Isa isa);
// The one qgemm() runs for a call over `rows` rows and `blocks` 16-channel blocks, among the
// level's dispatched rows with min_rows ≤ rows (for amx, also avx512vnni's): the largest min_rows
// (the kernel made for many rows: AMX's tiles, AVX2's split one), then the one whose last tile
// along the channels is fullest, then the earlier row. These kernels share accumulate domain,
// output stage and residual add, so the choice never changes results.
// Kernels that read a prepacked B (GemmMicrokernel::prepack_b) are candidates only when the weights
// carry their layout, `prepacked_layout` (0: none); the 3-argument form assumes weights packed
// under `isa` (prepacked_b_layout(isa) in qgemm.h).
const GemmMicrokernel& gemm_microkernel_for(Isa isa, size_t blocks, size_t rows, int32_t prepacked_layout);
const GemmMicrokernel& gemm_microkernel_for(Isa isa, size_t blocks, size_t rows);
// The kernel among `isa`'s candidates that reads a prepacked B, or nullptr.
const GemmMicrokernel* prepacked_gemm_microkernel(Isa isa);
// The kernel of any level with this prepacked layout, or nullptr (layout 0, or unknown here).
const GemmMicrokernel* gemm_microkernel_with_layout(int32_t prepacked_layout);
const DwConvMicrokernel& dwconv_microkernel_for(Isa isa);
RowSumFn row_sum_kernel_for(Isa isa);
const WinogradMicrokernel& winograd_microkernel_for(Isa isa);

// One line per row of every list, for listing (Python, benchmarks) and the registry tests.
struct KernelInfo {
  KernelFamily family;
  const char* name;
  Isa isa;
  bool dispatched;
};
std::vector<KernelInfo> registered_kernels();

}  // namespace ukernels
}  // namespace circle_quant
