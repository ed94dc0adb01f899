// CPU kernel of lookup_table: the byte-table kernel of the active ISA (circle_quant::lookup_bytes)
// over the flat buffer, split across threads. Entry k of the table belongs to the input value
// (type minimum + k): uint8 indexes directly; for int8 the table is rotated by 128 so that the raw
// byte indexes it.
#include <ATen/Parallel.h>

#include <cstring>

#include "../lookup_table.h"
#include "core/quantize.h"

namespace torch_circle {
namespace {

at::Tensor lookup_table_cpu(const at::Tensor& input, const at::Tensor& table) {
  auto out = lookup_table_allocate(input, table);
  const auto dense = with_strides_of(input, out);  // the input itself when already laid out like out
  const auto entries = table.contiguous();
  const auto* values = static_cast<const uint8_t*>(entries.data_ptr());
  uint8_t by_byte[256];
  const int rotation = input.scalar_type() == at::kChar ? 128 : 0;  // int8 byte 0x80 (-128) → entry 0
  for (int b = 0; b < 256; ++b) by_byte[b] = values[(b + rotation) & 255];
  const auto* src = static_cast<const uint8_t*>(dense.data_ptr());
  auto* dst = static_cast<uint8_t*>(out.data_ptr());
  at::parallel_for(0, dense.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
    circle_quant::lookup_bytes(src + begin, dst + begin, static_cast<size_t>(end - begin), by_byte);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(circle_quant, CPU, m)
{ m.impl("lookup_table", &lookup_table_cpu); }

}  // namespace torch_circle
