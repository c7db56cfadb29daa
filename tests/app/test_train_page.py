"""The Training lab page through AppTest: a short run, stopping, bad data folders, the hand-off."""

import time

import pytest

from .test_app import new_app, no_exception, spec_of


def training_page():
    at = new_app()
    at.switch_page("app_pages/train.py").run()
    no_exception(at)
    return at


def wait_finished(at, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.5)
        at.run()
        job = at.session_state["train.job"]
        if job.finished:
            at.run()
            return job
    pytest.fail("the training run did not finish in time")


def start(at, steps: int, size: int = 8):
    at.number_input(key="train.steps").set_value(steps)
    at.number_input(key="train.size").set_value(size)
    at.button(key="train.start").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]


def test_page_loads_with_the_degradation_experiment():
    at = training_page()
    assert at.selectbox(key="train.experiment").value == "degradation"
    assert any("Start training" in i.value for i in at.info)


def test_short_run_then_hand_a_trained_net_to_the_live_lab():
    at = training_page()
    start(at, steps=30)
    assert at.button(key="train.stop").disabled is False  # the controls show the run as busy
    job = wait_finished(at)
    assert job.error is None and not job.result.stopped
    assert [r.net for r in job.result.nets] == ["plain20", "plain56", "resnet20", "resnet56"]
    table = at.dataframe[0].value
    assert list(table["network"]) == ["plain20", "plain56", "resnet20", "resnet56"]
    assert (table["steps"] == 30).all()
    labels = [b.proto.label for b in at.get("download_button")]
    assert "⬇ Curves (CSV)" in labels and "⬇ Results (CSV)" in labels

    at.button(key="train.live.resnet20").click().run()
    no_exception(at)
    spec = spec_of(at)
    assert spec.name == "resnet20" and spec.input_size == (8, 8) and spec.in_channels == 3
    assert at.title[0].value == "Live lab"
    assert at.selectbox(key="live.weights").value == "trained:resnet20"
    assert any("Top predictions" in m.value for m in at.markdown)
    captions = [c for img in at.get("image") for c in img.captions]
    assert any(c.startswith("held-out example 0") for c in captions)


def test_stop_keeps_what_was_learned():
    at = training_page()
    start(at, steps=5000)
    job = at.session_state["train.job"]
    deadline = time.time() + 60
    while (job.progress is None or job.progress.step < 3) and time.time() < deadline:
        time.sleep(0.2)
    at.button(key="train.stop").click().run()
    job = wait_finished(at)
    assert job.result.stopped and 3 <= job.result.steps_done < 5000
    assert any("stopped early" in s.value for s in at.subheader)
    # the stopped networks are usable: evaluated, and they run in the live lab
    assert all(0.0 <= r.train_accuracy <= 1.0 for r in job.result.nets)
    at.button(key="train.live.plain20").click().run()
    no_exception(at)
    assert at.title[0].value == "Live lab" and not at.error


def test_a_wrong_cifar_folder_is_refused(tmp_path):
    at = training_page()
    at.segmented_control(key="train.data").set_value("cifar").run()
    at.text_input(key="train.cifar").set_value(str(tmp_path / "nowhere")).run()
    at.button(key="train.start").click().run()
    no_exception(at)
    assert at.error and "Training could not start: no such folder" in at.error[0].value
    (tmp_path / "empty").mkdir()
    at.text_input(key="train.cifar").set_value(str(tmp_path / "empty")).run()
    at.button(key="train.start").click().run()
    assert "is not a CIFAR-10 folder" in at.error[0].value
    assert "train.job" not in at.session_state


def test_custom_experiment_needs_a_network():
    at = training_page()
    at.selectbox(key="train.experiment").set_value("custom").run()
    at.multiselect(key="train.nets").set_value([]).run()
    at.button(key="train.start").click().run()
    no_exception(at)
    assert "choose at least one network" in at.error[0].value
