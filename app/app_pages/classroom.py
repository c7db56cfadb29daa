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
from resnet_core import i18n
from resnet_core.classroom import ClassError, DatabaseError
from resnet_core.i18n import _
from resnet_core.structure.lessons import EXERCISES
from resnet_core.text import md, safe_filename

st.title(_("Class"))


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
        st.subheader(":material/login: " + _("Join a class"))
        invited = st.session_state.get(cs.K + "invited", "")
        with st.form("class.join_form", border=False):
            typed = st.text_input(_("Class code"), value=invited, max_chars=12, key="class.join_code",
                                  placeholder=_("e.g. {code}", code="K7Q X2M"))
            name = st.text_input(_("Your name"), max_chars=40, key="class.join_name",
                                 help=_("Only the teacher sees it; other students never do."))
            if st.form_submit_button(_("Join"), icon=":material/login:", type="primary"):
                try:
                    cs.join(typed, name)
                    st.rerun()
                except (ClassError, DatabaseError) as e:
                    st.error(md(e), icon=":material/error:")
    with start_tab, st.container(border=True):
        st.subheader(":material/co_present: " + _("Start a class (teacher)"))
        with st.form("class.start_form", border=False):
            title = st.text_input(_("Title"), value=_("ResNet lesson"), max_chars=80, key="class.start_title")
            hours = st.number_input(_("Ends after (hours)"), 0.5, 24.0, 2.0, 0.5, key="class.start_hours")
            if st.form_submit_button(_("Start the class"), icon=":material/play_arrow:"):
                try:
                    cs.start_class(title, float(hours))
                    st.rerun()
                except (ClassError, DatabaseError) as e:
                    st.error(md(e), icon=":material/error:")


def student() -> None:
    me = cs.me()
    assert me is not None
    info = cs.room().info(me.code)
    st.success(_("You are in class **{code}** ({title}) as **{name}**.", code=me.code, title=md(info.title),
                 name=md(me.name)), icon=":material/groups:")
    if not info.open_at(datetime.now().timestamp()):
        st.info(_("This class has ended. Your work stays in this browser."), icon=":material/event_busy:")
    st.caption(_("Following the teacher: on. The switch is in the sidebar. Keep this page's link to come back to "
                 "the class.") if cs.following() else
               _("Following the teacher: off (exploring alone). The switch is in the sidebar. Keep this page's link "
                 "to come back to the class."))
    mine = cs.my_results()
    if mine:
        st.markdown(_("**Your results, sent to the teacher:**"))
        st.dataframe(pd.DataFrame([(_(r), v) for r, v in mine], columns=[_("result"), _("value")]), hide_index=True)
    if st.button(_("Leave the class"), icon=":material/logout:", key="class.leave"):
        cs.leave()
        st.rerun()


