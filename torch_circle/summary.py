"""Human-readable summaries of a verified .circle / .tflite file (``torch-circle inspect``)."""

from __future__ import annotations

from collections import Counter


def printable(name: str) -> str:
    """A name from the file as printable text: control characters (NUL, newline, the ESC of a
    terminal escape sequence) and other unprintable ones as Python escapes, so a crafted file
    cannot write to the terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in name)


def _shape(t: dict) -> str:
    dims = t["shape_signature"] or t["shape"]
    return "[" + ", ".join("?" if d < 0 else str(d) for d in dims) + "]"


def _quant(t: dict) -> str:
    scale, zp = t["scale"], t["zero_point"]
    if not scale:
        return ""
    if len(scale) == 1:
        return f"scale={scale[0]:.6g} zp={zp[0] if zp else 0}"
    return (
        f"per-channel(dim {t['quantized_dimension']}, {len(scale)} ch) "
        f"scale=[{min(scale):.3g}..{max(scale):.3g}] zp=[{min(zp)}..{max(zp)}]"
    )


def format_summary(info: dict, tensors: bool = True) -> str:
    lines = [
        f"format: {'TFLite' if info['identifier'] == 'TFL3' else 'Circle'} "
        f"(identifier {info['identifier']}, version {info['version']}), {info['file_size']:,} bytes, "
        f"{info['buffer_count']} buffers" + (", extended buffer layout" if info["extended_buffers"] else "")
    ]
    if info["description"]:
        lines.append(f"description: {printable(info['description'])}")
    for index, sg in enumerate(info["subgraphs"]):
        t = sg["tensors"]
        weights = sum(x["data_bytes"] for x in t)
        counts = Counter(op["op"] for op in sg["operators"])
        lines.append(
            f"\nsubgraph {index} '{printable(sg['name'])}': {len(sg['operators'])} ops, {len(t)} tensors, "
            f"{weights:,} bytes of constants"
        )
        lines.append("  ops: " + ", ".join(f"{printable(name)} x{n}" for name, n in counts.most_common()))
        for kind in ("inputs", "outputs"):
            for i in sg[kind]:
                lines.append(
                    f"  {kind[:-1]:6} #{i} {printable(t[i]['name'])}: {t[i]['dtype']} {_shape(t[i])} "
                    f"{_quant(t[i])}".rstrip()
                )
        lines.append("  operators:")
        for k, op in enumerate(sg["operators"]):
            ins = ", ".join("-" if i < 0 else f"#{i}" for i in op["inputs"])
            outs = ", ".join(f"#{i}" for i in op["outputs"])
            lines.append(f"    {k:4} {printable(op['op']):<22} ({ins}) -> ({outs})")
        if tensors:
            lines.append("  tensors:")
            for k, x in enumerate(t):
                data = f" const {x['data_bytes']:,} B" if x["data_bytes"] else ""
                lines.append(
                    f"    #{k:<4} {x['dtype']:<8} {_shape(x):<18} {printable(x['name'])}{data} {_quant(x)}".rstrip()
                )
    return "\n".join(lines)
