"""Wire compatibility of schemas/circle_schema.fbs with ONE's Circle 0.10 schema.

The independent reference is the `circle-schema` PyPI package (module
`circle_schema.v0_10.circle`): Python code that flatc generated from ONE's own
schema file. Our schema is compiled by Debian's flatc to a binary schema
(.bfbs), which is read here with a small reflection reader, and every enum
value, union member and table field in it is compared with the package:

* enums: same names and values, and complete (every official name present);
* unions: each member at its official type number and naming the same table;
* tables: each field at the official vtable slot (the package's accessor reads
  `self._tab.Offset(4 + 2 * id)`), with the same kind, scalar type and default,
  and no official field missing below our last one.

Then a model written by Python code flatc generates from our schema is read with
the package, and the other way round.
"""

import ast
import importlib
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import flatbuffers
import pytest
from flatbuffers.table import Table

try:
    import circle_schema.v0_10.circle as official_pkg
except ImportError as exc:  # a missing reference must fail, not skip
    raise ImportError(
        "the `circle-schema` package is needed (pip install --no-deps circle-schema flatbuffers, "
        "see requirements/dev.txt)"
    ) from exc

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "schemas" / "circle_schema.fbs"

# Tables that deliberately stop before their last official field (see the schema's header).
TRUNCATED_TABLES = {"Operator"}

# Options tables the exporter relies on; each must stay in our BuiltinOptions union.
REQUIRED_OPTIONS = """
Conv2DOptions DepthwiseConv2DOptions FullyConnectedOptions Pool2DOptions AddOptions SubOptions
MulOptions DivOptions ConcatenationOptions ReshapeOptions SoftmaxOptions TransposeOptions
ReducerOptions SqueezeOptions StridedSliceOptions SliceOptions PadOptions PadV2Options GatherOptions
SplitOptions SplitVOptions TransposeConvOptions BatchMatMulOptions LeakyReluOptions GeluOptions
CastOptions SelectV2Options HardSwishOptions DequantizeOptions QuantizeOptions ExpOptions PowOptions
SquaredDifferenceOptions MaximumMinimumOptions ArgMaxOptions ResizeBilinearOptions
ResizeNearestNeighborOptions ShapeOptions TileOptions ExpandDimsOptions AbsOptions NegOptions
LogSoftmaxOptions PackOptions UnpackOptions BroadcastToOptions CumsumOptions InstanceNormOptions
RmsNormOptions RoPEOptions
""".split()


# --------------------------------------------------------------------------------------------
# Our side: flatc -> .bfbs -> a minimal reader of flatbuffers' reflection schema (the Python
# flatbuffers package ships no reflection module); --bfbs-builtins keeps attributes such as
# force_align in the .bfbs. Slots used (reflection.fbs only ever appends fields):
#   Schema{objects 0, enums 1, file_ident 2, file_ext 3, root_table 4}
#   Object{name 0, fields 1}    Type{base_type 0, element 1, index 2}
#   Field{name 0, type 1, id 2, default_integer 4, default_real 5, deprecated 6, attributes 9}
#   Enum{name 0, values 1, is_union 2, underlying_type 3}    KeyValue{key 0, value 1}
#   EnumVal{name 0, value 1, object 2 (older flatc), union_type 3}
# --------------------------------------------------------------------------------------------

BASE_TYPES = [
    "None",
    "UType",
    "Bool",
    "Byte",
    "UByte",
    "Short",
    "UShort",
    "Int",
    "UInt",
    "Long",
    "ULong",
    "Float",
    "Double",
    "String",
    "Vector",
    "Obj",
    "Union",
    "Array",
]
# reflection base type -> the flatbuffers.number_types flag name the Python generator uses
SCALAR_FLAGS = {
    "UType": "Uint8",
    "Bool": "Bool",
    "Byte": "Int8",
    "UByte": "Uint8",
    "Short": "Int16",
    "UShort": "Uint16",
    "Int": "Int32",
    "UInt": "Uint32",
    "Long": "Int64",
    "ULong": "Uint64",
    "Float": "Float32",
    "Double": "Float64",
}
N = flatbuffers.number_types


