"""The planner's residual blocks: their main path, channel attention (SE, ECA), shortcut and addition, and
ConvNeXt's separate downsampling layers. Each block is planned in the order its module calls its layers.
"""

from __future__ import annotations

import math

from resnet_core.i18n import N_, _, language
from resnet_core.structure.plan_layers import LayerEmitter
from resnet_core.structure.records import BlockPlan, BlockShortcut, PlanProblem, Shape, conv_out, shape_str
from resnet_core.structure.spec import Stage


def inner_width(stage: Stage) -> int:
    """torchvision's branch width int(planes · width_per_group / 64) · groups, in exact integer arithmetic
    (a depthwise stage: int(planes · width_per_group / 64), one group per channel)."""
    return (stage.width * stage.width_per_group // 64) * (1 if stage.depthwise else stage.groups)


def se_width(channels: int, ratio: float) -> int:
    """SE's squeeze width: channels × ratio rounded to a multiple of 8, at least 8 (timm's make_divisible)."""
    return max(8, int(channels * ratio + 4) // 8 * 8)


def eca_kernel(channels: int, kernel: int) -> int:
    """ECA's 1-D kernel: `kernel`, or when 0 Wang et al.'s rule: the odd number nearest |log2(C) + 1| / 2, ≥ 3."""
    if kernel:
        return kernel
    t = int(abs(math.log(channels, 2) + 1) / 2)
    return max(t if t % 2 else t + 1, 3)


class BlockEmitter(LayerEmitter):
    def block_plan(self, i: int, j: int, st: Stage, x: Shape, name: str) -> BlockPlan:
        spec = self.spec
        stride = st.stride if j == 0 and spec.downsampling != "separate" else 1
        c_in = x[0]
        c_out = st.width if st.block == "convnext" else st.width * st.expansion_or_default
        d = st.width * st.expansion_or_default if st.block == "convnext" else inner_width(st)
        changes = stride != 1 or c_in != c_out
        shortcut: BlockShortcut
        if not spec.skip:
            shortcut = "none"
        elif spec.shortcut == "C" or (spec.shortcut == "B" and changes):
            shortcut = "projection"
        elif spec.shortcut == "D" and changes:
            shortcut = "avg_projection"
        elif spec.shortcut == "A" and changes:
            shortcut = "pad"
        else:
            shortcut = "identity"
        return BlockPlan(stage=i, index=j, name=name, kind=st.block, in_shape=x, out_shape=None,
                         stride=stride, in_channels=c_in, inner_width=d, out_channels=c_out,
                         groups=d if st.depthwise and st.block != "convnext" else st.groups,
                         shortcut=shortcut, first=len(self.layers), kernel=st.kernel_or_default)

    def emit_block(self, b: BlockPlan) -> Shape:
        n = b.name
        x = b.in_shape
        g = b.groups
        s = b.stride
        k = b.kernel
        p = k // 2
        act = f"{n}.{self.act}"
        preact = b.kind.startswith("preact")
        sc_in = x  # what the shortcut sees
        if b.kind == "convnext":
            y = self.convnext_main(b)
        elif b.kind == "basic":
            y = self.conv(f"{n}.conv1", x, b.inner_width, k, s, p, "main", g)
            y = self.norm(f"{n}.bn1", y, "main")
            y = self.activation(act, y, "main")
            y = self.conv(f"{n}.conv2", y, b.out_channels, k, 1, p, "main", g)
            y = self.norm(f"{n}.bn2", y, "main")
        elif b.kind == "bottleneck":
            s1, s3 = (s, 1) if self.spec.stride_in_1x1 else (1, s)
            y = self.conv(f"{n}.conv1", x, b.inner_width, 1, s1, 0, "main")
            y = self.norm(f"{n}.bn1", y, "main")
            y = self.activation(act, y, "main")
            y = self.conv(f"{n}.conv2", y, b.inner_width, k, s3, p, "main", g)
            y = self.norm(f"{n}.bn2", y, "main")
            y = self.activation(act, y, "main")
            y = self.conv(f"{n}.conv3", y, b.out_channels, 1, 1, 0, "main")
            y = self.norm(f"{n}.bn3", y, "main")
        elif b.kind == "preact_basic":
            y = self.norm(f"{n}.bn1", x, "main")
            y = self.activation(act, y, "main")
            sc_in = y
            y = self.conv(f"{n}.conv1", y, b.inner_width, k, s, p, "main", g)
            y = self.norm(f"{n}.bn2", y, "main")
            y = self.activation(act, y, "main")
            y = self.conv(f"{n}.conv2", y, b.out_channels, k, 1, p, "main", g)
        else:  # preact_bottleneck
            y = self.norm(f"{n}.bn1", x, "main")
            y = self.activation(act, y, "main")
            sc_in = y
            s1, s3 = (s, 1) if self.spec.stride_in_1x1 else (1, s)
            y = self.conv(f"{n}.conv1", y, b.inner_width, 1, s1, 0, "main")
            y = self.norm(f"{n}.bn2", y, "main")
            y = self.activation(act, y, "main")
            y = self.conv(f"{n}.conv2", y, b.inner_width, k, s3, p, "main", g)
            y = self.norm(f"{n}.bn3", y, "main")
            y = self.activation(act, y, "main")
            y = self.conv(f"{n}.conv3", y, b.out_channels, 1, 1, 0, "main")
        if self.spec.attention != "none" and b.kind != "convnext":
            y = self.attention(f"{n}.se", y)

        if b.shortcut == "none":
            out = y
        else:
            if b.shortcut == "projection":
                sc = self.conv(f"{n}.downsample.0", sc_in, b.out_channels, 1, s, 0, "shortcut",
                               label="shortcut · 1×1 projection")
                sc = self.norm(f"{n}.downsample.1", sc, "shortcut")
            elif b.shortcut == "avg_projection":  # ResNet-D: average 2×2 (s×s) first, so no pixel is skipped
                sc = sc_in
                if s > 1:
                    sc = self.pool(f"{n}.downsample.0", sc, "avg", s, s, 0, "shortcut",
                                   where="shortcut · average pool", ceil=True)
                sc = self.conv(f"{n}.downsample.1", sc, b.out_channels, 1, 1, 0, "shortcut",
                               label="shortcut · 1×1 projection")
                sc = self.norm(f"{n}.downsample.2", sc, "shortcut")
            elif b.shortcut == "pad":
                sc = self.pad_shortcut(f"{n}.downsample", x, b.out_channels, s)
            else:
                sc = x
            if sc != y:
                self._add(name=f"{n}.add", op="add", type="Add", in_shape=y, out_shape=None, part="add",
                          other_shape=sc, failed=True)
                self.fail(self.mismatch(b, y, sc))
            self._add(name=f"{n}.add", op="add", type="Add", in_shape=y, out_shape=y, part="add", other_shape=sc)
            out = y
        if not preact and (b.kind != "convnext" or self.spec.block_activations == "every"):
            out = self.activation(act, out, "post")
        return out

    def convnext_main(self, b: BlockPlan) -> Shape:
        """Liu et al. 2022: depthwise k×k → norm → 1×1 expand → act → 1×1 reduce (→ layer scale). With every
        norm / activation (the roadmap's earlier steps) a norm follows each conv and an activation each norm
        and the addition. With LayerNorm the 1×1s are Linear layers on channels-last maps, as torchvision's."""
        n, spec = b.name, self.spec
        every_norm, every_act = spec.block_norms == "every", spec.block_activations == "every"
        cl = spec.norm == "layer"
        idx = iter(range(100))
        name = lambda: f"{n}.block.{next(idx)}"  # noqa: E731
        k = b.kernel
        y = self.conv(name(), b.in_shape, b.in_channels, k, b.stride, k // 2, "main", b.in_channels,
                      label=N_("depthwise conv"))
        if cl:
            y = self.permute(name(), y, to_last=True)

        def norm(y: Shape) -> Shape:  # no norm, no module: the numbering goes on without it (as the Sequential's)
            if self.norm_kind == "none":
                return y
            return self.norm_channels_last(name(), y, "main") if cl else self.norm(name(), y, "main")

        def pointwise(y: Shape, out: int) -> Shape:
            return self.linear(name(), y, out, "main") if cl else self.conv(name(), y, out, 1, 1, 0, "main")

        y = norm(y)
        if every_act:
            y = self.activation(name(), y, "main")
        y = pointwise(y, b.inner_width)
        if every_norm:
            y = norm(y)
        y = self.activation(name(), y, "main")
        y = pointwise(y, b.out_channels)
        if every_norm:
            y = norm(y)
        if cl:
            y = self.permute(name(), y, to_last=False)
        if spec.layer_scale > 0:
            # the multiply by the block's γ (its parameter `layer_scale`, torchvision's key) is the module `scale`
            self._add(name=f"{n}.scale", op="scale", type="LayerScale", in_shape=y, out_shape=y, part="main")
        return y

    def attention(self, name: str, x: Shape) -> Shape:
        """SE (Hu et al. 2018) or ECA (Wang et al. 2020) on the branch output, before the addition (timm's place)."""
        c, h, w = x
        self._add(name=f"{name}.pool", op="gap", type="AdaptiveAvgPool2d", in_shape=x, out_shape=(c, 1, 1),
                  part="attention", kernel=h)
        if self.spec.attention == "se":
            rd = se_width(c, self.spec.se_ratio)
            y = self.conv(f"{name}.fc1", (c, 1, 1), rd, 1, 1, 0, "attention", bias=True, label="SE · fc1")
            y = self.activation(f"{name}.act", y, "attention", "ReLU")
            y = self.conv(f"{name}.fc2", y, c, 1, 1, 0, "attention", bias=True, label="SE · fc2")
        else:
            k = eca_kernel(c, self.spec.eca_kernel)
            self._add(name=f"{name}.conv", op="conv1d", type="Conv1d", in_shape=(1, c), out_shape=(1, c),
                      part="attention", kernel=k, padding=(k - 1) // 2)
            y = (1, c)
        y = self.activation(f"{name}.gate", y, "attention", "Sigmoid")
        self._add(name=f"{name}.scale", op="scale", type="Mul", in_shape=x, out_shape=x, part="attention",
                  other_shape=(c, 1, 1))
        return x

    def downsample_layer(self, name: str, x: Shape, out_c: int, stride: int) -> Shape:
        """ConvNeXt's layer between stages: norm, then a stride×stride conv with that stride."""
        x = self.norm(f"{name}.0", x, "downsample")
        return self.conv(f"{name}.1", x, out_c, stride, stride, 0, "downsample", label=N_("downsampling layer"),
                         in_depth=False)

    def pad_shortcut(self, name: str, x: Shape, out_c: int, stride: int) -> Shape:
        c, h, w = x
        out = (out_c, conv_out(h, 1, stride, 0), conv_out(w, 1, stride, 0))
        if out_c < c:
            self._add(name=name, op="pad", type="PadShortcut", in_shape=x, out_shape=None, part="shortcut",
                      stride=stride, failed=True)
            self.fail(PlanProblem(
                "channels_decrease", self.loc("shortcut"),
                _("option A pads x with zero channels, but this block goes from {c} to {out_c} channels: "
                  "zero-padding cannot remove channels", c=c, out_c=out_c),
                _("use shortcut option B or C (a 1×1 projection), or make this stage at least {c} channels wide", c=c),
                shapes=(x, out), layer=len(self.layers) - 1))
        self._add(name=name, op="pad", type="PadShortcut", in_shape=x, out_shape=out, part="shortcut",
                  kernel=1, stride=stride)
        return out

    def mismatch(self, b: BlockPlan, fx: Shape, sc: Shape) -> PlanProblem:
        fixes = [_("use a 1×1 projection shortcut (option B)")]
        if fx[0] >= sc[0]:  # option A can subsample and add zero channels, never remove channels
            if fx[1:] != sc[1:] and fx[0] == sc[0]:
                fixes.append(_("or stride {stride} in the shortcut (option A subsamples x)", stride=b.stride))
            elif fx[1:] != sc[1:]:
                fixes.append(_("or a zero-padded identity with stride {stride} (option A)", stride=b.stride))
            else:
                fixes.append(_("or a zero-padded identity (option A)"))
        return PlanProblem(
            "shape_mismatch", self.loc("shortcut"),
            _("F(x) is {fx} but the identity shortcut x is {sc}: they cannot be added", fx=shape_str(fx),
              sc=shape_str(sc)),
            ("" if language() == "zh" else " ").join(fixes), shapes=(fx, sc), layer=len(self.layers) - 1)
