"""A traced module → graphviz DOT: its dataflow, the residual additions drawn as they are for presets.

- "layer": every row a node, edges along the dataflow with the shapes flowing on them; each residual
  addition a ⊕, its shortcut drawn dashed blue (an identity straight from x, a projection through its
  orange nodes).
- "block": each residual block one F(x) node beside its projection (if any) and its ⊕; the rows outside
  blocks stay as they are.
- "stage": every run of residual blocks under one parent module (a stage, e.g. `layer3`) one node.
`expand` names one stage to draw at `detail` while every other stage is collapsed to one node, as the
presets' graph does: a 152-layer network stays readable.
Runs of more than `max_blocks` residual blocks in one parent module (a stage) show their first and last
blocks around one "⋯ N more ⋯" node, so a 100-block network stays readable. The failed row of a broken
model is outlined in red with its error.
"""

from __future__ import annotations

import graphviz

from resnet_core import palette
from resnet_core.i18n import _
from resnet_core.modules.records import ModuleRow, ModuleTrace, ResidualAdd
from resnet_core.structure.records import Detail
from resnet_core.text import dot_text, plain

SKIP_COLOR = palette.SKIP_EDGE  # blue and dashed: told apart from orange under every colour-vision deficiency
PROJ_COLOR = palette.PROJECTION
FAIL_COLOR = "#b00020"


