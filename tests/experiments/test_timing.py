"""The Why page's expected times: training the pair (from the step figures) plus the experiment's own part,
which learns from the experiment's measured runs on this server."""

from dataclasses import replace

import pytest

from resnet_core import calibration as cal
from resnet_core.experiments import landscape, lesion, timing
from resnet_core.experiments.trained import PairSettings, train_pair
from resnet_core.training.estimate import estimate_training, net_id


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(cal.STATE_ENV, str(tmp_path))
    cal.forget()
    yield tmp_path
    cal.forget()


PS = PairSettings(steps=3, input_size=8)


def test_without_measurements_there_is_no_estimate_unless_measuring():
    settings = lesion.LesionSettings(pair=PS, draws=1)
    assert timing.estimate(lesion, settings, measure=False) is None
    est = timing.estimate(lesion, settings)
    assert est is not None and est.training.low > 0 and est.own.low > 0
    assert timing.estimate(lesion, settings, measure=False) is not None  # now measured, kept


def test_training_is_the_pairs_training_estimate_and_a_trained_pair_costs_none():
    settings = landscape.LandscapeSettings(pair=PS, points_2d=3, images=16)
    est = timing.estimate(landscape, settings)
    specs = timing.pair_specs(PS.residual, PS.input_size)
    alone = estimate_training({s.name: s for s in specs}, PS.steps, PS.batch_size, "cpu", 1, eval_images=1797,
                              measure=False)
    assert est.training == alone.total  # the same figures: the pair's steps and its evaluation
    with_pair = timing.estimate(landscape, settings, train_pair(PS))
    assert with_pair.training == cal.Span(0.0, 0.0) and with_pair.forwards == est.forwards


def test_the_own_part_learns_from_a_measured_run(monkeypatch):
    monkeypatch.setattr(cal, "load_now", lambda: 0.0)  # the same load throughout
    pair = train_pair(PS)
    settings = lesion.LesionSettings(pair=PS, draws=1)
    first = timing.estimate(lesion, settings, pair)
    assert first.correction is None
    fwd = cal.store().get(cal.step_key("fwd:" + net_id(pair.specs["resnet20"]), 1, (8, 8), "cpu", 1))
    assert fwd is not None
    measured = 3 * fwd.mean * first.forwards  # a run three times slower than the forward figure says
    timing.record(lesion, settings, measured, pair)
    again = timing.estimate(lesion, settings, pair)
    assert again.correction is not None and again.correction.mean == pytest.approx(measured / (
        max(cal.store().get(cal.step_key("fwd:" + net_id(s), 1, (8, 8), "cpu", 1)).mean for s in pair.specs.values())
        * first.forwards))
    assert again.own.low <= measured <= again.own.high
    assert replace(settings, draws=2) != settings  # other settings of the same experiment share the factor
    assert timing.estimate(lesion, replace(settings, draws=2), pair).correction is not None
