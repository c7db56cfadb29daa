"""The Training lab page through AppTest: a short run, stopping, bad data folders, the hand-off."""

import time

import pytest

from .test_app import new_app, no_exception, spec_of


@pytest.fixture(autouse=True)
def state_dir(fresh_state):
    return fresh_state  # tests/conftest.py: this test's own state folder


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


def page_text(at) -> str:
    """Every text the page shows (markdown, captions, alerts, code, dataframes' cells)."""
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success", "code")
             for e in at.get(kind) if isinstance(getattr(e, "value", None), str)]
    for df in at.dataframe:
        parts.append(df.value.to_string())
    return "\n".join(parts)


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
    # the sentences under the results are this result's, with its numbers
    from resnet_core.text import md
    from resnet_core.training.story import summarise
    told = [i.value for i in at.info if "training loss" in i.value][0]
    assert told == "\n\n".join(md(x) for x in summarise(job.result, "degradation"))
    assert "After all 30 steps" in told and f"{job.result.net('plain56').final_loss:.3g}" in told
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


def test_a_long_run_is_announced_with_its_estimate_before_it_starts():
    at = training_page()
    start(at, steps=5000)
    assert "train.job" not in at.session_state  # nothing started yet
    warning = at.warning[0].value
    _, _, est, _ = at.session_state["train.pending"]
    # the range: every net's measured seconds a step × the steps, plus the final evaluation
    per_step = sum(n.step.mean for n in est.nets)
    assert est.training.low <= per_step * 5000 <= est.training.high and est.total.high > 180
    assert est.total.low == pytest.approx(est.training.low + est.evaluation.low)
    assert f"This run would take {est.total.text()} on this server" in warning.replace("\\", "")
    assert "5,000 steps" in warning and "load now" in warning
    at.button(key="train.cancel").click().run()
    assert "train.pending" not in at.session_state and not at.warning


def test_stop_keeps_what_was_learned():
    at = training_page()
    start(at, steps=5000)
    at.button(key="train.start_anyway").click().run()
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


def test_cifar_folders_are_read_only_below_the_operators_data_folder(tmp_path, monkeypatch):
    """Every path that is not a CIFAR-10 folder inside the data folder gets the one same message."""
    from resnet_core.training.data import NOT_OFFERED
    from tests.training.test_data import make_cifar
    root = tmp_path / "data"
    make_cifar(root / "c10", per_batch=4, n_test=4)  # root/c10/cifar-10-batches-py
    make_cifar(tmp_path / "outside", per_batch=4, n_test=4)  # a real CIFAR folder, but outside
    (root / "empty").mkdir()
    (root / "file.txt").write_text("x")
    (root / "link").symlink_to(tmp_path / "outside")
    monkeypatch.setenv("RESNET_EXPLORER_DATA_DIR", str(root))
    at = training_page()
    at.segmented_control(key="train.data").set_value("cifar").run()
    messages = set()
    for name in ("nowhere", "empty", "file.txt", "link", "../outside", str(tmp_path / "outside"), "/etc",
                 "c10/../../outside", "\0x"):
        at.text_input(key="train.cifar").set_value(name).run()
        at.button(key="train.start").click().run()
        no_exception(at)
        messages.add(at.error[0].value)
    assert messages == {f"Training could not start: {NOT_OFFERED}"}
    assert "train.job" not in at.session_state and "train.pending" not in at.session_state
    # the folder inside is found (nested cifar-10-batches-py too) and trains
    at.text_input(key="train.cifar").set_value("c10").run()
    start(at, steps=2)
    job = wait_finished(at)
    assert job.error is None and "CIFAR-10 from data folder/c10" in job.result.data
    assert str(root) not in job.result.data and str(tmp_path) not in job.result.data
    # the visitor never sees the server's path: the folder is named relative to the data folder
    shown = page_text(at)
    assert "CIFAR-10 from data folder/c10" in shown and str(root) not in shown and str(root.resolve()) not in shown
    # a batch file swapped for a link out of the data folder after the folder was accepted is never read
    batch = root / "c10" / "cifar-10-batches-py" / "data_batch_2"
    batch.unlink()
    batch.symlink_to(tmp_path / "outside" / "cifar-10-batches-py" / "data_batch_2")
    at.button(key="train.start").click().run()
    no_exception(at)
    job = at.session_state["train.job"]
    if not at.error:
        job = wait_finished(at)
    refusals = [e.value for e in at.error] + ([job.error] if job.error else [])
    assert any(NOT_OFFERED in r for r in refusals), refusals


def test_without_a_data_folder_no_server_path_is_read(tmp_path, monkeypatch):
    from tests.training.test_data import make_cifar
    folder, *_ = make_cifar(tmp_path, per_batch=4, n_test=4)
    monkeypatch.delenv("RESNET_EXPLORER_DATA_DIR", raising=False)
    at = training_page()
    at.segmented_control(key="train.data").set_value("cifar").run()
    assert at.text_input(key="train.cifar").disabled
    assert any("has not set a data folder" in c.value for c in at.caption)
    at.button(key="train.start").click().run()
    assert "no CIFAR-10 folder of that name is offered" in at.error[0].value


