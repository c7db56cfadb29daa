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
import functools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from resnet_core.device import (
    BusyError,
    allocation_guard,
    check_fits,
    check_work,
    describe,
    device_slot,
    estimate_pass,
    live_threads,
    memory_room,
    pick_device,
    reserve,
)
from resnet_core.i18n import _
from resnet_core.lab.flow import (
    EXPLODED_ABOVE,
    VANISHED_BELOW,
    GradientFlow,
    GradProgress,
    GradVariant,
    InputGrad,
    Phase,
    VariantProgress,
    WeightGrad,
    classify,
    variant_label,
)
from resnet_core.lab.images import noise_batch
from resnet_core.lab.probes import (
    ProbeError,
    check_batch_norm,
    check_input,
    hooks,
    model_device,
    model_fingerprint,
    preserved,
    submodule,
    tensor_fingerprint,
)
from resnet_core.structure.build import BuildError, build_model, set_skip
from resnet_core.structure.plan import plan as make_plan
from resnet_core.structure.records import Layer, Plan
from resnet_core.structure.spec import ArchSpec
from resnet_core.structure.trace import Trace
from resnet_core.training.config import SEED_MAX


class Stopped(Exception):
    """Raised inside a pass when its `should_stop()` turned true; `gradient_flow` turns it into a result."""