def push_form(pages: dict[str, str]) -> None:
    with st.container(border=True):
        st.subheader(":material/send: " + _("Send the class to…"))
        spec = st.session_state.get("spec")
        choices = ["keep theirs", "the network in my builder", "a preset"]  # i18n: not shown (values; labels below)
        labels = dict(zip(choices, [_("keep theirs"), _("the network in my builder"), _("a preset")], strict=True))
        what = st.radio(_("Network"), choices, index=1, key="class.push_what", horizontal=True,
                        format_func=labels.get)
        preset = st.selectbox(_("Preset"), rc.list_presets(), key="class.push_preset", disabled=what != choices[2])
        names = {page_key(u): t for u, t in pages.items() if u != "classroom"}
        names[""] = _("stay where they are")
        page = st.selectbox(_("Page"), ["", *[k for k in names if k]], format_func=names.get,
                            key="class.push_page")
        c1, c2 = st.columns(2)
        # the options' labels made in this run (a format_func may be called outside it, in English)
        steps = {"": "—", **{str(i + 1): _(label) for i, label in enumerate(cs.LEARN_STEPS)}}
        titles = {"": "—", **{e.key: _(e.title) for e in EXERCISES}}
        step = c1.selectbox(_("Learn step"), list(steps), format_func=steps.get, key="class.push_step")
        exercise = c2.selectbox(_("Exercise (loads it, opens Learn step 5)"), list(titles), format_func=titles.get,
                                key="class.push_ex")
        locked = st.toggle(_("Lock the builder (a demonstration: students cannot change the network)"),
                           key="class.push_lock")
        if st.button(_("Send"), icon=":material/send:", type="primary", key="class.push"):
            net = spec if what == choices[1] else rc.get_preset(preset) if what == choices[2] else None
            if exercise:
                page, net = page or "learn", None
            if step and not page:
                page = "learn"
            try:
                seq = cs.push(spec=net, page=page, step=step, exercise=exercise, locked=locked)
                st.toast(_("Push {seq} sent.", seq=seq), icon=":material/send:")
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
    st.subheader(":material/groups: " + _("Roster: {here} connected of {total}", here=here, total=len(roster)))
    if roster:
        now = datetime.now().timestamp()
        st.dataframe(pd.DataFrame({_("student"): [r.name for r in roster],
                                   _("connected"): [_("yes") if r.connected else _("no") for r in roster],
                                   _("last seen (s ago)"): [round(now - r.last_seen) for r in roster]}),
                     hide_index=True, height=min(400, 38 + 35 * len(roster)))
    st.subheader(":material/task_alt: " + _("Exercises"))
    titles = {e.key: _(e.title) for e in EXERCISES}
    st.dataframe(pd.DataFrame({
        _("exercise"): [titles[p.exercise] for p in progress],
        _("solved"): [len(p.solved) for p in progress], _("tried, not solved"): [len(p.failed) for p in progress],
        _("not started"): [len(p.not_started) for p in progress],
        _("most common wrong answer"): [f"{p.common_wrong} ({p.common_wrong_students})" if p.common_wrong else "—"
                                        for p in progress],
        _("who is stuck"): [", ".join(p.failed) for p in progress]}), hide_index=True)
    st.subheader(":material/bar_chart: " + _("Results from the Live lab"))
    if not results:
        st.caption(_("No results yet: students' gradient flows (Live lab → Backward) arrive here as they finish."))
        return
    df = pd.DataFrame([(r.student, _(r.name), r.value) for r in results], columns=["student", "result", "value"])
    positive = df["value"] > 0
    scale = alt.Scale(type="log") if positive.all() else alt.Scale(type="linear")
    chart = alt.Chart(df).mark_circle(size=90).encode(
        x=alt.X("value:Q", scale=scale, title=_("value (log scale)") if positive.all() else _("value")),
        y=alt.Y("result:N", title=None), color=alt.Color("result:N", legend=None),
        tooltip=[alt.Tooltip("student", title=_("student")), alt.Tooltip("result", title=_("result")),
                 alt.Tooltip("value", title=_("value"))])
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
    st.markdown("### " + _("Class **{code}** · {title} · ", code=info.code, title=md(info.title))
                + (_("ends at {time}", time=ends) if is_open else _("ended")))
    left, right = st.columns(2)
    left.markdown(_("**Student link** (or the code above):"))
    left.code(link(**{"class": info.code}), language=None)
    with right.expander(_("Teacher link: keep it private (it carries your key)")):
        st.code(link(**{"class": info.code, "teacher": secret or ""}), language=None)
    if is_open:
        push_form(st.session_state.get("ui.pages", {}))
    class_view()
    # outside the refreshing view (a refresh would withdraw a file being downloaded), made at the click: current
    lang = i18n.language()  # the file is made later, outside this run: its header in this run's language

    def results_csv() -> str:
        with i18n.use(lang):
            return cs.room().results_csv(code or "", secret)

    st.download_button("⬇ " + _("Results (CSV)"), results_csv,
                       safe_filename(f"class_{code}", ".csv"), "text/csv", key="class.csv", on_click="ignore")
    if is_open and st.button(_("End the class"), icon=":material/stop_circle:", key="class.end"):
        cs.end_class()
        st.rerun()
    if st.button(_("Leave this teacher view"), key="class.teacher_leave",
                 help=_("The class goes on; the teacher link brings you back.")):
        cs.leave()
        st.rerun()


role = cs.role()
if role == "teacher":
    teacher()
elif role == "student":
    student()
else:
    nobody()
