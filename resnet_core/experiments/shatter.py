"""Shattered gradients (Balduzzi, Frean, Leary, Lewis, Ma, McWilliams, ICML 2017).

A fully connected network with a 1-D input and a 1-D output, evaluated along a line of inputs
x₁ < … < x₂₅₆ in [−2, 2]; the gradient dy/dx at each point. In a deep feed-forward net with batch
norm the gradient along the line looks like white noise (neighbouring points' gradients are
uncorrelated); in a residual net it stays correlated. The measure is the lag-1 autocorrelation of the
gradient sequence, averaged over seeds, against depth.

    feed-forward:  h ← ReLU(BN(W h + b))              (depth layers of width `width`)
    residual:      h ← h + W ReLU(BN(h)) + b          (depth blocks, pre-activation)
    input: h₀ = W₀ x + b₀ (1 → width); output: y = wᵀ h (width → 1)

Batch norm normalises with the statistics of the 256 points of the line (computed once, then held
fixed), so that each point's output depends on that point alone and dy/dx is an ordinary derivative —
the one a finite difference checks. Weights are He-initialised (fan-in); biases, when on, are drawn
like PyTorch's default (uniform ±1/√fan_in), since zero biases would be no biases at all at init.

The trap: without batch norm and without biases a ReLU net is positively homogeneous, y(c·x) = c·y(x)
for c > 0, so along a line through 0 its gradient takes one value for x < 0 and another for x > 0 —
an autocorrelation near 1 at any depth, "no shattering", whatever the architecture.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import torch

from resnet_core.device import CPU_THREADS, estimate_pass
from resnet_core.experiments.common import (
    Cost,
    ExperimentError,
    ExperimentResult,
    OnProgress,
    Paper,
    Stopped,
    Verdict,
    admitted,
    check_settings,
    fmt,
    halve,
    no_progress,
    said,
    stop_fn,
    threads,
)
from resnet_core.experiments.settings import MAX_DEPTHS, SHATTER_MAX_UNITS, ShatterSettings
from resnet_core.experiments.settings import SHATTER_BOUNDS as BOUNDS
from resnet_core.i18n import N_

PAPER = Paper(
    citation=N_("Balduzzi, Frean, Leary, Lewis, Ma, McWilliams, \"The Shattered Gradients Problem: If resnets are the "
             "answer, then what is the question?\", ICML 2017"),
    claim=N_("As depth grows, the gradients of a feed-forward network resemble white noise (they shatter), while "
          "those of a residual network stay correlated."),
    url="https://arxiv.org/abs/1702.08591")
TITLE = N_("Shattered gradients")

ARCHS = (N_("feed-forward"), N_("residual"))
WHITE_NOISE = 0.1  # feed-forward + BN at full depth: |autocorrelation| at most this
CORRELATED = 0.5  # residual + BN at full depth: autocorrelation at least this
BN_EPS = 1e-5


def check(settings: ShatterSettings) -> None:
    check_settings(settings, BOUNDS)
    if len(settings.depths) > MAX_DEPTHS:
        raise ExperimentError(f"depths lists at most {MAX_DEPTHS} depths, got {len(settings.depths)}")
    if not settings.low < settings.high:
        raise ExperimentError(f"the line needs low < high, got {settings.low:g} and {settings.high:g}")
    if settings.width * max(settings.depths) > SHATTER_MAX_UNITS:
        raise ExperimentError(f"width × depth must be at most {SHATTER_MAX_UNITS:,}, "
                              f"got {settings.width * max(settings.depths):,}")


def net_cost(settings: ShatterSettings, depth: int) -> tuple[int, int]:
    """(bytes at the peak, multiply-adds) of dy/dx along the line through one net: each layer keeps about
    four points × width tensors for the backward pass."""
    w, p = settings.width, settings.points
    params = (depth * (w * w + w) + 3 * w) * 4
    est = estimate_pass(params, 4 * depth * w * 4, p, backward=True)
    return est.total, 3 * p * depth * (w * w + 2 * w)


def cost(settings: ShatterSettings) -> Cost:
    """Every net the run measures: the chosen toggles at every depth and seed, the three others at the
    largest depth on up to OTHER_SEEDS seeds, and the two nets whose gradients are drawn."""
    deepest = max(settings.depths)
    memory = net_cost(settings, deepest)[0]
    nets = [(d, settings.seeds) for d in settings.depths] + [(deepest, 3 * min(settings.seeds, OTHER_SEEDS) + 1)]
    work = sum(len(ARCHS) * k * net_cost(settings, d)[1] for d, k in nets)
    return Cost(f"the shattered-gradients run (width {settings.width}, depths up to {deepest}, "
                f"{settings.seeds} seeds, {settings.points} points)", memory, work)


def _fewer_depths(s: ShatterSettings) -> ShatterSettings | None:
    kept = tuple(sorted(set(s.depths)))[:-1]
    return replace(s, depths=kept) if kept else None


SHRINKS = (lambda s: None if halve(s.points, 8) is None else replace(s, points=halve(s.points, 8)),
           lambda s: None if halve(s.seeds, 1) is None else replace(s, seeds=halve(s.seeds, 1)),
           lambda s: None if halve(s.width, 1) is None else replace(s, width=halve(s.width, 1)),
           _fewer_depths)


class LineNet(torch.nn.Module):
    """The 1 → width → … → 1 network of the experiment; `freeze_stats(x)` fixes batch norm's statistics."""

    def __init__(self, arch: str, depth: int, width: int, bn: bool, bias: bool, seed: int,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown architecture {arch!r}")
        self.arch, self.depth, self.bn, self.bias = arch, depth, bn, bias
        g = torch.Generator().manual_seed(seed)

        def weight(out_f: int, in_f: int) -> torch.Tensor:
            return torch.randn(out_f, in_f, generator=g, dtype=dtype) * math.sqrt(2.0 / in_f)  # He, fan-in

        def bias_of(out_f: int, in_f: int) -> torch.Tensor:
            if not bias:
                return torch.zeros(out_f, dtype=dtype)
            return (torch.rand(out_f, generator=g, dtype=dtype) * 2 - 1) / math.sqrt(in_f)

        self.w_in = torch.nn.Parameter(weight(width, 1))
        self.b_in = torch.nn.Parameter(bias_of(width, 1))
        self.ws = torch.nn.ParameterList([torch.nn.Parameter(weight(width, width)) for _ in range(depth)])
        self.bs = torch.nn.ParameterList([torch.nn.Parameter(bias_of(width, width)) for _ in range(depth)])
        self.w_out = torch.nn.Parameter(weight(1, width).squeeze(0) * math.sqrt(0.5))  # Xavier-like for the output
        self.stats: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def _norm(self, h: torch.Tensor, i: int, collect: list | None) -> torch.Tensor:
        if not self.bn:
            return h
        if collect is not None:  # this batch's statistics, as constants: the same numbers frozen stats hold
            mean, var = h.mean(0).detach(), h.var(0, unbiased=False).detach()
            collect.append((mean, var))
        else:
            assert self.stats is not None, "forward collects this batch's statistics when none are frozen"
            mean, var = self.stats[i]
        return (h - mean) / torch.sqrt(var + BN_EPS)

    def forward(self, x: torch.Tensor, _collect: list | None = None) -> torch.Tensor:  # (N,) -> (N,)
        """With frozen statistics (`freeze_stats`) each output depends on its own input alone; without
        them batch norm uses this batch's statistics, held constant for the gradient."""
        if self.bn and self.stats is None and _collect is None:
            _collect = []
        h = x[:, None] * self.w_in[:, 0] + self.b_in  # (N, width)
        for i, (w, b) in enumerate(zip(self.ws, self.bs, strict=True)):
            if self.arch == "feed-forward":
                h = torch.relu(self._norm(h @ w.T + b, i, _collect))
            else:
                h = h + torch.relu(self._norm(h, i, _collect)) @ w.T + b
        return h @ self.w_out  # (N,)

    @torch.no_grad()
    def freeze_stats(self, x: torch.Tensor) -> LineNet:
        collect: list = []
        self.forward(x, _collect=collect)
        self.stats = collect
        return self


def line(settings: ShatterSettings, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.linspace(settings.low, settings.high, settings.points, dtype=dtype)


def gradient_along(net: LineNet, x: torch.Tensor) -> torch.Tensor:
    """dy/dx at every point of the line, batch norm's statistics being those of these points (one pass:
    the statistics are computed on the way and treated as constants)."""
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(net(x).sum(), x)
    return g.detach()


def autocorrelation(g: torch.Tensor, lag: int = 1) -> float:
    """Lag-`lag` autocorrelation of a sequence: Σ (g_i − ḡ)(g_{i+lag} − ḡ) / Σ (g_i − ḡ)²; NaN if g is constant."""
    g = g.double() - g.double().mean()
    denom = float((g * g).sum())
    if denom <= 0 or not math.isfinite(denom):
        return math.nan
    return float((g[:-lag] * g[lag:]).sum()) / denom


def measure(settings: ShatterSettings, bn: bool, bias: bool, should_stop=None, on_step=None) -> list[dict]:
    """Autocorrelation per architecture and depth (mean and spread over the seeds) for one toggle setting."""
    stop = stop_fn(should_stop)
    x = line(settings)
    rows = []
    for arch in ARCHS:
        for depth in settings.depths:
            values = []
            for k in range(settings.seeds):
                if stop():
                    raise Stopped
                net = LineNet(arch, depth, settings.width, bn, bias, seed=settings.seed + k)
                values.append(autocorrelation(gradient_along(net, x)))
                if on_step:
                    on_step()
            finite = [v for v in values if math.isfinite(v)]
            mean = sum(finite) / len(finite) if finite else math.nan
            sd = math.sqrt(sum((v - mean) ** 2 for v in finite) / len(finite)) if finite else math.nan
            rows.append({"arch": arch, "depth": depth, "bn": bn, "bias": bias, "autocorrelation": mean,
                         "sd": sd, "min": min(finite, default=math.nan), "max": max(finite, default=math.nan),
                         "seeds": len(finite)})
    return rows


TOGGLES = ((True, True), (True, False), (False, True), (False, False))


TOGGLE_LABELS = {(True, True): N_("BN, biases"), (True, False): N_("BN, no biases"),
                 (False, True): N_("no BN, biases"), (False, False): N_("no BN, no biases")}


def toggle_label(bn: bool, bias: bool) -> str:
    """The toggles' name, in English (a key of the tables; shown through _())."""
    return TOGGLE_LABELS[(bool(bn), bool(bias))]


OTHER_SEEDS = 3  # the three other toggle settings are measured at the largest depth only, on this many seeds


def run(settings: ShatterSettings = ShatterSettings(), should_stop=None, on_progress: OnProgress = no_progress
        ) -> ExperimentResult:
    """The chosen toggles at every depth; the three other toggle settings (the trap among them) at the
    largest depth, for comparison. The verdict needs batch norm: with it off, it says so. Refused before it
    starts when its cost does not fit (`cost`)."""
    check(settings)
    with admitted(settings, cost, SHRINKS):
        return _run(settings, should_stop, on_progress)


def _run(settings: ShatterSettings, should_stop, on_progress: OnProgress) -> ExperimentResult:
    t0 = time.perf_counter()
    order = [(settings.bn, settings.bias)] + [t for t in TOGGLES if t != (settings.bn, settings.bias)]
    total = len(ARCHS) * (len(settings.depths) * settings.seeds + 3 * min(settings.seeds, OTHER_SEEDS))
    done = [0]

    def step() -> None:
        done[0] += 1
        on_progress(done[0] / total, said(N_("{done}/{total} networks"), done=done[0], total=total))

    rows: list[dict] = []
    stopped = False
    try:
        with threads(CPU_THREADS):
            for k, (bn, bias) in enumerate(order):
                sub = settings if k == 0 else replace(settings, depths=(max(settings.depths),),
                                                      seeds=min(settings.seeds, OTHER_SEEDS))
                for r in measure(sub, bn, bias, should_stop, step):
                    rows.append({**r, "toggles": toggle_label(bn, bias)})
    except Stopped:
        stopped = True
    # the gradient along the line at the largest depth, first seed, chosen toggles
    x = line(settings)
    grads = []
    deepest = max(settings.depths)
    for arch in ARCHS:
        net = LineNet(arch, deepest, settings.width, settings.bn, settings.bias, seed=settings.seed)
        g = gradient_along(net, x)
        scale = float(g.abs().max()) or 1.0
        for xi, gi in zip(x.tolist(), g.tolist(), strict=True):
            grads.append({"arch": arch, "depth": deepest, "x": xi, "gradient": gi, "gradient_scaled": gi / scale})
    verdict, findings = judge(rows, settings)
    return ExperimentResult("shatter", TITLE, PAPER, settings.describe(),
                            {"autocorrelation": rows, "gradients": grads}, verdict, findings, EXPLANATION,
                            time.perf_counter() - t0, stopped)


def _at(rows: list[dict], arch: str, depth: int, bn: bool, bias: bool) -> float:
    for r in rows:
        if (r["arch"], r["depth"], r["bn"], r["bias"]) == (arch, depth, bn, bias):
            return r["autocorrelation"]
    return math.nan


def judge(rows: list[dict], settings: ShatterSettings) -> tuple[Verdict, list[str]]:
    d = max(settings.depths)
    ff, res = _at(rows, "feed-forward", d, True, settings.bias), _at(rows, "residual", d, True, settings.bias)
    ff_trap, res_trap = _at(rows, "feed-forward", d, False, False), _at(rows, "residual", d, False, False)
    checks = ((said(N_("feed-forward + BN at depth {d}: |autocorrelation| = {v} (needs ≤ {need})"), d=d, v=fmt(abs(ff)),
                    need=f"{WHITE_NOISE:g}"), math.isfinite(ff) and abs(ff) <= WHITE_NOISE),
              (said(N_("residual + BN at depth {d}: autocorrelation = {v} (needs ≥ {need})"), d=d, v=fmt(res),
                    need=f"{CORRELATED:g}"), math.isfinite(res) and res >= CORRELATED))
    used = [r["seeds"] for r in rows if r["depth"] == d and r["bn"] and r["bias"] == settings.bias]
    measured = {"depth": d, "seeds": min(used, default=0), "width": settings.width,
                "feedforward_bn": ff, "residual_bn": res,
                "feedforward_no_bn_no_bias": ff_trap, "residual_no_bn_no_bias": res_trap}
    claim = said(N_("width {width}, depth {d}, mean over {seeds} seeds, with batch norm: feed-forward |autocorrelation| ≤ "
                    "{white} (white noise), residual ≥ {corr}"), width=settings.width, d=d, seeds=min(used, default=0),
                 white=f"{WHITE_NOISE:g}", corr=f"{CORRELATED:g}")
    findings: list[str] = [said(N_("At depth {d} with batch norm the feed-forward net's neighbouring gradients correlate "
                                   "at {ff}, the residual net's at {res}."), d=d, ff=fmt(ff), res=fmt(res))]
    if math.isfinite(ff_trap) and math.isfinite(res_trap):
        findings.append(said(N_("Without batch norm and biases both stay near 1 ({ff} and {res}): such a net is "
                                "positively homogeneous, so along a line through 0 its gradient has one value left of 0 "
                                "and another right of it — no shattering to see."), ff=fmt(ff_trap), res=fmt(res_trap)))
    shallow = min(settings.depths)
    ff_shallow = _at(rows, "feed-forward", shallow, True, settings.bias)
    if math.isfinite(ff_shallow) and shallow != d:
        findings.append(said(N_("The feed-forward net starts correlated ({ff} at depth {shallow}) and decorrelates with "
                                "depth; the residual net decays much more slowly."), ff=fmt(ff_shallow), shallow=shallow))
    return Verdict(all(c[1] for c in checks), claim, measured, checks), findings


EXPLANATION = N_(
    "Each ReLU switches on or off depending on its input, so along the line the network is piecewise linear: "
    "its gradient is constant between the points where some unit switches. In a deep feed-forward net the "
    "number of switching points grows exponentially with depth, and the gradient's value on each piece is a "
    "product of many random matrices — neighbouring inputs soon see unrelated gradients, as in white noise. "
    "Training follows the gradient, and a gradient that is noise tells the optimiser little. A residual net "
    "adds each block's output to an identity path, so most of the gradient travels through shallow paths and "
    "neighbouring inputs keep similar gradients. Batch norm (or biases) matters for seeing it: without "
    "either, ReLU nets scale with their input, y(c·x) = c·y(x), and along a line through 0 the gradient has "
    "only two values — the trap a naive replication falls into.")
