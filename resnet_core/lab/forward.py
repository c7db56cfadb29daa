"""Forward views: feature maps, residual-block anatomy, activation statistics and logits of one pass.

`forward_record` runs the network once on (weights, input, BN mode) and keeps, reduced and on the CPU,
what every forward view needs: each layer's channel energies and top channels, each block's x, F(x),
shortcut and sum, each layer's statistics, and the logits. Changing the layer, the block or top-k is
then a lookup (`ForwardRecord.feature_maps`, `.anatomy`, `.block_ratios`), never a second pass.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from resnet_core.device import (
    allocation_guard,
    check_fits,
    check_work,
    describe,
    device_slot,
    estimate_pass,
    live_threads,
    pick_device,
    reserve,
)
from resnet_core.formatting import did_you_mean
from resnet_core.i18n import _
from resnet_core.lab.probes import (
    ProbeError,
    block_plans,
    check_batch_norm,
    check_input,
    hooks,
    model_device,
    preserved,
    safe_ratio,
    submodule,
)
from resnet_core.lab.views import (
    MAX_TOP_K,
    BlockAnatomy,
    FeatureMaps,
    ForwardRecord,
    ForwardView,
    LayerMaps,
    LayerStats,
    TensorView,
    kept_channels,
)
from resnet_core.structure.build import ResidualBlock
from resnet_core.structure.records import Plan
from resnet_core.structure.trace import Trace


def _reduce_map(a: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    """One image's (C, H, W) activation → energies, the top-k channels and their min-max scaling to uint8,
    on device (a handful of fused ops: this runs at every layer of the pass)."""
    a = a.detach().float()
    c, h, w = a.shape
    energy = torch.linalg.vector_norm(a.reshape(c, h * w), dim=1).square_().div_(h * w)  # (C,) mean square
    k = min(k, c)
    top = torch.topk(torch.nan_to_num(energy, nan=math.inf), k).indices  # NaN channels first: they matter
    sel = a.reshape(c, h * w).index_select(0, top)  # (k, H·W), a copy: scaled in place below
    lo, hi = sel.amin(1), sel.amax(1)  # torch.aminmax(sel, dim=1) is ~14× slower on the CPU (torch 2.13)
    span = hi - lo
    scale = torch.where(span > 0, 255.0 / span.clamp_min(torch.finfo(torch.float32).tiny), torch.zeros_like(span))
    sel.sub_(lo[:, None]).mul_(scale[:, None])
    if not bool(torch.isfinite(energy).all()):  # NaN or Inf somewhere: make every pixel a grey level
        sel.nan_to_num_(nan=0.0, posinf=255.0, neginf=0.0)
    maps = sel.add_(0.5).clamp_(0.0, 255.0).to(torch.uint8).reshape(k, h, w)
    return {"energy": energy, "top": top, "lo": lo, "hi": hi, "maps": maps}


def _view(name: str, t: torch.Tensor, sample: int) -> TensorView:
    t = t.detach().float()
    img = t[sample]  # (C, H, W)
    lo, hi = torch.aminmax(img)
    scalars = torch.stack([torch.linalg.vector_norm(t), torch.linalg.vector_norm(img), lo, hi]).to("cpu")
    norm, sample_norm, lo, hi = scalars.tolist()
    return TensorView(name=name, shape=tuple(img.shape), norm=norm, sample_norm=sample_norm, minimum=lo, maximum=hi,
                      mean_map=img.mean(0).to("cpu").numpy())


def _stats_vector(t: torch.Tensor) -> torch.Tensor:
    """mean, std, fraction of exact zeros, and 1.0 when no value is NaN or ±Inf (read off the mean and the
    std: any NaN or Inf makes them non-finite; so would values whose squares overflow float32, ~1e19).

    From the sum and the sum of squares: two fast reductions instead of torch.std_mean's slower one, run
    at every layer of the pass (float32 sums; the variance is taken in float64)."""
    t = t.detach().float()
    n = t.numel()
    mean = t.sum().double() / n
    msq = torch.linalg.vector_norm(t).double().square() / n
    std = (msq - mean * mean).clamp_min(0.0).sqrt()
    zeros = 1.0 - t.sign().abs_().nan_to_num_(nan=1.0).sum().double() / n  # far faster than (t == 0).sum()
    finite = torch.isfinite(mean) & torch.isfinite(std)
    return torch.stack([mean, std, zeros, finite.double()])


def _resolve_layer(p: Plan, layer: str | int, call: int | None) -> int:
    """The plan index of a layer given by plan index, or by module name (and `call`, the last by default)."""
    if isinstance(layer, int) and not isinstance(layer, bool):
        if not 0 <= layer < len(p.layers):
            raise ProbeError(f"layer index {layer} is out of range: the plan has {len(p.layers)} layers")
        lay = p.layers[layer]
    else:
        if not isinstance(layer, str) or not layer:
            raise ProbeError(f"a layer is a module name or a plan index, got {layer!r}")
        matches = [lay for lay in p.layers if lay.name == layer]
        if not matches:
            close = did_you_mean(layer, sorted({lay.name for lay in p.layers}), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ProbeError(f"no layer named '{layer}' in this network{hint}")
        if call is None:
            lay = matches[-1]
        else:
            if not -len(matches) <= call < len(matches):
                raise ProbeError(f"{layer} runs {len(matches)} time(s) per pass; call {call} does not exist")
            lay = matches[call]
    if lay.out_shape is not None and len(lay.out_shape) != 3:
        raise ProbeError(f"{lay.label} gives a {tuple(lay.out_shape)} output, not C×H×W maps: "
                         "choose a conv, norm, activation, pool or addition layer")
    return lay.index


def _shortcut_kind(block: nn.Module) -> str:
    if getattr(block, "add", None) is None:
        return "none"
    ds = getattr(block, "downsample", None)
    if ds is None:
        return "identity"
    return "pad" if not any(True for _p in ds.parameters()) else "projection"


def _last_layer(block: nn.Module) -> nn.Module:
    last_layer = getattr(block, "last_layer", None)  # the block classes of structure/build.py say it
    if last_layer is not None:
        return last_layer()
    for name in ("bn3", "conv3", "bn2", "conv2"):
        m = getattr(block, name, None)
        if m is not None and not isinstance(m, nn.Identity):
            return m
    raise ProbeError(f"cannot find the last layer of the residual branch of {type(block).__name__}")


def _record(model: nn.Module, x: torch.Tensor, p: Plan, *, layers: set[int] | None = None,
            blocks: set[str] | None = None, stats: bool = True, sample: int = 0, max_k: int | None = None,
            train: bool = False, device_text: str = "") -> ForwardRecord:
    """ONE forward pass (no gradients) with hooks that reduce, on the model's device, what the views need.

    `layers` None: every spatial layer; `blocks` None: every residual block. Only reduced tensors cross to
    the CPU, at the end of the pass.
    """
    check_input(x, p)
    if not -x.shape[0] <= sample < x.shape[0]:
        raise ProbeError(f"image {sample} asked for, but the batch holds {x.shape[0]}")
    sample = sample % x.shape[0]
    check_batch_norm(p, int(x.shape[0]), train)
    k_keep = kept_channels(p) if max_k is None else max(1, min(int(max_k), MAX_TOP_K))
    spatial = {lay.index for lay in p.layers if lay.out_shape is not None and len(lay.out_shape) == 3}
    want = spatial if layers is None else set(layers)
    by_call = {(lay.name, lay.call): lay for lay in p.layers}
    block_mods = []
    for b in p.blocks:
        if blocks is None or b.name in blocks:
            bmod = submodule(model, b.name)
            if not isinstance(bmod, ResidualBlock):
                raise ProbeError(f"'{b.name}' is not a residual block (blocks are named like layer1.0, layer3.5)")
            block_mods.append((b.name, bmod))
    hooked = sorted({lay.name for lay in p.layers if stats or lay.index in want})
    dev = model_device(model)
    x = x.to(dev)
    maps: dict[int, dict[str, torch.Tensor]] = {}
    stat_values: dict[int, torch.Tensor] = {}
    views: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    with preserved(model, grads=False), hooks() as hs, torch.no_grad():
        model.train(train)
        for mname in hooked:
            def layer_hook(mod, inputs, output, mname=mname):
                k = counts.get(mname, 0)
                counts[mname] = k + 1
                lay = by_call.get((mname, k))
                if lay is None or not isinstance(output, torch.Tensor):
                    return
                if lay.index in want and output.dim() == 4:
                    maps[lay.index] = _reduce_map(output[sample], k_keep)
                if stats:
                    stat_values[lay.index] = _stats_vector(output)

            hs.add(submodule(model, mname).register_forward_hook(layer_hook))
        for bname, bmod in block_mods:
            c = views.setdefault(bname, {"skip_on": bool(bmod.skip and bmod.add is not None)})

            def pre_hook(mod, args, c=c):
                c["x"] = _view("x", args[0], sample)

            def fx_hook(mod, inputs, output, c=c):
                c["fx"] = _view("F(x)", output, sample)

            def add_hook(mod, inputs, output, c=c):
                c["shortcut"] = _view("shortcut(x)", inputs[1], sample)
                c["sum"] = _view("F(x)+x", output, sample)

            def out_hook(mod, inputs, output, c=c):
                c["out"] = _view("output", output, sample)

            hs.add(bmod.register_forward_pre_hook(pre_hook))
            hs.add(_last_layer(bmod).register_forward_hook(fx_hook))
            add = getattr(bmod, "add", None)
            if add is not None:
                hs.add(add.register_forward_hook(add_hook))
            hs.add(bmod.register_forward_hook(out_hook))
        logits = model(x).detach().float().to("cpu")
    layer_maps = {}
    for i, r in maps.items():
        lay = p.layers[i]
        cpu = {n: t.to("cpu") for n, t in r.items()}
        assert lay.out_shape is not None, "a layer whose maps were recorded ran, so its plan row has a shape"
        layer_maps[i] = LayerMaps(index=i, name=lay.name, label=lay.label, call=lay.call, op=lay.op,
                                  shape=tuple(lay.out_shape), energy=cpu["energy"].numpy(),
                                  channels=cpu["top"].numpy(), minimum=cpu["lo"].numpy(), maximum=cpu["hi"].numpy(),
                                  maps=cpu["maps"].numpy())
    rows: list[LayerStats] = []
    if stats:
        order = sorted(stat_values)
        values = torch.stack([stat_values[i] for i in order]).to("cpu").tolist() if order else []
        by_index = dict(zip(order, values, strict=True))
        for lay in p.layers:
            v = by_index.get(lay.index)
            rows.append(LayerStats(
                index=lay.index, name=lay.name, op=lay.op, part=lay.part, stage=lay.stage, block=lay.block,
                shape=lay.out_shape, ran=v is not None, mean=None if v is None else v[0],
                std=None if v is None else v[1], zeros=None if v is None else v[2],
                finite=True if v is None else v[3] == 1.0, label=lay.label))
    anatomies = {name: _anatomy_from(name, bmod, views[name], p) for name, bmod in block_mods}
    return ForwardRecord(device=device_text or describe(dev), mode="train" if train else "eval",
                         batch=int(x.shape[0]), sample=sample, input_shape=tuple(p.input_shape), logits=logits,
                         layers=layer_maps, blocks=anatomies, stats=tuple(rows), max_k=k_keep,
                         labels={lay.index: lay.label for lay in p.layers})


def _anatomy_from(name: str, bmod: nn.Module, c: dict[str, Any], p: Plan) -> BlockAnatomy:
    if "x" not in c or "fx" not in c or "out" not in c:
        raise ProbeError(f"block {name} did not run in this pass")
    kind = _shortcut_kind(bmod)
    skip_on = c.get("skip_on", False) and "sum" in c
    bp = block_plans(p).get(name)
    shortcut_view = c.get("shortcut") if (skip_on and kind in ("projection", "pad")) else None
    return BlockAnatomy(
        block=name, stage=bp.stage if bp else None, index=bp.index if bp else None, kind=type(bmod).__name__,
        shortcut=kind, skip=skip_on, x=c["x"], fx=c["fx"], shortcut_x=shortcut_view,
        sum=c.get("sum") if skip_on else None, output=c["out"],
        ratio=safe_ratio(c["fx"].norm, c["x"].norm),
        ratio_to_shortcut=safe_ratio(c["fx"].norm, shortcut_view.norm) if shortcut_view is not None else None)


def feature_maps(model: nn.Module, x: torch.Tensor, layer: str | int, plan: Plan, call: int | None = None,
                 top_k: int = 16, sample: int = 0, train: bool = False) -> FeatureMaps:
    """The top-k channels (by energy) of `layer`'s output for image `sample` of `x`, each min-max scaled.

    `layer` is a plan index or a module name (`call` picks which use of a reused module, the last by
    default). Runs one forward pass on the model's device.
    """
    i = _resolve_layer(plan, layer, call)
    rec = _record(model, x, plan, layers={i}, blocks=set(), stats=False, sample=sample, max_k=top_k, train=train)
    return rec.feature_maps(i, top_k)


def block_anatomy(model: nn.Module, x: torch.Tensor, block: str, plan: Plan, sample: int = 0,
                  train: bool = False) -> BlockAnatomy:
    """x, F(x), shortcut(x), F(x)+x and the output of residual block `block` ("layer2.0"), with their norms."""
    if block not in {b.name for b in plan.blocks}:
        submodule(model, block)  # an unknown module: say so
        raise ProbeError(f"'{block}' is not a residual block (blocks are named like layer1.0, layer3.5)")
    return _record(model, x, plan, layers=set(), blocks={block}, stats=False, sample=sample,
                   train=train).anatomy(block)


def activation_stats(model: nn.Module, x: torch.Tensor, plan: Plan, train: bool = False) -> list[LayerStats]:
    """Mean, std and fraction of zeros of every layer's output, in plan order (one row per call)."""
    return list(_record(model, x, plan, layers=set(), blocks=set(), stats=True, train=train).stats)


