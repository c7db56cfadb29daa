"""The Class page and the follow hook (issue 23): a teacher starts a class and leads it, students join by the
link or the code and follow; exploring alone, the lock, reconnecting by the link, and no student ever sees
another's name. The class database is a fresh SQLite file per test (RESNET_EXPLORER_CLASS_DB)."""

import pytest
from streamlit.testing.v1 import AppTest

import resnet_core as rc
from resnet_core.classroom import Classroom, connect
from tests.app.test_app import APP, no_exception

CLASS_PAGE = "app_pages/classroom.py"


@pytest.fixture(autouse=True)
def class_db(tmp_path, monkeypatch):
    path = str(tmp_path / "classroom.sqlite3")
    monkeypatch.setenv("RESNET_EXPLORER_CLASS_DB", path)
    return path


def session(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    return at


def on_class_page(at: AppTest) -> AppTest:
    at.switch_page(CLASS_PAGE).run()
    no_exception(at)
    return at


def submit(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click().run()
    no_exception(at)
    return at


def start_class(title: str = "Lesson 3") -> tuple[AppTest, str, str]:
    t = on_class_page(session())
    t.text_input(key="class.start_title").input(title)
    submit(t, "Start the class")
    code, secret = t.session_state["class.code"], t.session_state["class.secret"]
    return t, code, secret


def join(code: str, name: str, by_link: bool = True) -> AppTest:
    s = on_class_page(session(**({"class": code} if by_link else {})))
    if by_link:
        assert s.text_input(key="class.join_code").value == code  # the link filled the code in
    else:
        s.text_input(key="class.join_code").input(code.lower())
    s.text_input(key="class.join_name").input(name)
    return submit(s, "Join")


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "success", "info", "warning", "error", "title", "subheader")
             for e in getattr(at, kind)]
    parts += [str(df.value.to_dict()) for df in at.dataframe]
    return "\n".join(str(p) for p in parts)


def test_a_teacher_starts_a_class_and_gets_the_code_and_both_links(class_db):
    t, code, secret = start_class()
    assert len(code) == 6 and t.query_params["class"] == code and t.query_params["teacher"] == secret
    shown = [c.value for c in t.code]
    assert f"classroom?class={code}" in shown and f"classroom?class={code}&teacher={secret}" in shown
    assert Classroom(connect(class_db)).teacher(code, secret).title == "Lesson 3"  # the key opens the class


def test_students_join_by_link_or_code_and_follow_a_push_to_the_network_and_page(class_db):
    t, code, secret = start_class()
    ada = join(code, "Ada")
    bob = join(code, "Bob", by_link=False)
    for s, name in ((ada, "Ada"), (bob, "Bob")):  # Ada by the link, Bob by the code typed in lower case
        assert s.session_state["class.role"] == "student" and s.query_params["class"] == code
        assert f"as **{name}**" in s.success[0].value
    # the teacher sends the class to resnet56 on the Graph page
    t.radio(key="class.push_what").set_value("a preset").run()
    t.selectbox(key="class.push_preset").set_value("resnet56")
    t.selectbox(key="class.push_page").set_value("graph")
    submit(t, "Send")
    bob.run()  # the next poll (the fragment runs once a second in a browser)
    no_exception(bob)
    assert bob.session_state["spec"] == rc.get_preset("resnet56")
    assert bob.session_state["class.seen"] == 1 and "resnet56" in bob.title[0].value  # the Graph page's title


def test_a_student_exploring_alone_is_not_moved_and_comes_back_to_the_latest_push(class_db):
    t, code, secret = start_class()
    ada = join(code, "Ada")
    ada.toggle(key="class.follow_switch").set_value(False).run()
    assert ada.query_params["alone"] == "1"
    Classroom(connect(class_db)).push(code, secret, spec=rc.get_preset("resnet110"), page="graph")
    ada.run()
    assert ada.session_state["spec"] != rc.get_preset("resnet110")
    assert ada.session_state["class.role"] == "student"  # still on the Class page, still in the class
    ada.toggle(key="class.follow_switch").set_value(True).run()
    no_exception(ada)
    assert ada.session_state["spec"] == rc.get_preset("resnet110")


