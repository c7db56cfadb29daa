"""Presenting a trace: the text table, CSV, rows for tables and charts. Measuring lives in trace.py; number
formats in resnet_core/formatting.py (`fmt_count` is imported here for callers that still read it from here)."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from resnet_core.formatting import fmt_bytes, fmt_count, text_table
from resnet_core.i18n import N_, _, ngettext
from resnet_core.structure.records import DETAILS, Detail, Layer, PlanProblem, Shape, shape_str
from resnet_core.structure.trace import GroupTotals, Trace, TraceRow, is_depth_layer
from resnet_core.text import csv_cell

CSV_COLUMNS = ["index", "name", "module", "type", "stage", "block", "part", "input_shape", "output_shape", "shortcut_shape",
               "kernel", "stride", "padding", "groups", "params", "mult_adds", "elementwise", "receptive_field",
               "effective_stride", "activation_bytes", "failed"]


# The tables' column names: the rows' keys stay English (code reads them); a page shows `column_label(key)`.
COLUMNS = (N_("Layer"), N_("Type"), N_("Where"), N_("Input"), N_("Output"), N_("Kernel"), N_("Params"),
           N_("Mult-adds"), N_("Element-wise"), N_("RF"), N_("Stride"), N_("Memory (KiB)"), N_("Part"), N_("Name"),
           N_("Blocks"), N_("Layers"), N_("Activations"), N_("Δ params"), N_("Δ mult-adds"))


def column_label(key: str) -> str:
    """A table column's name in this run's language: "Output A" → _("Output") + " A" (compare_rows' keys)."""
    head, sep, tail = key.rpartition(" ")
    if key not in COLUMNS and head in COLUMNS:
        return _(head) + sep + tail
    return _(key)


_PART = re.compile(r"stage (\d+)(?: \((.+)\)| · block (\d+)| · (downsampling))?")


def part_text(label: str) -> str:
    """A group's label (trace.py's GroupTotals.label: "stem", "stage 2 (layer2)", "stage 2 · block 0", "head") in
    this run's language; the labels themselves stay English, since they are also keys."""
    m = _PART.fullmatch(label)
    if m is None:
        return _(label) if label in ("stem", "head") else label
    n, name, block, down = m.groups()
    if name:
        return _("stage {n} ({name})", n=n, name=name)
    if block is not None:
        return _("stage {n} · block {block}", n=n, block=block)
    if down:
        return _("stage {n} · downsampling", n=n)
    return _("stage {n}", n=n)


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


def _csv_value(v: object) -> object:
    if isinstance(v, list):
        return "×".join(map(str, v))
    if v is None:
        return ""
    return csv_cell(v)  # a cell starting with = + - @ is text, never a spreadsheet formula


def to_csv(t: Trace) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in t.layers:
        d = r.to_dict()
        w.writerow([_csv_value(d[c]) for c in CSV_COLUMNS])
    return buf.getvalue()


def to_table(t: Trace) -> str:
    """The layer-by-layer table, the per-stage breakdown and the totals, as fixed-width text."""
    lines = [_("{name} · input {input} → output {output}", name=t.spec.name, input=shape_str(t.input_shape),
               output=shape_str(t.output_shape)), ""]
    header = [_(h) for h in ("Layer", "Type", "Input", "Output", "Kernel", "Params", "Mult-adds", "RF")]
    rows = []
    for r in t.layers:
        rows.append([r.layer.label, r.type, shape_str(r.in_shape), _out_text(r.layer), kernel_str(r), f"{r.params:,}",
                     f"{r.mult_adds:,}", str(r.receptive_field)])
    lines += text_table(header, rows, right={5, 6, 7})
    lines += ["", _("Per stage:")]
    grows = [[part_text(g.label), str(g.blocks or ""), shape_str(g.out_shape), f"{g.params:,}", f"{g.mult_adds:,}",
              fmt_bytes(g.activation_bytes)] for g in t.groups()]
    lines += text_table([_(h) for h in ("Part", "Blocks", "Output", "Params", "Mult-adds", "Activations")], grows,
                        right={1, 3, 4, 5})
    lines += [
        "",
        _("Depth:              {depth}", depth=depth_text(t)),
        _("Total params:       {n:,}", n=t.total_params),
        _("Total mult-adds:    {n:,} ({count}; torchinfo's rule)", n=t.mult_adds, count=fmt_count(t.mult_adds)),
        _("Conv/linear only:   {n:,} ({count}; torchvision's GFLOPS and FlopCounterMode ÷ 2 count these)",
          n=t.weight_mult_adds, count=fmt_count(t.weight_mult_adds)),
        _("Element-wise ops:   {n:,} (additions, activations, norms, pools; not in mult-adds)", n=t.elementwise),
        _("Receptive field:    {n} px", n=t.receptive_field),
        _("Activations:        {size} per image (float32, all layer outputs)", size=fmt_bytes(t.activation_bytes)),
        _("Parameters:         {size} (float32)", size=fmt_bytes(t.param_bytes)),
    ]
    for w in t.warnings:
        lines.append(_("Warning: {warning}", warning=w))
    for e in t.errors:
        lines.append(_("Error: {error}", error=e))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Rows for tables and charts (the app renders these; tests read them, since AppTest cannot see charts)
# ---------------------------------------------------------------------------------------------

DEPTHS = DETAILS  # a table's depth: the words of a graph's detail


def depth_text(t: Trace) -> str:
    """'18 weight layers (69 layers planned)'; on a broken network, what was planned before the failure."""
    text = ngettext("{n} weight layer", "{n} weight layers", t.depth, n=t.depth) + ngettext(
        " ({n} layer planned)", " ({n} layers planned)", t.layers_planned, n=t.layers_planned)
    return text if t.ok else text + _(", up to the failure")


def plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def sides_text(fx: Shape | None, shortcut: Shape | None) -> str:
    """The two sides of an addition, always in the same order: 'F(x) 128×28×28 vs shortcut 64×56×56'."""
    return _("F(x) {fx} vs shortcut {shortcut}", fx=shape_str(fx), shortcut=shape_str(shortcut))


def problem_sides(problem: PlanProblem) -> str | None:
    """A located problem's two shapes, named: F(x) first, the shortcut second (None when it has no two sides)."""
    if not problem.shapes:
        return None
    a, b = problem.shapes
    if problem.code == "channels_decrease":  # (x entering the zero-pad shortcut, the F(x) shape it must reach)
        return _("F(x) {fx} vs shortcut input x {x}", fx=shape_str(b), x=shape_str(a))
    return sides_text(a, b)


def _out_text(lay: Layer) -> str:
    if not lay.failed:
        return shape_str(lay.out_shape)
    if lay.op == "add":  # F(x) and the shortcut that cannot be added
        return _("✗ F(x) {fx} ≠ shortcut {shortcut}", fx=shape_str(lay.in_shape), shortcut=shape_str(lay.other_shape))
    return _("✗ fails here")


def _stop_row(t: Trace, keys: list[str]) -> dict[str, Any] | None:
    """A row for a failure that has no layer of its own (a stage whose settings cannot be planned), so the
    table marks where the network stops."""
    if t.ok or t.plan.failed_layer is not None or not t.errors:
        return None
    e = t.errors[0]
    row: dict[str, Any] = {k: None for k in keys}
    row[keys[0]] = f"✗ {e.where}"
    row.update({"Output": _("✗ fails here"), "Params": 0, "Mult-adds": 0, "Element-wise": 0})
    return row


def _where(lay: Layer) -> str:
    """Where a layer sits, in words: "stem", "head", "stage 2 · block 0", "stage 2 · block 0 · shortcut"."""
    if lay.stage is None:
        return _("head") if lay.part == "head" else _("stem")
    if lay.part == "shortcut":
        return _("stage {n} · block {block} · shortcut", n=lay.stage + 1, block=lay.block)
    return _("stage {n} · block {block}", n=lay.stage + 1, block=lay.block)


def _group(lay: Layer) -> str:
    """The staircase's group of a layer: "stem", "stage 2", "head"."""
    if lay.stage is None:
        return "head" if lay.part == "head" else "stem"
    return f"stage {lay.stage + 1}"


def table_rows(t: Trace, depth: Detail = "layer") -> list[dict[str, Any]]:
    """The trace as table rows at `depth`: "stage" (stem, stages, head), "block", or "layer"."""
    if depth not in DEPTHS:
        raise ValueError(f"depth must be one of {', '.join(DEPTHS)}, got {depth!r}")
    rows: list[dict[str, Any]] = []
    if depth == "layer":
        for r in t.layers:
            lay = r.layer
            rows.append({
                "Layer": lay.label, "Type": lay.type,
                "Where": _where(lay),
                "Input": shape_str(lay.in_shape),
                "Output": _out_text(lay),
                "Kernel": kernel_str(r), "Params": r.params, "Mult-adds": r.mult_adds,
                "Element-wise": r.elementwise, "RF": r.receptive_field, "Stride": r.effective_stride,
                "Memory (KiB)": round(r.activation_bytes / 1024, 1),
            })
        stop = _stop_row(t, list(rows[0]) if rows else ["Layer"])
        return rows + ([stop] if stop else [])
    groups = t.groups() if depth == "stage" else t.blocks()
    for g in groups:
        row: dict[str, Any] = {"Part": part_text(g.label), "Name": g.name, "Input": shape_str(g.in_shape),
               "Output": _("✗ fails here") if g.failed else shape_str(g.out_shape)}
        if depth == "stage":
            row["Blocks"] = g.blocks
        row.update({"Layers": g.layers, "Params": g.params, "Mult-adds": g.mult_adds, "Element-wise": g.elementwise,
                    "RF": g.receptive_field, "Memory (KiB)": round(g.activation_bytes / 1024, 1)})
        rows.append(row)
    stop = _stop_row(t, list(rows[0]) if rows else ["Part"])
    return rows + ([stop] if stop else [])


def staircase_rows(t: Trace) -> list[dict[str, Any]]:
    """The tensor flowing between blocks: the input, every stem and head layer's output, and every residual
    block's output, at its depth as the paper counts it (weight layers on the main path so far: 1 after the
    stem conv, 18 at ResNet-18's FC) — the 224→112→56→28→14→7→1 staircase (spatial size) and 64→…→512
    (channels). Layers inside a block (a bottleneck's 1×1 reductions) are left out."""
    c, h = t.input_shape[0], t.input_shape[1]
    rows: list[dict[str, Any]] = [{"depth": 0, "layer": "input", "type": "input", "shape": shape_str(t.input_shape), "spatial": h,
             "channels": c, "part": "input"}]
    block_ends = {b.end - 1 for b in t.plan.blocks if b.out_shape is not None}
    depth = 0
    for r in t.layers:
        lay = r.layer
        if lay.part == "shortcut" or lay.out_shape is None:
            continue
        depth += is_depth_layer(lay)
        if lay.stage is not None and lay.index not in block_ends:
            continue
        shape = lay.out_shape
        group = _group(lay)
        name = lay.name if lay.stage is None else f"layer{lay.stage + 1}.{lay.block} (block output)"
        rows.append({"depth": depth, "layer": name, "type": lay.type, "shape": shape_str(shape),
                     "spatial": shape[1] if len(shape) == 3 else 1, "channels": shape[0], "part": group})
    return rows


def stage_chart_rows(t: Trace) -> list[dict[str, Any]]:
    """Parameters and mult-adds per stem / stage / head, long format (one row per measure)."""
    rows: list[dict[str, Any]] = []
    for g in t.groups():
        part = g.label.split(" (")[0]  # "stage 2", short enough for an axis
        rows.append({"part": part, "measure": "parameters", "value": g.params})
        rows.append({"part": part, "measure": "mult-adds", "value": g.mult_adds})
    return rows


def _part_order(name: str) -> tuple[int, int, str]:
    """stem, stage 1, stage 2, …, stage 10, …, head: stages by number, not as text."""
    if name == "stem":
        return (0, 0, name)
    if name == "head":
        return (2, 0, name)
    digits = name.removeprefix("stage ")
    return (1, int(digits), name) if digits.isdigit() else (1, 1 << 30, name)


def _part(g: GroupTotals) -> str:
    """The part a group is, by position ("stage 2"), so that a ResNet's layer2 meets a ConvNeXt's features.3."""
    return g.label.split(" (")[0]


def compare_rows(a: Trace, b: Trace, label_a: str = "A", label_b: str = "B") -> list[dict[str, Any]]:
    """Per stem / stage / head: both networks' parameters, mult-adds and outputs, and the differences."""
    ga = {_part(g): g for g in a.groups()}
    gb = {_part(g): g for g in b.groups()}
    order = list(ga) + [n for n in gb if n not in ga]
    order.sort(key=_part_order)
    rows: list[dict[str, Any]] = []

    def out(g: GroupTotals | None) -> str:
        return "—" if g is None else _("✗ breaks here") if g.failed else shape_str(g.out_shape)

    def diff(x: GroupTotals | None, y: GroupTotals | None, field: str) -> int | None:  # no difference against a part one network does not have
        return None if x is None or y is None else getattr(y, field) - getattr(x, field)

    for name in order:
        x, y = ga.get(name), gb.get(name)
        either = x or y
        if either is None:  # every name comes from one of the two networks
            continue
        rows.append({
            "Part": part_text(either.label),
            f"Output {label_a}": out(x), f"Output {label_b}": out(y),
            f"Params {label_a}": x.params if x else None, f"Params {label_b}": y.params if y else None,
            "Δ params": diff(x, y, "params"),
            f"Mult-adds {label_a}": x.mult_adds if x else None, f"Mult-adds {label_b}": y.mult_adds if y else None,
            "Δ mult-adds": diff(x, y, "mult_adds"),
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


def change_text(a: int, b: int, relative: bool = True) -> str:
    """B − A with its sign, and the relative change when both totals are complete: '-173,824 (-1.5%)'."""
    return f"{b - a:+,}" + (f" ({(b - a) / a:+.1%})" if relative and a else "")


def compare_totals(a: Trace, b: Trace) -> list[tuple[str, str, str, str]]:
    """(measure, A, B, B − A) for two networks. A broken network's totals are marked partial, and no relative
    change is given against partial totals (they count only the layers before the failure)."""
    complete = a.ok and b.ok

    def mark(t: Trace, text: str) -> str:
        return text if t.ok else _("{text} (partial)", text=text)

    breaks = _("breaks")
    return [
        (_("Depth (weight layers)"), mark(a, f"{a.depth}"), mark(b, f"{b.depth}"),
         change_text(a.depth, b.depth, False)),
        (_("Parameters"), mark(a, f"{a.total_params:,} ({fmt_count(a.total_params)})"),
         mark(b, f"{b.total_params:,} ({fmt_count(b.total_params)})"),
         change_text(a.total_params, b.total_params, complete)),
        (_("Mult-adds"), mark(a, fmt_count(a.mult_adds)), mark(b, fmt_count(b.mult_adds)),
         change_text(a.mult_adds, b.mult_adds, complete)),
        (_("Layers planned"), mark(a, f"{a.layers_planned}"), mark(b, f"{b.layers_planned}"),
         change_text(a.layers_planned, b.layers_planned, False)),
        (_("Output"), shape_str(a.output_shape) if a.ok else breaks, shape_str(b.output_shape) if b.ok else breaks, ""),
    ]
