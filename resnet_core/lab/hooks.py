"""Compatibility: the probe toolbox is `resnet_core.lab.probes`. Only app/app_pages/live.py still reads
`hooks.ProbeError`; import `ProbeError` from `resnet_core.lab` instead, then delete this module."""

from resnet_core.lab.probes import ProbeError

__all__ = ["ProbeError"]
