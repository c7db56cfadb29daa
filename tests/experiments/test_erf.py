"""Effective receptive field: the map and its σ against a case with a known answer, and the acceptance
(√n growth, far below the theoretical RF, residual smaller from 8 layers) at a smaller width."""

import math

import pytest
import torch
import torch.nn.functional as F

import resnet_core as rc
from resnet_core.experiments import erf


@pytest.mark.parametrize("n", [1, 3, 6])
def test_linear_stack_of_box_kernels_has_std_sqrt_2n_over_3(n):
    """n convolutions with a 3×3 box: the centre's gradient is the n-fold convolution of the box, whose
    per-axis variance is n · 2/3 (each box step is −1, 0, +1 with equal weight)."""
    box = torch.ones(1, 1, 3, 3)
    size = 2 * n + 1

    def forward(x):
        for _ in range(n):
            x = F.conv2d(x, box, padding=1)
        return x

    m = erf.centre_gradient(forward, torch.randn(2, 1, size, size))
    assert torch.allclose(m.sum(dim=(1, 2)), torch.ones(2, dtype=torch.float64))
    assert math.isclose(erf.map_std(m[0]), math.sqrt(2 * n / 3), rel_tol=1e-9)


def test_map_std_of_a_point_and_of_a_uniform_square():
    p = torch.zeros(5, 5)
    p[2, 2] = 1
    assert erf.map_std(p) == 0
    u = torch.ones(5, 5)
    assert math.isclose(erf.map_std(u), math.sqrt(2.0), rel_tol=1e-12)  # variance of −2…2 uniform: 2


def test_acceptance_smaller():
    """Channels 8 instead of 16, 4 samples × 2 nets instead of 8 × 4; depths 4, 8, 32."""
    r = erf.run(erf.ErfSettings(depths=(4, 8, 32), channels=8, samples=4, seeds=2))
    plain = {row["layers"]: row for row in r.tables["stacks"] if row["stack"] == "plain"}
    res = {row["layers"]: row for row in r.tables["stacks"] if row["stack"] == "residual"}
    ratios = [plain[n]["erf_std"] / math.sqrt(n) for n in (4, 8, 32)]
    mean = sum(ratios) / 3
    assert all(abs(v / mean - 1) <= 0.15 for v in ratios)
    assert 4 * plain[32]["erf_std"] <= 0.5 * 65  # far below the theoretical RF of 65
    assert res[8]["erf_std"] < plain[8]["erf_std"] and res[32]["erf_std"] < plain[32]["erf_std"]
    assert r.verdict.reproduced


def test_builders_network_is_measured_against_its_trace():
    spec = rc.get_preset("resnet20").replace(input_size=(16, 16))
    r = erf.run(erf.ErfSettings(depths=(2, 4), channels=2, samples=1, seeds=1), spec=spec)
    net = r.tables["network"][0]
    assert net["theoretical_rf"] == rc.trace(spec).receptive_field
    assert 0 < net["erf_std"] < 16


def test_same_seed_same_map():
    s = erf.ErfSettings(depths=(2, 4), channels=2, samples=2, seeds=1, seed=5)
    assert torch.equal(erf.stack_erf(4, "plain", s), erf.stack_erf(4, "plain", s))


def test_odd_depth_refused():
    with pytest.raises(erf.ExperimentError, match="even"):
        erf.run(erf.ErfSettings(depths=(3, 8)))


@pytest.mark.parametrize("b", [0.5, 0.55, 0.62])
def test_the_fitted_exponent_is_shown_and_is_the_slope_of_log_sigma_on_log_n(b):
    """σ = 0.9·n^b exactly: the least-squares slope is b (computed here as the two-point slope, which is the same
    on an exact power law), and the drift of σ/√n is said with it."""
    depths = (4, 8, 16, 32)
    rows = [{"stack": "plain", "layers": n, "erf_std": 0.9 * n ** b, "std_over_sqrt_n": 0.9 * n ** b / math.sqrt(n),
             "theoretical_rf": 2 * n + 1, "share_of_rf": 4 * 0.9 * n ** b / (2 * n + 1)} for n in depths]
    v, findings = erf.judge(rows, erf.ErfSettings(depths=depths))
    slope = (math.log(rows[-1]["erf_std"]) - math.log(rows[0]["erf_std"])) / (math.log(32) - math.log(4))
    assert v.measured["fitted_exponent"] == pytest.approx(slope, abs=1e-9)
    line = next(f for f in findings if "least-squares" in f)
    assert f"σ ∝ n^{slope:.2f}" in line and f"from {rows[0]['std_over_sqrt_n']:.3g}" in line
    assert ("faster than √n" in line) == (slope > 0.52)
