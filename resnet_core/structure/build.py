"""plan → torch.nn.Module, with torchvision's module names and state_dict keys.

The modules below are torchvision-style (small helpers, blocks with their own forward, one generic
network class) and deliberately self-contained: they use only torch, so `codegen.py` can copy
their source verbatim into a standalone file. Every number they use comes from the plan, passed in
as a plain-data *blueprint* (`blueprint(plan)`), never recomputed here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from resnet_core.errors import ExplorerError
from resnet_core.structure.plan import plan as make_plan
from resnet_core.structure.records import Plan
from resnet_core.structure.spec import ArchSpec

# ------------------------------------------------------------------ standalone part (codegen copies it)

def make_norm(channels, norm, eps, momentum):
    """Batch norm after a conv, or an identity when the network has no normalisation."""
    if norm == "batch":
        return nn.BatchNorm2d(channels, eps=eps, momentum=momentum)
    return nn.Identity()


def make_act(activation):
    """The activation module. torchvision calls it `relu` and reuses one instance per block.

    Never in place (unlike torchvision): a pre-activation block without norm would overwrite the x its
    identity shortcut adds back, and hooks that keep a layer's output would see it change.
    """
    if activation == "relu":
        return nn.ReLU()
    if activation == "leaky_relu":
        return nn.LeakyReLU(0.01)
    if activation == "gelu":
        return nn.GELU()
    if activation == "silu":
        return nn.SiLU()
    raise ValueError(f"unknown activation {activation!r}")


def act_name(activation):
    return "relu" if activation == "relu" else "act"


class Add(nn.Module):
    """The residual addition F(x) + x, as a module so that hooks see both operands."""

    def forward(self, fx, x):
        return fx + x


class PadShortcut(nn.Module):
    """Option A: x subsampled by `stride`, then zero channels appended. No parameters."""

    def __init__(self, out_channels, stride):
        super().__init__()
        self.out_channels = out_channels
        self.stride = stride

    def forward(self, x):  # (B, C_in, H, W) -> (B, C_out, ceil(H/s), ceil(W/s))
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.out_channels - x.shape[1]))

    def extra_repr(self):
        return f"out_channels={self.out_channels}, stride={self.stride}"


def make_shortcut(shortcut, in_channels, out_channels, stride, norm, eps, momentum):
    """`downsample` in torchvision's naming: a 1×1 projection, option A's padding, or nothing."""
    if shortcut == "projection":
        conv = nn.Conv2d(in_channels, out_channels, 1, stride, bias=norm != "batch")
        if norm == "batch":
            return nn.Sequential(conv, nn.BatchNorm2d(out_channels, eps=eps, momentum=momentum))
        return nn.Sequential(conv)
    if shortcut == "pad":
        return PadShortcut(out_channels, stride)
    return None


class ResidualBlock(nn.Module):
    """What every block shares: its activation, its shortcut (`downsample`) and the addition."""

    def _shortcut(self, shortcut, in_channels, out_channels, stride, norm, bn_eps, bn_momentum, activation):
        self.act_name = act_name(activation)
        self.add_module(self.act_name, make_act(activation))
        self.downsample = make_shortcut(shortcut, in_channels, out_channels, stride, norm, bn_eps, bn_momentum)
        self.add = Add() if shortcut != "none" else None
        self.skip = shortcut != "none"  # set False to run the plain block on the same weights
        self.project_preact = shortcut == "projection"  # pre-activation: a projection sees the activated input

    def residual(self, fx, x, pre=None):
        """F(x) + shortcut(x), or F(x) alone when the skip is off."""
        if not self.skip or self.add is None:
            return fx
        if self.downsample is None:
            return self.add(fx, x)
        return self.add(fx, self.downsample(pre if pre is not None and self.project_preact else x))


class BasicBlock(ResidualBlock):
    """Two 3×3 convs; out = act(F(x) + shortcut(x))."""

    def __init__(self, in_channels, width, out_channels, stride=1, groups=1, shortcut="identity",
                 norm="batch", activation="relu", bn_eps=1e-5, bn_momentum=0.1):
        super().__init__()
        bias = norm != "batch"
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride, 1, groups=groups, bias=bias)
        self.bn1 = make_norm(width, norm, bn_eps, bn_momentum)
        self.conv2 = nn.Conv2d(width, out_channels, 3, 1, 1, groups=groups, bias=bias)
        self.bn2 = make_norm(out_channels, norm, bn_eps, bn_momentum)
        self._shortcut(shortcut, in_channels, out_channels, stride, norm, bn_eps, bn_momentum, activation)

    def last_layer(self):
        return self.bn2 if isinstance(self.bn2, nn.BatchNorm2d) else self.conv2

    def forward(self, x):  # (B, C_in, H, W)
        act = getattr(self, self.act_name)
        out = act(self.bn1(self.conv1(x)))  # (B, width, H/s, W/s)
        out = self.bn2(self.conv2(out))  # (B, C_out, H/s, W/s): F(x)
        return act(self.residual(out, x))


class Bottleneck(ResidualBlock):
    """1×1 reduce, 3×3 (grouped), 1×1 expand; out = act(F(x) + shortcut(x)).

    The stride sits on the 3×3 (torchvision's "v1.5"), or on the first 1×1 with stride_in_1x1 (the paper's v1).
    """

    def __init__(self, in_channels, width, out_channels, stride=1, groups=1, shortcut="identity",
                 norm="batch", activation="relu", bn_eps=1e-5, bn_momentum=0.1, stride_in_1x1=False):
        super().__init__()
        bias = norm != "batch"
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(in_channels, width, 1, s1, bias=bias)
        self.bn1 = make_norm(width, norm, bn_eps, bn_momentum)
        self.conv2 = nn.Conv2d(width, width, 3, s3, 1, groups=groups, bias=bias)
        self.bn2 = make_norm(width, norm, bn_eps, bn_momentum)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=bias)
        self.bn3 = make_norm(out_channels, norm, bn_eps, bn_momentum)
        self._shortcut(shortcut, in_channels, out_channels, stride, norm, bn_eps, bn_momentum, activation)

    def last_layer(self):
        return self.bn3 if isinstance(self.bn3, nn.BatchNorm2d) else self.conv3

    def forward(self, x):  # (B, C_in, H, W)
        act = getattr(self, self.act_name)
        out = act(self.bn1(self.conv1(x)))  # (B, width, H, W)
        out = act(self.bn2(self.conv2(out)))  # (B, width, H/s, W/s)
        out = self.bn3(self.conv3(out))  # (B, C_out, H/s, W/s): F(x)
        return act(self.residual(out, x))


class PreActBasicBlock(ResidualBlock):
    """He et al. 2016: norm → act → conv, twice; out = F(x) + shortcut(x), no activation after the add."""

    def __init__(self, in_channels, width, out_channels, stride=1, groups=1, shortcut="identity",
                 norm="batch", activation="relu", bn_eps=1e-5, bn_momentum=0.1):
        super().__init__()
        bias = norm != "batch"
        self.bn1 = make_norm(in_channels, norm, bn_eps, bn_momentum)
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride, 1, groups=groups, bias=bias)
        self.bn2 = make_norm(width, norm, bn_eps, bn_momentum)
        self.conv2 = nn.Conv2d(width, out_channels, 3, 1, 1, groups=groups, bias=bias)
        self._shortcut(shortcut, in_channels, out_channels, stride, norm, bn_eps, bn_momentum, activation)

    def last_layer(self):
        return self.conv2

    def forward(self, x):  # (B, C_in, H, W)
        act = getattr(self, self.act_name)
        pre = act(self.bn1(x))
        out = self.conv1(pre)  # (B, width, H/s, W/s)
        out = self.conv2(act(self.bn2(out)))  # (B, C_out, H/s, W/s): F(x)
        return self.residual(out, x, pre)


class PreActBottleneck(ResidualBlock):
    """He et al. 2016 bottleneck: (norm → act → conv) × 3 with 1×1, 3×3 (grouped), 1×1."""

    def __init__(self, in_channels, width, out_channels, stride=1, groups=1, shortcut="identity",
                 norm="batch", activation="relu", bn_eps=1e-5, bn_momentum=0.1, stride_in_1x1=False):
        super().__init__()
        bias = norm != "batch"
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.bn1 = make_norm(in_channels, norm, bn_eps, bn_momentum)
        self.conv1 = nn.Conv2d(in_channels, width, 1, s1, bias=bias)
        self.bn2 = make_norm(width, norm, bn_eps, bn_momentum)
        self.conv2 = nn.Conv2d(width, width, 3, s3, 1, groups=groups, bias=bias)
        self.bn3 = make_norm(width, norm, bn_eps, bn_momentum)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=bias)
        self._shortcut(shortcut, in_channels, out_channels, stride, norm, bn_eps, bn_momentum, activation)

    def last_layer(self):
        return self.conv3

    def forward(self, x):  # (B, C_in, H, W)
        act = getattr(self, self.act_name)
        pre = act(self.bn1(x))
        out = self.conv1(pre)  # (B, width, H/s1, W/s1)
        out = self.conv2(act(self.bn2(out)))  # (B, width, H/s, W/s)
        out = self.conv3(act(self.bn3(out)))  # (B, C_out, H/s, W/s): F(x)
        return self.residual(out, x, pre)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck,
          "preact_basic": PreActBasicBlock, "preact_bottleneck": PreActBottleneck}


class ResNet(nn.Module):
    """Stem → stages (layer1, layer2, …) → [final norm → act] → global average pool → flatten → fc."""

    def __init__(self, blueprint):
        super().__init__()
        bp = blueprint
        norm, eps, mom = bp["norm"], bp["bn_eps"], bp["bn_momentum"]
        stem = bp["stem"]
        self.conv1 = nn.Conv2d(bp["in_channels"], stem["channels"], stem["kernel"], stem["stride"],
                               stem["padding"], bias=norm != "batch")
        self.bn1 = make_norm(stem["channels"], norm, eps, mom)
        self.act_name = act_name(bp["activation"])
        self.add_module(self.act_name, make_act(bp["activation"]))
        self.pool_name = {"max": "maxpool", "avg": "pool"}.get(stem["pool"])
        if stem["pool"] == "max":
            self.maxpool = nn.MaxPool2d(stem["pool_kernel"], stem["pool_stride"], stem["pool_padding"])
        elif stem["pool"] == "avg":
            self.pool = nn.AvgPool2d(stem["pool_kernel"], stem["pool_stride"], stem["pool_padding"])
        self.stage_names = []
        for i, runs in enumerate(bp["stages"]):
            blocks = []
            for count, cfg in runs:  # runs of identical blocks: [[1, first], [n - 1, rest]]
                cfg = dict(cfg)
                block = BLOCKS[cfg.pop("kind")]
                blocks += [block(**cfg, norm=norm, activation=bp["activation"], bn_eps=eps, bn_momentum=mom)
                           for _ in range(count)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.stage_names.append(f"layer{i + 1}")
        if bp["final_norm"]:  # pre-activation nets normalise once more before pooling
            self.final_bn = make_norm(bp["features"], norm, eps, mom)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(bp["features"], bp["num_classes"])

    def forward(self, x):  # (B, C, H, W)
        act = getattr(self, self.act_name)
        x = act(self.bn1(self.conv1(x)))  # (B, stem, H/2, W/2) for the ImageNet stem
        if self.pool_name:
            x = getattr(self, self.pool_name)(x)  # (B, stem, H/4, W/4)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        if hasattr(self, "final_bn"):
            x = act(self.final_bn(x))
        x = self.flatten(self.avgpool(x))  # (B, features)
        return self.fc(x)  # (B, num_classes)


def init_weights(model, scheme="kaiming_fan_out", zero_init_residual=False):
    """Give every parameter and buffer its initial value, once: convs by `scheme` (PyTorch's own init for
    "pytorch_default"), norms to γ=1, β=0 with fresh running statistics, the classifier by PyTorch's default;
    optionally zero each branch's last layer. The model may hold uninitialised memory (built on the meta
    device, then `to_empty`): nothing is left unset."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and scheme != "pytorch_default":
            if scheme == "kaiming_fan_out":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif scheme == "kaiming_fan_in":
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif scheme == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                raise ValueError(f"unknown initialisation {scheme!r}")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif hasattr(m, "reset_parameters"):  # BatchNorm2d (γ=1, β=0, running stats), Linear, default convs
            m.reset_parameters()
        elif any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False)):
            raise TypeError(f"init_weights cannot initialise {type(m).__name__}")
    if zero_init_residual:  # Goyal et al.: each residual branch starts as the zero function
        for m in model.modules():
            if hasattr(m, "last_layer"):
                nn.init.zeros_(m.last_layer().weight)
    return model


