"""Trace any `nn.Module` on the meta device: rows, totals, residual additions and located errors.

How it works:
1. The model is copied to the meta device (`_meta_copy`): its parameters and buffers become meta
   tensors of the same shapes, shared ones stay shared, and the caller's model is never touched. A model
   of 60 GB of parameters traces in a few megabytes.
2. torch.fx traces it symbolically; an interpreter then runs the graph on a meta input node by node,
   recording every operation's input and output shapes (`method="fx"`). Functional operations the model
   calls in `forward` (`x + identity`, `torch.cat`, `F.relu`, `flatten`) are rows like modules are.
3. A model fx cannot trace (data-dependent control flow) is run eagerly on the meta input with forward
   hooks on its leaf modules (`method="hooks"`): rows for the modules, no functional operations and so
   no residual additions; the trace says so.
4. A residual addition is an add whose two operands come from one earlier tensor through different
   paths, one of them through weights (`_residual_adds`). The nearer common tensor is the block's input
   x; the operations from x to each operand are its branch F(x) and its shortcut.
5. The first operation whose shapes cannot meet stops the run: the trace keeps the rows before it, and
   a `ModuleError` names the module path, the operation, both shapes, what produced each, and a fix.

Counts, per row, for a batch of one:
- params: the parameters of the module (or the functional weight) counted at their first use, so a
  shared parameter is counted once (`shared_params` says how many were shared);
- mult_adds: convolutions, linear layers and matrix products (torch.utils.flop_counter's FLOPs / 2, the
  torchvision convention; bias additions not counted);
- elementwise: the element-wise work of everything else (one per output element of an activation, a
  norm, an add; output elements × window of a pooling);
- act_bytes: the output tensor's bytes; rf: the receptive field of one output position on the input,
  where it is defined (convolutions, pools and element-wise operations; not after global pooling).
"""


import copy
import math
from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch
from torch import fx, nn

from resnet_core.i18n import _
from resnet_core.modules.counting import (
    SHAPE_QUERIES,
    AtenMultAdds,
    first_line,
    first_tensor,
    fix_for,
    function_counts,
    is_opaque,
    message_for,
    module_counts,
    rf_after,
    same_shape_output,
    tensors_in,
)
from resnet_core.modules.records import Method, ModuleError, ModuleRow, ModuleTrace, ModuleTraceError, ResidualAdd
from resnet_core.modules.residual import residual_adds, skips_off

__all__ = ["ModuleTrace", "inspect_module", "skips_off"]


# --------------------------------------------------------------------------------------------
# the meta copy
# --------------------------------------------------------------------------------------------