def test_a_locked_builder_goes_back_to_the_teachers_network(class_db):
    t, code, secret = start_class()
    ada = join(code, "Ada")
    Classroom(connect(class_db)).push(code, secret, spec=rc.get_preset("resnet20"), locked=True)
    ada.run()
    assert ada.session_state["spec"] == rc.get_preset("resnet20")
    assert ada.toggle(key="class.follow_switch").disabled
    assert ada.toggle(key="net.skip").disabled  # the lock: the builder's widgets cannot be changed
    ada.session_state["net.skip"] = False  # (and a changed value, however it came, goes back)
    ada.run()  # the student tries to edit
    no_exception(ada)
    assert ada.session_state["spec"] == rc.get_preset("resnet20")


def test_the_teacher_sees_the_roster_answers_and_results_and_no_student_sees_another(class_db):
    t, code, secret = start_class()
    ada, bob = join(code, "Ada"), join(code, "<b>Bob</b> [x](http://evil)")
    room = Classroom(connect(class_db))
    a = room.member(code, ada.session_state["class.member"])
    b = room.member(code, bob.session_state["class.member"])
    room.record_answer(a, "groups", "it still breaks at stage 1", False)
    room.record_answer(b, "groups", "it still breaks at stage 1", False)
    room.record_result(a, "‖∂L/∂W₁‖ with skips", 0.5)
    room.record_result(b, "‖∂L/∂W₁‖ with skips", 0.25)
    t.run()
    no_exception(t)
    roster = next(df.value for df in t.dataframe if "student" in df.value.columns and "connected" in df.value.columns)
    assert list(roster["student"]) == ["Ada", "<b>Bob</b> [x](http://evil)"]  # a table cell: text, not Markdown
    ex = next(df.value for df in t.dataframe if "exercise" in df.value.columns)
    row = ex[ex["exercise"] == "Groups that do not divide"].iloc[0]
    assert (row["tried, not solved"], row["not started"]) == (2, 0)
    assert row["most common wrong answer"] == "it still breaks at stage 1 (2)"
    assert any(b.label == "⬇ Results (CSV)" for b in t.get("download_button"))
    # the students' pages: their own name and results only
    for s, own, other, value in ((ada, "Ada", "Bob", "0.5"), (bob, "Bob", "Ada", "0.25")):
        s.run()
        page = texts(s)
        assert own in page and other not in page and value in page
        assert "Roster" not in page and not any(b.label == "Send" for b in s.button)


def test_a_student_comes_back_by_the_link_after_a_restart(class_db):
    t, code, secret = start_class()
    ada = join(code, "Ada")
    member = ada.session_state["class.member"]
    Classroom(connect(class_db)).push(code, secret, spec=rc.get_preset("resnet32"), page="graph")
    again = session(**{"class": code, "member": member})  # a new server session: only the link is left
    again.run()
    no_exception(again)
    assert again.session_state["class.name"] == "Ada"
    assert again.session_state["spec"] == rc.get_preset("resnet32") and "resnet32" in again.title[0].value


@pytest.mark.parametrize("query", [{"class": "<script>alert(1)</script>"}, {"class": "ZZZZZZ"},
                                   {"class": "A" * 5000}, {"class": "ABCDEF", "teacher": "x" * 100},
                                   {"class": "ABCDEF", "member": "../../etc/passwd"}])
def test_hostile_class_links_are_one_escaped_line(query):
    at = session(**query)
    at.run()
    no_exception(at)
    (w,) = [w.value for w in at.warning if "class link" in w.value]
    assert "<script>" not in w and len(w) < 300
    assert at.session_state["class.linked"] and "class.role" not in at.session_state


def test_the_pushed_learn_steps_are_the_learn_pages(class_db):
    import ast
    from pathlib import Path

    from app import classroom_session
    tree = ast.parse((Path(APP).parent / "app_pages" / "learn.py").read_text())
    steps = next(ast.literal_eval(n.value) for n in ast.walk(tree)
                 if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "STEPS")
    assert steps == classroom_session.LEARN_STEPS


