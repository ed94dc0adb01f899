// lookup_table: schema, argument checks and Meta kernel (lookup_table.h).
#include "lookup_table.h"

namespace torch_circle {

at::Tensor lookup_table_allocate(const at::Tensor& input, const at::Tensor& table) {
  const char* op = "circle_quant::lookup_table";
  const auto in = input.scalar_type(), out = table.scalar_type();
  TORCH_CHECK_TYPE(in == at::kByte || in == at::kChar, op, ": input must be uint8 or int8, got ", dtype_name(in));
  TORCH_CHECK_TYPE(out == at::kByte || out == at::kChar, op, ": table must be uint8 or int8, got ", dtype_name(out));
  TORCH_CHECK_VALUE(table.dim() == 1 && table.sym_numel() == 256, op,
                    ": table must hold 256 entries (one per input value), got shape ", table.sym_sizes());
  check_same_device(op, input, "table", table);
  return empty_like_preserve(input, out);
}

TORCH_LIBRARY_FRAGMENT(circle_quant, m)
{ m.def("lookup_table(Tensor input, Tensor table) -> Tensor", {at::Tag::pt2_compliant_tag}); }

TORCH_LIBRARY_IMPL(circle_quant, Meta, m)
{ m.impl("lookup_table", &lookup_table_allocate); }

}  // namespace torch_circle
