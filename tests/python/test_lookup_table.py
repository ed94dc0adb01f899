"""circle_quant.lookup_table and the backend pass that builds its tables: dequantize →
elementwise ops → quantize chains become one gather through a 256-entry table."""

import pytest
import torch
from torch import nn
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

import torch_circle.backend as backend
from models import seeded
from torch_circle.quantizer import CircleQuantizer

cq = torch.ops.circle_quant
qd = torch.ops.quantized_decomposed


def reference_lookup(x, table):
    offset = 128 if x.dtype == torch.int8 else 0
    return table[x.long() + offset]


@pytest.mark.parametrize("in_dtype", [torch.uint8, torch.int8])
@pytest.mark.parametrize("out_dtype", [torch.uint8, torch.int8])
@pytest.mark.parametrize("shape", [(0,), (1,), (7, 13), (3, 64, 5, 5), (2, 300_001)])
def test_every_value_maps_through_its_entry(isa, in_dtype, out_dtype, shape):
    gen = torch.Generator().manual_seed(sum(shape))
    info = torch.iinfo(in_dtype)
    x = torch.randint(info.min, info.max + 1, shape, generator=gen, dtype=torch.int32).to(in_dtype)
    out_info = torch.iinfo(out_dtype)
    table = torch.randint(out_info.min, out_info.max + 1, (256,), generator=gen, dtype=torch.int32).to(out_dtype)
    y = cq.lookup_table(x, table)
    assert y.dtype == out_dtype and y.shape == x.shape
    assert torch.equal(y, reference_lookup(x, table))


def test_layouts_are_kept_and_strided_inputs_read_correctly():
    x = torch.randint(0, 256, (2, 8, 5, 5), dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
    table = torch.arange(255, -1, -1, dtype=torch.int32).to(torch.uint8)
    y = cq.lookup_table(x, table)
    assert y.is_contiguous(memory_format=torch.channels_last) and torch.equal(y, 255 - x)
    strided = x.transpose(1, 3)[:, ::2]
    assert torch.equal(cq.lookup_table(strided, table), 255 - strided)


def test_bad_arguments_name_the_op():
    x = torch.zeros(4, dtype=torch.uint8)
    with pytest.raises(TypeError, match="lookup_table: input must be uint8 or int8"):
        cq.lookup_table(x.float(), torch.zeros(256, dtype=torch.uint8))
    with pytest.raises(ValueError, match="lookup_table: table must hold 256 entries"):
        cq.lookup_table(x, torch.zeros(255, dtype=torch.uint8))
    with pytest.raises(TypeError, match="lookup_table: table must be uint8 or int8"):
        cq.lookup_table(x, torch.zeros(256, dtype=torch.int16))


OPCHECK_CASES = [
    (
        cq.lookup_table,
        (torch.randint(0, 256, (3, 17), dtype=torch.uint8), torch.randint(-128, 128, (256,), dtype=torch.int8)),
        {},
    ),
    (
        cq.lookup_table,
        (torch.randint(-128, 128, (2, 3, 4), dtype=torch.int8), torch.randint(0, 256, (256,), dtype=torch.uint8)),
        {},
    ),
]  # test_registry.py checks that every op has some


@pytest.mark.parametrize("op,args,kwargs", OPCHECK_CASES)
def test_opcheck(op, args, kwargs):
    torch.library.opcheck(op, args, kwargs)


# --- the backend pass ----------------------------------------------------------------------------


class Activations(nn.Module):
    """Linear layers separated by the elementwise functions quantized models carry."""

    def __init__(self, act):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(32, 64), nn.Linear(64, 16)
        self.act = act

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


ACTIVATIONS = {
    "gelu": nn.GELU(),
    "gelu_tanh": nn.GELU(approximate="tanh"),
    "silu": nn.SiLU(),
    "sigmoid": nn.Sigmoid(),
    "tanh": nn.Tanh(),
    "hardswish": nn.Hardswish(),
}


def converted(act, preset):
    torch.manual_seed(0)
    model = Activations(act).eval()
    x = torch.randn(64, 32) * 2
    prepared = prepare_pt2e(torch.export.export(model, (x,)).module(), CircleQuantizer(preset))
    for _ in range(3):
        prepared(torch.randn(64, 32) * 2)
    return convert_pt2e(prepared), x


@pytest.mark.parametrize("preset", ["uint8", "int8"])
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_elementwise_chains_become_tables_with_the_reference_results(name, preset):
    gm, x = converted(ACTIVATIONS[name], preset)
    compiled = backend.compile_graph(gm, [x], options={"delegate": "eager"})
    # The function's table, and where the function's output parameters (sigmoid's [0, 1]) differ
    # from the next layer's input ones, a requantize between two fused ops as a second table.
    assert compiled.report.lookup_tables in (1, 2), compiled.report.summary()
    targets = {n.target for n in compiled.gm.graph.nodes if n.op == "call_function"}
    assert cq.lookup_table.default in targets
    function = name.split("_")[0]
    assert not any(getattr(getattr(t, "overloadpacket", None), "__name__", "") == function for t in targets)
    # The table holds exactly what the reference ops compute for each byte; the reference graph
    # evaluates the same ops on whole tensors, whose vectorized paths may differ from these by an
    # ulp: at most one output step, almost always none.
    with torch.no_grad():
        xs = torch.randn(64, 32) * 3
        expected, actual = gm(xs), compiled(xs)
    step = next(n for n in gm.graph.nodes if n.op == "output").args[0][0].args[1]
    diff = (actual - expected).abs()
    assert diff.max().item() <= step * 1.001
    assert (diff > step * 0.5).float().mean().item() < 0.01


def test_cheap_arithmetic_stays_with_inductor_unless_fused_ops_surround_it():
    class Scale(nn.Module):
        def __init__(self, norm_after):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(8, 8), nn.Linear(8, 8)
            self.norm = nn.LayerNorm(8) if norm_after else None

        def forward(self, x):
            y = self.fc1(x) * 0.5
            return self.fc2(self.norm(y) if self.norm is not None else y)

    x = torch.randn(4, 8)
    for norm_after, tables in ((True, 0), (False, 1)):
        model = seeded(Scale(norm_after))
        prepared = prepare_pt2e(torch.export.export(model, (x,)).module(), CircleQuantizer("uint8"))
        prepared(x)
        gm = convert_pt2e(prepared)
        compiled = backend.compile_graph(gm, [x], options={"delegate": "eager"})
        # Before a layer norm, inductor fuses the arithmetic into its kernel; between two fused
        # linears nothing would, and the table gives the reference's results.
        assert compiled.report.lookup_tables == tables, compiled.report.summary()
        with torch.no_grad():
            assert torch.equal(compiled(x), gm(x))


def test_tables_under_inductor_and_the_encoder():
    from models import EncoderLayer, seeded

    torch.manual_seed(0)
    model = seeded(EncoderLayer(32, 4))
    x = torch.randn(2, 8, 32)
    prepared = prepare_pt2e(torch.export.export(model, (x,)).module(), CircleQuantizer("uint8"))
    for _ in range(3):
        prepared(torch.randn(2, 8, 32))
    gm = convert_pt2e(prepared)
    torch._dynamo.reset()
    compiled = torch.compile(gm, backend="circle_quant")
    with torch.no_grad():
        actual, expected = compiled(x), gm(x)
    assert backend.last_report().lookup_tables >= 1, backend.last_report().summary()
    step = next(n for n in gm.graph.nodes if n.op == "output").args[0][0].args[1]
    assert (actual - expected).abs().max().item() <= step * 1.001
