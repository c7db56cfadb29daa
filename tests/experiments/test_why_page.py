"""The Why it works page through AppTest: it loads, runs an experiment in the background with progress,
shows the verdict and the numbers, and takes trained networks from the Training lab when there are some."""

import time
from dataclasses import replace

import pytest

from tests.app.test_app import new_app, no_exception


@pytest.fixture(autouse=True)
def state_dir(fresh_state):
    return fresh_state  # tests/conftest.py: this test's own state folder


def why_page():
    at = new_app()
    at.switch_page("app_pages/why.py").run()
    no_exception(at)
    return at


def wait_done(at, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.3)
        at.run()
        job = at.session_state["why.job"]
        if job.finished:
            at.run()
            no_exception(at)
            return job
    pytest.fail("the experiment did not finish in time")


def test_page_loads_with_the_claim_and_a_run_button():
    at = why_page()
    assert at.segmented_control(key="why.experiment").value == "lesion"
    assert any("Veit" in m.value for m in at.markdown)
    assert at.button(key="why.run").disabled is False and at.button(key="why.stop").disabled is True


def test_erf_runs_and_shows_a_verdict_and_table():
    at = why_page()
    at.segmented_control(key="why.experiment").set_value("erf").run()
    at.number_input(key="why.erf.channels").set_value(2)
    at.number_input(key="why.erf.seeds").set_value(1)
    at.toggle(key="why.erf.builder").set_value(False)
    at.button(key="why.run").click().run()
    no_exception(at)
    job = wait_done(at)
    assert job.error is None and job.result is not None
    verdict = [s.value for s in at.success] + [e.value for e in at.error]
    assert any("Acceptance" in v for v in verdict)
    assert ("Reproduced" in verdict[0]) == job.result.verdict.reproduced  # the banner says what the numbers say
    assert len(at.dataframe) >= 1
    assert any("Luo" in m.value for m in at.markdown)


def test_pair_from_the_training_lab_is_offered(monkeypatch):
    """A finished Training lab run with resnet20 and plain20: the page offers it as the trained pair."""
    from app import experiments_session as xs
    at = why_page()
    monkeypatch.setattr(xs, "training_lab_pair", lambda residual: ("resnet20", "plain20", None, None))
    at.run()
    radio = at.radio(key="why.lesion.pair.source")
    assert radio.options[0].startswith("from the Training lab")


def test_stop_keeps_what_was_measured_and_says_so():
    at = why_page()
    at.segmented_control(key="why.experiment").set_value("shatter").run()
    at.button(key="why.run").click().run()
    no_exception(at)
    assert at.button(key="why.stop").disabled is False and at.button(key="why.run").disabled is True
    at.button(key="why.stop").click().run()
    job = wait_done(at)
    assert job.error is None and job.result.stopped
    assert any("Stopped early" in w.value for w in at.warning)
    assert at.button(key="why.run").disabled is False


def test_a_lesion_study_too_large_for_the_work_limit_is_refused_before_its_pair_trains(monkeypatch):
    """The pair trained here is part of the run's cost: over RESNET_EXPLORER_WORK_LIMIT the run is refused
    with the numbers, and no pair is trained (nor kept)."""
    from app import experiments_session as xs
    monkeypatch.setenv("RESNET_EXPLORER_WORK_LIMIT", "1G")  # the default lesion run needs ~870 G mult-adds
    at = why_page()
    at.button(key="why.run").click().run()
    no_exception(at)
    job = wait_done(at, timeout=60)
    assert job.result is None and "RESNET_EXPLORER_WORK_LIMIT" in job.error, job.error
    from resnet_core.experiments.settings import LesionSettings
    assert xs.shared_pair(replace(LesionSettings().pair, processes=1)) is None  # refused before the pair trained
    assert any("RESNET_EXPLORER_WORK_LIMIT" in e.value for e in at.error)


def page_text(at) -> str:
    return "\n".join(e.value for kind in ("markdown", "caption", "info", "warning", "error", "success")
                     for e in at.get(kind) if isinstance(getattr(e, "value", None), str)).replace("\\", "")


