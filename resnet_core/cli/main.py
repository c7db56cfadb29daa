"""The command line: `resnet-explorer COMMAND ...` or `python -m resnet_core COMMAND ...`.

One module per command group, each with a `register(subparsers)`:
structure (presets, trace, export), live (gradflow), train, experiment, app.

Exit status: 0 done; 2 bad input (an invalid network, a file that is not a spec, bad arguments),
with one line per problem on stderr; 130 interrupted; 1 anything else, as one line (never a
traceback; set RESNET_EXPLORER_DEBUG=1 to see it).
"""

from __future__ import annotations

import argparse
import os
import sys

from resnet_core.cli import app, experiment, live, structure, train
from resnet_core.cli.common import CliError
from resnet_core.errors import ExplorerError


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (what is wrong, and where help is), not the usage block."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="resnet-explorer",
        description="ResNet Explorer on the command line: trace, export, check, run and train residual networks.",
        epilog="SPEC is a preset name (see `presets`) or a JSON/YAML spec file.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in (structure, live, train, experiment, app):
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "expand", None) is not None:
        args.expand -= 1
    try:
        return args.run(args)
    except CliError as e:
        for line in e.lines:
            print(line, file=sys.stderr)
        return 2
    except ExplorerError as e:  # the library's one base for bad input: its message says what and where
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, no traceback
        if os.environ.get("RESNET_EXPLORER_DEBUG"):
            raise
        print(f"internal error: {type(e).__name__}: {e} (set RESNET_EXPLORER_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1