def _meta_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` whose parameters and buffers are meta tensors (same shapes, same sharing)."""
    memo: dict[int, Any] = {}
    for _name, p in model.named_parameters(remove_duplicate=False):
        if id(p) not in memo:
            memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    for _name, b in model.named_buffers(remove_duplicate=False):
        if id(b) not in memo:
            memo[id(b)] = torch.empty_like(b, device="meta")
    return copy.deepcopy(model, memo)


def _param_counts(model: nn.Module) -> tuple[int, int, int, int]:
    unique = list(model.parameters())  # shared parameters once
    every = [p for _name, p in model.named_parameters(remove_duplicate=False)]
    total = sum(p.numel() for p in unique)
    shared = sum(p.numel() for p in every) - total
    trainable = sum(p.numel() for p in unique if p.requires_grad)
    buffers = sum(b.numel() for b in model.buffers())
    return total, shared, trainable, buffers


# --------------------------------------------------------------------------------------------
# the fx path
# --------------------------------------------------------------------------------------------

class _Failed(Exception):
    def __init__(self, node: fx.Node, error: BaseException):
        super().__init__(str(error))
        self.node, self.error = node, error


def _node_path(node: fx.Node, counters: dict[str, int], uses: dict[str, int] | None = None
               ) -> tuple[str, str, str | None]:
    """(row path, type, owning module) of an fx node. A module called more than once (torchvision's one
    `relu` per block) is listed as "layer1.0.relu (1)", "(2)", as the preset trace lists it."""
    stack = node.meta.get("nn_module_stack") or {}
    owner = next(reversed(stack.values()))[0] if stack else ""
    if node.op == "call_module":
        target = str(node.target)
        parent = owner.rpartition(".")[0] if owner == target else owner
        if uses and uses.get(target, 1) > 1:
            counters[target] = counters.get(target, 0) + 1
            return f"{target} ({counters[target]})", "", parent
        return target, "", parent
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
    name = {"iadd": "add", "add_": "add", "__add__": "add", "getitem": "getitem"}.get(name, name)
    key = f"{owner}:{name}"
    counters[key] = counters.get(key, 0) + 1
    n = counters[key]
    return (f"{owner}:{name}" if n == 1 else f"{owner}:{name}#{n}") if owner else (name if n == 1 else f"{name}#{n}"), \
        name, owner


def _trace_fx(meta_model: nn.Module, x: torch.Tensor) -> tuple[list[ModuleRow], list[ModuleError], Any,
                                                              fx.GraphModule, tuple[dict, dict]]:
    gm = fx.symbolic_trace(meta_model)
    modules = dict(gm.named_modules())
    uses: dict[str, int] = {}
    for n in gm.graph.nodes:
        if n.op == "call_module":
            uses[str(n.target)] = uses.get(str(n.target), 0) + 1
    rows: list[ModuleRow] = []
    row_of: dict[fx.Node, ModuleRow] = {}
    rf: dict[fx.Node, tuple[int, int] | None] = {}
    seen_params: set[int] = set()
    counters: dict[str, int] = {}
    errors: list[ModuleError] = []
    opaque_mult: dict[fx.Node, int] = {}
    sources: dict[fx.Node, list[int]] = {}  # the rows a node's value comes from (-1: the input)

    def sources_of(n: fx.Node) -> list[int]:
        out: list[int] = []
        for a in n.all_input_nodes:
            for i in sources.get(a, []):
                if i not in out:
                    out.append(i)
        return out

    def params_of(tensors: Iterable[torch.Tensor]) -> int:
        n = 0
        for p in tensors:
            if isinstance(p, nn.Parameter) and id(p) not in seen_params:  # buffers are not parameters
                seen_params.add(id(p))
                n += p.numel()
        return n

    class Run(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            try:
                if is_opaque(n, modules):
                    with AtenMultAdds() as counter:
                        out = super().run_node(n)
                    opaque_mult[n] = counter.mult_adds
                    return out
                if n.op == "call_module" and len(n.args) == 1 and not n.kwargs and isinstance(n.args[0], fx.Node):
                    same = same_shape_output(modules[n.target], self.env[n.args[0]])
                    if same is not None:
                        return same
                return super().run_node(n)
            except _Failed:
                raise
            except Exception as e:  # noqa: BLE001 - any failure of one operation becomes a located error
                raise _Failed(n, e) from None

    interp = Run(gm)
    interp.args_iter = iter([x])  # what Interpreter.run sets up; the nodes are run one by one here
    values: dict[fx.Node, Any] = {}
    output = None
    try:
        for node in gm.graph.nodes:
            if node.op == "output":
                output = interp.run_node(node)
                break
            value = interp.run_node(node)
            interp.env[node] = value
            values[node] = value
            if node.op == "placeholder":
                rf[node] = (1, 1)
                sources[node] = [-1]
                continue
            out = first_tensor(value)
            if node.op == "get_attr":
                rf[node] = None
                continue
            if out is None or (node.op == "call_method" and node.target in SHAPE_QUERIES):
                sources[node] = sources_of(node)
                continue
            ins = [a for a in node.all_input_nodes]
            in_tensors = [first_tensor(values.get(a)) for a in ins]
            in_shapes = [tuple(t.shape) for t in in_tensors if t is not None]
            path, fname, owner = _node_path(node, counters, uses)
            module = modules.get(node.target) if node.op == "call_module" else None
            if module is not None:
                mult, elem = module_counts(module, out, [t for t in in_tensors if t is not None])
                params = params_of(module.parameters())
                rf[node] = rf_after(module, [rf.get(a) for a in ins if first_tensor(values.get(a)) is not None])
                typ = type(module).__name__
            else:
                args = fx.node.map_arg(node.args, lambda a: values.get(a))
                mult, elem = function_counts(node.target, args, out)
                params = params_of(p for a in ins if a.op == "get_attr"
                                   for p in [values.get(a)] if isinstance(p, torch.Tensor))
                rf[node] = rf_after(node.target, [rf.get(a) for a in ins if first_tensor(values.get(a)) is not None])
                typ = fname
            if node in opaque_mult:
                mult = opaque_mult[node]
            r = rf[node]
            row = ModuleRow(len(rows), path, typ, "module" if module is not None else "function", in_shapes,
                            tuple(out.shape), params, int(mult), int(elem), out.numel() * out.element_size(),
                            r[0] if r is not None and out.dim() >= 3 else None, owner or None,
                            inputs=sources_of(node))
            rows.append(row)
            row_of[node] = row
            sources[node] = [row.index]
    except _Failed as f:
        node = f.node
        path, fname, owner = _node_path(node, counters, uses)
        module = modules.get(node.target) if node.op == "call_module" else None
        ins = [a for a in node.all_input_nodes if first_tensor(values.get(a)) is not None]
        shapes = [tuple(first_tensor(values[a]).shape) for a in ins]  # type: ignore[union-attr]
        producers = [row_of[a].path if a in row_of else ("input" if a.op == "placeholder" else a.name) for a in ins]
        op = type(module).__name__ if module is not None else fname
        message = message_for(fname or op, shapes, first_line(f.error))
        rows.append(ModuleRow(len(rows), path, op, "module" if module is not None else "function", shapes, None,
                              block=owner or None, failed=True, inputs=sources_of(node)))
        errors.append(ModuleError(path, op, shapes, producers, message, fix_for(fname or op, module, shapes, message),
                                  f.error))
    return rows, errors, output, gm, (row_of, sources)


# --------------------------------------------------------------------------------------------
# the hooks path
# --------------------------------------------------------------------------------------------

def _trace_hooks(meta_model: nn.Module, x: torch.Tensor) -> tuple[list[ModuleRow], list[ModuleError], Any]:
    rows: list[ModuleRow] = []
    errors: list[ModuleError] = []
    seen: set[int] = set()
    stack: list[str] = []
    names = {m: name for name, m in meta_model.named_modules()}
    last_out: dict[int, str] = {id(x): "input"}
    handles = []

    def pre(module: nn.Module, args: tuple) -> None:
        stack.append(names.get(module, "?"))

    def post(module: nn.Module, args: tuple, out: Any) -> None:
        stack.pop()
        if any(True for _child in module.children()):  # a container: only parameters it holds itself get a row
            own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
            t = first_tensor(out)
            if own and t is not None:
                seen.update(id(p) for p in own)
                rows.append(ModuleRow(len(rows), names.get(module, "?") or "(model)", type(module).__name__, "module",
                                      [tuple(i.shape) for i in tensors_in(args)], tuple(t.shape),
                                      sum(p.numel() for p in own), 0, 0, t.numel() * t.element_size()))
            return
        t = first_tensor(out)
        if t is None:
            return
        ins = tensors_in(args)
        params = 0
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                params += p.numel()
        mult, elem = module_counts(module, t, ins)
        rows.append(ModuleRow(len(rows), names.get(module, "?"), type(module).__name__, "module",
                              [tuple(i.shape) for i in ins], tuple(t.shape), params, int(mult), int(elem),
                              t.numel() * t.element_size()))
        last_out[id(t)] = rows[-1].path

    for m in meta_model.modules():
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post))
    output = None
    try:
        with AtenMultAdds() as counter:
            output = meta_model(x)
        remainder = counter.mult_adds - sum(r.mult_adds for r in rows)
        if remainder > 0:  # matrix products in functional code the hooks cannot see, counted at the aten level
            rows.append(ModuleRow(len(rows), "(functional operations)", "functional", "function", [], None,
                                  mult_adds=remainder))
    except Exception as e:  # noqa: BLE001 - the failure becomes a located error
        where = stack[-1] if stack else ""
        module = dict(meta_model.named_modules()).get(where)
        message = first_line(e)
        op = type(module).__name__ if module is not None else "forward"
        rows.append(ModuleRow(len(rows), where or "forward", op, "module", [], None, failed=True))
        errors.append(ModuleError(where or "forward", op, [], [], message, fix_for(op, module, [], message), e))
    finally:
        for h in handles:
            h.remove()
    return rows, errors, output


# --------------------------------------------------------------------------------------------
# the entry point
# --------------------------------------------------------------------------------------------

REAL_RUN_LIMIT = 2**30  # parameter bytes up to which a model whose forward needs values runs for real on the CPU


def _on_meta_only(e: BaseException | None) -> bool:
    """Whether a failure on the meta device is the device's (an operation that needs values), not the model's."""
    if e is None:  # no exception recorded: nothing says it is the device's
        return False
    text = str(e).lower()
    return isinstance(e, NotImplementedError) or "meta" in text or "data-dependent" in text


def _real_copy(model: nn.Module, factory: Callable[[], nn.Module] | None) -> nn.Module | None:
    """The model with real values on the CPU, for a forward that branches on them, or None when that would
    allocate more than REAL_RUN_LIMIT bytes or there are no values to be had."""
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    nbytes += sum(b.numel() * b.element_size() for b in model.buffers())
    if nbytes > REAL_RUN_LIMIT:
        return None
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        if factory is None:
            return None
        with torch.device("cpu"):
            return factory()
    return copy.deepcopy(model).cpu()


def inspect_module(model: nn.Module | Callable[[], nn.Module], input_shape: Iterable[int], name: str | None = None,
                   method: Literal["auto", "fx", "hooks"] = "auto") -> ModuleTrace:
    """Trace `model` (an nn.Module, or a function returning one, called on the meta device) for one input
    of `input_shape` (without the batch dimension, e.g. (3, 224, 224)). Nothing real is allocated, except
    for a model whose forward branches on values (then its copy runs on the CPU, when it is small enough,
    on a seeded random input, and the trace says so)."""
    factory = None
    if not isinstance(model, nn.Module):
        if not callable(model):
            raise ModuleTraceError(_("expected an nn.Module or a function returning one, got {kind}",
                                     kind=type(model).__name__))
        try:
            with torch.device("meta"):
                built = model()
        except Exception:  # noqa: BLE001 - a builder that computes with tensors (regnet's widths): build for real
            built = model()
        if not isinstance(built, nn.Module):
            raise ModuleTraceError(_("the function returned a {kind}, not an nn.Module",
                                     kind=type(built).__name__))
        factory, model = model, built
    shape = tuple(int(v) for v in input_shape)
    if not shape or any(v < 1 for v in shape) or math.prod(shape) > 2**34:
        raise ModuleTraceError(_("the input shape must be positive sizes such as 3,224,224, got {shape}",
                                 shape=shape))
    total, shared, trainable, buffers = _param_counts(model)
    meta = _meta_copy(model)
    meta.eval()
    x = torch.empty((1, *shape), device="meta")
    notes: list[str] = []
    if shared:
        notes.append(_("{n:,} parameters are reached under more than one name and counted once", n=shared))
    used: Method = "fx"
    residual: list[ResidualAdd] = []
    if method in ("auto", "fx"):
        try:
            rows, errors, output, gm, found = _trace_fx(meta, x)
            residual = residual_adds(gm, found, rows)
        except Exception as e:  # noqa: BLE001 - fx cannot trace this model: fall back to hooks
            if method == "fx":
                raise ModuleTraceError(_("torch.fx cannot trace this model: {reason}", reason=first_line(e))) from None
            used = "hooks"
            notes.append(_("torch.fx could not trace it ({reason}); traced with forward hooks, which see modules only: "
                           "functional operations and residual additions are not shown", reason=first_line(e)))
    else:
        used = "hooks"
    if used == "hooks":
        rows, errors, output = _trace_hooks(meta, x)
        if errors and _on_meta_only(errors[0].cause):
            real = _real_copy(model, factory)
            if real is None:
                errors[0].fix = (_("its forward needs the values of its tensors ({message}), which the meta device "
                                   "does not have, and a real run would allocate over {limit:,} bytes",
                                   message=errors[0].message, limit=REAL_RUN_LIMIT))
            else:
                real.eval()
                gen = torch.Generator().manual_seed(0)
                with torch.no_grad():
                    rows, errors, output = _trace_hooks(real, torch.randn((1, *shape), generator=gen))
                notes.append(_("its forward needs tensor values, so a copy ran for real on the CPU on a seeded "
                               "random input: branches taken on other inputs are not shown"))
    out = first_tensor(output)
    row_params = sum(r.params for r in rows)
    if not errors and row_params < total:
        notes.append(_("{n:,} parameters are not used by forward on this input", n=total - row_params))
    from resnet_core.modules.graph import module_dot
    return ModuleTrace(name or type(model).__name__, used, shape, rows, residual, errors, total, shared, trainable,
                       buffers, tuple(out.shape[1:]) if out is not None and not errors else None, notes,
                       draw=module_dot)  # type: ignore[arg-type]

