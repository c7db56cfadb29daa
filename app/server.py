"""What the server process does once, for every session after it: import the heavy modules the pages use and
freeze the garbage collector's view of them; and hold back a fragment's rerun that would otherwise throw away the
run that has just finished (below).

A full collection walks every object the process holds: with torch, pandas and Altair loaded that is about
300,000 objects and 0.1–0.4 s holding the GIL, during which no other session's script and no health check
runs. The objects made by the imports live as long as the process, so `gc.freeze()` moves them out of the
collector's way; with `runner.postScriptGC = false` (.streamlit/config.toml) Streamlit no longer forces a
full collection after every script run, and Python's own generational collections see only what the
sessions create.
"""

from __future__ import annotations

import functools
import gc
import threading

_LOCK = threading.Lock()
_DONE = False


def settle_once() -> None:
    """Import what the pages import, then freeze the collector's generations (once per process)."""
    global _DONE
    if _DONE:
        return
    with _LOCK:
        if _DONE:
            return
        import altair  # noqa: F401 - the charts of every lab
        import pandas  # noqa: F401 - every table

        from app import experiments_session, live_session, train_session  # noqa: F401
        from app.charts import experiments, live, structure, training  # noqa: F401
        keep_finished_runs()
        gc.collect()
        gc.freeze()
        _DONE = True


# ---- a fragment's rerun that came too early ----
#
# Streamlit sends a run's elements from the script's thread to the event loop one by one (this app sends them all
# at the end of the run: app/delivery.py) and then stops the run's ScriptRunner. A rerun request that the event
# loop handles after the runner has stopped but before the loop has taken in the runner's last events finds a
# runner that refuses it, and starts a new one; from then on every event of the old runner (its elements, its
# "finished") is ignored as coming from "a non-current ScriptRunner". The browser is left with the start of a run
# and nothing else. With a class following the teacher (the poll fragment asks for a rerun every second) and a
# loaded server (the loop seconds behind), that lost the Shape trace page for 2–17 of 40 students
# (benchmarks/RESULTS.md, "A class through the proxy"). The fix: a fragment's rerun that finds the runner stopped
# waits for the loop to take in that runner's last events (its SHUTDOWN releases it), then goes ahead.

RETRY_S = 0.02
MAX_WAIT_S = 10.0


def _stopped(runner: object) -> bool:
    """Whether a ScriptRunner has stopped taking requests (Streamlit's ScriptRequests in state STOP)."""
    from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequestType
    requests = getattr(runner, "_requests", None)
    return getattr(requests, "_state", None) == ScriptRequestType.STOP


def patient_request_rerun(original, session, client_state, waited: float = 0.0) -> None:
    """AppSession.request_rerun, except that a fragment's rerun which finds the session's runner stopped (its last
    events still on their way) is tried again shortly, until that runner is released (or MAX_WAIT_S)."""
    runner = getattr(session, "_scriptrunner", None)
    fragment = client_state is not None and bool(getattr(client_state, "fragment_id", ""))
    if fragment and runner is not None and waited < MAX_WAIT_S and _stopped(runner):
        session._event_loop.call_later(  # noqa: SLF001 - the loop the session runs on
            RETRY_S, functools.partial(patient_request_rerun, original, session, client_state, waited + RETRY_S))
        return None
    return original(session, client_state)


def keep_finished_runs() -> None:
    """Install patient_request_rerun on Streamlit's AppSession (once; a Streamlit without the method: nothing)."""
    from streamlit.runtime.app_session import AppSession
    original = AppSession.request_rerun
    if getattr(original, "_rx_patient", False):
        return

    @functools.wraps(original)
    def request_rerun(self, client_state):
        return patient_request_rerun(original, self, client_state)

    request_rerun._rx_patient = True  # type: ignore[attr-defined]
    AppSession.request_rerun = request_rerun
