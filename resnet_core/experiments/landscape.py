"""Loss landscape (Li, Xu, Taylor, Studer, Goldstein, NeurIPS 2018): filter-normalised slices.

Around trained weights θ, the training loss along random directions: L(θ + α·δ) in 1-D and
L(θ + α·δ + β·η) in 2-D. Directions are filter-normalised, as in the paper: each filter (one output
channel of a conv, one output unit of a linear layer) of a Gaussian direction is rescaled to the norm
of the same filter of θ, so that α = 1 moves every filter by its own size; biases and batch-norm
parameters get a zero direction (the paper's "ignore biasbn"), and the batch-norm running statistics
stay as trained (evaluation mode). The same seed gives the same directions for both networks' layouts.

Measures: the loss at filter-normalised distance 1 (mean of α = −1 and α = +1) of the residual net and
of its plain twin; and, on the 2-D slice, the share of interior grid points where the surface is locally
convex — where the finite-difference Hessian [[L_αα, L_αβ], [L_αβ, L_ββ]] is positive semi-definite.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from resnet_core.device import CPU_THREADS, estimate_forward
from resnet_core.experiments.common import (
    Cost,
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
    pct,
    said,
    stop_fn,
    threads,
)
from resnet_core.experiments.pair_cost import pair_cost, pair_shrinks, trained_pair_figures
from resnet_core.experiments.settings import LANDSCAPE_BOUNDS as BOUNDS
from resnet_core.experiments.settings import LandscapeSettings
from resnet_core.experiments.trained import TrainedPair, accuracy, ensure_pair
from resnet_core.i18n import N_

PAPER = Paper(
    citation=N_("Li, Xu, Taylor, Studer, Goldstein, \"Visualizing the Loss Landscape of Neural Nets\", NeurIPS 2018"),
    claim=N_("Skip connections keep the loss surface of deep networks smooth and nearly convex, while the plain "
          "twin's turns chaotic and sharply non-convex."),
    url="https://arxiv.org/abs/1712.09913")
LOSS_FLOOR = 0.05  # cross-entropy below this (≈ 95 % probability on the right class): the net fits the image
FITTED = 0.999  # … and this training accuracy: "fits the training set" (every image right)
TRAINED = 0.9  # training accuracy below this on the loss's images: the net is far from trained

TITLE = N_("Loss landscape")

LOSS_RATIO = 10.0  # at distance 1, the plain net's loss at least this multiple of the residual net's


# ------------------------------------------------------------------------------------------- directions

def moved(name: str, p: torch.Tensor) -> bool:
    """Whether a parameter gets a direction: conv and linear weights do; biases and BN parameters (1-D) do not."""
    return p.dim() > 1


def random_direction(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """A Gaussian direction over the model's parameters, in the order of named_parameters (seeded)."""
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in model.named_parameters()}


