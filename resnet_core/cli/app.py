"""`resnet-explorer app`: start the Streamlit app (the same as `streamlit run app/streamlit_app.py`).

    resnet-explorer app                       # http://localhost:8501
    resnet-explorer app --port 8600 -- --server.maxUploadSize 5    # after --: options for `streamlit run`
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from resnet_core.cli.common import CliError
from resnet_core.paths import APP_ENTRY, ROOT


def app_entry() -> Path:
    """The app's entry script, which ships beside the library (see pyproject.toml)."""
    if APP_ENTRY.is_file():
        return APP_ENTRY
    raise CliError(f"error: the app's files are not installed beside resnet_core (no {APP_ENTRY})")


def settings_folder() -> Path:
    """The folder whose .streamlit/config.toml holds the app's settings: the checkout, or the installed copy."""
    installed = Path(sys.prefix) / "share" / "resnet-explorer"
    for folder in (ROOT, installed):
        if (folder / ".streamlit" / "config.toml").is_file():
            return folder
    return ROOT


def cmd_app(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise CliError(f"error: --port must be between 1 and 65535, got {args.port}")
    extra = list(args.streamlit_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    entry = app_entry()
    command = [sys.executable, "-m", "streamlit", "run", str(entry), "--server.port", str(args.port),
               "--server.address", args.address, *extra]
    return subprocess.call(command, cwd=str(settings_folder()))


def register(sub) -> None:
    """Add `app` to the command parser."""
    p = sub.add_parser("app", help="start the Streamlit app (http://localhost:8501 by default)")
    p.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    p.add_argument("--address", default="0.0.0.0", help="address to listen on (default: all interfaces)")
    p.add_argument("streamlit_args", nargs=argparse.REMAINDER, help="after --: options for `streamlit run`")
    p.set_defaults(run=cmd_app)
