"""The Learn page in 简体中文 (issue 24): every step and every exercise, a wrong and a right answer to each, and
no English sentence on the page after any of them (tests/i18n_check.py). The builder in the sidebar belongs to
other pages' translations: the strict check here is the page's own area; the whole window is checked last."""

import pytest

from resnet_core.structure.lessons import EXERCISES
from tests.i18n_check import english_in, english_shown

from .test_app import new_app, no_exception, spec_of

STEPS = ["1 · The residual block", "2 · Shortcuts", "3 · ResNet-18, shape by shape", "4 · Batch norm",
         "5 · Broken networks"]  # app_pages/learn.py's STEPS


class _PageArea:
    """The Learn page's own area of an AppTest (the main column, not the builder's sidebar), for english_shown."""

    def __init__(self, at) -> None:
        self.main = at.main
        self.sidebar = None
        self.dataframe = at.main.dataframe


def page_english(at) -> list[str]:
    return english_shown(_PageArea(at))


def learn_zh():
    at = new_app(lang="zh")
    at.switch_page("app_pages/learn.py").run()
    no_exception(at)
    assert at.session_state["ui.lang"] == "zh"
    return at


def check(at, where: str) -> None:
    no_exception(at)
    found = page_english(at)
    assert found == [], f"English on the Learn page after {where}:\n" + "\n".join(found)


def test_the_page_area_helper_sees_english_where_there_is_some():
    """The helper must be able to fail: the same page in English is full of English sentences."""
    at = new_app()
    at.switch_page("app_pages/learn.py").run()
    assert len(page_english(at)) > 20
    assert english_in("仍在 阶段 2 · 块 0 · 捷径 处出错") == []


@pytest.mark.slow
def test_every_step_in_chinese_shows_no_english():
    at = learn_zh()
    check(at, "opening")
    titles = [t.value for t in at.title]
    assert titles == ["学习：残差网络是如何工作的"]
    assert [t.label for t in at.tabs] == ["1 · 残差块", "2 · 捷径", "3 · ResNet-18：逐层看形状", "4 · 批量归一化",
                                           "5 · 修复出错的网络"]
    for step in STEPS:  # a pushed step arrives in English: the page shows it as this language's tab
        at.session_state["learn.tabs"] = step
        at.run()
        check(at, f"opening {step}")
        assert at.session_state["learn.tabs"] in [t.label for t in at.tabs]
    # step 1's controls: every block, with the skip off and on
    box = at.selectbox(key="learn.block")
    assert all(not english_in(o) for o in box.options)
    for example in box.options:
        value = next(v for v in ["Basic block, identity shortcut (ResNet-18 layer1.0)",
                                 "Basic block, 1×1 projection shortcut (ResNet-18 layer2.0)",
                                 "Bottleneck block (ResNet-50 layer1.1)",
                                 "Zero-padded identity, option A (CIFAR ResNet-20 layer2.0)",
                                 "Pre-activation block (pre-act ResNet-18 layer1.0)"] if box.format_func(v) == example)
        at.selectbox(key="learn.block").set_value(value).run()
        check(at, f"choosing {value}")
    at.selectbox(key="learn.block").set_value("Zero-padded identity, option A (CIFAR ResNet-20 layer2.0)").run()
    assert any("零填充" in i.value and "必须先经过投影" in i.value for i in at.info)
    at.toggle(key="learn.skip").set_value(False).run()
    check(at, "turning the skip connection off")
    # step 2: every network's shortcut table; step 4: the batch-norm sliders
    for net in at.selectbox(key="learn.shortcut_net").options:
        at.selectbox(key="learn.shortcut_net").set_value(net).run()
        check(at, f"the shortcut table of {net}")
    at.slider(key="learn.bn_m").set_value(0.5).run()
    at.slider(key="learn.bn_steps").set_value(3).run()
    check(at, "moving the batch-norm sliders")
    caption = next(c.value for c in at.caption if "BatchNorm2d" in c.value)
    assert f"= {1 - 0.5 ** 3:.2f}" in caption and "3 个批量" in caption  # the sentence is computed from the sliders


# each exercise: a wrong answer (still broken, or built the forbidden way) and the right one
WRONG = {
    "shortcut": [("toggle", "net.skip", False)],  # builds, but without the skips
    "option-a": [("number_input", "net.s2.width", 32)],  # builds, but the widths changed
    "groups": [("number_input", "net.s0.groups", 5)],  # 5 does not divide 64 either
    "tiny-input": [("number_input", "net.stem_padding", 1)],  # 10×10 is still smaller than 11×11
    "zero-width": [("number_input", "net.s0.width_per_group", 1)],  # int(8 · 1 / 64) · 32 is still 0
}
RIGHT = {
    "shortcut": [("toggle", "net.skip", True), ("segmented_control", "net.shortcut", "B")],
    "option-a": [("number_input", "net.s2.width", 16), ("segmented_control", "net.shortcut", "B")],
    "groups": [("number_input", "net.s0.groups", 2)],
    "tiny-input": [("number_input", "net.stem_padding", 5)],
    "zero-width": [("number_input", "net.s0.width_per_group", 8)],
}


def answer(at, steps) -> None:
    for kind, key, value in steps:
        getattr(at, kind)(key=key).set_value(value).run()
        no_exception(at)


@pytest.mark.slow
@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.key)
def test_each_exercise_wrong_then_right_in_chinese(ex):
    at = learn_zh()
    at.session_state["learn.tabs"] = "5 · Broken networks"
    at.run()
    check(at, "opening the exercises")
    at.button(key=f"learn.ex.{ex.key}").click().run()
    assert spec_of(at) == ex.broken
    check(at, f"loading {ex.key}")
    (loaded,) = [w.value for w in at.warning if "还没有解决" in w.value]
    assert "仍在" in loaded and "处出错" in loaded
    answer(at, WRONG[ex.key])
    check(at, f"a wrong answer to {ex.key}")
    (wrong,) = [w.value for w in at.warning if "还没有解决" in w.value]
    assert wrong != "" and not at.success
    answer(at, RIGHT[ex.key])
    check(at, f"the right answer to {ex.key}")
    assert not [w for w in at.warning if "还没有解决" in w.value]
    (solved,) = [s.value for s in at.success]
    assert solved.startswith("已解决：网络可以构建了。")
    assert ("打开计算图" in solved) == (ex.key in ("shortcut", "option-a"))


@pytest.mark.slow
def test_the_whole_window_in_chinese_shows_no_english():
    at = learn_zh()
    assert english_shown(at) == []
