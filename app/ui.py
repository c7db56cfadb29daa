"""Shared pieces of the pages: cached library results and the panels every view uses."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from resnet_core.graph import to_dot
from resnet_core.plan import shape_str
from resnet_core.report import fmt_bytes, fmt_count
from resnet_core.spec import ArchSpec, spec_key
from resnet_core.trace import Trace, trace


@st.cache_resource(max_entries=32, show_spinner=False)  # a trace at the planner's limits is ~20 MB
def _trace(key: str, _spec: ArchSpec) -> Trace:
    return trace(_spec)


def cached_trace(spec: ArchSpec) -> Trace:
    """The trace of `spec`, shared read-only between reruns and sessions (it is never mutated)."""
    return _trace(spec_key(spec), spec)


@st.cache_resource(max_entries=32, show_spinner=False)
def _dot(key: str, detail: str, expand: int | None, _spec: ArchSpec) -> str:
    return to_dot(cached_trace(_spec).plan, detail, expand)


def cached_dot(spec: ArchSpec, detail: str, expand: int | None) -> str:
    return _dot(spec_key(spec), detail, expand, spec)


def current_spec() -> ArchSpec:
    return st.session_state["spec"]


def error_panel(t: Trace) -> None:
    """The located error, prominent: where, the two shapes, the fix."""
    for e in t.errors:
        lines = [f"**The network breaks at {e.where}.** {e.message}."]
        if e.shapes:
            a, b = e.shapes
            lines.append(f"Shapes: `{shape_str(a)}` vs `{shape_str(b)}`.")
        lines.append(f"**Fix:** {e.fix}.")
        if t.layers:
            lines.append("The trace and graph show the network up to the failing layer, marked in red.")
        st.error("\n\n".join(lines), icon=":material/dangerous:")
    for w in t.warnings:
        st.warning(w, icon=":material/warning:")


def metrics(t: Trace) -> None:
    c = st.columns(5)
    partial = "" if t.ok else " (up to the failure)"
    c[0].metric("Parameters" + partial, fmt_count(t.total_params), help=f"{t.total_params:,} parameters")
    c[1].metric("Mult-adds" + partial, fmt_count(t.mult_adds), help=f"{t.mult_adds:,} per image (torchinfo's rule)")
    c[2].metric("Output", shape_str(t.output_shape) if t.ok else "breaks",
                help=f"for an input of {shape_str(t.input_shape)}")
    c[3].metric("Activations", fmt_bytes(t.activation_bytes),
                help="all layer outputs for one image at float32: what a forward pass keeps for backward")
    c[4].metric("Receptive field", f"{t.receptive_field} px" if t.receptive_field else "—",
                help="input pixels one unit of the last feature map sees")


NUMBER_COLUMNS = ("Params", "Mult-adds", "Element-wise", "Δ params", "Δ mult-adds")


def table_height(n_rows: int, cap: int = 600) -> int:
    return min(35 * (n_rows + 1) + 3, cap)


def dataframe(rows: list[dict], height: int | str | None = None, key: str | None = None) -> None:
    """A table of library rows: numbers with thousands separators, a failing row ("✗") in red."""
    df = pd.DataFrame(rows)
    config = {c: st.column_config.NumberColumn(c, format="localized") for c in df.columns
              if c in NUMBER_COLUMNS or c.startswith(("Params ", "Mult-adds "))}
    data = df
    if "Output" in df.columns and df["Output"].astype(str).str.startswith("✗").any():
        failed = df["Output"].astype(str).str.startswith("✗")
        data = df.style.apply(lambda row: ["background-color: #fde0e0; color: #b00020" if failed[row.name] else ""
                                           for _ in row], axis=1)
    st.dataframe(data, hide_index=True, column_config=config, key=key,
                 height=table_height(len(df)) if height is None else height)


# ---- images for display ------------------------------------------------------------------------

import numpy as np  # noqa: E402

_DIVERGING = np.array([[33, 102, 172], [146, 197, 222], [247, 247, 247], [244, 165, 130], [178, 24, 43]], float)
_SEQUENTIAL = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], float)  # inferno


def upscale(img: np.ndarray, target: int = 200) -> np.ndarray:
    """Nearest-neighbour enlargement so small maps stay crisp on a projector (no browser blur)."""
    h = img.shape[0]
    s = max(1, target // max(h, 1))
    return img.repeat(s, axis=0).repeat(s, axis=1) if s > 1 else img


def heatmap(a: np.ndarray, diverging: bool = True, limit: float | None = None) -> np.ndarray:
    """(H, W) values → (H, W, 3) uint8: blue–white–red around 0 (diverging), or dark→bright."""
    a = np.nan_to_num(np.asarray(a, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if diverging:
        m = limit if limit else float(np.abs(a).max()) or 1.0
        t = (a / m + 1) / 2
        palette = _DIVERGING
    else:
        lo, hi = float(a.min()), float(a.max())
        t = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        palette = _SEQUENTIAL
    t = np.clip(t, 0, 1) * (len(palette) - 1)
    i = np.minimum(t.astype(int), len(palette) - 2)
    f = (t - i)[..., None]
    return (palette[i] * (1 - f) + palette[i + 1] * f).astype(np.uint8)


def png_bytes(img: np.ndarray) -> bytes:
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()
