"""Signal propagation at initialisation (De & Smith, NeurIPS 2020; Brock, De & Smith, ICLR 2021).

A Signal Propagation Plot: for a freshly initialised network and one batch of unit-Gaussian inputs,
the variance of the residual stream after every block (over all its units), with its two parts — the
average channel variance and the average squared channel mean — for four variants of the same spec — batch norm on/off × skip connections on/off.

Why it comes out as it does, for a pre-activation residual net x_{ℓ+1} = x_ℓ + f(x_ℓ): with batch norm
at the start of each branch, f(x_ℓ) has unit variance whatever x_ℓ is, so the stream's variance grows by
about 1 per block (≈ ℓ + 1 after block ℓ) and the branch's share of the stream shrinks — each block is
close to the identity. Without batch norm, a He-initialised branch preserves its input's second moment,
so x + f(x) has about twice the variance of x: it doubles per block (2¹⁶ ≈ 65,000 over 16 blocks).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import torch

from resnet_core.device import estimate_forward
from resnet_core.experiments.common import (
    Cost,
    ExperimentError,
    ExperimentResult,
    OnProgress,
    Paper,
    Verdict,
    admitted,
    check_settings,
    fmt,
    halve,
    no_progress,
    said,
    seeded,
    stop_fn,
)
from resnet_core.experiments.settings import SIGNAL_BOUNDS as BOUNDS
from resnet_core.experiments.settings import SignalSettings, reference_spec
from resnet_core.i18n import N_
from resnet_core.lab.probes import blocks_of, hooks
from resnet_core.structure.build import BuildError, build_model
from resnet_core.structure.plan import plan as make_plan

PAPER = Paper(
    citation=N_("De & Smith, \"Batch Normalization Biases Residual Blocks Towards the Identity Function in Deep "
             "Networks\", NeurIPS 2020; Brock, De & Smith, \"Characterizing Signal Propagation to Close the "
             "Performance Gap in Unnormalized ResNets\", ICLR 2021"),
    claim=N_("In a normalised residual network the variance of the residual stream grows linearly with depth "
          "(≈ ℓ + 1 after block ℓ), so each block is close to the identity at initialisation; without "
          "normalisation it grows exponentially."),
    url="https://arxiv.org/abs/2002.10444")

TITLE = N_("Signal propagation at initialisation")

VARIANTS = ((N_("BN + skips"), "batch", True), (N_("BN, no skips"), "batch", False),
            (N_("no BN + skips"), "none", True), (N_("no BN, no skips"), "none", False))

MIN_GROWTH = 100.0  # without BN (skips on), variance after the last block ÷ before the first at least this
LINEAR_BAND = (0.5, 2.0)  # with BN and skips: variance after block ℓ ÷ (ℓ + 1) within this band, every ℓ


def channel_stats(x: torch.Tensor) -> tuple[float, float, float]:
    """(variance over every unit, average channel variance, average squared channel mean) of (B, C, H, W).

    The last two are the Signal Propagation Plot's pair (Brock et al. 2021). The first is the variance the
    theory's ℓ + 1 speaks of: its expectation runs over the random weights too, so a channel's mean — set by
    that channel's random weights, zero on average over them — counts as variance there. It is about the
    sum of the other two (exactly so when the channel means average to zero).
    """
    x = x.detach().double()
    c = x.transpose(0, 1).reshape(x.shape[1], -1)  # (C, B·H·W)
    return (float(x.var(unbiased=False)), float(c.var(dim=1, unbiased=False).mean()),
            float((c.mean(dim=1) ** 2).mean()))


def stream_stats(model: torch.nn.Module, x: torch.Tensor) -> list[dict]:
    """The residual stream entering the first block (block 0) and after every block, in train mode."""
    blocks = blocks_of(model)
    if not blocks:
        raise ExperimentError("this network has no residual blocks to follow the stream through")
    rows: list[dict] = []

    def record(index: int, name: str, t: torch.Tensor) -> None:
        var, cvar, mean2 = channel_stats(t)
        rows.append({"block": index, "name": name, "variance": var, "channel_variance": cvar,
                     "squared_channel_mean": mean2})

    was = model.training
    with hooks() as hs, torch.no_grad():
        hs.add(blocks[0][1].register_forward_pre_hook(lambda m, a: record(0, N_("input of block 1"), a[0])))
        for i, (name, mod) in enumerate(blocks, start=1):
            hs.add(mod.register_forward_hook(lambda m, a, out, i=i, name=name: record(i, name, out)))
        try:
            model.train()
            model(x)
        finally:
            model.train(was)
    return rows


def cost(settings: SignalSettings) -> Cost:
    """Memory and work of the run: four forward passes without autograd (one per variant, one model alive
    at a time) on `batch` images, with the batch-norm variant's trace as the bound (a spec whose shapes do not meet costs
    nothing here: the run says what is wrong)."""
    from resnet_core.structure.trace import Trace
    spec = settings.spec or reference_spec()
    p = make_plan(spec.replace(norm="batch", skip=True))
    what = f"the signal propagation of {spec.name} on {settings.batch} images"
    if p.errors:
        return Cost(what, 0, 0)
    t = Trace(p)
    images = settings.batch * 4 * math.prod(p.input_shape)
    largest = max((r.activation_bytes for r in t.layers), default=0)
    memory = estimate_forward(t.param_bytes, largest, settings.batch).total + images
    return Cost(what, memory, len(VARIANTS) * t.mult_adds * settings.batch)


SHRINKS = (lambda s: None if halve(s.batch, 2) is None else replace(s, batch=halve(s.batch, 2)),)


def run(settings: SignalSettings = SignalSettings(), should_stop=None, on_progress: OnProgress = no_progress
        ) -> ExperimentResult:
    """The four variants' streams, judged; refused before it starts when its cost does not fit (`cost`)."""
    check_settings(settings, BOUNDS)
    with admitted(settings, cost, SHRINKS):
        return _run(settings, should_stop, on_progress)


