"""The live lab's per-session state: this session's own model (never shared with other sessions), its
input, the last forward pass; and the gradient-flow display."""

from __future__ import annotations

import json
import math

import altair as alt
import pandas as pd
import streamlit as st
from torch import nn

from resnet_core.device import check_fits, estimate_pass, pick_device
from resnet_core.lab import forward as lab_forward
from resnet_core.lab import gradients, images, weights
from resnet_core.structure.build import build_model
from resnet_core.structure.spec import ArchSpec, spec_key
from resnet_core.structure.trace import trace

TRAINED = "trained"  # session_state key: {label: hand-off record from the Training lab}


def trained_records(spec: ArchSpec) -> dict[str, dict]:
    """Networks trained in this session whose architecture is the builder's network."""
    key = spec_key(spec.replace(name=""))
    return {label: rec for label, rec in st.session_state.get(TRAINED, {}).items()
            if spec_key(rec["spec"].replace(name="")) == key}


def weight_sources(spec: ArchSpec) -> dict[str, str]:
    out = {"random": "random (seeded)"}
    for label in trained_records(spec):
        out[f"trained:{label}"] = f"trained: {label}"
    if weights.imagenet_weights_name(spec):
        out["imagenet"] = "ImageNet (torchvision)"
    out["checkpoint"] = "checkpoint file"
    return out


def input_sources(spec: ArchSpec, source: str) -> dict[str, str]:
    out = {}
    if source.startswith("trained:"):
        out["example"] = "held-out example"
    out.update({"sample": "sample image", "upload": "your image", "noise": "random noise"})
    return out


def upload_id(upload) -> str:
    """Streamlit's id of this upload: a new file (even one with the same name) gets a new id."""
    return "" if upload is None else str(getattr(upload, "file_id", None) or id(upload))


def model_key(spec: ArchSpec, source: str, seed: int, upload) -> str:
    return f"{spec_key(spec)}|{source}|{seed}|{upload_id(upload) if source == 'checkpoint' else ''}"


def input_key(kind: str, sample: str | None, upload, example: int, noise_seed: int, source: str) -> tuple:
    """Everything the input image depends on (its label alone would miss a re-upload under the same name)."""
    return (kind, sample, upload_id(upload) if kind == "upload" else "", example, noise_seed, source)


def model_for(spec: ArchSpec, source: str, seed: int, upload) -> tuple[nn.Module, weights.LoadReport | None, bool]:
    """This session's model for (spec, weights); rebuilt only when they change. Returns (model, report, trained)."""
    key = model_key(spec, source, seed, upload)
    cached = st.session_state.get("live.model")
    if cached and cached[0] == key:
        return cached[1], cached[2], cached[3]
    t = trace(spec)
    check_fits(estimate_pass(t.param_bytes, t.activation_bytes, 1, backward=False), pick_device("auto"),
               what=f"building {spec.name} ({t.total_params:,} parameters) and running one image")
    model = build_model(spec, seed=seed)
    report, trained = None, False
    if source == "checkpoint":
        if upload is None:
            st.info("Choose a checkpoint file (left); until then the weights are random.", icon=":material/upload:")
        else:
            report = weights.load_checkpoint(model, upload.getvalue(), strict=False)
            trained = True
    elif source == "imagenet":
        try:
            report = weights.load_imagenet_weights(model, weights.imagenet_weights_name(spec))
            trained = True
        except weights.WeightsUnavailable as e:
            st.warning(f"{e} Using random initialisation instead.", icon=":material/cloud_off:")
    elif source.startswith("trained:"):
        rec = st.session_state[TRAINED][source.split(":", 1)[1]]
        model.load_state_dict(rec["state"], strict=True)
        trained = True
    st.session_state["live.model"] = (key, model, report, trained)
    st.session_state.pop("live.forward", None)
    return model, report, trained


def class_names(spec: ArchSpec, source: str) -> tuple[str, ...]:
    if source.startswith("trained:"):
        return tuple(st.session_state[TRAINED][source.split(":", 1)[1]]["classes"])
    return weights.class_names_for(spec.num_classes)


def input_for(spec: ArchSpec, kind: str, sample: str | None = None, upload=None, example: int = 0,
              noise_seed: int = 0, source: str = "random") -> images.ImageInput:
    shape = spec.input_shape
    if kind == "sample":
        return images.load_sample(sample or images.list_samples()[0], shape,
                                  crop_fraction=0.875 if source == "imagenet" else 1.0)
    if kind == "upload":
        if upload is None:
            st.info("Choose an image file (left); until then the input is noise.", icon=":material/upload:")
            return images.noise_input(shape, noise_seed)
        return images.load_upload(upload.getvalue(), upload.name, shape)
    if kind == "example" and source.startswith("trained:"):
        rec = st.session_state[TRAINED][source.split(":", 1)[1]]
        i = min(example, len(rec["examples"]) - 1)
        x = rec["examples"][i:i + 1]
        label = rec["classes"][int(rec["example_labels"][i])]
        return images.ImageInput(tensor=x, display=rec["example_display"][i], source=f"held-out example {i} "
                                 f"(label {label})", input_shape=tuple(x.shape[1:]), mean=(), std=())
    return images.noise_input(shape, noise_seed)