def _to_device(model: nn.Module, dev: torch.device) -> nn.Module:
    """The model on `dev`: itself when it is there already, else a deep copy (the caller's stays put)."""
    if model_device(model) == dev:
        return model
    return copy.deepcopy(model).to(dev)


def _pick(model: nn.Module, device: str | torch.device | None) -> torch.device:
    if device is None:
        return model_device(model)
    return pick_device(device) if isinstance(device, str) else torch.device(device)


def forward_estimate(plan: Plan, batch: int):
    """(memory as a device.PassEstimate, multiply-adds) of one forward pass of `plan` on `batch` images."""
    t = Trace(plan)
    return estimate_pass(t.param_bytes, t.activation_bytes, batch, backward=False), t.mult_adds * max(1, batch)


def forward_record(model: nn.Module, x: torch.Tensor, plan: Plan, train: bool = False, sample: int = 0,
                   device: str | torch.device | None = None, slot_timeout: float = 120.0,
                   should_stop: Callable[[], bool] | None = None, threads: int | None = None) -> ForwardRecord:
    """One forward pass that keeps every forward view: the maps of every layer, the anatomy of every block,
    per-layer statistics and the logits (see ForwardRecord for the memory bound).

    `device`: None runs where the model is; "auto" | "cpu" | "cuda" picks (a deep copy is moved, the
    caller's model is not). `train=False` (eval) uses BatchNorm's running statistics; train=True
    normalises by this batch. Admission is atomic across sessions (`device.reserve`); the pass holds the
    device's slot, on `threads` CPU threads (default device.LIVE_CPU_THREADS). Raises MemoryGuardError (with
    the numbers) when the pass would not fit, WorkLimitError when its work is above the limit for one run,
    OutOfMemoryError when an allocation fails all the same, BusyError when
    the device stays busy for `slot_timeout` seconds or `should_stop()` turns true while waiting,
    ProbeError for bad arguments.
    """
    dev = _pick(model, device)
    check_input(x, plan)
    est, work = forward_estimate(plan, int(x.shape[0]))
    what = _("a forward pass of {name} on {n} image(s)", name=plan.spec.name, n=x.shape[0])
    check_work(work, dev, what)
    check_fits(est, dev, what=what)  # refused at once if no turn could run it; booked only once its turn comes
    with device_slot(dev, timeout=slot_timeout, should_stop=should_stop), reserve(est, dev, what=what), \
            allocation_guard(what, dev), live_threads(dev, threads):
        m = _to_device(model, dev)
        return _record(m, x, plan, sample=sample, train=train, device_text=describe(dev))


def forward_view(model: nn.Module, x: torch.Tensor, plan: Plan, layer: str | int | None = None,
                 call: int | None = None, block: str | None = None, stats: bool = True, top_k: int = 16,
                 sample: int = 0, train: bool = False, device: str | torch.device | None = None,
                 slot_timeout: float = 120.0) -> ForwardView:
    """Feature maps of `layer`, the anatomy of `block`, per-layer statistics and the logits, in ONE pass
    (`forward_record` keeps every view; this picks one of each)."""
    index = None if layer is None else _resolve_layer(plan, layer, call)
    if block is not None and block not in {b.name for b in plan.blocks}:
        submodule(model, block)
        raise ProbeError(f"'{block}' is not a residual block (blocks are named like layer1.0, layer3.5)")
    rec = forward_record(model, x, plan, train=train, sample=sample, device=device, slot_timeout=slot_timeout)
    view = rec.view(index, block, top_k)
    return view if stats else ForwardView(**{**view.__dict__, "stats": ()})
