"""ArchSpec: the one user-level description of a residual network.

A spec is plain, hashable data (frozen dataclasses and tuples), so it can key caches and travel
in URLs. It says *what* the network is; `plan.py` works out every layer and shape from it.

Loading is strict about *form* and lenient about *values*:
- form errors (unknown keys, wrong types, bad JSON/YAML) raise `SpecError`, each located by its
  field path ("stages[1].width") and, for unknown keys, with the closest known name;
- value errors (a width of 0, an unknown block type, shapes that cannot meet) are a normal state
  of a network being edited: the spec loads, and the plan reports them as located errors.
"""

from __future__ import annotations

import base64
import json
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, TypedDict, get_args

import yaml

from resnet_core.formatting import did_you_mean, fmt_int
from resnet_core.structure.spec_text import (
    MAX_SPEC_INT,
    MAX_SPEC_STAGES,
    FieldProblem,
    SpecError,
    check_name,
    load_json,
    load_yaml,
)
from resnet_core.text import plain

SPEC_VERSION = 1

# The vocabularies, each defined once as a Literal type (what type checkers see) and read back as a tuple
# of its words (what loops, menus and checks use). A spec read from text may hold any string in these fields:
# it loads, and the plan reports a word outside the vocabulary as a located error ("did you mean …?").
BlockType = Literal["basic", "bottleneck", "preact_basic", "preact_bottleneck"]
StemType = Literal["imagenet", "cifar", "custom"]
PoolType = Literal["max", "avg", "none"]
ShortcutOption = Literal["A", "B", "C", "identity"]  # He et al. 2015 §3.3, and the bare identity that breaks
NormName = Literal["batch", "none"]
ActivationName = Literal["relu", "leaky_relu", "gelu", "silu"]
InitName = Literal["kaiming_fan_out", "kaiming_fan_in", "xavier", "pytorch_default"]

BLOCK_TYPES: tuple[BlockType, ...] = get_args(BlockType)
STEM_TYPES: tuple[StemType, ...] = get_args(StemType)
POOL_TYPES: tuple[PoolType, ...] = get_args(PoolType)
SHORTCUTS: tuple[ShortcutOption, ...] = get_args(ShortcutOption)
NORMS: tuple[NormName, ...] = get_args(NormName)
ACTIVATIONS: tuple[ActivationName, ...] = get_args(ActivationName)
INITS: tuple[InitName, ...] = get_args(InitName)

SHORTCUT_HELP: dict[ShortcutOption, str] = {
    "A": "zero-padded identity: no parameters; subsample and pad channels with zeros where the shape changes",
    "B": "1×1 projection (conv + norm) only where the shape changes, identity elsewhere",
    "C": "1×1 projection (conv + norm) on every block",
    "identity": "bare identity x, never padded or projected: breaks wherever the shape changes",
}

class StemNumbers(TypedDict):
    """A stem's effective numbers (`Stem.resolved()`)."""
    channels: int
    kernel: int
    stride: int
    padding: int
    pool: PoolType
    pool_kernel: int
    pool_stride: int
    pool_padding: int


class _StemPreset(TypedDict):
    kernel: int
    stride: int
    padding: int
    pool: PoolType
    pool_kernel: int
    pool_stride: int


# Stem presets: what "imagenet" and "cifar" mean. "custom" reads the Stem fields.
_STEM_PRESETS: dict[str, _StemPreset] = {
    "imagenet": _StemPreset(kernel=7, stride=2, padding=3, pool="max", pool_kernel=3, pool_stride=2),
    "cifar": _StemPreset(kernel=3, stride=1, padding=1, pool="none", pool_kernel=3, pool_stride=2),
}


