"""The planner's layer emitters: one method per kind of layer, each appending a `Layer` record with its
shapes and returning the output shape, or stopping the plan at a located problem (see plan.py).

Also the small helpers that word the located problems ("unknown … did you mean", "must be at least").
"""

from __future__ import annotations

import math
from typing import Any

from resnet_core.formatting import did_you_mean, fmt_int, listing
from resnet_core.i18n import _
from resnet_core.structure.records import (
    ACT_TYPES,
    Layer,
    LayerPart,
    Location,
    PlanProblem,
    Shape,
    StagePlan,
    act_attr,
    ceil_pool_out,
    conv_out,
)
from resnet_core.structure.spec import ArchSpec, PoolType


def article(n: int) -> str:
    """'a' or 'an' before a number read aloud: an 8, an 11, an 18, an 80; a 7, a 110."""
    d = str(n)
    return "an" if d[0] == "8" or (len(d) % 3 == 2 and d[:2] in ("11", "18")) else "a"


def choice_error(where: Location, what: str, value: str, choices: tuple[str, ...]) -> PlanProblem:
    close = did_you_mean(value, choices)
    hint = _("did you mean '{value}'? ", value=close[0]) if close else ""
    return PlanProblem("unknown_value", where, _("unknown {what} '{value}'", what=_(what), value=value),
                       hint + _("choose one of {choices}", choices=listing(choices)))


def positive(where: Location, what: str, value: int, minimum: int = 1) -> PlanProblem | None:
    if value < minimum:
        return PlanProblem("non_positive", where,
                           _("{what} is {value}; it must be at least {minimum}", what=_(what), value=value,
                             minimum=minimum),
                           _("set {what} to {minimum} or more", what=_(what), minimum=minimum))
    return None


