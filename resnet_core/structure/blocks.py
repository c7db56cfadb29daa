# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False
"""The network's torch modules: norms, activations, SE/ECA, shortcuts, the residual blocks and one generic
network class, torchvision-style and deliberately self-contained: they use only torch, so `codegen.py` can
copy their source verbatim into a standalone file. Every number they use comes from the plan, passed in as
a plain-data blueprint (`build.blueprint(plan)`), never recomputed here.

The module classes are copied verbatim into generated, torch-only source, which stays free of typing
imports: mypy checks their bodies, not their signatures (the line above; as mypy.ini does for build.py).
"""

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels at each position of a (B, C, H, W) map (torchvision's ConvNeXt stem and
    downsampling layers)."""

    def forward(self, x):  # (B, C, H, W)
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Permute(nn.Module):
    """Reorders the axes: (B, C, H, W) → (B, H, W, C) for a ConvNeXt block's LayerNorm and Linear layers, and back."""

    def __init__(self, dims):
        super().__init__()
        self.dims = list(dims)

    def forward(self, x):
        return torch.permute(x, self.dims)


def make_norm(channels, norm, eps, momentum):
    """The norm after a conv on a (B, C, H, W) map: batch norm, LayerNorm over the channels (ConvNeXt's eps 1e-6),
    or an identity when the network has no normalisation."""
    if norm == "batch":
        return nn.BatchNorm2d(channels, eps=eps, momentum=momentum)
    if norm == "layer":
        return LayerNorm2d(channels, eps=1e-6)
    return nn.Identity()


def make_act(activation):
    """The activation module, by the spec's name or the plan's type. torchvision calls it `relu` and reuses one
    instance per block.

    Never in place (unlike torchvision): a pre-activation block without norm would overwrite the x its
    identity shortcut adds back, and hooks that keep a layer's output would see it change.
    """
    if activation in ("relu", "ReLU"):
        return nn.ReLU()
    if activation in ("leaky_relu", "LeakyReLU"):
        return nn.LeakyReLU(0.01)
    if activation in ("gelu", "GELU"):
        return nn.GELU()
    if activation in ("silu", "SiLU"):
        return nn.SiLU()
    if activation == "Sigmoid":
        return nn.Sigmoid()
    raise ValueError(f"unknown activation {activation!r}")


def act_name(activation):
    return "relu" if activation == "relu" else "act"


class Add(nn.Module):
    """The residual addition F(x) + x, as a module so that hooks see both operands."""

    def forward(self, fx, x):
        return fx + x


class Mul(nn.Module):
    """x scaled by a gate (SE, ECA), as a module so that hooks see both operands."""

    def forward(self, x, gate):
        return x * gate


class SqueezeExcite(nn.Module):
    """Hu et al. 2018: global pool → 1×1 conv down → ReLU → 1×1 conv up → sigmoid, a per-channel scale on x
    (timm's SEModule keys: fc1, fc2)."""

    def __init__(self, channels, width):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, width, 1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(width, channels, 1)
        self.gate = nn.Sigmoid()
        self.scale = Mul()

    def forward(self, x):  # (B, C, H, W)
        s = self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))  # (B, C, 1, 1)
        return self.scale(x, s)


class EfficientChannelAttention(nn.Module):
    """Wang et al. 2020 (ECA): global pool → 1-D conv of `kernel` across the channels → sigmoid, a per-channel
    scale on x (timm's EcaModule key: conv)."""

    def __init__(self, kernel):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, kernel, padding=(kernel - 1) // 2, bias=False)
        self.gate = nn.Sigmoid()
        self.scale = Mul()

    def forward(self, x):  # (B, C, H, W)
        b, c = x.shape[:2]
        y = self.gate(self.conv(self.pool(x).view(b, 1, c)))  # (B, 1, C)
        return self.scale(x, y.view(b, c, 1, 1))


