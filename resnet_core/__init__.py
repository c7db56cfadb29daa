"""ResNet Explorer's library: residual networks from one spec, planned, built, traced and drawn.

    >>> import resnet_core as rc
    >>> t = rc.trace(rc.get_preset("resnet18"))
    >>> t.total_params, t.output_shape
    (11689512, (1000,))
"""

from .plan import Location, Plan, PlanError, plan
from .presets import get_preset, list_presets, preset_info
from .spec import ArchSpec, SpecError, Stage, Stem, load_spec
from .trace import Trace, trace

__all__ = [
    "ArchSpec", "BuildError", "Location", "Plan", "PlanError", "SpecError", "Stage", "Stem", "Trace",
    "build_model", "forward_view", "get_preset", "gradient_flow", "list_presets", "load_data", "load_spec",
    "make_run", "plan", "preset_info", "set_skip", "trace",
]


_LAZY = {  # these import torch, so they load on first use: `python -m resnet_core trace` starts fast
    "BuildError": "build", "build_model": "build", "set_skip": "build",
    "gradient_flow": "probes", "forward_view": "probes",
    "make_run": "train", "load_data": "data",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'resnet_core' has no attribute {name!r}")
