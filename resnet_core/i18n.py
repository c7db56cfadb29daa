"""Two languages: English in the code, Simplified Chinese in gettext message catalogues.

The catalogues are the standard `.po` files under `resnet_core/locale/zh/LC_MESSAGES/` (one per area of the
app: `app.po`, `learn.po`, ...), read through Babel; all of a language's files make one catalogue. Every
message a person sees is written in English and marked where it is written:

    _("Parameters: {n}", n=fmt_count(p))     translated now, then formatted with the named fields
    ngettext("{n} block", "{n} blocks", k, n=k)
    N_("a label kept in a table")            only marked (for `pybabel extract` and the completeness test);
                                              translate it where it is shown: _(LABEL)

The language is a context variable, so each Streamlit run (one per browser session, in its own thread) sets
its own (`use(...)`), and code that never sets it (the command line, the tests) speaks English. Where a run
has not set it (a Streamlit fragment's rerun starts in a fresh thread without the app's first lines), the
app's `resolver` (app/lang.py: the session's chosen language) answers. Numbers,
units and layer names (conv1, layer3.2) are never translated. A message missing from a catalogue is shown
in English, never an error; tests/test_i18n.py fails when one is missing.
"""

from __future__ import annotations

import contextvars
import functools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LANGUAGES = {"en": "English", "zh": "简体中文"}
DEFAULT = "en"
LOCALE_DIR = Path(__file__).parent / "locale"

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("resnet_explorer_language", default=None)
_resolver: Callable[[], str | None] | None = None


def set_resolver(resolver: Callable[[], str | None] | None) -> None:
    """What answers `language()` where no language was set in this context (the app: the session's)."""
    global _resolver
    _resolver = resolver


def language() -> str:
    """The language of this run: "en" or "zh"."""
    code = _current.get()
    if code is None and _resolver is not None:
        try:
            code = _resolver()
        except Exception:  # noqa: BLE001 - a resolver that cannot tell: English
            code = None
    return code if code in LANGUAGES else DEFAULT


def set_language(code: str) -> None:
    """Speak `code` from now on in this context (an unknown code: English)."""
    _current.set(code if code in LANGUAGES else DEFAULT)


@contextmanager
def use(code: str) -> Iterator[None]:
    """Speak `code` inside the block, then what was spoken before."""
    token = _current.set(code if code in LANGUAGES else DEFAULT)
    try:
        yield
    finally:
        _current.reset(token)


def pick(header: str | None) -> str:
    """The language a browser asks for (an Accept-Language header or a locale like "zh-CN"): Chinese for any
    zh variant that comes before English, else English."""
    for part in (header or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return DEFAULT


@functools.lru_cache(maxsize=4)
def catalogue(code: str) -> dict[str | tuple[str, str], str | tuple[str, ...]]:
    """msgid → translation for every `.po` file of `code` (empty and fuzzy entries left out). A plural entry
    is keyed by (singular, plural)."""
    from babel.messages.pofile import read_po
    found: dict[str | tuple[str, str], str | tuple[str, ...]] = {}
    folder = LOCALE_DIR / code / "LC_MESSAGES"
    for path in sorted(folder.glob("*.po")):
        with path.open("rb") as f:
            cat = read_po(f, locale="zh_Hans_CN" if code == "zh" else code)
        for m in cat:
            if not m.id or m.fuzzy:
                continue
            if isinstance(m.id, (tuple, list)):
                strings = tuple(s for s in (m.string or ()) if s)
                if strings:
                    found[(m.id[0], m.id[1])] = strings
            elif isinstance(m.string, str) and m.string:
                found[m.id] = m.string
    return found


def _format(text: str, fields: dict[str, object]) -> str:
    return text.format(**fields) if fields else text


def gettext(message: str, /, **fields: object) -> str:
    """`message` in this run's language, with `fields` put in its `{name}` places."""
    code = language()
    if code != DEFAULT:
        found = catalogue(code).get(message)
        if isinstance(found, str):
            message = found
    return _format(message, fields)


_ = gettext


def ngettext(singular: str, plural: str, count: int, /, **fields: object) -> str:
    """The singular or plural of a message (English: n == 1 is singular; Chinese has one form)."""
    code = language()
    if code != DEFAULT:
        found = catalogue(code).get((singular, plural))
        if isinstance(found, tuple) and found:
            return _format(found[0], fields)
    return _format(singular if count == 1 else plural, fields)


def N_(message: str) -> str:
    """Mark `message` for the catalogue without translating it here (module-level tables, labels kept as
    keys): translate it where it is shown, with `_(...)`."""
    return message


_FIELD = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)(?:[:!][^{}]*)?\}(?!\})")


def fields_of(text: str) -> set[str]:
    """The `{name}` places of a message (doubled braces are literal)."""
    return set(_FIELD.findall(text))
