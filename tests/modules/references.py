"""Third-party model code as test references: torchvision's classification models and timm's ResNets.

Neither is a run-time dependency. Both install with `pip install --no-deps` (scripts/setup.sh dev);
torchvision's compiled ops do not match this CPU torch, so its two registration modules are stubbed as
empty modules before it (or timm, which imports it) is imported. Nothing is downloaded: every model is
built with random weights.
"""

from __future__ import annotations

import sys
import types

for _name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
    sys.modules.setdefault(_name, types.ModuleType(_name))

import timm  # noqa: E402
import torch  # noqa: E402
import torchvision.models as tvm  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

TIMM_FAMILY = sorted(set(timm.list_models(["resnet*", "seresnet*", "ecaresnet*", "resnetrs*", "resnetv2*",
                                           "resnext*", "wide_resnet*"])))
TORCHVISION_CLASSIFICATION = sorted(tvm.list_models(module=tvm))


def input_size(name: str) -> int:
    return 299 if "inception" in name else 224


def builder(source: str, name: str):
    if source == "timm":
        return lambda: timm.create_model(name, pretrained=False)
    return tvm.get_model_builder(name)


def on_meta(build) -> nn.Module:
    """The model built on the meta device (or built for real and moved there, when its builder computes
    with tensors, as torchvision's RegNets do)."""
    try:
        with torch.device("meta"):
            return build().eval()
    except NotImplementedError:
        return build().to("meta").eval()


def flop_counter_mult_adds(model: nn.Module, size: int) -> tuple[int, tuple[int, ...]]:
    """PyTorch's own count: FlopCounterMode's FLOPs / 2 over one forward, and the output shape."""
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(torch.empty(1, 3, size, size, device="meta"))
    return counter.get_total_flops() // 2, tuple(out.shape[1:])


def residual_blocks(model: nn.Module) -> int:
    """How many residual additions the model makes, read from its own block classes and their flags."""
    if hasattr(model, "layer1") and hasattr(model, "layer4"):  # torchvision's and timm's ResNet
        return sum(len(getattr(model, f"layer{i}")) for i in range(1, 5))
    if type(model).__module__.startswith("timm.models.resnetv2"):
        return sum(len(getattr(s, "blocks", s)) for s in model.stages)
    n = 0
    for m in model.modules():
        cls = type(m).__name__
        if type(m).__module__ == "timm.models.byobnet" and cls.endswith("Block"):
            n += int(getattr(m, "shortcut", None) is not None)  # `if self.shortcut is not None: x = x + ...`
            continue
        if cls in ("CNBlock", "ResBottleneckBlock"):
            n += 1
        elif cls in ("EncoderBlock", "SwinTransformerBlock", "SwinTransformerBlockV2", "PartitionAttentionLayer"):
            n += 2  # attention and MLP, each added to its input
        elif cls == "MBConv":  # maxvit's always adds (a projection where shapes change); EfficientNet's when asked
            n += int(getattr(m, "use_res_connect", True))
        elif cls in ("FusedMBConv", "InvertedResidual"):  # ShuffleNet's InvertedResidual concatenates: no flag
            n += int(getattr(m, "use_res_connect", False))
        elif cls == "_InvertedResidual":
            n += int(m.apply_residual)
    return n


def unused_params(model: nn.Module, size: int) -> int:
    """Parameters no torch function receives during an eval forward (GoogLeNet's and Inception's auxiliary
    classifiers), found by watching every torch call's arguments on the reference model itself."""
    from torch.overrides import TorchFunctionMode

    seen: set[int] = set()

    class Watch(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            for a in (*args, *(kwargs or {}).values()):
                for t in (a if isinstance(a, (list, tuple)) else (a,)):
                    if isinstance(t, nn.Parameter):
                        seen.add(id(t))
            return func(*args, **(kwargs or {}))

    with Watch():
        model(torch.empty(1, 3, size, size, device="meta"))
    return sum(p.numel() for p in model.parameters() if id(p) not in seen)
