"""A class: the teacher leads, students follow, the teacher sees the class. Roles are enforced here.

Every teacher action carries the class's secret (checked against its salted hash; the secret itself is never
stored). A student acts only through its own member id (128 random bits, given at join): with it a student can
read the latest push, and record its own answers and results; nothing a student holds returns the roster,
another student's name, answers or results, and nothing it holds can push, lock or end a class.

    room = Classroom(db.connect())
    key = room.start("Lesson 3")                           # key.code 'K7QX2M', key.secret for the teacher
    me = room.join(key.code, "Ada")                         # a student
    room.push(key.code, key.secret, spec=spec, page="live")  # -> sequence number 1
    room.latest_seq(key.code); room.latest_push(key.code, me.member_id)
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter
from dataclasses import dataclass

from resnet_core.classroom import rules
from resnet_core.classroom.db import Database
from resnet_core.classroom.rules import ClassError, NotAllowed
from resnet_core.i18n import N_, _
from resnet_core.structure.spec import ArchSpec, spec_from_dict
from resnet_core.text import csv_cell

CONNECTED_S = 30.0  # a student seen within this many seconds is shown as connected
MAX_MEMBERS = 500
MAX_ANSWERS = 50  # different answers one student may record for one exercise
MAX_RESULT_NAMES = 20  # different results one student may record in one class
MAX_RESULT_NAME = 60


@dataclass(frozen=True)
class TeacherKey:
    code: str
    secret: str


@dataclass(frozen=True)
class Membership:
    code: str
    member_id: str
    name: str


@dataclass(frozen=True)
class ClassInfo:
    code: str
    title: str
    created: float
    expires: float
    ended: bool
    seq: int

    def open_at(self, now: float) -> bool:
        return not self.ended and now < self.expires


@dataclass(frozen=True)
class Push:
    seq: int
    created: float
    spec: ArchSpec | None
    page: str
    step: str
    exercise: str
    locked: bool


@dataclass(frozen=True)
class RosterRow:
    name: str
    joined: float
    last_seen: float
    connected: bool


@dataclass(frozen=True)
class Progress:
    exercise: str
    solved: tuple[str, ...]
    failed: tuple[str, ...]
    not_started: tuple[str, ...]
    common_wrong: str | None  # the wrong answer most students gave (None: no wrong answer yet)
    common_wrong_students: int


@dataclass(frozen=True)
class ResultRow:
    student: str
    name: str
    value: float


class Classroom:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---------------------------------------------------------------- reading a class
    def info(self, code: str) -> ClassInfo:
        c = rules.code(code)
        rows = self.db.execute("SELECT code, title, created, expires, ended, seq FROM classes WHERE code = ?", (c,))
        if not rows:
            raise ClassError(_("there is no class {code} (check the code on the teacher's screen)", code=c))
        r = rows[0]
        return ClassInfo(r[0], r[1], float(r[2]), float(r[3]), bool(r[4]), int(r[5]))

    def _open(self, code: str, now: float | None) -> ClassInfo:
        info = self.info(code)
        if not info.open_at(time.time() if now is None else now):
            raise ClassError(_("class {code} has ended", code=info.code))
        return info

    def latest_seq(self, code: str) -> int:
        """The number of the class's latest push (0: none yet): the followers' cheap poll, one indexed row."""
        rows = self.db.execute("SELECT seq FROM classes WHERE code = ?", (rules.code(code),))
        return int(rows[0][0]) if rows else 0

    # ---------------------------------------------------------------- the teacher
    def start(self, title: str = "Class", hours: float = 3.0, now: float | None = None) -> TeacherKey:
        t0 = time.time() if now is None else now
        name, length = rules.title(title), rules.hours(hours)
        secret, salt = rules.new_token(), rules.new_token()
        for _attempt in range(20):
            c = rules.new_code()
            with self.db.transaction() as tx:
                if tx.execute("SELECT 1 FROM classes WHERE code = ?", (c,)):
                    continue
                tx.execute("INSERT INTO classes (code, secret_hash, salt, title, created, expires, ended, seq) "
                           "VALUES (?, ?, ?, ?, ?, ?, 0, 0)",
                           (c, rules.hash_secret(secret, salt), salt, name, t0, t0 + 3600.0 * length))
            return TeacherKey(c, secret)
        raise ClassError(_("no free class code was found; try again"))

    def teacher(self, code: str, secret: object) -> ClassInfo:
        """The class, when `secret` is its teacher's; NotAllowed otherwise (the same words whatever was wrong)."""
        c = rules.code(code)
        rows = self.db.execute("SELECT salt, secret_hash FROM classes WHERE code = ?", (c,))
        if not rows or not rules.secret_matches(secret, rows[0][0], rows[0][1]):
            raise NotAllowed(_("only the teacher of class {code} can do this (the teacher link carries the key)", code=c))
        return self.info(c)

    def push(self, code: str, secret: object, *, spec: ArchSpec | None = None, page: str = "", step: str = "",
             exercise: str = "", locked: bool = False, now: float | None = None) -> int:
        """Send the class to a network, a page, a Learn step or exercise; `locked` locks the builder. Returns
        the push's sequence number."""
        info = self.teacher(code, secret)
        t = time.time() if now is None else now
        if not info.open_at(t):
            raise ClassError(_("class {code} has ended", code=info.code))
        if spec is not None and not isinstance(spec, ArchSpec):
            raise ClassError(_("a push carries a network spec"))
        spec_json = json.dumps(spec.to_dict(), separators=(",", ":")) if spec is not None else None
        if spec_json is not None and len(spec_json) > rules.MAX_SPEC_JSON:
            raise ClassError(_("the network's spec is {n} characters; a push carries at most {most}",
                                   n=format(len(spec_json), ","), most=format(rules.MAX_SPEC_JSON, ",")))
        fields = (rules.word(page, N_("page"), empty_ok=True), rules.word(step, N_("Learn step"), empty_ok=True),
                  rules.word(exercise, N_("exercise"), empty_ok=True))
        with self.db.transaction() as tx:
            seq = int(tx.execute("SELECT seq FROM classes WHERE code = ?", (info.code,))[0][0]) + 1
            tx.execute("INSERT INTO pushes (class_code, seq, created, spec_json, page, step, exercise, locked) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (info.code, seq, t, spec_json, *fields, int(bool(locked))))
            tx.execute("UPDATE classes SET seq = ? WHERE code = ?", (seq, info.code))
        return seq

    def end(self, code: str, secret: object) -> None:
        info = self.teacher(code, secret)
        self.db.execute("UPDATE classes SET ended = 1 WHERE code = ?", (info.code,))

    def roster(self, code: str, secret: object, now: float | None = None) -> list[RosterRow]:
        info = self.teacher(code, secret)
        t = time.time() if now is None else now
        rows = self.db.execute("SELECT name, joined, last_seen FROM members WHERE class_code = ? ORDER BY joined",
                               (info.code,))
        return [RosterRow(r[0], float(r[1]), float(r[2]), t - float(r[2]) <= CONNECTED_S) for r in rows]

    def progress(self, code: str, secret: object, exercises: list[str]) -> list[Progress]:
        """For each exercise (or Learn check) id: who solved it, who tried and failed, who has not started, and
        the wrong answer most students gave."""
        info = self.teacher(code, secret)
        members = self.db.execute("SELECT id, name FROM members WHERE class_code = ? ORDER BY joined", (info.code,))
        rows = self.db.execute("SELECT member_id, exercise, answer, correct FROM answers WHERE class_code = ?",
                               (info.code,))
        out = []
        for ex in exercises:
            mine = [r for r in rows if r[1] == ex]
            solved = {r[0] for r in mine if r[3]}
            tried = {r[0] for r in mine}
            wrong = Counter(r[2] for r in mine if not r[3])  # one count per student and answer (the key)
            top = wrong.most_common(1)
            out.append(Progress(
                ex, tuple(n for m, n in members if m in solved), tuple(n for m, n in members if m in tried - solved),
                tuple(n for m, n in members if m not in tried), top[0][0] if top else None, top[0][1] if top else 0))
        return out

    def results(self, code: str, secret: object) -> list[ResultRow]:
        info = self.teacher(code, secret)
        rows = self.db.execute("SELECT m.name, r.name, r.value FROM results r JOIN members m ON m.id = r.member_id "
                               "WHERE r.class_code = ? ORDER BY m.joined, r.name", (info.code,))
        return [ResultRow(r[0], r[1], float(r[2])) for r in rows]

    def results_csv(self, code: str, secret: object) -> str:
        """The results as CSV (student, result, value); names a spreadsheet would run as formulas are quoted."""
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow([_("student"), _("result"), _("value")])  # the header in the reader's language
        for r in self.results(code, secret):
            w.writerow([csv_cell(r.student), csv_cell(_(r.name)), repr(r.value)])
        return buf.getvalue()

    # ---------------------------------------------------------------- a student
    def join(self, code: str, name: str, now: float | None = None) -> Membership:
        t = time.time() if now is None else now
        info = self._open(code, t)
        shown = rules.display_name(name)
        member_id = rules.new_token()
        with self.db.transaction() as tx:
            n = int(tx.execute("SELECT COUNT(*) FROM members WHERE class_code = ?", (info.code,))[0][0])
            if n >= MAX_MEMBERS:
                raise ClassError(_("class {code} is full ({n} students)", code=info.code, n=MAX_MEMBERS))
            tx.execute("INSERT INTO members (id, class_code, name, joined, last_seen) VALUES (?, ?, ?, ?, ?)",
                       (member_id, info.code, shown, t, t))
        return Membership(info.code, member_id, shown)

    def member(self, code: str, member_id: object) -> Membership:
        """A student's own membership (reconnecting by their link); NotAllowed for an id not of this class."""
        c = rules.code(code)
        mid = rules.token(member_id, N_("student link"))
        rows = self.db.execute("SELECT name FROM members WHERE id = ? AND class_code = ?", (mid, c))
        if not rows:
            raise NotAllowed(_("this link is not a student's of class {code}: join again with the code", code=c))
        return Membership(c, mid, rows[0][0])

    def heartbeat(self, me: Membership, now: float | None = None) -> None:
        t = time.time() if now is None else now
        self.db.execute("UPDATE members SET last_seen = ? WHERE id = ? AND class_code = ?", (t, me.member_id, me.code))

    def latest_push(self, me: Membership) -> Push | None:
        self.member(me.code, me.member_id)
        rows = self.db.execute("SELECT seq, created, spec_json, page, step, exercise, locked FROM pushes "
                               "WHERE class_code = ? ORDER BY seq DESC LIMIT 1", (me.code,))
        if not rows:
            return None
        r = rows[0]
        spec = spec_from_dict(json.loads(r[2]), source="the teacher's push") if r[2] else None
        return Push(int(r[0]), float(r[1]), spec, r[3], r[4], r[5], bool(r[6]))

    def record_answer(self, me: Membership, exercise: str, answer: str, correct: bool,
                      now: float | None = None) -> None:
        """A student's answer to an exercise or a Learn check (the same answer again counts one more try)."""
        t = time.time() if now is None else now
        self._open(me.code, t)
        self.member(me.code, me.member_id)
        ex, text = rules.word(exercise, N_("exercise")), rules.answer(answer)
        with self.db.transaction() as tx:
            if tx.execute("UPDATE answers SET tries = tries + 1, at = ? WHERE class_code = ? AND member_id = ? "
                          "AND exercise = ? AND answer = ? RETURNING tries", (t, me.code, me.member_id, ex, text)):
                return
            n = int(tx.execute("SELECT COUNT(*) FROM answers WHERE class_code = ? AND member_id = ? AND exercise = ?",
                               (me.code, me.member_id, ex))[0][0])
            if n >= MAX_ANSWERS:
                raise ClassError(_("at most {n} different answers are kept for one exercise", n=MAX_ANSWERS))
            tx.execute("INSERT INTO answers (class_code, member_id, exercise, answer, correct, tries, at) "
                       "VALUES (?, ?, ?, ?, ?, 1, ?)", (me.code, me.member_id, ex, text, int(bool(correct)), t))

    def record_result(self, me: Membership, name: str, value: float, now: float | None = None) -> None:
        """A student's value of a named experiment result (the latest one counts)."""
        t = time.time() if now is None else now
        self._open(me.code, t)
        self.member(me.code, me.member_id)
        if not isinstance(name, str) or not 0 < len(name.strip()) <= MAX_RESULT_NAME or not name.isprintable():
            raise ClassError(_("a result's name is one line of at most {n} characters", n=MAX_RESULT_NAME))
        v = rules.result_value(value)
        with self.db.transaction() as tx:
            names = {r[0] for r in tx.execute("SELECT name FROM results WHERE class_code = ? AND member_id = ?",
                                              (me.code, me.member_id))}
            if name not in names and len(names) >= MAX_RESULT_NAMES:
                raise ClassError(_("at most {n} different results are kept for one student", n=MAX_RESULT_NAMES))
            tx.execute("INSERT INTO results (class_code, member_id, name, value, at) VALUES (?, ?, ?, ?, ?) "
                       "ON CONFLICT (class_code, member_id, name) DO UPDATE SET value = excluded.value, at = excluded.at",
                       (me.code, me.member_id, name, v, t))

    def my_results(self, me: Membership) -> list[tuple[str, float]]:
        """The student's own results (never another's)."""
        self.member(me.code, me.member_id)
        rows = self.db.execute("SELECT name, value FROM results WHERE class_code = ? AND member_id = ? ORDER BY name",
                               (me.code, me.member_id))
        return [(r[0], float(r[1])) for r in rows]
