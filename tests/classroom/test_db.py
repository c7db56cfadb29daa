"""The database: migrations from empty and from the previous version, a restart loses nothing (SQLite), a
database from a newer program is refused, PostgreSQL only when configured."""

import sqlite3
import subprocess
import sys

import pytest

import resnet_core as rc
from resnet_core.classroom import Classroom, DatabaseError, connect, db, default_location


def tables(path) -> set[str]:
    with sqlite3.connect(path) as c:  # read with the standard library directly, not through the code under test
        return {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}


def test_migrations_from_an_empty_database(tmp_path):
    path = tmp_path / "c.sqlite3"
    d = connect(str(path), shared=False)
    assert db.version(d) == db.LATEST == 2
    assert {"schema_version", "classes", "members", "pushes", "answers", "results", "members_by_class",
            "answers_by_exercise", "results_by_class"} <= tables(path)
    with sqlite3.connect(path) as c:
        assert c.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    assert db.migrate(d) == 2  # again: nothing to do
    d.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_from_the_previous_version_keeps_every_row(backend, tmp_path, request):
    location = str(tmp_path / "c.sqlite3") if backend == "sqlite" else request.getfixturevalue("pg_fresh")
    d = db.SqliteDatabase(tmp_path / "c.sqlite3") if backend == "sqlite" else db.PostgresDatabase(location)
    assert db.migrate(d, target=1) == 1
    room = Classroom(d)
    key = room.start("old")
    ada = room.join(key.code, "Ada")
    room.push(key.code, key.secret, spec=rc.get_preset("resnet20"), page="live")
    room.record_answer(ada, "groups", "3", False)
    room.record_result(ada, "loss", 1.5)
    assert db.version(d) == 1
    d.close()
    d2 = connect(location, shared=False)  # the next start of the program migrates it
    assert db.version(d2) == 2
    room2 = Classroom(d2)
    assert [(r.student, r.name, r.value) for r in room2.results(key.code, key.secret)] == [("Ada", "loss", 1.5)]
    assert room2.latest_push(ada).spec == rc.get_preset("resnet20")
    assert room2.progress(key.code, key.secret, ["groups"])[0].failed == ("Ada",)
    d2.close()


def test_a_database_from_a_newer_program_is_refused_untouched(tmp_path):
    path = tmp_path / "c.sqlite3"
    connect(str(path), shared=False).close()
    with sqlite3.connect(path) as c:
        c.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(DatabaseError, match="version 99, newer"):
        connect(str(path), shared=False)
    with sqlite3.connect(path) as c:
        assert c.execute("SELECT version FROM schema_version").fetchall() == [(99,)]


RESTART = """
import sys
from resnet_core.classroom import Classroom, connect
room = Classroom(connect(sys.argv[1]))
if sys.argv[2] == "write":
    key = room.start("before the restart")
    ada = room.join(key.code, "Ada")
    room.push(key.code, key.secret, page="live", locked=True)
    room.record_result(ada, "grad", 0.125)
    room.record_answer(ada, "groups", "3", False)
    print(key.code, key.secret, ada.member_id)
else:
    code, secret, member = sys.argv[3:6]
    me = room.member(code, member)
    print(me.name, room.latest_push(me).page, room.latest_push(me).locked,
          [(r.student, r.value) for r in room.results(code, secret)], room.progress(code, secret, ["groups"])[0].failed)
"""


def test_a_restart_loses_no_class_roster_or_result_sqlite(tmp_path):
    path = str(tmp_path / "data" / "classroom.sqlite3")
    run = [sys.executable, "-c", RESTART, path]
    first = subprocess.run([*run, "write"], capture_output=True, text=True, timeout=60, check=True)
    code, secret, member = first.stdout.split()
    second = subprocess.run([*run, "read", code, secret, member], capture_output=True, text=True, timeout=60,
                            check=True)  # another process: nothing carried over but the file
    assert second.stdout.strip() == "Ada live True [('Ada', 0.125)] ('Ada',)"


def test_the_default_location_is_in_the_operators_data_folder(tmp_path):
    assert default_location({"RESNET_EXPLORER_DATA_DIR": str(tmp_path)}) == str(tmp_path / "classroom.sqlite3")
    assert default_location({"RESNET_EXPLORER_CLASS_DB": "postgresql://h/db",
                             "RESNET_EXPLORER_DATA_DIR": "/x"}) == "postgresql://h/db"
    assert default_location({"HOME": "/h", "XDG_DATA_HOME": "/d"}) == "/d/resnet_explorer/classroom.sqlite3"


def test_sqlite_never_imports_psycopg_and_a_bad_url_is_one_line(tmp_path):
    code = (f"import sys; from resnet_core.classroom import connect; connect({str(tmp_path / 'c.db')!r}); "
            "print('psycopg' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
    with pytest.raises(DatabaseError, match="must be a file path"):
        connect("mysql://u:pw@h/db", shared=False)


def test_a_postgres_password_never_appears_in_a_message():
    d = db.PostgresDatabase("postgresql://u:hunter2@127.0.0.1:1/db")
    with pytest.raises(DatabaseError) as e:
        db.migrate(d)
    assert "hunter2" not in str(e.value) and "127.0.0.1:1/db" in str(e.value)
