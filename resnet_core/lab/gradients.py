"""Gradient flow: ‖∂L/∂W‖ of every conv/linear weight and ‖∂L/∂x‖ at every block input, with and without skips.

The one gradient-hook path: the app, the command line (`gradflow`) and benchmarks/bench_live.py all run
`gradient_pass`. NaN and Inf never raise: each norm is classified as ok, vanished (0 or below
`VANISHED_BELOW`), exploded (NaN, Inf or above `EXPLODED_ABOVE`) or unused (the layer took no part,
e.g. a projection shortcut while the skips are off).

Long runs report progress (`GradProgress`: per variant, forward and backward, with layer counts) and can
be stopped: `should_stop()` is checked at every weighted layer of the forward and the backward pass,
and a stopped `gradient_flow` returns the variants that finished, marked `stopped`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from resnet_core.device import BusyError, describe, device_slot, estimate_pass, live_threads, pick_device, reserve
from resnet_core.lab.hooks import (
    ProbeError,
    _check_batch_norm,
    _check_input,
    _fingerprint,
    _model_device,
    _module,
    _safe_ratio,
    _tensor_fingerprint,
    hooks,
    preserved,
)
from resnet_core.lab.images import noise_batch
from resnet_core.structure.build import BuildError, build_model, set_skip
from resnet_core.structure.plan import plan as make_plan
from resnet_core.structure.records import Layer, Plan
from resnet_core.structure.spec import ArchSpec
from resnet_core.structure.trace import Trace

VANISHED_BELOW = 1e-8  # an SGD step (lr 0.1) on a weight of size ~1 then changes it by less than float32 resolves
EXPLODED_ABOVE = 1e3  # a single SGD step at lr 0.1 would move the weights by ~100× their size

STATUS_HELP = {
    "ok": "a usable gradient",
    "vanished": f"exactly 0 or below {VANISHED_BELOW:g}: the layer effectively does not learn",
    "exploded": f"NaN, Inf or above {EXPLODED_ABOVE:g}: a step would wreck the weights",
    "unused": "the layer took no part in this pass (a shortcut while the skips are off)",
}


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


class Stopped(Exception):
    """Raised inside a pass when its `should_stop()` turned true; `gradient_flow` turns it into a result."""


SEED_MAX = 2**64 - 1  # torch.Generator.manual_seed takes 0 … 2**64 − 1


def check_seed(seed: int, what: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise ProbeError(f"the {what} must be an integer from 0 to 2**64 − 1, got {seed!r}")
    return seed


@dataclass(frozen=True)
class VariantProgress:
    label: str  # "with skips"
    phase: str  # waiting | forward | backward | done | stopped
    done: int  # weighted layers passed in this phase
    total: int  # weighted layers the phase will pass (backward: those that ran forward)

    def text(self) -> str:
        if self.phase in ("waiting", "done", "stopped"):
            extra = f" ({self.total} weight layers)" if self.phase == "done" else ""
            return f"{self.label}: {self.phase}{extra}"
        return f"{self.label}: {self.phase} {self.done}/{self.total} weight layers"


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
        return f"{self.finished}/{len(self.variants)} variants done · " + " · ".join(v.text() for v in self.variants)


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

    def counts(self, of: str = "weights") -> dict[str, int]:
        """How many of the weight gradients (`of="weights"`) or of the block-input gradients (`"inputs"`)
        are ok, vanished, exploded or unused; the two kinds are never added together."""
        if of not in ("weights", "inputs"):
            raise ValueError(f"counts of 'weights' or 'inputs', not {of!r}")
        out = {s: 0 for s in STATUS_HELP}
        for g in (self.weights if of == "weights" else self.inputs):
            out[g.status] += 1
        return out

    def summary(self) -> str:
        """"without skips: 55 of 57 weight gradients vanished, 0 exploded; 27 of 27 block-input gradients
        vanished, 0 exploded" (unused layers are named when there are some)."""
        parts = []
        for of, items, noun in (("weights", self.weights, "weight gradients"),
                                ("inputs", self.inputs, "block-input gradients")):
            c = self.counts(of)
            used = len(items) - c["unused"]
            text = f"{c['vanished']} of {used} {noun} vanished, {c['exploded']} exploded"
            if c["unused"]:
                text += f" ({c['unused']} unused)"
            parts.append(text)
        return f"{self.label}: " + "; ".join(parts)

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
                  exploded_above: float = EXPLODED_ABOVE,
                  progress: Callable[[str, int, int], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> GradVariant:
    """Forward + backward of cross-entropy(model(x), labels); the gradient norm of every conv/linear weight
    and of every block's input. `skip` None keeps the blocks' switches; True/False sets every block's.

    Runs on the model's device, in train mode unless train=False. Leaves no trace on the model (see the
    module's docstring). NaN/Inf gradients are classified, never raised. `progress(phase, done, total)`
    is called at every weighted layer ("forward" then "backward"); `should_stop()` is checked there too
    and raises Stopped.
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

        ran: list[int] = []
        arrived: list[int] = []
        total = len(weight_mods)

        def tick(phase: str, done: int, of: int) -> None:
            if should_stop is not None and should_stop():
                raise Stopped(f"stopped during the {phase} pass")
            if progress is not None:
                progress(phase, done, of)

        if progress is not None or should_stop is not None:
            for j, wm in enumerate(weight_mods):
                def fwd(mod, inputs, output, j=j):
                    ran.append(j)
                    tick("forward", len(ran), total)

                def bwd(grad, j=j):
                    arrived.append(j)
                    tick("backward", len(arrived), len(ran))

                hs.add(wm.register_forward_hook(fwd))
                hs.add(wm.weight.register_hook(bwd))
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
                  exploded_above: float = EXPLODED_ABOVE, progress: Callable[[GradProgress], None] | None = None,
                  should_stop: Callable[[], bool] | None = None, done: list[GradVariant] | None = None
                  ) -> list[GradVariant]:
    """`gradient_pass` once per skip setting, on the same model (same weights) and the same batch.

    `progress(GradProgress)` after every weighted layer; `should_stop()` raises Stopped, and `done` (a list
    of yours) then holds the variants that finished."""
    out = done if done is not None else []
    states = [VariantProgress(variant_label(s), "waiting", 0, 0) for s in skips]

    def report(i: int, phase: str, n: int, of: int) -> None:
        states[i] = VariantProgress(states[i].label, phase, n, of)
        if progress is not None:
            progress(GradProgress(tuple(states)))

    for i, s in enumerate(skips):
        try:
            v = gradient_pass(model, x, labels, plan, skip=s, train=train, vanished_below=vanished_below,
                              exploded_above=exploded_above, should_stop=should_stop,
                              progress=lambda phase, n, of, i=i: report(i, phase, n, of))
        except Stopped:
            report(i, "stopped", 0, 0)
            raise
        out.append(v)
        report(i, "done", 0, len(v.weights) - v.counts()["unused"])
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


def seeded_batch(input_shape: Sequence[int], batch: int, num_classes: int, seed: int = 0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded noise images (batch, C, H, W) and labels (batch,), from generators of their own."""
    check_seed(seed, "data seed")
    x = noise_batch(input_shape, batch, seed)
    g = torch.Generator().manual_seed((int(seed) + 1) % 2**64)
    labels = torch.randint(0, num_classes, (batch,), generator=g)
    return x, labels


def build_seeded(spec: ArchSpec | Plan, seed: int) -> nn.Module:
    """build_model(spec, seed): seeded builds take turns inside build_model, so sessions never mix seeds."""
    return build_model(spec, seed=seed)


def gradient_flow(spec: ArchSpec, seed: int = 0, batch: int = 8, compare_skip: bool = True,
                  x: torch.Tensor | None = None, labels: torch.Tensor | None = None, data_seed: int | None = None,
                  device: str | torch.device = "auto", train: bool = True, model: nn.Module | None = None,
                  vanished_below: float = VANISHED_BELOW, exploded_above: float = EXPLODED_ABOVE,
                  slot_timeout: float = 120.0, progress: Callable[[GradProgress], None] | None = None,
                  should_stop: Callable[[], bool] | None = None, threads: int | None = None) -> GradientFlow:
    """Forward + backward with the skips on and off, on ONE model from (spec, seed) and one batch.

    compare_skip=True builds the residual form of the spec (skip=True; a plain preset gets its shortcuts
    back) and runs it with every block's skip on, then off: the same main-path weights and the same
    images and labels (seeded noise from `data_seed`, default `seed`, unless `x`/`labels` are given).
    compare_skip=False runs the spec as it is (a plain net without skips). `model` replaces the seeded
    build by a deep copy of your weights (e.g. a loaded checkpoint). In train mode by default, as in
    training. `progress` receives a GradProgress after every weighted layer; when `should_stop()` turns
    true the run ends at the next layer and the result holds the variants that finished (`stopped`).
    On the CPU it runs on `threads` intra-op threads (default device.LIVE_CPU_THREADS: 1, for a server
    shared by sessions; the command line passes all of its own).
    Raises BuildError for a spec whose shapes do not meet, MemoryGuardError when the pass does not fit
    the memory left (admission is atomic across sessions), BusyError when the device stays busy,
    ProbeError for bad input.
    """
    check_seed(seed)
    if data_seed is not None:
        check_seed(data_seed, "data seed")
    skips = (True, False) if compare_skip else (bool(spec.skip),)
    base = spec.replace(skip=True) if True in skips else spec
    p = make_plan(base)
    if p.errors:
        raise BuildError(p)
    if batch < 1:
        raise ProbeError(f"the batch must hold at least 1 image, got {batch}")
    if x is not None:
        batch = int(x.shape[0])
    _check_batch_norm(p, batch, train)
    dev = pick_device(device) if isinstance(device, str) else torch.device(device)
    est = gradient_estimate(p, batch)
    ds = seed if data_seed is None else data_seed
    if x is None or labels is None:
        sx, sl = seeded_batch(p.input_shape, batch, base.num_classes, ds)
        x = sx if x is None else x
        labels = sl if labels is None else labels
    variants: list[GradVariant] = []
    stopped = False
    ran_on = describe(dev)
    try:
        with reserve(est, dev, what=f"the gradient pass of {spec.name} on {batch} image(s)"), \
                device_slot(dev, timeout=slot_timeout, should_stop=should_stop), live_threads(dev, threads):
            ran_on = describe(dev)
            if model is None:
                m = build_seeded(p, seed).to(dev)
            else:
                m = copy.deepcopy(model).to(dev)
            compare_skips(m, x, labels, p, skips, train, vanished_below, exploded_above, progress=progress,
                          should_stop=should_stop, done=variants)
    except Stopped:
        stopped = True
    except BusyError:
        if should_stop is None or not should_stop():
            raise
        stopped = True  # stopped while waiting for the device: nothing ran
    return GradientFlow(spec=base, seed=seed, data_seed=ds, batch=batch, input_shape=tuple(p.input_shape),
                        train=train, device=ran_on, variants=tuple(variants), vanished_below=vanished_below,
                        exploded_above=exploded_above, stopped=stopped, asked=tuple(variant_label(s) for s in skips))


def gradient_estimate(p: Plan, batch: int):
    """The memory estimate of one gradient pass of plan `p` on `batch` images (device.PassEstimate)."""
    t = Trace(p)
    return estimate_pass(t.param_bytes, t.activation_bytes, batch, backward=True)


def check_gradient_flow(spec: ArchSpec, batch: int, device: str | torch.device = "auto") -> None:
    """Raise MemoryGuardError (with the numbers) when a gradient flow of `spec` on `batch` images would not
    fit the device's free memory now; BuildError when its shapes do not meet. Runs nothing."""
    from resnet_core.device import check_fits
    p = make_plan(spec.replace(skip=True))
    if p.errors:
        raise BuildError(p)
    dev = pick_device(device) if isinstance(device, str) else torch.device(device)
    check_fits(gradient_estimate(p, batch), dev, what=f"the gradient pass of {spec.name} on {batch} image(s)")