def test_no_fixed_time_is_claimed_and_the_expected_time_is_measured_here():
    at = why_page()
    text = page_text(at)
    assert "about 96 s" not in text and "couple of minutes" not in text and "idle 2-core" not in text
    deadline = time.time() + 60
    while "Expected on this server" not in page_text(at) and time.time() < deadline:
        time.sleep(0.5)
        at.run()
    expected = [c.value for c in at.caption if "Expected on this server" in c.value][0]
    assert "training the pair and then the experiment" in expected and "measured" in expected


@pytest.mark.slow
def test_a_prepared_pair_is_shared_by_the_lesion_study_and_the_landscape_and_by_every_session():
    """Prepared once (as `resnet-explorer prepare` does): both experiments of two sessions run on it, none trains,
    and the page says how long the run took from the click."""
    from app import experiments_session as xs
    from resnet_core.experiments.trained import PairSettings
    from resnet_core.training import prepared
    ps = PairSettings(steps=3, input_size=8)
    prepared.prepare_pair(ps, "the operator")
    shared = prepared.load_pair(ps)
    for experiment, prefix in (("lesion", "why.lesion.pair"), ("landscape", "why.land.pair")):
        at = why_page()
        at.segmented_control(key="why.experiment").set_value(experiment).run()
        at.selectbox(key=f"{prefix}.net").set_value("resnet20")
        at.number_input(key=f"{prefix}.steps").set_value(3)
        at.number_input(key=f"{prefix}.size").set_value(8).run()
        no_exception(at)
        assert "prepared for the class" in page_text(at) and "no training" in page_text(at)
        at.button(key="why.run").click().run()
        job = wait_done(at)
        assert job.error is None, job.error
        assert job.result.settings["source"] == shared.source  # the prepared pair, not one trained now
        took = job.result.extra["timing"]
        assert took["trained"] is False and took["wall_s"] >= job.result.seconds
        assert any("from the click on this server, on a pair already trained" in c.value for c in at.caption)
    assert xs.shared_pair(ps) is shared  # and nothing else was kept


def test_the_class_length_button_sets_the_measured_preset():
    from resnet_core.experiments.pair import CLASS_LENGTH_PAIRS
    at = why_page()
    at.segmented_control(key="why.experiment").set_value("landscape").run()
    at.button(key="why.land.pair.class_length").click().run()
    no_exception(at)
    cl = CLASS_LENGTH_PAIRS["landscape"]
    assert at.selectbox(key="why.land.pair.net").value == cl.residual
    assert at.number_input(key="why.land.pair.steps").value == cl.steps
    assert at.number_input(key="why.land.pair.size").value == cl.input_size


@pytest.mark.slow
def test_a_pair_trained_by_one_session_is_used_by_another_and_kept_for_the_class(monkeypatch):
    from app import experiments_session as xs
    from resnet_core.training import prepared
    monkeypatch.setattr(xs, "_SHARED", type(xs._SHARED)())  # this process's pairs: none yet

    def lesion_page(steps=3):
        at = why_page()
        at.number_input(key="why.lesion.pair.steps").set_value(steps)
        at.number_input(key="why.lesion.pair.size").set_value(8).run()
        no_exception(at)
        return at
    first = lesion_page()
    assert "The pair trains here" in page_text(first)
    first.button(key="why.run").click().run()
    job = wait_done(first)
    assert job.error is None and job.result.extra["timing"]["trained"] is True
    assert any("training the pair" in c.value and "from the click" in c.value for c in first.caption)
    second = lesion_page()  # another session: the pair is there, no training
    assert "trained by an earlier run on this server" in page_text(second)
    second.button(key="why.lesion.pair.keep").click().run()
    no_exception(second)
    (entry,) = prepared.listing()
    assert entry["kind"] == "pair" and entry["how"] == "a teacher in the app" and entry["settings"]["steps"] == 3
    xs._SHARED.clear()  # a restart: nothing in memory, the prepared pair on disk
    prepared.forget()
    third = lesion_page()
    assert "prepared for the class" in page_text(third) and "by a teacher in the app" in page_text(third)
