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

from __future__ import annotations

import copy
import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal

import torch
from torch import fx, nn
from torch.utils._python_dispatch import TorchDispatchMode

from resnet_core.errors import ExplorerError
from resnet_core.text import plain

Method = Literal["fx", "hooks"]

_ADDS = {operator.add, operator.iadd, torch.add}
_ADD_METHODS = {"add", "add_"}
_SHAPE_QUERIES = {"size", "dim", "numel", "type", "__getattr__", "is_contiguous"}
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_GLOBAL = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
           nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Flatten, nn.Linear)


class ModuleTraceError(ExplorerError):
    """A model that cannot be traced at all (not an nn.Module, a bad input shape)."""


@dataclass
class ModuleRow:
    index: int
    path: str  # "layer1.0.conv1" for a module; "layer1.0:add" for a functional operation in layer1.0
    type: str  # the module's class ("Conv2d") or the operation ("add", "flatten", "relu")
    kind: Literal["module", "function"]
    in_shapes: list[tuple[int, ...]]
    out_shape: tuple[int, ...] | None  # None on the failed row
    params: int = 0
    mult_adds: int = 0
    elementwise: int = 0
    act_bytes: int = 0
    rf: int | None = None
    block: str | None = None  # the module the operation belongs to ("layer1.0")
    failed: bool = False
    inputs: list[int] = field(default_factory=list)  # rows whose outputs this one reads (-1: the model's input)

    def to_dict(self) -> dict:
        return {"index": self.index, "path": self.path, "type": self.type, "kind": self.kind, "inputs": self.inputs,
                "in_shapes": [list(s) for s in self.in_shapes],
                "out_shape": list(self.out_shape) if self.out_shape is not None else None,
                "params": self.params, "mult_adds": self.mult_adds, "elementwise": self.elementwise,
                "act_bytes": self.act_bytes, "rf": self.rf, "failed": self.failed}


@dataclass
class ResidualAdd:
    add: str  # the addition's row path
    block: str  # the module it belongs to ("layer2.0"), "" at the top level
    branch: list[str]  # row paths from the block input x to F(x)
    shortcut: list[str]  # row paths from x to the shortcut operand ([] for an identity)
    input: str = "input"  # the row path that produced x ("input": the model's input)

    @property
    def projected(self) -> bool:
        return bool(self.shortcut)

    def to_dict(self) -> dict:
        return {"add": self.add, "block": self.block, "input": self.input, "branch": self.branch,
                "shortcut": self.shortcut}


@dataclass
class ModuleError:
    where: str  # the module path of the failing operation
    op: str  # its type
    shapes: list[tuple[int, ...]]  # its input tensors' shapes
    produced_by: list[str]  # which row (or "input") produced each of them
    message: str  # what is wrong, one line
    fix: str  # what to change ("" when none is known)
    cause: BaseException | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        shapes = " and ".join(f"{_shape(s)} (from {p})" for s, p in zip(self.shapes, self.produced_by, strict=True))
        text = f"{self.where} ({self.op}): {self.message}; inputs {shapes}"
        return f"{text}. Fix: {self.fix}" if self.fix else text

    def to_dict(self) -> dict:
        return {"where": self.where, "op": self.op, "shapes": [list(s) for s in self.shapes],
                "produced_by": self.produced_by, "message": self.message, "fix": self.fix}


