"""The records of a gradient flow: each norm's status, the per-layer and per-block rows of one pass
(GradVariant), the comparison of both variants (GradientFlow), and its progress. Measuring is in
lab/gradients.py."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

from resnet_core.i18n import N_, _
from resnet_core.lab.probes import safe_ratio
from resnet_core.structure.records import Shape
from resnet_core.structure.spec import ArchSpec

VANISHED_BELOW = 1e-8  # an SGD step (lr 0.1) on a weight of size ~1 then changes it by less than float32 resolves
EXPLODED_ABOVE = 1e3  # a single SGD step at lr 0.1 would move the weights by ~100× their size

# ok: a usable gradient; vanished: exactly 0 or below VANISHED_BELOW (the layer effectively does not learn);
# exploded: NaN, Inf or above EXPLODED_ABOVE (a step would wreck the weights); unused: the layer took no part
# in this pass (a shortcut while the skips are off)
GradStatus = Literal["ok", "vanished", "exploded", "unused"]
STATUSES: tuple[GradStatus, ...] = get_args(GradStatus)
# the phases of one variant's pass
Phase = Literal["waiting", "forward", "backward", "done", "stopped"]
PHASE_TEXT = {"waiting": N_("waiting"), "forward": N_("forward"), "backward": N_("backward"), "done": N_("done"),
              "stopped": N_("stopped")}
# the variants' labels: keys in the data (rows, charts, JSON); shown as _(label)
VARIANT_LABELS = (N_("with skips"), N_("without skips"))
# the two quantities of the chart rows (keys; shown as _(quantity))
QUANTITIES = (N_("weight gradient ‖∂L/∂W‖"), N_("block input gradient ‖∂L/∂x‖"))


def classify(value: float | None, vanished_below: float = VANISHED_BELOW,
             exploded_above: float = EXPLODED_ABOVE) -> GradStatus:
    """ok | vanished | exploded | unused (None: no gradient reached it)."""
    if value is None:
        return "unused"
    if not math.isfinite(value) or value > exploded_above:
        return "exploded"
    if value < vanished_below:
        return "vanished"
    return "ok"


@dataclass(frozen=True)
class VariantProgress:
    label: str  # "with skips"
    phase: Phase
    done: int  # weighted layers passed in this phase
    total: int  # weighted layers the phase will pass (backward: those that ran forward)

    def text(self) -> str:
        label, phase = _(self.label), _(PHASE_TEXT.get(self.phase, self.phase))
        if self.phase == "done":
            return _("{label}: {phase} ({total} weight layers)", label=label, phase=phase, total=self.total)
        if self.phase in ("waiting", "stopped"):
            return _("{label}: {phase}", label=label, phase=phase)
        return _("{label}: {phase} {done}/{total} weight layers", label=label, phase=phase, done=self.done,
                 total=self.total)


@dataclass(frozen=True)
class GradProgress:
    """Where a gradient flow is: one entry per variant, in run order."""

    variants: tuple[VariantProgress, ...]

    @property
    def fraction(self) -> float:
        """0…1: each variant is half forward, half backward."""
        if not self.variants:
            return 0.0
        parts = []
        for v in self.variants:
            share = v.done / v.total if v.total else 1.0
            parts.append({"waiting": 0.0, "forward": 0.5 * share, "backward": 0.5 + 0.5 * share}.get(v.phase, 1.0))
        return sum(parts) / len(parts)

    @property
    def finished(self) -> int:
        return sum(v.phase == "done" for v in self.variants)

    def text(self) -> str:
        return _("{finished}/{n} variants done", finished=self.finished, n=len(self.variants)) + " · " + " · ".join(
            v.text() for v in self.variants)


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
    status: GradStatus


@dataclass(frozen=True)
class InputGrad:
    """‖∂L/∂x‖ at one residual block's input."""

    block: str  # "layer2.0"
    position: int  # 0-based block number through the depth
    depth: int  # depth of the block's first conv (aligns with WeightGrad.depth)
    stage: int
    index: int  # block index within the stage
    shape: Shape  # (C, H, W) of the block's input
    norm: float | None
    status: GradStatus


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

    def counts(self, of: str = "weights") -> dict[str, int]:
        """How many of the weight gradients (`of="weights"`) or of the block-input gradients (`"inputs"`)
        are ok, vanished, exploded or unused; the two kinds are never added together."""
        if of not in ("weights", "inputs"):
            raise ValueError(f"counts of 'weights' or 'inputs', not {of!r}")
        out: dict[str, int] = {s: 0 for s in STATUSES}
        for g in (self.weights if of == "weights" else self.inputs):
            out[g.status] += 1
        return out

    def summary(self) -> str:
        """"without skips: 55 of 57 weight gradients vanished, 0 exploded; 27 of 27 block-input gradients
        vanished, 0 exploded" (unused layers are named when there are some)."""
        parts = []
        for of, items, message in (
                ("weights", self.weights, N_("{vanished} of {used} weight gradients vanished, {exploded} exploded")),
                ("inputs", self.inputs,
                 N_("{vanished} of {used} block-input gradients vanished, {exploded} exploded"))):
            c = self.counts(of)
            used = len(items) - c["unused"]
            text = _(message, vanished=c["vanished"], used=used, exploded=c["exploded"])
            if c["unused"]:
                text += _(" ({n} unused)", n=c["unused"])
            parts.append(text)
        return _("{label}: {counts}", label=_(self.label), counts=_("; ").join(parts))

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "skip": self.skip, "loss": _json_float(self.loss),
                "weights_fingerprint": self.weights_fingerprint, "batch_fingerprint": self.batch_fingerprint,
                "counts": {"weights": self.counts("weights"), "inputs": self.counts("inputs")},
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
    return VARIANT_LABELS[0] if skip else VARIANT_LABELS[1]


