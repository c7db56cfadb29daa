"""One delivery per run (app/delivery.py): held messages go out together, in order, at the end or where the
page asks (a spinner); a newer request still stops the run; a stopped run's page still reaches the browser."""

import contextlib
import threading

import pytest
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException, StopException

from app import delivery

from .test_app import new_app, no_exception


class Runner:
    """Streamlit's ScriptRunner as the delivery sees it: `_enqueue_forward_msg` checks for a newer request
    (raising as Streamlit does), then hands the message on."""

    def __init__(self):
        self.sent, self.pending, self.checks = [], None, 0

        class Events:
            def send(inner, sender, event, forward_msg):  # noqa: N805 - a stand-in for a blinker signal
                self.sent.append(forward_msg)
        self.on_event = Events()

    def _maybe_handle_execution_control_request(self):
        self.checks += 1
        if self.pending is not None:
            raise self.pending

    def _enqueue_forward_msg(self, msg):
        self._maybe_handle_execution_control_request()
        self.sent.append(msg)


class Ctx:
    def __init__(self, runner):
        self._enqueue = runner._enqueue_forward_msg


@pytest.fixture
def run(monkeypatch):
    runner = Runner()
    ctx = Ctx(runner)
    monkeypatch.setattr(delivery, "get_script_run_ctx", lambda: ctx)
    return runner, ctx


def test_held_messages_go_out_together_in_order_at_the_end(run):
    runner, ctx = run
    with delivery.together():
        for i in range(5):
            ctx._enqueue(i)
        assert runner.sent == []
        assert runner.checks == 5  # each element is still a point where a newer request stops the run
    assert runner.sent == [0, 1, 2, 3, 4]
    assert ctx._enqueue == runner._enqueue_forward_msg  # Streamlit's own again


def test_passing_sends_the_page_so_far_then_its_own_messages_at_once(run):
    runner, ctx = run
    with delivery.together():
        ctx._enqueue("title")
        ctx._enqueue("controls")
        with delivery.passing():
            assert runner.sent == ["title", "controls"]  # what was held goes first, in order
            ctx._enqueue("spinner")
            assert runner.sent[-1] == "spinner"
        ctx._enqueue("view")
        assert runner.sent[-1] == "spinner"  # held again after the block
    assert runner.sent == ["title", "controls", "spinner", "view"]


def test_a_spinner_that_is_not_needed_sends_nothing_early(run, monkeypatch):
    runner, ctx = run
    shown = []
    monkeypatch.setattr(delivery.st, "spinner", lambda text: shown.append(text) or contextlib.nullcontext())
    with delivery.together():
        ctx._enqueue("controls")
        with delivery.spinner("Running the network…", needed=False):  # a view change: the kept pass
            ctx._enqueue("view")
        assert runner.sent == [] and shown == []  # still one delivery
        with delivery.spinner("Running the network…"):  # a new pass
            assert runner.sent == ["controls", "view"] and shown == ["Running the network…"]
    assert runner.sent == ["controls", "view"]


def element(text: str) -> ForwardMsg:
    msg = ForwardMsg()
    msg.delta.new_element.markdown.body = text
    return msg


def test_a_rerun_drops_its_page_but_not_the_address_bar(run):
    runner, ctx = run
    url = ForwardMsg()
    url.page_info_changed.query_string = "net=resnet20"
    toast = ForwardMsg()
    toast.delta.new_element.toast.body = "saved"
    with pytest.raises(RerunException), delivery.together():
        ctx._enqueue(element("old 1"))
        ctx._enqueue(url)  # state.sync_url, then the page calls st.rerun()
        ctx._enqueue(toast)
        runner.pending = RerunException(None)
        ctx._enqueue(element("old 2"))
    assert runner.sent == [url, toast]  # what Streamlit keeps when it cuts a run short; the rerun draws the rest
    assert ctx._enqueue == runner._enqueue_forward_msg


def test_nothing_is_held_without_streamlits_check(monkeypatch):
    """st.stop() and st.rerun() work by an element raising in Streamlit's check: without it, hold nothing."""
    sent = []
    ctx = Ctx.__new__(Ctx)
    ctx._enqueue = sent.append
    monkeypatch.setattr(delivery, "get_script_run_ctx", lambda: ctx)
    with delivery.together():
        ctx._enqueue("a")
        assert sent == ["a"]


def test_a_stopped_run_still_sends_what_it_made_before_the_stop(run):
    runner, ctx = run
    with pytest.raises(StopException), delivery.together():
        ctx._enqueue("error box")
        ctx._enqueue("the fix")
        runner.pending = StopException()  # st.stop(): Streamlit now refuses every message
        ctx._enqueue("after the stop")
    assert runner.sent == ["error box", "the fix"]


def test_messages_from_another_thread_are_held_too(run):
    runner, ctx = run
    with delivery.together():
        t = threading.Thread(target=lambda: [ctx._enqueue(i) for i in range(100)])
        t.start()
        t.join()
        assert runner.sent == []
    assert sorted(runner.sent) == list(range(100))


def test_nested_blocks_and_bare_mode_change_nothing(run, monkeypatch):
    runner, ctx = run
    with delivery.together():
        with delivery.together():
            ctx._enqueue("a")
        assert runner.sent == []  # the outer block holds
    assert runner.sent == ["a"]
    monkeypatch.setattr(delivery, "get_script_run_ctx", lambda: None)
    with delivery.together(), delivery.passing():  # no session: nothing to hold
        pass


def test_the_app_draws_the_same_page_through_one_delivery():
    """The whole app under AppTest (its own script runner): every page's elements arrive, in place."""
    at = new_app()
    no_exception(at)
    assert at.title and at.title[0].value.endswith("shape trace")
    at.switch_page("app_pages/live.py").run()
    no_exception(at)
    assert [s.value for s in at.subheader][:2] == ["Feature maps: layer1.0.add (64 channels, 56×56)",
                                                   "Inside layer1.0: x, F(x) and F(x) + x"]
    charts = [m.value for m in at.markdown if 'class="rx-chart' in m.value]
    assert len(charts) == 3 and all("<svg" in c for c in charts)
