"""A session's place in a class (never renders): who it is (teacher, student, nobody), whether it follows,
which push it has applied, and the calls the pages make (start, join, push, record an answer or a result).

Session keys (all under "class."):
    class.role      "teacher" | "student" | None
    class.code      the class code;  class.secret (teacher) | class.member, class.name (student)
    class.follow    a student follows the teacher (on by default; the switch in the sidebar)
    class.seen      the sequence number of the last push this session applied (or skipped, exploring alone)
    class.pending   a push to apply at the top of the next run, before the builder draws
    class.locked    the network the teacher locked the builder to (None: not locked)
The address bar carries ?class=CODE and &member=ID (a student) or &teacher=SECRET (the teacher), so a reload,
a server restart or another replica brings the session back into its class.
"""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from resnet_core.classroom import ClassError, Classroom, DatabaseError, Membership, Push, connect
from resnet_core.i18n import N_
from resnet_core.structure.lessons import EXERCISES
from resnet_core.structure.spec import ArchSpec

K = "class."
# app_pages/learn.py's STEPS (a test checks they agree): the Learn page's keys, shown through _()
LEARN_STEPS = [N_("1 · The residual block"), N_("2 · Shortcuts"), N_("3 · ResNet-18, shape by shape"),
               N_("4 · Batch norm"), N_("5 · Broken networks")]
EXERCISE_STEP = "5"
HEARTBEAT_S = 10.0  # a student's "last seen" is written at most this often
# the results' names as stored (the teacher's chart and CSV show them through _())
GRAD_RESULTS = {"with skips": N_("‖∂L/∂W₁‖ with skips"),  # i18n: not shown (the keys)
                "without skips": N_("‖∂L/∂W₁‖ without skips")}  # i18n: not shown (the keys)


def room() -> Classroom:
    """The process's classroom over its one database connection (RESNET_EXPLORER_CLASS_DB or the data folder)."""
    return Classroom(connect())


def role() -> str | None:
    return st.session_state.get(K + "role")


def code() -> str | None:
    return st.session_state.get(K + "code")


def secret() -> str | None:
    return st.session_state.get(K + "secret")


def me() -> Membership | None:
    ss = st.session_state
    if ss.get(K + "role") != "student":
        return None
    return Membership(ss[K + "code"], ss[K + "member"], ss[K + "name"])


def following() -> bool:
    return role() == "student" and bool(st.session_state.get(K + "follow", True))


def _set(**values: Any) -> None:
    for k, v in values.items():
        st.session_state[K + k] = v


def _forget() -> None:
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(K)]:
        del st.session_state[key]
    for p in ("class", "member", "teacher", "alone"):
        if p in st.query_params:
            del st.query_params[p]


def link_params() -> dict[str, str]:
    """What the address bar must carry for this session to come back to its class."""
    r = role()
    if r == "teacher":
        return {"class": code() or "", "teacher": secret() or ""}
    if r == "student":
        out = {"class": code() or "", "member": st.session_state[K + "member"]}
        if not following():
            out["alone"] = "1"
        return out
    return {}


def keep_link() -> None:
    """Every run: put the class back in the address bar if a page change dropped it (writes only when needed)."""
    want = link_params()
    qp = st.query_params
    if "alone" in qp and "alone" not in want:
        del qp["alone"]
    if any(qp.get(k) != v for k, v in want.items()):
        qp.update(want)


def from_link() -> str | None:
    """Once per session: join the class the address names (?class=CODE[&member=ID | &teacher=SECRET]).
    Returns what went wrong, as one line (None when all is well or the link names no class)."""
    ss = st.session_state
    if ss.get(K + "linked"):
        return None
    ss[K + "linked"] = True
    qp = st.query_params
    if "class" not in qp:
        return None
    try:
        r = room()
        if "teacher" in qp:
            info = r.teacher(qp["class"], qp["teacher"])
            _set(role="teacher", code=info.code, secret=qp["teacher"])
        elif "member" in qp:
            m = r.member(qp["class"], qp["member"])
            r.info(m.code)
            _set(role="student", code=m.code, member=m.member_id, name=m.name, follow="alone" not in qp, seen=0)
            _catch_up()
        else:
            info = r.info(qp["class"])  # a student link: the Class page asks for a name
            ss[K + "invited"] = info.code
    except (ClassError, DatabaseError) as e:
        return str(e)
    return None


# ---------------------------------------------------------------- a student
def join(class_code: str, name: str) -> Membership:
    m = room().join(class_code, name)
    _set(role="student", code=m.code, member=m.member_id, name=m.name, follow=True, seen=0)
    st.session_state.pop(K + "invited", None)
    _catch_up()
    keep_link()
    return m


def leave() -> None:
    _forget()


def _catch_up() -> None:
    """Queue the class's latest push (a student who joins or comes back lands where the class is)."""
    m = me()
    if m is None:
        return
    push = room().latest_push(m)
    if push is not None and following():
        st.session_state[K + "pending"] = push
    elif push is not None:
        _set(seen=push.seq)
    _set(locked=push.spec if push is not None and push.locked else None)


