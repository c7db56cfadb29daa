"""plan → graphviz.Digraph: the computation graph with its skip edges.

Three levels of detail:
- "stage": stem → one node per stage ("layer3 · bottleneck × 36") → head;
- "block": one F(x) node and one ⊕ per block, the skip edge drawn dashed around F(x), a
  projection or padding shortcut as its own node on the skip path;
- "layer": every layer of the plan, each block in a labelled cluster.
`expand` shows one stage at the chosen detail and collapses the others, and a stage with more
than `max_blocks` blocks shows its first and last blocks around one "⋯ N more ⋯" node, so a
152- or 1202-layer network stays readable. Edges carry the shapes (C×H×W) flowing along them.
"""

from __future__ import annotations

import shutil
from typing import Literal

import graphviz

from resnet_core import palette
from resnet_core.errors import ExplorerError
from resnet_core.i18n import _
from resnet_core.structure.records import DETAILS, BlockPlan, Detail, Layer, LayerOp, Plan, Shape, StagePlan, shape_str
from resnet_core.text import dot_text

SKIP_COLOR = palette.SKIP_EDGE  # blue and dashed: told apart from orange under every colour-vision deficiency
PROJ_COLOR = palette.PROJECTION
FAIL_COLOR = "#b00020"

_STYLE: dict[LayerOp, tuple[str, str]] = {  # op -> (shape, fill)
    "conv": ("box", "#dbe9f6"),
    "norm": ("box", "#fff2cc"),
    "act": ("box", "#e2f0d9"),
    "maxpool": ("box", "#e8dff5"),
    "avgpool": ("box", "#e8dff5"),
    "gap": ("box", "#e8dff5"),
    "flatten": ("box", "#eeeeee"),
    "linear": ("box", "#eeeeee"),
    "pad": ("box", "#fde3cf"),
    "add": ("circle", "#ffffff"),
    "conv1d": ("box", "#f4d6e6"),
    "permute": ("box", "#eeeeee"),
    "scale": ("box", "#f4d6e6"),
}
ATTENTION_COLOR = "#c2185b"


def _layer_label(lay: Layer) -> str:
    # a module used twice (a basic block's `relu`) is drawn under each use's label: "layer1.0.relu (2)"
    if lay.op == "conv":
        groups = f", g{lay.groups}" if lay.groups > 1 else ""
        stride = f"/{lay.stride}" if lay.stride > 1 else ""
        return lay.label + "\n" + _("conv {k}×{k}{stride}, {c}{groups}", k=lay.kernel, stride=stride,
                                     c=lay.out_shape[0] if lay.out_shape else "?", groups=groups)
    if lay.op == "add":
        return "+"
    if lay.op in ("maxpool", "avgpool"):
        pool = (_("{k}×{k}/{s} max pool", k=lay.kernel, s=lay.stride) if lay.op == "maxpool" else
                _("{k}×{k}/{s} avg pool", k=lay.kernel, s=lay.stride))
        return f"{lay.label}\n{pool}"
    if lay.op == "gap":
        return _("global avg pool")
    if lay.op == "linear" and lay.channels_last:
        return lay.label + "\n" + _("1×1 (linear), {c}", c=lay.out_shape[-1] if lay.out_shape else "?")
    if lay.op == "linear":
        return f"fc {lay.in_shape[0]} → {lay.out_shape[0] if lay.out_shape else '?'}"
    if lay.op == "conv1d":
        return lay.label + "\n" + _("ECA conv1d k{k} over channels", k=lay.kernel)
    if lay.op == "scale":
        return lay.label + "\n" + (_("× γ (layer scale)") if lay.type == "LayerScale" else _("x × gate"))
    if lay.op == "permute":
        return lay.label + "\n" + (_("to channels-last") if not lay.channels_last else _("to channels-first"))
    if lay.op == "pad":
        return lay.label + "\n" + _("subsample /{s} + zero-pad", s=lay.stride)
    return f"{lay.label}\n{lay.type}"


