// torch_circle._C's exporter entry points. This file only copies the FX graph (nodes, args,
// shape metadata, constants) out of Python into exporter::FxGraph; everything else, walking the
// graph included, is C++ (csrc/exporter).
#include "exporter/exporter.h"
#include "exporter/ir/circle_ops.h"
#include "exporter/reader/circle_reader.h"

#include <torch/csrc/Dtype.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/extension.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>

namespace py = pybind11;
namespace ex = torch_circle::exporter;

namespace {

struct GraphCopier {
  py::module_ torch = py::module_::import("torch");
  py::module_ fx = py::module_::import("torch.fx");
  py::object node_type = fx.attr("Node");
  py::object fake_tensor_type = torch.attr("Tensor");
  py::object op_overload = py::module_::import("torch._ops").attr("OpOverload");
  py::object getitem = py::module_::import("operator").attr("getitem");
  std::unordered_map<PyObject*, int> index;
  // Placeholders whose value torch.export baked into the graph (numbers, None): their value.
  std::unordered_map<PyObject*, ex::FxArg> baked;

  ex::FxArg arg(py::handle value) {
    if (value.is_none()) return ex::FxArg::none();
    if (py::isinstance(value, node_type)) {
      auto literal = baked.find(value.ptr());
      if (literal != baked.end()) return literal->second;
      auto it = index.find(value.ptr());
      if (it == index.end()) throw ex::ExportError("argument refers to a node outside the graph");
      return ex::FxArg::of_node(it->second);
    }
    if (PyBool_Check(value.ptr())) return ex::FxArg::of_bool(value.cast<bool>());
    if (PyLong_Check(value.ptr())) return ex::FxArg::of_int(value.cast<int64_t>());
    if (PyFloat_Check(value.ptr())) return ex::FxArg::of_float(value.cast<double>());
    if (PyUnicode_Check(value.ptr())) return ex::FxArg::of_string(value.cast<std::string>());
    if (THPDtype_Check(value.ptr())) return ex::FxArg::of_dtype(reinterpret_cast<THPDtype*>(value.ptr())->scalar_type);
    if (py::isinstance<py::list>(value) || py::isinstance<py::tuple>(value)) {
      std::vector<ex::FxArg> items;
      for (py::handle item : value) items.push_back(arg(item));
      return ex::FxArg::of_list(std::move(items));
    }
    // torch.device, layout, memory_format and the like do not change what the graph computes.
    return ex::FxArg::of_string("<" + py::str(py::type::of(value).attr("__name__")).cast<std::string>() + ">");
  }

  static bool tensor_meta(py::handle value, ex::FxTensorMeta& meta) {
    if (!THPVariable_Check(value.ptr())) return false;
    const at::Tensor& t = THPVariable_Unpack(value.ptr());
    meta.dtype = t.scalar_type();
    // Symbolic sizes (dynamic dims) are -1.
    for (const c10::SymInt& d : t.sym_sizes()) meta.shape.push_back(d.is_heap_allocated() ? -1 : d.as_int_unchecked());
    return true;
  }

  std::vector<ex::FxTensorMeta> metas(py::handle node) {
    std::vector<ex::FxTensorMeta> out;
    py::dict meta = node.attr("meta");
    if (meta.contains("val")) {
      py::object val = meta["val"];
      ex::FxTensorMeta m;
      if (tensor_meta(val, m)) return {m};
      if (py::isinstance<py::list>(val) || py::isinstance<py::tuple>(val)) {
        for (py::handle item : val) {
          ex::FxTensorMeta im;
          if (!tensor_meta(item, im)) im.shape = {-2};  // not a tensor; never read
          out.push_back(im);
        }
      }
      return out;
    }
    if (meta.contains("tensor_meta")) {  // from torch.fx.passes.shape_prop
      py::object tm = meta["tensor_meta"];
      if (py::hasattr(tm, "shape")) {
        ex::FxTensorMeta m;
        for (py::handle d : tm.attr("shape")) m.shape.push_back(d.cast<int64_t>());
        m.dtype = reinterpret_cast<THPDtype*>(tm.attr("dtype").ptr())->scalar_type;
        out.push_back(m);
      }
    }
    return out;
  }

