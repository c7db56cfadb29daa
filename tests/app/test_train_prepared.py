"""The Training lab's times and prepared runs through AppTest: a run prepared once is shown by a second
session and after a restart without training; a teacher's "Prepare for the class" keeps it; after Stop the
page says what it is evaluating; the curves' caption reads right for one step."""

import time

import pytest

from resnet_core.training import prepared

from .test_app import new_app, no_exception
from .test_train_page import page_text, wait_finished

STEPS, SIZE = 3, 8
SETTINGS = prepared.lab_settings("cpu", steps=STEPS, input_size=SIZE)


@pytest.fixture(autouse=True)
def state_dir(fresh_state):
    return fresh_state  # tests/conftest.py: this test's own state folder


def lab(steps=STEPS, size=SIZE):
    at = new_app()
    at.switch_page("app_pages/train.py").run()
    at.number_input(key="train.steps").set_value(steps)
    at.number_input(key="train.size").set_value(size).run()
    no_exception(at)
    return at


def show_prepared(at):
    at.button(key="train.use_prepared").click().run()
    no_exception(at)
    job = wait_finished(at, timeout=30)
    assert job.name == "prepared" and job.error is None
    return job


@pytest.mark.slow
def test_a_prepared_run_is_reused_by_a_second_session_and_after_a_restart():
    prepared.prepare_training(SETTINGS, "the operator")
    result = prepared.load_training(SETTINGS)  # the server's one copy
    first = lab()
    assert "Prepared for the class" in page_text(first) and "by the operator" in page_text(first)
    job = show_prepared(first)
    assert job.result is result  # the server's one copy, not a new training
    assert list(first.dataframe[0].value["network"]) == ["plain20", "plain56", "resnet20", "resnet56"]
    second = lab()  # another browser session, pressing Start: the prepared run, no training
    second.button(key="train.start").click().run()
    no_exception(second)
    job = wait_finished(second, timeout=30)
    assert job.name == "prepared" and job.result is result
    prepared.forget()  # a restarted server reads it from the data folder
    third = lab()
    again = show_prepared(third).result
    assert again is not result and [r.final_loss for r in again.nets] == pytest.approx([r.final_loss for r in result.nets])
    assert "Prepared for the class" in page_text(third)
    third.button(key="train.live.resnet20").click().run()  # a prepared net hands off like a trained one
    no_exception(third)
    assert third.title[0].value == "Live lab" and not third.error
    assert lab(steps=STEPS + 1).button(key="train.prepare") is not None  # other settings: offered to prepare


@pytest.mark.slow
def test_a_teacher_prepares_the_run_for_the_class():
    at = lab()
    at.button(key="train.prepare").click().run()
    no_exception(at)
    job = wait_finished(at)
    assert job.error is None and job.prepare == SETTINGS
    assert any("Kept for the class" in s.value for s in at.success)
    (entry,) = prepared.listing()
    assert entry["settings"] == SETTINGS and entry["how"] == "a teacher in the app"
    other = lab()
    assert show_prepared(other).result.steps_done == STEPS


def test_the_default_runs_time_is_measured_on_this_server_not_claimed():
    at = lab()
    text = page_text(at)
    assert "two minutes" not in text and "2-core CPU" not in text
    deadline = time.time() + 60
    while "takes about" not in page_text(at) and time.time() < deadline:  # timed once, in the background
        time.sleep(0.5)
        at.run()
    info = [i.value for i in at.info if "Start training" in i.value][0]
    assert "takes about" in info and "measured" in info and "load now" in info


def test_the_class_length_button_sets_the_measured_preset():
    from resnet_core.training.config import CLASS_LENGTH
    at = lab(steps=800, size=16)
    at.button(key="train.class_length").click().run()
    no_exception(at)
    assert at.number_input(key="train.steps").value == CLASS_LENGTH["steps"]
    assert at.number_input(key="train.size").value == CLASS_LENGTH["input_size"]


def test_after_stop_the_evaluation_is_reported_net_by_net():
    from app import train_session
    from resnet_core.training.estimate import estimate_run
    from resnet_core.training.run import make_run
    run = make_run("degradation", "digits", steps=2, input_size=8)
    est = estimate_run(run)
    reports = []
    result = train_session.training_work(run, est)(lambda: False, reports.append)
    evaluating = [r for r in reports if isinstance(r, train_session.Evaluating)]
    assert [e.net for e in evaluating] == ["plain20", "plain56", "resnet20", "resnet56", ""]
    assert [e.index for e in evaluating] == [0, 1, 2, 3, 4] and evaluating[-1].fraction == 1.0
    text = evaluating[1].text()
    assert "evaluating plain56 (2 of 4)" in text and f"{est.eval_images:,} images" in text and "left" in text
    assert "step 2 of 2" in text and result.steps_done == 2


def test_one_step_is_not_called_the_mean_of_the_last_1_steps():
    at = lab(steps=1)
    at.button(key="train.start").click().run()
    wait_finished(at)
    captions = [c.value for c in at.caption]
    assert not any("last 1 steps" in c for c in captions)
    assert any("bold: each step" in c for c in captions)
