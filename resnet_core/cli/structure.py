"""`presets`, `trace` and `export`: what a network is, by arithmetic (no torch needed for most)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from resnet_core.cli import modules
from resnet_core.cli.common import CliError, parse_shape, plan_error_lines, resolve_spec, write_output
from resnet_core.structure.presets import list_presets, preset_info


def cmd_presets(args: argparse.Namespace) -> int:
    from resnet_core.structure.trace import trace

    rows: list[dict[str, Any]] = []
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
    if modules.is_module_source(args.spec):  # FILE.py:NAME, timm:NAME, torchvision:NAME
        return modules.cmd_trace(args)
    from resnet_core.structure.report import to_csv, to_table
    from resnet_core.structure.trace import trace

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
    if modules.is_module_source(args.spec):
        return modules.cmd_export(args)
    from resnet_core.structure.plan import plan

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
        from resnet_core.structure.report import to_csv
        from resnet_core.structure.trace import Trace
        write_output(to_csv(Trace(p)), args.output)
    elif fmt == "code":
        if p.errors:
            raise CliError("error: cannot generate code for a network whose shapes do not meet",
                           *plan_error_lines(p.errors))
        from resnet_core.structure.codegen import generate_code
        write_output(generate_code(p.spec), args.output)
    elif fmt in ("dot", "svg", "png"):
        from resnet_core.structure.graph import RenderUnavailable, build_graph, render
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


def register(sub) -> None:
    """Add presets, trace and export to the command parser."""
    p = sub.add_parser("presets", help="list the preset networks with their parameter counts")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(run=cmd_presets)

    p = sub.add_parser("trace", help="layer-by-layer shapes, parameters, mult-adds, receptive field")
    p.add_argument("spec", metavar="SPEC", help="a preset, a JSON/YAML spec file, or a model from code: FILE.py:NAME "
                                                "(an nn.Module class or a function returning one), timm:NAME, "
                                                "torchvision:NAME (with --input C,H,W)")
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
