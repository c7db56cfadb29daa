"""The sentences under the results are computed from them: a run stopped early and a finished run say
different things, each true of its own numbers; and the step-time estimate is a measurement."""

import re

import pytest

from resnet_core.structure.presets import get_preset
from resnet_core.training.config import TrainConfig
from resnet_core.training.results import NetResult, TrainResult
from resnet_core.training.story import summarise


def _net(name: str, loss: float, diverged: int | None = None) -> NetResult:
    return NetResult(name, get_preset(name.split()[0]), 20, 1, 10, loss, loss, 0.5, loss, 0.5, 1.0, False, diverged)


def _result(losses: dict, steps_done: int, total: int = 800, diverged: dict | None = None) -> TrainResult:
    nets = [_net(n, v, (diverged or {}).get(n)) for n, v in losses.items()]
    return TrainResult(nets, [], [], TrainConfig(steps=total), "digits", "CPU", steps_done, steps_done < total, 1.0)


# the shape of the default run's curves on this machine (measured): early, plain56 is below plain20 and
# resnet56 the slowest; at the end plain56 is far above plain20 and resnet56 far below plain56
EARLY = {"plain20": 2.2, "plain56": 1.6, "resnet20": 0.9, "resnet56": 2.4}
FINISHED = {"plain20": 0.004, "plain56": 1.29, "resnet20": 0.001, "resnet56": 0.0022}


def _numbers(sentence: str) -> list[float]:
    return [float(x) for x in re.findall(r"\d+\.\d+(?:e-?\d+)?|\d+(?:e-?\d+)", sentence)]


def test_a_stopped_early_run_and_a_finished_run_say_different_true_things():
    early = summarise(_result(EARLY, steps_done=40), "degradation")
    done = summarise(_result(FINISHED, steps_done=800), "degradation")
    assert early != done
    assert early[0].startswith("Stopped at step 40 of 800") and done[0].startswith("After all 800 steps")
    # the lowest and highest losses named are the real ones
    assert "lowest training loss is resnet20's (0.9)" in early[0] and "highest resnet56's (2.4)" in early[0]
    assert "lowest training loss is resnet20's (0.001)" in done[0] and "highest plain56's (1.29)" in done[0]
    # degradation: claimed only when the numbers show it
    assert any("still below plain20's" in s and "has not appeared yet" in s for s in early)
    assert not any("degradation." in s for s in early)
    deg = next(s for s in done if "trains worse" in s)
    assert "(1.29) is 322× plain20's (0.004)" in deg  # 1.29 / 0.004 = 322.5
    # resnet56 against plain56, both ways
    assert any("resnet56 (2.4) is above plain56 (1.6) at this step" in s for s in early)
    assert any("resnet56, just as deep as plain56, is at 0.0022, 586× lower" in s for s in done)
    # no sentence of one is in the other
    assert not set(early) & set(done)


def test_about_even_diverged_and_the_batchnorm_experiment():
    even = summarise(_result({"plain20": 1.0, "plain56": 1.1, "resnet20": 0.5, "resnet56": 0.55}, 800),
                     "degradation")
    assert any("plain56 (1.1) and plain20 (1) are about even" in s for s in even)
    assert any("resnet56 (0.55) trains about as well as resnet20 (0.5)" in s for s in even)
    bn = _result({"resnet20": 0.1, "resnet20 no BN": float("nan"), "plain20": 0.1, "plain20 no BN": 0.5}, 150, 150,
                 diverged={"resnet20 no BN": 7})
    told = summarise(bn, "batchnorm")
    assert "resnet20 without batch norm diverged at step 7; with it, its loss is 0.1." in told
    assert any("plain20 without batch norm is at 0.5, 5.0× the loss with it (0.1)" in s for s in told)
    mine = summarise(_result({"resnet20": 0.3}, 10, 10), None)
    assert mine == ["After all 10 steps, the lowest training loss is resnet20's (0.3)."]


def test_every_number_in_the_sentences_is_a_loss_a_step_or_a_ratio_of_losses():
    for losses, done in ((EARLY, 40), (FINISHED, 800)):
        sentences = summarise(_result(losses, done), "degradation")
        values = list(losses.values())
        allowed = set(values) | {40.0, 800.0, 56.0, 20.0, 64000.0}
        allowed |= {round(a / b, 1) for a in values for b in values} | {round(a / b) for a in values for b in values}
        for s in sentences:
            for x in _numbers(s.replace(",", "")):
                assert any(x == pytest.approx(a, rel=0.01) for a in allowed), (x, s)
