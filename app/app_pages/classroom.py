"""Class: a teacher starts a class and leads it; a student joins with the code or the link.

The teacher's view: the links, the push (a network, a page, a Learn step or exercise, the lock), the roster,
every exercise's solved / tried-and-failed / not-started with the most common wrong answer, and the students'
live results in one chart with a CSV download. A student sees only their own class, name and results.
"""

from datetime import datetime
from urllib.parse import urlencode, urlsplit, urlunsplit

import altair as alt
import pandas as pd
import streamlit as st

import resnet_core as rc
from app import classroom_session as cs
from app.classroom_ui import page_key
from resnet_core.classroom import ClassError, DatabaseError
from resnet_core.structure.lessons import EXERCISES
from resnet_core.text import md, safe_filename

st.title("Class")


def link(**params: str) -> str:
    """An absolute link to this page with `params` (relative when the host is unknown)."""
    try:
        base = st.context.url or ""
    except Exception:  # noqa: BLE001 - no browser context (tests)
        base = ""
    query = urlencode(params)
    if not base:
        return "classroom?" + query
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def nobody() -> None:
    join_tab, start_tab = st.columns(2, gap="large")
    with join_tab, st.container(border=True):
        st.subheader(":material/login: Join a class")
        invited = st.session_state.get(cs.K + "invited", "")
        with st.form("class.join_form", border=False):
            typed = st.text_input("Class code", value=invited, max_chars=12, key="class.join_code",
                                  placeholder="e.g. K7Q X2M")
            name = st.text_input("Your name", max_chars=40, key="class.join_name",
                                 help="Only the teacher sees it; other students never do.")
            if st.form_submit_button("Join", icon=":material/login:", type="primary"):
                try:
                    cs.join(typed, name)
                    st.rerun()
                except (ClassError, DatabaseError) as e:
                    st.error(md(e), icon=":material/error:")
    with start_tab, st.container(border=True):
        st.subheader(":material/co_present: Start a class (teacher)")
        with st.form("class.start_form", border=False):
            title = st.text_input("Title", value="ResNet lesson", max_chars=80, key="class.start_title")
            hours = st.number_input("Ends after (hours)", 0.5, 24.0, 2.0, 0.5, key="class.start_hours")
            if st.form_submit_button("Start the class", icon=":material/play_arrow:"):
                try:
                    cs.start_class(title, float(hours))
                    st.rerun()
                except (ClassError, DatabaseError) as e:
                    st.error(md(e), icon=":material/error:")


def student() -> None:
    me = cs.me()
    assert me is not None
    info = cs.room().info(me.code)
    st.success(f"You are in class **{me.code}** ({md(info.title)}) as **{md(me.name)}**.", icon=":material/groups:")
    if not info.open_at(datetime.now().timestamp()):
        st.info("This class has ended. Your work stays in this browser.", icon=":material/event_busy:")
    st.caption("Following the teacher: " + ("on" if cs.following() else "off (exploring alone)") +
               ". The switch is in the sidebar. Keep this page's link to come back to the class.")
    mine = cs.my_results()
    if mine:
        st.markdown("**Your results, sent to the teacher:**")
        st.dataframe(pd.DataFrame(mine, columns=["result", "value"]), hide_index=True)
    if st.button("Leave the class", icon=":material/logout:", key="class.leave"):
        cs.leave()
        st.rerun()


def push_form(pages: dict[str, str]) -> None:
    with st.container(border=True):
        st.subheader(":material/send: Send the class to…")
        spec = st.session_state.get("spec")
        choices = ["keep theirs", "the network in my builder", "a preset"]
        what = st.radio("Network", choices, index=1, key="class.push_what", horizontal=True)
        preset = st.selectbox("Preset", rc.list_presets(), key="class.push_preset", disabled=what != "a preset")
        names = {page_key(u): t for u, t in pages.items() if u != "classroom"}
        page = st.selectbox("Page", ["", *names], format_func=lambda k: names.get(k, "stay where they are"),
                            key="class.push_page")
        c1, c2 = st.columns(2)
        step = c1.selectbox("Learn step", ["", *[str(i + 1) for i in range(len(cs.LEARN_STEPS))]],
                            format_func=lambda s: cs.learn_step(s) or "—", key="class.push_step")
        exercise = c2.selectbox("Exercise (loads it, opens Learn step 5)", ["", *[e.key for e in EXERCISES]],
                                format_func=lambda k: next((e.title for e in EXERCISES if e.key == k), "—"),
                                key="class.push_ex")
        locked = st.toggle("Lock the builder (a demonstration: students cannot change the network)",
                           key="class.push_lock")
        if st.button("Send", icon=":material/send:", type="primary", key="class.push"):
            net = spec if what == choices[1] else rc.get_preset(preset) if what == choices[2] else None
            if exercise:
                page, net = page or "learn", None
            if step and not page:
                page = "learn"
            try:
                seq = cs.push(spec=net, page=page, step=step, exercise=exercise, locked=locked)
                st.toast(f"Push {seq} sent.", icon=":material/send:")
            except (ClassError, DatabaseError) as e:
                st.error(md(e), icon=":material/error:")


