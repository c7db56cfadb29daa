"""The class in every run: the follow hook (streamlit_app.py calls `follow` once per run, before the builder
draws) and the student's box in the sidebar with its switch and the poll.

A follower polls the class database once a second in a fragment (one indexed row: the latest push's sequence
number); a new push queues it and reruns the app, and this hook, at the top of that run, writes the pushed
network into the builder's keys, the Learn step into the Learn page's keys, and switches to the pushed page.
A locked builder: while a follower's builder differs from the teacher's network, it is set back at the top
of each run (the builder itself needs no change; see the README's "Running it for a class").
"""

from __future__ import annotations

import streamlit as st

from app import classroom_session as cs
from app import state
from resnet_core.classroom import ClassError, DatabaseError, Push
from resnet_core.i18n import _
from resnet_core.text import md

POLL_S = 0.5  # a follower reaches a push within this plus one rerun (the issue asks for ≤ 2 s); 40 followers' polls
# cost the server about 0.2 CPU s a second at this rate (benchmarks/RESULTS.md)
SWITCH = "class.follow_switch"


def page_key(url_path: str) -> str:
    """A page as a push names it: its url_path, "home" for the default page."""
    return url_path or "home"


def follow(pages: list, nav) -> None:
    """Once per run, before the builder: come into the class from the link, apply a waiting push, keep a locked
    builder on the teacher's network, and draw the class box in the sidebar."""
    problem = cs.from_link()
    if problem:
        st.warning(_("This class link could not be used: {problem}", problem=md(problem)), icon=":material/group_off:")
    if cs.role() is None:
        return
    cs.note_page()
    cs.keep_link()
    push = cs.pending()
    if push is not None:
        _apply(push, pages, nav)  # a page switch ends this run here; the push stays pending until its page runs
        cs.applied(push)
    locked = cs.locked_spec()
    if locked is not None and state.read_spec() != locked:
        state.apply_spec_to_widgets(locked, source=locked.name)
        st.toast(_("The teacher has locked the builder for a demonstration."), icon=":material/lock:")
    with st.sidebar:
        _box()


def _apply(push: Push, pages: list, nav) -> None:
    spec = push.spec
    if push.exercise:
        spec = cs.exercise_spec(push.exercise) or spec
    if spec is not None:
        problems = state.apply_spec_to_widgets(spec, source=spec.name)
        if problems:
            st.warning(_("The teacher's network does not fit this builder: {problems}", problems=md("; ".join(problems))))
    step = cs.learn_step(push.step or (cs.EXERCISE_STEP if push.exercise else ""))
    if step is not None:
        st.session_state["learn.step"] = step
        st.session_state["learn.tabs"] = step
    page = push.page or ("learn" if step is not None else "")  # a Learn step or exercise opens Learn
    target = next((p for p in pages if page_key(p.url_path) == page), None) if page else None
    cs.expect_page(push, getattr(target, "_script_hash", None))  # Streamlit's page id (no public name)
    if page and page != page_key(nav.url_path) and target is not None:
        st.switch_page(target, query_params=st.query_params.to_dict())


def _on_switch() -> None:
    cs.set_follow(bool(st.session_state.get(SWITCH)))


def _box() -> None:
    with st.container(border=True):
        if cs.role() == "teacher":
            st.markdown(":material/co_present: " + _("Teaching class **{code}**", code=cs.code()))
            st.page_link("app_pages/classroom.py", label=_("Roster and results"), icon=":material/groups:")
            return
        locked = st.session_state.get(cs.K + "locked") is not None
        st.markdown(":material/groups: " + _("Class **{code}** · {name}", code=cs.code(),
                                               name=md(st.session_state.get(cs.K + "name", ""))))
        st.session_state[SWITCH] = cs.following()
        st.toggle(_("Follow the teacher"), key=SWITCH, on_change=_on_switch, disabled=locked,
                  help=_("On: the teacher's pushes bring you to their network and page. Off: explore alone; turn "
                         "it back on to rejoin the class where it is."))
        if locked:
            st.caption(":material/lock: " + _("The teacher has locked the builder."))
        elif not cs.following():
            st.caption(_("Exploring alone: the teacher's pushes wait until you follow again."))
        _poller()


@st.fragment(run_every=POLL_S)
def _poller() -> None:
    try:
        new = cs.poll()
    except (ClassError, DatabaseError):
        return  # an ended class, a database away for a moment: the next poll tries again
    if new:
        st.rerun(scope="app")
