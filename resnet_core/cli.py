"""The command line: `python -m resnet_core COMMAND ...`.

Exit status: 0 done; 2 bad input (an invalid network, a file that is not a spec, bad arguments),
with one line per problem on stderr; 1 anything else, as one line (never a traceback; set
RESNET_EXPLORER_DEBUG=1 to see it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable

from .presets import list_presets, preset_info
from .spec import ArchSpec, SpecError, load_spec


class CliError(Exception):
    """Bad input: each line goes to stderr, exit status 2."""

    def __init__(self, *lines: str):
        self.lines = list(lines)
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------------------------
# shared argument helpers
# --------------------------------------------------------------------------------------------

def resolve_spec(text: str) -> ArchSpec:
    try:
        return load_spec(text)
    except SpecError as e:
        raise CliError(*e.lines()) from None


def parse_shape(text: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.replace("x", ",").replace("×", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C,H,W (three integers), got {text!r}") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected C,H,W (three integers), got {text!r}")
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"every size must be at least 1, got {text!r}")
    return values  # type: ignore[return-value]


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


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------

def cmd_presets(args: argparse.Namespace) -> int:
    from .trace import trace

    rows = []
    for name in list_presets():
        info = preset_info(name)
        t = trace(info.spec)
        rows.append({"name": name, "family": info.family, "params": t.total_params, "mult_adds": t.mult_adds,
                     "input_shape": list(t.input_shape), "summary": info.summary})
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    print(f"{'preset'.ljust(width)}  {'family':11s}  {'params':>12s}  {'mult-adds':>15s}  description")
    for r in rows:
        print(f"{r['name'].ljust(width)}  {r['family']:11s}  {r['params']:>12,}  {r['mult_adds']:>15,}  {r['summary']}")
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    from .report import to_csv, to_table
    from .trace import trace

    spec = resolve_spec(args.spec)
    t = trace(spec, args.input)
    if args.format == "json":
        print(json.dumps(t.to_dict(), indent=2))
    elif args.format == "csv":
        sys.stdout.write(to_csv(t))
    else:
        sys.stdout.write(to_table(t))
    if t.errors:
        raise CliError(*plan_error_lines(t.errors))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .plan import plan

    spec = resolve_spec(args.spec)
    p = plan(spec, args.input)
    fmt = args.to
    if args.expand is not None and not 0 <= args.expand < len(p.stages):
        raise CliError(f"error: --expand takes a stage number from 1 to {len(p.stages)} "
                       f"(this network's stages); got {args.expand + 1}")
    if fmt == "json":
        write_output(spec.to_json() + "\n", args.output)
    elif fmt == "yaml":
        write_output(spec.to_yaml(), args.output)
    elif fmt == "csv":
        from .report import to_csv
        from .trace import Trace
        write_output(to_csv(Trace(p)), args.output)
    elif fmt == "code":
        if p.errors:
            raise CliError("error: cannot generate code for a network whose shapes do not meet",
                           *plan_error_lines(p.errors))
        from .codegen import generate_code
        write_output(generate_code(p.spec), args.output)
    elif fmt in ("dot", "svg", "png"):
        from .graph import RenderUnavailable, build_graph, render
        dot = build_graph(p, args.detail, args.expand).source
        if fmt == "dot":
            write_output(dot, args.output)
        else:
            if args.output in (None, "-") and sys.stdout.isatty():
                raise CliError(f"error: {fmt.upper()} is binary; give a file with -o FILE.{fmt}")
            try:
                write_output(render(dot, fmt), args.output)
            except RenderUnavailable as e:
                raise CliError(f"error: {e}") from None
    if p.errors and fmt != "code":
        raise CliError(*plan_error_lines(p.errors))
    return 0


# commands added by other modules register here: name -> (add_arguments, run, help)
EXTRA_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]] = {}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m resnet_core",
        description="ResNet Explorer on the command line: trace, export, check residual networks.",
        epilog="SPEC is a preset name (see `presets`) or a JSON/YAML spec file.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("presets", help="list the preset networks with their parameter counts")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(run=cmd_presets)

    p = sub.add_parser("trace", help="layer-by-layer shapes, parameters, mult-adds, receptive field")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--input", type=parse_shape, metavar="C,H,W", help="input shape (default: the spec's)")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.set_defaults(run=cmd_trace)

    p = sub.add_parser("export", help="write the spec (json|yaml), trace (csv), PyTorch code, or graph (dot|svg|png)")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--to", required=True, choices=["json", "yaml", "csv", "code", "dot", "svg", "png"])
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    p.add_argument("--input", type=parse_shape, metavar="C,H,W", help="input shape (default: the spec's)")
    p.add_argument("--detail", choices=["stage", "block", "layer"], default="block", help="graph detail")
    p.add_argument("--expand", type=int, metavar="STAGE",
                   help="graph: show only this stage (1-based) in detail, collapse the others")
    p.set_defaults(run=cmd_export)

    for name, (add_args, run, help_text) in EXTRA_COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        add_args(p)
        p.set_defaults(run=run)
    return parser


def _load_extra_commands() -> None:
    # imported here so that a missing optional piece never breaks the core commands
    for module in ("resnet_core.cli_live", "resnet_core.cli_train"):
        try:
            __import__(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise


def main(argv: list[str] | None = None) -> int:
    _load_extra_commands()
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