def set_follow(on: bool) -> None:
    """The switch: explore alone (pushes are noted, not applied) or come back (to the latest push at once)."""
    if st.session_state.get(K + "locked") is not None:
        on = True  # a locked builder: the class follows
    _set(follow=on)
    if on:
        _catch_up()
    keep_link()


def poll(now: float | None = None) -> bool:
    """The followers' cheap check (one indexed row): True when a new push waits (queued as `pending`)."""
    m = me()
    if m is None:
        return False
    t = time.time() if now is None else now
    r = room()
    if t - st.session_state.get(K + "beat", 0.0) >= HEARTBEAT_S:
        r.heartbeat(m, t)
        _set(beat=t)
    seq = r.latest_seq(m.code)
    if seq <= st.session_state.get(K + "seen", 0):
        return _lost_page(t)
    push = r.latest_push(m)
    if push is None:
        return False
    _set(locked=push.spec if push.locked else None)
    if not following():
        _set(seen=push.seq)
        return False
    waiting = st.session_state.get(K + "pending")
    if waiting is None or waiting.seq != push.seq:
        st.session_state[K + "pending"] = push
    return True


RECHECK_S = 15.0  # after a push, a follower's page is checked for this long (a page switch can be lost)


def expect_page(push: Push, page_hash: str | None, now: float | None = None) -> None:
    """The page (its script hash) a follower must be on after `push`, checked by `poll` for RECHECK_S: a page
    switch can be lost when the browser's own rerun (the poll's timer) lands in the same instant and Streamlit
    folds the two into one rerun of the page the browser still shows."""
    t = time.time() if now is None else now
    _set(expect=(push, page_hash, t + RECHECK_S) if page_hash is not None else None)


def note_page() -> None:
    """Every full run (the follow hook): the page this run draws, as the server runs it. The poll compares the
    pushed page with this, not with its own run's page: a fragment's rerun carries the page the browser last
    said it shows, which lags behind a switch the server has made (and re-applying the push then, again and
    again, kept forty followers from ever receiving the page: benchmarks/RESULTS.md)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    ctx = get_script_run_ctx()
    if ctx is not None:
        _set(page_now=ctx.page_script_hash)


def _lost_page(now: float) -> bool:
    expect = st.session_state.get(K + "expect")
    if expect is None or not following():
        return False
    push, page_hash, until = expect
    if now > until:
        _set(expect=None)
        return False
    page_now = st.session_state.get(K + "page_now")
    if page_now is None or page_now == page_hash:
        return False
    st.session_state[K + "pending"] = push  # the server drew another page after the push: apply it again
    return True


def pending() -> Push | None:
    """The push to apply at the top of this run. It stays pending until a run has applied it through to its
    page (`applied`): a run cut short on the way (a page switch, a newer request) applies it again."""
    return st.session_state.get(K + "pending")


def applied(push: Push) -> None:
    if st.session_state.get(K + "pending") is push:
        del st.session_state[K + "pending"]
    _set(seen=max(push.seq, st.session_state.get(K + "seen", 0)))


def locked_spec() -> ArchSpec | None:
    return st.session_state.get(K + "locked") if following() else None


def learn_step(step: str) -> str | None:
    return LEARN_STEPS[int(step) - 1] if step.isdigit() and 1 <= int(step) <= len(LEARN_STEPS) else None


def exercise_spec(key: str) -> ArchSpec | None:
    return next((ex.broken for ex in EXERCISES if ex.key == key), None)


def record_exercise(exercise: Any, spec: ArchSpec, problem: str | None) -> None:
    """learn.py, where an exercise is checked: the student's answer (what is still wrong, or solved) goes to
    the teacher once per different answer. The untouched broken network is not an answer."""
    m = me()
    if m is None or spec == exercise.broken:
        return
    answer = "solved" if problem is None else problem
    sent = st.session_state.setdefault(K + "answers", set())
    if (exercise.key, answer) in sent:
        return
    sent.add((exercise.key, answer))
    try:
        room().record_answer(m, exercise.key, answer, problem is None)
    except (ClassError, DatabaseError):
        sent.discard((exercise.key, answer))  # an ended class, a database away: the page goes on


def offer_gradient_flow(flow: Any) -> None:
    """live.py, where a gradient flow is shown: each variant's first-conv ‖∂L/∂W₁‖ goes to the teacher (once)."""
    m = me()
    if m is None or not flow.variants or flow.stopped:
        return
    first = flow.weight_rows()[0]
    values = {GRAD_RESULTS.get(v.label, v.label): float(n) for v, n in zip(flow.variants, first["norms"], strict=True)}
    mark = (flow.spec.name, tuple(sorted(values.items())))
    if st.session_state.get(K + "sent_flow") == mark:
        return
    try:
        for name, value in values.items():
            room().record_result(m, name, value)
        _set(sent_flow=mark)
    except (ClassError, DatabaseError):
        pass


def my_results() -> list[tuple[str, float]]:
    m = me()
    return room().my_results(m) if m is not None else []


# ---------------------------------------------------------------- the teacher
def start_class(title: str, hours: float) -> None:
    key = room().start(title, hours)
    _set(role="teacher", code=key.code, secret=key.secret)
    keep_link()


def push(**fields: Any) -> int:
    return room().push(code() or "", secret(), **fields)


def end_class() -> None:
    room().end(code() or "", secret())