  // "model.py:12 in forward: return self.fc(x)": the innermost frame of the node's stack trace
  // that is the user's code rather than torch's own modules.
  static std::string source_line(py::handle node) {
    py::dict meta = node.attr("meta");
    if (!meta.contains("stack_trace") || meta["stack_trace"].is_none()) return "";
    std::string text = py::str(meta["stack_trace"]).cast<std::string>();
    std::string best;
    for (size_t at = text.find("File \""); at != std::string::npos; at = text.find("File \"", at + 1)) {
      size_t file_end = text.find('"', at + 6);
      size_t line_at = text.find("line ", file_end);
      size_t in_at = text.find(", in ", line_at);
      if (file_end == std::string::npos || line_at == std::string::npos || in_at == std::string::npos) break;
      size_t eol = text.find('\n', in_at);
      std::string file = text.substr(at + 6, file_end - at - 6);
      std::string frame = file + ":" + text.substr(line_at + 5, in_at - line_at - 5) + " in " +
                          text.substr(in_at + 5, eol == std::string::npos ? std::string::npos : eol - in_at - 5);
      if (eol != std::string::npos) {
        size_t end = text.find('\n', eol + 1);
        std::string code = text.substr(eol + 1, end == std::string::npos ? std::string::npos : end - eol - 1);
        size_t first = code.find_first_not_of(' ');
        if (first != std::string::npos && code.compare(first, 5, "File ") != 0) frame += ": " + code.substr(first);
      }
      bool torch_internal = file.find("/torch/") != std::string::npos || file.find("/torchao/") != std::string::npos;
      if (best.empty() || !torch_internal) best = frame;
    }
    return best;
  }

  ex::FxGraph copy(py::object graph_module) {
    ex::FxGraph graph;
    py::list nodes(graph_module.attr("graph").attr("nodes"));
    for (py::handle node : nodes) {
      ex::FxNode n;
      n.name = node.attr("name").cast<std::string>();
      n.op = node.attr("op").cast<std::string>();
      py::object target = node.attr("target");
      if (n.op == "call_function") {
        if (target.is(getitem))
          n.target = "getitem";
        else if (py::isinstance(target, op_overload))
          n.target = py::str(target).cast<std::string>();
        else
          n.target = py::getattr(target, "__module__", py::str("")).cast<std::string>() + "." +
                     py::getattr(target, "__qualname__", py::str(target)).cast<std::string>();
      } else {
        n.target = py::str(target).cast<std::string>();
      }
      if (n.op == "get_attr") {
        py::object value = graph_module;
        std::string path = n.target;
        for (size_t start = 0; start <= path.size();) {
          size_t dot = path.find('.', start);
          value = value.attr(py::str(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start)));
          if (dot == std::string::npos) break;
          start = dot + 1;
        }
        if (THPVariable_Check(value.ptr())) n.constant = THPVariable_Unpack(value.ptr()).detach();
      }
      for (py::handle a : node.attr("args")) n.args.push_back(arg(a));
      for (auto item : py::dict(node.attr("kwargs"))) n.kwargs[item.first.cast<std::string>()] = arg(item.second);
      n.meta = metas(node);
      if (n.op == "placeholder" && n.meta.empty()) {
        // A forward argument that is not a tensor: torch.export specialized the graph on its value
        // (a number, None, a list's items), so readers get that value and the file has no input.
        py::dict meta = node.attr("meta");
        py::object val = meta.contains("val") ? py::object(meta["val"]) : py::object();
        if (!val) {
          // no metadata at all: reported by the importer
        } else if (val.is_none() || PyBool_Check(val.ptr()) || PyLong_Check(val.ptr()) || PyFloat_Check(val.ptr())) {
          n.baked = true;
          baked[node.ptr()] = arg(val);
        }
      }
      n.source = source_line(node);
      index[node.ptr()] = static_cast<int>(graph.nodes.size());
      graph.nodes.push_back(std::move(n));
    }
    return graph;
  }
};

// Names in a file from anywhere need not be UTF-8: undecodable bytes become U+FFFD.
py::str text(const std::string& bytes) {
  PyObject* decoded = PyUnicode_DecodeUTF8(bytes.data(), static_cast<Py_ssize_t>(bytes.size()), "replace");
  if (!decoded) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(decoded);
}

py::dict tensor_dict(const torch_circle::reader::TensorInfo& t) {
  py::dict d;
  d["name"] = text(t.name);
  d["shape"] = t.shape;
  d["shape_signature"] = t.shape_signature;
  d["dtype"] = t.dtype;
  d["buffer"] = t.buffer;
  d["data_bytes"] = t.data_bytes;
  d["scale"] = t.scale;
  d["zero_point"] = t.zero_point;
  d["quantized_dimension"] = t.quantized_dimension;
  return d;
}

