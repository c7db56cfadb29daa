"""Presenting a trace: number formats, the text table, CSV. Measuring lives in trace.py."""

from __future__ import annotations

import csv
import io
from typing import Iterable

from .plan import shape_str
from .trace import Trace, TraceRow

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
        out = "✗ " + (shape_str(r.layer.other_shape) + " ≠" if r.layer.op == "add" and r.layer.failed else "fails") \
            if r.layer.failed else shape_str(r.out_shape)
        rows.append([r.name, r.type, shape_str(r.in_shape), out, kernel_str(r), f"{r.params:,}",
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
