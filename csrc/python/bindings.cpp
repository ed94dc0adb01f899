// torch_circle._C: direct Python bindings of the circle_quant ops.
//
// torch.ops.circle_quant.<op> parses arguments against the schema in Python and C++, which costs
// about 1.2 us per call more than a native torch binding; for the small tensors observers see in
// every calibration step that is most of the time. These bindings call the same dispatcher
// entries through typed handles (so autograd, Meta and Python-mode dispatch behave exactly as
// through torch.ops) with pybind11's cheaper argument conversion. torch_circle.ops picks them for
// plain eager tensors and falls back to torch.ops when tracing or compiling.
#include <torch/csrc/Exceptions.h>
#include <torch/extension.h>

#include <ATen/core/dispatch/Dispatcher.h>

#include "core/isa.h"
#include "core/ukernels/registry.h"
#include "ops/output_cache.h"

#include <algorithm>
#include <optional>
#include <tuple>
#include <type_traits>

namespace py = pybind11;

void register_exporter(py::module_& m);  // exporter_bindings.cpp

namespace {

using Tensor = at::Tensor;
using TensorPair = std::tuple<Tensor, Tensor>;
using TensorTriple = std::tuple<Tensor, Tensor, Tensor>;

template <typename Signature>
c10::TypedOperatorHandle<Signature> op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

// Releasing the GIL costs about 0.1 us; only worth it when the call does real work.
constexpr int64_t kReleaseGilFrom = 1 << 15;  // elements of the largest tensor argument

template <typename T>
int64_t elements(const T& arg) {
  if constexpr (std::is_same_v<std::decay_t<T>, Tensor>) return arg.defined() ? arg.numel() : 0;
  return 0;
}

// A callable for circle_quant::<name> with signature Signature: the GIL is released during calls
// on large tensors, and c10 errors and warnings become the matching Python exceptions and
// warnings.
template <typename Signature>
struct Caller;

template <typename Return, typename... Args>
struct Caller<Return(Args...)> {
  static auto make(const std::string& qualified) {
    auto handle = op<Return(Args...)>(qualified.c_str());
    return [handle](Args... args) -> Return {
      HANDLE_TH_ERRORS
      if (std::max<int64_t>({0, elements(args)...}) >= kReleaseGilFrom) {
        py::gil_scoped_release no_gil;
        return handle.call(std::forward<Args>(args)...);
      }
      return handle.call(std::forward<Args>(args)...);
      END_HANDLE_TH_ERRORS_PYBIND
    };
  }
};

// Binds circle_quant::<name>; `names` are the schema's argument names (py::arg, with defaults).
template <typename Signature, typename... Names>
void bind(py::module_& m, const char* name, Names&&... names) {
  m.def(name, Caller<Signature>::make(std::string("circle_quant::") + name), std::forward<Names>(names)...);
}

using ScalarType = at::ScalarType;
using OptScalarType = std::optional<at::ScalarType>;
using OptTensor = std::optional<Tensor>;

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "Direct bindings of the circle_quant ops (see torch_circle.ops) and the Circle exporter";
  register_exporter(m);
  // The kernel registry (csrc/core/ukernels/registry.h), read from libtorch_circle.so.
  m.def(
      "kernel_isas",
      [] {
        std::vector<std::pair<std::string, bool>> isas;
        for (circle_quant::Isa isa : circle_quant::kAllIsas) {
          isas.emplace_back(circle_quant::isa_name(isa), circle_quant::isa_supported(isa));
        }
        return isas;
      },
      "Every ISA name the kernels know, lowest first per architecture, with whether this CPU runs it");
  m.def(
      "registered_kernels",
      [] {
        std::vector<std::tuple<std::string, std::string, std::string, bool>> rows;
        for (const auto& k : circle_quant::ukernels::registered_kernels()) {
          rows.emplace_back(circle_quant::ukernels::family_name(k.family), k.name, circle_quant::isa_name(k.isa),
                            k.dispatched);
        }
        return rows;
      },
      "Every registered microkernel as (family, name, isa, dispatched)");
  // The kernels' output cache (csrc/ops/output_cache.h).
  m.def(
      "output_cache_stats",
      [] {
        const auto s = torch_circle::output_cache_stats();
        return std::make_tuple(s.cached_bytes, s.limit_bytes, s.reused, s.allocated);
      },
      "(cached bytes, limit bytes, outputs reused, outputs newly allocated)");
  m.def("release_output_cache", &torch_circle::release_output_cache, "Gives every cached output block back");
  const auto none = py::none();
  bind<Tensor(const Tensor&, double, int64_t, int64_t, int64_t, ScalarType)>(
      m, "quantize_per_tensor", py::arg("input"), py::arg("scale"), py::arg("zero_point"), py::arg("quant_min"),
      py::arg("quant_max"), py::arg("dtype"));
  bind<Tensor(const Tensor&, double, int64_t, int64_t, int64_t, ScalarType, OptScalarType)>(
      m, "dequantize_per_tensor", py::arg("input"), py::arg("scale"), py::arg("zero_point"), py::arg("quant_min"),
      py::arg("quant_max"), py::arg("dtype"), py::arg("out_dtype") = none);
  bind<Tensor(const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t, int64_t, ScalarType)>(
      m, "quantize_per_channel", py::arg("input"), py::arg("scales"), py::arg("zero_points"), py::arg("axis"),
      py::arg("quant_min"), py::arg("quant_max"), py::arg("dtype"));
  bind<Tensor(const Tensor&, const Tensor&, const OptTensor&, int64_t, int64_t, int64_t, ScalarType, OptScalarType)>(
      m, "dequantize_per_channel", py::arg("input"), py::arg("scales"), py::arg("zero_points"), py::arg("axis"),
      py::arg("quant_min"), py::arg("quant_max"), py::arg("dtype"), py::arg("out_dtype") = none);
  bind<Tensor(const Tensor&, double, int64_t, int64_t, int64_t)>(m, "fake_quantize_per_tensor", py::arg("input"),
                                                                 py::arg("scale"), py::arg("zero_point"),
                                                                 py::arg("quant_min"), py::arg("quant_max"));
  bind<Tensor(const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t, int64_t)>(
      m, "fake_quantize_per_channel", py::arg("input"), py::arg("scales"), py::arg("zero_points"), py::arg("axis"),
      py::arg("quant_min"), py::arg("quant_max"));
  bind<TensorPair(const Tensor&)>(m, "minmax", py::arg("input"));
  bind<TensorPair(const Tensor&, int64_t)>(m, "minmax_per_channel", py::arg("input"), py::arg("axis"));
  bind<TensorPair(const Tensor&, const Tensor&, int64_t, int64_t, ScalarType, bool, double, bool)>(
      m, "choose_qparams", py::arg("min_val"), py::arg("max_val"), py::arg("quant_min"), py::arg("quant_max"),
      py::arg("dtype"), py::arg("symmetric"), py::arg("eps"), py::arg("has_customized_qrange") = false);
  bind<TensorTriple(const Tensor&, const Tensor&, const Tensor&, const Tensor&, int64_t)>(
      m, "histogram_observe", py::arg("input"), py::arg("histogram"), py::arg("min_val"), py::arg("max_val"),
      py::arg("upsample_rate") = 16);
  bind<void(const Tensor&, const Tensor&, const Tensor&, std::optional<double>)>(m, "running_minmax_", py::arg("input"),
                                                                                 py::arg("min_val"), py::arg("max_val"),
                                                                                 py::arg("averaging_constant") = none);
  bind<void(const Tensor&, const Tensor&, const Tensor&, const Tensor&, int64_t)>(
      m, "histogram_observe_", py::arg("input"), py::arg("histogram"), py::arg("min_val"), py::arg("max_val"),
      py::arg("upsample_rate") = 16);
  // Hot at batch 1 (one call per layer per token): the typed handle saves ~1 us over torch.ops.
  bind<Tensor(const Tensor&, const Tensor&, const Tensor&, const Tensor&, ScalarType)>(
      m, "quantized_linear", py::arg("input"), py::arg("packed_weight"), py::arg("params"), py::arg("multiplier"),
      py::arg("output_dtype"));
  bind<TensorPair(const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t, ScalarType, bool, double, bool)>(
      m, "histogram_choose_qparams", py::arg("histogram"), py::arg("min_val"), py::arg("max_val"), py::arg("quant_min"),
      py::arg("quant_max"), py::arg("dtype"), py::arg("symmetric"), py::arg("eps"),
      py::arg("has_customized_qrange") = false);
}