def _run(settings: SignalSettings, should_stop, on_progress: OnProgress) -> ExperimentResult:
    stop = stop_fn(should_stop)
    spec = settings.spec or reference_spec()
    t0 = time.perf_counter()
    with seeded(settings.seed + 7919):
        x = torch.randn(settings.batch, *spec.input_shape)  # (B, C, H, W) unit Gaussian
    rows: list[dict] = []
    stopped = False
    for k, (label, norm, skip) in enumerate(VARIANTS):
        if stop():
            stopped = True
            break
        on_progress(k / len(VARIANTS), said(N_("variant {label}"), label=said(label)))
        variant = spec.replace(norm=norm, skip=skip)
        p = make_plan(variant)
        if p.errors:
            raise ExperimentError(f"{label}: {p.errors[0]}")
        try:
            model = build_model(p, seed=settings.seed)
        except BuildError as e:
            raise ExperimentError(str(e)) from None
        for r in stream_stats(model, x):
            rows.append({"variant": label, "bn": norm == "batch", "skips": skip, **r,
                         "reference_l_plus_1": r["block"] + 1})
    on_progress(1.0, said(N_("done")))
    verdict, findings = judge(rows, len(make_plan(spec).blocks))
    return ExperimentResult("signal", TITLE, PAPER, {**settings.describe(), "variants": [v[0] for v in VARIANTS]},
                            {"stream": rows}, verdict, findings, EXPLANATION, time.perf_counter() - t0, stopped)


def _series(rows: list[dict], variant: str) -> list[dict]:
    return sorted((r for r in rows if r["variant"] == variant), key=lambda r: r["block"])