@dataclass
class ModuleTrace:
    name: str
    method: Method
    input_shape: tuple[int, ...]  # without the batch dimension
    rows: list[ModuleRow]
    residual_adds: list[ResidualAdd]
    errors: list[ModuleError]
    total_params: int  # unique parameters of the model (shared ones once)
    shared_params: int  # parameters reached under more than one name, counted once in total_params
    trainable_params: int
    buffers: int  # elements of buffers (running statistics, ...), apart from parameters
    output_shape: tuple[int, ...] | None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def mult_adds(self) -> int:
        return sum(r.mult_adds for r in self.rows)

    @property
    def elementwise(self) -> int:
        return sum(r.elementwise for r in self.rows)

    @property
    def activation_bytes(self) -> int:
        return sum(r.act_bytes for r in self.rows)

    @property
    def residual_blocks(self) -> list[ResidualAdd]:
        return self.residual_adds

    def to_dict(self) -> dict:
        return {"name": self.name, "source": "module", "method": self.method, "input_shape": list(self.input_shape),
                "total_params": self.total_params, "trainable_params": self.trainable_params,
                "shared_params": self.shared_params, "buffers": self.buffers, "mult_adds": self.mult_adds,
                "elementwise": self.elementwise, "activation_bytes": self.activation_bytes,
                "output_shape": list(self.output_shape) if self.output_shape is not None else None,
                "residual_blocks": [r.to_dict() for r in self.residual_adds],
                "errors": [e.to_dict() for e in self.errors], "notes": self.notes,
                "rows": [r.to_dict() for r in self.rows]}

    def table(self, limit: int | None = None) -> str:
        """The rows as a plain-text table (the command line's and the notebook's)."""
        head = ("#", "path", "type", "output", "params", "mult-adds", "rf")
        body = [(str(r.index), r.path + ("  ✗" if r.failed else ""), r.type, _shape(r.out_shape),
                 f"{r.params:,}", f"{r.mult_adds:,}", "" if r.rf is None else str(r.rf))
                for r in self.rows[:limit]]
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in (head, *body)]
        lines.append(f"{self.total_params:,} parameters · {self.mult_adds:,} mult-adds · "
                     f"{len(self.residual_adds)} residual additions · traced by {self.method}")
        lines.extend(f"error: {e}" for e in self.errors)
        return "\n".join(lines)

    def _repr_html_(self) -> str:  # Jupyter shows the trace as a table
        import html
        head = "".join(f"<th>{h}</th>" for h in ("#", "path", "type", "output", "params", "mult-adds", "rf"))
        failed = ' style="color:#b00"'
        rows = "".join(
            f"<tr{failed if r.failed else ''}><td>{r.index}</td><td>{html.escape(r.path)}</td>"
            f"<td>{html.escape(r.type)}</td><td>{_shape(r.out_shape)}</td><td>{r.params:,}</td>"
            f"<td>{r.mult_adds:,}</td><td>{'' if r.rf is None else r.rf}</td></tr>" for r in self.rows)
        errors = "".join(f"<p><b>error:</b> {html.escape(str(e))}</p>" for e in self.errors)
        return (f"<p><b>{html.escape(self.name)}</b>: {self.total_params:,} parameters · {self.mult_adds:,} "
                f"mult-adds · {len(self.residual_adds)} residual additions · traced by {self.method}</p>"
                f"{errors}<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")


def _shape(s: tuple[int, ...] | None) -> str:
    return "?" if s is None else "×".join(str(v) for v in s)


# --------------------------------------------------------------------------------------------
# the meta copy
# --------------------------------------------------------------------------------------------

