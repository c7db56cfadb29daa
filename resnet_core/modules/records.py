"""The records of a traced module: a row per operation, a residual addition, a located error, the trace.

Plain data: `trace.py` makes them, the command line, the app, the graph and a notebook read them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from resnet_core.errors import ExplorerError
from resnet_core.i18n import _

Method = Literal["fx", "hooks"]


class ModuleTraceError(ExplorerError):
    """A model that cannot be traced at all (not an nn.Module, a bad input shape)."""


@dataclass
class ModuleRow:
    index: int
    path: str  # "layer1.0.conv1" for a module; "layer1.0:add" for a functional operation in layer1.0
    type: str  # the module's class ("Conv2d") or the operation ("add", "flatten", "relu")
    kind: Literal["module", "function"]
    in_shapes: list[tuple[int, ...]]
    out_shape: tuple[int, ...] | None  # None on the failed row
    params: int = 0
    mult_adds: int = 0
    elementwise: int = 0
    act_bytes: int = 0
    rf: int | None = None
    block: str | None = None  # the module the operation belongs to ("layer1.0")
    failed: bool = False
    inputs: list[int] = field(default_factory=list)  # rows whose outputs this one reads (-1: the model's input)

    @property
    def owner(self) -> str:
        """The module path that runs this row: a module row's own path (without its "(2)" use count), a
        function row's calling module ("" at the top level)."""
        return self.path.split(" (")[0] if self.kind == "module" else (self.block or "")

    def to_dict(self) -> dict:
        return {"index": self.index, "path": self.path, "type": self.type, "kind": self.kind, "inputs": self.inputs,
                "in_shapes": [list(s) for s in self.in_shapes],
                "out_shape": list(self.out_shape) if self.out_shape is not None else None,
                "params": self.params, "mult_adds": self.mult_adds, "elementwise": self.elementwise,
                "act_bytes": self.act_bytes, "rf": self.rf, "failed": self.failed}


@dataclass
class ResidualAdd:
    add: str  # the addition's row path
    block: str  # the module it belongs to ("layer2.0"), "" at the top level
    branch: list[str]  # row paths from the block input x to F(x)
    shortcut: list[str]  # row paths from x to the shortcut operand ([] for an identity)
    input: str = "input"  # the row path that produced x ("input": the model's input)

    @property
    def projected(self) -> bool:
        return bool(self.shortcut)

    def to_dict(self) -> dict:
        return {"add": self.add, "block": self.block, "input": self.input, "branch": self.branch,
                "shortcut": self.shortcut}


@dataclass
class ModuleError:
    where: str  # the module path of the failing operation
    op: str  # its type
    shapes: list[tuple[int, ...]]  # its input tensors' shapes
    produced_by: list[str]  # which row (or "input") produced each of them
    message: str  # what is wrong, one line
    fix: str  # what to change ("" when none is known)
    cause: BaseException | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        shapes = _(" and ").join(_("{shape} (from {producer})", shape=shape_text(s), producer=p)
                                 for s, p in zip(self.shapes, self.produced_by, strict=True))
        text = _("{where} ({op}): {message}; inputs {shapes}", where=self.where, op=self.op, message=self.message,
                 shapes=shapes)
        return _("{text}. Fix: {fix}", text=text, fix=self.fix) if self.fix else text

    def to_dict(self) -> dict:
        return {"where": self.where, "op": self.op, "shapes": [list(s) for s in self.shapes],
                "produced_by": self.produced_by, "message": self.message, "fix": self.fix}