@dataclass(frozen=True)
class GradientFlow:
    """Gradient norms through the depth for each variant, with what it was run on."""

    spec: ArchSpec  # the spec the model was built from (skip=True when comparing)
    seed: int  # weights
    data_seed: int  # images and labels
    batch: int
    input_shape: Shape
    train: bool
    device: str  # describe(device)
    variants: tuple[GradVariant, ...]  # those that finished (all of them unless stopped)
    vanished_below: float = VANISHED_BELOW
    exploded_above: float = EXPLODED_ABOVE
    stopped: bool = False  # stopped before every variant finished
    asked: tuple[str, ...] = ()  # the variants asked for, in order

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
        return safe_ratio(values[0], values[1]) if len(values) == 2 else None

    def weight_rows(self) -> list[dict[str, Any]]:
        """One row per conv/linear layer: depth, name, each variant's norm and status, and their ratio."""
        rows = []
        for parts in zip(*(v.weights for v in self.variants), strict=True):
            g0 = parts[0]
            norms = [g.norm for g in parts]
            rows.append({"index": g0.index, "depth": g0.depth, "layer": g0.name, "op": g0.op, "part": g0.part,
                         "shape": list(g0.shape), "norms": norms, "statuses": [g.status for g in parts],
                         "ratio": self._ratio(norms)})
        return rows

    def input_rows(self) -> list[dict[str, Any]]:
        """One row per block: its input's gradient norm for each variant, and their ratio."""
        rows = []
        for parts in zip(*(v.inputs for v in self.variants), strict=True):
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
        grads: list[WeightGrad | InputGrad] = []
        for v in self.variants:
            grads += [*v.weights, *v.inputs]
        finite = [g.norm for g in grads if g.norm is not None and math.isfinite(g.norm) and g.norm > 0]
        floor = min([self.vanished_below, *finite]) / 10.0
        ceiling = max([self.exploded_above, *finite]) * 10.0
        rows = []
        for v in self.variants:
            for quantity, items in ((QUANTITIES[0], v.weights), (QUANTITIES[1], v.inputs)):
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
        return {"spec": self.spec.name, "stopped": self.stopped, "seed": self.seed, "data_seed": self.data_seed, "batch": self.batch,
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
