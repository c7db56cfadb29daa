"""The records of the forward views: what one forward pass keeps (ForwardRecord) and the views read
from it (feature maps, a block's anatomy, per-layer statistics). Measuring is in lab/forward.py."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from resnet_core.i18n import N_, _
from resnet_core.lab.probes import ProbeError
from resnet_core.structure.plan import Plan
from resnet_core.structure.records import Shape

FEATURE_SCALING = N_("Each channel is scaled on its own: its minimum shows as black and its maximum as white "
                   "(the raw range of every channel is listed). Brightness compares positions within one "
                   "channel, not channels with each other; compare channels by their energy (the mean "
                   "square activation). A constant channel (e.g. all zero after a ReLU) shows black.")  # shown as _()


@dataclass(frozen=True)
class FeatureMaps:
    """The top-k channels of one layer's output for one image, each min-max scaled on its own."""

    layer: str  # module name, "layer2.0.conv1"
    index: int | None  # the layer's index in the plan (None when asked by module name alone)
    call: int  # which call of the module (a block's `relu` runs twice)
    op: str | None  # conv | norm | act | add | ...
    sample: int  # which image of the batch
    shape: Shape  # (C, H, W) of the layer's output
    channels: tuple[int, ...]  # channel indices shown, highest energy first
    energy: tuple[float, ...]  # their energy: mean square activation over H×W
    minimum: tuple[float, ...]  # each shown channel's raw minimum (maps to black)
    maximum: tuple[float, ...]  # each shown channel's raw maximum (maps to white)
    flat: tuple[bool, ...]  # channels constant over the map (shown all black)
    maps: np.ndarray = field(repr=False)  # (k, H, W) float32 in [0, 1]
    all_energy: np.ndarray = field(repr=False)  # (C,) energy of every channel
    scaling: str = FEATURE_SCALING
    label: str = ""  # "layer3.1.relu (2)": the layer's name in lists (the module name when used once)

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
                                                          self.flat, strict=True))]

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "index": self.index, "call": self.call, "op": self.op, "sample": self.sample,
                "shape": list(self.shape), "channels": self.rows(), "scaling": self.scaling}


@dataclass(frozen=True)
class TensorView:
    """One tensor of a residual block, reduced for display."""

    name: str  # x | F(x) | shortcut(x) | F(x)+x | output
    shape: Shape  # (C, H, W)
    norm: float  # L2 norm over the whole batch
    sample_norm: float  # L2 norm of the shown image
    minimum: float  # over the shown image
    maximum: float
    mean_map: np.ndarray = field(repr=False)  # (H, W): the channel mean, shown image

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "norm": self.norm, "sample_norm": self.sample_norm,
                "min": self.minimum, "max": self.maximum}


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
    label: str = ""  # "layer3.1.relu (2)" when the module is used more than once

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
    input_shape: Shape
    logits: torch.Tensor = field(repr=False)  # (batch, num_classes) float32 on the CPU
    feature_maps: FeatureMaps | None = None
    anatomy: BlockAnatomy | None = None
    stats: tuple[LayerStats, ...] = ()


MAX_TOP_K = 64  # the most channels a feature-map view shows (the page's top-k bound)
RECORD_BUDGET = 48 << 20  # bytes of reduced maps one ForwardRecord may keep on the CPU


@dataclass(frozen=True)
class LayerMaps:
    """One layer call's output for the shown image, reduced once: every channel's energy and the top
    `len(channels)` channels min-max scaled to uint8 (what the page draws), with their raw ranges."""

    index: int  # plan index
    name: str  # module name
    label: str  # "layer3.1.relu (2)": the name to list it under
    call: int  # which use of the module
    op: str
    shape: Shape  # (C, H, W)
    energy: np.ndarray = field(repr=False)  # (C,) mean square activation of every channel
    channels: np.ndarray = field(repr=False)  # (K,) channel indices, highest energy first
    minimum: np.ndarray = field(repr=False)  # (K,) raw minimum of each kept channel
    maximum: np.ndarray = field(repr=False)  # (K,)
    maps: np.ndarray = field(repr=False)  # (K, H, W) uint8: 0 = the channel's minimum, 255 = its maximum

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.energy, self.channels, self.minimum, self.maximum, self.maps))

    def view(self, top_k: int, sample: int = 0) -> FeatureMaps:
        """The top-k channels (k ≤ the channels kept), from the kept reduction; no pass runs."""
        k = max(1, min(int(top_k), len(self.channels)))
        lo, hi = self.minimum[:k].tolist(), self.maximum[:k].tolist()
        top = self.channels[:k].tolist()
        return FeatureMaps(layer=self.name, index=self.index, call=self.call, op=self.op, sample=sample,
                           shape=self.shape, channels=tuple(top), energy=tuple(float(self.energy[c]) for c in top),
                           minimum=tuple(lo), maximum=tuple(hi), flat=tuple(not (b > a) for a, b in zip(lo, hi, strict=True)),
                           maps=self.maps[:k].astype(np.float32) / 255.0, all_energy=self.energy, label=self.label)


