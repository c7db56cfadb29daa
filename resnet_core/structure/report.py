"""Presenting a trace: number formats, the text table, CSV. Measuring lives in trace.py."""

from __future__ import annotations

import csv
import io
from typing import Iterable

from resnet_core.structure.plan import shape_str
from resnet_core.structure.trace import Trace, TraceRow

CSV_COLUMNS = ["index", "name", "type", "stage", "block", "part", "input_shape", "output_shape", "shortcut_shape",
               "kernel", "stride", "padding", "groups", "params", "mult_adds", "elementwise", "receptive_field",
               "effective_stride", "activation_bytes", "failed"]


def fmt_count(n: int | float | None, unit: str = "") -> str:
    """11689512 → '11.69 M'; small numbers stay exact."""
    if n is None:
        return "—"
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.2f} {suffix}{unit}"
    return f"{n:g} {unit}".rstrip() if isinstance(n, float) else f"{n} {unit}".rstrip()


def fmt_bytes(n: int | float | None) -> str:
    if n is None:
        return "—"
    for div, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= div:
            return f"{n / div:.1f} {suffix}"
    return f"{int(n)} B"


def kernel_str(row: TraceRow) -> str:
    lay = row.layer
    if not lay.kernel or lay.op in ("gap",):
        return ""
    s = f"{lay.kernel}×{lay.kernel}"
    if lay.stride > 1:
        s += f"/{lay.stride}"
    if lay.groups > 1:
        s += f" g{lay.groups}"
    return s


def _csv_value(v):
    if isinstance(v, list):
        return "×".join(map(str, v))
    if v is None:
        return ""
    return v


def to_csv(t: Trace) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in t.layers:
        d = r.to_dict()
        w.writerow([_csv_value(d[c]) for c in CSV_COLUMNS])
    return buf.getvalue()