def test_custom_experiment_needs_a_network():
    at = training_page()
    at.selectbox(key="train.experiment").set_value("custom").run()
    at.multiselect(key="train.nets").set_value([]).run()
    at.button(key="train.start").click().run()
    no_exception(at)
    assert "choose at least one network" in at.error[0].value


def test_the_page_shows_the_torchrun_commands_for_this_experiment():
    at = training_page()
    at.number_input(key="train.steps").set_value(123).run()
    at.number_input(key="train.nproc").set_value(2).run()
    codes = [c.value for c in at.code]
    assert any(c.startswith("python -m resnet_core train --nets degradation --steps 123") and c.endswith("--nproc 2")
               for c in codes)
    assert any("torchrun --standalone --nproc-per-node 2 -m resnet_core train --nets degradation --steps 123" in c
               and "torchrun --nnodes 2 --nproc-per-node 2" in c and "--rdzv-endpoint HOST:29400" in c for c in codes)


def test_a_local_two_process_run_streams_into_the_curves_and_hands_off():
    at = training_page()
    at.selectbox(key="train.experiment").set_value("custom").run()
    at.multiselect(key="train.nets").set_value(["resnet20"]).run()
    at.number_input(key="train.steps").set_value(6).run()
    at.number_input(key="train.size").set_value(8).run()
    at.number_input(key="train.batch").set_value(8).run()
    at.number_input(key="train.nproc").set_value(2).run()
    at.button(key="train.start_nproc").click().run()
    no_exception(at)
    job = wait_finished(at, timeout=240)
    assert job.error is None, job.error
    assert not job.workdir.exists(), "the run's temporary folder outlived it"
    assert [r.step for r in job.run.records] == list(range(1, 7))  # rank 0's progress, every step
    r = job.result
    assert r.world_size == 2 and r.effective_batch == 16 and r.config.lr == pytest.approx(2 * 0.05)
    assert [n.net for n in r.nets] == ["resnet20"] and r.net("resnet20").steps == 6
    assert "2 workers (gloo, CPU)" in r.device
    at.button(key="train.live.resnet20").click().run()
    no_exception(at)
    assert at.title[0].value == "Live lab" and not at.error


def test_the_curves_legend_is_drawn_at_full_opacity():
    import pandas as pd

    from app.charts.training import curve
    df = pd.DataFrame([{"step": s, "net": n, "loss": 1.0 / s, "accuracy": 0.5} for n in ("a", "b") for s in (1, 2, 3)])
    spec = curve(df, "loss", ["a", "b"], "loss").to_dict()
    legends = [layer["encoding"]["color"].get("legend") for layer in spec["layer"]]
    assert legends and all(lg is not None and lg["symbolOpacity"] == 1 for lg in legends)
    assert spec["layer"][0]["mark"]["opacity"] == 0.18  # the faint per-batch lines stay faint


def test_a_second_multi_process_run_on_the_server_is_refused_with_a_reason():
    from app import train_session
    train_session.PROCESS_RUNS.take()  # another session's run on several processes holds the server's place
    try:
        at = training_page()
        at.number_input(key="train.nproc").set_value(2).run()
        at.button(key="train.start_nproc").click().run()
        no_exception(at)
        errors = [e.value for e in at.error]
        assert errors and errors[0].startswith("Training could not start: another session's run on several "
                                               "processes"), errors
        assert "train.job" not in at.session_state
    finally:
        train_session.PROCESS_RUNS.give()
    assert train_session.PROCESS_RUNS.held == 0


@pytest.mark.slow
def test_stopping_a_multi_process_run_keeps_what_was_learned_and_leaves_nothing():
    at = training_page()
    at.selectbox(key="train.experiment").set_value("custom").run()
    at.multiselect(key="train.nets").set_value(["resnet20"]).run()
    at.number_input(key="train.steps").set_value(20_000).run()
    at.number_input(key="train.size").set_value(8).run()
    at.number_input(key="train.batch").set_value(8).run()
    at.number_input(key="train.nproc").set_value(2).run()
    at.button(key="train.start_nproc").click().run()
    no_exception(at)
    job = at.session_state["train.job"]
    deadline = time.time() + 180
    while (job.progress is None or job.progress.step < 3) and not job.finished and time.time() < deadline:
        time.sleep(0.2)
    assert job.progress is not None and job.progress.step >= 3, job.error
    at.button(key="train.stop").click().run()
    job = wait_finished(at, timeout=120)
    assert job.error is None, job.error
    assert job.result.stopped and 3 <= job.result.steps_done < 20_000
    assert not job.workdir.exists()
    from app import train_session
    assert train_session.PROCESS_RUNS.held == 0
