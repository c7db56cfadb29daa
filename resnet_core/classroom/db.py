"""The class database: SQLite in a file (the default, standard library) or PostgreSQL (a URL), one small
interface over both, and the versioned migrations.

    db = connect("sqlite:///path/classroom.sqlite3")   # or a plain path, or "postgresql://user@host/db"
    db.execute("SELECT ...", (a, b))                    # '?' placeholders for both back ends
    with db.transaction() as tx: tx.execute(...)        # one atomic unit (BEGIN IMMEDIATE on SQLite)

psycopg is imported only when a postgresql:// URL is given. One connection per process and database,
shared by the process's threads (Streamlit runs each session in a thread) behind a lock; a PostgreSQL
connection that broke (its server restarted) is opened again once before a statement fails.

Migrations: `schema_version` holds one row, the version the database is at. `migrate(db)` applies every
migration above it in order, each in one transaction with the version bump, so a database is always at a
version the code knows; a database from a newer version of the code is refused, never changed.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from resnet_core.errors import ExplorerError
from resnet_core.i18n import _
from resnet_core.text import plain

DB_ENV = "RESNET_EXPLORER_CLASS_DB"  # a postgresql:// URL, sqlite:///PATH or a file path
DATA_DIR_ENV = "RESNET_EXPLORER_DATA_DIR"  # the operator's data folder (also where CIFAR-10 is read from)
DB_FILE = "classroom.sqlite3"


class DatabaseError(ExplorerError):
    """The class database cannot be opened or used: the message says which and why (never its password)."""


# Every migration: (version, statements). 1 creates everything; 2 adds the indexes the polls and the
# teacher's views read by. Portable SQL: it runs unchanged on SQLite and PostgreSQL.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        """CREATE TABLE classes (
            code TEXT PRIMARY KEY,
            secret_hash TEXT NOT NULL,
            salt TEXT NOT NULL,
            title TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            expires DOUBLE PRECISION NOT NULL,
            ended INTEGER NOT NULL DEFAULT 0,
            seq INTEGER NOT NULL DEFAULT 0)""",
        """CREATE TABLE members (
            id TEXT PRIMARY KEY,
            class_code TEXT NOT NULL REFERENCES classes(code),
            name TEXT NOT NULL,
            joined DOUBLE PRECISION NOT NULL,
            last_seen DOUBLE PRECISION NOT NULL)""",
        """CREATE TABLE pushes (
            class_code TEXT NOT NULL REFERENCES classes(code),
            seq INTEGER NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            spec_json TEXT,
            page TEXT NOT NULL,
            step TEXT NOT NULL,
            exercise TEXT NOT NULL,
            locked INTEGER NOT NULL,
            PRIMARY KEY (class_code, seq))""",
        """CREATE TABLE answers (
            class_code TEXT NOT NULL REFERENCES classes(code),
            member_id TEXT NOT NULL REFERENCES members(id),
            exercise TEXT NOT NULL,
            answer TEXT NOT NULL,
            correct INTEGER NOT NULL,
            tries INTEGER NOT NULL DEFAULT 1,
            at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (class_code, member_id, exercise, answer))""",
        """CREATE TABLE results (
            class_code TEXT NOT NULL REFERENCES classes(code),
            member_id TEXT NOT NULL REFERENCES members(id),
            name TEXT NOT NULL,
            value DOUBLE PRECISION NOT NULL,
            at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (class_code, member_id, name))""",
    ]),
    (2, [
        "CREATE INDEX members_by_class ON members (class_code, last_seen)",
        "CREATE INDEX answers_by_exercise ON answers (class_code, exercise)",
        "CREATE INDEX results_by_class ON results (class_code, name)",
    ]),
]
LATEST = MIGRATIONS[-1][0]


class Database:
    """One connection (per process and database) and its lock; `?` placeholders on both back ends."""

    kind = "sqlite"

    def __init__(self, where: str) -> None:
        self.where = where  # shown in messages: a file path, or the URL without its password
        self.lock = threading.RLock()

    # -- the back end's own parts --
    def _open(self) -> Any:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql

    def _begin(self, conn: Any) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def _broken(self, exc: BaseException) -> bool:
        return False

    # -- shared --
    def _conn(self) -> Any:
        if getattr(self, "_c", None) is None:
            self._c = self._open()
        return self._c

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run one statement (its own transaction) and return its rows (empty for statements without any)."""
        with self.lock:
            for attempt in (0, 1):
                try:
                    cur = self._conn().execute(self._sql(sql), tuple(params))
                    return list(cur.fetchall()) if cur.description else []
                except Exception as e:  # noqa: BLE001 - sorted below: a broken connection is retried once
                    if attempt == 0 and self._broken(e):
                        self._c = None
                        continue
                    raise self._error(e) from None
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Database]:
        """Statements that land together or not at all (other threads of the process wait on the lock)."""
        with self.lock:
            conn = self._conn()
            try:
                self._begin(conn)
            except Exception as e:  # noqa: BLE001
                if not self._broken(e):
                    raise self._error(e) from None
                self._c = None
                conn = self._conn()
                self._begin(conn)
            try:
                yield self
            except BaseException:
                with contextlib.suppress(Exception):
                    conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except Exception as e:  # noqa: BLE001
                raise self._error(e) from None

    def _error(self, e: BaseException) -> DatabaseError:
        if isinstance(e, DatabaseError):
            return e
        return DatabaseError(_("the class database ({where}) failed: {error}", where=self.where, error=plain(e, 300)))

    def close(self) -> None:
        with self.lock:
            if getattr(self, "_c", None) is not None:
                with contextlib.suppress(Exception):
                    self._c.close()
                self._c = None


