"""The model from code that the person who started this server brought (`resnet-explorer app --model
FILE.py:NAME --input C,H,W`): loaded once per process, traced once, and its gradient flow run per session.
Never renders.

Only the process's environment names the model (RESNET_EXPLORER_MODEL, RESNET_EXPLORER_MODEL_INPUT, set by
the `app` command). No link, upload or field of the app can name a Python file: a server started without
--model never imports or runs anyone's code.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import streamlit as st

from app import jobs
from resnet_core import i18n
from resnet_core.i18n import N_, _

MODEL_ENV = "RESNET_EXPLORER_MODEL"
INPUT_ENV = "RESNET_EXPLORER_MODEL_INPUT"
JOB = "model.job"


@dataclass(frozen=True)
class Configured:
    source: str  # FILE.py:NAME, timm:NAME or torchvision:NAME
    input_shape: tuple[int, ...]


def configured() -> Configured | None:
    """The model this process was started with, or None (then the app has no model page)."""
    source = os.environ.get(MODEL_ENV, "").strip()
    if not source:
        return None
    from resnet_core.cli.modules import is_module_source
    if not is_module_source(source):
        return None
    try:
        shape = tuple(int(v) for v in os.environ.get(INPUT_ENV, "3,224,224").split(","))
    except ValueError:
        shape = (3, 224, 224)
    return Configured(source, shape)


def traced(source: str, input_shape: tuple[int, ...]):
    """(the ModuleTrace, the model's builder, its name, an error line or None): once per process and language
    (its notes and located errors are sentences)."""
    return _traced(source, input_shape, i18n.language())


@st.cache_resource(show_spinner=False)
def _traced(source: str, input_shape: tuple[int, ...], lang: str):
    from resnet_core.cli.common import CliError
    from resnet_core.cli.modules import load_source
    from resnet_core.modules import inspect_module
    try:
        factory, name = load_source(source)
        return inspect_module(factory, input_shape, name=name), factory, name, None
    except CliError as e:
        return None, None, source, " ".join(e.lines).removeprefix("error: ")
    except Exception as e:  # noqa: BLE001 - the operator's model failed to load: one line on the page
        return None, None, source, jobs.one_line(e)


def dot(source: str, input_shape: tuple[int, ...], detail: str, expand: str | None = None) -> str:
    """The model's graph as DOT, once per language (its legend and labels are words)."""
    return _dot(source, input_shape, detail, expand, i18n.language())


@st.cache_data(show_spinner=False)
def _dot(source: str, input_shape: tuple[int, ...], detail: str, expand: str | None, lang: str) -> str:
    from resnet_core.modules.graph import module_dot
    t = traced(source, input_shape)[0]
    return module_dot(t, detail, expand=expand) if t is not None else ""  # type: ignore[arg-type]


@st.cache_data(show_spinner=False)  # every preset is traced: once per process, not on every rerun
def closest_preset(total_params: int, residual_adds: int) -> str:
    """The preset nearest the model: by residual blocks, then by parameters (on a log scale)."""
    import resnet_core as rc
    best, score = "resnet18", math.inf
    for name in rc.list_presets():
        t = rc.trace(rc.get_preset(name))
        blocks = len(t.plan.blocks)
        s = abs(blocks - residual_adds) / max(residual_adds, 1) + abs(math.log(max(t.total_params, 1) / max(total_params, 1)))
        if s < score:
            best, score = name, s
    return best


def current_job() -> jobs.Job | None:
    return st.session_state.get(JOB)


def start_flow(conf: Configured, batch: int, seed: int) -> jobs.Job:
    """The gradient flow with and without skips, as this session's job (one at a time)."""
    from resnet_core.modules.flow import module_gradient_flow
    factory = traced(conf.source, conf.input_shape)[1]

    def work(should_stop, report):
        report(N_("running forward + backward with the skips, then without them…"))  # translated where shown
        return module_gradient_flow(factory, conf.input_shape, batch=batch, seed=seed, should_stop=should_stop)

    return jobs.replace_job(st.session_state, JOB, jobs.Job("model-gradflow", work, request=(batch, seed)))


def input_image(conf: Configured, kind: str, seed: int):
    """The input of the forward views: a sample image (3×H×W models) or seeded noise, as an ImageInput."""
    from resnet_core.lab import images
    if len(conf.input_shape) != 3:
        raise ValueError(_("the forward views take images: the model's input must be C,H,W"))
    if kind != "noise" and kind in images.list_samples():
        return images.load_sample(kind, conf.input_shape)
    return images.noise_input(conf.input_shape, seed)


def forward_views(conf: Configured, kind: str, seed: int, layer: str | None):
    """One forward pass's views (kept for this session while the input and the layer stay)."""
    from resnet_core.modules.views import module_forward
    key = (conf, kind, seed, layer)
    kept = st.session_state.get("model.forward")
    if kept is not None and kept[0] == key:
        return kept[1], kept[2]
    x = input_image(conf, kind, seed)
    factory = traced(conf.source, conf.input_shape)[1]
    views = module_forward(factory, conf.input_shape, x=x.tensor, seed=seed, layers=(layer,) if layer else ())
    st.session_state["model.forward"] = (key, views, x)
    return views, x


def as_picture(t, size: int = 128):
    """A (C, H, W) or (H, W) activation as a grey picture at least `size` pixels wide: the channel mean,
    scaled to its own range (0 = its minimum, white = its maximum)."""
    import numpy as np
    import torch
    a = t.float()
    if a.dim() == 3:
        a = a.mean(0)
    lo, hi = float(a.min()), float(a.max())
    a = (a - lo) / (hi - lo) if hi > lo else torch.zeros_like(a)
    scale = max(1, size // max(a.shape))
    a = a.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    return (a.numpy() * 255 + 0.5).astype(np.uint8)
