"""load_spec: a spec from whatever a user hands over (a preset name, a file, JSON/YAML text, a dict).

It lives apart from spec.py because it knows the presets, and presets.py is built on spec.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from resnet_core.i18n import _
from resnet_core.structure.presets import get_preset, is_preset, preset_info
from resnet_core.structure.spec import ArchSpec, parse_spec_text, read_spec_file, spec_from_dict
from resnet_core.structure.spec_text import SpecError
from resnet_core.text import plain


def load_spec(source: ArchSpec | Mapping[str, Any] | str | Path) -> ArchSpec:
    """A spec from a preset name, a JSON/YAML file path, JSON/YAML text, a dict, or a spec.

    Raises SpecError with the reason (unknown preset, missing file, bad JSON/YAML, wrong types).
    """
    if isinstance(source, ArchSpec):
        return source
    if isinstance(source, Mapping):
        return spec_from_dict(source)
    if isinstance(source, Path):
        return read_spec_file(source)
    if not isinstance(source, str):
        raise SpecError(_("cannot read a spec from {kind}", kind=type(source).__name__))
    text = source.strip()
    if is_preset(text):
        return get_preset(text)
    if "\n" not in text and (text.endswith((".json", ".yaml", ".yml")) or _is_path(text)):
        return read_spec_file(text)
    if "\n" not in text and ":" not in text and "{" not in text:
        try:
            preset_info(text)
        except KeyError as e:
            raise SpecError(_("'{name}' is neither a preset nor a file. {hint}", name=plain(text, 120),
                              hint=e.args[0].split(". ", 1)[-1])) from None
    return parse_spec_text(source)


def _is_path(text: str) -> bool:
    """Whether `text` names something on disk; a name no file can have (NUL, too long) is not a path."""
    try:
        return Path(text).exists()
    except (OSError, ValueError):
        return False
