"""Spec text → plain Python data, bounded BEFORE it is parsed: a few kilobytes of JSON or YAML must never
ask for unbounded memory or time (deep nesting, YAML alias expansion, thousand-digit integers, NaN).

Also the error every spec reader raises (`SpecError`, with its located `FieldProblem`s) and the rule
for a network's name. `spec.py` builds specs from what these functions return.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from resnet_core.errors import ExplorerError
from resnet_core.formatting import did_you_mean, fmt_int, listing
from resnet_core.i18n import N_, _


@dataclass(frozen=True)
class FieldProblem:
    where: str  # field path, e.g. "stages[1].width"
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class SpecError(ExplorerError):
    """A text or file that is not a spec. Carries every located problem found."""

    def __init__(self, problems: list[FieldProblem] | str, source: str | None = None):
        if isinstance(problems, str):
            problems = [FieldProblem("", problems)]
        self.problems = problems
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(prefix + "; ".join(str(p) for p in problems))

    def lines(self) -> list[str]:
        prefix = f"{self.source}: " if self.source else ""
        return [prefix + str(p) for p in self.problems]


# Bounds on a spec's text, checked BEFORE it is parsed into Python objects: a few kilobytes must never
# ask for unbounded memory or time (deep nesting, YAML alias expansion, thousand-digit integers).
MAX_SPEC_DEPTH = 16  # nesting of mappings and lists (a spec needs 3: spec → stages → stage)
MAX_SPEC_NODES = 20_000  # values and keys in all (a 64-stage spec has about 1,000)
MAX_SPEC_STAGES = 1_000  # stages listed (the planner plans at most 64 and says so, located)
MAX_SPEC_INT = 2 ** 63 - 1  # any integer in a spec; larger ones are refused by name, never converted
MAX_NUMBER_CHARS = 40  # characters of one number in the text (Python refuses str↔int past 4,300 digits)
MAX_NAME_CHARS = 200  # a network's name


def check_name(name: str) -> str | None:
    """Why `name` cannot be a network's name (None when it can): too long, or holding control
    characters (line breaks, NUL) or lone surrogates, which no file, page or code could show as written."""
    if len(name) > MAX_NAME_CHARS:
        return _("the name is {n:,} characters long; a name has at most {limit}", n=len(name), limit=MAX_NAME_CHARS)
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch in _BIDI_CONTROLS:
            return _("the name holds the control character U+{ch:04X}; use printable characters only", ch=ord(ch))
    return None


# the bidirectional controls reorder the text around them ("Trojan Source"): a name could read one way
# on the page and another in a file, a terminal or generated code
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_CHARS:
        raise _TextLimit(_("an integer with {n:,} digits; a spec's numbers have at most {limit} digits",
                           n=len(text.lstrip("-")), limit=MAX_NUMBER_CHARS))
    return int(text)


def _json_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _TextLimit(_("a number written with {n:,} characters; a spec's numbers have at most {limit}",
                           n=len(text), limit=MAX_NUMBER_CHARS))
    value = float(text)
    if not math.isfinite(value):
        raise _TextLimit(_("the number {text} is too large (it overflows to infinity)", text=text))
    return value


def _json_constant(text: str) -> float:
    raise _TextLimit(_("{text} is not a number JSON allows; a spec's numbers are finite", text=text))


class _TextLimit(Exception):
    """A bound on the text was passed; the message names the limit and the value."""


# a string, or an unterminated one up to the end: the closing quote is optional, so every match succeeds
# at its first try (never the quadratic retry from each escaped quote of '"\\"\\"\\"…')
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)


def load_json(text: str, source: str | None = None) -> Any:
    """json.loads with the bounds above checked first (depth and size from the bracket skeleton)."""
    skeleton = _JSON_STRING.sub('""', text)
    depth = deepest = 0
    for ch in re.sub(r"[^\[\]{}]", "", skeleton):
        depth += 1 if ch in "[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > MAX_SPEC_DEPTH:
                raise SpecError(_("the JSON nests more than {limit} levels deep; a spec needs 3",
                                  limit=MAX_SPEC_DEPTH), source)
    nodes = skeleton.count(",") + skeleton.count(":") + 1
    if nodes > MAX_SPEC_NODES:
        raise SpecError(_("the JSON holds about {nodes:,} values; a spec holds at most {limit:,}",
                          nodes=nodes, limit=MAX_SPEC_NODES), source)
    try:
        return json.loads(text, parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant)
    except _TextLimit as e:
        raise SpecError(_("not a spec: {reason}", reason=e), source) from None
    except json.JSONDecodeError as e:
        raise SpecError(_("not valid JSON: {msg} at line {lineno}, column {colno}",
                          msg=e.msg, lineno=e.lineno, colno=e.colno), source) from None
    except (ValueError, RecursionError) as e:  # anything else json refuses, said in one line
        raise SpecError(_("not valid JSON: {value}",
                          value=str(e).splitlines()[0][:120] if str(e) else type(e).__name__),
                        source) from None


def _yaml_loader() -> type:  # CSafeLoader (libyaml) or the pure-Python SafeLoader
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_yaml_events(text: str, source: str | None) -> None:
    """Walk the YAML event stream (no Python objects built) and refuse, before loading: aliases (and so
    merge keys and "billion laughs" expansion), nesting past MAX_SPEC_DEPTH, more than MAX_SPEC_NODES
    values, and numbers written with more than MAX_NUMBER_CHARS characters."""
    resolver = yaml.resolver.Resolver()
    depth = nodes = 0
    numeric = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    for ev in yaml.parse(text, Loader=_yaml_loader()):
        where = _(" at line {line}, column {column}",
                  line=ev.start_mark.line + 1, column=ev.start_mark.column + 1) if ev.start_mark else ""
        if isinstance(ev, yaml.AliasEvent):
            raise SpecError(_("the YAML uses an alias (*{anchor}){where}; a spec spells every value out (aliases, "
                              "anchors and '<<' merge keys are not accepted)",
                              anchor=ev.anchor, where=where), source)
        if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            nodes += 1
            if depth > MAX_SPEC_DEPTH:
                raise SpecError(_("the YAML nests more than {limit} levels deep{where}; a spec needs 3",
                                  limit=MAX_SPEC_DEPTH, where=where),
                                source)
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(ev, yaml.ScalarEvent):
            nodes += 1
            if (len(ev.value) > MAX_NUMBER_CHARS and not ev.style and ev.tag is None
                    and resolver.resolve(yaml.ScalarNode, ev.value, (True, False)) in numeric):
                raise SpecError(_("a number written with {n:,} characters{where}; a spec's numbers have at most "
                                  "{limit}", n=len(ev.value), where=where, limit=MAX_NUMBER_CHARS), source)
            if ev.tag is not None and ev.tag.lstrip("!").replace("tag:yaml.org,2002:", "") in ("int", "float") \
                    and len(ev.value) > MAX_NUMBER_CHARS:
                raise SpecError(_("a number written with {n:,} characters{where}; a spec's numbers have at most "
                                  "{limit}", n=len(ev.value), where=where, limit=MAX_NUMBER_CHARS), source)
        if nodes > MAX_SPEC_NODES:
            raise SpecError(_("the YAML holds more than {limit:,} values; a spec holds far fewer",
                              limit=MAX_SPEC_NODES), source)


def load_yaml(text: str, source: str | None = None) -> Any:
    """yaml safe loading with the bounds above checked first, on the event stream."""
    try:
        _check_yaml_events(text, source)
        return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a safe loader (CSafeLoader or SafeLoader)
    except SpecError:
        raise
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = _(" at line {line}, column {column}", line=mark.line + 1, column=mark.column + 1) if mark else ""
        what = getattr(e, "problem", None) or _("unreadable")
        raise SpecError(_("not valid YAML: {what}{at}", what=what, at=at), source) from None
    except (ValueError, RecursionError, OverflowError) as e:
        raise SpecError(_("not valid YAML: {value}",
                          value=str(e).splitlines()[0][:120] if str(e) else type(e).__name__),
                        source) from None


# --------------------------------------------------------------------------------------------
# reading a parsed mapping field by field (spec.py)
# --------------------------------------------------------------------------------------------

_TYPE_NAMES = {int: N_("an integer"), float: N_("a number"), bool: N_("true or false"), str: N_("a string")}


class Reader:
    """Reads one mapping against a dataclass's fields, collecting located problems."""

    def __init__(self, problems: list[FieldProblem]):
        self.problems = problems

    def problem(self, where: str, message: str) -> None:
        self.problems.append(FieldProblem(where, message))

    def unknown_keys(self, data: Mapping[str, Any], known: list[str], where: str) -> None:
        for key in data:
            if key not in known:
                close = did_you_mean(str(key), known)
                hint = (_("; did you mean '{close}'?", close=close[0]) if close
                        else _("; known keys: {keys}", keys=listing(known)))
                self.problem(join(where, str(key)), _("unknown key '{key}'{hint}", key=key, hint=hint))

    def value(self, data: Mapping[str, Any], key: str, kind: type, where: str, default: Any,
              optional: bool = False) -> Any:
        if key not in data:
            return default
        v = data[key]
        path = join(where, key)
        if v is None and optional:
            return None
        if kind in (int, float) and isinstance(v, float) and not math.isfinite(v):
            self.problem(path, _("expected a finite number, got {v}", v=v))
            return default
        if kind in (int, float) and isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_SPEC_INT:
            self.problem(path, _("{v} is out of range; a spec's numbers lie within ±{limit:,}",
                                 v=fmt_int(v, 30), limit=MAX_SPEC_INT))
            return default
        if kind is float and isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        if kind is int and isinstance(v, float) and v.is_integer():
            if abs(v) > MAX_SPEC_INT:
                self.problem(path, _("the number {v:g} is out of range; a spec's numbers lie within ±{limit:,}",
                                     v=v, limit=MAX_SPEC_INT))
                return default
            return int(v)
        if kind is bool and isinstance(v, bool):
            return v
        if kind is not bool and isinstance(v, kind) and not isinstance(v, bool):
            return v
        self.problem(path, _("expected {kind}, got {v}", kind=_(_TYPE_NAMES[kind]), v=describe(v)))
        return default


def join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def describe(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return _("a list")
    if isinstance(v, Mapping):
        return _("a mapping")
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."