@dataclass(frozen=True)
class Stem:
    type: StemType = "imagenet"  # imagenet: 7×7/2 conv + 3×3/2 max-pool; cifar: 3×3/1 conv, no pool; custom: the fields below
    channels: int = 64  # output channels of the stem conv
    kernel: int = 7  # custom only: conv kernel size
    stride: int = 2  # custom only: conv stride
    padding: int | None = None  # custom only: conv padding (None: kernel // 2, "same" for odd kernels)
    pool: PoolType = "max"  # custom only: max | avg | none, the pooling after the conv
    pool_kernel: int = 3  # custom only: pooling window
    pool_stride: int = 2  # custom only: pooling stride

    def __post_init__(self) -> None:
        # a named stem is canonical: its numbers are the name's, so equal stems compare equal
        for key, value in _STEM_PRESETS.get(self.type, {}).items():
            object.__setattr__(self, key, value)

    def resolved(self) -> StemNumbers:
        """The effective numbers: the named stem's for imagenet/cifar, the fields for custom."""
        padding = self.kernel // 2 if self.padding is None else self.padding
        return StemNumbers(channels=self.channels, kernel=self.kernel, stride=self.stride, padding=padding,
                           pool=self.pool, pool_kernel=self.pool_kernel, pool_stride=self.pool_stride,
                           pool_padding=self.pool_kernel // 2)


@dataclass(frozen=True)
class Stage:
    block: BlockType = "basic"  # basic | bottleneck | preact_basic | preact_bottleneck
    blocks: int = 2  # number of residual blocks in the stage
    width: int = 64  # "planes": the block's base width; its output is width × expansion
    stride: int = 1  # stride of the stage's first block (later blocks use 1)
    groups: int = 1  # grouped 3×3 convs (ResNeXt cardinality)
    width_per_group: int = 64  # ResNeXt/Wide bottleneck width: inner = int(width·wpg/64)·groups
    expansion: int | None = None  # output = width × expansion; None: 1 for basic, 4 for bottleneck

    @property
    def expansion_or_default(self) -> int:
        if self.expansion is not None:
            return self.expansion
        return 4 if self.block.endswith("bottleneck") else 1


@dataclass(frozen=True)
class ArchSpec:
    name: str = "custom"  # shown in the app and in generated code
    in_channels: int = 3  # input image channels
    input_size: tuple[int, int] = (224, 224)  # input height and width
    stem: Stem = field(default_factory=Stem)  # the layers before the first stage
    stages: tuple[Stage, ...] = ()  # the residual stages, in order (torchvision's layer1, layer2, …)
    shortcut: ShortcutOption = "B"  # A zero-pad | B project where shape changes | C project always | identity (breaks)
    skip: bool = True  # False: the paper's plain net, the same layers and no shortcut at all
    norm: NormName = "batch"  # batch | none (without norm, convs get a bias)
    activation: ActivationName = "relu"  # relu | leaky_relu | gelu | silu
    zero_init_residual: bool = False  # zero the last norm's γ (or last conv) of each residual branch
    stride_in_1x1: bool = False  # bottlenecks: stride on the first 1×1 (the paper's v1), not the 3×3 (torchvision's v1.5)
    num_classes: int = 1000  # outputs of the final fully connected layer
    init: InitName = "kaiming_fan_out"  # kaiming_fan_out (torchvision) | kaiming_fan_in | xavier | pytorch_default
    bn_momentum: float = 0.1  # batch norm running-statistics momentum
    bn_eps: float = 1e-5  # batch norm epsilon

    # ---- conveniences -------------------------------------------------------------------
    def with_stage(self, index: int, **changes: Any) -> ArchSpec:
        stages = list(self.stages)
        stages[index] = replace(stages[index], **changes)
        return replace(self, stages=tuple(stages))

    def replace(self, **changes: Any) -> ArchSpec:
        return replace(self, **changes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, *self.input_size)

    # ---- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return spec_to_dict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# --------------------------------------------------------------------------------------------
# dict <-> spec
# --------------------------------------------------------------------------------------------

def _stem_to_dict(stem: Stem) -> dict[str, Any]:
    out: dict[str, Any] = {"type": stem.type, "channels": stem.channels}
    if stem.type not in _STEM_PRESETS:
        out.update(kernel=stem.kernel, stride=stem.stride, padding=stem.padding, pool=stem.pool,
                   pool_kernel=stem.pool_kernel, pool_stride=stem.pool_stride)
    return out


def _stage_to_dict(stage: Stage) -> dict[str, Any]:
    return {f.name: getattr(stage, f.name) for f in fields(Stage)}


def spec_to_dict(spec: ArchSpec) -> dict[str, Any]:
    return {
        "version": SPEC_VERSION,
        "name": spec.name,
        "in_channels": spec.in_channels,
        "input_size": list(spec.input_size),
        "stem": _stem_to_dict(spec.stem),
        "stages": [_stage_to_dict(s) for s in spec.stages],
        "shortcut": spec.shortcut,
        "skip": spec.skip,
        "norm": spec.norm,
        "activation": spec.activation,
        "zero_init_residual": spec.zero_init_residual,
        "stride_in_1x1": spec.stride_in_1x1,
        "num_classes": spec.num_classes,
        "init": spec.init,
        "bn_momentum": spec.bn_momentum,
        "bn_eps": spec.bn_eps,
    }


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


class _Reader:
    """Reads one mapping against a dataclass's fields, collecting located problems."""

    def __init__(self, problems: list[FieldProblem]):
        self.problems = problems

    def problem(self, where: str, message: str) -> None:
        self.problems.append(FieldProblem(where, message))

    def unknown_keys(self, data: Mapping[str, Any], known: list[str], where: str) -> None:
        for key in data:
            if key not in known:
                close = did_you_mean(str(key), known)
                hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"
                self.problem(_join(where, str(key)), f"unknown key '{key}'{hint}")

    def value(self, data: Mapping[str, Any], key: str, kind: type, where: str, default: Any,
              optional: bool = False) -> Any:
        if key not in data:
            return default
        v = data[key]
        path = _join(where, key)
        if v is None and optional:
            return None
        if kind in (int, float) and isinstance(v, float) and not math.isfinite(v):
            self.problem(path, f"expected a finite number, got {v}")
            return default
        if kind in (int, float) and isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_SPEC_INT:
            self.problem(path, f"{fmt_int(v, 30)} is out of range; a spec's numbers lie within "
                               f"±{MAX_SPEC_INT:,}")
            return default
        if kind is float and isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        if kind is int and isinstance(v, float) and v.is_integer():
            if abs(v) > MAX_SPEC_INT:
                self.problem(path, f"the number {v:g} is out of range; a spec's numbers lie within ±{MAX_SPEC_INT:,}")
                return default
            return int(v)
        if kind is bool and isinstance(v, bool):
            return v
        if kind is not bool and isinstance(v, kind) and not isinstance(v, bool):
            return v
        self.problem(path, f"expected {_TYPE_NAMES[kind]}, got {_describe(v)}")
        return default


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _describe(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, Mapping):
        return "a mapping"
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _read_stem(data: Any, r: _Reader) -> Stem:
    if not isinstance(data, Mapping):
        r.problem("stem", f"expected a mapping, got {_describe(data)}")
        return Stem()
    keys = [f.name for f in fields(Stem)]
    r.unknown_keys(data, keys, "stem")
    d = Stem()
    stem_type = r.value(data, "type", str, "stem", d.type)
    values = {"type": stem_type, "channels": r.value(data, "channels", int, "stem", d.channels)}
    custom_keys = [k for k in keys if k not in ("type", "channels")]
    if stem_type in _STEM_PRESETS:
        for k in custom_keys:
            if k in data:
                want = _STEM_PRESETS[stem_type].get(k)
                r.problem(f"stem.{k}", f"only for stem type 'custom' (the {stem_type} stem uses {want}); "
                                       "set type: custom to change it")
    else:
        for k in custom_keys:
            default = getattr(d, k)
            kind = str if k == "pool" else int
            values[k] = r.value(data, k, kind, "stem", default, optional=(k == "padding"))
    return Stem(**values)


def _read_stage(data: Any, i: int, r: _Reader) -> Stage:
    where = f"stages[{i}]"
    if not isinstance(data, Mapping):
        r.problem(where, f"expected a mapping, got {_describe(data)}")
        return Stage()
    keys = [f.name for f in fields(Stage)]
    r.unknown_keys(data, keys, where)
    d = Stage()
    return Stage(
        block=r.value(data, "block", str, where, d.block),
        blocks=r.value(data, "blocks", int, where, d.blocks),
        width=r.value(data, "width", int, where, d.width),
        stride=r.value(data, "stride", int, where, d.stride),
        groups=r.value(data, "groups", int, where, d.groups),
        width_per_group=r.value(data, "width_per_group", int, where, d.width_per_group),
        expansion=r.value(data, "expansion", int, where, d.expansion, optional=True),
    )


def spec_from_dict(data: Any, source: str | None = None) -> ArchSpec:
    """Build an ArchSpec from parsed JSON/YAML, or raise SpecError naming every problem."""
    if not isinstance(data, Mapping):
        raise SpecError(f"a spec is a mapping of fields, got {_describe(data)}", source)
    problems: list[FieldProblem] = []
    r = _Reader(problems)
    keys = ["version"] + [f.name for f in fields(ArchSpec)]
    r.unknown_keys(data, keys, "")
    version = r.value(data, "version", int, "", SPEC_VERSION)
    if version != SPEC_VERSION:
        r.problem("version", f"this is ResNet Explorer spec version {SPEC_VERSION}; got {version}")
    d = ArchSpec()

    size_raw = data.get("input_size", list(d.input_size))
    input_size = d.input_size
    if isinstance(size_raw, int) and not isinstance(size_raw, bool) and abs(size_raw) > MAX_SPEC_INT:
        r.problem("input_size", f"{fmt_int(size_raw, 30)} is out of range; a spec's numbers lie "
                                f"within ±{MAX_SPEC_INT:,}")
    elif isinstance(size_raw, int) and not isinstance(size_raw, bool):
        input_size = (size_raw, size_raw)
    elif (isinstance(size_raw, (list, tuple)) and len(size_raw) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) for v in size_raw)):
        if any(abs(v) > MAX_SPEC_INT for v in size_raw):
            r.problem("input_size", f"a number out of range; a spec's numbers lie within ±{MAX_SPEC_INT:,}")
        else:
            input_size = (size_raw[0], size_raw[1])
    else:
        r.problem("input_size", f"expected an integer or [height, width], got {_describe(size_raw)}")

    stages_raw = data.get("stages", [])
    stages: list[Stage] = []
    if isinstance(stages_raw, (list, tuple)) and len(stages_raw) > MAX_SPEC_STAGES:
        r.problem("stages", f"{len(stages_raw):,} stages; a spec lists at most {MAX_SPEC_STAGES:,}")
    elif isinstance(stages_raw, (list, tuple)):
        stages = [_read_stage(s, i, r) for i, s in enumerate(stages_raw)]
    else:
        r.problem("stages", f"expected a list of stages, got {_describe(stages_raw)}")

    name = r.value(data, "name", str, "", d.name)
    name_problem = check_name(name)
    if name_problem:
        r.problem("name", name_problem)
        name = d.name
    spec = ArchSpec(
        name=name,
        in_channels=r.value(data, "in_channels", int, "", d.in_channels),
        input_size=input_size,
        stem=_read_stem(data["stem"], r) if "stem" in data else d.stem,
        stages=tuple(stages),
        shortcut=r.value(data, "shortcut", str, "", d.shortcut),
        skip=r.value(data, "skip", bool, "", d.skip),
        norm=r.value(data, "norm", str, "", d.norm),
        activation=r.value(data, "activation", str, "", d.activation),
        zero_init_residual=r.value(data, "zero_init_residual", bool, "", d.zero_init_residual),
        stride_in_1x1=r.value(data, "stride_in_1x1", bool, "", d.stride_in_1x1),
        num_classes=r.value(data, "num_classes", int, "", d.num_classes),
        init=r.value(data, "init", str, "", d.init),
        bn_momentum=r.value(data, "bn_momentum", float, "", d.bn_momentum),
        bn_eps=r.value(data, "bn_eps", float, "", d.bn_eps),
    )
    if problems:
        raise SpecError(problems, source)
    return spec


