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
            parts.append(f"falls to exactly 0 {v.label}")
        elif math.isinf(r):
            parts.append(f"grows from 0 {v.label}")
        else:
            parts.append(f"{'grows' if r >= 1 else 'shrinks'} {_times(r if r >= 1 else 1 / r)} {v.label}")
    if not parts:
        return None
    return "From the last block's input back to the first block's, ‖∂L/∂x‖ " + " and ".join(parts) + "."


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
    first = f"the first conv's ‖∂L/∂W‖ is {_f(g_on)} with skips and {_f(g_off)} without"
    detail: list[str] = []
    depth_clause = _depth_clause(flow)
    if depth_clause:
        detail.append(depth_clause)

    if c_on["exploded"] or (g_on is not None and not math.isfinite(g_on)):
        shows = (f"Here the network WITH skips explodes: {c_on['exploded']} of {used_on} of its weight gradients are "
                 f"above {flow.exploded_above:g} (or NaN/Inf), and {first}.")
        if no_bn:
            detail.append(f"Its loss is {_f(on.loss)} against ln {flow.spec.num_classes} = {chance:.2f} for a uniform "
                          "guess: without batch norm every block adds a branch about as large as its input, so the "
                          "signal grows block after block (Why it works → Signal propagation measures it).")
        try_next: str | None = ("Try batch norm on, or PyTorch-default initialisation (smaller weights), to see the plain net "
                    "fail instead." if no_bn else "Try PyTorch-default initialisation (smaller weights).")
        return Story(shows, tuple(detail), try_next)
    if c_off["vanished"] or (r is not None and r >= CLEAR):
        what = "vanishes" if c_off["vanished"] else "shrinks"
        times = "" if r is None else f" ({_times(r)} smaller without)"
        shows = (f"Without skips the gradient {what} on its way back: {first}{times}; {c_off['vanished']} of "
                 f"{used_off} weight gradients of the plain net are below {flow.vanished_below:g}, "
                 f"{c_on['vanished']} of {used_on} with skips.")
        try_next = None if not no_bn else "Now turn batch norm on: the plain net fails the other way."
        return Story(shows, tuple(detail), try_next)
    if c_off["exploded"] or (r is not None and r <= 1 / CLEAR):
        times = "" if r is None or r == 0 else f" ({_times(1 / r)} larger without)"
        shows = (f"Without skips the gradient explodes on its way back: {first}{times}; {c_off['exploded']} of "
                 f"{used_off} weight gradients of the plain net are above {flow.exploded_above:g}, "
                 f"{c_on['exploded']} of {used_on} with skips.")
        try_next = None if no_bn else ("Now turn batch norm off and choose PyTorch-default initialisation: the plain "
                                       "net fails the other way.")
        return Story(shows, tuple(detail), try_next)
    # within a decade and nothing vanished or exploded: the effect does not show on this network
    if r is None:
        size = "cannot be compared (a gradient is missing)"
    elif r >= 1:
        size = f"{_times(r)} larger with skips"
    else:
        size = f"{_times(1 / r)} larger without skips"
    shows = (f"On this network the skips make little difference: {first} ({size}, less than {CLEAR:g}×), and no "
             "weight gradient vanished or exploded in either pass — the failure of plain nets described above does "
             f"not show at {depth} weight layers with these settings.")
    if depth < DEEP:
        try_next = "Try a deeper network: CIFAR resnet56 (56 layers) or resnet110, with batch norm on, then off."
    elif not no_bn:
        try_next = "Try batch norm off with PyTorch-default initialisation."
    else:
        try_next = "Try PyTorch-default initialisation, or batch norm on."
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
        return Story("Every residual branch outputs exactly zero (‖F(x)‖ = 0): each block starts as the identity, "
                     "as a zero-initialised last batch norm makes it.")
    growth = "" if x_growth is None else (f" ‖x‖ grows {_times(x_growth)} from {first['block']} to {last['block']}"
                                          if x_growth >= 1 else f" ‖x‖ shrinks {_times(1 / x_growth)} from "
                                          f"{first['block']} to {last['block']}")
    if fx_growth is not None and growth:
        growth += f" while ‖F(x)‖ changes ×{_f(fx_growth)}"
    falling = first["ratio"] > FALLS * last["ratio"]
    if median >= CLOSE_TO_IDENTITY:
        shows = (f"Here the branches are not small corrections: in {n - below} of {n} blocks F(x) is at least as large "
                 f"as x (median ratio {median:.3g}), so each block changes its input by about its own size.")
        detail = [f"Through the depth{growth}." if growth else ""]
        if has_bn and not batch_stats and not trained:
            try_next = ("Batch norm with running statistics of untrained weights (mean 0, variance 1) rescales "
                        "nothing: switch 'Batch norm statistics' to 'of a batch of 8' to see batch norm shrink the "
                        "branches' share block by block.")
        elif not has_bn:
            try_next = ("Nothing rescales the branches in a network without batch norm: turn batch norm on in the "
                        "builder and choose batch statistics to see the ratio fall through the depth.")
        else:
            try_next = None
        return Story(shows, tuple(d for d in detail if d), try_next)
    if falling:
        shows = (f"The ratio falls from {first['ratio']:.3g} ({first['block']}) to {last['ratio']:.3g} ({last['block']}): "
                 f"{below} of {n} blocks add a correction smaller than their input, and the deeper blocks are the "
                 "closer to the identity.")
        detail = [f"Through the depth{growth}: the stream grows while each branch stays about the same size." if (
            x_growth is not None and fx_growth is not None and x_growth > FALLS * fx_growth) else
            (f"Through the depth{growth}." if growth else "")]
        if has_bn and batch_stats:
            detail.append("This is De & Smith's (2020) observation: batch norm biases residual blocks towards the "
                          "identity (Why it works → Signal propagation).")
        return Story(shows, tuple(d for d in detail if d))
    shows = (f"In {below} of {n} blocks F(x) is smaller than x (median ratio {median:.3g}, from {ratios[0]:.3g} to "
             f"{ratios[-1]:.3g}): most blocks add a correction smaller than their input, about as much at every depth.")
    return Story(shows, (f"Through the depth{growth}.",) if growth else ())


