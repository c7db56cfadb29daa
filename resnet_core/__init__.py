"""ResNet Explorer's library: residual networks from one spec, planned, built, traced and drawn.

    >>> import resnet_core as rc
    >>> t = rc.trace(rc.get_preset("resnet18"))
    >>> t.total_params, t.output_shape
    (11689512, (1000,))

    >>> t = rc.inspect_module(my_model, (3, 224, 224))   # any nn.Module: the same kind of record
    >>> t.total_params, len(t.residual_adds), t.errors

The rooms: structure/ (what a network is: spec → plan → module, trace, graph, code), modules/ (a model
from code, traced on the meta device), lab/ (running a built model), training/ (training runs),
experiments/ (the papers reproduced), cli/ (the command line).
"""

import importlib
from typing import Any

from resnet_core.errors import ExplorerError
from resnet_core.structure import (
    ArchSpec,
    Location,
    Plan,
    PlanProblem,
    SpecError,
    Stage,
    Stem,
    Trace,
    get_preset,
    list_presets,
    load_spec,
    plan,
    preset_info,
    trace,
)

__all__ = [
    "ArchSpec", "BuildError", "ExplorerError", "Location", "Plan", "PlanProblem", "SpecError", "Stage", "Stem",
    "Trace", "build_model", "forward_view", "get_preset", "gradient_flow", "inspect_module", "list_presets",
    "load_data", "load_spec", "make_run", "plan", "preset_info", "set_skip", "trace",
]


_LAZY = {  # these import torch, so they load on first use: `python -m resnet_core trace` starts fast
    "BuildError": "structure.build", "build_model": "structure.build", "set_skip": "structure.build",
    "gradient_flow": "lab.gradients", "forward_view": "lab.forward",
    "make_run": "training.run", "load_data": "training.data", "inspect_module": "modules.trace",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"resnet_core.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'resnet_core' has no attribute {name!r}")