def divisors(n: int) -> list[int]:
    small = [d for d in range(1, int(math.isqrt(n)) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def some(values: list[int], most: int = 8) -> str:
    shown = ", ".join(map(str, values[:most]))
    return "{" + shown + (", …" if len(values) > most else "") + "}"


def at_most(where: Location, what: str, value: int, limit: int) -> PlanProblem | None:
    if value > limit:
        return PlanProblem("out_of_range", where,
                           _("{what} is {value}; the explorer plans at most {limit:,}", what=_(what),
                             value=fmt_int(value), limit=limit),
                           _("set {what} to {limit:,} or less", what=_(what), limit=limit))
    return None


class Stop(Exception):
    """Raised inside the planner at the first failure; the plan so far is kept."""


class LayerEmitter:
    def __init__(self, spec: ArchSpec, input_shape: Shape):
        self.spec = spec
        self.layers: list[Layer] = []
        self.stages: list[StagePlan] = []
        self.errors: list[PlanProblem] = []
        self.warnings: list[str] = []
        self.shape: Shape = input_shape
        self.norm_kind = spec.norm
        self.bias = spec.norm != "batch"  # a conv before a batch norm needs no bias; ConvNeXt's (LayerNorm) have one
        self.act = act_attr(spec.activation)
        self.act_type = ACT_TYPES.get(spec.activation, "ReLU")
        self.stage: int | None = None
        self.block: int | None = None

    # ---- errors ---------------------------------------------------------------------------
    def fail(self, err: PlanProblem) -> None:
        self.errors.append(err)
        raise Stop

    def loc(self, part: str | None) -> Location:
        return Location(self.stage, self.block, part)

    # ---- layer emitters: each returns the output shape --------------------------------------
    def _add(self, **kw: Any) -> Layer:
        layer = Layer(index=len(self.layers), stage=self.stage, block=self.block, **kw)
        self.layers.append(layer)
        return layer

    def conv(self, name: str, x: Shape, out_c: int, k: int, s: int, p: int, part: LayerPart, groups: int = 1,
             label: str | None = None, in_depth: bool = True, bias: bool | None = None) -> Shape:
        c, h, w = x
        bias = self.bias if bias is None else bias
        oh, ow = conv_out(h, k, s, p), conv_out(w, k, s, p)
        out = (out_c, oh, ow)
        where = self.loc(label or name.rsplit(".", 1)[-1])
        kw: dict[str, Any] = dict(name=name, op="conv", type="Conv2d", in_shape=x, part=part, kernel=k, stride=s,
                                  padding=p, groups=groups, bias=bias, in_depth=in_depth)
        if c % groups or out_c % groups:
            self._add(out_shape=None, failed=True, **kw)
            bad = [v for v in (c, out_c) if v % groups]
            common = math.gcd(c, out_c)
            if len(bad) == 1:
                message = _("groups={groups} must divide the conv's input and output channels ({c} → {out_c}); "
                            "{bad} is not a multiple of {groups}", groups=groups, c=c, out_c=out_c, bad=bad[0])
            else:
                message = _("groups={groups} must divide the conv's input and output channels ({c} → {out_c}); "
                            "{c} and {out_c} are not a multiple of {groups}", groups=groups, c=c, out_c=out_c)
            self.fail(PlanProblem(
                "groups", where, message,
                _("use groups in {some}, or change the widths", some=some(divisors(common))),
                layer=len(self.layers) - 1))
        if oh < 1 or ow < 1:
            self._add(out_shape=None, failed=True, **kw)
            self.fail(PlanProblem(
                "spatial_underflow", where,
                (_("an {k}×{k} conv (stride {s}, padding {p}) needs a map of at least {m}×{m}, and this one "
                   "is {h}×{w}: no output position is left (the spatial size would shrink below 1)",
                   k=k, s=s, p=p, m=k - 2 * p, h=h, w=w) if article(k) == "an" else
                 _("a {k}×{k} conv (stride {s}, padding {p}) needs a map of at least {m}×{m}, and this one "
                   "is {h}×{w}: no output position is left (the spatial size would shrink below 1)",
                   k=k, s=s, p=p, m=k - 2 * p, h=h, w=w)),
                _("use a larger input, more padding (padding {half} keeps it ≥ 1), or fewer stride steps before here",
                  half=k // 2),
                layer=len(self.layers) - 1))
        self._add(out_shape=out, **kw)
        return out

    def norm(self, name: str, x: Shape, part: LayerPart) -> Shape:
        """The network's norm on a (C, H, W) map: BatchNorm2d, LayerNorm2d (over C at each position), or none."""
        if self.norm_kind == "batch":
            self._add(name=name, op="norm", type="BatchNorm2d", in_shape=x, out_shape=x, part=part)
        elif self.norm_kind == "layer":
            self._add(name=name, op="norm", type="LayerNorm2d", in_shape=x, out_shape=x, part=part)
        return x

    def norm_channels_last(self, name: str, x: Shape, part: LayerPart) -> Shape:
        """LayerNorm over the last axis of an (H, W, C) map, as ConvNeXt's block uses it."""
        self._add(name=name, op="norm", type="LayerNorm", in_shape=x, out_shape=x, part=part, channels_last=True)
        return x

    def activation(self, name: str, x: Shape, part: LayerPart, act_type: str | None = None) -> Shape:
        self._add(name=name, op="act", type=act_type or self.act_type, in_shape=x, out_shape=x, part=part,
                  channels_last=len(x) == 3 and self._channels_last)
        return x

    _channels_last = False  # inside a ConvNeXt block's permutes

    def linear(self, name: str, x: Shape, out_f: int, part: LayerPart) -> Shape:
        out = (*x[:-1], out_f)
        self._add(name=name, op="linear", type="Linear", in_shape=x, out_shape=out, part=part, bias=True,
                  channels_last=len(x) == 3)
        return out

    def permute(self, name: str, x: Shape, to_last: bool) -> Shape:
        out = (x[1], x[2], x[0]) if to_last else (x[2], x[0], x[1])
        self._add(name=name, op="permute", type="Permute", in_shape=x, out_shape=out, part="main",
                  channels_last=not to_last)
        self._channels_last = to_last
        return out

    def pool(self, name: str, x: Shape, kind: PoolType, k: int, s: int, p: int, part: LayerPart,
             where: str = "stem · pool", ceil: bool = False) -> Shape:
        c, h, w = x
        if ceil:
            oh, ow = ceil_pool_out(h, k, s), ceil_pool_out(w, k, s)
        else:
            oh, ow = conv_out(h, k, s, p), conv_out(w, k, s, p)
        op, typ = ("maxpool", "MaxPool2d") if kind == "max" else ("avgpool", "AvgPool2d")
        if oh < 1 or ow < 1:
            self._add(name=name, op=op, type=typ, in_shape=x, out_shape=None, part=part, kernel=k, stride=s,
                      padding=p, failed=True)
            self.fail(PlanProblem(
                "spatial_underflow", self.loc(where) if self.stage is not None else Location(None, None, where),
                (_("an {k}×{k} pool (stride {s}, padding {p}) needs a map of at least {m}×{m}, and this one "
                   "is {h}×{w}: no output position is left (the spatial size would shrink below 1)",
                   k=k, s=s, p=p, m=k - 2 * p, h=h, w=w) if article(k) == "an" else
                 _("a {k}×{k} pool (stride {s}, padding {p}) needs a map of at least {m}×{m}, and this one "
                   "is {h}×{w}: no output position is left (the spatial size would shrink below 1)",
                   k=k, s=s, p=p, m=k - 2 * p, h=h, w=w)),
                _("use a larger input, or no stem pool"), layer=len(self.layers) - 1))
        out = (c, oh, ow)
        self._add(name=name, op=op, type=typ, in_shape=x, out_shape=out, part=part, kernel=k, stride=s, padding=p)
        return out