def _table(header: list[str], rows: Iterable[list[str]], right: set[int]) -> list[str]:
    rows = list(rows)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    def line(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    out = [line(header), "  ".join("─" * w for w in widths)]
    out += [line(r) for r in rows]
    return out


def to_table(t: Trace) -> str:
    """The layer-by-layer table, the per-stage breakdown and the totals, as fixed-width text."""
    lines = [f"{t.spec.name} · input {shape_str(t.input_shape)} → output {shape_str(t.output_shape)}", ""]
    header = ["Layer", "Type", "Input", "Output", "Kernel", "Params", "Mult-adds", "RF"]
    rows = []
    for r in t.layers:
        rows.append([r.name, r.type, shape_str(r.in_shape), _out_text(r.layer), kernel_str(r), f"{r.params:,}",
                     f"{r.mult_adds:,}", str(r.receptive_field)])
    lines += _table(header, rows, right={5, 6, 7})
    lines += ["", "Per stage:"]
    grows = [[g.label, str(g.blocks or ""), shape_str(g.out_shape), f"{g.params:,}", f"{g.mult_adds:,}",
              fmt_bytes(g.activation_bytes)] for g in t.groups()]
    lines += _table(["Part", "Blocks", "Output", "Params", "Mult-adds", "Activations"], grows, right={1, 3, 4, 5})
    lines += [
        "",
        f"Total params:       {t.total_params:,}",
        f"Total mult-adds:    {t.mult_adds:,} ({fmt_count(t.mult_adds)})",
        f"Element-wise ops:   {t.elementwise:,} (additions, activations, norms, pools; not in mult-adds)",
        f"Receptive field:    {t.receptive_field} px",
        f"Activations:        {fmt_bytes(t.activation_bytes)} per image (float32, all layer outputs)",
        f"Parameters:         {fmt_bytes(t.param_bytes)} (float32)",
    ]
    for w in t.warnings:
        lines.append(f"Warning: {w}")
    for e in t.errors:
        lines.append(f"Error: {e}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Rows for tables and charts (the app renders these; tests read them, since AppTest cannot see charts)
# ---------------------------------------------------------------------------------------------

DEPTHS = ("stage", "block", "layer")


def _out_text(lay) -> str:
    if not lay.failed:
        return shape_str(lay.out_shape)
    if lay.op == "add":  # F(x) and the shortcut that cannot be added
        return f"✗ {shape_str(lay.in_shape)} ≠ {shape_str(lay.other_shape)}"
    return "✗ fails here"


def table_rows(t: Trace, depth: str = "layer") -> list[dict]:
    """The trace as table rows at `depth`: "stage" (stem, stages, head), "block", or "layer"."""
    if depth not in DEPTHS:
        raise ValueError(f"depth must be one of {', '.join(DEPTHS)}, got {depth!r}")
    if depth == "layer":
        rows = []
        for r in t.layers:
            lay = r.layer
            rows.append({
                "Layer": lay.name, "Type": lay.type,
                "Where": "stem" if lay.part == "stem" else "head" if lay.part == "head"
                else f"stage {lay.stage + 1} · block {lay.block}" + (" · shortcut" if lay.part == "shortcut" else ""),
                "Input": shape_str(lay.in_shape),
                "Output": _out_text(lay),
                "Kernel": kernel_str(r), "Params": r.params, "Mult-adds": r.mult_adds,
                "Element-wise": r.elementwise, "RF": r.receptive_field, "Stride": r.effective_stride,
                "Memory (KiB)": round(r.activation_bytes / 1024, 1),
            })
        return rows
    groups = t.groups() if depth == "stage" else t.blocks()
    rows = []
    for g in groups:
        row = {"Part": g.label, "Name": g.name, "Input": shape_str(g.in_shape),
               "Output": "✗ fails here" if g.failed else shape_str(g.out_shape)}
        if depth == "stage":
            row["Blocks"] = g.blocks
        row.update({"Layers": g.layers, "Params": g.params, "Mult-adds": g.mult_adds, "Element-wise": g.elementwise,
                    "RF": g.receptive_field, "Memory (KiB)": round(g.activation_bytes / 1024, 1)})
        rows.append(row)
    return rows


def staircase_rows(t: Trace) -> list[dict]:
    """The tensor flowing between blocks: the input, every stem and head layer's output, and every residual
    block's output, at its depth on the main path — the 224→112→56→28→14→7→1 staircase (spatial size) and
    64→…→512 (channels). Layers inside a block (a bottleneck's 1×1 reductions) are left out."""
    c, h = t.input_shape[0], t.input_shape[1]
    rows = [{"depth": 0, "layer": "input", "type": "input", "shape": shape_str(t.input_shape), "spatial": h,
             "channels": c, "part": "input"}]
    block_ends = {b.end - 1 for b in t.plan.blocks if b.out_shape is not None}
    depth = 0
    for r in t.layers:
        lay = r.layer
        if lay.part == "shortcut" or lay.out_shape is None:
            continue
        depth += 1
        if lay.stage is not None and lay.index not in block_ends:
            continue
        shape = lay.out_shape
        group = "stem" if lay.part == "stem" else "head" if lay.part == "head" else f"stage {lay.stage + 1}"
        name = lay.name if lay.stage is None else f"layer{lay.stage + 1}.{lay.block} (block output)"
        rows.append({"depth": depth, "layer": name, "type": lay.type, "shape": shape_str(shape),
                     "spatial": shape[1] if len(shape) == 3 else 1, "channels": shape[0], "part": group})
    return rows


def stage_chart_rows(t: Trace) -> list[dict]:
    """Parameters and mult-adds per stem / stage / head, long format (one row per measure)."""
    rows = []
    for g in t.groups():
        part = g.label.split(" (")[0]  # "stage 2", short enough for an axis
        rows.append({"part": part, "measure": "parameters", "value": g.params})
        rows.append({"part": part, "measure": "mult-adds", "value": g.mult_adds})
    return rows


def compare_rows(a: Trace, b: Trace, label_a: str = "A", label_b: str = "B") -> list[dict]:
    """Per stem / stage / head: both networks' parameters, mult-adds and outputs, and the differences."""
    ga = {g.name: g for g in a.groups()}
    gb = {g.name: g for g in b.groups()}
    order = list(ga) + [n for n in gb if n not in ga]
    order.sort(key=lambda n: (n != "stem", n == "head", n))
    rows = []
    for name in order:
        x, y = ga.get(name), gb.get(name)
        rows.append({
            "Part": (x or y).label,
            f"Output {label_a}": shape_str(x.out_shape) if x else "—",
            f"Output {label_b}": shape_str(y.out_shape) if y else "—",
            f"Params {label_a}": x.params if x else 0, f"Params {label_b}": y.params if y else 0,
            "Δ params": (y.params if y else 0) - (x.params if x else 0),
            f"Mult-adds {label_a}": x.mult_adds if x else 0, f"Mult-adds {label_b}": y.mult_adds if y else 0,
            "Δ mult-adds": (y.mult_adds if y else 0) - (x.mult_adds if x else 0),
        })
    return rows


def staircase_summary(t: Trace) -> tuple[str, str]:
    """The staircase in words: ("224 → 112 → 56 → 28 → 14 → 7 → 1", "3 → 64 → 128 → 256 → 512 → 1000")."""
    rows = staircase_rows(t)

    def path(field: str) -> str:
        values = [r[field] for r in rows]
        kept = [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
        return " → ".join(str(v) for v in kept)

    return path("spatial"), path("channels")
