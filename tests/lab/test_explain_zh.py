"""The live views' sentences in 简体中文 (resnet_core/lab/explain.py and the clauses of lab/views.py and
lab/flow.py): every branch, computed from the same hand-made numbers as tests/lab/test_explain.py, says in
Chinese exactly the figures it says in English — the translation can neither drop nor change a number — and
is Chinese (not the English left as it was)."""

import math
import re

import pytest

from resnet_core import i18n
from resnet_core.lab import explain
from resnet_core.lab.flow import GradProgress, VariantProgress
from resnet_core.lab.views import ratio_trend

from .test_explain import SPEC, flow, rows, stat, variant

NUMBER = re.compile(r"∞|\d+(?:[.,]\d+)*(?:e[+-]?\d+)?")  # 1,037 · 0.067 · 1e-08 · 2.0 (in 2.0×) · 56 (in resnet56)
CJK = re.compile(r"[\u4e00-\u9fff]")


def numbers(text: str) -> list[str]:
    return sorted(NUMBER.findall(text))


def both(make):
    """What `make()` says in English and in Chinese."""
    english = make()
    with i18n.use("zh"):
        chinese = make()
    return english, chinese


def texts(story) -> list[str]:
    """Each sentence of a Story on its own (so a figure moved from one to another is caught too)."""
    if story is None:
        return []
    return [story.shows, *story.detail, *([story.try_next] if story.try_next else [])]


def _ratios(r):
    return rows(r, [10.0] * len(r), [12.0] * len(r))


FLOWS = {
    "vanishes, no BN": lambda: flow(variant(True, [0.067] + [0.05] * 55, [0.012, 0.02, 0.022]),
                                    variant(False, [0.0] * 40 + [1e-3] * 16, [0.0, 1e-4, 3.2e-3]),
                                    spec=SPEC.replace(norm="none", init="pytorch_default")),
    "explodes without, BN": lambda: flow(variant(True, [2.61] + [1.0] * 55, [0.886, 0.1, 0.0262]),
                                         variant(False, [1037.0, 1200.0, 1100.0, 1010.0] + [5.0] * 52,
                                                 [348.0, 10.0, 0.0311]), spec=SPEC.replace(norm="batch")),
    "explodes with skips, no BN": lambda: flow(variant(True, [5e3] + [2e3] * 10, [1e4, 10.0], loss=87.5),
                                               variant(False, [1e-3] * 11, [1e-3, 1e-3]),
                                               spec=SPEC.replace(norm="none")),
    "explodes with skips, BN": lambda: flow(variant(True, [math.inf] + [2e3] * 10, [1e4, 10.0]),
                                            variant(False, [1.0] * 11, [1.0, 1.0])),
    "little difference, shallow": lambda: flow(variant(True, [10.2] * 20, [1.0, 0.5]),
                                               variant(False, [19.9] * 20, [2.0, 0.5])),
    "little difference, deep, BN": lambda: flow(variant(True, [10.2] * 56, [1.0, 0.5]),
                                                variant(False, [3.3] * 56, [2.0, 0.5])),
    "little difference, deep, no BN": lambda: flow(variant(True, [10.2] * 56, [1.0, 0.5]),
                                                   variant(False, [3.3] * 56, [2.0, 0.5]), spec=SPEC.replace(norm="none")),
    "grows from 0": lambda: flow(variant(True, [1.0] * 3, [5.0, 0.0]), variant(False, [1.0] * 3, [5.0, 1.0])),
}

ANATOMY = {
    "zero branches": lambda: explain.anatomy_story(_ratios([0.0, 0.0, 0.0]), True, False, False),
    "large, running stats": lambda: explain.anatomy_story(
        _ratios([1.23, 1.27, 0.59, 1.41, 0.71, 1.29, 0.66, 1.28]), True, False, False),
    "large, no BN": lambda: explain.anatomy_story(rows([1.5, 1.4, 1.3], [1.0, 2.0, 3.5], [1.5, 2.8, 4.6]),
                                                  False, False, False),
    "large, trained": lambda: explain.anatomy_story(rows([1.5, 1.4, 1.3], [4.0, 2.0, 1.0], [6.0, 2.8, 1.3]),
                                                    True, True, True),
    "falls, stream grows": lambda: explain.anatomy_story(
        rows([1.41, 0.94, 0.73, 0.62, 0.54, 0.49, 0.31, 0.29], [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.8],
             [1.41, 1.41, 1.46, 1.55, 1.62, 1.72, 1.24, 1.39]), True, True, False),
    "falls, branch grows too": lambda: explain.anatomy_story(
        rows([0.9, 0.5, 0.3], [1.0, 1.2, 1.5], [0.9, 0.6, 0.45]), True, False, True),
    "small everywhere": lambda: explain.anatomy_story(rows([0.5, 0.6, 0.55], [1.0, 1.1, 1.2], [0.5, 0.66, 0.66]),
                                                      True, False, False),
}