def filter_normalise(direction: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Li et al.'s normalisation: each filter d_i ← d_i / ‖d_i‖ · ‖θ_i‖ (filters: slices along dim 0);
    parameters of one dimension (biases, BN γ/β) get zero."""
    out = {}
    for name, p in model.named_parameters():
        d = direction[name].to(p.device, p.dtype)
        if not moved(name, p):
            out[name] = torch.zeros_like(p)
            continue
        d_flat, w_flat = d.reshape(d.shape[0], -1), p.detach().reshape(p.shape[0], -1)
        dn = d_flat.norm(dim=1, keepdim=True)
        out[name] = (d_flat / dn.clamp_min(1e-12) * w_flat.norm(dim=1, keepdim=True)).reshape(p.shape)
    return out


def training_subset(pair: TrainedPair, images: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = pair.data.n_train
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))[:min(images, n)]
    return pair.data.x_train[idx], pair.data.y_train[idx]


@torch.no_grad()
def loss_at(model: nn.Module, theta: dict[str, torch.Tensor], dirs: Sequence[dict[str, torch.Tensor]],
            coeffs: Sequence[float], x: torch.Tensor, y: torch.Tensor) -> float:
    """Cross-entropy on (x, y) at θ + Σ c_k d_k, in eval mode; the parameters are set, not restored."""
    for name, p in model.named_parameters():
        value = theta[name].clone()
        for c, d in zip(coeffs, dirs, strict=True):
            if c:
                value.add_(d[name], alpha=c)
        p.copy_(value)
    model.eval()
    loss = float(F.cross_entropy(model(x), y))
    return loss if math.isfinite(loss) else math.inf


def convex_share(grid: list[list[float]]) -> float:
    """Share of interior points of a square grid of losses where the finite-difference Hessian is PSD."""
    n = len(grid)
    convex, total = 0, 0
    for i in range(1, n - 1):
        for j in range(1, n - 1):
            f = grid
            faa = f[i + 1][j] - 2 * f[i][j] + f[i - 1][j]
            fbb = f[i][j + 1] - 2 * f[i][j] + f[i][j - 1]
            fab = (f[i + 1][j + 1] - f[i + 1][j - 1] - f[i - 1][j + 1] + f[i - 1][j - 1]) / 4
            total += 1
            if all(math.isfinite(v) for v in (faa, fbb, fab)) and faa >= 0 and fbb >= 0 and faa * fbb - fab * fab >= 0:
                convex += 1
    return convex / total if total else math.nan


def _axis(span: float, points: int) -> list[float]:
    """`points` evenly spaced values from −span to span, computed in float64 (so 0 and ±span are exact)."""
    return [span * (2 * i - (points - 1)) / (points - 1) for i in range(points)]


def slices(model: nn.Module, x: torch.Tensor, y: torch.Tensor, settings: LandscapeSettings, label: str,
           tick) -> tuple[list[dict], list[dict]]:
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    d1 = filter_normalise(random_direction(model, settings.seed), model)
    d2 = filter_normalise(random_direction(model, settings.seed + 1), model)
    try:
        alphas = _axis(settings.span, settings.points_1d)
        one = []
        for a in alphas:
            one.append({"net": label, "alpha": a, "loss": loss_at(model, theta, [d1], [a], x, y)})
            tick()
        grid_axis = _axis(settings.span, settings.points_2d)
        two = []
        for a in grid_axis:
            for b in grid_axis:
                two.append({"net": label, "alpha": a, "beta": b, "loss": loss_at(model, theta, [d1, d2], [a, b], x, y)})
                tick()
    finally:
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(theta[name])
    return one, two


def cost(settings: LandscapeSettings, pair: TrainedPair | None = None) -> Cost:
    """Training the pair (unless `pair` is given), then points_1d + points_2d² losses per net on `images`
    training images at once: a private copy of the net, θ and two directions (five copies of the weights)
    and one forward pass's activations."""
    if pair is None:
        pc = pair_cost(settings.pair)
    else:
        specs, n_train, n_test = trained_pair_figures(pair)
        pc = pair_cost(settings.pair, specs, n_train, n_test)
    images = max(1, min(settings.images, pc.n_train))
    losses = 2 * (settings.points_1d + settings.points_2d ** 2)
    slice_memory = estimate_forward(5 * pc.param_bytes, pc.largest_activation_bytes, images).total
    trains = "" if pair is not None else f"training {settings.pair.residual} and its twin ({settings.pair.steps} " \
        f"steps at batch {settings.pair.batch_size}, {settings.pair.input_size}×{settings.pair.input_size}), then "
    return Cost(f"the loss landscape: {trains}{losses} losses on {images:,} images", max(pc.memory, slice_memory),
                pc.work + losses * images * pc.mult_adds)


def _fewer_points(s: LandscapeSettings) -> LandscapeSettings | None:
    side = max(3, (s.points_2d // 2) | 1)
    return replace(s, points_2d=side) if side < s.points_2d else None


def _fewer_line_points(s: LandscapeSettings) -> LandscapeSettings | None:
    n = max(3, (s.points_1d // 2) | 1)
    return replace(s, points_1d=n) if n < s.points_1d else None


SHRINKS = (lambda s: None if halve(s.images, 8) is None else replace(s, images=halve(s.images, 8)), _fewer_points,
           _fewer_line_points, *pair_shrinks())


def run(settings: LandscapeSettings = LandscapeSettings(), pair: TrainedPair | None = None, should_stop=None,
        on_progress: OnProgress = no_progress, make_pair: Callable[[], TrainedPair] | None = None) -> ExperimentResult:
    """The 1-D and 2-D slices of `pair` (or of a pair trained first from settings.pair), judged. Refused
    before it starts when its cost (training included) does not fit (`cost`)."""
    check_settings(settings, BOUNDS)
    if make_pair is not None:  # the caller trains (or finds) the pair: inside the admission, counted as training
        with admitted(settings, cost, SHRINKS):
            return _run(settings, make_pair(), should_stop, on_progress)
    with admitted(settings, lambda s: cost(s, pair), SHRINKS if pair is None else SHRINKS[:3]):
        return _run(settings, pair, should_stop, on_progress)


def _run(settings: LandscapeSettings, pair: TrainedPair | None, should_stop, on_progress: OnProgress
         ) -> ExperimentResult:
    stop = stop_fn(should_stop)
    t0 = time.perf_counter()
    pair, base = ensure_pair(pair, settings.pair, stop, on_progress, 0.6, "the landscape needs trained networks")
    x, y = training_subset(pair, settings.images, settings.seed)
    with threads(CPU_THREADS):  # how far each net is from fitting these images: said beside the slices
        fitted = {label: accuracy(pair.models[label], x, y) for label in (pair.residual_label, pair.plain_label)}
    total = 2 * (settings.points_1d + settings.points_2d ** 2)
    done = [0]

    def tick() -> None:
        done[0] += 1
        on_progress(base + (1 - base) * done[0] / total, said(N_("{done}/{total} loss evaluations"), done=done[0], total=total))
        if stop():
            raise Stopped

    one, two = [], []
    stopped = False
    import copy
    try:
        with threads(CPU_THREADS):
            for role, label in (("residual", pair.residual_label), ("plain", pair.plain_label)):
                model = copy.deepcopy(pair.models[label])  # a private copy: its weights are moved
                a, b = slices(model, x, y, settings, label, tick)
                one += [{**r, "role": role} for r in a]
                two += [{**r, "role": role} for r in b]
    except Stopped:
        stopped = True
    on_progress(1.0, said(N_("done")))
    verdict, findings, summary = judge(one, two, pair, settings, fitted, int(len(y)))
    return ExperimentResult("landscape", TITLE, PAPER,
                            {**settings.describe(), "networks": [pair.residual_label, pair.plain_label],
                             "source": pair.source, "images_used": int(len(y))},
                            {"slice_1d": one, "slice_2d": two, "summary": summary}, verdict, findings, EXPLANATION,
                            time.perf_counter() - t0, stopped, extra={"pair": pair})


def _ends(one: list[dict], role: str, span: float) -> float:
    vals = [r["loss"] for r in one if r["role"] == role and abs(abs(r["alpha"]) - 1.0) < 1e-5]
    return sum(vals) / len(vals) if len(vals) == 2 else math.nan


def judge(one, two, pair: TrainedPair, settings: LandscapeSettings, fitted: dict[str, float] | None = None,
          images: int = 0):
    """The verdict on the slices, and what they rest on: each net's training accuracy on the images of the
    loss (`fitted`, by label), so that a net far from trained is said to be, and two nets that both fit the
    training set are said to, by an absolute floor on the loss, not by the ratio of two tiny losses."""
    fitted = fitted or {}
    summary: list[dict[str, Any]] = []  # one row per net: its label, role and measured floats
    checks: list[tuple[str, bool]] = []
    measured: dict[str, float] = {}
    findings: list[str] = []
    for role, label in (("residual", pair.residual_label), ("plain", pair.plain_label)):
        rows = [r for r in two if r["role"] == role]
        side = settings.points_2d
        grid = [[rows[i * side + j]["loss"] for j in range(side)] for i in range(side)] if len(rows) == side * side else []
        line = [r for r in one if r["role"] == role]
        centre = [min(line, key=lambda r: abs(r["alpha"]))["loss"]] if line else []
        summary.append({"net": label, "role": role, "train_accuracy": fitted.get(label, math.nan),
                        "loss_at_0": centre[0] if centre else math.nan,
                        "loss_at_distance_1": _ends(one, role, settings.span),
                        "convex_share_2d": convex_share(grid) if grid else math.nan,
                        "max_loss_2d": max((r["loss"] for r in rows), default=math.nan)})
    res, plain = summary
    if math.isnan(res["loss_at_distance_1"]) or math.isnan(plain["loss_at_distance_1"]):
        ratio = math.nan
        checks.append((said(N_("the 1-D slice must pass through α = −1 and α = +1 (e.g. span 1)")), False))
    else:
        ratio = plain["loss_at_distance_1"] / res["loss_at_distance_1"] if res["loss_at_distance_1"] > 0 else math.inf
        checks.append((said(N_("at filter-normalised distance 1: {plain} loss {plain_loss} is {ratio}× {res}'s "
                               "{res_loss} (needs ≥ {need}×)"), plain=pair.plain_label,
                            plain_loss=fmt(plain["loss_at_distance_1"]), ratio=fmt(ratio), res=pair.residual_label,
                            res_loss=fmt(res["loss_at_distance_1"]), need=f"{LOSS_RATIO:g}"),
                       ratio >= LOSS_RATIO))
    checks.append((said(N_("locally convex share of the 2-D slice: {res} {res_share} %, {plain} {plain_share} % (the "
                           "residual net must be the more convex)"), res=pair.residual_label,
                        res_share=f"{100 * res['convex_share_2d']:.0f}", plain=pair.plain_label,
                        plain_share=f"{100 * plain['convex_share_2d']:.0f}"),
                   res["convex_share_2d"] > plain["convex_share_2d"]))
    measured.update(loss_ratio_at_1=ratio, residual_loss_at_1=res["loss_at_distance_1"],
                    plain_loss_at_1=plain["loss_at_distance_1"], residual_convex_share=res["convex_share_2d"],
                    plain_convex_share=plain["convex_share_2d"])
    findings += fit_findings(res, plain, images)
    findings.append(said(N_("One filter-normalised step away from the trained weights the loss is {a} ({res}) and {b} "
                            "({plain})."), a=fmt(res["loss_at_distance_1"]), res=res["net"],
                         b=fmt(plain["loss_at_distance_1"]), plain=plain["net"]))
    findings.append(said(N_("Over the 2-D slice the loss reaches {a} for {res} and {b} for {plain}."),
                         a=fmt(res["max_loss_2d"]), res=pair.residual_label, b=fmt(plain["max_loss_2d"]),
                         plain=pair.plain_label))
    claim = said(N_("trained residual net and plain twin: at filter-normalised distance 1 the plain net's loss is ≥ "
                    "{ratio}× the residual net's, and the residual net's 2-D slice is the more convex (share of grid "
                    "points where the finite-difference Hessian is positive semi-definite)"), ratio=f"{LOSS_RATIO:g}")
    return Verdict(all(c[1] for c in checks), claim, measured, tuple(checks)), findings, summary


def fit_findings(res: dict[str, Any], plain: dict[str, Any], images: int) -> list[str]:
    """Where each slice starts: both nets fit the training set (by an absolute floor on the loss and full
    accuracy), or how far each is from it."""
    out: list[str] = []
    on = said(N_(" on these {n} training images"), n=f"{images:,}") if images else ""
    nets = (res, plain)
    if all(r["loss_at_0"] < LOSS_FLOOR and r["train_accuracy"] >= FITTED for r in nets):
        return [said(N_("Both fit the training set: at their trained weights the loss is {a} ({res}) and {b} "
                        "({plain}), both below {floor}, at {res_acc} and {plain_acc} training accuracy{on}: the "
                        "slices compare the shapes of two minima, not their heights."), a=fmt(res["loss_at_0"]),
                     res=res["net"], b=fmt(plain["loss_at_0"]), plain=plain["net"], floor=f"{LOSS_FLOOR:g}",
                     res_acc=pct(res["train_accuracy"]), plain_acc=pct(plain["train_accuracy"]), on=on)]
    out.append(said(N_("At the trained weights the training loss is {a} ({res}, {res_acc} training accuracy{on}) and "
                       "{b} ({plain}, {plain_acc})."), a=fmt(res["loss_at_0"]), res=res["net"],
                    res_acc=pct(res["train_accuracy"]), on=on, b=fmt(plain["loss_at_0"]), plain=plain["net"],
                    plain_acc=pct(plain["train_accuracy"])))
    for r in nets:
        if math.isfinite(r["train_accuracy"]) and r["train_accuracy"] < TRAINED:
            out.append(said(N_("{net} is far from trained: {acc} training accuracy{on}, so its slice shows the loss "
                               "around where its training stopped, not around a minimum; the comparison is of what the "
                               "same training made of each net."), net=r["net"], acc=pct(r["train_accuracy"]), on=on))
    return out


EXPLANATION = N_(
    "A trained network sits at the bottom of a valley of the loss. Moving every filter by its own size in a "
    "random direction (filter normalisation makes the step comparable between layers and networks, whatever "
    "their scale) shows how wide and how regular that valley is. Without skips, a small change to an early "
    "layer is amplified by every layer after it, so the loss rises steeply and the surface is full of ridges "
    "and pits — hard for gradient descent. With skips, each block only adds a correction to the identity path, "
    "so a perturbation disturbs a few paths and the surface stays a wide, smooth bowl.")