class _Drawer:
    def __init__(self, plan: Plan, detail: Detail, expand: int | None, max_blocks: int):
        if detail not in DETAILS:
            raise ValueError(f"detail must be one of {', '.join(DETAILS)}, got {detail!r}")
        self.plan = plan
        self.detail = detail
        self.expand = expand
        self.max_blocks = max(3, max_blocks)
        self.failed = plan.failed_layer
        g = graphviz.Digraph(name=dot_text(plan.spec.name), graph_attr={
            "rankdir": "TB", "fontname": "Helvetica", "fontsize": "12", "nodesep": "0.25", "ranksep": "0.3",
            "labelloc": "t"})
        g.attr("node", fontname="Helvetica", fontsize="11", style="filled,rounded", shape="box",
               color="#555555", penwidth="1")
        g.attr("edge", fontname="Helvetica", fontsize="9", color="#444444", arrowsize="0.6")
        self.g = g
        self.n = 0

    def node(self, label: str, g: graphviz.Digraph | None = None, op: LayerOp = "conv", failed: bool = False,
             **attrs: str | None) -> str:
        self.n += 1
        nid = f"n{self.n}"
        shape, fill = _STYLE.get(op, ("box", "#ffffff"))
        a: dict[str, str | None] = {"shape": shape, "fillcolor": fill}  # None: graphviz leaves it unset
        if op == "add":
            a.update(width="0.35", height="0.35", fixedsize="true", fontsize="14", style="filled")
        if failed:
            a.update(color=FAIL_COLOR, penwidth="3", fillcolor="#fde0e0", fontcolor=FAIL_COLOR)
        a.update(attrs)
        (g or self.g).node(nid, dot_text(label), **a)  # labels carry names: text, never DOT or HTML
        return nid

    def edge(self, a: str, b: str, shape: Shape | None = None, skip: bool = False,
             g: graphviz.Digraph | None = None, **attrs: str) -> None:
        # `g` is accepted for symmetry with node() but ignored: an edge declared inside a cluster
        # would pull its tail (the previous block's output) into that cluster.
        a_ = {"label": f" {shape_str(shape)} " if shape is not None else ""}
        if skip:
            a_.update(style="dashed", color=SKIP_COLOR, penwidth="2", fontcolor=SKIP_COLOR)
        a_.update(attrs)
        self.g.edge(a, b, **a_)

    # ---- pieces ---------------------------------------------------------------------------
    def layer_node(self, lay: Layer, g: graphviz.Digraph | None = None) -> str:
        label = _layer_label(lay)
        extra = {}
        if lay.failed:
            err = next((e for e in self.plan.errors if e.layer == lay.index), None)
            if lay.op == "add":
                label = f"✗ +\n{shape_str(lay.in_shape)} ≠ {shape_str(lay.other_shape)}"
                extra = dict(shape="box", fixedsize="false", width="0", height="0", fontsize="11")
            else:
                label += "\n✗ " + (str(err.where) if err else _("fails"))
        return self.node(label, g, op=lay.op, failed=lay.failed, tooltip=f"{lay.label}: {lay.type}", **extra)

    def chain(self, layers: list[Layer], prev: str, g: graphviz.Digraph | None = None) -> str:
        for lay in layers:
            nid = self.layer_node(lay, g)
            self.edge(prev, nid, lay.in_shape)
            prev = nid
        return prev

    def stage_node(self, sp: StagePlan) -> str:
        st = sp.stage
        first = sp.blocks[0] if sp.blocks else None
        out = sp.out_shape or (sp.blocks[-1].out_shape if sp.blocks else None)
        skip = _("plain (no skips)") if not self.plan.spec.skip else _("skips, option {option}",
                                                                        option=self.plan.spec.shortcut)
        stride = _(", first stride {s}", s=first.stride) if first else ""
        lines = [f"{sp.name} · {st.block} × {len(sp.blocks)}",
                 f"{shape_str(sp.in_shape)} → {shape_str(out)}{stride}", skip]
        failed = self.failed is not None and self.failed.stage == sp.index
        return self.node("\n".join(lines), op="conv", failed=failed, fillcolor="#cfe2f3" if not failed else None)

    def block_nodes(self, b: BlockPlan, prev: str, g: graphviz.Digraph) -> str:
        """One block at block detail: an F(x) node, the shortcut (a node when it has layers), ⊕."""
        layers = self.plan.layers[b.first:b.end]
        main = [lay for lay in layers if lay.part == "main"]
        convs = [lay for lay in main if lay.op in ("conv", "linear")]
        desc = " → ".join(
            f"{c.kernel}×{c.kernel}{'/' + str(c.stride) if c.stride > 1 else ''} "
            f"{c.out_shape[0] if c.out_shape else '?'}{' dw' if c.groups > 1 and c.groups == c.in_shape[0] else ''}"
            f"{' g' + str(c.groups) if 1 < c.groups != c.in_shape[0] else ''}" if c.op == "conv" else
            f"1×1 {c.out_shape[-1] if c.out_shape else '?'}"
            for c in convs)
        extras = [name for name, found in (
            ("SE", any(lay.name.endswith(".se.fc1") for lay in layers)),
            ("ECA", any(lay.op == "conv1d" for lay in layers)),
            (_("layer scale"), any(lay.type == "LayerScale" for lay in layers))) if found]
        norms = sorted({lay.type for lay in main if lay.op == "norm"})
        acts = sorted({lay.type for lay in main if lay.op == "act"})
        # the norm and activation are named when they are not the 2015 ResNet's (BatchNorm2d, ReLU)
        detail = ", ".join(norms + acts + extras) if extras or set(norms + acts) - {"BatchNorm2d", "ReLU"} else ""
        f_failed = any(lay.failed for lay in main)
        fx = self.node(f"{b.name} · {b.kind}\nF(x): {desc}" + (f"\n{detail}" if detail else ""), g, op="conv",
                       failed=f_failed)
        self.edge(prev, fx, b.in_shape, g=g)
        if b.shortcut == "none" or f_failed:
            return fx
        sc_layers = [lay for lay in layers if lay.part == "shortcut"]
        add = next((lay for lay in layers if lay.op == "add"), None)
        src = prev
        sc_shape: Shape | None = b.in_shape
        if sc_layers:
            stride = "/" + str(b.stride) if b.stride > 1 else ""
            pool = _("avg pool /{s} → ", s=b.stride) if b.stride > 1 else ""
            label = (_("1×1 projection{stride}, {c}", stride=stride, c=b.out_channels)
                     if b.shortcut == "projection" else
                     pool + _("1×1 projection, {c}", c=b.out_channels)
                     if b.shortcut == "avg_projection" else _("zero-pad /{s} → {c} ch", s=b.stride, c=b.out_channels))
            src = self.node(label, g, op="pad", failed=sc_layers[-1].failed, color=PROJ_COLOR)
            self.edge(prev, src, b.in_shape, skip=True, g=g)
            sc_shape = sc_layers[-1].out_shape
        if add is None:  # the shortcut itself failed: nothing to add
            return fx
        if add.failed:
            out = self.node(f"✗ +\n{shape_str(add.in_shape)} ≠ {shape_str(add.other_shape)}", g, op="add",
                            failed=True, shape="box", fixedsize="false", width="0", height="0", fontsize="11")
        else:
            out = self.node("+", g, op="add")
        self.edge(fx, out, add.in_shape, g=g)
        self.edge(src, out, sc_shape, skip=True, g=g, constraint="false" if not sc_layers else "true")
        return out

    def block_layers(self, b: BlockPlan, prev: str, g: graphviz.Digraph) -> str:
        """One block at layer detail."""
        layers = self.plan.layers[b.first:b.end]
        cur = prev
        sc_src = prev
        sc_prev = None
        att_src: str | None = None  # SE/ECA: the map the gate scales, drawn beside the pool → … → gate branch
        for lay in layers:
            if lay.part == "attention":
                nid = self.layer_node(lay, g)
                if att_src is None:
                    att_src = cur
                self.edge(cur, nid, lay.in_shape if lay.op != "scale" else lay.other_shape, g=g,
                          color=ATTENTION_COLOR)
                if lay.op == "scale":
                    self.edge(att_src, nid, lay.in_shape, g=g)
                cur = nid
            elif lay.part == "main":
                nid = self.layer_node(lay, g)
                self.edge(cur, nid, lay.in_shape, g=g)
                cur = nid
                # pre-activation: a projection shortcut starts from the pre-activated input
                if b.kind.startswith("preact") and lay.op == "act" and lay.index == b.first + 1 \
                        and b.shortcut == "projection":
                    sc_src = nid
            elif lay.part == "shortcut":
                nid = self.layer_node(lay, g)
                self.edge(sc_prev or sc_src, nid, lay.in_shape, skip=sc_prev is None, g=g)
                sc_prev = nid
            elif lay.part == "add":
                add_node = self.layer_node(lay, g)
                self.edge(cur, add_node, lay.in_shape, g=g)
                if sc_prev is not None:
                    self.edge(sc_prev, add_node, lay.other_shape, g=g, color=PROJ_COLOR)
                else:
                    self.edge(sc_src, add_node, lay.other_shape, skip=True, g=g, constraint="false")
                cur = add_node
            else:  # post activation
                nid = self.layer_node(lay, g)
                self.edge(cur, nid, lay.in_shape, g=g)
                cur = nid
        return cur

    def stage_expanded(self, sp: StagePlan, prev: str) -> str:
        blocks = sp.blocks
        shown: list[BlockPlan | int] = list(blocks)
        if len(blocks) > self.max_blocks:
            head, tail = self.max_blocks - 2, 1
            hidden = len(blocks) - head - tail
            failed_idx = next((i for i, b in enumerate(blocks) if any(
                lay.failed for lay in self.plan.layers[b.first:b.end])), None)
            if failed_idx is None or failed_idx < head or failed_idx >= len(blocks) - tail:
                shown = list(blocks[:head]) + [hidden] + list(blocks[-tail:])
        for item in shown:
            if isinstance(item, int):
                nid = self.node(_("⋯ {n} more blocks like the one above ⋯", n=item), op="flatten",
                                style="dashed,rounded", fillcolor="#ffffff")
                self.edge(prev, nid, None)
                prev = nid
                continue
            b = item
            with self.g.subgraph(name=f"cluster_{b.name}") as c:
                c.attr(label=dot_text(_("{name} ({kind}, stride {s})", name=b.name, kind=b.kind, s=b.stride)),
                       style="rounded,dashed", color="#999999",
                       fontsize="10", fontcolor="#555555")
                prev = self.block_layers(b, prev, c) if self.detail == "layer" else self.block_nodes(b, prev, c)
        return prev

    def draw(self) -> graphviz.Digraph:
        plan = self.plan
        inp = self.node(_("input") + "\n" + shape_str(plan.input_shape), op="flatten", fillcolor="#ffffff")
        stem = [lay for lay in plan.layers if lay.part == "stem"]
        prev = inp
        if self.detail == "layer":
            prev = self.chain(stem, prev)
        elif stem:
            ops = " → ".join(_layer_label(lay).split("\n")[-1] for lay in stem if lay.op in ("conv", "maxpool", "avgpool"))
            failed = any(lay.failed for lay in stem)
            nid = self.node(_("stem") + "\n" + ops, op="conv", failed=failed)
            self.edge(prev, nid, plan.input_shape)
            prev = nid
        for sp in plan.stages:
            ds = [lay for lay in plan.layers if lay.part == "downsample" and lay.stage == sp.index]
            if ds and self.detail == "layer":
                prev = self.chain(ds, prev)
            elif ds:  # ConvNeXt's downsampling layer between stages
                nid = self.node(_("downsampling") + "\n" + " → ".join(_layer_label(lay).split("\n")[-1] for lay in ds),
                                op="conv", failed=any(lay.failed for lay in ds))
                self.edge(prev, nid, ds[0].in_shape)
                prev = nid
            collapse = self.detail == "stage" or (self.expand is not None and self.expand != sp.index)
            if collapse:
                nid = self.stage_node(sp)
                self.edge(prev, nid, sp.in_shape)
                prev = nid
            else:
                prev = self.stage_expanded(sp, prev)
        head = [lay for lay in plan.layers if lay.part == "head"]
        if head:
            if self.detail == "layer":
                prev = self.chain(head, prev)
            else:
                label = " → ".join(_layer_label(lay) if lay.op in ("gap", "linear") else lay.type for lay in head)
                nid = self.node(_("head") + "\n" + label, op="linear")
                self.edge(prev, nid, head[0].in_shape)
                prev = nid
            out = self.node(_("output") + "\n" + shape_str(plan.output_shape), op="flatten", fillcolor="#ffffff")
            self.edge(prev, out, None)
        if plan.errors:
            e = plan.errors[0]
            self.g.attr(label=dot_text(_("✗ stops at {where}: {message}", where=e.where, message=e.message)),
                        fontcolor=FAIL_COLOR)
        return self.g


