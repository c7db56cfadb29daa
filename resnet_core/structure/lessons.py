"""Material for the Learn page: small, pure functions the page lays out and tests can check.

- `resnet18_walkthrough`: ResNet-18 shape by shape, read off its trace (DESIGN's walk-through).
- `shortcut_options`: one network under shortcut options A, B and C (He et al. 2015 §3.3).
- `batchnorm_demo`: a real BatchNorm2d on a real batch: per-channel statistics before and after,
  in training mode (batch statistics) and in evaluation mode (running statistics).
- `EXERCISES`: broken networks a student loads into the builder and fixes, each with its check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from resnet_core.i18n import N_, _, ngettext
from resnet_core.structure.plan import plan
from resnet_core.structure.presets import get_preset
from resnet_core.structure.records import Location, Plan, shape_str
from resnet_core.structure.spec import ArchSpec, Stage, Stem
from resnet_core.structure.trace import Trace, trace


@dataclass(frozen=True)
class Walkthrough:
    """ResNet-18 step by step, every shape read from the trace (Markdown steps), and the stem's conv rule."""

    steps: tuple[str, ...]
    stem_conv: tuple[int, int, int, int, int]  # H_in, kernel, padding, stride, H_out of the stem's conv


_SHORTCUT_WORDS = {"projection": N_("a 1×1 projection"), "pad": N_("zero-padded"), "identity": N_("the identity")}


