"""The effective receptive field (Luo, Li, Urtasun, Zemel, NeurIPS 2016).

The ERF of an output unit is how strongly each input pixel moves it: |∂y_centre/∂x|, averaged over
inputs and random weights, each map normalised to sum 1. Luo et al. show that it is roughly Gaussian,
that its standard deviation grows as √n with n stacked convolutions — while the theoretical receptive
field grows as n — so it occupies a shrinking fraction of the theoretical one.

Two stacks of n 3×3 convolutions at initialisation (He fan-in weights, no normalisation, ReLU):
    plain:     x ← ReLU(conv(x))                       n layers
    residual:  x ← x + conv(ReLU(conv(ReLU(x))))        n/2 blocks of two convs (pre-activation)
each on inputs of exactly the theoretical receptive field, 2n + 1 pixels square (so no padding ever
reaches the centre unit). And the builder's network: the centre unit of its last feature map (before the
global pool), in evaluation mode, beside the receptive field its trace computes.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F

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
    said_all,
    stop_fn,
    threads,
)
from resnet_core.experiments.settings import ERF_BOUNDS as BOUNDS
from resnet_core.experiments.settings import MAX_DEPTHS, ErfSettings
from resnet_core.i18n import N_

PAPER = Paper(
    citation=N_("Luo, Li, Urtasun, Zemel, \"Understanding the Effective Receptive Field in Deep Convolutional Neural "
             "Networks\", NeurIPS 2016"),
    claim=N_("The effective receptive field is Gaussian-like and occupies only a fraction of the theoretical one: "
          "its size grows as √n with n layers while the theoretical field grows as n."),
    url="https://arxiv.org/abs/1701.04128")
TITLE = N_("Effective receptive field")

SQRT_TOLERANCE = 0.15  # std/√n within ±15 % of its mean over the depths
FAR_BELOW = 0.5  # at the largest depth, the ERF's ±2σ span covers at most this share of the theoretical RF
STACKS = (N_("plain"), N_("residual"))


def check(settings: ErfSettings) -> None:
    check_settings(settings, BOUNDS)
    if len(settings.depths) > MAX_DEPTHS:
        raise ExperimentError(f"depths lists at most {MAX_DEPTHS} depths, got {len(settings.depths)}")
    odd = [d for d in settings.depths if d % 2]
    if odd:
        raise ExperimentError(f"depths must be even (the residual stack has blocks of two convs), got {odd[0]}")
    if len(set(settings.depths)) < 2:
        raise ExperimentError("give at least two different depths to see how the ERF grows")


def stack_weights(n: int, channels: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    std = math.sqrt(2.0 / (channels * 9))  # He, fan-in
    return [torch.randn(channels, channels, 3, 3, generator=g) * std for _ in range(n)]


def stack_forward(x: torch.Tensor, weights: list[torch.Tensor], stack: str) -> torch.Tensor:
    """(B, C, S, S) → (B, C, S, S) through the plain or residual stack ('same' zero padding)."""
    if stack == "plain":
        for w in weights:
            x = torch.relu(F.conv2d(x, w, padding=1))
        return x
    for w1, w2 in zip(weights[0::2], weights[1::2], strict=True):
        x = x + F.conv2d(torch.relu(F.conv2d(torch.relu(x), w1, padding=1)), w2, padding=1)
    return x


def centre_gradient(forward, x: torch.Tensor) -> torch.Tensor:
    """|∂(Σ_channels y[:, :, centre])/∂x| summed over input channels, one map per sample, each summing to 1.

    forward: (B, C, H, W) → (B, C', h, w). Samples are independent (no batch statistics), so one backward
    pass gives every sample's own map.
    """
    x = x.detach().clone().requires_grad_(True)
    y = forward(x)
    h, w = y.shape[-2:]
    (g,) = torch.autograd.grad(y[:, :, h // 2, w // 2].sum(), x)
    m = g.abs().sum(1).double()  # (B, H, W)
    total = m.sum(dim=(1, 2), keepdim=True)
    return torch.where(total > 0, m / total.clamp_min(1e-300), torch.zeros_like(m))


def map_std(p: torch.Tensor) -> float:
    """Per-axis standard deviation (in pixels) of a normalised 2-D map around its own centre of mass:
    √((Var_row + Var_col) / 2)."""
    p = p.double() / p.sum()
    rows = torch.arange(p.shape[0], dtype=torch.float64)
    cols = torch.arange(p.shape[1], dtype=torch.float64)
    pr, pc = p.sum(1), p.sum(0)
    mr, mc = (pr * rows).sum(), (pc * cols).sum()
    vr, vc = (pr * (rows - mr) ** 2).sum(), (pc * (cols - mc) ** 2).sum()
    return float(torch.sqrt((vr + vc) / 2))


def stack_erf(n: int, stack: str, settings: ErfSettings, stop=lambda: False) -> torch.Tensor:
    size = 2 * n + 1
    maps = []
    for k in range(settings.seeds):
        if stop():
            raise Stopped
        weights = stack_weights(n, settings.channels, settings.seed + 1000 * n + k)
        x = torch.randn(settings.samples, settings.channels, size, size,
                        generator=torch.Generator().manual_seed(settings.seed + 7 * k + 1))
        maps.append(centre_gradient(lambda t, w=weights: stack_forward(t, w, stack), x))
    return torch.cat(maps).mean(0)  # (S, S)


def stack_cost(n: int, settings: ErfSettings) -> tuple[int, int]:
    """(bytes at the peak, multiply-adds) of one centre gradient through a stack of n layers on `samples`
    inputs of (2n + 1)² pixels: each layer keeps two C×S×S maps per image for the backward pass (its input
    and its ReLU's output), and the backward pass holds a few more."""
    side, c = 2 * n + 1, settings.channels
    one_map = settings.samples * c * side * side * 4
    memory = n * c * c * 9 * 4 + (2 * n + 6) * one_map
    return memory + max(64 << 20, memory // 10), 3 * n * c * c * 9 * side * side * settings.samples


def network_cost(spec, settings: ErfSettings) -> tuple[int, int]:
    """(bytes, multiply-adds) of the builder's network's ERF: one forward + backward on up to 4 images (a
    spec whose shapes do not meet, or too large an input, costs nothing here: the run says what is wrong)."""
    from resnet_core.structure.trace import trace
    t = trace(spec)
    if t.errors or max(spec.input_size) > MAX_NETWORK_INPUT:
        return 0, 0
    n = min(settings.samples, 4)
    return estimate_pass(t.param_bytes, t.activation_bytes, n, backward=True).total, 3 * t.mult_adds * n


def cost(settings: ErfSettings, spec=None) -> Cost:
    """The run's memory (its largest step: the deepest stack, or the network) and work (every stack, every
    seed, and the network)."""
    stacks = [stack_cost(n, settings) for n in settings.depths]
    memory = max(m for m, _ in stacks)
    work = sum(2 * settings.seeds * w for _, w in stacks)
    net = ""
    if spec is not None:
        m, w = network_cost(spec, settings)
        memory, work, net = max(memory, m), work + w, f", and {spec.name}"
    return Cost(f"the ERF stacks (up to {max(settings.depths)} layers, {settings.channels} channels, "
                f"{settings.samples} samples, {settings.seeds} seeds{net})", memory, work)


def _fewer_depths(s: ErfSettings) -> ErfSettings | None:
    kept = tuple(sorted(set(s.depths)))[:-1]
    return replace(s, depths=kept) if len(kept) >= 2 else None


SHRINKS = (lambda s: None if halve(s.samples, 1) is None else replace(s, samples=halve(s.samples, 1)),
           lambda s: None if halve(s.seeds, 1) is None else replace(s, seeds=halve(s.seeds, 1)),
           lambda s: None if halve(s.channels, 1) is None else replace(s, channels=halve(s.channels, 1)),
           _fewer_depths)


def run(settings: ErfSettings = ErfSettings(), should_stop=None, on_progress: OnProgress = no_progress,
        spec=None) -> ExperimentResult:
    """The two stacks at every depth; with `spec`, also the builder's network. Refused before it starts
    when its cost does not fit (`cost`)."""
    check(settings)
    if spec is not None and max(spec.input_size) > MAX_NETWORK_INPUT:
        raise ExperimentError(f"{spec.name} takes {spec.input_size[0]}×{spec.input_size[1]} inputs; the ERF of the "
                              f"builder's network is measured up to {MAX_NETWORK_INPUT}×{MAX_NETWORK_INPUT}")
    with admitted(settings, lambda s: cost(s, spec), SHRINKS):
        return _run(settings, should_stop, on_progress, spec)


def _run(settings: ErfSettings, should_stop, on_progress: OnProgress, spec) -> ExperimentResult:
    stop = stop_fn(should_stop)
    t0 = time.perf_counter()
    rows, maps = [], []
    stopped = False
    total = len(settings.depths) * 2 + (1 if spec is not None else 0)
    try:
        with threads(CPU_THREADS):
            for i, n in enumerate(sorted(settings.depths)):
                for j, stack in enumerate(STACKS):
                    on_progress((2 * i + j) / total, said(N_("{stack} stack of {n} layers"), stack=said(stack), n=n))
                    m = stack_erf(n, stack, settings, stop)
                    std = map_std(m)
                    rf = 2 * n + 1
                    rows.append({"stack": stack, "layers": n, "erf_std": std, "std_over_sqrt_n": std / math.sqrt(n),
                                 "theoretical_rf": rf, "share_of_rf": min(1.0, 4 * std / rf),
                                 "centre_weight": float(m[n, n])})
                    if n == max(settings.depths) or n == min(settings.depths):
                        maps += _map_rows(m, f"{stack}, {n} layers")
            network = None
            if spec is not None:
                on_progress((total - 1) / total, said(N_("the builder's network ({name})"), name=spec.name))
                network, m = network_erf(spec, settings)
                maps += _map_rows(m, f"{spec.name}")
    except Stopped:
        stopped = True
        network = None
    on_progress(1.0, said(N_("done")))
    verdict, findings = judge(rows, settings)
    if network is not None:
        findings.append(said(N_("{net}: the centre unit of {layer} has a theoretical receptive field of {rf} pixels; "
                                "its ERF has σ = {std} pixels, so ±2σ spans {width} pixels."), net=network["network"],
                             layer=network["layer"], rf=network["theoretical_rf"], std=fmt(network["erf_std"]),
                             width=fmt(4 * network["erf_std"])))
    tables = {"stacks": rows, "maps": maps}
    if network is not None:
        tables["network"] = [network]
    return ExperimentResult("erf", TITLE, PAPER, {**settings.describe(), "network": spec.name if spec else None},
                            tables, verdict, findings, EXPLANATION, time.perf_counter() - t0, stopped)


def _map_rows(m: torch.Tensor, label: str) -> list[dict]:
    top = float(m.max()) or 1.0
    h, w = m.shape
    return [{"map": label, "row": i - h // 2, "col": j - w // 2, "value": float(m[i, j]), "relative": float(m[i, j]) / top}
            for i in range(h) for j in range(w)]


MAX_NETWORK_INPUT = 256  # the builder's network: inputs larger than this side are refused (time)


def network_erf(spec, settings: ErfSettings) -> tuple[dict, torch.Tensor]:
    """The ERF of the centre unit of the network's last feature map, at init, in evaluation mode."""
    from resnet_core.lab.probes import hooks
    from resnet_core.structure.build import BuildError, build_model
    from resnet_core.structure.trace import trace

    t = trace(spec)
    if t.errors:
        raise ExperimentError(f"{spec.name} cannot be built: {t.errors[0]}")
    if max(spec.input_size) > MAX_NETWORK_INPUT:
        raise ExperimentError(f"{spec.name} takes {spec.input_size[0]}×{spec.input_size[1]} inputs; the ERF of the "
                              f"builder's network is measured up to {MAX_NETWORK_INPUT}×{MAX_NETWORK_INPUT}")
    try:
        model = build_model(spec, seed=settings.seed).eval()
    except BuildError as e:
        raise ExperimentError(str(e)) from None
    layer = model.stage_names[-1] if model.stage_names else "conv1"
    module = model.get_submodule(layer)
    seen: dict = {}

    def forward(x: torch.Tensor) -> torch.Tensor:
        with hooks() as hs:
            hs.add(module.register_forward_hook(lambda m, a, out: seen.__setitem__("out", out)))
            model(x)
        return seen["out"]

    n = min(settings.samples, 4)
    x = torch.randn(n, *spec.input_shape, generator=torch.Generator().manual_seed(settings.seed + 1))
    m = centre_gradient(forward, x).mean(0)
    std = map_std(m)
    rf = t.receptive_field or 0
    return ({"network": spec.name, "layer": layer, "theoretical_rf": rf, "erf_std": std,
             "share_of_rf": min(1.0, 4 * std / rf) if rf else math.nan, "input": list(spec.input_shape)}, m)


def fitted_exponent(n: list[int], std: list[float]) -> float:
    """b of the least-squares line log σ = a + b·log n (σ ∝ n^b; Luo et al.'s random walk gives b = ½)."""
    xs, ys = [math.log(v) for v in n], [math.log(v) for v in std]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else math.nan


def judge(rows: list[dict], settings: ErfSettings) -> tuple[Verdict, list[str]]:
    plain = sorted((r for r in rows if r["stack"] == "plain"), key=lambda r: r["layers"])
    res = {r["layers"]: r for r in rows if r["stack"] == "residual"}
    checks: list[tuple[str, bool]] = []
    findings: list[str] = []
    measured: dict[str, Any] = {}
    if len(plain) >= 2:
        ratios = [r["std_over_sqrt_n"] for r in plain]
        mean = sum(ratios) / len(ratios)
        spread = max(abs(v / mean - 1) for v in ratios)
        measured.update(std_over_sqrt_n=dict((str(r["layers"]), r["std_over_sqrt_n"]) for r in plain),
                        largest_deviation=spread)
        exponent = fitted_exponent([r["layers"] for r in plain], [r["erf_std"] for r in plain])
        ns = ", ".join(str(r["layers"]) for r in plain)
        checks.append((said(N_("plain stack: σ/√n = {ratios} for n = {ns} (fitted: σ ∝ n^{exponent}): at most "
                               "{spread} % from its mean (needs ≤ {need} %)"), ratios=", ".join(fmt(v) for v in ratios),
                            ns=ns, exponent=f"{exponent:.2f}", spread=f"{100 * spread:.1f}",
                            need=f"{100 * SQRT_TOLERANCE:g}"), spread <= SQRT_TOLERANCE))
        last = plain[-1]
        measured.update(share_of_rf_at_largest=last["share_of_rf"])
        checks.append((said(N_("plain stack of {n} layers: ±2σ = {width} pixels is {share} % of the theoretical RF of "
                               "{rf} (needs ≤ {need} %)"), n=last["layers"], width=fmt(4 * last["erf_std"]),
                            share=f"{100 * last['share_of_rf']:.0f}", rf=last["theoretical_rf"],
                            need=f"{100 * FAR_BELOW:g}"), last["share_of_rf"] <= FAR_BELOW))
        measured.update(fitted_exponent=exponent)
        pace = (said(N_(" — a little faster than √n at these depths")) if exponent > 0.52 else
                said(N_(" — a little slower than √n at these depths")) if exponent < 0.48 else "")
        findings.append(said(N_("σ/√n goes from {first} to {last}: a least-squares fit of log σ on log n over n = {ns} "
                                "gives σ ∝ n^{exponent} (Luo et al.: √n, the exponent 0.5){pace}."),
                             first=fmt(ratios[0]), last=fmt(ratios[-1]), ns=ns, exponent=f"{exponent:.2f}", pace=pace))
        findings.append(said(N_("Going from {a} to {b} layers multiplies the theoretical RF by {rf} but the ERF's σ only "
                                "by {std} (√ of the depth ratio: {root})."), a=plain[0]["layers"],
                             b=plain[-1]["layers"], rf=fmt(plain[-1]["theoretical_rf"] / plain[0]["theoretical_rf"]),
                             std=fmt(plain[-1]["erf_std"] / plain[0]["erf_std"]),
                             root=fmt(math.sqrt(plain[-1]["layers"] / plain[0]["layers"]))))
    deep = [r for r in plain if r["layers"] >= 8 and r["layers"] in res]
    if deep:
        smaller = [(r["layers"], res[r["layers"]]["erf_std"], r["erf_std"]) for r in deep]
        measured.update(residual_vs_plain_std={str(n): [a, b] for n, a, b in smaller})
        checks.append((said(N_("residual σ < plain σ at {depths}"), depths=said_all(
            [said(N_("{n} layers ({a} vs {b})"), n=n, a=fmt(a), b=fmt(b)) for n, a, b in smaller])),
                       all(a < b for _, a, b in smaller)))
        findings.append(said(N_("The residual stack's ERF is the more concentrated one: its identity paths reach the "
                                "input through fewer convolutions, and the shortest path (no convolution at all) lands "
                                "on the centre pixel itself.")))
    ok = len(checks) == 3 and all(c[1] for c in checks)
    claim = said(N_("stacks of 3×3 convs at init, {lo} to {hi} layers: σ/√n constant within ±{tol} %, the ERF far below "
                    "the theoretical RF (±2σ ≤ {far} % of it at the largest depth), and the residual stack's ERF smaller "
                    "than the plain stack's from 8 layers on"), lo=min(settings.depths), hi=max(settings.depths),
                 tol=f"{100 * SQRT_TOLERANCE:g}", far=f"{100 * FAR_BELOW:g}")
    return Verdict(ok, claim, measured, tuple(checks)), findings


EXPLANATION = N_(
    "A pixel at the edge of the theoretical receptive field reaches the centre output through only one chain of "
    "kernel taps, a pixel near the centre through a huge number of them. Adding up the chains is like adding "
    "random steps: after n layers the contributions spread like a random walk of n steps, a Gaussian whose "
    "width grows as √n, while the theoretical field grows as 2n + 1. So a deep net 'sees' much less than its "
    "receptive field suggests — most of its attention sits near the centre. Residual connections shrink it "
    "further: many of their paths skip convolutions, so they are shorter, and short paths spread less.")
