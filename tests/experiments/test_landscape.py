"""Loss landscape: the filter normalisation against its definition, the convexity measure on known
surfaces, and the weights put back after the slices."""

import copy

import pytest
import torch

import resnet_core as rc
from resnet_core.experiments import landscape
from resnet_core.structure.build import build_model


def test_filter_normalisation_matches_its_definition():
    model = build_model(rc.get_preset("resnet20").replace(input_size=(8, 8)), seed=0)
    raw = landscape.random_direction(model, seed=3)
    d = landscape.filter_normalise(raw, model)
    moved = 0
    for name, p in model.named_parameters():
        if p.dim() <= 1:  # biases, BN γ and β: not moved
            assert torch.count_nonzero(d[name]) == 0, name
            continue
        moved += 1
        for i in range(p.shape[0]):  # each filter: the weight filter's norm, the raw direction's orientation
            di, wi, ri = d[name][i].flatten(), p[i].detach().flatten(), raw[name][i].flatten()
            assert torch.isclose(di.norm(), wi.norm(), rtol=1e-5)
            assert torch.allclose(di, ri * (wi.norm() / ri.norm()), rtol=1e-5, atol=1e-7)
    assert moved == 20  # 19 convs + the fc weight
    assert torch.equal(landscape.random_direction(model, seed=3)["conv1.weight"], raw["conv1.weight"])


def test_convex_share_of_known_surfaces():
    axis = [i / 4 for i in range(-4, 5)]
    bowl = [[a * a + b * b for b in axis] for a in axis]
    saddle = [[a * a - b * b for b in axis] for a in axis]
    ridge = [[-(a * a) - b * b for b in axis] for a in axis]
    assert landscape.convex_share(bowl) == 1.0
    assert landscape.convex_share(saddle) == 0.0
    assert landscape.convex_share(ridge) == 0.0


def test_axis_is_exact_at_zero_and_the_ends():
    a = landscape._axis(1.0, 21)
    assert a[0] == -1.0 and a[10] == 0.0 and a[-1] == 1.0


def test_slices_put_the_weights_back_and_start_at_the_trained_loss():
    model = build_model(rc.get_preset("resnet20").replace(input_size=(8, 8)), seed=0).eval()
    before = copy.deepcopy(model.state_dict())
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    s = landscape.LandscapeSettings(points_1d=5, points_2d=3)
    one, two = landscape.slices(model, x, y, s, "net", lambda: None)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    with torch.no_grad():
        loss0 = float(torch.nn.functional.cross_entropy(model(x), y))
    assert one[2]["alpha"] == 0.0 and one[2]["loss"] == pytest.approx(loss0, rel=1e-6)
    assert two[4]["alpha"] == 0.0 and two[4]["beta"] == 0.0 and two[4]["loss"] == pytest.approx(loss0, rel=1e-6)


def test_acceptance_at_a_smaller_depth():
    """The issue's acceptance, held against Li et al.'s claim as the issue states it: around trained weights,
    at filter-normalised distance 1 the plain net's loss is ≥ 10× the residual net's, and the residual net's
    2-D slice is the more convex. At 32 layers and 400 steps (the default is 56 layers, 800 steps), on the
    digits at 8×8 as by default; measured here: 48× and 96 % vs 32 % locally convex."""
    from resnet_core.experiments.pair import PairSettings
    s = landscape.LandscapeSettings(pair=PairSettings(residual="resnet32", input_size=8, steps=400, processes=2))
    r = landscape.run(s)

    def at_distance_1(role):  # read off the plotted 1-D slice: the mean of α = −1 and α = +1
        ends = [row["loss"] for row in r.tables["slice_1d"] if row["role"] == role and abs(row["alpha"]) == 1.0]
        assert len(ends) == 2
        return sum(ends) / 2

    assert at_distance_1("plain") >= 10 * at_distance_1("residual"), r.tables["summary"]
    res, plain = (next(row for row in r.tables["summary"] if row["role"] == role) for role in ("residual", "plain"))
    assert res["convex_share_2d"] > plain["convex_share_2d"], r.tables["summary"]
    assert r.verdict.reproduced


def _slices(losses_1d: dict, side: int = 3):
    """1-D rows at α = −1, 0, 1 and a flat 2-D grid for each role, from the given (−1, 0, +1) losses."""
    one, two = [], []
    for role, (a, b, c) in losses_1d.items():
        one += [{"role": role, "alpha": al, "loss": v} for al, v in ((-1.0, a), (0.0, b), (1.0, c))]
        two += [{"role": role, "alpha": 0.0, "beta": 0.0, "loss": b + i + j} for i in range(side) for j in range(side)]
    return one, two


def _pair():
    from types import SimpleNamespace
    return SimpleNamespace(residual_label="resnet20", plain_label="plain20")


def test_two_nets_near_zero_loss_at_full_accuracy_both_fit_and_a_plain_twin_at_43_percent_is_far_from_trained():
    settings = landscape.LandscapeSettings(points_2d=3)
    one, two = _slices({"residual": (0.5, 0.001, 0.6), "plain": (5.0, 0.003, 6.0)})
    _, findings, summary = landscape.judge(one, two, _pair(), settings, {"resnet20": 1.0, "plain20": 1.0}, 64)
    # 0.001 and 0.003: a ratio of 3, but both near zero at 100 %: they both fit, said so, no "3× higher"
    assert findings[0].startswith("Both fit the training set") and "100.0 %" in findings[0]
    assert not any("far from trained" in f for f in findings)
    one, two = _slices({"residual": (0.5, 0.01, 0.6), "plain": (5.0, 1.6, 6.0)})
    _, findings, summary = landscape.judge(one, two, _pair(), settings, {"resnet20": 1.0, "plain20": 0.43}, 64)
    assert not any(f.startswith("Both fit") for f in findings)
    far = [f for f in findings if "far from trained" in f]
    assert len(far) == 1 and far[0].startswith("plain20 is far from trained: 43.0 % training accuracy")
    assert next(r for r in summary if r["role"] == "plain")["train_accuracy"] == 0.43
