"""Named specs: torchvision's ImageNet ResNets, the CIFAR-10 family of He et al. (2015 §4.2),
pre-activation ResNets (He et al. 2016), the family since 2016 (timm's ResNet-B/C/D, SE, ECA and ResNet-RS;
torchvision's ConvNeXt), and a plain twin of each (same layers, no shortcuts)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from resnet_core.formatting import did_you_mean, listing
from resnet_core.i18n import N_, _
from resnet_core.structure.presets_family import FAMILY
from resnet_core.structure.spec import ArchSpec, BlockType, ShortcutOption, Stage, Stem

Family = Literal["torchvision", "cifar", "preact", "timm", "convnext"]


@dataclass(frozen=True)
class PresetInfo:
    name: str
    family: Family
    summary: str
    spec: ArchSpec
    plain_of: str | None = None  # the residual net this is the plain twin of
    # the summary as marked messages and their fields, joined (empty: the summary is one message itself)
    parts: tuple[tuple[str, tuple[tuple[str, object], ...]], ...] = ()

    @property
    def shown_summary(self) -> str:
        """The summary in this run's language (the English `summary`, translated where it is asked for)."""
        if not self.parts:
            return _(self.summary)
        return "".join(_(msg, **dict(fields)) for msg, fields in self.parts)


def _imagenet(name: str, block: BlockType, layers: list[int], groups: int = 1, wpg: int = 64,
              num_classes: int = 1000) -> ArchSpec:
    widths = [64, 128, 256, 512]
    strides = [1, 2, 2, 2]
    stages = tuple(Stage(block=block, blocks=n, width=w, stride=s, groups=groups, width_per_group=wpg)
                   for n, w, s in zip(layers, widths, strides, strict=True))
    return ArchSpec(name=name, stem=Stem(type="imagenet", channels=64), stages=stages, shortcut="B",
                    num_classes=num_classes, init="kaiming_fan_out")


def _cifar(name: str, n: int, block: BlockType = "basic", shortcut: ShortcutOption = "A",
           widths: tuple[int, int, int] = (16, 32, 64)) -> ArchSpec:
    stages = tuple(Stage(block=block, blocks=n, width=w, stride=s)
                   for w, s in zip(widths, (1, 2, 2), strict=True))
    return ArchSpec(name=name, input_size=(32, 32), stem=Stem(type="cifar", channels=16), stages=stages,
                    shortcut=shortcut, num_classes=10, init="kaiming_fan_in")


_TORCHVISION: list[tuple[str, BlockType, list[int], int, int, str]] = [
    ("resnet18", "basic", [2, 2, 2, 2], 1, 64, N_("ResNet-18: basic blocks [2, 2, 2, 2]")),
    ("resnet34", "basic", [3, 4, 6, 3], 1, 64, N_("ResNet-34: basic blocks [3, 4, 6, 3]")),
    ("resnet50", "bottleneck", [3, 4, 6, 3], 1, 64, N_("ResNet-50: bottlenecks [3, 4, 6, 3] (v1.5, stride on the 3×3)")),
    ("resnet101", "bottleneck", [3, 4, 23, 3], 1, 64, N_("ResNet-101: bottlenecks [3, 4, 23, 3]")),
    ("resnet152", "bottleneck", [3, 8, 36, 3], 1, 64, N_("ResNet-152: bottlenecks [3, 8, 36, 3]")),
    ("resnext50_32x4d", "bottleneck", [3, 4, 6, 3], 32, 4, N_("ResNeXt-50 32×4d: 32 groups of width 4")),
    ("resnext101_32x8d", "bottleneck", [3, 4, 23, 3], 32, 8, "ResNeXt-101 32×8d"),
    ("resnext101_64x4d", "bottleneck", [3, 4, 23, 3], 64, 4, "ResNeXt-101 64×4d"),
    ("wide_resnet50_2", "bottleneck", [3, 4, 6, 3], 1, 128, N_("Wide ResNet-50-2: bottlenecks twice as wide")),
    ("wide_resnet101_2", "bottleneck", [3, 4, 23, 3], 1, 128, "Wide ResNet-101-2"),
]

_CIFAR_N = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9, "resnet110": 18, "resnet1202": 200}


def _plain_name(name: str) -> str:
    if name.startswith("resnet") and name[6:].isdigit():
        return "plain" + name[6:]
    if name.startswith("preact_resnet"):
        return "plain_" + name
    return "plain_" + name


