// The rows of the kernel registry (registry.h): one per kernel file, scalar reference first.
// This file is compiled without ISA flags; it only takes the addresses of the kernels and copies
// their constant descriptors.
#include "registry.h"

#include <array>

#if defined(__aarch64__)
#include "neon_common.h"  // qs32_requantize_neon
#endif

namespace circle_quant {
namespace ukernels {

// The descriptors, constants defined in the kernels' files.
extern const GemmMicrokernel qu8_gemm_4x16c4_scalar;
extern const DwConvMicrokernel q8_dwconv_c1_scalar;
extern const WinogradMicrokernel q8_winograd_f2x3_scalar;
#if defined(__x86_64__)
extern const GemmMicrokernel qu8_gemm_3x16c4_avx2;
extern const GemmMicrokernel qu8_gemm_5x16c4split_avx2;
extern const GemmMicrokernel qu8_gemm_6x16c4_avxvnni;
extern const GemmMicrokernel qu8_gemm_6x16c4_evex_avx512vnni;
extern const GemmMicrokernel qu8_gemm_8x48c4_avx512vnni;
extern const GemmMicrokernel qu8_gemm_6x64c4_avx512vnni;
extern const GemmMicrokernel qu8_gemm_32x32c4_amx;
extern const DwConvMicrokernel q8_dwconv_c32_avx2;
extern const DwConvMicrokernel q8_dwconv_c64_avx512;
extern const DwConvMicrokernel q8_dwconv_c64_avx512vnni;
extern const WinogradMicrokernel q8_winograd_f2x3_avx2;
#endif
#if defined(__aarch64__)
extern const GemmMicrokernel qs8_gemm_2x16c4_neon;
extern const GemmMicrokernel qs8_gemm_4x16c4_neondot;
#endif

const char* family_name(KernelFamily family) {
  switch (family) {
    case KernelFamily::kQuantize: return "quantize";
    case KernelFamily::kDequantize: return "dequantize";
    case KernelFamily::kFakeQuantize: return "fake_quantize";
    case KernelFamily::kMinMax: return "minmax";
    case KernelFamily::kLookup: return "lookup";
    case KernelFamily::kSoftmax: return "softmax";
    case KernelFamily::kHistogram: return "histogram";
    case KernelFamily::kGemm: return "gemm";
    case KernelFamily::kRequantize: return "requantize";
    case KernelFamily::kResidualAdd: return "residual_add";
    case KernelFamily::kDwConv: return "dwconv";
    case KernelFamily::kWinograd: return "winograd";
    case KernelFamily::kRowSum: return "rowsum";
  }
  return "unknown";
}

template <typename Q>
const KernelList<QuantizeKernel<Q>>& quantize_kernels() {
  static const KernelList<QuantizeKernel<Q>> list = {
    {"f32-quantize-scalar", Isa::kScalar, {&f32_quantize_scalar<Q>, &f32_quantize_channelwise_scalar<Q>}},
#if defined(__x86_64__)
    {"f32-quantize-avx2", Isa::kAvx2, {&f32_quantize_avx2<Q>, &f32_quantize_channelwise_avx2<Q>}},
    {"f32-quantize-avx512", Isa::kAvx512, {&f32_quantize_avx512<Q>, &f32_quantize_channelwise_avx512<Q>}},
#endif
  };
  return list;
}

template <typename Q>
const KernelList<DequantizeKernel<Q>>& dequantize_kernels() {
  static const KernelList<DequantizeKernel<Q>> list = {
    {"q-dequantize-scalar", Isa::kScalar, {&q_dequantize_scalar<Q>, &q_dequantize_channelwise_scalar<Q>}},
#if defined(__x86_64__)
    {"q-dequantize-avx2", Isa::kAvx2, {&q_dequantize_avx2<Q>, &q_dequantize_channelwise_avx2<Q>}},
    {"q-dequantize-avx512", Isa::kAvx512, {&q_dequantize_avx512<Q>, &q_dequantize_channelwise_avx512<Q>}},
#endif
  };
  return list;
}

#define INSTANTIATE(Q)                                                 \
  template const KernelList<QuantizeKernel<Q>>& quantize_kernels<Q>(); \
  template const KernelList<DequantizeKernel<Q>>& dequantize_kernels<Q>();
CIRCLE_QUANT_FOR_EACH_QTYPE(INSTANTIATE)
#undef INSTANTIATE

const KernelList<FakeQuantizeKernel>& fake_quantize_kernels() {
  static const KernelList<FakeQuantizeKernel> list = {
    {"f32-fake-quantize-scalar", Isa::kScalar, {&f32_fake_quantize_scalar, &f32_fake_quantize_channelwise_scalar}},
#if defined(__x86_64__)
    {"f32-fake-quantize-avx2", Isa::kAvx2, {&f32_fake_quantize_avx2, &f32_fake_quantize_channelwise_avx2}},
    {"f32-fake-quantize-avx512", Isa::kAvx512, {&f32_fake_quantize_avx512, &f32_fake_quantize_channelwise_avx512}},
#endif
  };
  return list;
}

const KernelList<MinMaxKernel>& minmax_kernels() {
  static const KernelList<MinMaxKernel> list = {
    {"f32-minmax-scalar", Isa::kScalar, &f32_minmax_scalar},
#if defined(__x86_64__)
    {"f32-minmax-avx2", Isa::kAvx2, &f32_minmax_avx2},
    {"f32-minmax-avx512", Isa::kAvx512, &f32_minmax_avx512},
#endif
  };
  return list;
}

const KernelList<HistogramKernel>& histogram_kernels() {
  static const KernelList<HistogramKernel> list = {
    {"f32-histogram-scalar", Isa::kScalar, &f32_histogram_scalar},
#if defined(__x86_64__)
    {"f32-histogram-avx2", Isa::kAvx2, &f32_histogram_avx2},
    {"f32-histogram-avx512", Isa::kAvx512, &f32_histogram_avx512},
#endif
  };
  return list;
}

namespace {

template <typename Kernel>
RegisteredKernel<Kernel> row(const Kernel& k, Isa isa, bool dispatched = true) {
  return {k.name, isa, k, dispatched};
}

}  // namespace

const KernelList<GemmMicrokernel>& gemm_kernels() {
  static const KernelList<GemmMicrokernel> list = {
    row(qu8_gemm_4x16c4_scalar, Isa::kScalar),
#if defined(__x86_64__)
    row(qu8_gemm_3x16c4_avx2, Isa::kAvx2),       // default: unpacks A and B in registers
    row(qu8_gemm_5x16c4split_avx2, Isa::kAvx2),  // from min_rows on: vpmaddubsw where exact
    row(qu8_gemm_6x16c4_avxvnni, Isa::kAvxVnni),
    row(qu8_gemm_8x48c4_avx512vnni, Isa::kAvx512Vnni),
    row(qu8_gemm_6x64c4_avx512vnni, Isa::kAvx512Vnni),  // when 64 fills the last tile better
    // The avxvnni code with EVEX-encoded vpdpbusd: tests it on AVX512-VNNI machines without
    // AVX-VNNI; never dispatched.
    row(qu8_gemm_6x16c4_evex_avx512vnni, Isa::kAvx512Vnni, false),
    // From min_rows on; fewer rows run the avx512vnni rows above (gemm_candidates).
    row(qu8_gemm_32x32c4_amx, Isa::kAmx),
#endif
#if defined(__aarch64__)
    row(qs8_gemm_2x16c4_neon, Isa::kNeon),
    row(qs8_gemm_4x16c4_neondot, Isa::kNeonDot),
#endif
  };
  return list;
}

const KernelList<RequantizeFn>& requantize_kernels() {
  static const KernelList<RequantizeFn> list = {
    {"qs32-requantize-scalar", Isa::kScalar, &qs32_requantize_scalar, false},
#if defined(__x86_64__)
    {"qs32-requantize-avx2", Isa::kAvx2, &qs32_requantize_avx2, false},
    {"qs32-requantize-avx512", Isa::kAvx512, &qs32_requantize_avx512, false},
#endif
#if defined(__aarch64__)
    {"qs32-requantize-neon", Isa::kNeon, &qs32_requantize_neon, false},
#endif
  };
  return list;
}

const KernelList<ResidualAddFn>& residual_add_kernels() {
  static const KernelList<ResidualAddFn> list = {
    {"q8-vadd-scalar", Isa::kScalar, &q8_vadd_scalar, false},
#if defined(__x86_64__)
    {"q8-vadd-avx2", Isa::kAvx2, &q8_vadd_avx2, false},
    {"q8-vadd-avx512", Isa::kAvx512, &q8_vadd_avx512, false},
#endif
#if defined(__aarch64__)
    {"q8-vadd-neon", Isa::kNeon, &q8_vadd_neon, false},
#endif
  };
  return list;
}

const KernelList<LookupKernel>& lookup_kernels() {
  static const KernelList<LookupKernel> list = {
    {"x8-lut-scalar", Isa::kScalar, &x8_lut_scalar},
#if defined(__x86_64__)
    {"x8-lut-avx2", Isa::kAvx2, &x8_lut_avx2},
    {"x8-lut-avx512", Isa::kAvx512, &x8_lut_avx512},
#endif
#if defined(__aarch64__)
    {"x8-lut-neon", Isa::kNeon, &x8_lut_neon},
#endif
  };
  return list;
}

const KernelList<SoftmaxKernel>& softmax_kernels() {
  static const KernelList<SoftmaxKernel> list = {
    {"q8-softmax-scalar", Isa::kScalar, &q8_softmax_scalar},
#if defined(__x86_64__)
    {"q8-softmax-avx2", Isa::kAvx2, &q8_softmax_avx2},
    {"q8-softmax-avx512", Isa::kAvx512, &q8_softmax_avx512},
#endif
  };
  return list;
}

const KernelList<DwConvMicrokernel>& dwconv_kernels() {
  static const KernelList<DwConvMicrokernel> list = {
    row(q8_dwconv_c1_scalar, Isa::kScalar),
#if defined(__x86_64__)
    // AVX-VNNI runs the AVX2 kernel: vpdpwssd ymm would save one instruction per tap pair, but
    // no machine here can test it.
    row(q8_dwconv_c32_avx2, Isa::kAvx2),
    row(q8_dwconv_c64_avx512, Isa::kAvx512),
    row(q8_dwconv_c64_avx512vnni, Isa::kAvx512Vnni),
#endif
  };
  return list;
}

namespace {

// Per ISA, the GEMM rows dispatch may pick (those of resolved_isa), default first: computed once.
using GemmCandidates = std::array<std::vector<const GemmMicrokernel*>, kIsaCount>;
const GemmCandidates& gemm_candidates() {
  static const GemmCandidates candidates = [] {
    GemmCandidates c;
    const KernelList<GemmMicrokernel>& list = gemm_kernels();
    for (Isa isa : kAllIsas) {
      const Isa level = resolved_isa(list, isa);
      for (const auto& entry : list) {
        if (entry.isa == level && entry.dispatched) c[static_cast<size_t>(isa)].push_back(&entry.kernel);
      }
    }
    // AMX extends avx512vnni (same A domain, output stage and residual add): its tile kernel takes
    // calls of many rows, that level's kernels the rest.
    for (const GemmMicrokernel* k : c[static_cast<size_t>(Isa::kAvx512Vnni)]) {
      if (resolved_isa(list, Isa::kAmx) == Isa::kAmx) c[static_cast<size_t>(Isa::kAmx)].push_back(k);
    }
    return c;
  }();
  return candidates;
}

}  // namespace

const GemmMicrokernel& gemm_microkernel_for(Isa isa) { return *gemm_candidates()[static_cast<size_t>(isa)].front(); }

const GemmMicrokernel& gemm_microkernel_for(Isa isa, size_t blocks, size_t rows, int32_t prepacked_layout) {
  // How full the last tile of a row of tiles is (1 = the width divides the blocks).
  const auto fullness = [blocks](size_t width) {
    const size_t last = blocks % width == 0 ? width : blocks % width;
    return static_cast<double>(last) / static_cast<double>(width);
  };
  const std::vector<const GemmMicrokernel*>& candidates = gemm_candidates()[static_cast<size_t>(isa)];
  const GemmMicrokernel* best = nullptr;
  for (const GemmMicrokernel* k : candidates) {
    if (rows < k->min_rows) continue;
    if (k->prepack_b != nullptr && k->prepacked_layout != prepacked_layout) continue;  // the weights lack its B
    if (best == nullptr) {
      best = k;
      continue;
    }
    // A kernel made for more rows wins outright (AMX's tiles over VNNI's, the AVX2 split kernel
    // over the 3x16); among equals, the fuller last tile, then the one that reads the weights'
    // prepacked B.
    if (k->min_rows != best->min_rows) {
      if (k->min_rows > best->min_rows) best = k;
      continue;
    }
    const double f = fullness(k->max_blocks), best_f = fullness(best->max_blocks);
    const bool tie_wins = k->prepack_b != nullptr && best->prepack_b == nullptr;
    if (f > best_f || (f == best_f && tie_wins)) best = k;
  }
  return best != nullptr ? *best : *candidates.front();  // every level has a kernel for one row
}

const GemmMicrokernel* prepacked_gemm_microkernel(Isa isa) {
  for (const GemmMicrokernel* k : gemm_candidates()[static_cast<size_t>(isa)]) {
    if (k->prepack_b != nullptr) return k;
  }
  return nullptr;
}

const GemmMicrokernel& gemm_microkernel_for(Isa isa, size_t blocks, size_t rows) {
  const GemmMicrokernel* prepacked = prepacked_gemm_microkernel(isa);
  return gemm_microkernel_for(isa, blocks, rows, prepacked != nullptr ? prepacked->prepacked_layout : 0);
}

const GemmMicrokernel* gemm_microkernel_with_layout(int32_t prepacked_layout) {
  if (prepacked_layout == 0) return nullptr;
  for (const auto& entry : gemm_kernels()) {
    if (entry.kernel.prepack_b != nullptr && entry.kernel.prepacked_layout == prepacked_layout) return &entry.kernel;
  }
  return nullptr;
}

const DwConvMicrokernel& dwconv_microkernel_for(Isa isa) { return kernel_for(dwconv_kernels(), isa).kernel; }

const WinogradMicrokernel& winograd_microkernel_for(Isa isa) { return kernel_for(winograd_kernels(), isa).kernel; }

const KernelList<WinogradMicrokernel>& winograd_kernels() {
  static const KernelList<WinogradMicrokernel> list = {
    // Conv runs Winograd only on levels whose GEMM is the exact AVX2 one (qconv.h,
    // conv_winograd_runs()); the scalar row is the reference the tests hold the others to.
    row(q8_winograd_f2x3_scalar, Isa::kScalar, false),
#if defined(__x86_64__)
    row(q8_winograd_f2x3_avx2, Isa::kAvx2),
#endif
  };
  return list;
}

RowSumFn row_sum_kernel_for(Isa isa) { return kernel_for(rowsum_kernels(), isa).kernel; }

const KernelList<RowSumFn>& rowsum_kernels() {
  static const KernelList<RowSumFn> list = {
    {"q8-rowsum-scalar", Isa::kScalar, &q8_rowsum_scalar},
#if defined(__x86_64__)
    {"q8-rowsum-avx2", Isa::kAvx2, &q8_rowsum_avx2},
    {"q8-rowsum-avx512", Isa::kAvx512, &q8_rowsum_avx512},
#endif
  };
  return list;
}

namespace {

template <typename Kernel>
void add_rows(std::vector<KernelInfo>* out, KernelFamily family, const KernelList<Kernel>& list) {
  for (const auto& entry : list) out->push_back({family, entry.name, entry.isa, entry.dispatched});
}

}  // namespace

std::vector<KernelInfo> registered_kernels() {
  std::vector<KernelInfo> rows;
  // The quantize / dequantize rows are the same for every Q: list them once.
  add_rows(&rows, KernelFamily::kQuantize, quantize_kernels<uint8_t>());
  add_rows(&rows, KernelFamily::kDequantize, dequantize_kernels<uint8_t>());
  add_rows(&rows, KernelFamily::kFakeQuantize, fake_quantize_kernels());
  add_rows(&rows, KernelFamily::kMinMax, minmax_kernels());
  add_rows(&rows, KernelFamily::kHistogram, histogram_kernels());
  add_rows(&rows, KernelFamily::kGemm, gemm_kernels());
  add_rows(&rows, KernelFamily::kRequantize, requantize_kernels());
  add_rows(&rows, KernelFamily::kResidualAdd, residual_add_kernels());
  add_rows(&rows, KernelFamily::kDwConv, dwconv_kernels());
  add_rows(&rows, KernelFamily::kLookup, lookup_kernels());
  add_rows(&rows, KernelFamily::kSoftmax, softmax_kernels());
  add_rows(&rows, KernelFamily::kWinograd, winograd_kernels());
  add_rows(&rows, KernelFamily::kRowSum, rowsum_kernels());
  return rows;
}

}  // namespace ukernels
}  // namespace circle_quant
