"""Residual additions in a traced graph, and the same model with them removed.

An addition is residual when its two operands come from one earlier tensor x through different paths, at
least one of them through weights. The nearest common tensor is the block's input x; the operations from
x to each operand are its branch F(x) (the side with more weighted operations) and its shortcut.
"""

from __future__ import annotations

import torch
from torch import fx, nn

from resnet_core.modules.counting import ADD_METHODS, ADDS
from resnet_core.modules.records import ModuleRow, ResidualAdd


def is_add(node: fx.Node) -> bool:
    if node.op == "call_function" and node.target in ADDS:
        return True
    return node.op == "call_method" and node.target in ADD_METHODS


def _weight_layer(gm: fx.GraphModule, n: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """A node with a weight layer's weights: a matrix or a kernel (a parameter of two or more dimensions: a
    convolution, a linear layer, attention). A norm's per-channel scale and bias do not make a residual
    branch (EvoNorm adds two terms of its input, with only those)."""
    if n.op == "call_module":
        return any(p.dim() >= 2 for p in modules[str(n.target)].parameters())
    if n.op == "get_attr":
        value: object = gm
        for part in str(n.target).split("."):
            value = getattr(value, part, None)
        return isinstance(value, torch.Tensor) and value.dim() >= 2
    return False


def find_residuals(gm: fx.GraphModule) -> list[tuple[fx.Node, fx.Node, list[fx.Node], list[fx.Node], fx.Node]]:
    """(add, its F(x) operand, the branch's nodes, the shortcut's nodes, x) for every residual addition."""
    nodes = list(gm.graph.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    anc: dict[fx.Node, int] = {}  # bitset of ancestors by index
    weighted: set[fx.Node] = set()
    modules = dict(gm.named_modules())
    weight_only: set[fx.Node] = set()  # a weight, or computed from weights alone (a standardised conv kernel)
    for n in nodes:
        bits = 0
        for a in n.all_input_nodes:
            bits |= anc[a] | (1 << index[a])
        anc[n] = bits
        if _weight_layer(gm, n, modules):
            (weight_only if n.op == "get_attr" else weighted).add(n)
        elif n.op in ("call_function", "call_method") and n.all_input_nodes and \
                all(a in weight_only for a in n.all_input_nodes):
            weight_only.add(n)
    found = []
    for n in nodes:
        if not is_add(n):
            continue
        operands = [a for a in n.args[:2] if isinstance(a, fx.Node)]
        if len(operands) != 2 or operands[0] is operands[1]:
            continue
        a, b = operands
        common = (anc[a] | (1 << index[a])) & (anc[b] | (1 << index[b]))
        if not common:
            continue
        fork = common.bit_length() - 1  # the nearest common tensor: the block's input x

        def side(end: fx.Node, fork: int = fork) -> list[fx.Node]:
            reach = anc[end] | (1 << index[end])
            return [m for m in nodes[fork + 1: index[end] + 1] if (reach >> index[m]) & 1 and (anc[m] >> fork) & 1]

        def weights(path: list[fx.Node]) -> int:
            # a node is a weight layer, or a function given a weight directly (F.linear(x, self.w)); taking
            # the output of a weight layer (the block's input x itself may be one) does not count
            return sum(1 for m in path if m in weighted or any(x in weight_only for x in m.all_input_nodes))

        side_a, side_b = side(a), side(b)
        wa, wb = weights(side_a), weights(side_b)
        if wa == 0 and wb == 0:
            continue
        if (wa, len(side_a)) >= (wb, len(side_b)):
            found.append((n, a, side_a, side_b, nodes[fork]))
        else:
            found.append((n, b, side_b, side_a, nodes[fork]))
    return found


def residual_adds(gm: fx.GraphModule, found: tuple[dict, dict], rows: list[ModuleRow]) -> list[ResidualAdd]:
    row_of, sources = found
    out = []
    for add, _, branch, shortcut, x in find_residuals(gm):
        if add in row_of:
            row = row_of[add]
            src = sources.get(x, [-1])
            x_path = rows[src[-1]].path if src and src[-1] >= 0 else "input"
            def paths(nodes: list[fx.Node]) -> list[str]:  # an nn.Identity on a path is no operation
                return [row_of[m].path for m in nodes if m in row_of and row_of[m].type != "Identity"]

            members = [row_of[m] for m in (*branch, *shortcut) if m in row_of]
            out.append(ResidualAdd(row.path, _block_of(row, members), paths(branch), paths(shortcut), x_path))
    return out


def _block_of(add: ModuleRow, members: list[ModuleRow]) -> str:
    """The block of a residual addition: the innermost module holding the addition, its branch and its
    shortcut ("layer1.0", whether the addition is written `out + identity` in its forward or is a module of
    its own, `layer1.0.add`)."""
    common = add.owner.split(".") if add.owner else []
    if add.kind == "module" and members:  # an addition module: its block holds it, not the module itself
        common = common[:-1]
    for r in members:
        parts = r.owner.split(".") if r.owner else []
        n = 0
        while n < min(len(common), len(parts)) and common[n] == parts[n]:
            n += 1
        common = common[:n]
    return ".".join(common)


def skips_off(model: nn.Module) -> fx.GraphModule:
    """The model with every residual addition replaced by its branch F(x) alone, on the SAME weights: the
    returned module holds the model's own submodules and parameters (nothing is copied)."""
    gm = fx.symbolic_trace(model)
    for add, branch_operand, _, _, _ in find_residuals(gm):
        add.replace_all_uses_with(branch_operand)
        gm.graph.erase_node(add)
    gm.graph.lint()
    gm.recompile()
    return gm