class SqliteDatabase(Database):
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path

    def _open(self) -> Any:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=10.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")  # readers (the polls) never wait on a writer
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=10000")
        except (sqlite3.Error, OSError) as e:
            raise DatabaseError(_("cannot open the class database {where}: {error}", where=self.where,
                                  error=plain(e, 300))) from None
        return conn


class PostgresDatabase(Database):
    kind = "postgresql"

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        shown = parts._replace(netloc=parts.netloc.rpartition("@")[2] if "@" in parts.netloc else parts.netloc)
        super().__init__(shown.geturl())
        self.url = url

    def _open(self) -> Any:
        try:
            import psycopg  # only here: a server on SQLite never needs it
        except ImportError:
            raise DatabaseError(_("a postgresql:// class database needs psycopg: pip install 'psycopg[binary]'")) from None
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            raise DatabaseError(_("cannot connect to the class database {where}: {error}", where=self.where,
                                  error=plain(e, 300))) from None

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _begin(self, conn: Any) -> None:
        conn.execute("BEGIN")

    def _broken(self, exc: BaseException) -> bool:
        import psycopg
        c = getattr(self, "_c", None)
        return isinstance(exc, psycopg.OperationalError) or (c is not None and c.closed)


_OPEN: dict[str, Database] = {}
_OPEN_LOCK = threading.Lock()


def default_location(env: dict | None = None) -> str:
    """$RESNET_EXPLORER_CLASS_DB, else classroom.sqlite3 in the operator's data folder
    ($RESNET_EXPLORER_DATA_DIR), else in ~/.local/share/resnet_explorer ($XDG_DATA_HOME honoured)."""
    e = os.environ if env is None else env
    if e.get(DB_ENV):
        return e[DB_ENV]
    if e.get(DATA_DIR_ENV):
        return str(Path(e[DATA_DIR_ENV]) / DB_FILE)
    base = Path(e["XDG_DATA_HOME"]) if e.get("XDG_DATA_HOME") else Path.home() / ".local" / "share"
    return str(base / "resnet_explorer" / DB_FILE)


def connect(location: str | None = None, *, shared: bool = True) -> Database:
    """The database at `location` (see `default_location`), migrated to the latest version. `shared`: the
    process's one connection to it (a new one otherwise: tests, and a second process in a test)."""
    where = location or default_location()
    with _OPEN_LOCK:
        if shared and where in _OPEN:
            return _OPEN[where]
        if where.startswith(("postgresql://", "postgres://")):
            db: Database = PostgresDatabase(where)
        elif "://" in where and not where.startswith("sqlite:///"):
            raise DatabaseError(_("the class database must be a file path, sqlite:///PATH or postgresql://…, got {scheme}://…",
                                  scheme=plain(where.split("://")[0], 40)))
        else:
            db = SqliteDatabase(Path(where.removeprefix("sqlite://")).expanduser())
        migrate(db)
        if shared:
            _OPEN[where] = db
        return db


def version(db: Database) -> int:
    """The version the database is at (0: empty)."""
    with db.lock:
        try:
            rows = db.execute("SELECT version FROM schema_version")
        except DatabaseError:
            return 0
    return int(rows[0][0]) if rows else 0


def migrate(db: Database, target: int = LATEST) -> int:
    """Apply the migrations above the database's version, up to `target`; return the version reached."""
    with db.transaction() as tx:
        tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        rows = tx.execute("SELECT version FROM schema_version")
        if not rows:
            tx.execute("INSERT INTO schema_version (version) VALUES (0)")
    at = version(db)
    if at > LATEST:
        raise DatabaseError(_("the class database ({where}) is at version {at}, newer than this program's {latest}: "
                              "upgrade ResNet Explorer", where=db.where, at=at, latest=LATEST))
    for number, statements in MIGRATIONS:
        if at < number <= target:
            with db.transaction() as tx:
                if db.kind == "postgresql":  # two replicas starting together: one migrates, the other waits
                    tx.execute("LOCK TABLE schema_version IN EXCLUSIVE MODE")
                current = int(tx.execute("SELECT version FROM schema_version")[0][0])
                if current >= number:  # another process applied it meanwhile
                    continue
                for sql in statements:
                    tx.execute(sql)
                tx.execute("UPDATE schema_version SET version = ?", (number,))
            at = number
    return version(db)