py::dict model_dict(const torch_circle::reader::ModelInfo& info) {
  py::dict d;
  d["identifier"] = text(info.identifier);
  d["version"] = info.version;
  d["description"] = text(info.description);
  d["file_size"] = info.file_size;
  d["buffer_count"] = info.buffer_count;
  d["extended_buffers"] = info.extended_buffers;
  py::list subgraphs;
  for (const auto& sg : info.subgraphs) {
    py::dict s;
    s["name"] = text(sg.name);
    py::list tensors, operators;
    for (const auto& t : sg.tensors) tensors.append(tensor_dict(t));
    for (const auto& op : sg.operators) {
      py::dict o;
      o["op"] = text(op.op);
      o["inputs"] = op.inputs;
      o["outputs"] = op.outputs;
      o["options"] = op.options;
      operators.append(o);
    }
    s["tensors"] = tensors;
    s["operators"] = operators;
    s["inputs"] = sg.inputs;
    s["outputs"] = sg.outputs;
    subgraphs.append(s);
  }
  d["subgraphs"] = subgraphs;
  return d;
}

// Writes all of data to fd (write(2) may take less at a time); errors become ExportError.
void write_all(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, std::min<size_t>(size, size_t{1} << 30));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw ex::ExportError(std::string("writing the exported file failed: ") + std::strerror(errno));
    p += n;
    size -= static_cast<size_t>(n);
  }
}

}  // namespace

void register_exporter(py::module_& m) {
  static py::exception<ex::ExportError> export_error(m, "ExportError", PyExc_ValueError);
  static py::exception<torch_circle::reader::ReadError> read_error(m, "CircleFileError", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ex::ExportError& e) {
      PyErr_SetString(export_error.ptr(), e.what());
    } catch (const torch_circle::reader::ReadError& e) {
      PyErr_SetString(read_error.ptr(), e.what());
    }
  });

  m.def(
      "export_graph_module",
      [](py::object graph_module, const std::string& format, int verbose, uint64_t extended_buffer_threshold,
         int fd) -> py::object {
        ex::ExportOptions options;
        if (format == "tflite")
          options.write.format = ex::FileFormat::kTflite;
        else if (format != "circle")
          throw ex::ExportError("format must be 'circle' or 'tflite', not '" + format + "'");
        options.verbose = verbose;
        if (extended_buffer_threshold) options.write.extended_buffer_threshold = extended_buffer_threshold;
        py::module_ version = py::module_::import("torch_circle");
        options.write.description = "torch-circle " + py::str(version.attr("__version__")).cast<std::string>();
        ex::FxGraph fx = GraphCopier().copy(graph_module);
        if (fd < 0) {
          std::string bytes;
          {
            py::gil_scoped_release no_gil;
            bytes = ex::export_fx_graph(fx, options);
          }
          return py::bytes(bytes);
        }
        uint64_t size = 0;
        {
          py::gil_scoped_release no_gil;
          size = ex::export_fx_graph(fx, options, [fd](const void* data, size_t n) { write_all(fd, data, n); });
        }
        return py::int_(size);
      },
      py::arg("graph_module"), py::arg("format") = "circle", py::arg("verbose") = 0,
      py::arg("extended_buffer_threshold") = 0, py::arg("fd") = -1,
      "Exports an FX GraphModule (aten-level, e.g. ExportedProgram.module()) to Circle bytes, or, "
      "given a file descriptor, writes them to it (constants straight from the tensors' memory) "
      "and returns their count");

  m.def(
      "circle_op_table",
      [] {
        py::list rows;
        for (const ex::OpInfo& info : ex::op_table()) {
          py::dict row;
          row["type"] = std::string(info.type);
          row["builtin"] = info.builtin != ex::kNotABuiltin;
          row["onert_int"] = info.has(ex::kOnertInt);
          row["litert_int"] = info.has(ex::kLitertInt);
          row["fuses_activation"] = info.has(ex::kFusesActivation);
          rows.append(row);
        }
        return rows;
      },
      "The exporter's op table (csrc/exporter/ir/circle_ops.lst): one dict per op the IR knows");
  m.def(
      "fusable_activations",
      [] {
        std::vector<std::string> names;
        for (std::string_view name : ex::fusable_activations()) names.emplace_back(name);
        return names;
      },
      "The Circle activations an op with a fused-activation option absorbs (RELU, RELU6, RELU_N1_TO_1); "
      "the quantizer and the torch.compile backend fuse the ATen ops that import as these");

  m.def(
      "read_circle",
      [](py::buffer data, const std::string& source) {  // bytes, or an mmap of a file
        py::buffer_info view = data.request();
        return model_dict(torch_circle::reader::read_model(static_cast<const uint8_t*>(view.ptr),
                                                           static_cast<size_t>(view.size * view.itemsize), source));
      },
      py::arg("data"), py::arg("source") = "<bytes>",
      "Verifies and summarizes a .circle / .tflite file (ReadError on a malformed file)");
}
