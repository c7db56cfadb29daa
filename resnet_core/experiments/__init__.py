"""The experiments: published results about residual networks, reproduced and judged.

Five experiments (NAMES): `signal` (De & Smith 2020, signal propagation at init), `shatter` (Balduzzi et
al. 2017, shattered gradients), `erf` (Luo et al. 2016, effective receptive field), `lesion` (Veit et al.
2016, deleting blocks of a trained net) and `landscape` (Li et al. 2018, loss slices). Each module has a
settings dataclass (defaults and bounds in `settings`, without torch), `cost(settings, …) -> Cost` (the
memory at its peak and the multiply-adds in all, estimated before anything runs) and `run(settings, …) ->
ExperimentResult`, which refuses a run that does not fit (device.MemoryGuardError, device.WorkLimitError:
the numbers and a smaller setting that fits), books its memory while it runs, and ends an allocation
failure with one line (device.OutOfMemoryError).

Import from here: `from resnet_core.experiments import erf, ErfSettings, ExperimentError`. The names
load on first use (the experiments import torch; `settings` does not).
"""

from __future__ import annotations

__all__ = [
    "NAMES", "Cost", "ErfSettings", "ExperimentError", "ExperimentResult", "LandscapeSettings", "LesionSettings",
    "PairSettings", "ShatterSettings", "SignalSettings", "Verdict", "admit", "admitted", "erf", "landscape",
    "lesion", "rows_csv", "settings", "shatter", "signal",
]

_HOME = {
    "common": ("NAMES", "Cost", "ExperimentError", "ExperimentResult", "Verdict", "admit", "admitted", "rows_csv"),
    "settings": ("ErfSettings", "LandscapeSettings", "LesionSettings", "ShatterSettings", "SignalSettings"),
    "pair": ("PairSettings",),
}
_WHERE = {name: module for module, names in _HOME.items() for name in names}
_MODULES = {"erf", "landscape", "lesion", "settings", "shatter", "signal", "common", "pair", "trained"}


def __getattr__(name: str):
    import importlib
    if name in _WHERE:
        return getattr(importlib.import_module(f"resnet_core.experiments.{_WHERE[name]}"), name)
    if name in _MODULES:
        return importlib.import_module(f"resnet_core.experiments.{name}")
    raise AttributeError(f"module 'resnet_core.experiments' has no attribute {name!r}")
