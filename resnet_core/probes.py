"""Hooks on a built model: feature maps, residual-block anatomy, activation statistics, gradient flow.

What every function here that takes a model guarantees, also when it raises:
- hooks live for one pass only and are removed in a `finally`;
- the train/eval mode of every module, every block's skip switch, the BatchNorm running statistics a
  train-mode pass would update, and every parameter's `.grad` are put back as they were. The weights
  are never changed.
Still, pass a model of your own: a model shared with other sessions (st.cache_resource) must not be
run here while another session may use it. The app builds a model per run, or deep-copies one, and
caches nothing mutable. (`gradient_flow` and `forward_view` copy the model themselves when they move
it to another device.)

Tensors are reduced on the model's device (norms, per-channel energies, the top-k channels, small
maps) and only the reduced values are copied to the CPU. The high-level entry points
(`gradient_flow`, `forward_view`) check an estimate of the pass's memory against the device's free
memory (`device.check_fits`, which refuses with the numbers) and hold the device's slot
(`device.device_slot`) while they run, so several sessions never run on one GPU at once.

NaN and Inf never raise: each gradient norm is classified as ok, vanished (0 or below
`VANISHED_BELOW`), exploded (NaN, Inf or above `EXPLODED_ABOVE`) or unused (the layer took no part,
e.g. a projection shortcut while the skips are off).
"""

from __future__ import annotations

import copy
import hashlib
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .build import ResidualBlock, build_model, set_skip
from .device import check_fits, describe, device_slot, estimate_pass, pick_device
from .plan import BlockPlan, Layer, Plan, plan as make_plan
from .spec import ArchSpec
from .trace import Trace

VANISHED_BELOW = 1e-8  # an SGD step (lr 0.1) on a weight of size ~1 then changes it by less than float32 resolves
EXPLODED_ABOVE = 1e3  # a single SGD step at lr 0.1 would move the weights by ~100× their size

STATUS_HELP = {
    "ok": "a usable gradient",
    "vanished": f"exactly 0 or below {VANISHED_BELOW:g}: the layer effectively does not learn",
    "exploded": f"NaN, Inf or above {EXPLODED_ABOVE:g}: a step would wreck the weights",
    "unused": "the layer took no part in this pass (a shortcut while the skips are off)",
}

FEATURE_SCALING = ("Each channel is scaled on its own: its minimum shows as black and its maximum as white "
                   "(the raw range of every channel is listed). Brightness compares positions within one "
                   "channel, not channels with each other; compare channels by their energy (the mean "
                   "square activation). A constant channel (e.g. all zero after a ReLU) shows black.")



class ProbeError(ValueError):
    """A probe that cannot run as asked (unknown layer, mismatched plan, a batch-norm batch of one...)."""


def classify(value: float | None, vanished_below: float = VANISHED_BELOW,
             exploded_above: float = EXPLODED_ABOVE) -> str:
    """ok | vanished | exploded | unused (None: no gradient reached it)."""
    if value is None:
        return "unused"
    if not math.isfinite(value) or value > exploded_above:
        return "exploded"
    if value < vanished_below:
        return "vanished"
    return "ok"


# --------------------------------------------------------------------------------------------
# state keeping: hooks, modes, skips, buffers, grads
# --------------------------------------------------------------------------------------------

class HookSet:
    """Handles of hooks registered for one pass; `remove()` removes every one (idempotent)."""

    def __init__(self) -> None:
        self._handles: list[Any] = []

    def add(self, handle: Any) -> Any:
        self._handles.append(handle)
        return handle

    def remove(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    def __len__(self) -> int:
        return len(self._handles)


@contextmanager
def hooks() -> Iterator[HookSet]:
    """A HookSet whose hooks are removed on exit, whatever happens inside."""
    hs = HookSet()
    try:
        yield hs
    finally:
        hs.remove()


def _blocks_of(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, ResidualBlock)]


@contextmanager
def preserved(model: nn.Module, buffers: bool = True, grads: bool = True) -> Iterator[nn.Module]:
    """Restore on exit: every module's train/eval mode, every block's skip switch, the buffers (BatchNorm
    running statistics) and the parameters' .grad."""
    modes = [(m, m.training) for m in model.modules()]
    skips = [(m, m.skip) for _, m in _blocks_of(model)]
    saved_buffers = [(b, b.detach().clone()) for b in model.buffers()] if buffers else []
    saved_grads = [(p, p.grad) for p in model.parameters()] if grads else []
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for m, skip in skips:
            m.skip = skip
        with torch.no_grad():
            for b, value in saved_buffers:
                b.copy_(value)
        for p, g in saved_grads:
            p.grad = g


