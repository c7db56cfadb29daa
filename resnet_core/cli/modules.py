"""`trace`, `export` and `gradflow` on a model from code: `FILE.py:NAME`, `timm:NAME`, `torchvision:NAME`.

    resnet-explorer trace my_net.py:ResNetSE --input 3,224,224 --format json
    resnet-explorer export my_net.py:build --input 3,32,32 --to svg -o net.svg
    resnet-explorer gradflow my_net.py:ResNetSE --input 3,32,32 --compare-skip
    resnet-explorer trace timm:resnet50d

NAME is an `nn.Module` class or a function returning one, called with no arguments (on the meta device for
a trace: nothing is allocated). The file is run as Python: it is the person's own code on their own
machine. The app's server never does this for a visitor (only `resnet-explorer app --model` does, for
the person who starts it). timm and torchvision are optional: when one is not importable, it says so.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import io
import json
import re
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resnet_core.cli.common import CliError, write_output
from resnet_core.i18n import _

_FILE_SOURCE = re.compile(r"^(?P<path>.+\.py):(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")
_HUB_SOURCE = re.compile(r"^(?P<hub>timm|torchvision):(?P<name>[A-Za-z0-9_.\-]+)$")


def is_module_source(text: str) -> bool:
    """Whether SPEC names a model from code rather than a preset or a spec file."""
    return bool(_FILE_SOURCE.match(text) or _HUB_SOURCE.match(text))


def _stub_torchvision_ops() -> None:
    # torchvision's compiled ops may not match this torch: its model code needs none of them
    for name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
        sys.modules.setdefault(name, types.ModuleType(name))


def load_source(text: str) -> tuple[Callable[[], Any], str]:
    """(a function that builds the model, its name) for FILE.py:NAME, timm:NAME or torchvision:NAME."""
    hub = _HUB_SOURCE.match(text)
    if hub is not None:
        name = hub["name"]
        _stub_torchvision_ops()
        if hub["hub"] == "timm":
            try:
                with contextlib.redirect_stdout(sys.stderr):  # its optional hub client may print on import
                    import timm
            except ImportError:
                raise CliError("error: " + _("timm is not installed here (pip install timm): timm:NAME needs it")) from None
            if name not in timm.list_models():
                raise CliError("error: " + _("timm has no model {name!r} (timm.list_models() lists them)", name=name))
            return (lambda: timm.create_model(name, pretrained=False)), name
        try:
            import torchvision.models as tvm
        except ImportError:
            raise CliError("error: " + _("torchvision is not installed here: torchvision:NAME needs it")) from None
        if name not in tvm.list_models():
            raise CliError("error: " + _("torchvision has no model {name!r} (torchvision.models.list_models() lists them)",
                                          name=name))
        return (lambda: tvm.get_model(name, weights=None)), name
    m = _FILE_SOURCE.match(text)
    if m is None:
        raise CliError("error: " + _("{text!r} is not FILE.py:NAME, timm:NAME or torchvision:NAME", text=text))
    path = Path(m["path"]).expanduser()
    if not path.is_file():
        raise CliError("error: " + _("no such file: {path}", path=path))
    spec = importlib.util.spec_from_file_location(f"resnet_explorer_user_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise CliError("error: " + _("cannot load {path} as Python", path=path))
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent.resolve()))  # the file's own imports of its neighbours
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise CliError(f"error: {path}:{e.lineno}: {e.msg}") from None
    except Exception as e:  # noqa: BLE001 - the user's module failed to import: one line saying where
        raise CliError("error: " + _("importing {path} failed: {kind}: {reason}", path=path, kind=type(e).__name__,
                                                 reason=e)) from None
    finally:
        sys.path.remove(str(path.parent.resolve()))
    target = getattr(module, m["name"], None)
    if target is None:
        raise CliError("error: " + _("{path} has no {name!r}", path=path, name=m["name"]))
    if not callable(target):
        raise CliError("error: " + _("{path}:{name} is not an nn.Module class or a function returning one", path=path,
                                       name=m["name"]))
    return target, m["name"]


def _input(args: argparse.Namespace) -> tuple[int, ...]:
    if args.input is None:
        raise CliError("error: a model from code needs its input shape: --input C,H,W (e.g. 3,224,224)")
    return tuple(args.input)


def _trace(args: argparse.Namespace):
    from resnet_core.modules import inspect_module
    factory, name = load_source(args.spec)
    return inspect_module(factory, _input(args), name=name)


def _error_lines(t) -> list[str]:
    return [f"error: {e}" for e in t.errors]


def cmd_trace(args: argparse.Namespace) -> int:
    t = _trace(args)
    if args.format == "json":
        print(json.dumps(t.to_dict(), indent=2))
    elif args.format == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["index", "path", "type", "kind", "in_shapes", "out_shape", "params", "mult_adds",
                    "elementwise", "act_bytes", "rf", "failed"])
        from resnet_core.text import csv_cell
        for r in t.rows:
            w.writerow([r.index, csv_cell(r.path), csv_cell(r.type), r.kind,
                        " ".join("×".join(map(str, s)) for s in r.in_shapes),
                        "" if r.out_shape is None else "×".join(map(str, r.out_shape)), r.params, r.mult_adds,
                        r.elementwise, r.act_bytes, "" if r.rf is None else r.rf, r.failed])
        sys.stdout.write(buf.getvalue())
    else:
        print(t.table())
        for note in t.notes:
            print(f"note: {note}")
    if t.errors:
        raise CliError(*_error_lines(t))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from resnet_core.modules.graph import module_dot
    if args.to not in ("dot", "svg", "png", "csv", "json"):
        raise CliError(f"error: a model from code exports to dot, svg, png, csv or json, not {args.to}")
    t = _trace(args)
    if args.to == "json":
        write_output(json.dumps(t.to_dict(), indent=2) + "\n", args.output)
    elif args.to == "csv":
        saved = sys.stdout
        sys.stdout = io.StringIO()
        try:
            args.format = "csv"
            with contextlib.suppress(CliError):
                cmd_trace(args)
            text = sys.stdout.getvalue()
        finally:
            sys.stdout = saved
        write_output(text, args.output)
    else:
        from resnet_core.modules.graph import block_stages
        stages = block_stages(t)
        expand = getattr(args, "expand", None)  # 0-based here (main turns the 1-based option into an index)
        if expand is not None and not 0 <= expand < len(stages):
            raise CliError(f"error: --expand {expand + 1}: this model has {len(stages)} stages of residual blocks "
                           f"({', '.join(s or '(top level)' for s in stages) or 'none'}); give 1 to {len(stages)}")
        dot = module_dot(t, args.detail, expand=None if expand is None else stages[expand])
        if args.to == "dot":
            write_output(dot, args.output)
        else:
            from resnet_core.structure.graph import RenderUnavailable, render
            if args.output in (None, "-") and sys.stdout.isatty():
                raise CliError(f"error: {args.to.upper()} is binary; give a file with -o FILE.{args.to}")
            try:
                write_output(render(dot, args.to), args.output)
            except RenderUnavailable as e:
                raise CliError(f"error: {e}") from None
    if t.errors:
        raise CliError(*_error_lines(t))
    return 0


def cmd_gradflow(args: argparse.Namespace) -> int:
    from resnet_core.modules.flow import module_gradient_flow
    factory, name = load_source(args.spec)
    flow = module_gradient_flow(factory, _input(args), batch=args.batch or 8, seed=args.seed or 0,
                                compare_skip=bool(getattr(args, "compare_skip", True)), name=name)
    if args.format == "json":
        print(json.dumps(flow.to_dict(), indent=2))
        return 0
    print(f"{flow.name}: ‖∂L/∂W‖ per layer, batch {flow.batch} of seeded noise, seed {flow.seed}, {flow.loss}; "
          f"without skips = the {flow.residual_adds} residual additions removed, the same weights")
    width = max([len(r["layer"]) for r in flow.rows()] + [5])
    print(f"{'depth':>5}  {'layer'.ljust(width)}  {'with skips':>12}  {'without':>12}  {'ratio':>8}")
    for r in flow.rows():
        wo = "" if r["without_skips"] is None else f"{r['without_skips']:.3g}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.3g}"
        print(f"{r['depth']:>5}  {r['layer'].ljust(width)}  {r['with_skips']:>12.3g}  {wo:>12}  {ratio:>8}")
    return 0
