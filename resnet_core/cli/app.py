"""`resnet-explorer app`: start the Streamlit app (the same as `streamlit run app/streamlit_app.py`).

    resnet-explorer app                       # http://localhost:8501
    resnet-explorer app --port 8600 -- --server.maxUploadSize 5    # after --: options for `streamlit run`
    resnet-explorer app --model my_net.py:MyResNet --input 3,32,32  # your own model, on your own machine

`--model` is for the person who starts the process: the app opens on that model (its trace, residual blocks,
graph and gradient flow). A server started without it never imports or runs anyone's code.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from resnet_core.cli.common import CliError, parse_shape
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
    env = dict(os.environ)
    env.pop("RESNET_EXPLORER_MODEL", None)  # only --model names a model, never an inherited variable
    if args.model is not None:
        from resnet_core.cli.modules import is_module_source, load_source
        if not is_module_source(args.model):
            raise CliError(f"error: --model takes FILE.py:NAME, timm:NAME or torchvision:NAME, got {args.model!r}")
        if args.input is None:
            raise CliError("error: --model needs the model's input shape: --input C,H,W (e.g. 3,224,224)")
        load_source(args.model)  # said here, before the server starts, if it cannot be loaded
        source = args.model
        if ".py:" in source:
            path, _, name = source.rpartition(":")
            source = f"{Path(path).expanduser().resolve()}:{name}"  # the server runs from another folder
        env["RESNET_EXPLORER_MODEL"] = source
        env["RESNET_EXPLORER_MODEL_INPUT"] = ",".join(str(v) for v in args.input)
    command = [sys.executable, "-m", "streamlit", "run", str(entry), "--server.port", str(args.port),
               "--server.address", args.address, *extra]
    return subprocess.call(command, cwd=str(settings_folder()), env=env)


def register(sub) -> None:
    """Add `app` to the command parser."""
    p = sub.add_parser("app", help="start the Streamlit app (http://localhost:8501 by default)")
    p.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    p.add_argument("--address", default="0.0.0.0", help="address to listen on (default: all interfaces)")
    p.add_argument("--model", metavar="SOURCE",
                   help="open the app on your own model: FILE.py:NAME (an nn.Module class or a function returning "
                        "one), timm:NAME or torchvision:NAME; for one person on their own machine")
    p.add_argument("--input", type=parse_shape, metavar="C,H,W", help="with --model: its input shape")
    p.add_argument("streamlit_args", nargs=argparse.REMAINDER, help="after --: options for `streamlit run`")
    p.set_defaults(run=cmd_app)
