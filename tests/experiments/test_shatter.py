"""Shattered gradients: the gradient against a finite difference, the autocorrelation against its
definition, the homogeneity trap, and the acceptance at depth 50 on fewer, narrower nets."""

import math

import numpy as np
import pytest
import torch

from resnet_core.experiments import shatter
from resnet_core.experiments.common import ExperimentError


@pytest.mark.parametrize("arch", shatter.ARCHS)
@pytest.mark.parametrize("bn,bias", [(True, True), (False, True), (True, False)])
def test_gradient_matches_a_finite_difference(arch, bn, bias):
    x = torch.linspace(-2, 2, 64, dtype=torch.float64)
    net = shatter.LineNet(arch, 6, 16, bn, bias, seed=2, dtype=torch.float64)
    g = shatter.gradient_along(net, x)
    net.freeze_stats(x)  # the statistics the gradient held constant, now fixed for the finite difference
    eps = 1e-6
    with torch.no_grad():
        fd = (net(x + eps) - net(x - eps)) / (2 * eps)
    assert torch.allclose(g, fd, rtol=1e-5, atol=1e-7)


def test_autocorrelation_against_its_definition():
    rng = np.random.default_rng(0)
    g = rng.normal(size=200).cumsum()
    c = g - g.mean()
    expected = float((c[:-1] * c[1:]).sum() / (c * c).sum())
    assert math.isclose(shatter.autocorrelation(torch.tensor(g)), expected, rel_tol=1e-12)
    assert math.isnan(shatter.autocorrelation(torch.ones(10)))


@pytest.mark.parametrize("arch", shatter.ARCHS)
def test_without_bn_and_biases_the_gradient_has_two_values(arch):
    """Positively homogeneous: y(c·x) = c·y(x) for c > 0, so dy/dx is constant on each side of 0."""
    x = torch.linspace(-2, 2, 256, dtype=torch.float64)  # 0 is not on this grid of an even number of points
    net = shatter.LineNet(arch, 20, 32, bn=False, bias=False, seed=0, dtype=torch.float64)
    g = shatter.gradient_along(net, x)
    left, right = g[x < 0], g[x > 0]
    assert torch.allclose(left, left[0]) and torch.allclose(right, right[0])
    assert shatter.autocorrelation(g) > 0.95


def test_acceptance_depth_50_smaller():
    """Width 64 instead of 200, 4 seeds instead of 10: still white noise for feed-forward + BN, correlated for
    residual + BN."""
    s = shatter.ShatterSettings(width=64, depths=(50,), seeds=4)
    rows = {r["arch"]: r["autocorrelation"] for r in shatter.measure(s, bn=True, bias=True)}
    assert abs(rows["feed-forward"]) <= 0.1
    assert rows["residual"] >= 0.5


def test_run_verdict_and_tables_small():
    r = shatter.run(shatter.ShatterSettings(width=16, depths=(2, 8), seeds=2, points=32))
    assert {row["toggles"] for row in r.tables["autocorrelation"]} == {shatter.toggle_label(b, c) for b, c in shatter.TOGGLES}
    assert len(r.tables["gradients"]) == 2 * 32
    d = r.to_dict()
    assert set(d["verdict"]) >= {"reproduced", "claim", "measured"}
    assert d["verdict"]["measured"]["depth"] == 8


def test_same_seed_same_gradients():
    x = shatter.line(shatter.ShatterSettings(points=32))
    a = shatter.gradient_along(shatter.LineNet("residual", 5, 8, True, True, seed=9), x)
    b = shatter.gradient_along(shatter.LineNet("residual", 5, 8, True, True, seed=9), x)
    c = shatter.gradient_along(shatter.LineNet("residual", 5, 8, True, True, seed=10), x)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("changes", [{"width": 0}, {"seeds": 0}, {"depths": ()}, {"low": float("nan")},
                                     {"low": 2.0, "high": -2.0}, {"points": 3}])
def test_bad_settings_are_refused(changes):
    from dataclasses import replace
    with pytest.raises(ExperimentError):
        shatter.run(replace(shatter.ShatterSettings(), **changes))
