"""The Training lab in 简体中文 (issue 24): a short run in Chinese shows no English sentence, and every computed
sentence (the story under the results) carries exactly the numbers of its English twin."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from resnet_core import i18n
from tests.i18n_check import english_shown, shown_texts

from .test_app import no_exception
from .test_train_page import wait_finished

NUMBER = re.compile(r"\d+(?:[.,]\d+)*(?:e[+-]?\d+)?")


@pytest.fixture(autouse=True)
def state_dir(fresh_state):
    return fresh_state  # tests/conftest.py: this test's own state folder


@pytest.fixture
def code_blocks_are_code(monkeypatch):
    """A code block (st.code: the torchrun command lines) is code, as a `code span` is: set aside like one.
    (Asked of tests/i18n_check.py for every page: "code_text" among the fields not read as prose.)"""
    from tests import i18n_check
    monkeypatch.setattr(i18n_check, "_NOT_SHOWN", i18n_check._NOT_SHOWN | {"code_text"})


def page_only(at):
    """The page's own elements (the sidebar, the builder's, is another area's and has its own sweep)."""
    return SimpleNamespace(main=at.main, sidebar=SimpleNamespace(proto=None, children={}), dataframe=at.dataframe)


def numbers(text: str) -> list[str]:
    return NUMBER.findall(text)


@pytest.mark.slow
def test_a_short_run_in_chinese_shows_no_english(code_blocks_are_code):
    from streamlit.testing.v1 import AppTest

    from .test_app import APP
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["lang"] = "zh"
    at.run()
    at.switch_page("app_pages/train.py").run()
    no_exception(at)
    assert at.session_state["ui.lang"] == "zh" and at.title[0].value == "训练实验室"
    assert english_shown(page_only(at)) == []
    # AppTest calls the widgets' format_func in this (the test's) thread to read their values back: in Chinese
    # too, as the browser's session does in its own
    with i18n.use("zh"):
        at.number_input(key="train.steps").set_value(30)
        at.number_input(key="train.size").set_value(8)
        at.button(key="train.start").click().run()
        no_exception(at)
        assert not at.error, [e.value for e in at.error]
        job = wait_finished(at)
    assert job.error is None and not job.result.stopped
    no_exception(at)
    # the results, the curves and the story, all in Chinese
    assert [r.net for r in job.result.nets] == ["plain20", "plain56", "resnet20", "resnet56"]
    table = at.dataframe[0].value
    assert list(table["网络"]) == ["plain20", "plain56", "resnet20", "resnet56"] and (table["步数"] == 30).all()
    shown = shown_texts(at)  # the curves' titles and axes are in their chart specs
    assert "训练损失（对数）" in shown and "训练准确率（每个批次）" in shown
    told = next(i.value for i in at.info if "训练损失" in i.value)
    assert "全部 30 步训练完后" in told and f"{job.result.net('plain56').final_loss:.3g}" in told
    assert english_shown(page_only(at)) == [], english_shown(page_only(at))
    labels = [b.proto.label for b in at.get("download_button")]
    assert "⬇ 曲线（CSV）" in labels and "⬇ 结果（CSV）" in labels


# ---- the library: every sentence of the story, in both languages, from the same numbers ----

def fake_result(losses: dict[str, float], stopped: bool = False, diverged: dict[str, int] | None = None):
    diverged = diverged or {}
    nets = [SimpleNamespace(net=k, final_loss=v, diverged_at=diverged.get(k)) for k, v in losses.items()]
    return SimpleNamespace(nets=nets, config=SimpleNamespace(steps=1600), stopped=stopped,
                           steps_done=1234 if stopped else 1600)


DEGRADATION = ["plain20", "plain56", "resnet20", "resnet56"]
BATCHNORM = ["resnet20", "resnet20 no BN", "plain20", "plain20 no BN"]
CASES = [  # every branch of story.py: higher, lower, about even, diverged; stopped or not; each experiment
    ("degradation", dict(zip(DEGRADATION, [0.0131, 1.34, 0.0412, 0.0658], strict=True)), False, {}),
    ("degradation", dict(zip(DEGRADATION, [0.9, 0.31, 0.52, 0.5], strict=True)), True, {}),
    ("degradation", dict(zip(DEGRADATION, [0.5, 0.55, 0.04, 0.6], strict=True)), False, {}),
    ("degradation", dict(zip(DEGRADATION, [0.5, 0.55, 0.9, 0.011], strict=True)), False, {}),
    ("degradation", dict(zip(DEGRADATION, [0.5, float("nan"), 0.2, float("nan")], strict=True)), True,
     {"plain56": 17, "resnet56": 33}),
    ("batchnorm", dict(zip(BATCHNORM, [0.05, 2.3, 0.4, 0.9], strict=True)), False, {}),
    ("batchnorm", dict(zip(BATCHNORM, [0.05, float("nan"), 0.4, 0.3], strict=True)), False, {"resnet20 no BN": 4}),
    ("batchnorm", dict(zip(BATCHNORM, [0.05, 0.055, 0.4, 0.41], strict=True)), True, {}),
    (None, {"resnet20": float("nan"), "plain20": float("nan")}, False, {"resnet20": 3, "plain20": 9}),
    (None, {"resnet20": 0.25}, False, {}),
]