def _meta_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` whose parameters and buffers are meta tensors (same shapes, same sharing)."""
    memo: dict[int, Any] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        if id(p) not in memo:
            memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    for _, b in model.named_buffers(remove_duplicate=False):
        if id(b) not in memo:
            memo[id(b)] = torch.empty_like(b, device="meta")
    return copy.deepcopy(model, memo)


def _param_counts(model: nn.Module) -> tuple[int, int, int, int]:
    unique = list(model.parameters())  # shared parameters once
    every = [p for _, p in model.named_parameters(remove_duplicate=False)]
    total = sum(p.numel() for p in unique)
    shared = sum(p.numel() for p in every) - total
    trainable = sum(p.numel() for p in unique if p.requires_grad)
    buffers = sum(b.numel() for b in model.buffers())
    return total, shared, trainable, buffers


# --------------------------------------------------------------------------------------------
# counting one operation
# --------------------------------------------------------------------------------------------

def _tensors(values: Iterable[Any]) -> list[torch.Tensor]:
    out = []
    for v in values:
        if isinstance(v, torch.Tensor):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            out.extend(_tensors(v))
    return out


def _first_tensor(value: Any) -> torch.Tensor | None:
    found = _tensors([value])
    return found[0] if found else None


def _module_counts(module: nn.Module, out: torch.Tensor, inputs: list[torch.Tensor]) -> tuple[int, int]:
    """(mult-adds, element-wise work) of one call of a leaf module."""
    if isinstance(module, _CONV):
        w = module.weight
        return out.numel() * (w.shape[1] * math.prod(w.shape[2:])), 0
    if isinstance(module, _CONV_T):
        w = module.weight
        return (inputs[0].numel() * w.shape[1] * math.prod(w.shape[2:])) if inputs else 0, 0
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features, 0
    if isinstance(module, _POOL):
        k = module.kernel_size
        window = math.prod(k) if isinstance(k, tuple) else k ** max(1, out.dim() - 2)
        return 0, out.numel() * window
    if isinstance(module, _GLOBAL) and inputs:
        return 0, inputs[0].numel()
    return 0, out.numel()


_MATMULS = {torch.matmul, torch.mm, torch.bmm, operator.matmul, torch.nn.functional.linear, torch.addmm,
            torch.baddbmm}


class _AtenMultAdds(TorchDispatchMode):
    """Counts the mult-adds of the matrix products and convolutions an opaque call makes (a function fx
    does not trace into, an attention module), from each aten operation's shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.mult_adds = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - PyTorch's protocol
        out = func(*args, **(kwargs or {}))
        aten = torch.ops.aten
        pkt = getattr(func, "overloadpacket", None)
        if pkt in (aten.mm, aten.bmm):
            self.mult_adds += out.numel() * args[0].shape[-1]
        elif pkt in (aten.addmm, aten.baddbmm):
            self.mult_adds += out.numel() * args[1].shape[-1]
        elif pkt is aten.convolution:
            x, w, transposed = args[0], args[1], args[6]
            self.mult_adds += (x.numel() * w.shape[1] * math.prod(w.shape[2:]) if transposed
                               else out.numel() * math.prod(w.shape[1:]))
        elif pkt in (aten._scaled_dot_product_flash_attention_for_cpu, aten._scaled_dot_product_efficient_attention,
                     aten._scaled_dot_product_flash_attention):
            q, k, v = args[:3]  # (B, H, L, E), (B, H, S, E), (B, H, S, Ev)
            self.mult_adds += math.prod(q.shape[:-1]) * k.shape[-2] * (q.shape[-1] + v.shape[-1])
        return out


def _einsum_mult_adds(args: tuple) -> int:
    """A two-operand einsum's mult-adds: the product of the sizes of every index it names."""
    if not args or not isinstance(args[0], str):
        return 0
    ops = _tensors(args[1:])
    if len(ops) != 2:
        return 0
    lhs = args[0].replace(" ", "").split("->")[0].split(",")
    if len(lhs) != 2:
        return 0
    sizes: dict[str, int] = {}
    batch = 1
    for spec, t in zip(lhs, ops, strict=True):
        dims = list(t.shape)
        if "..." in spec:
            head, tail = spec.split("...")
            n_ell = len(dims) - len(head) - len(tail)
            batch = max(batch, math.prod(dims[len(head): len(head) + n_ell]))
            dims = dims[: len(head)] + dims[len(head) + n_ell:]
            spec = head + tail
        for letter, n in zip(spec, dims, strict=False):
            sizes[letter] = max(sizes.get(letter, 1), n)
    return batch * math.prod(sizes.values())


def _function_counts(target: Any, args: tuple, out: torch.Tensor) -> tuple[int, int]:
    if target is torch.einsum:
        return _einsum_mult_adds(args), 0
    if target in _MATMULS or target in ("matmul", "mm", "bmm", "__matmul__"):
        ts = _tensors(args)
        if target is torch.nn.functional.linear and len(ts) >= 2:
            return out.numel() * ts[1].shape[-1], 0
        if target in (torch.addmm, torch.baddbmm) and len(ts) >= 3:
            return out.numel() * ts[1].shape[-1], 0
        if len(ts) >= 2 and ts[0].dim() >= 1:
            return out.numel() * ts[0].shape[-1], 0
    if target in (torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv3d):
        ts = _tensors(args)
        if len(ts) >= 2:
            w = ts[1]
            return out.numel() * w.shape[1] * math.prod(w.shape[2:]), 0
    if target in (torch.flatten, "flatten", "view", "reshape", "permute", "transpose", "contiguous",
                  operator.getitem, "expand", "unsqueeze", "squeeze", torch.cat, torch.stack, "chunk"):
        return 0, 0
    return 0, out.numel()


def _rf_after(module_or_target: Any, rf_in: list[tuple[int, int] | None]) -> tuple[int, int] | None:
    """(receptive field, jump) of the output, from the inputs' ones; None where it is not defined."""
    known = [r for r in rf_in if r is not None]
    if not known or len(known) < len(rf_in):
        return None
    rf, jump = max(known)
    m = module_or_target
    if isinstance(m, (*_CONV, *_POOL)):
        k, s = m.kernel_size, m.stride
        d = getattr(m, "dilation", 1)
        k = max(k) if isinstance(k, tuple) else k
        s = max(s) if isinstance(s, tuple) else (s or k)
        d = max(d) if isinstance(d, tuple) else d
        return rf + (d * (k - 1)) * jump, jump * s
    if isinstance(m, (*_GLOBAL, *_CONV_T, nn.MultiheadAttention)) or m in (torch.flatten, "flatten", "view",
                                                                            "reshape", *_MATMULS):
        return None
    return rf, jump


# --------------------------------------------------------------------------------------------
# located errors
# --------------------------------------------------------------------------------------------

_KNOWN_FUNCTIONS = _ADDS | _MATMULS | {torch.flatten, torch.cat, torch.stack, operator.getitem, operator.mul,
                                       torch.mul, torch.einsum, torch.relu, torch.sigmoid}


def _opaque(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Whether fx sees this call as one opaque operation whose inner work must be counted at the aten level:
    a wrapped Python function (torchvision's shifted_window_attention), or an attention module."""
    if node.op == "call_module":
        return isinstance(modules.get(node.target), nn.MultiheadAttention)
    if node.op != "call_function" or node.target in _KNOWN_FUNCTIONS:
        return False
    mod = getattr(node.target, "__module__", "") or ""
    return not (mod in ("torch", "_operator", "operator") or mod.startswith("torch."))


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return plain(text[0] if text else type(e).__name__, 300)


def _fix_for(op: str, module: nn.Module | None, shapes: list[tuple[int, ...]], message: str) -> str:
    if op in ("add", "add_", "iadd", "sub", "mul") and len(shapes) == 2 and len(shapes[0]) == len(shapes[1]) == 4:
        (_, c1, h1, w1), (_, c2, h2, w2) = shapes
        stride = max(1, round(h2 / h1)) if h1 else 1
        if (c1, h1, w1) != (c2, h2, w2):
            return (f"give the shortcut a projection to the branch's shape: a 1×1 conv from {c2} to {c1} "
                    f"channels with stride {stride}, then a norm (torchvision's `downsample`), or make the "
                    f"branch keep {c2}×{h2}×{w2}")
    if isinstance(module, nn.Linear) and shapes and shapes[0][-1] != module.in_features:
        return (f"the layer expects {module.in_features} input features and gets {shapes[0][-1]}: use "
                f"nn.Linear({shapes[0][-1]}, {module.out_features}), or pool to 1×1 first "
                f"(nn.AdaptiveAvgPool2d(1)) so the flattened size does not depend on the input size")
    if isinstance(module, _CONV) and shapes and len(shapes[0]) >= 2 and shapes[0][1] != module.in_channels:
        return (f"the convolution expects {module.in_channels} input channels and gets {shapes[0][1]}: set "
                f"in_channels={shapes[0][1]}, or make the layer before it output {module.in_channels}")
    if isinstance(module, _CONV) and "kernel size" in message.lower():
        return "the feature map is smaller than the kernel here: use a larger input or fewer stride-2 layers"
    if isinstance(module, nn.modules.batchnorm._NormBase) and shapes and len(shapes[0]) >= 2:
        return (f"the norm has {module.num_features} features and its input {shapes[0][1]} channels: set "
                f"num_features={shapes[0][1]}")
    return ""


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
            if id(p) not in seen_params:
                seen_params.add(id(p))
                n += p.numel()
        return n

    class Run(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            try:
                if _opaque(n, modules):
                    with _AtenMultAdds() as counter:
                        out = super().run_node(n)
                    opaque_mult[n] = counter.mult_adds
                    return out
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
            out = _first_tensor(value)
            if node.op == "get_attr":
                rf[node] = None
                continue
            if out is None or (node.op == "call_method" and node.target in _SHAPE_QUERIES):
                sources[node] = sources_of(node)
                continue
            ins = [a for a in node.all_input_nodes]
            in_tensors = [_first_tensor(values.get(a)) for a in ins]
            in_shapes = [tuple(t.shape) for t in in_tensors if t is not None]
            path, fname, owner = _node_path(node, counters, uses)
            module = modules.get(node.target) if node.op == "call_module" else None
            if module is not None:
                mult, elem = _module_counts(module, out, [t for t in in_tensors if t is not None])
                params = params_of(module.parameters())
                rf[node] = _rf_after(module, [rf.get(a) for a in ins if _first_tensor(values.get(a)) is not None])
                typ = type(module).__name__
            else:
                args = fx.node.map_arg(node.args, lambda a: values.get(a))
                mult, elem = _function_counts(node.target, args, out)
                params = params_of(p for a in ins if a.op == "get_attr"
                                   for p in [values.get(a)] if isinstance(p, torch.Tensor))
                rf[node] = _rf_after(node.target, [rf.get(a) for a in ins if _first_tensor(values.get(a)) is not None])
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
        ins = [a for a in node.all_input_nodes if _first_tensor(values.get(a)) is not None]
        shapes = [tuple(_first_tensor(values[a]).shape) for a in ins]  # type: ignore[union-attr]
        producers = [row_of[a].path if a in row_of else ("input" if a.op == "placeholder" else a.name) for a in ins]
        op = type(module).__name__ if module is not None else fname
        message = _first_line(f.error)
        rows.append(ModuleRow(len(rows), path, op, "module" if module is not None else "function", shapes, None,
                              block=owner or None, failed=True, inputs=sources_of(node)))
        errors.append(ModuleError(path, op, shapes, producers, message, _fix_for(fname or op, module, shapes, message),
                                  f.error))
    return rows, errors, output, gm, (row_of, sources)


# --------------------------------------------------------------------------------------------
# residual additions on the fx graph
# --------------------------------------------------------------------------------------------

def _is_add(node: fx.Node) -> bool:
    if node.op == "call_function" and node.target in _ADDS:
        return True
    return node.op == "call_method" and node.target in _ADD_METHODS


def _find_residuals(gm: fx.GraphModule) -> list[tuple[fx.Node, fx.Node, list[fx.Node], list[fx.Node], fx.Node]]:
    """(add, its F(x) operand, the branch's nodes, the shortcut's nodes, x) for every residual addition."""
    nodes = list(gm.graph.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    anc: dict[fx.Node, int] = {}  # bitset of ancestors by index
    weighted: set[fx.Node] = set()
    modules = dict(gm.named_modules())
    for n in nodes:
        bits = 0
        for a in n.all_input_nodes:
            bits |= anc[a] | (1 << index[a])
        anc[n] = bits
        if n.op == "get_attr" or (n.op == "call_module" and any(True for _ in modules[n.target].parameters())):
            weighted.add(n)
    found = []
    for n in nodes:
        if not _is_add(n):
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
            return sum(1 for m in path if m in weighted or any(x in weighted for x in m.all_input_nodes))

        side_a, side_b = side(a), side(b)
        wa, wb = weights(side_a), weights(side_b)
        if wa == 0 and wb == 0:
            continue
        if (wa, len(side_a)) >= (wb, len(side_b)):
            found.append((n, a, side_a, side_b, nodes[fork]))
        else:
            found.append((n, b, side_b, side_a, nodes[fork]))
    return found


def _residual_adds(gm: fx.GraphModule, found: tuple[dict, dict], rows: list[ModuleRow]) -> list[ResidualAdd]:
    row_of, sources = found
    out = []
    for add, _, branch, shortcut, x in _find_residuals(gm):
        if add in row_of:
            row = row_of[add]
            src = sources.get(x, [-1])
            x_path = rows[src[-1]].path if src and src[-1] >= 0 else "input"
            out.append(ResidualAdd(row.path, row.block or "", [row_of[m].path for m in branch if m in row_of],
                                   [row_of[m].path for m in shortcut if m in row_of], x_path))
    return out


def skips_off(model: nn.Module) -> fx.GraphModule:
    """The model with every residual addition replaced by its branch F(x) alone, on the SAME weights: the
    returned module holds the model's own submodules and parameters (nothing is copied)."""
    gm = fx.symbolic_trace(model)
    for add, branch_operand, _, _, _ in _find_residuals(gm):
        add.replace_all_uses_with(branch_operand)
        gm.graph.erase_node(add)
    gm.graph.lint()
    gm.recompile()
    return gm


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
        if any(True for _ in module.children()):
            return
        t = _first_tensor(out)
        if t is None:
            return
        ins = _tensors(args)
        params = 0
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                params += p.numel()
        mult, elem = _module_counts(module, t, ins)
        rows.append(ModuleRow(len(rows), names.get(module, "?"), type(module).__name__, "module",
                              [tuple(i.shape) for i in ins], tuple(t.shape), params, int(mult), int(elem),
                              t.numel() * t.element_size()))
        last_out[id(t)] = rows[-1].path

    for m in meta_model.modules():
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post))
    output = None
    try:
        output = meta_model(x)
    except Exception as e:  # noqa: BLE001 - the failure becomes a located error
        where = stack[-1] if stack else ""
        module = dict(meta_model.named_modules()).get(where)
        message = _first_line(e)
        op = type(module).__name__ if module is not None else "forward"
        rows.append(ModuleRow(len(rows), where or "forward", op, "module", [], None, failed=True))
        errors.append(ModuleError(where or "forward", op, [], [], message, _fix_for(op, module, [], message), e))
    finally:
        for h in handles:
            h.remove()
    return rows, errors, output


# --------------------------------------------------------------------------------------------
# the entry point
# --------------------------------------------------------------------------------------------

REAL_RUN_LIMIT = 2**30  # parameter bytes up to which a model whose forward needs values runs for real on the CPU


def _on_meta_only(e: BaseException) -> bool:
    """Whether a failure on the meta device is the device's (an operation that needs values), not the model's."""
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
            raise ModuleTraceError(f"expected an nn.Module or a function returning one, got {type(model).__name__}")
        try:
            with torch.device("meta"):
                built = model()
        except Exception:  # noqa: BLE001 - a builder that computes with tensors (regnet's widths): build for real
            built = model()
        if not isinstance(built, nn.Module):
            raise ModuleTraceError(f"the function returned a {type(built).__name__}, not an nn.Module")
        factory, model = model, built
    shape = tuple(int(v) for v in input_shape)
    if not shape or any(v < 1 for v in shape) or math.prod(shape) > 2**34:
        raise ModuleTraceError(f"the input shape must be positive sizes such as 3,224,224, got {shape}")
    total, shared, trainable, buffers = _param_counts(model)
    meta = _meta_copy(model)
    meta.eval()
    x = torch.empty((1, *shape), device="meta")
    notes: list[str] = []
    if shared:
        notes.append(f"{shared:,} parameters are reached under more than one name and counted once")
    used: Method = "fx"
    residual: list[ResidualAdd] = []
    if method in ("auto", "fx"):
        try:
            rows, errors, output, gm, found = _trace_fx(meta, x)
            residual = _residual_adds(gm, found, rows)
        except Exception as e:  # noqa: BLE001 - fx cannot trace this model: fall back to hooks
            if method == "fx":
                raise ModuleTraceError(f"torch.fx cannot trace this model: {_first_line(e)}") from None
            used = "hooks"
            notes.append(f"torch.fx could not trace it ({_first_line(e)}); traced with forward hooks, which see "
                         f"modules only: functional operations and residual additions are not shown")
    else:
        used = "hooks"
    if used == "hooks":
        rows, errors, output = _trace_hooks(meta, x)
        if errors and _on_meta_only(errors[0].cause):
            real = _real_copy(model, factory)
            if real is None:
                errors[0].fix = (f"its forward needs the values of its tensors ({errors[0].message}), which the meta "
                                 f"device does not have, and a real run would allocate over {REAL_RUN_LIMIT:,} bytes")
            else:
                real.eval()
                gen = torch.Generator().manual_seed(0)
                with torch.no_grad():
                    rows, errors, output = _trace_hooks(real, torch.randn((1, *shape), generator=gen))
                notes.append("its forward needs tensor values, so a copy ran for real on the CPU on a seeded "
                             "random input: branches taken on other inputs are not shown")
    out = _first_tensor(output)
    row_params = sum(r.params for r in rows)
    if not errors and row_params < total:
        notes.append(f"{total - row_params:,} parameters are not used by forward on this input")
    return ModuleTrace(name or type(model).__name__, used, shape, rows, residual, errors, total, shared, trainable,
                       buffers, tuple(out.shape[1:]) if out is not None and not errors else None, notes)
