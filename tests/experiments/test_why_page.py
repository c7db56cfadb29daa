"""The Why it works page through AppTest: it loads, runs an experiment in the background with progress,
shows the verdict and the numbers, and takes trained networks from the Training lab when there are some."""

import time

import pytest

from tests.app.test_app import new_app, no_exception


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
    assert dict(at.session_state[xs.PAIRS]) == {}  # refused before the pair trained
    assert any("RESNET_EXPLORER_WORK_LIMIT" in e.value for e in at.error)