def build_graph(plan: Plan, detail: Detail = "block", expand: int | None = None, max_blocks: int = 8) -> graphviz.Digraph:
    """The computation graph of `plan` at `detail` ("stage" | "block" | "layer").

    `expand`: a 0-based stage index to show at `detail` while the others collapse to one node.
    """
    return _Drawer(plan, detail, expand, max_blocks).draw()


def block_dot(plan: Plan, block_name: str) -> str:
    """One residual block at layer detail, from its input x to its output: for teaching."""
    blocks = {b.name: b for b in plan.blocks}
    if block_name not in blocks:
        raise ValueError(f"no block {block_name!r} in this plan; it has {', '.join(blocks) or 'none'}")
    b = blocks[block_name]
    d = _Drawer(plan, "layer", None, 8)
    x = d.node(f"x\n{shape_str(b.in_shape)}", op="flatten", fillcolor="#ffffff")
    with d.g.subgraph(name=f"cluster_{b.name}") as c:
        c.attr(label=dot_text(_("{name} ({kind}, stride {s}, shortcut: {shortcut})", name=b.name, kind=b.kind,
                                s=b.stride, shortcut=b.shortcut)), style="rounded,dashed",
               color="#999999", fontsize="10", fontcolor="#555555")
        last = d.block_layers(b, x, c)
    out = d.node(f"out\n{shape_str(b.out_shape)}", op="flatten", fillcolor="#ffffff")
    d.edge(last, out, None)
    return d.g.source


