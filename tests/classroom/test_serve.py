"""`resnet-explorer serve`: nginx accepts the configuration it writes (affinity, websocket upgrade, failover),
and the real thing: N app processes behind nginx on a PostgreSQL class database, a replica killed and its
browsers' requests served by the other, and nothing left running when the command is killed."""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from resnet_core.cli import serve
from tests.classroom import pgcluster

needs_nginx = pytest.mark.skipif(serve.nginx_binary() is None,
                                 reason="nginx is not installed (apt-get install nginx; scripts/setup.sh dev)")


@needs_nginx
def test_nginx_accepts_the_configuration_and_it_says_what_it_must(tmp_path):
    text = serve.nginx_config(8600, [8601, 8602, 8603], tmp_path)
    (tmp_path / "nginx.conf").write_text(text)
    check = subprocess.run([serve.nginx_binary(), "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path),
                            "-e", str(tmp_path / "error.log")], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr  # nginx's own parser is the reference
    assert "proxy_set_header Upgrade $http_upgrade" in text and "$connection_upgrade" in text
    # each replica's upstream: its own process first, the other two as backups (failover keeps the cookie)
    assert re.search(r"upstream r2 \{\s+server 127.0.0.1:8602 [^;]*;\s+server 127.0.0.1:8603 backup;\s+"
                     r"server 127.0.0.1:8601 backup;", text)
    assert "Set-Cookie \"rx_replica=$served" in text and "split_clients" in text
    assert "33.33% r1;" in text and "* r3;" in text


def get(url: str, cookie: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.headers.get("Set-Cookie", "") + " " + " ".join(r.headers.get_all("Set-Cookie") or [])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


@pytest.mark.slow
@needs_nginx
def test_replicas_behind_nginx_survive_a_replicas_death_and_die_with_the_command(tmp_path, pg_url):
    port = pgcluster.free_port()
    while any(not serve._port_free(port + i) for i in range(3)):
        port = pgcluster.free_port()
    cmd = [sys.executable, "-m", "resnet_core", "serve", "--replicas", "2", "--port", str(port), "--address",
           "127.0.0.1", "--db", pg_url, "--conf-dir", str(tmp_path / "hall")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        while line and not line.startswith("serving"):
            line = proc.stdout.readline()
        assert line.startswith("serving"), line
        pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", line)]
        nginx_pid, app_pids = pids[0], pids[1:]
        assert len(app_pids) == 2
        base = f"http://127.0.0.1:{port}"
        status, cookies = get(base + "/_stcore/health")
        assert status == 200 and re.search(r"rx_replica=r[12]", cookies)
        assert get(base + "/", "rx_replica=r2")[0] == 200
        os.kill(app_pids[1], signal.SIGKILL)  # replica 2 dies mid-class
        t0 = time.monotonic()
        status, cookies = get(base + "/_stcore/health", "rx_replica=r2")  # its browsers: served by replica 1
        assert status == 200 and time.monotonic() - t0 < 5.0
        assert "rx_replica=r1" in cookies  # the cookie now names the process holding the browser's new session
        # the command starts replica 2 again
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not serve._healthy(port + 2):
            time.sleep(0.5)
        assert serve._healthy(port + 2)
        children = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                                    text=True).stdout.split()]
        assert nginx_pid in children and len(children) == 3
    finally:
        proc.kill()  # SIGKILL: no cleanup runs in the command; the kernel tells its children
        proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(alive(p) for p in children):
        time.sleep(0.2)
    assert not [p for p in children if alive(p)]
    hall = str(tmp_path / "hall")  # nginx's worker (its master's child) went with it
    left = subprocess.run(["pgrep", "-f", hall], capture_output=True, text=True).stdout.split()
    assert not [p for p in left if alive(int(p))]
