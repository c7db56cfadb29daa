"""The residual family since 2016, as specs: the "Bag of Tricks" ResNets (He et al. 2019: B stride in the 3×3,
C deep stem, D average-pool shortcut), SE-ResNet (Hu et al. 2018), ECA-ResNet (Wang et al. 2020), ResNet-RS
(Bello et al. 2021), all with timm's names and numbers, and ConvNeXt (Liu et al. 2022) with torchvision's."""

from __future__ import annotations

from typing import Literal

from resnet_core.i18n import N_
from resnet_core.structure.spec import ArchSpec, AttentionName, BlockType, PoolType, Stage, Stem

_WIDTHS = (64, 128, 256, 512)
_STRIDES = (1, 2, 2, 2)


def timm_resnet(name: str, block: BlockType, layers: tuple[int, ...], stem: str = "", avg_down: bool = False,
                attention: AttentionName = "none", se_ratio: float = 0.0625, pool: PoolType = "max") -> ArchSpec:
    """timm's ResNet: `stem` "" (7×7), "deep" (32-32-64), "tiered" (24-32-64) or "deep64" (64-64-128);
    avg_down: ResNet-D's shortcut."""
    stages = tuple(Stage(block=block, blocks=n, width=w, stride=s)
                   for n, w, s in zip(layers, _WIDTHS, _STRIDES, strict=True))
    widths, channels = {"deep": ((32, 32), 64), "tiered": ((24, 32), 64), "deep64": ((64, 64), 128)}.get(
        stem, ((32, 32), 64))
    st = Stem(type="deep", channels=channels, widths=widths, pool=pool) if stem else Stem()
    return ArchSpec(name=name, stem=st, stages=stages, shortcut="D" if avg_down else "B", attention=attention,
                    se_ratio=se_ratio)


def convnext(name: str, layers: tuple[int, ...], width: int) -> ArchSpec:
    """torchvision's ConvNeXt: 4×4 patchify stem, ConvNeXt blocks, LayerNorm, GELU, layer scale 1e-6, separate
    downsampling layers."""
    stages = tuple(Stage(block="convnext", blocks=n, width=width * 2 ** i, stride=1 if i == 0 else 2)
                   for i, n in enumerate(layers))
    return ArchSpec(name=name, stem=Stem(type="patchify", channels=width, kernel=4), stages=stages, shortcut="B",
                    norm="layer", activation="gelu", layer_scale=1e-6, downsampling="separate", block_norms="one",
                    block_activations="one", init="pytorch_default")


R50 = (3, 4, 6, 3)
FamilyName = Literal["timm", "convnext"]
FAMILY: list[tuple[str, FamilyName, str, ArchSpec]] = [
    ("resnet18d", "timm", N_("ResNet-18-D: deep stem 32-32-64, average-pool shortcut (He et al. 2019)"),
     timm_resnet("resnet18d", "basic", (2, 2, 2, 2), "deep", avg_down=True)),
    ("resnet26", "timm", N_("ResNet-26: bottlenecks [2, 2, 2, 2]"), timm_resnet("resnet26", "bottleneck", (2, 2, 2, 2))),
    ("resnet26d", "timm", N_("ResNet-26-D: deep stem, average-pool shortcut"),
     timm_resnet("resnet26d", "bottleneck", (2, 2, 2, 2), "deep", avg_down=True)),
    ("resnet26t", "timm", N_("ResNet-26-T: tiered deep stem 24-32-64, average-pool shortcut"),
     timm_resnet("resnet26t", "bottleneck", (2, 2, 2, 2), "tiered", avg_down=True)),
    ("resnet50c", "timm", N_("ResNet-50-C: deep stem 32-32-64 (He et al. 2019)"),
     timm_resnet("resnet50c", "bottleneck", R50, "deep")),
    ("resnet50d", "timm", N_("ResNet-50-D: deep stem and average-pool shortcut (He et al. 2019)"),
     timm_resnet("resnet50d", "bottleneck", R50, "deep", avg_down=True)),
    ("resnet50s", "timm", N_("ResNet-50-S: deep stem 64-64-128"), timm_resnet("resnet50s", "bottleneck", R50, "deep64")),
    ("resnet101d", "timm", "ResNet-101-D", timm_resnet("resnet101d", "bottleneck", (3, 4, 23, 3), "deep", True)),
    ("resnet152d", "timm", "ResNet-152-D", timm_resnet("resnet152d", "bottleneck", (3, 8, 36, 3), "deep", True)),
    ("resnet200d", "timm", "ResNet-200-D", timm_resnet("resnet200d", "bottleneck", (3, 24, 36, 3), "deep", True)),
    ("seresnet50", "timm", N_("SE-ResNet-50: squeeze-and-excitation, ratio 1/16 (Hu et al. 2018)"),
     timm_resnet("seresnet50", "bottleneck", R50, attention="se")),
    ("ecaresnet50d", "timm", N_("ECA-ResNet-50-D: efficient channel attention (Wang et al. 2020) on ResNet-50-D"),
     timm_resnet("ecaresnet50d", "bottleneck", R50, "deep", avg_down=True, attention="eca")),
    ("resnetrs50", "timm", N_("ResNet-RS-50: deep stem, stride-2 conv for the max pool, ResNet-D shortcut, SE 1/4 "
                              "(Bello et al. 2021)"),
     timm_resnet("resnetrs50", "bottleneck", R50, "deep", avg_down=True, attention="se", se_ratio=0.25, pool="conv")),
    ("convnext_tiny", "convnext", N_("ConvNeXt-T: 3-3-9-3 blocks, 96-768 channels (Liu et al. 2022)"),
     convnext("convnext_tiny", (3, 3, 9, 3), 96)),
    ("convnext_small", "convnext", N_("ConvNeXt-S: 3-3-27-3 blocks, 96-768 channels"),
     convnext("convnext_small", (3, 3, 27, 3), 96)),
    ("convnext_base", "convnext", N_("ConvNeXt-B: 3-3-27-3 blocks, 128-1024 channels"),
     convnext("convnext_base", (3, 3, 27, 3), 128)),
]
