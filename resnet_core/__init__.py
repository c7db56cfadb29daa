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
    "build_model", "get_preset", "list_presets", "load_spec", "plan", "preset_info", "set_skip", "trace",
]


def __getattr__(name: str):
    # torch is imported only when a model is built, so `python -m resnet_core trace` starts fast
    if name in ("BuildError", "build_model", "set_skip"):
        from . import build
        return getattr(build, name)
    raise AttributeError(f"module 'resnet_core' has no attribute {name!r}")