class _Ref:
    """One table of the .bfbs, read by slot number."""

    def __init__(self, buf, pos):
        self._t = Table(buf, pos)

    def _off(self, slot):
        return self._t.Offset(4 + 2 * slot)

    def str(self, slot):
        o = self._off(slot)
        return self._t.String(o + self._t.Pos).decode() if o else None

    def num(self, slot, flags, default=0):
        o = self._off(slot)
        return self._t.Get(flags, o + self._t.Pos) if o else default

    def sub(self, slot):
        o = self._off(slot)
        return _Ref(self._t.Bytes, self._t.Indirect(o + self._t.Pos)) if o else None

    def subs(self, slot):
        o = self._off(slot)
        if not o:
            return []
        start = self._t.Vector(o)
        return [_Ref(self._t.Bytes, self._t.Indirect(start + 4 * i)) for i in range(self._t.VectorLen(o))]


def _short(name):
    return name.rsplit(".", 1)[-1]


def _flatc():
    flatc = shutil.which("flatc")
    if flatc is None:
        pytest.fail("Debian's flatc is required (apt-get install flatbuffers-compiler); not found on PATH")
    return flatc


def _run_flatc(*args):
    proc = subprocess.run([_flatc(), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"flatc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    out = tmp_path_factory.mktemp("bfbs")
    _run_flatc("--binary", "--schema", "--bfbs-builtins", "-o", str(out), str(SCHEMA))
    buf = bytearray((out / "circle_schema.bfbs").read_bytes())
    assert buf[4:8] == b"BFBS"
    root = _Ref(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))
    objects = root.subs(0)
    object_names = [_short(o.str(0)) for o in objects]

    def describe(type_ref):
        base = BASE_TYPES[type_ref.num(0, N.Int8Flags)]
        index = type_ref.num(2, N.Int32Flags, -1)
        if base == "Vector":
            elem = BASE_TYPES[type_ref.num(1, N.Int8Flags)]
            if elem == "Obj":
                return ("vector", "table", object_names[index])
            if elem == "String":
                return ("vector", "string")
            return ("vector", SCALAR_FLAGS[elem])
        if base == "Obj":
            return ("table", object_names[index])
        if base == "String":
            return ("string",)
        if base == "Union":
            return ("union",)
        return ("scalar", SCALAR_FLAGS[base])

    enums = {}
    for e in root.subs(1):
        values = {}
        for v in e.subs(1):
            member = v.sub(3)
            table = None
            if member is not None and BASE_TYPES[member.num(0, N.Int8Flags)] == "Obj":
                table = object_names[member.num(2, N.Int32Flags, -1)]
            elif v.sub(2) is not None:  # flatc versions that store the union's table directly
                table = _short(v.sub(2).str(0))
            values[v.str(0)] = (v.num(1, N.Int64Flags), table)
        enums[_short(e.str(0))] = {
            "union": bool(e.num(2, N.BoolFlags, False)),
            "underlying": SCALAR_FLAGS[BASE_TYPES[e.sub(3).num(0, N.Int8Flags)]],
            "values": values,
        }

    tables = {}
    for obj, name in zip(objects, object_names):
        fields = {}
        for f in obj.subs(1):
            kind = describe(f.sub(1))
            default = None
            if kind[0] == "scalar":
                default = f.num(5, N.Float64Flags, 0.0) if kind[1].startswith("Float") else f.num(4, N.Int64Flags, 0)
            # a union field's Type.index points into Schema.enums; resolved to a name below
            union_index = f.sub(1).num(2, N.Int32Flags, -1) if kind[0] == "union" else None
            fields[f.str(0)] = {
                "id": f.num(2, N.Uint16Flags),
                "kind": kind,
                "default": default,
                "deprecated": bool(f.num(6, N.BoolFlags, False)),
                "attributes": {a.str(0): a.str(1) for a in f.subs(9)},
                "union_index": union_index,
            }
        tables[name] = fields
    enum_order = [_short(e.str(0)) for e in root.subs(1)]
    for fields in tables.values():
        for field in fields.values():
            if field["union_index"] is not None:
                field["union"] = enum_order[field["union_index"]]
    return {
        "tables": tables,
        "enums": enums,
        "file_ident": root.str(2),
        "file_ext": root.str(3),
        "root_table": _short(root.sub(4).str(0)) if root.sub(4) else None,
    }


# --------------------------------------------------------------------------------------------
# Official side: the circle-schema package's generated modules.
# --------------------------------------------------------------------------------------------

_OFFSET = re.compile(r"self\._tab\.Offset\((\d+)\)")
_FLAGS = re.compile(r"number_types\.(\w+?)Flags")


def _camel(snake):
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


def _official_class(name):
    try:
        module = importlib.import_module(f"{official_pkg.__name__}.{name}")
    except ImportError:
        return None, None
    return getattr(module, name, None), module


def _official_accessors(cls):
    """{vtable offset: (method name, source)} of a generated table class's field getters."""
    by_offset = {}
    for name, fn in vars(cls).items():
        if not inspect.isfunction(fn):
            continue
        src = inspect.getsource(fn)
        m = _OFFSET.search(src)
        if not m:
            continue
        off = int(m.group(1))
        # Vector fields also get <Name>Length / <Name>IsNone / <Name>AsNumpy: keep the shortest name.
        if off not in by_offset or len(name) < len(by_offset[off][0]):
            by_offset[off] = (name, src)
    return by_offset


def _official_kind(src):
    flags = [f for f in _FLAGS.findall(src) if f != "UOffsetT"]
    obj = re.search(r"obj = (\w+)\(\)", src)
    if "self._tab.Union(" in src:
        return ("union",)
    if "self._tab.Vector(" in src:
        if "Indirect" in src:
            return ("vector", "table", obj.group(1))
        if "self._tab.String(" in src:
            return ("vector", "string")
        return ("vector", flags[0])
    if "self._tab.String(" in src:
        return ("string",)
    if "Indirect" in src:
        return ("table", obj.group(1))
    return ("scalar", flags[0])


def _official_default(src):
    return ast.literal_eval(src.rstrip().rsplit("\n", 1)[-1].strip()[len("return ") :])


def _official_enum(name):
    cls, _ = _official_class(name)
    assert cls is not None, f"official package has no enum {name}"
    return {k: v for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


# --------------------------------------------------------------------------------------------
# The checks.
# --------------------------------------------------------------------------------------------


def test_flatc_builds_the_header_the_build_compiles(tmp_path):
    """flatc in the build's mode (--cpp --gen-mutable, cmake/CircleSchema.cmake) gives a header
    that compiles, has the mutators the extended-buffer writer patches Buffer.offset / size with,
    and names every Circle op of the exporter's op table (csrc/exporter/ir/circle_ops.lst). The
    tests' own modes (--binary --schema, --python) run in the fixtures below."""
    from torch_circle import _C

    _run_flatc("--cpp", "--gen-mutable", "-o", str(tmp_path), str(SCHEMA))
    header = tmp_path / "circle_schema_generated.h"
    text = header.read_text()
    assert "bool mutate_offset(" in text and "bool mutate_size(" in text
    ops = [row["type"] for row in _C.circle_op_table() if row["builtin"]]
    check = tmp_path / "check.cpp"
    check.write_text(
        '#include "circle_schema_generated.h"\n'
        + "".join(f'static_assert(circle::BuiltinOperator_{op} >= 0, "{op}");\n' for op in ops)
    )
    result = subprocess.run(
        ["c++", "-std=c++17", "-fsyntax-only", "-I", str(tmp_path), str(check)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_file_identity(ours):
    assert ours["file_ident"] == "CIR0"
    assert ours["file_ext"] == "circle"
    assert ours["root_table"] == "Model"
    model_src = inspect.getsource(_official_class("Model")[1])
    ident = re.search(r'BufferHasIdentifier\(buf, offset, b"([^"]+)"', model_src).group(1)
    assert ident.encode().decode("unicode_escape") == ours["file_ident"]


def test_enums_match_official_and_are_complete(ours):
    plain = {n: e for n, e in ours["enums"].items() if not e["union"]}
    assert {
        "TensorType",
        "BuiltinOperator",
        "ActivationFunctionType",
        "Padding",
        "FullyConnectedOptionsWeightsFormat",
        "MirrorPadMode",
    } <= set(plain)
    for name, enum in plain.items():
        ours_values = {k: v for k, (v, _) in enum["values"].items()}
        official = _official_enum(name)
        wrong = {k: (v, official.get(k)) for k, v in ours_values.items() if official.get(k) != v}
        assert not wrong, f"{name}: values differ from the official schema (ours, official): {wrong}"
        missing = set(official) - set(ours_values)
        assert not missing, f"{name}: official values missing from our schema: {sorted(missing)}"
    assert plain["BuiltinOperator"]["underlying"] == "Int32"
    assert plain["TensorType"]["underlying"] == "Int8"
    # Circle-only codes are negative; spot-check a few the exporter writes.
    ops = {k: v for k, (v, _) in plain["BuiltinOperator"]["values"].items()}
    assert (ops["INSTANCE_NORM"], ops["RMS_NORM"], ops["ROPE"]) == (-2, -6, -7)
    assert (ops["CONV_2D"], ops["FULLY_CONNECTED"], ops["GELU"]) == (3, 9, 150)


def test_union_members_at_official_numbers(ours):
    unions = {n: e for n, e in ours["enums"].items() if e["union"]}
    assert set(unions) == {"BuiltinOptions", "QuantizationDetails", "SparseIndexVector"}
    for name, union in unions.items():
        official = _official_enum(name)
        creator_src = inspect.getsource(_official_class(name)[1])
        for member, (value, table) in union["values"].items():
            assert official.get(member) == value, f"{name}.{member}: ours {value}, official {official.get(member)}"
            if member == "NONE":
                continue
            assert table == member, f"{name}.{member} should hold table {member}, holds {table}"
            # the official creator builds the table of the same name for this type number
            assert re.search(rf"{name}\(\)\.{member}:\n\s+import [\w.]+\.{member}\n", creator_src), (
                f"official {name}.{member} does not hold table {member}"
            )
        if name != "BuiltinOptions":
            assert set(official) == set(union["values"]), f"{name} should list every official member"
    members = unions["BuiltinOptions"]["values"]
    missing = [m for m in REQUIRED_OPTIONS if m not in members]
    assert not missing, f"BuiltinOptions lacks options the exporter needs: {missing}"
    assert "RsqrtOptions" not in _official_enum("BuiltinOptions")  # RSQRT has no options table


def test_tables_match_official_slots_types_and_defaults(ours):
    for table, fields in ours["tables"].items():
        cls, _ = _official_class(table)
        assert cls is not None and hasattr(cls, "Init"), f"official package has no table {table}"
        official = _official_accessors(cls)
        for fname, f in fields.items():
            off = 4 + 2 * f["id"]
            where = f"{table}.{fname} (id {f['id']}, vtable offset {off})"
            if f["deprecated"]:
                assert off not in official, f"{where} is deprecated here but live in the official schema"
                continue
            assert off in official, f"{where}: no official field at this slot"
            accessor, src = official[off]
            assert accessor == _camel(fname), f"{where}: official field at this slot is {accessor}"
            kind = _official_kind(src)
            assert kind == f["kind"], f"{where}: ours {f['kind']}, official {kind}"
            if kind[0] == "scalar":
                official_default = _official_default(src)
                assert official_default == f["default"], (
                    f"{where}: default ours {f['default']}, official {official_default}"
                )
            if kind[0] == "union":
                unpack = inspect.getsource(_official_class(table)[1])
                assert re.search(rf"{f['union']}Creator\(self\.\w+Type", unpack), (
                    f"{where}: official field is not of union {f['union']}"
                )
        # Reverse: no official field may be missing below our last one (ids are positional),
        # and tables other than the deliberately truncated ones are complete.
        our_offsets = {4 + 2 * f["id"] for f in fields.values()}
        top = max(our_offsets, default=2)
        gaps = sorted(name for off, (name, _) in official.items() if off not in our_offsets and off < top)
        assert not gaps, f"{table}: official fields missing from our schema: {gaps}"
        if table not in TRUNCATED_TABLES:
            extra = sorted(name for off, (name, _) in official.items() if off > top)
            assert not extra, f"{table}: official fields after our last one: {extra}"


def test_key_tables_have_the_official_shape(ours):
    t = ours["tables"]
    assert max(f["id"] for f in t["Tensor"].values()) == 10 == t["Tensor"]["compression_type"]["id"]
    assert len(t["Tensor"]) == 11
    assert [n for n, _ in sorted(t["Model"].items(), key=lambda kv: kv[1]["id"])] == [
        "version",
        "operator_codes",
        "subgraphs",
        "description",
        "buffers",
        "metadata_buffer",
        "metadata",
        "signature_defs",
    ]
    assert t["Operator"]["large_custom_options_size"]["id"] == 10
    assert t["Operator"]["builtin_options"]["union"] == "BuiltinOptions"
    assert t["QuantizationParameters"]["details"]["union"] == "QuantizationDetails"
    assert t["Buffer"]["data"]["attributes"].get("force_align") == "16"
    assert t["CustomQuantization"]["custom"]["attributes"].get("force_align") == "16"
    assert t["OperatorCode"]["version"]["default"] == 1


# --------------------------------------------------------------------------------------------
# Round trips through real bytes.
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ours_py(tmp_path_factory):
    """Python code flatc generates from our schema, importable as the package `circle`."""
    out = tmp_path_factory.mktemp("pygen")
    _run_flatc("--python", "-o", str(out), str(SCHEMA))
    saved_path = list(sys.path)
    saved = {k: v for k, v in sys.modules.items() if k == "circle" or k.startswith("circle.")}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, str(out))
    try:

        def load(name):
            return importlib.import_module(f"circle.{name}")

        yield load
    finally:
        sys.path[:] = saved_path
        for k in [k for k in sys.modules if k == "circle" or k.startswith("circle.")]:
            del sys.modules[k]
        sys.modules.update(saved)


def _vector(builder, start_fn, values, prepend):
    start_fn(builder, len(values))
    for v in reversed(values):
        prepend(v)
    return builder.EndVector()


def test_model_written_with_our_schema_reads_with_official(ours_py):
    m = {
        n: ours_py(n)
        for n in (
            "Model",
            "SubGraph",
            "Tensor",
            "Buffer",
            "Operator",
            "OperatorCode",
            "QuantizationParameters",
            "Conv2DOptions",
            "RmsNormOptions",
            "BuiltinOptions",
            "BuiltinOperator",
            "TensorType",
            "Padding",
            "ActivationFunctionType",
        )
    }
    b = flatbuffers.Builder(1024)
    name = b.CreateString("x")
    sg_name = b.CreateString("main")
    desc = b.CreateString("torch-circle schema test")

    Q = m["QuantizationParameters"]
    scale = _vector(b, Q.StartScaleVector, [0.5, 0.25], b.PrependFloat32)
    zp = _vector(b, Q.StartZeroPointVector, [-3, 0], b.PrependInt64)
    Q.Start(b)
    Q.AddScale(b, scale)
    Q.AddZeroPoint(b, zp)
    Q.AddQuantizedDimension(b, 3)
    quant = Q.End(b)

    T = m["Tensor"]
    shape = _vector(b, T.StartShapeVector, [1, 4, 4, 2], b.PrependInt32)
    T.Start(b)
    T.AddShape(b, shape)
    T.AddType(b, m["TensorType"].TensorType.INT8)
    T.AddBuffer(b, 1)
    T.AddName(b, name)
    T.AddQuantization(b, quant)
    T.AddHasRank(b, True)
    tensor = T.End(b)

    C = m["Conv2DOptions"]
    C.Start(b)
    C.AddPadding(b, m["Padding"].Padding.VALID)
    C.AddStrideW(b, 2)
    C.AddStrideH(b, 1)
    C.AddFusedActivationFunction(b, m["ActivationFunctionType"].ActivationFunctionType.RELU6)
    C.AddQuantizedBiasType(b, m["TensorType"].TensorType.INT32)
    conv = C.End(b)
    R = m["RmsNormOptions"]
    R.Start(b)
    R.AddEpsilon(b, 1e-6)
    rms = R.End(b)

    Op, BO = m["Operator"], m["BuiltinOptions"].BuiltinOptions
    ops = []
    for index, (kind, options) in enumerate([(BO.RmsNormOptions, rms), (BO.Conv2DOptions, conv)]):
        ins = _vector(b, Op.StartInputsVector, [0, -1], b.PrependInt32)
        outs = _vector(b, Op.StartOutputsVector, [0], b.PrependInt32)
        Op.Start(b)
        Op.AddOpcodeIndex(b, index)
        Op.AddInputs(b, ins)
        Op.AddOutputs(b, outs)
        Op.AddBuiltinOptionsType(b, kind)
        Op.AddBuiltinOptions(b, options)
        ops.append(Op.End(b))

    S = m["SubGraph"]
    tensors = _vector(b, S.StartTensorsVector, [tensor], b.PrependUOffsetTRelative)
    sg_in = _vector(b, S.StartInputsVector, [0], b.PrependInt32)
    operators = _vector(b, S.StartOperatorsVector, ops, b.PrependUOffsetTRelative)
    S.Start(b)
    S.AddTensors(b, tensors)
    S.AddInputs(b, sg_in)
    S.AddOperators(b, operators)
    S.AddName(b, sg_name)
    subgraph = S.End(b)

    OC, BOp = m["OperatorCode"], m["BuiltinOperator"].BuiltinOperator
    codes = []
    for code in (BOp.RMS_NORM, BOp.CONV_2D):
        OC.Start(b)
        OC.AddDeprecatedBuiltinCode(b, min(127, code))
        OC.AddBuiltinCode(b, code)
        codes.append(OC.End(b))

    Bf = m["Buffer"]
    Bf.Start(b)
    empty = Bf.End(b)
    data = b.CreateByteVector(bytes(range(32)))
    Bf.Start(b)
    Bf.AddData(b, data)
    full = Bf.End(b)

    M = m["Model"]
    codes_v = _vector(b, M.StartOperatorCodesVector, codes, b.PrependUOffsetTRelative)
    sgs = _vector(b, M.StartSubgraphsVector, [subgraph], b.PrependUOffsetTRelative)
    bufs = _vector(b, M.StartBuffersVector, [empty, full], b.PrependUOffsetTRelative)
    M.Start(b)
    M.AddVersion(b, 0)
    M.AddOperatorCodes(b, codes_v)
    M.AddSubgraphs(b, sgs)
    M.AddDescription(b, desc)
    M.AddBuffers(b, bufs)
    b.Finish(M.End(b), file_identifier=b"CIR0")
    buf = bytes(b.Output())

    off = official_pkg
    model_mod = importlib.import_module(f"{off.__name__}.Model")
    assert model_mod.Model.ModelBufferHasIdentifier(buf, 0)
    model = model_mod.ModelT.InitFromPackedBuf(bytearray(buf))
    BOff = importlib.import_module(f"{off.__name__}.BuiltinOptions").BuiltinOptions
    BOpOff = importlib.import_module(f"{off.__name__}.BuiltinOperator").BuiltinOperator
    TTOff = importlib.import_module(f"{off.__name__}.TensorType").TensorType

    assert model.version == 0 and model.description == b"torch-circle schema test"
    assert [(c.builtinCode, c.deprecatedBuiltinCode, c.version) for c in model.operatorCodes] == [
        (BOpOff.RMS_NORM, -6, 1),
        (BOpOff.CONV_2D, 3, 1),
    ]
    assert model.buffers[0].data is None and list(model.buffers[1].data) == list(range(32))
    sg = model.subgraphs[0]
    assert sg.name == b"main" and list(sg.inputs) == [0] and sg.debugMetadataIndex == -1
    t = sg.tensors[0]
    assert (list(t.shape), t.type, t.buffer, t.name, t.hasRank) == ([1, 4, 4, 2], TTOff.INT8, 1, b"x", True)
    assert list(t.quantization.scale) == [0.5, 0.25] and list(t.quantization.zeroPoint) == [-3, 0]
    assert t.quantization.quantizedDimension == 3
    rms_op, conv_op = sg.operators
    assert rms_op.builtinOptionsType == BOff.RmsNormOptions
    assert rms_op.builtinOptions.epsilon == pytest.approx(1e-6)
    assert list(rms_op.inputs) == [0, -1]
    assert conv_op.builtinOptionsType == BOff.Conv2DOptions
    o = conv_op.builtinOptions
    assert (o.padding, o.strideW, o.strideH, o.fusedActivationFunction) == (1, 2, 1, 3)
    assert (o.dilationWFactor, o.dilationHFactor, o.quantizedBiasType) == (1, 1, TTOff.INT32)


def test_model_written_with_official_reads_with_our_schema(ours_py):
    name = official_pkg.__name__
    mod = lambda n: importlib.import_module(f"{name}.{n}")  # noqa: E731
    opts = mod("InstanceNormOptions").InstanceNormOptionsT()
    opts.epsilon, opts.fusedActivationFunction = 1e-5, 1
    op = mod("Operator").OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    op.builtinOptionsType = mod("BuiltinOptions").BuiltinOptions.InstanceNormOptions
    op.builtinOptions = opts
    sg = mod("SubGraph").SubGraphT()
    sg.operators = [op]
    code = mod("OperatorCode").OperatorCodeT()
    code.deprecatedBuiltinCode = code.builtinCode = mod("BuiltinOperator").BuiltinOperator.INSTANCE_NORM
    tensor = mod("Tensor").TensorT()
    tensor.shape, tensor.type, tensor.compressionType = [2, 3], mod("TensorType").TensorType.UINT4, 1
    sg.tensors = [tensor]
    model = mod("Model").ModelT()
    model.version, model.operatorCodes, model.subgraphs = 0, [code], [sg]
    model.buffers = [mod("Buffer").BufferT()]
    b = flatbuffers.Builder(256)
    b.Finish(model.Pack(b), file_identifier=b"CIR0")
    buf = b.Output()

    M = ours_py("Model").Model
    assert M.ModelBufferHasIdentifier(buf, 0)
    read = M.GetRootAs(buf, 0)
    assert read.OperatorCodes(0).BuiltinCode() == ours_py("BuiltinOperator").BuiltinOperator.INSTANCE_NORM
    sub = read.Subgraphs(0)
    t = sub.Tensors(0)
    assert (t.Type(), t.CompressionType()) == (ours_py("TensorType").TensorType.UINT4, 1)
    o = sub.Operators(0)
    assert o.BuiltinOptionsType() == ours_py("BuiltinOptions").BuiltinOptions.InstanceNormOptions
    inst = ours_py("InstanceNormOptions").InstanceNormOptions()
    inst.Init(o.BuiltinOptions().Bytes, o.BuiltinOptions().Pos)
    assert inst.Epsilon() == pytest.approx(1e-5) and inst.FusedActivationFunction() == 1
    assert [o.Inputs(i) for i in range(o.InputsLength())] == [0, 1, 2]
