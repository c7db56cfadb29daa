"""What every command shares: the bad-input error, the one-line argparse error, the interruption, spec and
shape arguments, output, error lines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from resnet_core.structure.loading import load_spec
from resnet_core.structure.spec import ArchSpec
from resnet_core.structure.spec_text import SpecError
from resnet_core.text import plain


class CliError(Exception):
    """Bad input: each line goes to stderr, exit status 2."""

    def __init__(self, *lines: str):
        self.lines = list(lines)
        super().__init__("\n".join(lines))


def one_line_error(parser: argparse.ArgumentParser, with_prog: bool = False):
    """An argparse `error` that prints one line and exits 2 (not the usage block):
    `parser.error = one_line_error(parser)` → 'error: MESSAGE' (with_prog: 'error: PROG: MESSAGE')."""
    def error(message: str):
        parser.exit(2, f"error: {parser.prog + ': ' if with_prog else ''}{message}\n")
    return error


class Interrupted(KeyboardInterrupt):
    """A signal ended the command: main prints one line naming it (plus `detail`) and exits 128 + the signal
    (130 SIGINT, 143 SIGTERM). A KeyboardInterrupt, so code that cleans up after Ctrl-C does the same here."""

    def __init__(self, signum: int, detail: str = "", quiet: bool = False):
        super().__init__(signum)
        self.signum, self.detail, self.quiet = int(signum), detail, quiet


def resolve_spec(text: str) -> ArchSpec:
    try:
        return load_spec(text)
    except SpecError as e:
        raise CliError(*e.lines()) from None


def parse_shape(text: str) -> tuple[int, int, int]:
    text = plain(text, 60)
    try:
        if len(text) > 50:
            raise ValueError
        values = tuple(int(v) for v in text.replace("x", ",").replace("×", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C,H,W (three integers), got {text!r}") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected C,H,W (three integers), got {text!r}")
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"every size must be at least 1, got {text!r}")
    from resnet_core.structure.plan import MAX_CHANNELS, MAX_SPATIAL
    for what, value, limit in zip(("C", "H", "W"), values, (MAX_CHANNELS, MAX_SPATIAL, MAX_SPATIAL), strict=True):
        if value > limit:
            raise argparse.ArgumentTypeError(f"{what} is {value:,}; the explorer plans at most {limit:,}")
    return values


def write_output(data: str | bytes, output: str | None) -> None:
    if output is None or output == "-":
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(data)
        return
    path = Path(output)
    if not path.parent.exists():
        raise CliError(f"cannot write {output}: the folder {path.parent} does not exist")
    try:
        path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data, encoding="utf-8")
    except OSError as e:
        raise CliError(f"cannot write {output}: {e.strerror}") from None
    print(f"wrote {output}", file=sys.stderr)


def plan_error_lines(errors) -> list[str]:
    return [f"error: {e}" for e in errors]