# --------------------------------------------------------------------------------------------
# text, files, URLs
# --------------------------------------------------------------------------------------------

def parse_spec_text(text: str, source: str | None = None) -> ArchSpec:
    """Parse JSON or YAML text (JSON is YAML, but JSON errors read better from json)."""
    if not isinstance(text, str):
        raise SpecError(f"expected text, got {type(text).__name__}", source)
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"the text is {len(text):,} characters; a spec is at most {MAX_SPEC_BYTES:,}", source)
    stripped = text.lstrip()
    if not stripped:
        raise SpecError("the text is empty", source)
    data = load_json(text, source) if stripped.startswith("{") else load_yaml(text, source)
    return spec_from_dict(data, source)


MAX_SPEC_BYTES = 1_000_000


def read_spec_file(path: str | Path) -> ArchSpec:
    p = Path(path)
    shown = plain(str(p), 200)  # a path in a message: one line, bounded
    try:
        p.stat()
    except FileNotFoundError:
        raise SpecError(f"no such file: {shown}") from None
    except (OSError, ValueError) as e:  # too long, a NUL byte, no permission, a loop
        reason = getattr(e, "strerror", None) or str(e)
        raise SpecError(f"cannot read {shown}: {reason}") from None
    if not p.exists():
        raise SpecError(f"no such file: {shown}")
    if p.is_dir():
        raise SpecError(f"{shown} is a folder, not a spec file")
    if not p.is_file():  # a device, a pipe, a socket: never read something that may not end
        raise SpecError(f"{shown} is not a regular file (a device or a pipe?); give a JSON or YAML spec file")
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_SPEC_BYTES + 1)
    except OSError as e:
        raise SpecError(f"cannot read {shown}: {e.strerror}") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"{shown} is larger than 1 MB; a spec is a small JSON/YAML file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"{shown} is not UTF-8 text (is it a binary file?)") from None
    return parse_spec_text(text, source=shown)


