"""Forward views: feature maps, residual-block anatomy, activation statistics and logits of one pass."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from resnet_core.device import check_fits, describe, device_slot, estimate_pass, pick_device
from resnet_core.lab.hooks import (
    FEATURE_SCALING,
    ProbeError,
    _block_plans,
    _calls_of,
    _check_batch_norm,
    _check_input,
    _model_device,
    _module,
    _safe_ratio,
    hooks,
    preserved,
)
from resnet_core.structure.build import ResidualBlock
from resnet_core.structure.plan import Plan
from resnet_core.structure.trace import Trace


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
    t = Trace(plan)
    est = estimate_pass(t.param_bytes, t.activation_bytes, int(x.shape[0]), backward=False)
    check_fits(est, dev, what=f"a forward pass of {plan.spec.name} on {x.shape[0]} image(s)")
    with device_slot(dev, timeout=slot_timeout):
        m = _to_device(model, dev)
        logits, fm, anatomy, rows = _forward_capture(m, x, plan, layer=layer, call=call, block=block, stats=stats,
                                                     sample=sample, top_k=top_k, channels=channels, train=train)
    return ForwardView(device=describe(dev), mode="train" if train else "eval", batch=int(x.shape[0]),
                       input_shape=tuple(plan.input_shape), logits=logits, feature_maps=fm, anatomy=anatomy,
                       stats=tuple(rows))