def _model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def _module(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise ProbeError(f"the model has no module '{name}': the plan and the model do not match "
                         "(build the model from the same spec as the plan)") from None


def _check_input(x: torch.Tensor, p: Plan | None) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ProbeError(f"the input must be a batch of images (B, C, H, W), got {shape}")
    if p is not None and tuple(x.shape[1:]) != tuple(p.input_shape):
        got = "×".join(map(str, x.shape[1:]))
        want = "×".join(map(str, p.input_shape))
        raise ProbeError(f"the batch holds {got} images but the network was planned for {want}")


def _check_batch_norm(p: Plan, batch: int, train: bool) -> None:
    """Batch norm in training mode cannot normalise a single value per channel: say so before running."""
    if not train or p.spec.norm != "batch":
        return
    for lay in p.layers:
        if lay.op == "norm" and len(lay.in_shape) == 3 and batch * lay.in_shape[1] * lay.in_shape[2] <= 1:
            h, w = lay.in_shape[1:]
            raise ProbeError(
                f"batch norm in training mode needs more than one value per channel, but {lay.name} sees a "
                f"{h}×{w} map on a batch of {batch}: use a batch of 2 or more, a larger input, or eval mode")


def _calls_of(p: Plan) -> list[tuple[Layer, int]]:
    """Each plan layer with the call number of its module (a reused `relu` is called several times)."""
    seen: dict[str, int] = {}
    out = []
    for lay in p.layers:
        k = seen.get(lay.name, 0)
        seen[lay.name] = k + 1
        out.append((lay, k))
    return out


def _block_plans(p: Plan) -> dict[str, BlockPlan]:
    return {b.name: b for b in p.blocks}


def _fingerprint(model: nn.Module) -> str:
    """A digest of every parameter's bytes: equal digests, equal weights."""
    h = hashlib.blake2b(digest_size=8)
    for name, t in model.named_parameters():
        h.update(name.encode())
        h.update(t.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _tensor_fingerprint(*tensors: torch.Tensor) -> str:
    h = hashlib.blake2b(digest_size=8)
    for t in tensors:
        h.update(t.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _safe_ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return None
    if b == 0:
        return math.inf if a > 0 else None
    return a / b


# --------------------------------------------------------------------------------------------
# forward records
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FeatureMaps:
    """The top-k channels of one layer's output for one image, each min-max scaled on its own."""

    layer: str  # module name, "layer2.0.conv1"
    index: int | None  # the layer's index in the plan (None when asked by module name alone)
    call: int  # which call of the module (a block's `relu` runs twice)
    op: str | None  # conv | norm | act | add | ...
    sample: int  # which image of the batch
    shape: tuple[int, int, int]  # (C, H, W) of the layer's output
    channels: tuple[int, ...]  # channel indices shown, highest energy first
    energy: tuple[float, ...]  # their energy: mean square activation over H×W
    minimum: tuple[float, ...]  # each shown channel's raw minimum (maps to black)
    maximum: tuple[float, ...]  # each shown channel's raw maximum (maps to white)
    flat: tuple[bool, ...]  # channels constant over the map (shown all black)
    maps: np.ndarray = field(repr=False)  # (k, H, W) float32 in [0, 1]
    all_energy: np.ndarray = field(repr=False)  # (C,) energy of every channel
    scaling: str = FEATURE_SCALING

    def grid(self, cols: int | None = None, pad: int = 1, pad_value: int = 255) -> np.ndarray:
        """The maps tiled row by row into one uint8 image (rows·(H+pad)−pad, cols·(W+pad)−pad)."""
        k, h, w = self.maps.shape
        if k == 0:
            return np.zeros((h, w), dtype=np.uint8)
        cols = max(1, min(cols or math.ceil(math.sqrt(k)), k))
        rows = math.ceil(k / cols)
        out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), pad_value, dtype=np.uint8)
        tiles = (self.maps * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
        for i in range(k):
            r, c = divmod(i, cols)
            out[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = tiles[i]
        return out

    def rows(self) -> list[dict[str, Any]]:
        return [{"rank": r + 1, "channel": c, "energy": e, "min": lo, "max": hi, "flat": f}
                for r, (c, e, lo, hi, f) in enumerate(zip(self.channels, self.energy, self.minimum, self.maximum,
                                                          self.flat))]

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "index": self.index, "call": self.call, "op": self.op, "sample": self.sample,
                "shape": list(self.shape), "channels": self.rows(), "scaling": self.scaling}


@dataclass(frozen=True)
class TensorView:
    """One tensor of a residual block, reduced for display."""

    name: str  # x | F(x) | shortcut(x) | F(x)+x | output
    shape: tuple[int, int, int]  # (C, H, W)
    norm: float  # L2 norm over the whole batch
    sample_norm: float  # L2 norm of the shown image
    minimum: float  # over the shown image
    maximum: float
    mean_map: np.ndarray = field(repr=False)  # (H, W): the channel mean, shown image
    channels: tuple[int, ...] = ()  # channels shown, by energy in this tensor
    channel_maps: np.ndarray = field(repr=False, default=None)  # (n, H, W) raw values of those channels

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "norm": self.norm, "sample_norm": self.sample_norm,
                "min": self.minimum, "max": self.maximum, "channels": list(self.channels)}


@dataclass(frozen=True)
class BlockAnatomy:
    """x, F(x), the shortcut (when projected or padded), F(x)+x and the block's output, with their norms."""

    block: str  # "layer2.0"
    stage: int | None  # 0-based, as in the plan
    index: int | None  # block index within the stage
    kind: str  # the block's class: BasicBlock, Bottleneck, ...
    shortcut: str  # identity | projection | pad | none
    skip: bool  # the skip connection was on in this pass
    x: TensorView
    fx: TensorView
    shortcut_x: TensorView | None  # None for an identity shortcut (it is x itself) or with the skip off
    sum: TensorView | None  # F(x)+shortcut(x); None with the skip off
    output: TensorView
    ratio: float | None  # ‖F(x)‖ / ‖x‖ over the batch
    ratio_to_shortcut: float | None  # ‖F(x)‖ / ‖shortcut(x)‖ when the shortcut is projected or padded

    def tensors(self) -> list[TensorView]:
        """The views in display order, side by side: x, [shortcut(x)], F(x), F(x)+x, output."""
        return [t for t in (self.x, self.shortcut_x, self.fx, self.sum, self.output) if t is not None]

    def to_dict(self) -> dict[str, Any]:
        return {"block": self.block, "kind": self.kind, "shortcut": self.shortcut, "skip": self.skip,
                "ratio": self.ratio, "ratio_to_shortcut": self.ratio_to_shortcut,
                "tensors": [t.to_dict() for t in self.tensors()]}


@dataclass(frozen=True)
class LayerStats:
    """Activation statistics of one layer's output, over the whole batch."""

    index: int  # plan index
    name: str
    op: str
    part: str  # stem | main | shortcut | add | post | head
    stage: int | None
    block: int | None
    shape: tuple[int, ...] | None  # output shape of one image
    ran: bool  # False when the layer did not run (a shortcut with the skip off)
    mean: float | None
    std: float | None
    zeros: float | None  # fraction of exactly-zero values
    finite: bool  # no NaN or Inf in the output

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "op": self.op, "part": self.part,
                "stage": None if self.stage is None else self.stage + 1, "block": self.block,
                "shape": None if self.shape is None else list(self.shape), "ran": self.ran, "mean": self.mean,
                "std": self.std, "zeros": self.zeros, "finite": self.finite}