def to_url_token(spec: ArchSpec) -> str:
    """A compact, URL-safe token: zlib-compressed minified JSON in base64url."""
    raw = json.dumps(spec.to_dict(), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


def from_url_token(token: str) -> ArchSpec:
    """Inverse of to_url_token; SpecError for anything tampered or truncated."""
    if not token:
        raise SpecError("the link's network token is empty")
    if len(token) > MAX_TOKEN_CHARS:
        raise SpecError(f"the link's network token is {len(token):,} characters; a link carries at most "
                        f"{MAX_TOKEN_CHARS:,}")
    try:
        d = zlib.decompressobj()
        raw = d.decompress(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)), MAX_TOKEN_JSON_BYTES + 1)
        if len(raw) > MAX_TOKEN_JSON_BYTES:
            raise SpecError(f"the link's network token expands past {MAX_TOKEN_JSON_BYTES:,} bytes; "
                            "a spec is far smaller")
        text = raw.decode("utf-8")
    except SpecError:
        raise
    except Exception:  # noqa: BLE001 - any decoding failure means the same thing to the user
        raise SpecError("the link's network token is damaged (it does not decode to a spec)") from None
    if not text.lstrip().startswith("{"):
        raise SpecError("the link's network token is damaged (it does not decode to a spec)")
    return spec_from_dict(load_json(text, "link"), source="link")


MAX_TOKEN_JSON_BYTES = 200_000  # a link's spec, decompressed (a 64-stage spec is about 6 KB)
MAX_TOKEN_CHARS = 20_000  # a link's token, before decoding


def spec_key(spec: ArchSpec) -> str:
    """A stable text key (minified JSON) for caches and comparisons."""
    return json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))

