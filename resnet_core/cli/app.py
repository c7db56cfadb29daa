"""`resnet-explorer app`: start the Streamlit app (the same as `streamlit run app/streamlit_app.py`)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from resnet_core.cli.common import CliError
from resnet_core.paths import APP_ENTRY


def app_entry() -> Path:
    """The app's entry script, which ships beside the library (see pyproject.toml)."""
    if APP_ENTRY.is_file():
        return APP_ENTRY
    raise CliError(f"error: the app's files are not installed beside resnet_core (no {APP_ENTRY})")


def cmd_app(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise CliError(f"error: --port must be between 1 and 65535, got {args.port}")
    entry = app_entry()
    command = [sys.executable, "-m", "streamlit", "run", str(entry), "--server.port", str(args.port),
               "--server.address", args.address, *args.streamlit_args]
    return subprocess.call(command, cwd=str(entry.parent.parent))


def register(sub) -> None:
    """Add `app` to the command parser."""
    p = sub.add_parser("app", help="start the Streamlit app (http://localhost:8501 by default)")
    p.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    p.add_argument("--address", default="0.0.0.0", help="address to listen on (default: all interfaces)")
    p.add_argument("streamlit_args", nargs=argparse.REMAINDER, help="further options for `streamlit run`")
    p.set_defaults(run=cmd_app)
