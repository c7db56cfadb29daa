"""load_spec: a spec from whatever a user hands over (a preset name, a file, JSON/YAML text, a dict).

It lives apart from spec.py because it knows the presets, and presets.py is built on spec.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
        raise SpecError(f"cannot read a spec from {type(source).__name__}")
    text = source.strip()
    if is_preset(text):
        return get_preset(text)
    if "\n" not in text and (text.endswith((".json", ".yaml", ".yml")) or _is_path(text)):
        return read_spec_file(text)
    if "\n" not in text and ":" not in text and "{" not in text:
        try:
            preset_info(text)
        except KeyError as e:
            raise SpecError(f"'{plain(text, 120)}' is neither a preset nor a file. {e.args[0].split('. ', 1)[-1]}") from None
    return parse_spec_text(source)


def _is_path(text: str) -> bool:
    """Whether `text` names something on disk; a name no file can have (NUL, too long) is not a path."""
    try:
        return Path(text).exists()
    except (OSError, ValueError):
        return False
