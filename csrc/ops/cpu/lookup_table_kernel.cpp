// CPU kernel of lookup_table: a byte gather over the flat buffer, split across threads. Entry k
// of the table belongs to the input value (type minimum + k): uint8 indexes directly, int8 is
// offset by 128.
#include <ATen/Parallel.h>

#include <cstring>

#include "../lookup_table.h"

namespace torch_circle {
namespace {

at::Tensor lookup_table_cpu(const at::Tensor& input, const at::Tensor& table) {
  auto out = lookup_table_allocate(input, table);
  const auto dense = with_strides_of(input, out);  // the input itself when already laid out like out
  const auto entries = table.contiguous();
  uint8_t lut[256];
  std::memcpy(lut, entries.data_ptr(), 256);
  const uint8_t offset = input.scalar_type() == at::kChar ? 128 : 0;  // int8 -128 → entry 0
  const auto* src = static_cast<const uint8_t*>(dense.data_ptr());
  auto* dst = static_cast<uint8_t*>(out.data_ptr());
  at::parallel_for(0, dense.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
    // Local copies: a byte store may alias anything, so captured references would be reloaded
    // from memory on every element.
    const uint8_t* __restrict in = src + begin;
    uint8_t* __restrict result = dst + begin;
    const uint8_t shift = offset;
    const uint8_t* __restrict table_bytes = lut;
    for (int64_t i = 0, n = end - begin; i < n; ++i) result[i] = table_bytes[static_cast<uint8_t>(in[i] + shift)];
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(circle_quant, CPU, m)
{ m.impl("lookup_table", &lookup_table_cpu); }

}  // namespace torch_circle
