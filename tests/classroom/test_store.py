"""The class library: roles, pushes, results, hostile input; on SQLite and on a real PostgreSQL."""

import csv
import io

import pytest

import resnet_core as rc
from resnet_core.classroom import ClassError, Classroom, Membership, NotAllowed, connect


@pytest.fixture(params=["sqlite", "postgresql"])
def room(request, tmp_path):
    if request.param == "sqlite":
        db = connect(str(tmp_path / "class.sqlite3"), shared=False)
    else:
        db = connect(request.getfixturevalue("pg_fresh"), shared=False)
    yield Classroom(db)
    db.close()


def test_a_student_can_never_act_as_the_teacher(room):
    key = room.start("Lesson")
    ada = room.join(key.code, "Ada")
    bob = room.join(key.code, "Bob")
    room.record_answer(bob, "groups", "3 groups", False)
    room.record_result(bob, "grad", 1.0)
    # whatever a student holds or guesses: its own id, the code, another's id, empty, a near miss of the secret
    for guess in (ada.member_id, bob.member_id, key.code, "", None, 42, key.secret[:-1] + "x", key.secret + "x",
                  key.secret.upper() if key.secret.upper() != key.secret else key.secret.lower()):
        for action in (lambda g: room.push(key.code, g, page="live"),
                       lambda g: room.push(key.code, g, locked=True),
                       lambda g: room.roster(key.code, g), lambda g: room.results(key.code, g),
                       lambda g: room.results_csv(key.code, g), lambda g: room.progress(key.code, g, ["groups"]),
                       lambda g: room.end(key.code, g)):
            with pytest.raises(NotAllowed):
                action(guess)
    assert room.latest_seq(key.code) == 0  # nothing was pushed
    assert room.info(key.code).ended is False
    # another class's secret does not open this one
    other = room.start("Other")
    with pytest.raises(NotAllowed):
        room.roster(key.code, other.secret)
    # the student's own views hold only its own data
    assert room.my_results(ada) == []
    assert room.my_results(bob) == [("grad", 1.0)]
    # a forged membership (Bob's code, a made-up or another class's id) is refused
    with pytest.raises(NotAllowed):
        room.my_results(Membership(key.code, "A" * 22, "Bob"))
    stranger = room.join(other.code, "Eve")
    with pytest.raises(NotAllowed):
        room.record_result(Membership(key.code, stranger.member_id, "Eve"), "grad", 9.0)
    assert [r.name for r in room.roster(key.code, key.secret)] == ["Ada", "Bob"]


def test_pushes_reach_students_by_sequence_number(room):
    key = room.start()
    ada = room.join(key.code, "Ada")
    assert room.latest_push(ada) is None
    spec = rc.get_preset("resnet20").replace(name="mine", skip=False)
    assert room.push(key.code, key.secret, spec=spec, page="live") == 1
    assert room.push(key.code, key.secret, page="learn", step="5", exercise="groups", locked=True) == 2
    assert room.latest_seq(key.code) == 2
    p = room.latest_push(ada)
    assert (p.seq, p.page, p.step, p.exercise, p.locked, p.spec) == (2, "learn", "5", "groups", True, None)
    assert room.push(key.code, key.secret, spec=spec, page="graph") == 3
    assert room.latest_push(ada).spec == spec  # the spec comes back equal, field by field


def test_progress_solved_failed_not_started_and_the_common_wrong_answer(room):
    key = room.start()
    a, b, c, d = (room.join(key.code, n) for n in ("Ada", "Bob", "Cy", "Di"))
    room.record_answer(a, "groups", "it breaks at stage 1", False)
    room.record_answer(a, "groups", "solved", True)
    room.record_answer(b, "groups", "it breaks at stage 1", False)
    room.record_answer(b, "groups", "it breaks at stage 1", False)  # the same answer again: one student
    room.record_answer(c, "groups", "it breaks at stage 1", False)
    room.record_answer(c, "groups", "3 groups", False)
    room.record_answer(d, "shortcut", "x", False)
    g, s = room.progress(key.code, key.secret, ["groups", "shortcut"])
    assert (g.solved, g.failed, g.not_started) == (("Ada",), ("Bob", "Cy"), ("Di",))
    assert (g.common_wrong, g.common_wrong_students) == ("it breaks at stage 1", 3)
    assert (s.solved, s.failed, s.not_started) == ((), ("Di",), ("Ada", "Bob", "Cy"))