def make_attention(attention, channels):
    if attention is None:
        return None
    if attention["kind"] == "se":
        return SqueezeExcite(channels, attention["width"])
    return EfficientChannelAttention(attention["kernel"])


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
    """`downsample` in torchvision's naming: a 1×1 projection, ResNet-D's average pool then 1×1 conv (timm's
    downsample.0-2), option A's padding, or nothing."""
    if shortcut in ("projection", "avg_projection"):
        conv = nn.Conv2d(in_channels, out_channels, 1, stride if shortcut == "projection" else 1, bias=norm != "batch")
        layers = [conv] if norm == "none" else [conv, make_norm(out_channels, norm, eps, momentum)]
        if shortcut == "avg_projection":
            pool = nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
            layers.insert(0, pool)
        return nn.Sequential(*layers)
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
                 norm="batch", activation="relu", bn_eps=1e-5, bn_momentum=0.1, kernel=3, attention=None):
        super().__init__()
        bias = norm != "batch"
        self.conv1 = nn.Conv2d(in_channels, width, kernel, stride, kernel // 2, groups=groups, bias=bias)
        self.bn1 = make_norm(width, norm, bn_eps, bn_momentum)
        self.conv2 = nn.Conv2d(width, out_channels, kernel, 1, kernel // 2, groups=groups, bias=bias)
        self.bn2 = make_norm(out_channels, norm, bn_eps, bn_momentum)
        self.se = make_attention(attention, out_channels)  # timm's place: on F(x), before the addition
        self._shortcut(shortcut, in_channels, out_channels, stride, norm, bn_eps, bn_momentum, activation)

    def last_layer(self):
        return self.bn2 if isinstance(self.bn2, nn.BatchNorm2d) else self.conv2

    def forward(self, x):  # (B, C_in, H, W)
        act = getattr(self, self.act_name)
        out = act(self.bn1(self.conv1(x)))  # (B, width, H/s, W/s)
        out = self.bn2(self.conv2(out))  # (B, C_out, H/s, W/s): F(x)
        if self.se is not None:
            out = self.se(out)
        return act(self.residual(out, x))


class Bottleneck(ResidualBlock):
    """1×1 reduce, 3×3 (grouped), 1×1 expand; out = act(F(x) + shortcut(x)).

    The stride sits on the 3×3 (torchvision's "v1.5"), or on the first 1×1 with stride_in_1x1 (the paper's v1).
    """

    def __init__(self, in_channels, width, out_channels, stride=1, groups=1, shortcut="identity",
                 norm="batch", activation="relu", bn_eps=1e-5, bn_momentum=0.1, stride_in_1x1=False, kernel=3,
                 attention=None):
        super().__init__()
        bias = norm != "batch"
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(in_channels, width, 1, s1, bias=bias)
        self.bn1 = make_norm(width, norm, bn_eps, bn_momentum)
        self.conv2 = nn.Conv2d(width, width, kernel, s3, kernel // 2, groups=groups, bias=bias)
        self.bn2 = make_norm(width, norm, bn_eps, bn_momentum)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=bias)
        self.bn3 = make_norm(out_channels, norm, bn_eps, bn_momentum)
        self.se = make_attention(attention, out_channels)  # timm's place: on F(x), before the addition
        self._shortcut(shortcut, in_channels, out_channels, stride, norm, bn_eps, bn_momentum, activation)

    def last_layer(self):
        return self.bn3 if isinstance(self.bn3, nn.BatchNorm2d) else self.conv3

    def forward(self, x):  # (B, C_in, H, W)
        act = getattr(self, self.act_name)
        out = act(self.bn1(self.conv1(x)))  # (B, width, H, W)
        out = act(self.bn2(self.conv2(out)))  # (B, width, H/s, W/s)
        out = self.bn3(self.conv3(out))  # (B, C_out, H/s, W/s): F(x)
        if self.se is not None:
            out = self.se(out)
        return act(self.residual(out, x))


class PreActBasicBlock(ResidualBlock):
    """He et al. 2016: norm → act → conv, twice; out = F(x) + shortcut(x), no activation after the add."""

    def __init__(self, in_channels, width, out_channels, stride=1, groups=1, shortcut="identity",
                 norm="batch", activation="relu", bn_eps=1e-5, bn_momentum=0.1, kernel=3, attention=None):
        super().__init__()
        bias = norm != "batch"
        self.bn1 = make_norm(in_channels, norm, bn_eps, bn_momentum)
        self.conv1 = nn.Conv2d(in_channels, width, kernel, stride, kernel // 2, groups=groups, bias=bias)
        self.bn2 = make_norm(width, norm, bn_eps, bn_momentum)
        self.conv2 = nn.Conv2d(width, out_channels, kernel, 1, kernel // 2, groups=groups, bias=bias)
        self.se = make_attention(attention, out_channels)  # timm's place: on F(x), before the addition
        self._shortcut(shortcut, in_channels, out_channels, stride, norm, bn_eps, bn_momentum, activation)

    def last_layer(self):
        return self.conv2

    def forward(self, x):  # (B, C_in, H, W)
        act = getattr(self, self.act_name)
        pre = act(self.bn1(x))
        out = self.conv1(pre)  # (B, width, H/s, W/s)
        out = self.conv2(act(self.bn2(out)))  # (B, C_out, H/s, W/s): F(x)
        if self.se is not None:
            out = self.se(out)
        return self.residual(out, x, pre)


class PreActBottleneck(ResidualBlock):
    """He et al. 2016 bottleneck: (norm → act → conv) × 3 with 1×1, 3×3 (grouped), 1×1."""

    def __init__(self, in_channels, width, out_channels, stride=1, groups=1, shortcut="identity",
                 norm="batch", activation="relu", bn_eps=1e-5, bn_momentum=0.1, stride_in_1x1=False, kernel=3,
                 attention=None):
        super().__init__()
        bias = norm != "batch"
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.bn1 = make_norm(in_channels, norm, bn_eps, bn_momentum)
        self.conv1 = nn.Conv2d(in_channels, width, 1, s1, bias=bias)
        self.bn2 = make_norm(width, norm, bn_eps, bn_momentum)
        self.conv2 = nn.Conv2d(width, width, kernel, s3, kernel // 2, groups=groups, bias=bias)
        self.bn3 = make_norm(width, norm, bn_eps, bn_momentum)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=bias)
        self.se = make_attention(attention, out_channels)  # timm's place: on F(x), before the addition
        self._shortcut(shortcut, in_channels, out_channels, stride, norm, bn_eps, bn_momentum, activation)

    def last_layer(self):
        return self.conv3

    def forward(self, x):  # (B, C_in, H, W)
        act = getattr(self, self.act_name)
        pre = act(self.bn1(x))
        out = self.conv1(pre)  # (B, width, H/s1, W/s1)
        out = self.conv2(act(self.bn2(out)))  # (B, width, H/s, W/s)
        out = self.conv3(act(self.bn3(out)))  # (B, C_out, H/s, W/s): F(x)
        if self.se is not None:
            out = self.se(out)
        return self.residual(out, x, pre)


class ConvNeXtBlock(ResidualBlock):
    """Liu et al. 2022: depthwise k×k → norm → 1×1 expand → act → 1×1 reduce, × layer scale; out = F(x) + x.

    `block` holds the layers in call order (torchvision's CNBlock keys: block.0 … block.6, layer_scale). With
    LayerNorm the 1×1s are Linear layers on channels-last maps between two Permutes; with every norm and
    activation (the roadmap's earlier steps) each conv is followed by a norm and an activation, and so is the addition.
    """

    def __init__(self, in_channels, width, out_channels, stride=1, groups=1, shortcut="identity", norm="layer",
                 activation="gelu", bn_eps=1e-5, bn_momentum=0.1, kernel=7, layer_scale=0.0, block_norms="one",
                 block_activations="one"):
        super().__init__()
        every_norm, every_act, cl = block_norms == "every", block_activations == "every", norm == "layer"
        bias = norm != "batch"

        def normed(c):
            return nn.LayerNorm(c, eps=1e-6) if cl else make_norm(c, norm, bn_eps, bn_momentum)

        def pointwise(c_in, c_out):
            return nn.Linear(c_in, c_out) if cl else nn.Conv2d(c_in, c_out, 1, bias=bias)

        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, in_channels, kernel, stride, kernel // 2, groups=in_channels, bias=bias)]
        layers += [Permute([0, 2, 3, 1])] if cl else []
        layers += [normed(in_channels)] + ([make_act(activation)] if every_act else [])
        layers += [pointwise(in_channels, width)] + ([normed(width)] if every_norm else []) + [make_act(activation)]
        layers += [pointwise(width, out_channels)] + ([normed(out_channels)] if every_norm else [])
        layers += [Permute([0, 3, 1, 2])] if cl else []
        self.block = nn.Sequential(*[m for m in layers if not isinstance(m, nn.Identity)])
        self.layer_scale_init = layer_scale
        if layer_scale > 0:
            self.layer_scale = nn.Parameter(torch.full((out_channels, 1, 1), float(layer_scale)))
            self.scale = Mul()  # F(x) × γ, as a module so that hooks see it
        self.post_act = every_act  # the ResNet way: an activation after the addition
        self._shortcut(shortcut, in_channels, out_channels, stride, norm, bn_eps, bn_momentum, activation)

    def reset_parameters(self):
        if self.layer_scale_init > 0:
            nn.init.constant_(self.layer_scale, self.layer_scale_init)

    def last_layer(self):
        return [m for m in self.block if getattr(m, "weight", None) is not None][-1]

    def forward(self, x):  # (B, C_in, H, W)
        out = self.block(x)  # (B, C_out, H/s, W/s): F(x)
        if self.layer_scale_init > 0:
            out = self.scale(out, self.layer_scale)
        out = self.residual(out, x)
        return getattr(self, self.act_name)(out) if self.post_act else out


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck,
          "preact_basic": PreActBasicBlock, "preact_bottleneck": PreActBottleneck, "convnext": ConvNeXtBlock}


def make_layer(d, norm, eps, momentum, activation):
    """One stem, downsampling or head layer from its plain-data description (`blueprint`)."""
    op = d["op"]
    if op == "conv":
        c_in, c_out, k, s, p, groups, bias = d["args"]
        return nn.Conv2d(c_in, c_out, k, s, p, groups=groups, bias=bias)
    if op == "norm":
        return make_norm(d["channels"], norm, eps, momentum)
    if op == "act":
        return make_act(activation)
    if op in ("maxpool", "avgpool"):
        k, s, p = d["args"]
        return nn.MaxPool2d(k, s, p) if op == "maxpool" else nn.AvgPool2d(k, s, p)
    if op == "gap":
        return nn.AdaptiveAvgPool2d(1)
    if op == "flatten":
        return nn.Flatten(1)
    if op == "linear":
        return nn.Linear(*d["args"])
    raise ValueError(f"unknown layer {op!r}")


def place(root, name, module):
    """Put `module` at the dotted `name` under `root`, making nn.Sequential containers on the way; a name
    already there (the activation a network reuses) is kept. Returns the module at `name`."""
    *parents, leaf = name.split(".")
    parent = root
    for part in parents:
        if not hasattr(parent, part):
            parent.add_module(part, nn.Sequential())
        parent = getattr(parent, part)
    if not hasattr(parent, leaf):
        parent.add_module(leaf, module)
    return getattr(parent, leaf)


class ResNet(nn.Module):
    """Stem → stages (layer1, layer2, …; or ConvNeXt's features.N with downsampling layers between them)
    → [final norm → act] → global average pool → [norm] → flatten → fc. The stem, downsampling and head layers
    come from the blueprint in the order they are called."""

    def __init__(self, blueprint):
        super().__init__()
        bp = blueprint
        norm, eps, mom, activation = bp["norm"], bp["bn_eps"], bp["bn_momentum"], bp["activation"]
        self.act_name = act_name(activation)

        def layers(ds):
            for d in ds:
                place(self, d["name"], make_layer(d, norm, eps, mom, activation))
            return [d["name"] for d in ds]

        self.stem_calls = layers(bp["stem"])
        self.stage_names = []
        self.stage_calls = []
        for stage in bp["stages"]:
            calls = layers(stage["downsampling"])
            blocks = []
            for count, cfg in stage["runs"]:  # runs of identical blocks: [[1, first], [n - 1, rest]]
                cfg = dict(cfg)
                block = BLOCKS[cfg.pop("kind")]
                blocks += [block(**cfg, norm=norm, activation=activation, bn_eps=eps, bn_momentum=mom)
                           for _ in range(count)]
            place(self, stage["name"], nn.Sequential(*blocks))
            self.stage_names.append(stage["name"])
            self.stage_calls.append(calls + [stage["name"]])
        self.head_calls = layers(bp["head"])

    def forward(self, x):  # (B, C, H, W)
        for name in self.stem_calls:  # (B, stem, H/4, W/4) for the ImageNet stem
            x = self.get_submodule(name)(x)
        for calls in self.stage_calls:
            for name in calls:
                x = self.get_submodule(name)(x)
        for name in self.head_calls:  # → (B, features) → (B, num_classes)
            x = self.get_submodule(name)(x)
        return x


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
