"""A throwaway PostgreSQL cluster for tests: Debian's binaries, initdb + pg_ctl in a temporary folder, trust
auth on a free loopback port, stopped at the end. As root the server runs as the `postgres` user (PostgreSQL
refuses to run as root)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path


def binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def missing_reason() -> str | None:
    if binaries() is None:
        return "PostgreSQL's server binaries are not installed (apt-get install postgresql; scripts/setup.sh dev)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the test server as"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def cluster(folder: Path) -> Iterator[str]:
    """Start a cluster in `folder`; yield its URL; stop it."""
    bin_dir = binaries()
    assert bin_dir is not None
    data = folder / "pgdata"
    data.mkdir(parents=True)
    user: list[str] = []
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        for p in (folder, data):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        user = ["runuser", "-u", "postgres", "--"] if shutil.which("runuser") else ["su", "postgres", "-c"]
    port = free_port()

    def run(*cmd: str) -> None:
        subprocess.run([*user, *cmd], check=True, capture_output=True, timeout=120, cwd="/")

    run(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "pg.log"), "-w", "-t", "60", "-o",
        f"-p {port} -k {folder} -h 127.0.0.1 -F", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60, cwd="/")