@dataclass(frozen=True)
class ForwardRecord:
    """Everything every forward view needs, from ONE pass on (weights, input, BN mode), kept on the CPU.

    Changing the layer, the block or top-k reads from here; nothing runs again. Memory is bounded: the
    maps of all layers together take at most RECORD_BUDGET bytes (`max_k`, the channels kept per layer,
    is chosen from the plan so that they fit), plus one mean map per block tensor and a row per layer.
    """

    device: str
    mode: str  # "eval" (running statistics) | "train" (statistics of this batch)
    batch: int
    sample: int  # the image of the batch the maps show
    input_shape: Shape
    logits: torch.Tensor = field(repr=False)  # (batch, num_classes) float32 on the CPU
    layers: dict[int, LayerMaps] = field(repr=False, default_factory=dict)  # by plan index; layers that ran
    blocks: dict[str, BlockAnatomy] = field(repr=False, default_factory=dict)  # by block name, plan order
    stats: tuple[LayerStats, ...] = ()
    max_k: int = MAX_TOP_K
    labels: dict[int, str] = field(repr=False, default_factory=dict)  # plan index → layer label

    @property
    def nbytes(self) -> int:
        """Bytes the record holds in arrays (maps, energies, block mean maps, logits)."""
        n = sum(m.nbytes for m in self.layers.values()) + self.logits.numel() * 4
        for a in self.blocks.values():
            n += sum(t.mean_map.nbytes for t in a.tensors())
        return n

    def feature_maps(self, layer: int, top_k: int = 16) -> FeatureMaps:
        if layer not in self.layers:
            name = self.labels.get(layer, f"layer {layer}")
            raise ProbeError(f"{name} did not run in this pass (is it a shortcut while the skips are off?)")
        return self.layers[layer].view(top_k, self.sample)

    def anatomy(self, block: str) -> BlockAnatomy:
        if block not in self.blocks:
            raise ProbeError(f"block {block} did not run in this pass")
        return self.blocks[block]

    def block_ratios(self) -> list[dict[str, Any]]:
        """‖F(x)‖/‖x‖ of every block through the depth (and ‖F(x)‖/‖shortcut(x)‖ where it is projected)."""
        return [{"position": i, "block": a.block, "stage": None if a.stage is None else a.stage + 1,
                 "shortcut": a.shortcut, "ratio": a.ratio, "ratio_to_shortcut": a.ratio_to_shortcut,
                 "x_norm": a.x.norm, "fx_norm": a.fx.norm} for i, a in enumerate(self.blocks.values())]

    def view(self, layer: int | None = None, block: str | None = None, top_k: int = 16) -> ForwardView:
        return ForwardView(device=self.device, mode=self.mode, batch=self.batch, input_shape=self.input_shape,
                           logits=self.logits, feature_maps=None if layer is None else self.feature_maps(layer, top_k),
                           anatomy=None if block is None else self.anatomy(block), stats=self.stats)


def ratio_trend(rows: list[dict[str, Any]]) -> str | None:
    """What `ForwardRecord.block_ratios()` shows, in one clause ("falls from 0.8 at layer1.0 to 0.2 at
    layer4.1; smallest …"), from the same three-digit numbers the sentence prints: a first and a last block
    that read the same are said to be the same, never "rises from 1.27 to 1.27". None under two finite ratios."""
    finite = [r for r in rows if r["ratio"] is not None and math.isfinite(r["ratio"])]
    if len(finite) < 2:
        return None
    lo = min(finite, key=lambda r: r["ratio"])
    hi = max(finite, key=lambda r: r["ratio"])
    if hi["ratio"] == 0:
        return _("is 0 at every block: each residual branch outputs zero, so every block starts as the identity")
    first, last = finite[0], finite[-1]
    a, b = f"{first['ratio']:.3g}", f"{last['ratio']:.3g}"
    if a == b:
        ends = _("is {a} at both the first block ({first}) and the last ({last})", a=a, first=first["block"],
                 last=last["block"])
    elif last["ratio"] < first["ratio"]:
        ends = _("falls from {a} at {first} to {b} at {last}", a=a, b=b, first=first["block"], last=last["block"])
    else:
        ends = _("rises from {a} at {first} to {b} at {last}", a=a, b=b, first=first["block"], last=last["block"])
    return _("{ends}; smallest {lo} ({lo_block}), largest {hi} ({hi_block})", ends=ends, lo=f"{lo['ratio']:.3g}",
             lo_block=lo["block"], hi=f"{hi['ratio']:.3g}", hi_block=hi["block"])


def kept_channels(p: Plan, budget: int = RECORD_BUDGET, most: int = MAX_TOP_K) -> int:
    """The most channels per layer (≤ `most`) whose uint8 maps over every spatial layer fit in `budget`."""
    sizes = [(lay.out_shape[0], lay.out_shape[1] * lay.out_shape[2]) for lay in p.layers
             if lay.out_shape is not None and len(lay.out_shape) == 3]
    for k in range(most, 0, -1):
        if sum(min(k, c) * hw for c, hw in sizes) <= budget:
            return k
    return 1