def judge(rows: list[dict], n_blocks: int) -> tuple[Verdict, list[str]]:
    nobn = _series(rows, "no BN + skips")
    bn = _series(rows, "BN + skips")
    measured: dict = {"blocks": n_blocks}
    checks = []
    findings: list[str] = []
    if nobn:
        v0, vl = nobn[0]["variance"], nobn[-1]["variance"]
        growth = vl / v0 if v0 > 0 else math.inf
        per_block = growth ** (1 / max(1, len(nobn) - 1)) if math.isfinite(growth) and growth > 0 else math.nan
        measured.update(no_bn_growth=growth, no_bn_growth_per_block=per_block)
        checks.append((said(N_("without BN the variance grows {growth}× over {n} blocks (needs ≥ {need}×)"),
                            growth=fmt(growth), n=len(nobn) - 1, need=f"{MIN_GROWTH:g}"), growth >= MIN_GROWTH))
        findings.append(said(N_("Without batch norm the stream's variance goes from {v0} to {vl}: ×{per_block} per "
                                "block on average."), v0=fmt(v0), vl=fmt(vl), per_block=fmt(per_block)))
    if bn:
        ratios = [r["variance"] / (r["block"] + 1) for r in bn if r["block"] >= 1]
        lo, hi = (min(ratios), max(ratios)) if ratios else (math.nan, math.nan)
        measured.update(bn_ratio_min=lo, bn_ratio_max=hi, bn_final_variance=bn[-1]["variance"])
        checks.append((said(N_("with BN and skips, variance ÷ (ℓ + 1) stays within {lo}–{hi} (needs {low}–{high})"),
                            lo=fmt(lo), hi=fmt(hi), low=f"{LINEAR_BAND[0]:g}", high=f"{LINEAR_BAND[1]:g}"),
                       bool(ratios) and LINEAR_BAND[0] <= lo and hi <= LINEAR_BAND[1]))
        last = bn[-1]
        first = bn[0]
        if first["block"] == 0 and len(bn) > 1:
            r0 = first["variance"]
            step = (last["variance"] - r0) / last["block"]
            outside = not LINEAR_BAND[0] <= r0 <= LINEAR_BAND[1]
            measured.update(stem_variance=r0, variance_added_per_block=step)
            findings.append(said(N_("Row ℓ = 0 is the stem's output entering block 1 (variance {r0}, so ÷ (ℓ + 1) = "
                                    "{r0}{outside}); it is not in the check: no residual block has acted yet, its "
                                    "variance is set by the stem's convolution at initialisation, while ℓ + 1 assumes "
                                    "it is 1. From there the blocks add ({last} − {r0}) / {blocks} = {step} per block "
                                    "on average (the theory: about 1)."),
                                 r0=fmt(r0), outside=said(N_(", outside the band")) if outside else "",
                                 last=fmt(last["variance"]), blocks=last["block"], step=fmt(step)))
        findings.append(said(N_("With batch norm and skips the variance after the last block is {v} against ℓ + 1 = "
                                "{l1}: {within} of it within the channels and {means} in the channels' means (the "
                                "ReLU before each conv makes its inputs positive, so every output channel gets a "
                                "random mean)."), v=fmt(last["variance"]), l1=last["block"] + 1,
                             within=fmt(last["channel_variance"]), means=fmt(last["squared_channel_mean"])))
    plain_bn = _series(rows, "BN, no skips")
    if plain_bn:
        findings.append(said(N_("Without skips but with batch norm it stays near {v}: each layer renormalises, nothing "
                                "accumulates."), v=fmt(plain_bn[-1]["variance"])))
    ok = len(checks) == 2 and all(c[1] for c in checks)
    claim = said(N_("16-block CIFAR-style residual nets at init: without BN the variance grows ≥ {growth}× over the "
                    "blocks; with BN and skips the variance after block ℓ stays within {low}–{high}× of ℓ + 1"),
                 growth=f"{MIN_GROWTH:g}", low=f"{LINEAR_BAND[0]:g}", high=f"{LINEAR_BAND[1]:g}")
    return Verdict(ok, claim, measured, tuple(checks)), findings


EXPLANATION = N_(
    "Each residual block adds its branch to the stream: x ← x + f(x). If the branch's output is independent of "
    "x, variances add. With batch norm at the start of the branch, f(x) has variance ≈ 1 whatever x is, so "
    "the stream gains about 1 per block and reaches ≈ ℓ + 1 — the branch becomes a small correction to an "
    "ever larger stream, which is why deep normalised ResNets start out close to the identity and train "
    "easily. Without batch norm a He-initialised branch returns a signal as large as its input, so the "
    "stream doubles per block: after 16 blocks it is tens of thousands of times larger, which is why "
    "unnormalised ResNets need extra tricks (a scale α on each branch, SkipInit, zero-initialised last "
    "layers). The plain nets have no stream to accumulate: their variance stays flat. The variance here is over "
    "all the stream's units; about a third of it sits in the channels' means (each conv sees ReLU outputs, which "
    "are positive, so each channel gets a random offset), the rest within the channels — the two parts the "
    "Signal Propagation Plot draws.")