# -------------------------------------------------------------------------------------- activation statistics

def activation_story(stats: Sequence[LayerStats], has_bn: bool, batch_stats: bool, trained: bool) -> Story | None:
    """What the activation statistics through the depth show: how the residual stream's spread (the std
    after each F(x) + x) grows, how many ReLU outputs are off, dead or non-finite layers."""
    ran = [s for s in stats if s.ran and s.std is not None]
    if not ran:
        return None
    bad = [s for s in ran if not s.finite]
    if bad:
        return Story(f"The activations become NaN or Inf from {bad[0].label or bad[0].name} on: the signal overflowed "
                     "float32.", (), "Try batch norm on, or smaller initial weights (PyTorch default).")
    stream = [s for s in ran if s.op == "add"]
    detail: list[str] = []
    try_next = None
    if len(stream) >= 2 and stream[0].std and stream[0].std > 0:
        a, b = stream[0].std, stream[-1].std or 0.0
        g = b / a
        blocks = len(stream)
        per = g ** (1 / (blocks - 1)) if g > 0 else 0.0
        if per >= GEOMETRIC:
            shows = (f"The residual stream's spread grows geometrically: its std after F(x) + x goes from {_f(a)} at "
                     f"the first block to {_f(b)} at the last, {_times(g)} over {blocks} blocks (×{per:.2f} per block).")
            if has_bn and not batch_stats and not trained:
                try_next = ("Batch norm with the running statistics of untrained weights (mean 0, variance 1) rescales "
                            "nothing here: switch 'Batch norm statistics' to 'of a batch of 8'.")
            elif not has_bn:
                try_next = "Without batch norm nothing rescales the branches: compare a network with batch norm."
        elif g >= 1:
            root = math.sqrt(blocks)
            near = "close to" if root / 2 <= g <= 2 * root else ("less than" if g < root else "more than")
            shows = (f"The residual stream's spread grows slowly: its std after F(x) + x goes from {_f(a)} at the first "
                     f"block to {_f(b)} at the last, {_times(g)} over {blocks} blocks — {near} √{blocks} = {root:.2f}, "
                     "the growth if every block added a branch of fixed variance to an unchanged stream.")
        else:
            shows = (f"The residual stream's spread shrinks: its std after F(x) + x goes from {_f(a)} at the first "
                     f"block to {_f(b)} at the last, {_times(1 / g) if g > 0 else '∞×'} smaller over {blocks} blocks.")
    else:
        stds = [s.std for s in ran if s.std is not None]
        shows = f"The activations' std ranges from {_f(min(stds))} to {_f(max(stds))} through the depth."
    acts = [s for s in ran if s.op == "act" and s.zeros is not None]
    if acts:
        zs = sorted(s.zeros or 0.0 for s in acts)
        med = zs[len(zs) // 2]
        dead = [s for s in acts if (s.zeros or 0.0) >= DEAD]
        detail.append(f"Of the ReLU outputs, a median {100 * med:.0f} % are exactly zero (from {100 * zs[0]:.0f} % to "
                      f"{100 * zs[-1]:.0f} %)" + (f"; {len(dead)} layer{'s are' if len(dead) > 1 else ' is'} dead "
                                                    f"(≥ {100 * DEAD:.0f} % zeros: {dead[0].label or dead[0].name}"
                                                    f"{'…' if len(dead) > 1 else ''})." if dead else "."))
    return Story(shows, tuple(detail), try_next)
