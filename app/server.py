"""What the server process does once, for every session after it: import the heavy modules the pages use and
freeze the garbage collector's view of them.

A full collection walks every object the process holds: with torch, pandas and Altair loaded that is about
300,000 objects and 0.1–0.4 s holding the GIL, during which no other session's script and no health check
runs. The objects made by the imports live as long as the process, so `gc.freeze()` moves them out of the
collector's way; with `runner.postScriptGC = false` (.streamlit/config.toml) Streamlit no longer forces a
full collection after every script run, and Python's own generational collections see only what the
sessions create.
"""

from __future__ import annotations

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
        gc.collect()
        gc.freeze()
        _DONE = True
