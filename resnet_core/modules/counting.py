"""What one operation of a traced module costs: mult-adds, element-wise work, receptive field; and the
fix to suggest when it fails.

Mult-adds are torch.utils.flop_counter's FLOPs / 2 (the torchvision convention; bias additions not
counted), computed here from shapes: convolutions, linear layers, matrix products, einsum and attention.
A call fx cannot see into (a wrapped Python function, an attention module) is counted at the aten level.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from typing import Any

import torch
from torch import fx, nn
from torch.utils._python_dispatch import TorchDispatchMode

from resnet_core.i18n import _
from resnet_core.text import plain

ADDS = {operator.add, operator.iadd, torch.add}
ADD_METHODS = {"add", "add_"}
SHAPE_QUERIES = {"size", "dim", "numel", "type", "__getattr__", "is_contiguous"}
CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
GLOBAL = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
           nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Flatten, nn.Linear)


def tensors_in(values: Iterable[Any]) -> list[torch.Tensor]:
    out = []
    for v in values:
        if isinstance(v, torch.Tensor):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            out.extend(tensors_in(v))
    return out


def first_tensor(value: Any) -> torch.Tensor | None:
    found = tensors_in([value])
    return found[0] if found else None


def module_counts(module: nn.Module, out: torch.Tensor, inputs: list[torch.Tensor]) -> tuple[int, int]:
    """(mult-adds, element-wise work) of one call of a leaf module."""
    if isinstance(module, CONV):
        w = module.weight
        return out.numel() * (w.shape[1] * math.prod(w.shape[2:])), 0
    if isinstance(module, CONV_T):
        w = module.weight
        return (inputs[0].numel() * w.shape[1] * math.prod(w.shape[2:])) if inputs else 0, 0
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features, 0
    if isinstance(module, POOL):
        k = module.kernel_size
        window = math.prod(k) if isinstance(k, tuple) else k ** max(1, out.dim() - 2)
        return 0, out.numel() * window
    if isinstance(module, GLOBAL) and inputs:
        return 0, inputs[0].numel()
    return 0, out.numel()


MATMULS = {torch.matmul, torch.mm, torch.bmm, operator.matmul, torch.nn.functional.linear, torch.addmm,
            torch.baddbmm}


class AtenMultAdds(TorchDispatchMode):
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


def einsum_mult_adds(args: tuple) -> int:
    """A two-operand einsum's mult-adds: the product of the sizes of every index it names."""
    if not args or not isinstance(args[0], str):
        return 0
    ops = tensors_in(args[1:])
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
        for letter, n in zip(spec, dims, strict=True):
            sizes[letter] = max(sizes.get(letter, 1), n)
    return batch * math.prod(sizes.values())


def function_counts(target: Any, args: tuple, out: torch.Tensor) -> tuple[int, int]:
    if target is torch.einsum:
        return einsum_mult_adds(args), 0
    if target in MATMULS or target in ("matmul", "mm", "bmm", "__matmul__"):
        ts = tensors_in(args)
        if target is torch.nn.functional.linear and len(ts) >= 2:
            return out.numel() * ts[1].shape[-1], 0
        if target in (torch.addmm, torch.baddbmm) and len(ts) >= 3:
            return out.numel() * ts[1].shape[-1], 0
        if len(ts) >= 2 and ts[0].dim() >= 1:
            return out.numel() * ts[0].shape[-1], 0
    if target in (torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv3d):
        ts = tensors_in(args)
        if len(ts) >= 2:
            w = ts[1]
            return out.numel() * w.shape[1] * math.prod(w.shape[2:]), 0
    if target in (torch.flatten, "flatten", "view", "reshape", "permute", "transpose", "contiguous",
                  operator.getitem, "expand", "unsqueeze", "squeeze", torch.cat, torch.stack, "chunk"):
        return 0, 0
    return 0, out.numel()


def rf_after(module_or_target: Any, rf_in: list[tuple[int, int] | None]) -> tuple[int, int] | None:
    """(receptive field, jump) of the output, from the inputs' ones; None where it is not defined."""
    known = [r for r in rf_in if r is not None]
    if not known or len(known) < len(rf_in):
        return None
    rf, jump = max(known)
    m = module_or_target
    if isinstance(m, (*CONV, *POOL)):
        k, s = m.kernel_size, m.stride
        d = getattr(m, "dilation", 1)
        k = max(k) if isinstance(k, tuple) else k
        s = max(s) if isinstance(s, tuple) else (s or k)
        d = max(d) if isinstance(d, tuple) else d
        return rf + (d * (k - 1)) * jump, jump * s
    if isinstance(m, (*GLOBAL, *CONV_T, nn.MultiheadAttention)) or m in (torch.flatten, "flatten", "view",
                                                                            "reshape", *MATMULS):
        return None
    return rf, jump