def resnet18_walkthrough(t: Trace) -> Walkthrough:
    """Input → stem → stages → pool → FC of a ResNet-18 trace, in words a student reads off the table."""
    layers = {lay.name: lay for lay in t.plan.layers}
    stages = [g for g in t.groups() if g.name.startswith("layer")]
    steps = [
        _("**Input**: an image of {shape} (channels × height × width).", shape=shape_str(t.input_shape)),
        _("**Stem**: a 7×7 convolution with stride 2 and 64 filters → {conv}; batch norm and ReLU; a 3×3 max-pool "
          "with stride 2 → {pool}.", conv=shape_str(layers['conv1'].out_shape),
          pool=shape_str(layers['maxpool'].out_shape)),
    ]
    for g, sp in zip(stages, t.plan.stages, strict=False):
        first = sp.blocks[0]
        shortcut = _(_SHORTCUT_WORDS[first.shortcut]) if first.shortcut in _SHORTCUT_WORDS else first.shortcut
        how = (_("same size") if first.stride == 1
               else _("the first block divides the size by its stride {stride}; its shortcut is {shortcut}",
                      stride=first.stride, shortcut=shortcut))
        steps.append(ngettext("**Stage {n}** ({k} basic block, {how}) → {shape}.",
                              "**Stage {n}** ({k} basic blocks, {how}) → {shape}.", len(sp.blocks),
                              n=sp.index + 1, k=len(sp.blocks), how=how, shape=shape_str(g.out_shape)))
    channels = layers["avgpool"].in_shape[0]
    classes = t.plan.spec.num_classes
    head = next(r.params for r in t.layers if r.name == "fc")
    steps += [
        _("**Global average pool**: each of the {c} maps averaged to one number → {shape}.", c=channels,
          shape=shape_str(layers['avgpool'].out_shape)),
        _("**Flatten** → {flat}; **fully connected** → {out} class scores ({c}·{k} weights + {k} biases = "
          "{head} parameters: the only layer that depends on the number of classes).",
          flat=shape_str(layers['flatten'].out_shape), out=shape_str(layers['fc'].out_shape), c=channels,
          k=classes, head=format(head, ",")),
    ]
    conv1 = layers["conv1"]
    h_in, k, p, s = t.input_shape[1], conv1.kernel, conv1.padding, conv1.stride
    return Walkthrough(tuple(steps), (h_in, k, p, s, (h_in + 2 * p - k) // s + 1))


def shortcut_options(spec: ArchSpec) -> list[dict]:
    """Parameters and mult-adds of `spec` under options A, B and C, and what each shortcut costs."""
    rows = []
    for option in ("A", "B", "C"):
        t = trace(spec.replace(shortcut=option, skip=True))
        shortcut_params = sum(r.params for r in t.layers if r.layer.part == "shortcut")
        rows.append({"option": option, "parameters": t.total_params, "shortcut parameters": shortcut_params,
                     "mult-adds": t.mult_adds, "valid": t.ok,
                     "projections": sum(1 for b in t.plan.blocks if b.shortcut == "projection"),
                     "zero-pad shortcuts": sum(1 for b in t.plan.blocks if b.shortcut == "pad")})
    return rows


@dataclass(frozen=True)
class BatchNormDemo:
    channels: list[int]
    before_mean: list[float]
    before_std: list[float]
    train_mean: list[float]  # after BN in training mode: ≈ β (0)
    train_std: list[float]  # ≈ γ (1)
    running_mean: list[float]  # what BN has learned after `steps` batches
    running_var: list[float]
    eval_mean: list[float]  # a fresh batch through BN in eval mode
    eval_std: list[float]
    momentum: float
    steps: int


def batchnorm_demo(channels: int = 4, batch: int = 32, size: int = 8, steps: int = 20, momentum: float = 0.1,
                   seed: int = 0) -> BatchNormDemo:
    """Feed batches whose channels have very different means and scales through nn.BatchNorm2d."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    scales = torch.tensor([0.5 * 3 ** i for i in range(channels)])
    offsets = torch.tensor([(-1) ** i * 2.0 * (i + 1) for i in range(channels)])

    def sample() -> torch.Tensor:  # (B, C, H, W) with channel c ~ N(offset_c, scale_c²)
        x = torch.randn(batch, channels, size, size, generator=g)
        return x * scales.view(1, -1, 1, 1) + offsets.view(1, -1, 1, 1)

    def stats(x: torch.Tensor) -> tuple[list[float], list[float]]:
        return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist()

    bn = nn.BatchNorm2d(channels, momentum=momentum)
    x = sample()
    before = stats(x)
    bn.train()
    with torch.no_grad():
        after = stats(bn(x))
        for _step in range(steps - 1):
            bn(sample())
        mean, var = bn.running_mean, bn.running_var
        assert mean is not None and var is not None  # track_running_stats (the default) keeps them
        running = mean.tolist(), var.tolist()
        bn.eval()
        evaluated = stats(bn(sample()))
    return BatchNormDemo(list(range(channels)), *before, *after, *running, *evaluated, momentum=momentum,
                         steps=steps)


@dataclass(frozen=True)
class Exercise:
    key: str
    title: str
    story: str  # what the student is told
    hint: str
    broken: ArchSpec
    check: Callable[[ArchSpec, Plan], str | None]  # None when solved, else what is still wrong


_PARTS = {"shortcut": N_("shortcut"), "width per group": N_("width per group"), "stem": N_("stem"), "pool": N_("pool"),
          "kernel": N_("kernel"), "groups": N_("groups"), "block type": N_("block type")}


def where_said(where: Location) -> str:
    """`where` as `str(where)` says it ("stage 2 · block 0 · shortcut"), in the run's language."""
    bits = []
    if where.stage is not None:
        bits.append(_("stage {n}", n=where.stage + 1))
    if where.block is not None:
        bits.append(_("block {n}", n=where.block))
    if where.part:
        bits += [_(_PARTS.get(piece, piece)) for piece in where.part.split(" · ")]
    return " · ".join(bits) or _("network")


def _keeps_skips(spec: ArchSpec, p: Plan) -> str | None:
    if not p.ok:
        return _("it still breaks at {where}", where=where_said(p.errors[0].where))
    if not spec.skip:
        return _("it works, but only because the skip connections are off: keep them on and fix the shortcut")
    return None


def _same_widths(original: ArchSpec) -> Callable[[ArchSpec, Plan], str | None]:
    def check(spec: ArchSpec, p: Plan) -> str | None:
        problem = _keeps_skips(spec, p)
        if problem:
            return problem
        if [s.width * s.expansion_or_default for s in spec.stages] != \
                [s.width * s.expansion_or_default for s in original.stages]:
            return _("it works, but the stage widths changed: keep the widths and fix the shortcut")
        return None
    return check


def _valid(spec: ArchSpec, p: Plan) -> str | None:
    return None if p.ok else _("it still breaks at {where}", where=where_said(p.errors[0].where))


def _exercises() -> list[Exercise]:
    r18 = get_preset("resnet18")
    ex1 = r18.replace(name="exercise-1", shortcut="identity")
    r20 = get_preset("resnet20")
    ex2 = r20.replace(name="exercise-2").with_stage(2, width=16)  # widths 16, 32, 16: a stage that narrows
    ex3 = r18.replace(name="exercise-3").with_stage(0, groups=3)
    ex4 = ArchSpec(name="exercise-4", in_channels=1, input_size=(8, 8),
                   stem=Stem(type="custom", channels=16, kernel=11, stride=1, padding=0, pool="none"),
                   stages=(Stage(width=16), Stage(width=32, stride=2)), shortcut="B", num_classes=10)
    ex5 = get_preset("resnext50_32x4d").replace(name="exercise-5").with_stage(0, width=8)
    return [
        Exercise("shortcut", N_("The shortcut that does not fit"), N_(
            "This ResNet-18 adds the bare input x to F(x) in every block. Where the stage changes — twice "
            "the channels, half the size — x and F(x) no longer have the same shape. Find the block and fix it "
            "without turning the skip connections off or changing any width."),
            N_("Look at the shortcut option: which one adds a 1×1 projection only where the shape changes?"),
            ex1, _same_widths(ex1)),
        Exercise("option-a", N_("Zero-padding cannot remove channels"), N_(
            "A CIFAR ResNet whose third stage is narrower (16 channels) than the second (32). Its option-A "
            "shortcuts pad x with zero channels — which works only when channels grow. Keep the widths and the "
            "skip connections; make it build."),
            N_("Option A has no parameters. Which option can map 32 channels to 16?"),
            ex2, _same_widths(ex2)),
        Exercise("groups", N_("Groups that do not divide"), N_(
            "Someone set 3 groups on stage 1 of ResNet-18. A grouped conv splits its channels into equal groups. "
            "Make the network build again."), N_("64 channels: which group counts divide 64?"), ex3, _valid),
        Exercise("tiny-input", N_("Shrinking below one pixel"), N_(
            "An 8×8 digits image meets an 11×11 stem convolution without padding. Make the network build, for "
            "example by padding the stem, a smaller kernel, or a larger input."),
            N_("Output size = (H + 2·padding − kernel) / stride + 1 must be at least 1."), ex4, _valid),
        Exercise("zero-width", N_("Zero channels per group"), N_(
            "A ResNeXt-50 whose first stage is only 8 wide: its branch width is int(8 · 4 / 64) · 32 = 0. Give "
            "the branch a width again."), N_("Raise the stage's width, or its width per group."), ex5, _valid),
    ]


EXERCISES: list[Exercise] = _exercises()


def check_exercise(exercise: Exercise, spec: ArchSpec) -> str | None:
    """None when `spec` solves `exercise`; otherwise what is still wrong."""
    return exercise.check(spec, plan(spec))
