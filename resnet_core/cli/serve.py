"""`resnet-explorer serve`: a lecture hall. N app processes behind nginx, sharing the class database.

    resnet-explorer serve --replicas 4 --port 8600                       # SQLite in the data folder, one machine
    resnet-explorer serve --replicas 4 --port 8600 --db postgresql://user@dbhost/classes

It writes an nginx configuration (into --conf-dir, or a temporary folder), starts N `streamlit run` processes on
127.0.0.1 (ports PORT+1 … PORT+N) and nginx in front on PORT, and keeps them running: an app process that dies
is started again; nginx dying ends the command. Everything it started ends with it, however it ends (SIGKILL
included: each child asks the kernel for SIGTERM when this process dies).

Session affinity: a browser's first request is given a replica (split evenly) and the cookie `rx_replica`
names it; every later request of that browser (the websocket, uploads, media) goes to the same process. When
that process is down, nginx sends the browser to the others (each replica's upstream lists the others as
backups) and the cookie then names the one that answered, so the browser stays with its new session even when
its first process is back: Streamlit's page reconnects there and opens the session again from its address (network, page,
class and student id), while the class itself lives in the database. The websocket (/_stcore/stream) is
proxied with the Upgrade headers, and every replica shares one cookie secret (uploads' XSRF tokens stay valid
on another replica).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from resnet_core.cli.common import CliError
from resnet_core.training import lifecycle

MAX_REPLICAS = 32
COOKIE = "rx_replica"
START_TIMEOUT_S = 120.0


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None


def nginx_config(port: int, app_ports: list[int], folder: Path, address: str = "0.0.0.0",
                 upload_mb: int = 20) -> str:
    """The nginx configuration: cookie affinity over the app processes, websocket upgrade, failover."""
    n = len(app_ports)
    names = [f"r{i + 1}" for i in range(n)]
    share = f"{100.0 / n:.2f}".rstrip("0").rstrip(".")  # nginx takes at most two decimals
    shares = [f"    {share}% {name};" for name in names[:-1]] + [f"    * {names[-1]};"]
    upstreams = []
    for i, name in enumerate(names):
        order = app_ports[i:] + app_ports[:i]  # its own process first, the others as backups
        lines = [f"    server 127.0.0.1:{order[0]} max_fails=1 fail_timeout=3s;"]
        lines += [f"    server 127.0.0.1:{p} backup;" for p in order[1:]]
        upstreams.append(f"  upstream {name} {{\n" + "\n".join(lines) + "\n  }")
    valid = "|".join(names)
    served = "\n".join(f"    ~127\\.0\\.0\\.1:{p}$ {name};" for p, name in zip(app_ports, names, strict=True))
    temp = "\n".join(f"  {kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                         "uwsgi", "scgi"))
    upstream_text = "\n".join(upstreams)
    share_text = "\n".join(shares)
    return f"""# written by `resnet-explorer serve` (resnet_core/cli/serve.py); regenerated at every start