def check_seed(seed: int, what: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise ProbeError(f"the {what} must be an integer from 0 to 2**64 − 1, got {seed!r}")
    return seed


def _weighted_layers(p: Plan) -> list[tuple[Layer, int]]:
    """Every conv/linear layer in plan order with its depth (see WeightGrad.depth)."""
    out = []
    depth = 0
    first_of_block: dict[tuple[int | None, int | None], int] = {}  # (stage, block) -> depth
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


def _weight_of(m: nn.Module) -> torch.Tensor:
    """A conv or linear layer's weight (its own Parameter, as a Tensor for the type checker)."""
    w = m.weight
    if not isinstance(w, torch.Tensor):
        raise ProbeError(f"{type(m).__name__} has no weight tensor")
    return w


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
    check_input(x, plan)
    check_batch_norm(plan, int(x.shape[0]), train)
    dev = model_device(model)
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
    block_mods = [submodule(model, b.name) for b in blocks]
    weight_mods = [submodule(model, lay.name) for lay, _kind in weighted]
    if skip is True and any(getattr(m, "add", None) is None for m in block_mods):
        raise ProbeError("this model was built without shortcuts (a plain net): build it from the spec with "
                         "skip=True to compare with and without skips on the same weights")
    fingerprint = model_fingerprint(model)
    batch_fp = tensor_fingerprint(x, labels)
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

        def tick(phase: Phase, done: int, of: int) -> None:
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
                hs.add(_weight_of(wm).register_hook(bwd))
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
        grads = [_weight_of(wm).grad for wm in weight_mods]
        present = [g for g in grads if g is not None]
        scalars = _norms(present) + [in_norms[i] for i in sorted(in_norms)] + [loss.detach()]
        values = torch.stack([s.float() for s in scalars]).to("cpu").tolist() if scalars else []
    w_values = iter(values[: len(present)])
    i_values = dict(zip(sorted(in_norms), values[len(present): len(present) + len(in_norms)], strict=True))
    loss_value = values[-1]
    weight_rows = []
    for j, ((lay, depth), g, wm) in enumerate(zip(weighted, grads, weight_mods, strict=True)):
        norm = next(w_values) if g is not None else None
        weight_rows.append(WeightGrad(index=j, depth=depth, name=lay.name, op=lay.op, part=lay.part, stage=lay.stage,
                                      block=lay.block, shape=tuple(_weight_of(wm).shape), norm=norm,
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

    def report(i: int, phase: Phase, n: int, of: int) -> None:
        states[i] = VariantProgress(states[i].label, phase, n, of)
        if progress is not None:
            progress(GradProgress(tuple(states)))

    for i, s in enumerate(skips):
        try:
            v = gradient_pass(model, x, labels, plan, skip=s, train=train, vanished_below=vanished_below,
                              exploded_above=exploded_above, should_stop=should_stop,
                              progress=functools.partial(report, i))
        except Stopped:
            report(i, "stopped", 0, 0)
            raise
        out.append(v)
        report(i, "done", 0, len(v.weights) - v.counts()["unused"])
    if len({v.weights_fingerprint for v in out}) > 1:  # cannot happen: nothing here changes a weight
        raise RuntimeError("the weights changed between the variants; the comparison is void")
    return out


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
    the memory left (admission is atomic across sessions), WorkLimitError when its multiply-adds are above
    the limit for one run (device.check_work), OutOfMemoryError when an allocation fails all the same, BusyError when the device stays busy,
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
    check_batch_norm(p, batch, train)
    dev = pick_device(device) if isinstance(device, str) else torch.device(device)
    est = gradient_estimate(p, batch)
    what = _("the gradient pass of {name} on {n} image(s)", name=spec.name, n=batch)
    _check_gradient_work(p, batch, len(skips), dev, what)
    hint = _smaller_batch_hint(p, batch, len(skips), dev) if est.total > memory_room(dev) else ""
    ds = seed if data_seed is None else data_seed
    if x is None or labels is None:
        sx, sl = seeded_batch(p.input_shape, batch, base.num_classes, ds)
        x = sx if x is None else x
        labels = sl if labels is None else labels
    variants: list[GradVariant] = []
    stopped = False
    ran_on = describe(dev)
    try:
        check_fits(est, dev, what=what, hint=hint)  # refused at once if no turn could run it
        with device_slot(dev, timeout=slot_timeout, should_stop=should_stop), \
                reserve(est, dev, what=what, hint=hint), allocation_guard(what, dev), live_threads(dev, threads):
            ran_on = describe(dev)
            m = build_seeded(p, seed).to(dev) if model is None else copy.deepcopy(model).to(dev)
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


def gradient_work(p: Plan, batch: int, variants: int = 2) -> int:
    """Multiply-adds of a gradient flow: forward + backward (≈ 3 × the trace's mult-adds) per image and variant."""
    return 3 * Trace(p).mult_adds * max(1, batch) * variants


def _check_gradient_work(p: Plan, batch: int, variants: int, dev: torch.device, what: str) -> None:
    """WorkLimitError (with a batch that fits) when the gradient flow's work is above the limit for one run."""
    from resnet_core.device import work_limit
    if gradient_work(p, batch, variants) > work_limit(dev):
        check_work(gradient_work(p, batch, variants), dev, what + ("" if variants == 1 else ", with and without skips"),
                   hint=_smaller_batch_hint(p, batch, variants, dev))


def _smaller_batch_hint(p: Plan, batch: int, variants: int, dev: torch.device) -> str:
    """'a batch of 16 would fit' (the work limit and the memory left now), or what to do when none would."""
    from resnet_core.device import work_limit
    room, limit, b = memory_room(dev), work_limit(dev), batch
    while b >= 1 and (gradient_estimate(p, b).total > room or gradient_work(p, b, variants) > limit):
        b //= 2
    if 1 <= b < batch:
        return _("a batch of {n} would fit", n=b)
    return _("use a smaller network or input (even one image does not fit)")


def check_gradient_flow(spec: ArchSpec, batch: int, device: str | torch.device = "auto") -> None:
    """Raise MemoryGuardError (with the numbers) when a gradient flow of `spec` on `batch` images would not
    fit the device's free memory now, WorkLimitError when its work is above the limit for one run;
    BuildError when its shapes do not meet. Runs nothing."""
    from resnet_core.device import check_fits
    p = make_plan(spec.replace(skip=True))
    if p.errors:
        raise BuildError(p)
    dev = pick_device(device) if isinstance(device, str) else torch.device(device)
    what = _("the gradient pass of {name} on {n} image(s)", name=spec.name, n=batch)
    check_fits(gradient_estimate(p, batch), dev, what=what)
    _check_gradient_work(p, batch, 2, dev, what)