KNOWN_FUNCTIONS = ADDS | MATMULS | {torch.flatten, torch.cat, torch.stack, operator.getitem, operator.mul,
                                       torch.mul, torch.einsum, torch.relu, torch.sigmoid}


def is_opaque(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Whether fx sees this call as one opaque operation whose inner work must be counted at the aten level:
    a wrapped Python function (torchvision's shifted_window_attention), or an attention module."""
    if node.op == "call_module":
        return isinstance(node.target, str) and isinstance(modules.get(node.target), nn.MultiheadAttention)
    if node.op != "call_function" or node.target in KNOWN_FUNCTIONS:
        return False
    mod = getattr(node.target, "__module__", "") or ""
    return not (mod in ("torch", "_operator", "operator") or mod.startswith("torch."))


_SAME_SHAPE = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.LeakyReLU,
               nn.ELU, nn.Mish, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
_NORM_DIMS: dict[type[nn.Module], tuple[int, ...]] = {nn.BatchNorm1d: (2, 3), nn.BatchNorm2d: (4,), nn.BatchNorm3d: (5,)}


def same_shape_output(module: nn.Module, x: Any) -> torch.Tensor | None:
    """The output of a leaf module whose output has its input's shape (an activation, dropout, a batch
    norm), made directly on the meta device: running batch norm there goes through a slow Python
    decomposition (most of a ResNet's trace time). Raises what PyTorch raises for a wrong input; None
    for any other module (it is run)."""
    if not isinstance(x, torch.Tensor) or not x.is_meta or type(module) not in (*_SAME_SHAPE, *_NORM_DIMS):
        return None
    dims = _NORM_DIMS.get(type(module))
    if dims is not None:
        if x.dim() not in dims:
            raise ValueError(f"expected {' or '.join(f'{d}D' for d in dims)} input (got {x.dim()}D input)")
        if x.shape[1] != module.num_features:
            raise RuntimeError(f"running_mean should contain {x.shape[1]} elements not {module.num_features}")
    return torch.empty_like(x)


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return plain(text[0] if text else type(e).__name__, 300)


def message_for(op: str, shapes: list[tuple[int, ...]], raw: str) -> str:
    """What went wrong, in words: for an element-wise operation whose operands cannot meet, the two shapes
    side by side (PyTorch's broadcast message names dimensions from the end); otherwise PyTorch's own line."""
    if op in ("add", "sub", "mul", "iadd") and len(shapes) == 2 and shapes[0] != shapes[1]:
        a, b = ("×".join(map(str, s[1:])) for s in shapes)
        return _("the two operands cannot be added: {a} and {b} differ", a=a, b=b) if op in ("add", "iadd") else \
            _("the two operands cannot be combined element-wise: {a} and {b} differ", a=a, b=b)
    return raw


def fix_for(op: str, module: nn.Module | None, shapes: list[tuple[int, ...]], message: str) -> str:
    if op in ("add", "add_", "iadd", "sub", "mul") and len(shapes) == 2 and len(shapes[0]) == len(shapes[1]) == 4:
        (_n1, c1, h1, w1), (_n2, c2, h2, w2) = shapes
        stride = max(1, round(h2 / h1)) if h1 else 1
        if (c1, h1, w1) != (c2, h2, w2):
            return (_("give the shortcut a projection to the branch's shape: a 1×1 conv from {c2} to {c1} channels "
                      "with stride {stride}, then a norm (torchvision's `downsample`), or make the branch keep "
                      "{c2}×{h2}×{w2}", c2=c2, c1=c1, stride=stride, h2=h2, w2=w2))
    if isinstance(module, nn.Linear) and shapes and shapes[0][-1] != module.in_features:
        return (_("the layer expects {in_features} input features and gets {got}: use nn.Linear({got}, "
                  "{out_features}), or pool to 1×1 first (nn.AdaptiveAvgPool2d(1)) so the flattened size does not "
                  "depend on the input size",
                  in_features=module.in_features, got=shapes[0][-1], out_features=module.out_features))
    if isinstance(module, CONV) and shapes and len(shapes[0]) >= 2 and shapes[0][1] != module.in_channels:
        return (_("the convolution expects {in_channels} input channels and gets {got}: set in_channels={got}, "
                  "or make the layer before it output {in_channels}",
                  in_channels=module.in_channels, got=shapes[0][1]))
    if isinstance(module, CONV) and "kernel size" in message.lower():
        return _("the feature map is smaller than the kernel here: use a larger input or fewer stride-2 layers")
    if isinstance(module, nn.modules.batchnorm._NormBase) and shapes and len(shapes[0]) >= 2:
        return (_("the norm has {num_features} features and its input {got} channels: set num_features={got}",
                  num_features=module.num_features, got=shapes[0][1]))
    return ""