worker_processes 1;
daemon off;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{temp}
  map $http_upgrade $connection_upgrade {{ default upgrade; "" close; }}
  # a new browser gets a replica, evenly; the cookie keeps it there
  split_clients "$remote_addr$request_id" $new_replica {{
{share_text}
  }}
  map $cookie_{COOKIE} $replica {{ ~^({valid})$ $cookie_{COOKIE}; default $new_replica; }}
  # the cookie names the process that answered (the last one tried): after a failover the browser stays on
  # the process that now holds its session, even when its first process comes back
  map $upstream_addr $served {{
{served}
    default $replica;
  }}
{upstream_text}
  server {{
    listen {address}:{port};
    client_max_body_size {upload_mb + 1}m;
    location / {{
      proxy_pass http://$replica;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 1d;
      proxy_send_timeout 1d;
      proxy_buffering off;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_connect_timeout 2s;
      add_header Set-Cookie "{COOKIE}=$served; Path=/; HttpOnly; SameSite=Lax" always;
    }}
  }}
}}
"""


def _die_with_us() -> None:
    """In the child, before exec: SIGTERM when the serving process dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(lifecycle.PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    os.setpgrp()  # a Ctrl-C in the terminal reaches the command, which stops its children in order


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _healthy(port: int, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=timeout) as r:
            return r.status == 200
    except (OSError, ValueError):
        return False


class Hall:
    """The processes of one `serve`: the app replicas and nginx."""

    def __init__(self, args: argparse.Namespace, folder: Path, db: str) -> None:
        from resnet_core.cli.app import app_entry, settings_folder
        self.args, self.folder = args, folder
        self.app_ports = [args.port + 1 + i for i in range(args.replicas)]
        self.entry, self.cwd = app_entry(), settings_folder()
        self.env = lifecycle.child_env()
        self.env["RESNET_EXPLORER_CLASS_DB"] = db
        self.env.pop("RESNET_EXPLORER_MODEL", None)  # a lecture hall serves no one's own code
        self.env["STREAMLIT_SERVER_COOKIE_SECRET"] = secrets.token_urlsafe(32)  # one for all (Streamlit: no CLI flag)
        extra = list(args.streamlit_args)
        self.extra = extra[1:] if extra[:1] == ["--"] else extra
        self.apps: list[subprocess.Popen | None] = [None] * args.replicas
        self.nginx: subprocess.Popen | None = None

    def start_app(self, i: int) -> None:
        log = open(self.folder / f"app{i + 1}.log", "ab")  # noqa: SIM115 - the child holds it
        cmd = [sys.executable, "-m", "streamlit", "run", str(self.entry), "--server.port", str(self.app_ports[i]),
               "--server.address", "127.0.0.1", "--server.headless", "true", *self.extra]
        self.apps[i] = subprocess.Popen(cmd, cwd=str(self.cwd), env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, preexec_fn=_die_with_us)
        log.close()

    def start_nginx(self, binary: str) -> None:
        conf = self.folder / "nginx.conf"
        conf.write_text(nginx_config(self.args.port, self.app_ports, self.folder, self.args.address))
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.folder / kind).mkdir(exist_ok=True)
            if os.geteuid() == 0:  # nginx's workers drop root for 'nobody'
                with contextlib.suppress(KeyError, OSError):
                    import pwd
                    nobody = pwd.getpwnam("nobody")
                    os.chown(self.folder / kind, nobody.pw_uid, nobody.pw_gid)
        check = subprocess.run([binary, "-t", "-q", "-c", str(conf), "-p", str(self.folder), "-e",
                                str(self.folder / "error.log")], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise CliError(f"error: nginx refused the configuration {conf}: "
                           f"{(check.stderr or check.stdout).strip().splitlines()[-1:]}")
        self.nginx = subprocess.Popen([binary, "-c", str(conf), "-p", str(self.folder), "-e",
                                       str(self.folder / "error.log")], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=open(self.folder / "nginx.out", "ab"),  # noqa: SIM115
                                      preexec_fn=_die_with_us)

    def wait_ready(self, ports: list[int], timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(ports)
        while waiting:
            waiting = [p for p in waiting if not _healthy(p)]
            for i, proc in enumerate(self.apps):
                if proc is not None and proc.poll() is not None:
                    raise CliError(f"error: app process {i + 1} ended while starting (status {proc.returncode}); "
                                   f"see {self.folder / f'app{i + 1}.log'}")
            if waiting and time.monotonic() > deadline:
                raise CliError(f"error: no answer from port(s) {', '.join(map(str, waiting))} after {timeout:.0f} s")
            if waiting:
                time.sleep(0.3)

    def watch(self) -> int:
        """Until a signal: restart an app process that died; end if nginx does."""
        while True:
            time.sleep(0.5)
            if self.nginx is not None and self.nginx.poll() is not None:
                print(f"error: nginx ended (status {self.nginx.returncode}); see {self.folder / 'error.log'}",
                      file=sys.stderr, flush=True)
                return 1
            for i, proc in enumerate(self.apps):
                if proc is not None and proc.poll() is not None:
                    print(f"app process {i + 1} (port {self.app_ports[i]}) ended with status {proc.returncode}: "
                          "starting it again; its browsers reconnect to the others meanwhile", flush=True)
                    self.start_app(i)

    def stop(self) -> None:
        procs = [p for p in (self.nginx, *self.apps) if p is not None and p.poll() is None]
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
        deadline = time.monotonic() + 10.0
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def cmd_serve(args: argparse.Namespace) -> int:
    if not 1 <= args.replicas <= MAX_REPLICAS:
        raise CliError(f"error: --replicas must be 1–{MAX_REPLICAS}, got {args.replicas}")
    if not 1 <= args.port <= 65535 - args.replicas:
        raise CliError(f"error: --port must leave room for {args.replicas} app ports above it, got {args.port}")
    binary = nginx_binary()
    if binary is None:
        raise CliError("error: nginx is not installed (Debian: apt-get install nginx); "
                       "for one process without it: resnet-explorer app")
    taken = [p for p in [args.port + i for i in range(args.replicas + 1)] if not _port_free(p)]
    if taken:
        raise CliError(f"error: port(s) {', '.join(map(str, taken))} are in use; choose another --port")
    from resnet_core.classroom import connect, default_location
    db = args.db or default_location()
    where = connect(db, shared=False)  # migrated once here, before the replicas start
    where.close()
    if where.kind == "sqlite" and args.replicas > 1:
        print(f"class database: SQLite {db} (shared by the {args.replicas} processes of this machine; "
              "for several machines give --db postgresql://…)", flush=True)
    folder = Path(args.conf_dir) if args.conf_dir else Path(tempfile.mkdtemp(prefix="resnet-explorer-serve-"))
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    hall = Hall(args, folder, db)
    try:
        for i in range(args.replicas):
            hall.start_app(i)
        hall.wait_ready(hall.app_ports)
        hall.start_nginx(binary)
        hall.wait_ready([args.port], timeout=30.0)
        pids = ", ".join(f"{port} (pid {p.pid})" for port, p in zip(hall.app_ports, hall.apps, strict=True) if p)
        print(f"serving http://{args.address}:{args.port} — nginx (pid {hall.nginx.pid if hall.nginx else '?'}) "
              f"before {args.replicas} app process(es) on 127.0.0.1 ports {pids}; config {folder / 'nginx.conf'}",
              flush=True)
        return hall.watch()
    finally:
        hall.stop()


def register(sub) -> None:
    """Add `serve` to the command parser."""
    p = sub.add_parser("serve", help="serve a class: N app processes behind nginx, sharing the class database")
    p.add_argument("--replicas", type=int, default=2, help="app processes (default 2; about one per core)")
    p.add_argument("--port", type=int, default=8600, help="nginx's port (default 8600); the app processes use the "
                   "ports just above it on 127.0.0.1")
    p.add_argument("--address", default="0.0.0.0", help="address nginx listens on (default: all interfaces)")
    p.add_argument("--db", metavar="URL", help="the class database: postgresql://… (several machines) or a SQLite "
                   "file (default: classroom.sqlite3 in $RESNET_EXPLORER_DATA_DIR or ~/.local/share/resnet_explorer)")
    p.add_argument("--conf-dir", metavar="DIR", help="where to write nginx.conf and the logs (default: a new "
                   "temporary folder, printed at start)")
    p.add_argument("streamlit_args", nargs=argparse.REMAINDER, help="after --: options for every `streamlit run`")
    p.set_defaults(run=cmd_serve)