def test_an_exercise_pushed_then_solved_reaches_the_teachers_progress(class_db):
    t, code, secret = start_class()
    ada = join(code, "Ada")
    room = Classroom(connect(class_db))
    room.push(code, secret, exercise="groups")
    ada.run()  # the push: the broken network in the builder, the Learn page on its exercises
    no_exception(ada)
    assert ada.session_state["spec"].name == "exercise-3" and ada.session_state["learn.step"] == "5 · Broken networks"
    assert ada.title[0].value == "Learn: how residual networks work"
    ada.switch_page("app_pages/learn.py")  # AppTest reruns the page it was given; a browser stays where it was sent
    (p,) = room.progress(code, secret, ["groups"])
    assert p.not_started == ("Ada",)  # the untouched broken network is not an answer
    ada.session_state["ui.stage_exp.0.open"] = True  # the stage's fields are drawn only while it is open
    ada.run()
    ada.number_input(key="net.s0.groups").set_value(5).run()  # 64 channels in 5 groups: still broken
    ada.number_input(key="net.s0.groups").set_value(2).run()  # 2 divides 64: solved
    no_exception(ada)
    (p,) = room.progress(code, secret, ["groups"])
    assert p.solved == ("Ada",) and p.failed == () and p.common_wrong is not None and "break" in p.common_wrong


def test_a_finished_gradient_flow_is_offered_to_the_class(class_db):
    from resnet_core.lab import gradients
    spec = rc.get_preset("resnet20").replace(input_size=(8, 8))
    flow = gradients.gradient_flow(spec, seed=0, batch=2, device="cpu")
    t, code, secret = start_class()
    ada = join(code, "Ada")
    member = ada.session_state["class.member"]

    def offer(member, code, flow):
        import streamlit as st

        from app import classroom_session
        st.session_state.update({"class.role": "student", "class.code": code, "class.member": member,
                                 "class.name": "Ada"})
        classroom_session.offer_gradient_flow(flow)

    at = AppTest.from_function(offer, args=(member, code, flow), default_timeout=60)
    at.run()
    no_exception(at)
    got = dict((r.name, r.value) for r in Classroom(connect(class_db)).results(code, secret))
    w = flow.weight_rows()[0]["norms"]  # the first conv's gradient norm of each variant, as the library made it
    assert got == {"‖∂L/∂W₁‖ with skips": pytest.approx(w[0]), "‖∂L/∂W₁‖ without skips": pytest.approx(w[1])}


def test_a_class_in_chinese_shows_no_english(class_db):
    """Issue 24 on the Class page: the teacher's view (links, push form, roster, progress, results chart) and a
    student's, both opened with ?lang=zh, show no run of English words; the CSV's header follows the language."""
    from resnet_core import i18n
    from tests.i18n_check import english_shown
    t = on_class_page(session(lang="zh"))
    t.text_input(key="class.start_title").input("第三课")
    next(b for b in t.button if b.label == "开始上课").click().run()
    no_exception(t)
    code, secret = t.session_state["class.code"], t.session_state["class.secret"]
    s = on_class_page(session(**{"class": code, "lang": "zh"}))
    s.text_input(key="class.join_name").input("小明")
    next(b for b in s.button if b.label == "加入").click().run()
    no_exception(s)
    room = Classroom(connect(class_db))
    me = room.member(code, s.session_state["class.member"])
    room.record_answer(me, "groups", "2", False)
    room.record_result(me, "‖∂L/∂W₁‖ with skips", 0.5)
    t.run()
    s.run()
    for at in (t, s):
        no_exception(at)
        assert english_shown(at) == []
    assert "‖∂L/∂W₁‖（有跳跃连接）" in str(next(df.value for df in s.dataframe).to_dict())
    with i18n.use("zh"):
        assert room.results_csv(code, secret).splitlines()[0] == "学生,结果,值"
    assert room.results_csv(code, secret).splitlines()[0] == "student,result,value"
