"""From ResNet-50 to ConvNeXt-T, one published step at a time (Liu et al. 2022, "A ConvNet for the 2020s",
Figure 2): each step a spec the explorer plans and builds, its idea, the paper's reported GFLOPs and ImageNet-1K
top-1 for that step (labelled as reported: nothing here was trained), the parameters and mult-adds computed
here, and a structural diff from the step before.

The paper's numbers are its Figure 2 (ResNet-50 / Swin-T regime; ImageNet-1K top-1 after 300 epochs with
the modernised recipe). The two ends are exact: ResNet-50 (4,089,184,256 mult-adds) and torchvision's
ConvNeXt-T (4,455,531,264).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields, replace

from resnet_core.i18n import N_
from resnet_core.structure.plan import plan as make_plan
from resnet_core.structure.presets import get_preset
from resnet_core.structure.records import Layer, Plan
from resnet_core.structure.spec import ArchSpec, Stage, Stem
from resnet_core.structure.trace import Trace

PAPER = "Liu et al. 2022, Figure 2"


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    idea: str  # two sentences: what changes and why
    spec: ArchSpec
    reported_gflops: float  # the paper's, for this step
    reported_top1: float  # the paper's ImageNet-1K top-1 (%), for this step
    why_flops_differ: str = ""  # where the computed mult-adds differ from the reported GFLOPs by more than 0.1 G


def _stages(spec: ArchSpec, **changes: object) -> tuple[Stage, ...]:
    return tuple(replace(s, **changes) for s in spec.stages)  # type: ignore[arg-type]


def _widths(spec: ArchSpec, widths: tuple[int, ...], **changes: object) -> tuple[Stage, ...]:
    return tuple(replace(s, width=w, **changes) for s, w in zip(spec.stages, widths, strict=True))  # type: ignore[arg-type]


def _steps() -> list[Step]:
    r50 = get_preset("resnet50")
    out = [Step("resnet50", N_("ResNet-50"), N_("The starting point: torchvision's ResNet-50 (bottlenecks 3-4-6-3, 7×7 stem, "
                "batch norm and ReLU after every conv). The paper first trains it with a modern recipe (300 epochs, "
                "AdamW, heavy augmentation), which alone lifts it from 76.1 % to the 78.8 % shown here."),
                r50, 4.1, 78.8)]

    def then(key: str, title: str, idea: str, gflops: float, top1: float, why: str = "", **changes: object) -> None:
        prev = out[-1].spec
        spec = replace(prev, name=f"roadmap {len(out)} · {title}", **changes)  # type: ignore[arg-type]
        out.append(Step(key, title, idea, spec, gflops, top1, why))

    blocks = tuple(replace(s, blocks=n) for s, n in zip(r50.stages, (3, 3, 9, 3), strict=True))
    then("stage_ratio", N_("stage ratio 3-3-9-3"),
         N_("The blocks per stage change from 3-4-6-3 to 3-3-9-3, the 1:1:3:1 compute ratio of Swin-T. More of the "
         "work happens in stage 3, at 14×14."), 4.5, 79.4, stages=blocks)
    then("patchify", N_("patchify stem"),
         N_("The 7×7 stride-2 conv and max pool become one 4×4 conv with stride 4, cutting the image into "
         "non-overlapping patches as a vision Transformer does. Same 56×56 output, fewer mult-adds."),
         4.4, 79.5, stem=Stem(type="patchify", channels=64, kernel=4))
    then("depthwise", N_("depthwise conv (ResNeXt-ify)"),
         N_("The bottleneck's 3×3 conv becomes depthwise: one group per channel, so it mixes space only, like the "
         "weighted sum of self-attention, while the 1×1s mix channels. Mult-adds fall by almost half."),
         2.4, 78.3, stages=_stages(replace(r50, stages=blocks), depthwise=True))
    then("width", N_("width 96"),
         N_("The saved compute is spent on width: the branch widths grow from 64-128-256-512 to 96-192-384-768, "
         "Swin-T's channel counts, and the stem's from 64 to 96. Outputs stay 4× wider (384 to 3072 channels)."),
         5.3, 80.5, stem=Stem(type="patchify", channels=96, kernel=4), stages=_widths(replace(r50, stages=blocks), (96, 192, 384, 768), depthwise=True))
    then("inverted", N_("inverted bottleneck"),
         N_("The bottleneck is turned inside out: a narrow 96-channel input expands 4× to 384 for the depthwise conv and "
         "shrinks back, as in a Transformer's MLP and MobileNetV2. The wide shortcut projections shrink with the "
         "outputs, so mult-adds fall."), 4.6, 80.6,
         stages=_widths(replace(r50, stages=blocks), (96, 192, 384, 768), depthwise=True, width_per_group=256,
                        expansion=1))
    then("move_up", N_("depthwise conv moved up"),
         N_("The depthwise conv moves to the top of the block (depthwise, then 1×1 expand, then 1×1 reduce), as "
         "attention comes before the MLP in a Transformer block. Now it runs on 96 channels, not 384."),
         4.1, 79.9, stages=_widths(replace(r50, stages=blocks), (96, 192, 384, 768), block="convnext", kernel=3))
    then("kernel7", N_("kernel 7×7"),
         N_("With the depthwise conv on few channels, a large kernel is cheap: 7×7 instead of 3×3, close to Swin's "
         "7×7 attention windows. The paper saw accuracy saturate at 7."), 4.2, 80.6,
         stages=_widths(replace(r50, stages=blocks), (96, 192, 384, 768), block="convnext"))
    then("gelu", N_("ReLU → GELU"),
         N_("Every ReLU becomes a GELU, the smooth activation of Transformers. Accuracy and cost are unchanged."),
         4.2, 80.6, activation="gelu")
    then("fewer_acts", N_("fewer activations"),
         N_("Only one activation per block remains, between the two 1×1 layers, as in a Transformer's MLP; none after "
         "the depthwise conv, none after the addition."), 4.2, 81.3, block_activations="one")
    then("fewer_norms", N_("fewer norms"),
         N_("Only one norm per block remains, after the depthwise conv (before the 1×1 expand). Fewer normalisations, "
         "as in a Transformer."), 4.2, 81.4, block_norms="one")
    then("layer_norm", N_("BN → LN"),
         N_("Batch norm becomes LayerNorm over the channels at each position, independent of the batch. On its own "
         "in a ResNet this hurts; in this block it helps a little."), 4.2, 81.5, norm="layer")
    tiny = get_preset("convnext_tiny")
    out.append(Step("separate", N_("separate downsampling = ConvNeXt-T"),
                    N_("The stride leaves the blocks: between stages a LayerNorm and a 2×2 stride-2 conv shrink the map, "
                    "with a LayerNorm before the classifier to keep training stable. With the layer scale its "
                    "training recipe uses (a per-channel γ = 1e-6 on each block's F(x)) this is ConvNeXt-T, 82.1 % "
                    "in the paper's Table 1."), tiny, 4.5, 82.0))
    return out


STEPS: list[Step] = _steps()


@dataclass(frozen=True)
class Counted:
    step: Step
    plan: Plan
    params: int
    mult_adds: int  # conv and linear weights (FlopCounterMode ÷ 2), the figure GFLOPs tables use

    @property
    def gflops_gap(self) -> float:
        return self.mult_adds / 1e9 - self.step.reported_gflops


def counted() -> list[Counted]:
    """Every step planned and counted here."""
    out = []
    for s in STEPS:
        p = make_plan(s.spec)
        t = Trace(p)
        out.append(Counted(s, p, t.total_params, t.weight_mult_adds))
    return out


# ---- the structural diff from one step to the next -------------------------------------------------------

def _describe(lay: Layer) -> str:
    if lay.op == "conv":
        dw = " depthwise" if lay.groups > 1 and lay.groups == lay.in_shape[0] else (
            f" g{lay.groups}" if lay.groups > 1 else "")
        return f"conv {lay.kernel}×{lay.kernel}{dw}"
    if lay.op == "linear":
        return "1×1 as Linear" if lay.channels_last else "fc"
    if lay.op in ("maxpool", "avgpool"):
        return f"{lay.kernel}×{lay.kernel} {lay.op[:3]} pool"
    return lay.type


def _group(lay: Layer) -> str:
    if lay.stage is not None:
        return f"stage {lay.stage + 1}"
    return "stem" if lay.part == "stem" else "head"


def _parts(p: Plan) -> dict[str, Counter[str]]:
    parts: dict[str, Counter[str]] = {}
    for lay in p.layers:
        if lay.op in ("add", "flatten", "permute"):
            continue
        parts.setdefault(_group(lay), Counter())[_describe(lay)] += 1
    return parts


def _shapes(p: Plan) -> dict[str, str]:
    shapes = {"stem": "×".join(map(str, next(lay.out_shape for lay in reversed(p.layers) if lay.part == "stem"
                                             and lay.out_shape)))}
    for sp in p.stages:
        shapes[f"stage {sp.index + 1}"] = (f"{len(sp.blocks)} blocks, "
                                          f"{'×'.join(map(str, sp.out_shape or ()))} out")
    return shapes


def _text(value: object) -> str:
    if isinstance(value, Stem):
        r = value.resolved()
        pool = "" if r["pool"] == "none" else f" + {r['pool_kernel']}×{r['pool_kernel']}/{r['pool_stride']} {r['pool']} pool"
        return f"{value.type} {r['kernel']}×{r['kernel']}/{r['stride']} conv, {r['channels']}{pool}"
    return str(value)


@dataclass(frozen=True)
class Change:
    where: str  # "stem", "stage 3", "head", "network"
    added: list[str]
    removed: list[str]
    changed: list[str]


def diff(before: Plan, after: Plan) -> list[Change]:
    """What `after` adds, removes and changes relative to `before`, part by part (stem, each stage, head), and the
    network-wide options that changed."""
    out: list[Change] = []
    opts = [f"{f.name}: {_text(getattr(before.spec, f.name))} → {_text(getattr(after.spec, f.name))}"
            for f in fields(ArchSpec)
            if f.name not in ("name", "stages") and getattr(before.spec, f.name) != getattr(after.spec, f.name)]
    if opts:
        out.append(Change("network", [], [], opts))
    settings = {f"stage {i + 1}": [f"{f.name}: {getattr(x, f.name)} → {getattr(y, f.name)}" for f in fields(Stage)
                                   if getattr(x, f.name) != getattr(y, f.name)]
                for i, (x, y) in enumerate(zip(before.spec.stages, after.spec.stages, strict=False))}
    a, b = _parts(before), _parts(after)
    sa, sb = _shapes(before), _shapes(after)
    for where in [*dict.fromkeys([*a, *b])]:
        ca, cb = a.get(where, Counter()), b.get(where, Counter())
        added = [f"{n} × {t}" for t, n in (cb - ca).items()]
        removed = [f"{n} × {t}" for t, n in (ca - cb).items()]
        changed = settings.get(where, []) + (
            [f"{sa[where]} → {sb[where]}"] if where in sa and where in sb and sa[where] != sb[where] else [])
        if added or removed or changed:
            out.append(Change(where, added, removed, changed))
    return out
