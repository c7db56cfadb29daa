"""What a live view shows, in sentences computed from its numbers.

Each function reads a view's result (a gradient flow, the blocks' ‖F(x)‖/‖x‖, the activation statistics)
and says what THIS result shows — which variant's gradient is larger and by how much, whether the stream
grows geometrically or slowly, how many blocks are close to the identity — and what to try when the
result does not show the effect the page is about. No sentence is fixed text about the theory: each
branch is chosen by the numbers it quotes, so two different results give two different true sentences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from resnet_core.formatting import fmt_sig
from resnet_core.i18n import _, ngettext
from resnet_core.lab.flow import GradientFlow, GradVariant
from resnet_core.lab.views import LayerStats

CLEAR = 10.0  # a factor this large is an effect on the log charts (a decade); below it, "about the same size"
GEOMETRIC = 1.25  # the stream's std growing more than this per block grows geometrically (×2 variance ≈ ×1.41)
CLOSE_TO_IDENTITY = 1.0  # ‖F(x)‖/‖x‖ below this: the block adds a correction smaller than its input
FALLS = 1.5  # the ratio's first/last above this: it falls through the depth
DEAD = 0.99  # a ReLU output with this share of exact zeros is dead
DEEP = 50  # weight layers: below this, try a deeper network before anything else


@dataclass(frozen=True)
class Story:
    """What a view shows (`shows`, the headline), the numbers behind it (`detail`) and what to try next."""

    shows: str
    detail: tuple[str, ...] = ()
    try_next: str | None = None

    def text(self) -> str:
        return " ".join([self.shows, *self.detail, *([self.try_next] if self.try_next else [])])


def _label(v: GradVariant) -> str:
    """A variant's label in this run's language ("with skips" is its key in the data)."""
    return _(v.label)


def _f(v: float | None) -> str:
    return fmt_sig(v, 3, nan="NaN", inf=("∞", "−∞"))


def _times(r: float) -> str:
    """A factor ≥ 1 for a sentence: '2.0×', '34×', '1.1e+05×', '∞×'."""
    if math.isinf(r):
        return "∞×"
    return f"{r:.1f}×" if r < 10 else (f"{r:,.0f}×" if r < 1e5 else f"{r:.2g}×")


def _ratio(a: float | None, b: float | None) -> float | None:
    """a/b for finite non-negative norms: ∞ for a positive a over 0, None when either is missing or NaN/Inf
    or both are 0."""
    if a is None or b is None or not math.isfinite(a) or not math.isfinite(b):
        return None
    if b == 0:
        return math.inf if a > 0 else None
    return a / b


def _first_norm(v: GradVariant) -> float | None:
    """‖∂L/∂W‖ of the first weight layer (the stem conv) in this pass."""
    return v.weights[0].norm if v.weights else None


def _through_depth(v: GradVariant) -> float | None:
    """How ‖∂L/∂x‖ changes from the last block's input back to the first block's: first / last."""
    used = [g.norm for g in v.inputs if g.norm is not None]
    return _ratio(used[0], used[-1]) if len(used) >= 2 else None


def _depth_clause(flow: GradientFlow) -> str | None:
    parts = []
    for v in flow.variants:
        r = _through_depth(v)
        if r is None:
            continue
        if r == 0:
            parts.append(_("falls to exactly 0 {variant}", variant=_label(v)))
        elif math.isinf(r):
            parts.append(_("grows from 0 {variant}", variant=_label(v)))
        elif r >= 1:
            parts.append(_("grows {times} {variant}", times=_times(r), variant=_label(v)))
        else:
            parts.append(_("shrinks {times} {variant}", times=_times(1 / r), variant=_label(v)))
    if not parts:
        return None
    return _("From the last block's input back to the first block's, ‖∂L/∂x‖ {parts}.",
             parts=_(" and ").join(parts))


def gradient_story(flow: GradientFlow) -> Story | None:
    """What a gradient flow with and without skips shows, from its first conv's gradients, the counts of
    vanished and exploded gradients, and the block-input gradients through the depth. None unless both
    variants finished."""
    try:
        on, off = flow.variant(True), flow.variant(False)
    except KeyError:
        return None
    g_on, g_off = _first_norm(on), _first_norm(off)
    c_on, c_off = on.counts("weights"), off.counts("weights")
    used_on = len(on.weights) - c_on["unused"]
    used_off = len(off.weights) - c_off["unused"]
    depth = max((g.depth for g in on.weights), default=0)
    no_bn = flow.spec.norm == "none"
    chance = math.log(flow.spec.num_classes) if flow.spec.num_classes > 1 else 0.0
    r = _ratio(g_on, g_off)  # with / without
    first = _("the first conv's ‖∂L/∂W‖ is {with_skips} with skips and {without} without",
              with_skips=_f(g_on), without=_f(g_off))
    detail: list[str] = []
    depth_clause = _depth_clause(flow)
    if depth_clause:
        detail.append(depth_clause)

    if c_on["exploded"] or (g_on is not None and not math.isfinite(g_on)):
        shows = _("Here the network WITH skips explodes: {exploded} of {used} of its weight gradients are above "
                  "{limit} (or NaN/Inf), and {first}.", exploded=c_on["exploded"], used=used_on,
                  limit=f"{flow.exploded_above:g}", first=first)
        if no_bn:
            detail.append(_("Its loss is {loss} against ln {classes} = {chance} for a uniform guess: without batch "
                            "norm every block adds a branch about as large as its input, so the signal grows block "
                            "after block (Why it works → Signal propagation measures it).",
                            loss=_f(on.loss), classes=flow.spec.num_classes, chance=f"{chance:.2f}"))
        try_next: str | None = (_("Try batch norm on, or PyTorch-default initialisation (smaller weights), to see the "
                                  "plain net fail instead.") if no_bn
                                else _("Try PyTorch-default initialisation (smaller weights)."))
        return Story(shows, tuple(detail), try_next)
    if c_off["vanished"] or (r is not None and r >= CLEAR):
        times = "" if r is None else _(" ({times} smaller without)", times=_times(r))
        shows = _("Without skips the gradient {what} on its way back: {first}{times}; {off} of {used_off} weight "
                  "gradients of the plain net are below {limit}, {on} of {used_on} with skips.",
                  what=_("vanishes") if c_off["vanished"] else _("shrinks"), first=first, times=times,
                  off=c_off["vanished"], used_off=used_off, limit=f"{flow.vanished_below:g}",
                  on=c_on["vanished"], used_on=used_on)
        try_next = None if not no_bn else _("Now turn batch norm on: the plain net fails the other way.")
        return Story(shows, tuple(detail), try_next)
    if c_off["exploded"] or (r is not None and r <= 1 / CLEAR):
        times = "" if r is None or r == 0 else _(" ({times} larger without)", times=_times(1 / r))
        shows = _("Without skips the gradient explodes on its way back: {first}{times}; {off} of {used_off} weight "
                  "gradients of the plain net are above {limit}, {on} of {used_on} with skips.",
                  first=first, times=times, off=c_off["exploded"], used_off=used_off,
                  limit=f"{flow.exploded_above:g}", on=c_on["exploded"], used_on=used_on)
        try_next = None if no_bn else _("Now turn batch norm off and choose PyTorch-default initialisation: the "
                                        "plain net fails the other way.")
        return Story(shows, tuple(detail), try_next)
    # within a decade and nothing vanished or exploded: the effect does not show on this network
    if r is None:
        size = _("cannot be compared (a gradient is missing)")
    elif r >= 1:
        size = _("{times} larger with skips", times=_times(r))
    else:
        size = _("{times} larger without skips", times=_times(1 / r))
    shows = _("On this network the skips make little difference: {first} ({size}, less than {clear}×), and no "
              "weight gradient vanished or exploded in either pass — the failure of plain nets described above does "
              "not show at {depth} weight layers with these settings.", first=first, size=size, clear=f"{CLEAR:g}",
              depth=depth)
    if depth < DEEP:
        try_next = _("Try a deeper network: CIFAR resnet56 (56 layers) or resnet110, with batch norm on, then off.")
    elif not no_bn:
        try_next = _("Try batch norm off with PyTorch-default initialisation.")
    else:
        try_next = _("Try PyTorch-default initialisation, or batch norm on.")
    return Story(shows, tuple(detail), try_next)


# -------------------------------------------------------------------------------------- block anatomy

def anatomy_story(rows: Sequence[dict[str, Any]], has_bn: bool, batch_stats: bool, trained: bool) -> Story | None:
    """What ‖F(x)‖/‖x‖ through the depth shows (rows: ForwardRecord.block_ratios()). None under two blocks
    with a finite ratio."""
    finite = [r for r in rows if r["ratio"] is not None and math.isfinite(r["ratio"])]
    if len(finite) < 2:
        return None
    ratios = sorted(r["ratio"] for r in finite)
    n = len(finite)
    median = ratios[n // 2] if n % 2 else (ratios[n // 2 - 1] + ratios[n // 2]) / 2
    below = sum(v < CLOSE_TO_IDENTITY for v in ratios)
    first, last = finite[0], finite[-1]
    x_growth = _ratio(last["x_norm"], first["x_norm"])
    fx_growth = _ratio(last["fx_norm"], first["fx_norm"])
    if ratios[-1] == 0:
        return Story(_("Every residual branch outputs exactly zero (‖F(x)‖ = 0): each block starts as the "
                       "identity, as a zero-initialised last batch norm makes it."))
    ends = {"first": first["block"], "last": last["block"]}
    if x_growth is None:
        growth = ""
    elif x_growth >= 1:
        growth = _(" ‖x‖ grows {times} from {first} to {last}", times=_times(x_growth), **ends)
    else:
        growth = _(" ‖x‖ shrinks {times} from {first} to {last}", times=_times(1 / x_growth), **ends)
    if fx_growth is not None and growth:
        growth += _(" while ‖F(x)‖ changes ×{factor}", factor=_f(fx_growth))
    falling = first["ratio"] > FALLS * last["ratio"]
    if median >= CLOSE_TO_IDENTITY:
        shows = _("Here the branches are not small corrections: in {large} of {n} blocks F(x) is at least as large "
                  "as x (median ratio {median}), so each block changes its input by about its own size.",
                  large=n - below, n=n, median=f"{median:.3g}")
        detail = [_("Through the depth{growth}.", growth=growth) if growth else ""]
        if has_bn and not batch_stats and not trained:
            try_next = _("Batch norm with running statistics of untrained weights (mean 0, variance 1) rescales "
                         "nothing: switch 'Batch norm statistics' to 'of a batch of 8' to see batch norm shrink the "
                         "branches' share block by block.")
        elif not has_bn:
            try_next = _("Nothing rescales the branches in a network without batch norm: turn batch norm on in the "
                         "builder and choose batch statistics to see the ratio fall through the depth.")
        else:
            try_next = None
        return Story(shows, tuple(d for d in detail if d), try_next)
    if falling:
        shows = _("The ratio falls from {a} ({first}) to {b} ({last}): {below} of {n} blocks add a correction smaller "
                  "than their input, and the deeper blocks are the closer to the identity.",
                  a=f"{first['ratio']:.3g}", b=f"{last['ratio']:.3g}", below=below, n=n, **ends)
        detail = [_("Through the depth{growth}: the stream grows while each branch stays about the same size.",
                    growth=growth) if (x_growth is not None and fx_growth is not None and x_growth > FALLS * fx_growth)
                  else (_("Through the depth{growth}.", growth=growth) if growth else "")]
        if has_bn and batch_stats:
            detail.append(_("This is De & Smith's (2020) observation: batch norm biases residual blocks towards the "
                            "identity (Why it works → Signal propagation)."))
        return Story(shows, tuple(d for d in detail if d))
    shows = _("In {below} of {n} blocks F(x) is smaller than x (median ratio {median}, from {lo} to {hi}): most "
              "blocks add a correction smaller than their input, about as much at every depth.",
              below=below, n=n, median=f"{median:.3g}", lo=f"{ratios[0]:.3g}", hi=f"{ratios[-1]:.3g}")
    return Story(shows, (_("Through the depth{growth}.", growth=growth),) if growth else ())


# -------------------------------------------------------------------------------------- activation statistics

def activation_story(stats: Sequence[LayerStats], has_bn: bool, batch_stats: bool, trained: bool) -> Story | None:
    """What the activation statistics through the depth show: how the residual stream's spread (the std
    after each F(x) + x) grows, how many ReLU outputs are off, dead or non-finite layers."""
    ran = [s for s in stats if s.ran and s.std is not None]
    if not ran:
        return None
    bad = [s for s in ran if not s.finite]
    if bad:
        return Story(_("The activations become NaN or Inf from {layer} on: the signal overflowed float32.",
                       layer=bad[0].label or bad[0].name), (),
                     _("Try batch norm on, or smaller initial weights (PyTorch default)."))
    stream = [s for s in ran if s.op == "add"]
    detail: list[str] = []
    try_next = None
    if len(stream) >= 2 and stream[0].std and stream[0].std > 0:
        a, b = stream[0].std, stream[-1].std or 0.0
        g = b / a
        blocks = len(stream)
        per = g ** (1 / (blocks - 1)) if g > 0 else 0.0
        spread = {"a": _f(a), "b": _f(b), "blocks": blocks}
        if per >= GEOMETRIC:
            shows = _("The residual stream's spread grows geometrically: its std after F(x) + x goes from {a} at the "
                      "first block to {b} at the last, {times} over {blocks} blocks (×{per} per block).",
                      times=_times(g), per=f"{per:.2f}", **spread)
            if has_bn and not batch_stats and not trained:
                try_next = _("Batch norm with the running statistics of untrained weights (mean 0, variance 1) "
                             "rescales nothing here: switch 'Batch norm statistics' to 'of a batch of 8'.")
            elif not has_bn:
                try_next = _("Without batch norm nothing rescales the branches: compare a network with batch norm.")
        elif g >= 1:
            root = math.sqrt(blocks)
            near = (_("close to") if root / 2 <= g <= 2 * root else (_("less than") if g < root else _("more than")))
            shows = _("The residual stream's spread grows slowly: its std after F(x) + x goes from {a} at the first "
                      "block to {b} at the last, {times} over {blocks} blocks — {near} √{blocks} = {root}, the growth "
                      "if every block added a branch of fixed variance to an unchanged stream.",
                      times=_times(g), near=near, root=f"{root:.2f}", **spread)
        else:
            shows = _("The residual stream's spread shrinks: its std after F(x) + x goes from {a} at the first block "
                      "to {b} at the last, {times} smaller over {blocks} blocks.",
                      times=_times(1 / g) if g > 0 else "∞×", **spread)
    else:
        stds = [s.std for s in ran if s.std is not None]
        shows = _("The activations' std ranges from {lo} to {hi} through the depth.", lo=_f(min(stds)),
                  hi=_f(max(stds)))
    acts = [s for s in ran if s.op == "act" and s.zeros is not None]
    if acts:
        zs = sorted(s.zeros or 0.0 for s in acts)
        med = zs[len(zs) // 2]
        dead = [s for s in acts if (s.zeros or 0.0) >= DEAD]
        zeros = {"median": f"{100 * med:.0f}", "lo": f"{100 * zs[0]:.0f}", "hi": f"{100 * zs[-1]:.0f}"}
        if dead:
            detail.append(ngettext(
                "Of the ReLU outputs, a median {median} % are exactly zero (from {lo} % to {hi} %); {n} layer is dead "
                "(≥ {dead} % zeros: {layer}{more}).",
                "Of the ReLU outputs, a median {median} % are exactly zero (from {lo} % to {hi} %); {n} layers are "
                "dead (≥ {dead} % zeros: {layer}{more}).", len(dead), n=len(dead), dead=f"{100 * DEAD:.0f}",
                layer=dead[0].label or dead[0].name, more="…" if len(dead) > 1 else "", **zeros))
        else:
            detail.append(_("Of the ReLU outputs, a median {median} % are exactly zero (from {lo} % to {hi} %).",
                            **zeros))
    return Story(shows, tuple(detail), try_next)