ACTIVATIONS = {
    "geometric, running stats": lambda: explain.activation_story(
        [stat(k, "add", 1.5 * 1.45 ** k) for k in range(27)] + [stat(99, "act", 1.0, 0.5)], True, False, False),
    "geometric, no BN": lambda: explain.activation_story([stat(k, "add", 2.0 ** k) for k in range(5)], False, False,
                                                         False),
    "slow, less than √n": lambda: explain.activation_story(
        [stat(k, "add", 1.15 * (1 + k / 26 * 1.3)) for k in range(27)], True, True, False),
    "slow, close to √n": lambda: explain.activation_story([stat(k, "add", 1.0 + 0.1 * k) for k in range(27)],
                                                          True, True, False),
    "shrinks": lambda: explain.activation_story([stat(k, "add", 2.0 - 0.05 * k) for k in range(10)], True, True, False),
    "no stream": lambda: explain.activation_story([stat(0, "conv", 0.5), stat(1, "act", 2.5, 0.45)], True, True, False),
    "one dead layer": lambda: explain.activation_story(
        [stat(0, "add", 1.0), stat(1, "act", 1.0, 1.0), stat(2, "act", 1.0, 0.5), stat(3, "add", 1.1)],
        False, False, False),
    "two dead layers": lambda: explain.activation_story(
        [stat(0, "add", 1.0), stat(1, "act", 1.0, 1.0), stat(2, "act", 1.0, 0.995), stat(3, "add", 1.1)],
        False, False, False),
    "NaN": lambda: explain.activation_story([stat(0, "add", 1.0), stat(1, "conv", math.inf, finite=False)],
                                            False, False, False),
}

OTHER = {
    "ratio trend falls": lambda: [ratio_trend(_ratios([1.41, 0.94, 0.29]))],
    "ratio trend rises": lambda: [ratio_trend(_ratios([0.2, 0.5, 0.81]))],
    "ratio trend same": lambda: [ratio_trend(_ratios([1.27, 0.5, 1.27]))],
    "ratio trend zero": lambda: [ratio_trend(_ratios([0.0, 0.0]))],
    "variant summaries": lambda: [v.summary() for v in FLOWS["vanishes, no BN"]().variants],
    "progress": lambda: [GradProgress((VariantProgress("with skips", "done", 56, 56),
                                       VariantProgress("without skips", "backward", 12, 56))).text(),
                         VariantProgress("with skips", "waiting", 0, 56).text()],
}


def _cases():
    for name, make in FLOWS.items():
        yield pytest.param(lambda make=make: texts(explain.gradient_story(make())), id=f"gradient: {name}")
    for name, make in ANATOMY.items():
        yield pytest.param(lambda make=make: texts(make()), id=f"anatomy: {name}")
    for name, make in ACTIVATIONS.items():
        yield pytest.param(lambda make=make: texts(make()), id=f"activations: {name}")
    for name, make in OTHER.items():
        yield pytest.param(make, id=name)


@pytest.mark.parametrize("say", list(_cases()))
def test_the_chinese_sentence_has_the_english_ones_numbers(say):
    english, chinese = both(say)
    assert english and len(english) == len(chinese)
    for en, zh in zip(english, chinese, strict=True):
        assert zh != en and CJK.search(zh), f"not translated: {en!r}"
        assert numbers(zh) == numbers(en), f"\n{en}\n{zh}"
        assert not CJK.search(en), f"Chinese in the English sentence: {en!r}"


def test_every_branch_is_covered():
    """The cases above reach each sentence of explain.py at least once (different sentences, not one branch
    again and again): every Story headline differs."""
    heads = [explain.gradient_story(m()).shows.split(":")[0] for m in FLOWS.values()]
    assert {h.split(" ")[0] for h in heads} >= {"Here", "Without", "On"}
    assert len({explain.gradient_story(m()).try_next for m in FLOWS.values()}) >= 6
    anatomy = {" ".join(s.shows.split()[:3]) for s in (m() for m in ANATOMY.values())}
    assert len(anatomy) == 4
    activations = {m().shows.split(":")[0] for m in ACTIVATIONS.values()}
    assert len(activations) == 5


def test_the_command_line_stays_english():
    """Nothing set: the sentences are the English ones (the CLI never sets a language)."""
    s = explain.gradient_story(FLOWS["explodes without, BN"]())
    assert s.shows.startswith("Without skips the gradient explodes on its way back")
    assert i18n.language() == "en"


def test_the_numbers_the_check_compares_are_the_figures():
    """The comparison is not empty: the number pattern finds the figures of a sentence."""
    assert numbers("1,037 with skips and 0.067 without (34× smaller); 40 of 56 below 1e-08") == sorted(
        ["1,037", "0.067", "34", "40", "56", "1e-08"])
    assert numbers("第一个卷积层的 ‖∂L/∂W‖ 有跳跃连接时为 2.61") == ["2.61"]
    assert numbers("a") != numbers("1")
