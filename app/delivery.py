"""One delivery per script run: the page's elements reach the browser together, not one by one.

Streamlit sends each element to the browser as soon as the script makes it, and the browser redraws the
page for each message that arrives on its own. When the script's elements are spread out in time (the
model is built and run between them, or twenty sessions share the server's CPU and each script advances
a few milliseconds at a time), the browser redraws the whole page for nearly every element: measured on
a bare Streamlit page, 160 lines of text cost the browser 0.56 CPU s sent together and 3.6 CPU s sent
20 ms apart (see benchmarks/RESULTS.md). `together()` holds the run's messages and sends them at once
when the run ends, or where a page asks: `spinner()` and `passing()` send the page so far and then let a
status line's messages go at once, before work that takes a while.

A newer request from the browser (a click while the run holds its messages) still stops the run at its
next element, as Streamlit does. A run cut short for a rerun drops its held messages, except those
Streamlit itself keeps then (the query string in the address bar, toasts); the rerun draws the page again.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import streamlit as st
from streamlit.runtime.scriptrunner.script_runner import ScriptRunnerEvent
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException, StopException
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx


class _Held:
    """Installed as the run context's `_enqueue`: keeps the messages until `release()`."""

    def __init__(self, send) -> None:
        self.send = send  # Streamlit's own: checks for a newer request, then queues the message
        self.check = getattr(getattr(send, "__self__", None), "_maybe_handle_execution_control_request", None)
        self.messages: list = []
        self.passing = 0
        self.lock = threading.Lock()

    def __call__(self, msg) -> None:
        if self.passing:
            self.send(msg)
            return
        self.check()  # a click that came in meanwhile stops this run here, as an element would
        with self.lock:
            self.messages.append(msg)

    def release(self, checked: bool = True, keep=None) -> None:
        """Send what is held. `checked=False` after `st.stop()`: Streamlit refuses every message once a
        run is stopped, but these were made before the stop and are the page it ends on. `keep`: send
        only the messages it accepts (unchecked), drop the others."""
        with self.lock:
            messages, self.messages = self.messages, []
        if keep is not None:
            messages, checked = [m for m in messages if keep(m)], False
        for msg in messages:
            if checked:
                self.send(msg)
            else:  # what Streamlit's own enqueue does after its check
                runner = self.send.__self__
                runner.on_event.send(runner, event=ScriptRunnerEvent.ENQUEUE_FORWARD_MSG, forward_msg=msg)


def _survives_a_rerun(msg) -> bool:
    """The messages Streamlit itself keeps when a run is cut short for a rerun (ForwardMsgQueue.clear with
    retain_lifecycle_msgs): the address bar's query string, messages to a host page, toasts. Dropping the
    query string would leave the address bar on the previous network after a `st.rerun()`."""
    if msg.WhichOneof("type") in ("page_info_changed", "parent_message"):
        return True
    return (msg.HasField("delta") and msg.delta.WhichOneof("type") == "new_element"
            and msg.delta.new_element.WhichOneof("type") == "toast")


def _held() -> _Held | None:
    ctx = get_script_run_ctx()
    enqueue = getattr(ctx, "_enqueue", None)
    return enqueue if isinstance(enqueue, _Held) else None


@contextlib.contextmanager
def together() -> Iterator[None]:
    """Hold every message of the block and send them together at its end (or at `passing()`)."""
    ctx = get_script_run_ctx()
    if ctx is None or isinstance(getattr(ctx, "_enqueue", None), _Held):
        yield  # bare mode, or already held by an outer block
        return
    held = _Held(ctx._enqueue)
    if held.check is None:  # not Streamlit's runner: st.stop() and st.rerun() rely on the check, so hold nothing
        yield
        return
    ctx._enqueue = held
    ended = None
    try:
        yield
    except RerunException:
        ended = "rerun"  # st.rerun() or a newer request: the rerun draws the page again
        raise
    except StopException:
        # st.stop(), the session gone, or (runner.fastReruns) a newer request that replaces this runner:
        # what was made before it still goes; Streamlit ignores the messages of a runner it has replaced
        ended = "stop"
        raise
    finally:
        ctx._enqueue = held.send
        if ended == "rerun":
            held.release(keep=_survives_a_rerun)
        else:
            held.release(checked=ended is None)


@contextlib.contextmanager
def passing() -> Iterator[None]:
    """Within the block, messages go at once (after what is held): a spinner or a progress line."""
    held = _held()
    if held is None:
        yield
        return
    held.release()
    with held.lock:
        held.passing += 1
    try:
        yield
    finally:
        with held.lock:
            held.passing -= 1


def send_now(draw) -> None:
    """Run `draw()` (one status element) with its messages sent at once."""
    with passing():
        draw()


def spinner(text: str, needed: bool = True):
    """`st.spinner(text)` that shows while the work inside runs (the page so far goes first); nothing when
    the work is not `needed` (its result is kept), so that a view change stays one delivery."""
    if not needed:
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(passing())
    stack.enter_context(st.spinner(text))
    return stack