@dataclass(frozen=True)
class ForwardView:
    """Everything the forward view shows, from one forward pass."""

    device: str  # "CPU · 2 threads" / "CUDA · NVIDIA H100 (…)"
    mode: str  # "eval" or "train"
    batch: int
    input_shape: tuple[int, int, int]
    logits: torch.Tensor = field(repr=False)  # (batch, num_classes) float32 on the CPU
    feature_maps: FeatureMaps | None = None
    anatomy: BlockAnatomy | None = None
    stats: tuple[LayerStats, ...] = ()


def _reduce_map(a: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    """One image's (C, H, W) activation → energies, the top-k channels and their min-max scaling, on device."""
    a = a.detach().float()
    energy = a.pow(2).mean(dim=(1, 2))  # (C,)
    k = min(k, a.shape[0])
    top = torch.topk(torch.nan_to_num(energy, nan=math.inf), k).indices  # NaN channels first: they matter
    sel = a.index_select(0, top)  # (k, H, W)
    lo = sel.amin(dim=(1, 2))
    hi = sel.amax(dim=(1, 2))
    span = (hi - lo).view(-1, 1, 1)
    scaled = torch.where(span > 0, (sel - lo.view(-1, 1, 1)) / span.clamp_min(torch.finfo(torch.float32).tiny),
                         torch.zeros_like(sel))
    scaled = torch.nan_to_num(scaled, nan=0.0, posinf=1.0, neginf=0.0).clamp(0.0, 1.0)
    return {"energy": energy, "top": top, "lo": lo, "hi": hi, "scaled": scaled}


def _feature_maps_from(out: torch.Tensor, layer: str, index: int | None, call: int, op: str | None, sample: int,
                       k: int) -> FeatureMaps:
    if out.dim() != 4:
        raise ProbeError(f"{layer} gives a {tuple(out.shape[1:])} output, not C×H×W maps: "
                         "choose a conv, norm, activation, pool or addition layer")
    r = _reduce_map(out[sample], k)
    cpu = {name: t.to("cpu") for name, t in r.items()}  # only the reduced tensors cross to the CPU
    energy_all = cpu["energy"].numpy()
    top = cpu["top"].tolist()
    lo, hi = cpu["lo"].tolist(), cpu["hi"].tolist()
    return FeatureMaps(layer=layer, index=index, call=call, op=op, sample=sample, shape=tuple(out.shape[1:]),
                       channels=tuple(top), energy=tuple(float(energy_all[c]) for c in top), minimum=tuple(lo),
                       maximum=tuple(hi), flat=tuple(not (b > a) for a, b in zip(lo, hi)),
                       maps=cpu["scaled"].numpy(), all_energy=energy_all)


def _view(name: str, t: torch.Tensor, sample: int, channels: int) -> TensorView:
    t = t.detach().float()
    img = t[sample]  # (C, H, W)
    energy = img.pow(2).mean(dim=(1, 2))
    n = min(channels, img.shape[0])
    top = torch.topk(torch.nan_to_num(energy, nan=math.inf), n).indices if n else torch.zeros(0, dtype=torch.long,
                                                                                             device=img.device)
    scalars = torch.stack([torch.linalg.vector_norm(t), torch.linalg.vector_norm(img), img.amin(), img.amax()])
    scalars, mean_map, chans, top = (v.to("cpu") for v in (scalars, img.mean(0), img.index_select(0, top), top))
    norm, sample_norm, lo, hi = scalars.tolist()
    return TensorView(name=name, shape=tuple(img.shape), norm=norm, sample_norm=sample_norm, minimum=lo, maximum=hi,
                      mean_map=mean_map.numpy(), channels=tuple(top.tolist()), channel_maps=chans.numpy())


def _stats_vector(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().float()
    std, mean = torch.std_mean(t, correction=0)
    return torch.stack([mean, std, (t == 0).float().mean(), torch.isfinite(t).all().float()])


def _resolve_layer(p: Plan | None, layer: str | int, call: int | None) -> tuple[str, int | None, int, str | None, tuple]:
    """(module name, plan index, call number, op, output shape) for a layer given by plan index or name."""
    if isinstance(layer, int) and not isinstance(layer, bool):
        if p is None:
            raise ProbeError("a layer given by its index needs the plan")
        if not 0 <= layer < len(p.layers):
            raise ProbeError(f"layer index {layer} is out of range: the plan has {len(p.layers)} layers")
        lay, k = _calls_of(p)[layer]
        return lay.name, lay.index, k, lay.op, lay.out_shape or ()
    if not isinstance(layer, str) or not layer:
        raise ProbeError(f"a layer is a module name or a plan index, got {layer!r}")
    if p is None:
        return layer, None, -1 if call is None else call, None, ()
    matches = [(lay, k) for lay, k in _calls_of(p) if lay.name == layer]
    if not matches:
        import difflib
        close = difflib.get_close_matches(layer, sorted({lay.name for lay in p.layers}), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ProbeError(f"no layer named '{layer}' in this network{hint}")
    if call is None:
        lay, k = matches[-1]
    else:
        if not -len(matches) <= call < len(matches):
            raise ProbeError(f"{layer} runs {len(matches)} time(s) per pass; call {call} does not exist")
        lay, k = matches[call]
    return lay.name, lay.index, k, lay.op, lay.out_shape or ()


def _shortcut_kind(block: nn.Module) -> str:
    if getattr(block, "add", None) is None:
        return "none"
    ds = getattr(block, "downsample", None)
    if ds is None:
        return "identity"
    return "pad" if not any(True for _ in ds.parameters()) else "projection"


def _last_layer(block: nn.Module) -> nn.Module:
    if hasattr(block, "last_layer"):
        return block.last_layer()
    for name in ("bn3", "conv3", "bn2", "conv2"):
        m = getattr(block, name, None)
        if m is not None and not isinstance(m, nn.Identity):
            return m
    raise ProbeError(f"cannot find the last layer of the residual branch of {type(block).__name__}")


def _forward_capture(model: nn.Module, x: torch.Tensor, p: Plan | None, *, layer: str | int | None = None,
                     call: int | None = None, block: str | None = None, stats: bool = False, sample: int = 0,
                     top_k: int = 16, channels: int = 4, train: bool = False
                     ) -> tuple[torch.Tensor, FeatureMaps | None, BlockAnatomy | None, list[LayerStats]]:
    """One forward pass (no gradients) with the hooks the forward view needs; everything reduced on device."""
    _check_input(x, p)
    if not -x.shape[0] <= sample < x.shape[0]:
        raise ProbeError(f"image {sample} asked for, but the batch holds {x.shape[0]}")
    sample = sample % x.shape[0]
    if p is not None:
        _check_batch_norm(p, x.shape[0], train)
    target = None
    if layer is not None:
        name, index, k, op, shape = _resolve_layer(p, layer, call)
        if shape and len(shape) != 3:
            raise ProbeError(f"{name} gives a {tuple(shape)} output, not C×H×W maps: "
                             "choose a conv, norm, activation, pool or addition layer")
        target = (name, index, k, op, _module(model, name))
    blk = None
    if block is not None:
        bmod = _module(model, block)
        if not isinstance(bmod, ResidualBlock):
            raise ProbeError(f"'{block}' is not a residual block (blocks are named like layer1.0, layer3.5)")
        blk = (block, bmod)
    stat_calls = _calls_of(p) if (stats and p is not None) else []
    dev = _model_device(model)
    x = x.to(dev)
    captured: dict[str, Any] = {}
    counts: dict[str, int] = {}
    stat_values: dict[tuple[str, int], torch.Tensor] = {}
    with preserved(model, grads=False), hooks() as hs, torch.no_grad():
        model.train(train)
        if target is not None:
            tname, tindex, tk, top_op, tmod = target
            seen = {"n": 0, "outs": []}

            def fm_hook(mod, inputs, output, seen=seen):
                if tk < 0:
                    seen["outs"] = [output]  # keep the latest call only
                elif seen["n"] == tk:
                    captured["fm"] = _feature_maps_from(output, tname, tindex, tk, top_op, sample, top_k)
                seen["n"] += 1

            hs.add(tmod.register_forward_hook(fm_hook))
        if blk is not None:
            bname, bmod = blk

            def pre_hook(mod, args):
                captured["x"] = _view("x", args[0], sample, channels)

            def fx_hook(mod, inputs, output):
                captured["fx"] = _view("F(x)", output, sample, channels)

            def add_hook(mod, inputs, output):
                fx, sc = inputs
                captured["shortcut"] = _view("shortcut(x)", sc, sample, channels)
                captured["sum"] = _view("F(x)+x", output, sample, channels)

            def out_hook(mod, inputs, output):
                captured["out"] = _view("output", output, sample, channels)

            hs.add(bmod.register_forward_pre_hook(pre_hook))
            hs.add(_last_layer(bmod).register_forward_hook(fx_hook))
            if getattr(bmod, "add", None) is not None:
                hs.add(bmod.add.register_forward_hook(add_hook))
            hs.add(bmod.register_forward_hook(out_hook))
            captured["skip_on"] = bool(bmod.skip and bmod.add is not None)
        if stat_calls:
            for mname in sorted({lay.name for lay, _ in stat_calls}):
                def st_hook(mod, inputs, output, mname=mname):
                    k = counts.get(mname, 0)
                    counts[mname] = k + 1
                    if isinstance(output, torch.Tensor):
                        stat_values[(mname, k)] = _stats_vector(output)

                hs.add(_module(model, mname).register_forward_hook(st_hook))
        logits = model(x)
        if target is not None and target[2] < 0:
            if not seen["outs"]:
                raise ProbeError(f"{target[0]} did not run in this pass")
            captured["fm"] = _feature_maps_from(seen["outs"][0], target[0], None, seen["n"] - 1, None, sample, top_k)
        logits = logits.detach().float().to("cpu")
        stats_rows: list[LayerStats] = []
        if stat_calls:
            keys = [(lay.name, k) for lay, k in stat_calls]
            present = [key for key in keys if key in stat_values]
            values = torch.stack([stat_values[key] for key in present]).to("cpu").tolist() if present else []
            by_key = dict(zip(present, values))
            for (lay, k), key in zip(stat_calls, keys):
                v = by_key.get(key)
                stats_rows.append(LayerStats(
                    index=lay.index, name=lay.name, op=lay.op, part=lay.part, stage=lay.stage, block=lay.block,
                    shape=lay.out_shape, ran=v is not None, mean=None if v is None else v[0],
                    std=None if v is None else v[1], zeros=None if v is None else v[2],
                    finite=True if v is None else v[3] == 1.0))
    fm = None
    if target is not None:
        fm = captured.get("fm")
        if fm is None:
            raise ProbeError(f"{target[0]} did not run in this pass (is it a shortcut while the skips are off?)")
    anatomy = None
    if blk is not None:
        anatomy = _anatomy_from(blk[0], blk[1], captured, p)
    return logits, fm, anatomy, stats_rows


def _anatomy_from(name: str, bmod: nn.Module, c: dict[str, Any], p: Plan | None) -> BlockAnatomy:
    if "x" not in c or "fx" not in c or "out" not in c:
        raise ProbeError(f"block {name} did not run in this pass")
    kind = _shortcut_kind(bmod)
    skip_on = c.get("skip_on", False) and "sum" in c
    bp = _block_plans(p).get(name) if p is not None else None
    shortcut_view = c.get("shortcut") if (skip_on and kind in ("projection", "pad")) else None
    return BlockAnatomy(
        block=name, stage=bp.stage if bp else None, index=bp.index if bp else None, kind=type(bmod).__name__,
        shortcut=kind, skip=skip_on, x=c["x"], fx=c["fx"], shortcut_x=shortcut_view,
        sum=c.get("sum") if skip_on else None, output=c["out"],
        ratio=_safe_ratio(c["fx"].norm, c["x"].norm),
        ratio_to_shortcut=_safe_ratio(c["fx"].norm, shortcut_view.norm) if shortcut_view is not None else None)


def feature_maps(model: nn.Module, x: torch.Tensor, layer: str | int, plan: Plan | None = None,
                 call: int | None = None, top_k: int = 16, sample: int = 0, train: bool = False) -> FeatureMaps:
    """The top-k channels (by energy) of `layer`'s output for image `sample` of `x`, each min-max scaled.

    `layer` is a plan index or a module name (with `plan`: `call` picks which call of a reused module, the
    last by default; without a plan: the last call). Runs one forward pass on the model's device.
    """
    return _forward_capture(model, x, plan, layer=layer, call=call, sample=sample, top_k=top_k, train=train)[1]


def block_anatomy(model: nn.Module, x: torch.Tensor, block: str, plan: Plan | None = None, sample: int = 0,
                  channels: int = 4, train: bool = False) -> BlockAnatomy:
    """x, F(x), shortcut(x), F(x)+x and the output of residual block `block` ("layer2.0"), with their norms."""
    return _forward_capture(model, x, plan, block=block, sample=sample, channels=channels, train=train)[2]


def activation_stats(model: nn.Module, x: torch.Tensor, plan: Plan, train: bool = False) -> list[LayerStats]:
    """Mean, std and fraction of zeros of every layer's output, in plan order (one row per call)."""
    return _forward_capture(model, x, plan, stats=True, train=train)[3]


def _to_device(model: nn.Module, dev: torch.device) -> nn.Module:
    """The model on `dev`: itself when it is there already, else a deep copy (the caller's stays put)."""
    if _model_device(model) == dev:
        return model
    return copy.deepcopy(model).to(dev)


def forward_view(model: nn.Module, x: torch.Tensor, plan: Plan, layer: str | int | None = None,
                 call: int | None = None, block: str | None = None, stats: bool = True, top_k: int = 16,
                 sample: int = 0, channels: int = 4, train: bool = False, device: str | torch.device | None = None,
                 slot_timeout: float = 120.0) -> ForwardView:
    """Feature maps of `layer`, the anatomy of `block`, per-layer statistics and the logits, in ONE pass.

    `device`: None runs where the model is; "auto" | "cpu" | "cuda" picks (a deep copy is moved, the
    caller's model is not). `train=False` (eval) uses BatchNorm's running statistics, as for trained
    weights; train=True normalises by the batch, as at random initialisation during training.
    Raises MemoryGuardError (with the numbers) when the pass would not fit, BusyError when the device
    stays busy with another session's run for `slot_timeout` seconds, ProbeError for bad arguments.
    """
    dev = _model_device(model) if device is None else pick_device(device) if isinstance(device, str) else torch.device(device)
    _check_input(x, plan)
    est = estimate_pass(Trace(plan), int(x.shape[0]), backward=False)
    check_fits(est, dev, what=f"a forward pass of {plan.spec.name} on {x.shape[0]} image(s)")
    with device_slot(dev, timeout=slot_timeout):
        m = _to_device(model, dev)
        logits, fm, anatomy, rows = _forward_capture(m, x, plan, layer=layer, call=call, block=block, stats=stats,
                                                     sample=sample, top_k=top_k, channels=channels, train=train)
    return ForwardView(device=describe(dev), mode="train" if train else "eval", batch=int(x.shape[0]),
                       input_shape=tuple(plan.input_shape), logits=logits, feature_maps=fm, anatomy=anatomy,
                       stats=tuple(rows))


# --------------------------------------------------------------------------------------------
# gradient flow
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WeightGrad:
    """‖∂L/∂W‖ of one conv or linear layer's weight."""

    index: int  # position among the weighted layers, plan order (0-based)
    depth: int  # 1-based depth along the main path (stem conv 1 … fc); a shortcut conv: its block's first conv
    name: str  # module name, "layer2.0.conv1"
    op: str  # conv | linear
    part: str  # stem | main | shortcut | head
    stage: int | None
    block: int | None
    shape: tuple[int, ...]  # the weight's shape
    norm: float | None  # None: no gradient reached it (unused in this pass)
    status: str  # ok | vanished | exploded | unused


@dataclass(frozen=True)
class InputGrad:
    """‖∂L/∂x‖ at one residual block's input."""

    block: str  # "layer2.0"
    position: int  # 0-based block number through the depth
    depth: int  # depth of the block's first conv (aligns with WeightGrad.depth)
    stage: int
    index: int  # block index within the stage
    shape: tuple[int, int, int]  # (C, H, W) of the block's input
    norm: float | None
    status: str


@dataclass(frozen=True)
class GradVariant:
    """One forward + backward pass: with or without the skip connections."""

    label: str  # "with skips" | "without skips"
    skip: bool
    loss: float
    weights: tuple[WeightGrad, ...]
    inputs: tuple[InputGrad, ...]
    weights_fingerprint: str  # equal across variants: the same weights
    batch_fingerprint: str  # equal across variants: the same images and labels

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATUS_HELP}
        for g in (*self.weights, *self.inputs):
            out[g.status] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "skip": self.skip, "loss": _json_float(self.loss),
                "weights_fingerprint": self.weights_fingerprint, "batch_fingerprint": self.batch_fingerprint,
                "counts": self.counts(),
                "weights": [{"index": g.index, "depth": g.depth, "name": g.name, "op": g.op, "part": g.part,
                             "shape": list(g.shape), "norm": _json_float(g.norm), "status": g.status}
                            for g in self.weights],
                "inputs": [{"block": g.block, "position": g.position, "depth": g.depth, "shape": list(g.shape),
                            "norm": _json_float(g.norm), "status": g.status} for g in self.inputs]}


def _json_float(v: float | None) -> float | str | None:
    """JSON has no NaN/Inf: write them as strings."""
    if v is None or math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def variant_label(skip: bool) -> str:
    return "with skips" if skip else "without skips"


def _weighted_layers(p: Plan) -> list[tuple[Layer, int]]:
    """Every conv/linear layer in plan order with its depth (see WeightGrad.depth)."""
    out = []
    depth = 0
    first_of_block: dict[tuple[int, int], int] = {}
    for lay in p.layers:
        if lay.op not in ("conv", "linear"):
            continue
        if lay.part == "shortcut":
            out.append((lay, first_of_block.get((lay.stage, lay.block), depth)))
            continue
        depth += 1
        if lay.stage is not None:
            first_of_block.setdefault((lay.stage, lay.block), depth)
        out.append((lay, depth))
    return out


def _block_depths(p: Plan) -> dict[str, int]:
    depths: dict[str, int] = {}
    for lay, d in _weighted_layers(p):
        if lay.stage is not None and lay.part != "shortcut":
            depths.setdefault(f"layer{lay.stage + 1}.{lay.block}", d)
    return depths


def _norms(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    if not tensors:
        return []
    try:
        return list(torch._foreach_norm(tensors))  # one fused kernel per device and dtype
    except (AttributeError, RuntimeError):
        return [torch.linalg.vector_norm(t) for t in tensors]


def gradient_pass(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, plan: Plan, skip: bool | None = None,
                  train: bool = True, vanished_below: float = VANISHED_BELOW,
                  exploded_above: float = EXPLODED_ABOVE) -> GradVariant:
    """Forward + backward of cross-entropy(model(x), labels); the gradient norm of every conv/linear weight
    and of every block's input. `skip` None keeps the blocks' switches; True/False sets every block's.

    Runs on the model's device, in train mode unless train=False. Leaves no trace on the model (see the
    module's docstring). NaN/Inf gradients are classified, never raised.
    """
    _check_input(x, plan)
    _check_batch_norm(plan, int(x.shape[0]), train)
    dev = _model_device(model)
    x = x.to(dev)
    labels = labels.to(dev)
    if labels.shape != (x.shape[0],):
        raise ProbeError(f"expected {x.shape[0]} labels (one per image), got shape {tuple(labels.shape)}")
    n_classes = plan.spec.num_classes
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ProbeError(f"labels must lie in 0..{n_classes - 1} for a {n_classes}-class network")
    weighted = _weighted_layers(plan)
    blocks = plan.blocks
    depths = _block_depths(plan)
    block_mods = [_module(model, b.name) for b in blocks]
    weight_mods = [_module(model, lay.name) for lay, _ in weighted]
    if skip is True and any(getattr(m, "add", None) is None for m in block_mods):
        raise ProbeError("this model was built without shortcuts (a plain net): build it from the spec with "
                         "skip=True to compare with and without skips on the same weights")
    fingerprint = _fingerprint(model)
    batch_fp = _tensor_fingerprint(x, labels)
    in_norms: dict[int, torch.Tensor] = {}
    with preserved(model) as m, hooks() as hs:
        if skip is not None:
            set_skip(m, skip)
        m.train(train)
        for prm in m.parameters():
            prm.grad = None

        for i, bmod in enumerate(block_mods):
            def pre(mod, args, i=i):
                t = args[0]
                if isinstance(t, torch.Tensor) and t.requires_grad:
                    hs.add(t.register_hook(
                        lambda g, i=i: in_norms.__setitem__(i, torch.linalg.vector_norm(g, dtype=torch.float32))))

            hs.add(bmod.register_forward_pre_hook(pre))
        with torch.enable_grad():
            logits = m(x)
            loss = F.cross_entropy(logits.float(), labels)
            loss.backward()
        grads = [getattr(wm, "weight").grad for wm in weight_mods]
        present = [g for g in grads if g is not None]
        scalars = _norms(present) + [in_norms[i] for i in sorted(in_norms)] + [loss.detach()]
        values = torch.stack([s.float() for s in scalars]).to("cpu").tolist() if scalars else []
    w_values = iter(values[: len(present)])
    i_values = dict(zip(sorted(in_norms), values[len(present): len(present) + len(in_norms)]))
    loss_value = values[-1]
    weight_rows = []
    for j, ((lay, depth), g, wm) in enumerate(zip(weighted, grads, weight_mods)):
        norm = next(w_values) if g is not None else None
        weight_rows.append(WeightGrad(index=j, depth=depth, name=lay.name, op=lay.op, part=lay.part, stage=lay.stage,
                                      block=lay.block, shape=tuple(wm.weight.shape), norm=norm,
                                      status=classify(norm, vanished_below, exploded_above)))
    input_rows = []
    for i, b in enumerate(blocks):
        norm = i_values.get(i)
        input_rows.append(InputGrad(block=b.name, position=i, depth=depths.get(b.name, 0), stage=b.stage,
                                    index=b.index, shape=tuple(b.in_shape), norm=norm,
                                    status=classify(norm, vanished_below, exploded_above)))
    run_skip = bool(skip) if skip is not None else all(getattr(bm, "skip", False) and bm.add is not None
                                                       for bm in block_mods) if block_mods else False
    return GradVariant(label=variant_label(run_skip), skip=run_skip, loss=loss_value, weights=tuple(weight_rows),
                       inputs=tuple(input_rows), weights_fingerprint=fingerprint, batch_fingerprint=batch_fp)


def compare_skips(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, plan: Plan,
                  skips: Sequence[bool] = (True, False), train: bool = True, vanished_below: float = VANISHED_BELOW,
                  exploded_above: float = EXPLODED_ABOVE) -> list[GradVariant]:
    """`gradient_pass` once per skip setting, on the same model (same weights) and the same batch."""
    out = [gradient_pass(model, x, labels, plan, skip=s, train=train, vanished_below=vanished_below,
                         exploded_above=exploded_above) for s in skips]
    if len({v.weights_fingerprint for v in out}) > 1:  # cannot happen: nothing here changes a weight
        raise RuntimeError("the weights changed between the variants; the comparison is void")
    return out


@dataclass(frozen=True)
class GradientFlow:
    """Gradient norms through the depth for each variant, with what it was run on."""

    spec: ArchSpec  # the spec the model was built from (skip=True when comparing)
    seed: int  # weights
    data_seed: int  # images and labels
    batch: int
    input_shape: tuple[int, int, int]
    train: bool
    device: str  # describe(device)
    variants: tuple[GradVariant, ...]
    vanished_below: float = VANISHED_BELOW
    exploded_above: float = EXPLODED_ABOVE

    @property
    def same_weights(self) -> bool:
        return len({v.weights_fingerprint for v in self.variants}) == 1

    @property
    def same_batch(self) -> bool:
        return len({v.batch_fingerprint for v in self.variants}) == 1

    def variant(self, skip: bool) -> GradVariant:
        for v in self.variants:
            if v.skip == skip:
                return v
        raise KeyError(f"no variant {variant_label(skip)!r} in this run")

    def _ratio(self, values: list[float | None]) -> float | None:
        return _safe_ratio(values[0], values[1]) if len(values) == 2 else None

    def weight_rows(self) -> list[dict[str, Any]]:
        """One row per conv/linear layer: depth, name, each variant's norm and status, and their ratio."""
        rows = []
        for parts in zip(*(v.weights for v in self.variants)):
            g0 = parts[0]
            norms = [g.norm for g in parts]
            rows.append({"index": g0.index, "depth": g0.depth, "layer": g0.name, "op": g0.op, "part": g0.part,
                         "shape": list(g0.shape), "norms": norms, "statuses": [g.status for g in parts],
                         "ratio": self._ratio(norms)})
        return rows

    def input_rows(self) -> list[dict[str, Any]]:
        """One row per block: its input's gradient norm for each variant, and their ratio."""
        rows = []
        for parts in zip(*(v.inputs for v in self.variants)):
            g0 = parts[0]
            norms = [g.norm for g in parts]
            rows.append({"block": g0.block, "position": g0.position, "depth": g0.depth, "stage": g0.stage + 1,
                         "index": g0.index, "shape": list(g0.shape), "norms": norms,
                         "statuses": [g.status for g in parts], "ratio": self._ratio(norms)})
        return rows

    def chart_rows(self) -> list[dict[str, Any]]:
        """Long-format rows for one log-scale chart: every variant × (weight gradients, block input gradients).

        `plot_norm` is the norm where it is finite and positive; a vanished 0 sits at a floor below every
        real value and an exploded NaN/Inf at a ceiling above them, so the chart can show them (marked
        by `status`) instead of dropping them.
        """
        finite = [g.norm for v in self.variants for g in (*v.weights, *v.inputs)
                  if g.norm is not None and math.isfinite(g.norm) and g.norm > 0]
        floor = min([self.vanished_below, *finite]) / 10.0
        ceiling = max([self.exploded_above, *finite]) * 10.0
        rows = []
        for v in self.variants:
            for quantity, items in (("weight gradient ‖∂L/∂W‖", v.weights), ("block input gradient ‖∂L/∂x‖", v.inputs)):
                for g in items:
                    if g.norm is None:
                        continue
                    if not math.isfinite(g.norm):
                        plot = ceiling
                    elif g.norm <= 0:
                        plot = floor
                    else:
                        plot = g.norm
                    rows.append({"variant": v.label, "quantity": quantity, "depth": g.depth,
                                 "name": getattr(g, "name", None) or getattr(g, "block", ""),
                                 "norm": _json_float(g.norm), "plot_norm": plot, "status": g.status})
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec.name, "seed": self.seed, "data_seed": self.data_seed, "batch": self.batch,
                "input_shape": list(self.input_shape), "mode": "train" if self.train else "eval",
                "device": self.device, "norm": self.spec.norm, "init": self.spec.init,
                "shortcut": self.spec.shortcut, "zero_init_residual": self.spec.zero_init_residual,
                "same_weights": self.same_weights, "same_batch": self.same_batch,
                "thresholds": {"vanished_below": self.vanished_below, "exploded_above": self.exploded_above},
                "variants": [v.to_dict() for v in self.variants],
                "weight_rows": [{**r, "norms": [_json_float(n) for n in r["norms"]], "ratio": _json_float(r["ratio"])}
                                for r in self.weight_rows()],
                "input_rows": [{**r, "norms": [_json_float(n) for n in r["norms"]], "ratio": _json_float(r["ratio"])}
                               for r in self.input_rows()]}


def seeded_batch(input_shape: Sequence[int], batch: int, num_classes: int, seed: int = 0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded noise images (batch, C, H, W) and labels (batch,), from generators of their own."""
    from .images import noise_batch
    x = noise_batch(input_shape, batch, seed)
    g = torch.Generator().manual_seed(int(seed) + 1)
    labels = torch.randint(0, num_classes, (batch,), generator=g)
    return x, labels


def build_seeded(spec: ArchSpec | Plan, seed: int) -> nn.Module:
    """build_model(spec, seed): seeded builds take turns inside build_model, so sessions never mix seeds."""
    return build_model(spec, seed=seed)


def gradient_flow(spec: ArchSpec, seed: int = 0, batch: int = 8, compare_skip: bool = True,
                  x: torch.Tensor | None = None, labels: torch.Tensor | None = None, data_seed: int | None = None,
                  device: str | torch.device = "auto", train: bool = True, model: nn.Module | None = None,
                  vanished_below: float = VANISHED_BELOW, exploded_above: float = EXPLODED_ABOVE,
                  slot_timeout: float = 120.0) -> GradientFlow:
    """Forward + backward with the skips on and off, on ONE model from (spec, seed) and one batch.

    compare_skip=True builds the residual form of the spec (skip=True; a plain preset gets its shortcuts
    back) and runs it with every block's skip on, then off: the same main-path weights and the same
    images and labels (seeded noise from `data_seed`, default `seed`, unless `x`/`labels` are given).
    compare_skip=False runs the spec as it is (a plain net without skips). `model` replaces the seeded
    build by a deep copy of your weights (e.g. a loaded checkpoint). In train mode by default, as in
    training. Raises BuildError for a spec whose shapes do not meet, MemoryGuardError when the pass does
    not fit the device's free memory, BusyError when the device stays busy, ProbeError for bad input.
    """
    skips = (True, False) if compare_skip else (bool(spec.skip),)
    base = spec.replace(skip=True) if True in skips else spec
    p = make_plan(base)
    if p.errors:
        from .build import BuildError
        raise BuildError(p)
    if batch < 1:
        raise ProbeError(f"the batch must hold at least 1 image, got {batch}")
    if x is not None:
        batch = int(x.shape[0])
    _check_batch_norm(p, batch, train)
    dev = pick_device(device) if isinstance(device, str) else torch.device(device)
    est = estimate_pass(Trace(p), batch, backward=True)
    check_fits(est, dev, what=f"the gradient pass of {spec.name} on {batch} image(s)")
    ds = seed if data_seed is None else data_seed
    if x is None or labels is None:
        sx, sl = seeded_batch(p.input_shape, batch, base.num_classes, ds)
        x = sx if x is None else x
        labels = sl if labels is None else labels
    with device_slot(dev, timeout=slot_timeout):
        if model is None:
            m = build_seeded(p, seed).to(dev)
        else:
            m = copy.deepcopy(model).to(dev)
        variants = compare_skips(m, x, labels, p, skips, train, vanished_below, exploded_above)
    return GradientFlow(spec=base, seed=seed, data_seed=ds, batch=batch, input_shape=tuple(p.input_shape),
                        train=train, device=describe(dev), variants=tuple(variants), vanished_below=vanished_below,
                        exploded_above=exploded_above)


# --------------------------------------------------------------------------------------------
# the instrumented pass (what the benchmark times)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InstrumentedPass:
    """All block outputs reduced and all gradient norms, from one forward + backward."""

    loss: float
    block_energy: dict[str, np.ndarray]  # per block: (C,) mean square of its output per channel, over the batch
    block_maps: dict[str, np.ndarray]  # per block: (H, W) channel mean of image 0's output
    weight_grads: dict[str, float]  # every conv/linear weight: ‖∂L/∂W‖
    input_grads: dict[str, float]  # every block: ‖∂L/∂x‖ at its input


def instrumented_pass(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, train: bool = True,
                      autocast_dtype: torch.dtype | None = None) -> InstrumentedPass:
    """One forward + backward with every block's output reduced on the device (per-channel energy and a
    channel-mean map) and the gradient norm of every conv/linear weight and every block input; all of it
    reaches the CPU in a single copy. `autocast_dtype` (e.g. torch.bfloat16) runs the forward under
    autocast on the model's device. Leaves no trace on the model."""
    dev = _model_device(model)
    x = x.to(dev)
    labels = labels.to(dev)
    blocks = _blocks_of(model)
    weighted = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    reduced: dict[str, list[torch.Tensor]] = {}
    map_shapes: dict[str, tuple[int, int]] = {}
    in_norms: dict[str, torch.Tensor] = {}
    with preserved(model) as m, hooks() as hs:
        m.train(train)
        for prm in m.parameters():
            prm.grad = None
        for name, bmod in blocks:
            def fwd(mod, args, out, name=name):
                o = out.detach()  # (B, C, H, W)
                b, _, h, w = o.shape
                energy = torch.linalg.vector_norm(o, dim=(0, 2, 3), dtype=torch.float32).square_() / (b * h * w)
                reduced[name] = [energy, o[0].mean(0, dtype=torch.float32).flatten()]
                map_shapes[name] = (h, w)
                t = args[0]
                if t.requires_grad:
                    hs.add(t.register_hook(lambda g, name=name: in_norms.__setitem__(
                        name, torch.linalg.vector_norm(g, dtype=torch.float32))))

            hs.add(bmod.register_forward_hook(fwd))
        with torch.enable_grad():
            if autocast_dtype is not None:
                with torch.autocast(device_type=dev.type, dtype=autocast_dtype):
                    logits = m(x)
            else:
                logits = m(x)
            loss = F.cross_entropy(logits.float(), labels)
            loss.backward()
        grads = [(n, wm.weight.grad) for n, wm in weighted if wm.weight.grad is not None]
        w_norms = _norms([g for _, g in grads])
        in_names = [n for n, _ in blocks if n in in_norms]
        pieces = [loss.detach().float().view(1)]
        if w_norms:
            pieces.append(torch.stack(w_norms).float())
        if in_names:
            pieces.append(torch.stack([in_norms[n] for n in in_names]))
        sizes = []
        for n, _ in blocks:
            if n in reduced:
                for t in reduced[n]:
                    pieces.append(t)
                    sizes.append(t.numel())
        flat = torch.cat(pieces).to("cpu").numpy()  # the one device → CPU copy
    pos = 1
    weight_grads = dict(zip([n for n, _ in grads], flat[pos: pos + len(w_norms)].tolist()))
    pos += len(w_norms)
    input_grads = dict(zip(in_names, flat[pos: pos + len(in_names)].tolist()))
    pos += len(in_names)
    energy, maps = {}, {}
    for n, _ in blocks:
        if n not in reduced:
            continue
        c = reduced[n][0].numel()
        energy[n] = flat[pos: pos + c].copy()
        pos += c
        hw = reduced[n][1].numel()
        maps[n] = flat[pos: pos + hw].reshape(map_shapes[n]).copy()
        pos += hw
    return InstrumentedPass(loss=float(flat[0]), block_energy=energy, block_maps=maps, weight_grads=weight_grads,
                            input_grads=input_grads)