def test_results_gathered_and_csv_is_safe_for_spreadsheets(room):
    key = room.start()
    a = room.join(key.code, "=HYPERLINK(\"http://x\")")
    b = room.join(key.code, "Bob")
    room.record_result(a, "‖∂L/∂W₁‖ with skips", 0.5)
    room.record_result(a, "‖∂L/∂W₁‖ with skips", 0.25)  # the latest counts
    room.record_result(b, "‖∂L/∂W₁‖ without skips", 0.0)
    rows = list(csv.reader(io.StringIO(room.results_csv(key.code, key.secret))))
    assert rows[0] == ["student", "result", "value"]
    assert rows[1] == ["'=HYPERLINK(\"http://x\")", "‖∂L/∂W₁‖ with skips", "0.25"]
    assert rows[2] == ["Bob", "‖∂L/∂W₁‖ without skips", "0.0"]


def test_an_ended_or_expired_class_takes_no_push_no_join_no_answer_but_keeps_its_results(room):
    key = room.start(hours=1.0, now=1000.0)
    a = room.join(key.code, "Ada", now=1001.0)
    room.record_result(a, "loss", 2.0, now=1002.0)
    with pytest.raises(ClassError, match="ended"):
        room.join(key.code, "Late", now=1000.0 + 3601.0)
    with pytest.raises(ClassError, match="ended"):
        room.push(key.code, key.secret, page="live", now=1000.0 + 3601.0)
    room.end(key.code, key.secret)
    for late in (lambda: room.join(key.code, "Late"), lambda: room.push(key.code, key.secret, page="live"),
                 lambda: room.record_answer(a, "groups", "x", False), lambda: room.record_result(a, "loss", 1.0)):
        with pytest.raises(ClassError, match="ended"):
            late()
    assert [(r.student, r.value) for r in room.results(key.code, key.secret)] == [("Ada", 2.0)]


HOSTILE_CODES = ["", " ", "ABC", "ABCDEFG", "abc12'", "'; DROP TABLE classes; --", "A" * 10_000, "ÄBCDEF",
                 "ABCDE\x00", "../../etc", None, 123, ["ABCDEF"]]


@pytest.mark.parametrize("bad", HOSTILE_CODES, ids=range(len(HOSTILE_CODES)))
def test_hostile_codes_are_refused_with_one_bounded_line(room, bad):
    with pytest.raises(ClassError) as e:
        room.join(bad, "Ada")
    assert "\n" not in str(e.value) and len(str(e.value)) < 200
    assert room.db.execute("SELECT COUNT(*) FROM classes")[0][0] == 0  # the tables are still there


def test_a_code_is_read_as_typed_from_a_projector(room):
    key = room.start()
    typed = " ".join(key.code.lower()[i:i + 3] for i in (0, 3))  # 'abc 234'
    assert room.join(typed, "Ada").code == key.code
    with pytest.raises(ClassError, match="no class"):
        room.join("ZZZZZZ" if key.code != "ZZZZZZ" else "YYYYYY", "Ada")


@pytest.mark.parametrize("name, stored", [
    ("  Ada   Lovelace ", "Ada Lovelace"), ("Bob\nDROP", "Bob DROP"), ("<b>x</b> [a](http://e)", "<b>x</b> [a](http://e)"),
    ("名前", "名前"), ("x" * 40, "x" * 40),
])
def test_names_are_one_line_and_bounded(room, name, stored):
    key = room.start()
    room.join(key.code, name)
    assert [r.name for r in room.roster(key.code, key.secret)] == [stored]  # escaped where shown (text.md)


@pytest.mark.parametrize("name", ["", "   ", "\n\t", "x" * 41, "y" * 100_000, None, 5])
def test_bad_names_are_refused(room, name):
    key = room.start()
    with pytest.raises(ClassError):
        room.join(key.code, name)
    assert room.roster(key.code, key.secret) == []


def test_hostile_pages_answers_and_results_are_refused_or_bounded(room):
    key = room.start()
    a = room.join(key.code, "Ada")
    for bad in ("../x", "Live", "a b", "x" * 100, "'; --"):
        with pytest.raises(ClassError):
            room.push(key.code, key.secret, page=bad)
        with pytest.raises(ClassError):
            room.record_answer(a, bad, "x", False)
    room.record_answer(a, "groups", "z" * 5000 + "\n", False)
    (p,) = room.progress(key.code, key.secret, ["groups"])
    assert len(p.common_wrong) == 200 and "\n" not in p.common_wrong
    for bad_value in (float("nan"), "1.0", True, None):
        with pytest.raises(ClassError):
            room.record_result(a, "loss", bad_value)
    for bad_name in ("", "x" * 61, "a\nb", 7):
        with pytest.raises(ClassError):
            room.record_result(a, bad_name, 1.0)
    for i in range(20):
        room.record_result(a, f"r{i}", float(i))
    with pytest.raises(ClassError, match="at most 20"):
        room.record_result(a, "one more", 1.0)