@pytest.mark.parametrize("experiment, losses, stopped, diverged", CASES)
def test_each_story_sentence_in_chinese_carries_the_english_numbers(experiment, losses, stopped, diverged):
    from resnet_core.training.story import summarise
    result = fake_result(losses, stopped, diverged)
    english = summarise(result, experiment)
    with i18n.use("zh"):
        chinese = summarise(result, experiment)
    assert len(chinese) == len(english) >= 1
    for en, zh in zip(english, chinese, strict=True):
        assert zh != en and re.search(r"[\u4e00-\u9fff]", zh), zh  # translated
        # the same numbers (net names like plain56 included; Chinese may put them in another order): nothing
        # lost, nothing invented
        assert sorted(numbers(zh)) == sorted(numbers(en)), (en, zh)
    # and the first sentence names this result's lowest loss (formatted here, independently of story.py)
    live = [v for k, v in losses.items() if k not in diverged]
    if live:
        assert f"{min(live):.3g}" in chinese[0]
    assert f"{result.steps_done:,}" in chinese[0]


def test_the_curves_axes_and_tooltips_in_chinese():
    import pandas as pd

    from app.charts import training as train_charts
    df = pd.DataFrame({"step": [1, 2, 1, 2], "net": ["plain20", "plain20", "resnet20", "resnet20"],
                       "loss": [2.3, 2.1, 2.2, 1.9], "accuracy": [0.1, 0.2, 0.1, 0.3]})
    with i18n.use("zh"):
        spec = train_charts.curve(df, "loss", ["plain20", "resnet20"], "训练损失（对数）").to_dict()
    smooth = spec["layer"][1]["encoding"]
    assert smooth["x"]["title"] == "步" and smooth["y"]["title"] == "训练损失（对数）"
    assert [t.get("title") for t in smooth["tooltip"]] == ["网络", "步", "损失"]
    english = train_charts.curve(df, "loss", ["plain20", "resnet20"], "training loss (log)").to_dict()
    assert english["layer"][1]["encoding"]["x"]["title"] == "step"


@pytest.mark.slow
def test_a_chinese_teachers_prepared_run_reads_english_to_an_english_student(code_blocks_are_code):
    """Sentences are made where they are shown: what a Chinese teacher prepared is English for an English
    student (and Chinese again for a Chinese one), the run's kept texts included."""
    from resnet_core.training import prepared

    from .test_app import new_app
    from .test_train_page import page_text

    def lab(**query):
        at = new_app(**query)
        at.switch_page("app_pages/train.py").run()
        at.number_input(key="train.steps").set_value(3)
        at.number_input(key="train.size").set_value(8).run()
        no_exception(at)
        return at

    with i18n.use("zh"):
        teacher = lab(lang="zh")
        teacher.button(key="train.prepare").click().run()
        no_exception(teacher)
        assert wait_finished(teacher).error is None
        assert any("已为课堂保存" in s.value for s in teacher.success)
    (entry,) = prepared.listing()
    assert entry["how"] == "a teacher in the app"  # kept in English: translated where shown
    student = lab()
    text = page_text(student)
    assert "Prepared for the class" in text and "by a teacher in the app" in text and "准备" not in text
    student.button(key="train.use_prepared").click().run()
    assert wait_finished(student, timeout=30).name == "prepared"
    told = next(i.value for i in student.info if "training loss" in i.value)
    assert told.startswith("After all 3 steps") and not re.search(r"[\u4e00-\u9fff]", told)
    with i18n.use("zh"):
        other = lab(lang="zh")
        text = page_text(other)
        assert "已为课堂准备好" in text and "由一位教师在应用中训练" in text
        assert "训练实验室：degradation（数据 digits, 步数 3, 批量 32" in text  # the listing
        other.button(key="train.use_prepared").click().run()
        assert wait_finished(other, timeout=30).name == "prepared"
        assert english_shown(page_only(other)) == [], english_shown(page_only(other))
        assert any(i.value.startswith("全部 3 步训练完后") for i in other.info)


@pytest.mark.slow
def test_a_long_run_announced_then_stopped_in_chinese(code_blocks_are_code):
    """The estimate's warning, Stop, and the stopped run's results and story: all Chinese."""
    import time

    from .test_app import new_app
    with i18n.use("zh"):
        at = new_app(lang="zh")
        at.switch_page("app_pages/train.py").run()
        at.number_input(key="train.steps").set_value(5000)
        at.number_input(key="train.size").set_value(8)
        at.button(key="train.start").click().run()
        no_exception(at)
        warning = at.warning[0].value
        assert warning.startswith("这次训练需要约 ") and "5,000 步" in warning and "当前负载" in warning
        assert english_shown(page_only(at)) == [], english_shown(page_only(at))
        at.button(key="train.start_anyway").click().run()
        job = at.session_state["train.job"]
        deadline = time.time() + 60
        while (job.progress is None or job.progress.step < 3) and time.time() < deadline:
            time.sleep(0.2)
        at.button(key="train.stop").click().run()
        job = wait_finished(at)
        assert job.result.stopped
        assert at.subheader[0].value == "结果（提前停止：到目前为止学到的内容）"
        told = next(i.value for i in at.info if "训练损失" in i.value)
        assert told.startswith(f"在第 {job.result.steps_done:,} 步（共 5,000 步）停止")
        assert english_shown(page_only(at)) == [], english_shown(page_only(at))
