"""app/server.py: a fragment's rerun that finds the session's ScriptRunner stopped waits for that runner's last
events instead of starting a new runner that would make Streamlit drop them (the lost pages of a class)."""

import asyncio
from types import SimpleNamespace

from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequestType

from app import server


def runner(state):
    return SimpleNamespace(_requests=SimpleNamespace(_state=state))


def session(loop, state):
    return SimpleNamespace(_scriptrunner=runner(state) if state else None, _event_loop=loop)


def on_its_own_thread(test):
    """Run `test` in a thread of its own (its own event loop: the test process may already run one)."""
    import functools
    import threading

    @functools.wraps(test)
    def run(*args, **kwargs):
        failure = []

        def body():
            try:
                test(*args, **kwargs)
            except BaseException as e:  # noqa: BLE001 - raised again in the test's thread
                failure.append(e)
        t = threading.Thread(target=body)
        t.start()
        t.join(30)
        if failure:
            raise failure[0]
    return run


@on_its_own_thread
def test_a_fragment_rerun_waits_until_the_stopped_runner_is_released():
    loop = asyncio.new_event_loop()
    calls = []
    s = session(loop, ScriptRequestType.STOP)
    frag = SimpleNamespace(fragment_id="poll")

    server.patient_request_rerun(lambda sess, cs: calls.append(cs), s, frag)
    loop.run_until_complete(asyncio.sleep(0.1))
    assert calls == []  # the old runner's events have not been taken in yet: nothing started
    s._scriptrunner = None  # its SHUTDOWN event released it
    loop.run_until_complete(asyncio.sleep(0.1))
    assert calls == [frag]  # then the rerun went ahead, once
    loop.close()


@on_its_own_thread
def test_other_reruns_go_ahead_at_once():
    loop = asyncio.new_event_loop()
    calls = []
    for state, cs in ((ScriptRequestType.STOP, SimpleNamespace(fragment_id="")),  # a full-app rerun
                      (ScriptRequestType.CONTINUE, SimpleNamespace(fragment_id="poll")),  # a running runner
                      (None, SimpleNamespace(fragment_id="poll")),  # no runner
                      (ScriptRequestType.STOP, None)):  # a rerun without client state
        server.patient_request_rerun(lambda sess, c: calls.append(c), session(loop, state), cs)
    assert len(calls) == 4
    loop.close()


def test_a_runner_that_is_never_released_is_not_waited_on_for_ever(monkeypatch):
    monkeypatch.setattr(server, "MAX_WAIT_S", 0.1)
    waits_then_goes_ahead()


@on_its_own_thread
def waits_then_goes_ahead():
    loop = asyncio.new_event_loop()
    calls = []
    server.patient_request_rerun(lambda sess, c: calls.append(c), session(loop, ScriptRequestType.STOP),
                                 SimpleNamespace(fragment_id="poll"))
    loop.run_until_complete(asyncio.sleep(0.4))
    assert len(calls) == 1
    loop.close()


def test_the_patch_is_on_streamlits_session_once():
    from streamlit.runtime.app_session import AppSession
    server.keep_finished_runs()
    first = AppSession.request_rerun
    server.keep_finished_runs()
    assert AppSession.request_rerun is first and first._rx_patient
