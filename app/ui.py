"""Shared pieces of the pages: cached library results and the panels every view uses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from resnet_core.formatting import fmt_bytes
from resnet_core.structure.graph import RenderUnavailable, render, to_dot
from resnet_core.structure.plan import shape_str
from resnet_core.structure.report import fmt_count
from resnet_core.structure.spec import ArchSpec, spec_key
from resnet_core.structure.trace import Trace, trace


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


# ---- files made on demand (download buttons call these only when clicked) -----------------------

def graph_image(dot: str, fmt: str):
    """A deferred SVG/PNG of `dot` for st.download_button: `dot` runs only on a click, never per rerun."""
    def make() -> bytes:
        try:
            return render(dot, fmt)
        except RenderUnavailable as e:  # installed but failing: the file says why instead of being empty
            return render_message(str(e), fmt)
    return make


def render_message(text: str, fmt: str) -> bytes:
    if fmt == "svg":
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="900" height="40"><text y="24">{text}</text></svg>'.encode()
    from PIL import Image, ImageDraw
    img = Image.new("RGB", (900, 40), "white")
    ImageDraw.Draw(img).text((8, 12), text, fill="black")
    return png_bytes(np.asarray(img))


# ---- images for display ------------------------------------------------------------------------

_DIVERGING = np.array([[33, 102, 172], [146, 197, 222], [247, 247, 247], [244, 165, 130], [178, 24, 43]], float)


def upscale(img: np.ndarray, target: int = 200) -> np.ndarray:
    """Nearest-neighbour enlargement so small maps stay crisp on a projector (no browser blur)."""
    h = img.shape[0]
    s = max(1, target // max(h, 1))
    return img.repeat(s, axis=0).repeat(s, axis=1) if s > 1 else img


def heatmap(a: np.ndarray, limit: float | None = None) -> np.ndarray:
    """(H, W) values → (H, W, 3) uint8 on a blue–white–red scale centred on 0, ±`limit` at the ends."""
    a = np.nan_to_num(np.asarray(a, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    m = limit if limit else float(np.abs(a).max()) or 1.0
    t = np.clip((a / m + 1) / 2, 0, 1) * (len(_DIVERGING) - 1)
    i = np.minimum(t.astype(int), len(_DIVERGING) - 2)
    f = (t - i)[..., None]
    return (_DIVERGING[i] * (1 - f) + _DIVERGING[i + 1] * f).astype(np.uint8)


def png_bytes(img: np.ndarray) -> bytes:
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()