def forward(model: nn.Module, x, plan, layer: int, block: str | None, top_k: int, train: bool, key) -> lab_forward.ForwardView:
    """One forward pass with every view, reused while nothing it depends on changes."""
    full_key = (key, layer, block, top_k, train)
    cached = st.session_state.get("live.forward")
    if cached and cached[0] == full_key:
        return cached[1]
    with st.spinner("Running the network…"):
        fv = lab_forward.forward_view(model, x, plan, layer=layer, block=block, top_k=top_k, train=train, device="auto")
    st.session_state["live.forward"] = (full_key, fv)
    return fv


def _fmt(v: float | None) -> str:
    if v is None:
        return "—"
    if not math.isfinite(v):
        return "NaN/Inf"
    return "0" if v == 0 else f"{v:.3g}"


def show_gradient_flow(flow: gradients.GradientFlow) -> None:
    """Summary, the log-scale chart of both variants, and the numbers."""
    w_rows = flow.weight_rows()
    labels = [v.label for v in flow.variants]
    first = w_rows[0]
    m = st.columns(3)
    m[0].metric(f"First conv ‖∂L/∂W‖, {labels[0]}", _fmt(first["norms"][0]), help=first["statuses"][0])
    if len(labels) > 1:
        m[1].metric(f"First conv ‖∂L/∂W‖, {labels[1]}", _fmt(first["norms"][1]), help=first["statuses"][1])
        ratio = first["ratio"]
        m[2].metric("Ratio, with / without", "∞" if ratio is not None and math.isinf(ratio) else _fmt(ratio),
                    help="∞: the gradient without skips is exactly zero")
    n_layers = len(w_rows)
    st.markdown(" · ".join(
        f"**{v.label}**: {v.counts().get('vanished', 0)} of {n_layers} weight gradients vanished, "
        f"{v.counts().get('exploded', 0)} exploded" for v in flow.variants))
    st.caption(f"{flow.spec.name} · batch norm {'on' if flow.spec.norm == 'batch' else 'off'} · "
               f"{flow.spec.init.replace('_', ' ')} init · {flow.batch} seeded noise images · "
               f"{'train' if flow.train else 'eval'} mode · {flow.device} · same weights: "
               f"{'yes' if flow.same_weights else 'NO'} · same batch: {'yes' if flow.same_batch else 'NO'}")

    df = pd.DataFrame(flow.chart_rows())
    colors = alt.Scale(domain=labels, range=["#1f77b4", "#d62728"][:len(labels)])
    shapes = alt.Scale(domain=["ok", "vanished", "exploded", "unused"],
                       range=["circle", "triangle-down", "triangle-up", "cross"])
    thresholds = pd.DataFrame({"y": [flow.vanished_below, flow.exploded_above],
                               "label": [f"vanished below {flow.vanished_below:g}",
                                         f"exploded above {flow.exploded_above:g}"]})
    cols = st.columns(2)
    for col, quantity in zip(cols, df["quantity"].unique() if len(df) else []):
        part = df[df["quantity"] == quantity]
        lines = alt.Chart(part).mark_line(point=False, strokeWidth=2.5).encode(
            x=alt.X("depth:Q", title="depth (layer or block, input → output)"),
            y=alt.Y("plot_norm:Q", scale=alt.Scale(type="log"), title=quantity + " (log)"),
            color=alt.Color("variant:N", scale=colors, legend=alt.Legend(orient="bottom", title=None)))
        points = alt.Chart(part).mark_point(size=60, filled=True).encode(
            x="depth:Q", y="plot_norm:Q", color=alt.Color("variant:N", scale=colors),
            shape=alt.Shape("status:N", scale=shapes, legend=None),
            tooltip=["variant", "name", "depth", alt.Tooltip("norm:Q", format=".3g"), "status"])
        rules = alt.Chart(thresholds).mark_rule(strokeDash=[4, 4], color="#888").encode(y="y:Q")
        text = alt.Chart(thresholds).mark_text(align="left", dx=4, dy=-6, color="#666").encode(
            y="y:Q", x=alt.value(4), text="label:N")
        col.altair_chart(alt.layer(lines, points, rules, text).properties(height=340, title=quantity),
                         width="stretch")
    st.caption("Points below the dashed 'vanished' line mean the layer effectively stops learning; above the "
               "'exploded' line one SGD step would wreck its weights. Exact zeros are drawn at the floor and "
               "NaN/Inf at the ceiling of the chart (triangles).")

    with st.expander("The numbers: every layer's weight gradient"):
        table = [{"depth": r["depth"], "layer": r["layer"],
                  **{f"‖∂L/∂W‖ {lab}": _fmt(n) for lab, n in zip(labels, r["norms"])},
                  **{f"status {lab}": s for lab, s in zip(labels, r["statuses"])},
                  "ratio": _fmt(r["ratio"])} for r in w_rows]
        st.dataframe(pd.DataFrame(table), hide_index=True)
    with st.expander("The numbers: every block's input gradient ‖∂L/∂x‖"):
        table = [{"depth": r["depth"], "block": r["block"],
                  **{f"‖∂L/∂x‖ {lab}": _fmt(n) for lab, n in zip(labels, r["norms"])},
                  **{f"status {lab}": s for lab, s in zip(labels, r["statuses"])},
                  "ratio": _fmt(r["ratio"])} for r in flow.input_rows()]
        st.dataframe(pd.DataFrame(table), hide_index=True)
    st.download_button("⬇ Gradient flow (JSON)", json.dumps(flow.to_dict(), indent=1),
                       f"gradflow_{flow.spec.name}.json", "application/json", key="live.gf_dl")
