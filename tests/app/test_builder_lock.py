"""A builder the teacher has locked (issue 23): a following student's builder draws every widget disabled, with a
caption that says so, instead of taking edits it resets on the next run; the teacher's next push unlocks it.

The lock is set the way the class sets it: a real class in a fresh SQLite file, a student who joined it, and the
teacher's push with `locked=True` (resnet_core.classroom), read by the student's next run."""

import pytest
from streamlit.testing.v1 import AppTest

import resnet_core as rc
from resnet_core.classroom import Classroom, connect
from tests.app.test_app import SECTIONS, no_exception
from tests.app.test_classroom_page import join, start_class

BUILDER_BUTTONS = ("ui.add_stage", "ui.reset", "ui.up.", "ui.down.", "ui.rm.")


@pytest.fixture(autouse=True)
def class_db(tmp_path, monkeypatch):
    path = str(tmp_path / "classroom.sqlite3")
    monkeypatch.setenv("RESNET_EXPLORER_CLASS_DB", path)
    return path


def builder_widgets(at: AppTest) -> list:
    """Every widget of the builder drawn in this run (its sections open): the network's and its buttons."""
    kinds = ("number_input", "selectbox", "toggle", "segmented_control", "text_input", "button")
    found = []
    for kind in kinds:
        for w in getattr(at.sidebar, kind):
            key = w.key or ""
            if key.startswith("net.") or key.startswith(("ui.preset", "ui.all_blocks.")) or key.startswith(BUILDER_BUTTONS):
                found.append(w)
    return found


def open_all(at: AppTest) -> AppTest:
    for key in SECTIONS + ["ui.exp.family"]:
        at.session_state[key + ".open"] = True
    return at


def locked_student(class_db: str, locked: bool = True) -> tuple[AppTest, str, str]:
    _teacher, code, secret = start_class()
    ada = open_all(join(code, "Ada"))
    Classroom(connect(class_db)).push(code, secret, spec=rc.get_preset("resnet20"), locked=locked)
    ada.run()
    no_exception(ada)
    return ada, code, secret


def test_a_locked_builder_draws_every_widget_disabled(class_db):
    ada, _code, _secret = locked_student(class_db)
    assert ada.session_state["spec"] == rc.get_preset("resnet20")
    widgets = builder_widgets(ada)
    keys = {w.key for w in widgets}
    # the sections are open: the stage editors, the stem, the input and the options since 2016 are all drawn
    assert {"ui.preset", "net.name", "net.skip", "net.batch_norm", "net.shortcut", "net.input_h", "net.stem_type",
            "net.activation", "net.norm", "net.s0.blocks", "net.s2.width", "ui.add_stage", "ui.reset"} <= keys
    enabled = sorted(w.key for w in widgets if not w.disabled)
    assert not enabled, f"enabled while locked: {enabled}"
    assert any("teacher has locked the builder" in c.value for c in ada.sidebar.caption)


def test_an_unlocked_class_builder_can_be_edited(class_db):
    ada, code, secret = locked_student(class_db, locked=False)
    widgets = builder_widgets(ada)
    assert not any(w.disabled for w in widgets if w.key in ("net.skip", "net.s0.blocks", "ui.preset", "ui.add_stage"))
    assert not any("teacher has locked the builder:" in c.value for c in ada.sidebar.caption)
    ada.toggle(key="net.skip").set_value(False).run()
    assert not ada.session_state["spec"].skip  # an edit holds


def test_the_teachers_next_push_unlocks_the_builder(class_db):
    ada, code, secret = locked_student(class_db)
    assert ada.toggle(key="net.skip").disabled
    Classroom(connect(class_db)).push(code, secret, spec=rc.get_preset("resnet20"), locked=False)
    ada.run()  # the poll (a fragment on a timer) reads the push; AppTest runs the whole app
    ada.run()
    no_exception(ada)
    assert not ada.toggle(key="net.skip").disabled