def _shape(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return ""
    return " " + "×".join(str(v) for v in shape[1:]) + " "  # without the batch dimension


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def _elided(blocks: list[ResidualAdd], max_blocks: int) -> dict[str, int]:
    """Blocks to hide: {block: how many its run hides}, keeping the first and last max_blocks//2 of each
    run of consecutive blocks under one parent module."""
    hidden: dict[str, int] = {}
    runs: dict[str, list[ResidualAdd]] = {}
    for b in blocks:
        runs.setdefault(_parent(b.block), []).append(b)
    for run in runs.values():
        if len(run) > max_blocks:
            keep = max(1, max_blocks // 2)
            middle = run[keep:-keep]
            for b in middle:
                hidden[b.block] = len(middle)
    return hidden


def block_stages(trace: ModuleTrace) -> list[str]:
    """The parent modules that hold residual blocks (the stages), in the order they run."""
    seen: dict[str, None] = {}
    for b in trace.residual_adds:
        seen.setdefault(_parent(b.block), None)
    return list(seen)


def module_dot(trace: ModuleTrace, detail: Detail = "block", max_blocks: int = 6, expand: str | None = None) -> str:
    """The DOT source of `trace`'s graph at `detail` (`expand`: the one stage drawn in detail)."""
    if detail not in ("stage", "layer", "block"):
        raise ValueError(f"detail must be stage, block or layer, got {detail!r}")
    g = graphviz.Digraph(name=dot_text(trace.name), graph_attr={"rankdir": "TB", "fontname": "Helvetica",
                                                               "nodesep": "0.25", "ranksep": "0.3"})
    g.attr("node", fontname="Helvetica", fontsize="11", style="filled,rounded", shape="box", fillcolor="#dbe9f6",
           color="#555555")
    g.attr("edge", fontname="Helvetica", fontsize="9", color="#444444", arrowsize="0.6")
    rows = trace.rows
    by_path = {r.path: r for r in rows}
    blocks = [b for b in trace.residual_adds if b.add in by_path]
    hidden = _elided(blocks, max_blocks)
    node_of: dict[int, str] = {-1: "input"}  # row index → the DOT node that shows it
    g.node("input", dot_text(f"input\n{'×'.join(str(v) for v in trace.input_shape)}"), fillcolor="#eeeeee")

    members: dict[int, ResidualAdd] = {}
    for blk in blocks:
        for p in (*blk.branch, *blk.shortcut, blk.add):
            if p in by_path:
                members[by_path[p].index] = blk
    shortcut_rows = {by_path[p].index for b in blocks for p in b.shortcut if p in by_path}
    add_rows = {by_path[b.add].index: b for b in blocks}

    drawn_blocks: dict[str, str] = {}
    more_nodes: dict[str, str] = {}
    stage_nodes: dict[str, str] = {}
    stages = block_stages(trace)
    collapsed = set(stages) if detail == "stage" else ({s for s in stages if s != expand} if expand else set())
    collapsed.discard("")  # additions at the top level have no stage to collapse into
    per_stage: dict[str, list[ResidualAdd]] = {}
    for blk in blocks:
        per_stage.setdefault(_parent(blk.block), []).append(blk)

    def stage_of(r: ModuleRow) -> str | None:  # the collapsed stage that runs the row (its blocks and the rest)
        b = members.get(r.index)
        if b is not None:
            return _parent(b.block) if _parent(b.block) in collapsed else None
        return next((s for s in collapsed if r.owner == s or r.owner.startswith(s + ".")), None)

    def row_node(r: ModuleRow) -> str:
        nid = f"r{r.index}"
        if r.index in add_rows:
            g.node(nid, "+", shape="circle", fixedsize="true", width="0.35", fillcolor="#ffffff", fontsize="14",
                   style="filled")
        else:
            attrs = {"fillcolor": "#fde3cf", "color": PROJ_COLOR} if r.index in shortcut_rows else {}
            if r.failed:
                err = next((e for e in trace.errors if e.where == r.path), None)
                label = f"✗ {r.path}\n{r.type}\n{plain(err.message, 90) if err else 'fails'}"
                attrs.update(color=FAIL_COLOR, penwidth="3", fillcolor="#fde0e0", fontcolor=FAIL_COLOR)
            else:
                label = r.path if r.path == r.type else f"{r.path}\n{r.type}"
            g.node(nid, dot_text(label), tooltip=dot_text(f"{r.path}: {r.type}"), **attrs)
        return nid

    for r in rows:
        if r.type == "Identity" and len(r.inputs) == 1 and not r.failed:  # no operation: drawn as its input
            node_of[r.index] = node_of.get(r.inputs[0], "input")
            continue
        b = members.get(r.index)
        stage = stage_of(r) if collapsed and not r.failed else None
        if stage is not None:  # the whole stage as one node
            if stage not in stage_nodes:
                stage_nodes[stage] = f"s{len(stage_nodes)}"
                run = per_stage[stage]
                inside = [x for x in rows if stage_of(x) == stage]
                params = sum(x.params for x in inside)
                out = inside[-1].out_shape
                g.node(stage_nodes[stage], dot_text((stage or "blocks") + "\n" + _(
                    "{n} residual blocks · {params:,} params", n=len(run), params=params) + f"\n→{_shape(out)}"),
                    fillcolor="#c6dbef")
            node_of[r.index] = stage_nodes[stage]
            continue
        if b is not None and b.block in hidden:
            parent = _parent(b.block)
            if parent not in more_nodes:
                more_nodes[parent] = f"more_{len(more_nodes)}"
                g.node(more_nodes[parent], dot_text(_("⋯ {hidden} more blocks ⋯",
                                                      hidden=hidden[b.block])), shape="plaintext",
                       style="")
                src = node_of.get(by_path[b.input].index if b.input in by_path else -1, "input")
                g.edge(src, more_nodes[parent])
            node_of[r.index] = more_nodes[parent]
            continue
        if detail != "layer" and b is not None and r.index not in add_rows and r.index not in shortcut_rows:
            if b.block not in drawn_blocks:  # F(x) as one node
                nid = f"b{len(drawn_blocks)}"
                params = sum(by_path[p].params for p in b.branch if p in by_path)
                g.node(nid, dot_text((b.block or _("block")) + "\n" + _("F(x): {n} ops, {params:,} params",
                                                                       n=len(b.branch), params=params)))
                drawn_blocks[b.block] = nid
            node_of[r.index] = drawn_blocks[b.block]
            continue
        node_of[r.index] = row_node(r)

    drawn: set[tuple[str, str]] = set()
    for r in rows:
        head = node_of[r.index]
        for i in r.inputs:
            tail = node_of.get(i, "input")
            if tail == head or (tail, head) in drawn:
                continue
            drawn.add((tail, head))
            src_shape = rows[i].out_shape if i >= 0 else (1, *trace.input_shape)
            attrs = {"label": _shape(src_shape)}
            b = add_rows.get(r.index)
            if b is not None:  # the shortcut's edge into ⊕: dashed blue
                x_node = node_of.get(by_path[b.input].index, "input") if b.input in by_path else "input"
                from_shortcut = i in {by_path[p].index for p in b.shortcut if p in by_path} or (
                    not b.shortcut and tail == x_node)
                if from_shortcut:
                    attrs.update(style="dashed", color=SKIP_COLOR, penwidth="2", fontcolor=SKIP_COLOR)
            g.edge(tail, head, **attrs)
    return g.source