@st.fragment(run_every=3.0)
def class_view() -> None:
    code, secret = cs.code(), cs.secret()
    try:
        room = cs.room()
        roster = room.roster(code, secret)
        progress = room.progress(code, secret, [e.key for e in EXERCISES])
        results = room.results(code, secret)
    except (ClassError, DatabaseError) as e:
        st.error(md(e), icon=":material/error:")
        return
    here = sum(r.connected for r in roster)
    st.subheader(f":material/groups: Roster: {here} connected of {len(roster)}")
    if roster:
        now = datetime.now().timestamp()
        st.dataframe(pd.DataFrame({"student": [r.name for r in roster],
                                   "connected": ["yes" if r.connected else "no" for r in roster],
                                   "last seen (s ago)": [round(now - r.last_seen) for r in roster]}),
                     hide_index=True, height=min(400, 38 + 35 * len(roster)))
    st.subheader(":material/task_alt: Exercises")
    titles = {e.key: e.title for e in EXERCISES}
    st.dataframe(pd.DataFrame({
        "exercise": [titles[p.exercise] for p in progress],
        "solved": [len(p.solved) for p in progress], "tried, not solved": [len(p.failed) for p in progress],
        "not started": [len(p.not_started) for p in progress],
        "most common wrong answer": [f"{p.common_wrong} ({p.common_wrong_students})" if p.common_wrong else "—"
                                     for p in progress],
        "who is stuck": [", ".join(p.failed) for p in progress]}), hide_index=True)
    st.subheader(":material/bar_chart: Results from the Live lab")
    if not results:
        st.caption("No results yet: students' gradient flows (Live lab → Backward) arrive here as they finish.")
        return
    df = pd.DataFrame([(r.student, r.name, r.value) for r in results], columns=["student", "result", "value"])
    positive = df["value"] > 0
    scale = alt.Scale(type="log") if positive.all() else alt.Scale(type="linear")
    chart = alt.Chart(df).mark_circle(size=90).encode(
        x=alt.X("value:Q", scale=scale, title="value" + (" (log scale)" if positive.all() else "")),
        y=alt.Y("result:N", title=None), color=alt.Color("result:N", legend=None),
        tooltip=["student", "result", "value"])
    st.altair_chart(chart, width="stretch")


def teacher() -> None:
    code, secret = cs.code(), cs.secret()
    try:
        info = cs.room().teacher(code, secret)
    except (ClassError, DatabaseError) as e:
        st.error(md(e), icon=":material/error:")
        return
    ends = datetime.fromtimestamp(info.expires).strftime("%H:%M")
    is_open = info.open_at(datetime.now().timestamp())
    st.markdown(f"### Class **{info.code}** · {md(info.title)} · " + (f"ends at {ends}" if is_open else "ended"))
    left, right = st.columns(2)
    left.markdown("**Student link** (or the code above):")
    left.code(link(**{"class": info.code}), language=None)
    with right.expander("Teacher link: keep it private (it carries your key)"):
        st.code(link(**{"class": info.code, "teacher": secret or ""}), language=None)
    if is_open:
        push_form(st.session_state.get("ui.pages", {}))
    class_view()
    # outside the refreshing view (a refresh would withdraw a file being downloaded), made at the click: current
    st.download_button("⬇ Results (CSV)", lambda: cs.room().results_csv(code or "", secret),
                       safe_filename(f"class_{code}", ".csv"), "text/csv", key="class.csv", on_click="ignore")
    if is_open and st.button("End the class", icon=":material/stop_circle:", key="class.end"):
        cs.end_class()
        st.rerun()
    if st.button("Leave this teacher view", key="class.teacher_leave",
                 help="The class goes on; the teacher link brings you back."):
        cs.leave()
        st.rerun()


role = cs.role()
if role == "teacher":
    teacher()
elif role == "student":
    student()
else:
    nobody()