def _build_registry() -> dict[str, PresetInfo]:
    reg: dict[str, PresetInfo] = {}

    def add(info: PresetInfo) -> None:
        reg[info.name] = info
        twin = _plain_name(info.name)
        msg = N_("plain twin of {name}: the same layers, no shortcut connections")
        reg[twin] = PresetInfo(
            name=twin, family=info.family, plain_of=info.name, summary=msg.format(name=info.name),
            spec=replace(info.spec, name=twin, skip=False), parts=((msg, (("name", info.name),)),))

    imagenet = N_(" · 224×224, 1000 classes")
    for name, block, layers, groups, wpg, summary in _TORCHVISION:
        add(PresetInfo(name, "torchvision", summary + imagenet, _imagenet(name, block, layers, groups, wpg),
                       parts=((summary, ()), (imagenet, ()))))
    cifar = N_("CIFAR ResNet-{depth}: n={n} basic blocks per stage, 16/32/64 filters, option-A shortcuts · 32×32, "
               "10 classes")
    for name, n in _CIFAR_N.items():
        fields = (("depth", 6 * n + 2), ("n", n))
        add(PresetInfo(name, "cifar", cifar.format(**dict(fields)), _cifar(name, n), parts=((cifar, fields),)))
    # the family since 2016 at CIFAR size, for the Training lab: do ResNet-D's shortcut or channel attention
    # change the curves on the digits?
    add(PresetInfo("resnet20d", "cifar", N_("CIFAR ResNet-20 with option-D shortcuts (2×2 average pool, then 1×1 conv + "
                                            "BN, where the shape changes; He et al. 2019) · 32×32, 10 classes"),
                   _cifar("resnet20d", 3, shortcut="D")))
    add(PresetInfo("seresnet20", "cifar", N_("CIFAR ResNet-20 with squeeze-and-excitation in every block (ratio 1/16, "
                                             "Hu et al. 2018) · 32×32, 10 classes"),
                   replace(_cifar("seresnet20", 3), attention="se")))
    add(PresetInfo("ecaresnet20", "cifar", N_("CIFAR ResNet-20 with efficient channel attention in every block (Wang et "
                                              "al. 2020) · 32×32, 10 classes"),
                   replace(_cifar("ecaresnet20", 3), attention="eca")))
    # Pre-activation ResNets (He et al. 2016, "Identity Mappings in Deep Residual Networks").
    add(PresetInfo("preact_resnet18", "preact", N_("pre-activation ResNet-18 (BN→ReLU→conv), ImageNet layout"),
                   _imagenet("preact_resnet18", "preact_basic", [2, 2, 2, 2])))
    add(PresetInfo("preact_resnet110", "preact", N_("pre-activation CIFAR ResNet-110, basic blocks, option B"),
                   _cifar("preact_resnet110", 18, block="preact_basic", shortcut="B")))
    add(PresetInfo("preact_resnet164", "preact", N_("pre-activation CIFAR ResNet-164, bottlenecks (16/32/64 ×4), option B"),
                   _cifar("preact_resnet164", 18, block="preact_bottleneck", shortcut="B")))
    for name, family, summary, spec in FAMILY:
        add(PresetInfo(name, family, summary, spec))
    return reg


_REGISTRY = _build_registry()

DEFAULT_PRESET = "resnet18"


def list_presets(family: str | None = None) -> list[str]:
    """Preset names, residual nets first within each family, in a teaching order."""
    return [n for n, info in _REGISTRY.items() if family is None or info.family == family]


def preset_info(name: str) -> PresetInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = did_you_mean(name, _REGISTRY, n=3)
        hint = _(" Did you mean {names}?", names=listing(close)) if close else ""
        raise KeyError(_("unknown preset '{name}'.{hint} `python -m resnet_core presets` lists them.", name=name,
                         hint=hint)) from None


def get_preset(name: str) -> ArchSpec:
    return preset_info(name).spec


def is_preset(name: str) -> bool:
    return name in _REGISTRY


def matching_preset(spec: ArchSpec) -> str | None:
    """The preset this spec is exactly equal to, if any (used for short share links)."""
    info = _REGISTRY.get(spec.name)
    if info is not None and info.spec == spec:
        return spec.name
    return None