def new_model(blueprint, scheme="kaiming_fan_out", zero_init_residual=False):
    """The network of `blueprint`, initialised by `scheme`. Made on the meta device and then given memory,
    so that each weight is drawn once (PyTorch's layers would otherwise draw their default init first)."""
    with torch.device("meta"):
        model = ResNet(blueprint)
    return init_weights(model.to_empty(device="cpu"), scheme, zero_init_residual)


# ------------------------------------------------------------------ end of the standalone part

STANDALONE: list[str | type | Callable[..., Any]] = [make_norm, make_act, act_name, Add, PadShortcut, make_shortcut, ResidualBlock, BasicBlock, Bottleneck,
              PreActBasicBlock, PreActBottleneck, "BLOCKS", ResNet, init_weights, new_model]


_SEEDED_BUILD = threading.Lock()


class BuildError(ExplorerError):
    """A spec whose plan has errors cannot be built; the message lists the located errors."""

    def __init__(self, plan: Plan):
        self.plan = plan
        super().__init__("cannot build this network:\n" + "\n".join(f"  {e}" for e in plan.errors))


def blueprint(plan: Plan) -> dict:
    """The plain data the modules are built from, read off the plan."""
    if plan.errors:
        raise BuildError(plan)
    spec = plan.spec
    stem = spec.stem.resolved()
    stages = []
    for sp in plan.stages:
        runs: list[list] = []
        for b in sp.blocks:
            cfg = dict(kind=b.kind, in_channels=b.in_channels, width=b.inner_width, out_channels=b.out_channels,
                       stride=b.stride, groups=b.groups, shortcut=b.shortcut)
            if b.kind.endswith("bottleneck") and spec.stride_in_1x1:
                cfg["stride_in_1x1"] = True
            if runs and runs[-1][1] == cfg:
                runs[-1][0] += 1
            else:
                runs.append([1, cfg])
        stages.append(runs)
    fc = plan.layers[-1]
    return {
        "in_channels": plan.input_shape[0],
        "stem": {k: stem[k] for k in ("channels", "kernel", "stride", "padding", "pool", "pool_kernel",
                                      "pool_stride", "pool_padding")},
        "norm": spec.norm, "bn_eps": spec.bn_eps, "bn_momentum": spec.bn_momentum,
        "activation": spec.activation,
        "stages": stages,
        "final_norm": plan.final_norm,
        "features": fc.in_shape[0],
        "num_classes": spec.num_classes,
    }


def build_model(spec: ArchSpec | Plan, seed: int | None = None) -> ResNet:
    """Build the module for `spec` (or an already made plan), initialised by the spec's scheme.

    With `seed`, the weights depend on the seed alone (the global RNG is left as it was).
    Raises BuildError (a ValueError) listing the located errors when the plan has any.
    """
    p = spec if isinstance(spec, Plan) else make_plan(spec)
    bp = blueprint(p)

    def make() -> ResNet:
        return new_model(bp, p.spec.init, p.spec.zero_init_residual)

    if seed is None:
        return make()
    # the seed goes through torch's global RNG (modules initialise from it): builds take turns, so that
    # two sessions building at once each get exactly their seed's weights
    with _SEEDED_BUILD, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def set_skip(model: nn.Module, enabled: bool) -> list[ResidualBlock]:
    """Switch every residual block's shortcut on or off in place; returns the blocks changed.

    With `enabled=False` the blocks run as the plain net on the same main-path weights.
    """
    changed: list[ResidualBlock] = []
    for m in model.modules():
        if isinstance(m, ResidualBlock) and m.add is not None and m.skip != enabled:
            m.skip = enabled
            changed.append(m)
    return changed