def to_dot(plan: Plan, detail: Detail = "block", expand: int | None = None, max_blocks: int = 8) -> str:
    return build_graph(plan, detail, expand, max_blocks).source


def dot_available() -> bool:
    """Whether Graphviz's `dot` program is installed (needed for SVG/PNG export, not for the app's view)."""
    return shutil.which("dot") is not None


class RenderUnavailable(ExplorerError):
    pass


def render(plan_or_dot: Plan | str, fmt: Literal["svg", "png"] = "svg", detail: Detail = "block", expand: int | None = None) -> bytes:
    """Render to SVG or PNG bytes with Graphviz's `dot`; RenderUnavailable (with the reason) without it."""
    if fmt not in ("svg", "png"):
        raise ValueError(f"format must be svg or png, got {fmt!r}")
    source = plan_or_dot if isinstance(plan_or_dot, str) else to_dot(plan_or_dot, detail, expand)
    if not dot_available():
        raise RenderUnavailable(_("Graphviz's `dot` program is not installed, so SVG/PNG cannot be made here "
                                  "(install the Debian package `graphviz`); the DOT file renders anywhere"))
    try:
        return graphviz.Source(source).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise RenderUnavailable(_("Graphviz's `dot` program was not found on PATH")) from None
    except graphviz.CalledProcessError as e:
        raise RenderUnavailable(_("dot failed: {reason}", reason=e.stderr.decode(errors="replace")[:300])) from None