@dataclass
class ModuleTrace:
    name: str
    method: Method
    input_shape: tuple[int, ...]  # without the batch dimension
    rows: list[ModuleRow]
    residual_adds: list[ResidualAdd]
    errors: list[ModuleError]
    total_params: int  # unique parameters of the model (shared ones once)
    shared_params: int  # parameters reached under more than one name, counted once in total_params
    trainable_params: int
    buffers: int  # elements of buffers (running statistics, ...), apart from parameters
    output_shape: tuple[int, ...] | None
    notes: list[str] = field(default_factory=list)
    # the DOT of a graph of this trace (detail → source), given by the tracer (modules/graph.py draws it; the
    # record does not import its drawer): the notebook display shows the block graph with it
    draw: Callable[[ModuleTrace, str], str] | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def mult_adds(self) -> int:
        return sum(r.mult_adds for r in self.rows)

    @property
    def elementwise(self) -> int:
        return sum(r.elementwise for r in self.rows)

    @property
    def activation_bytes(self) -> int:
        return sum(r.act_bytes for r in self.rows)

    @property
    def residual_blocks(self) -> list[ResidualAdd]:
        return self.residual_adds

    def to_dict(self) -> dict:
        return {"name": self.name, "source": "module", "method": self.method, "input_shape": list(self.input_shape),
                "total_params": self.total_params, "trainable_params": self.trainable_params,
                "shared_params": self.shared_params, "buffers": self.buffers, "mult_adds": self.mult_adds,
                "elementwise": self.elementwise, "activation_bytes": self.activation_bytes,
                "output_shape": list(self.output_shape) if self.output_shape is not None else None,
                "residual_blocks": [r.to_dict() for r in self.residual_adds],
                "errors": [e.to_dict() for e in self.errors], "notes": self.notes,
                "rows": [r.to_dict() for r in self.rows]}

    def table(self, limit: int | None = None) -> str:
        """The rows as a plain-text table (the command line's and the notebook's)."""
        head = ("#", "path", "type", "output", "params", "mult-adds", "rf")
        body = [(str(r.index), r.path + ("  ✗" if r.failed else ""), r.type, shape_text(r.out_shape),
                 f"{r.params:,}", f"{r.mult_adds:,}", "" if r.rf is None else str(r.rf))
                for r in self.rows[:limit]]
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in (head, *body)]
        lines.append(f"{self.total_params:,} parameters · {self.mult_adds:,} mult-adds · "
                     f"{len(self.residual_adds)} residual additions · traced by {self.method}")
        return "\n".join(lines)  # the errors are the caller's to show (the command line: on stderr)

    def _repr_html_(self) -> str:  # Jupyter shows the trace as a table
        import html
        head = "".join(f"<th>{h}</th>" for h in ("#", "path", "type", "output", "params", "mult-adds", "rf"))
        failed = ' style="color:#b00"'
        rows = "".join(
            f"<tr{failed if r.failed else ''}><td>{r.index}</td><td>{html.escape(r.path)}</td>"
            f"<td>{html.escape(r.type)}</td><td>{shape_text(r.out_shape)}</td><td>{r.params:,}</td>"
            f"<td>{r.mult_adds:,}</td><td>{'' if r.rf is None else r.rf}</td></tr>" for r in self.rows)
        errors = "".join(f"<p><b>error:</b> {html.escape(str(e))}</p>" for e in self.errors)
        return (f"<p><b>{html.escape(self.name)}</b>: {self.total_params:,} parameters · {self.mult_adds:,} "
                f"mult-adds · {len(self.residual_adds)} residual additions · traced by {self.method}</p>"
                f"{errors}{self._graph_html()}<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")

    def _graph_html(self) -> str:
        """The block graph as inline SVG (Graphviz's `dot` draws it), or one line saying why there is none."""
        from resnet_core.structure.graph import RenderUnavailable, render
        if self.draw is None:
            return ""
        try:
            svg = render(self.draw(self, "block"), "svg").decode()
        except RenderUnavailable as e:
            import html
            return f"<p><i>No graph drawn: {html.escape(str(e))}</i></p>"
        svg = svg[svg.find("<svg"):]  # the drawing without its XML prologue, inline in the page
        return f'<details open><summary>graph (skip connections dashed blue)</summary>{svg}</details>'



def shape_text(s: tuple[int, ...] | None) -> str:
    return "?" if s is None else "×".join(str(v) for v in s)


