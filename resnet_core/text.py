"""Visitor text made safe for each place it goes: Markdown, DOT, Python source, CSV, file names.

Everything a visitor hands over (a network's name from a link, a key in an imported file, an
upload's file name) is data. Each target has its own escaping, and this module is their one home:

- `md(text)`: literal text inside Streamlit Markdown (st.markdown, st.caption, st.error, titles):
  the characters that can open syntax are backslash-escaped, so no link, image, HTML tag,
  emphasis, heading, LaTeX or Streamlit directive (":red[…]") can form and no URL is auto-linked;
  line breaks and other control characters become spaces.
- `dot_text(text)`: a label or name for graphviz that the `graphviz` package will quote as plain
  text (backslashes escaped, never read as an HTML-like "<…>" label).
- `py_text(text)`: text that may sit inside a Python string literal or docstring of generated
  code without ending it (quotes, backslashes and non-printable characters escaped).
- `csv_cell(value)`: a CSV cell that a spreadsheet will not run as a formula (= + - @ tab CR).
- `safe_filename(text)`: a download file name: letters, digits, '.', '-', '_' only, bounded length.
"""

from __future__ import annotations

import re
import unicodedata

_MD_ALWAYS = re.compile(r"([\\`*\[\]<>!&~|$:#@])")  # inline syntax, HTML, LaTeX, directives, e-mail links
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def plain(text: object, limit: int | None = None) -> str:
    """`text` on one line: control characters (newlines, tabs, NUL, …) and lone surrogates as spaces,
    cut to `limit` characters with an ellipsis."""
    s = str(text)
    s = _CONTROL.sub(" ", s)
    s = "".join(" " if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in s)
    if limit is not None and len(s) > limit:
        s = s[: max(0, limit - 1)] + "…"
    return s


def md(text: object, limit: int | None = None) -> str:
    """Literal text for Streamlit Markdown: nothing in it can become a link, image, tag or format.

    Backslash-escapes (CommonMark: an escaped ASCII punctuation character is always literal) every
    character that can open inline syntax, HTML or a directive, an '_' that is not inside a word, the
    dot of "www." (GFM's bare-domain links; "http:" loses its ':' and e-mail links their '@'), and a
    character that could start a block at the start of the line. Ordinary punctuation (., -, ', ", ?)
    stays as it is, so the text reads the same in the source.
    """
    s = _unlink(plain(text, limit))
    s = _MD_ALWAYS.sub(r"\\\1", s)
    s = re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", s)
    s = re.sub(r"(?i)(www)\.", r"\1\\.", s)
    start = re.match(r"\s*(?:[-+=>]|\d+(?=[.)]))", s)
    if start:
        at = start.end() if start.group(0).strip()[:1].isdigit() else start.end() - 1
        s = s[:at] + "\\" + s[at:]
    return s


WORD_JOINER = "\u2060"  # invisible, no line break: splits what an autolinker would read as a URL


def _unlink(s: str) -> str:
    """Break what GFM autolinks even after Markdown escapes are read (Streamlit links the rendered text):
    "scheme:/…", "mailto:", "xmpp:", "www." and e-mail addresses get an invisible word joiner."""
    s = re.sub(r"(?i)(?<=[a-z])(?=:\s*/)", WORD_JOINER, s)
    s = re.sub(r"(?i)\b(mailto|xmpp)(?=:)", "\\1" + WORD_JOINER, s)
    s = re.sub(r"(?i)(?<=www)(?=\.)", WORD_JOINER, s)
    return s.replace("@", "@" + WORD_JOINER)


def dot_text(text: object) -> str:
    """A graphviz label or name shown exactly as written (the `graphviz` package then quotes it)."""
    import graphviz

    return graphviz.escape("\n".join(plain(line) for line in str(text).split("\n")))


def py_text(text: object) -> str:
    """Text safe inside a Python string literal or docstring of generated code: shown as written,
    with backslashes, quotes and non-printable characters escaped (never ends the literal)."""
    out = []
    for ch in str(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch in "\"'":
            out.append("\\" + ch)
        elif ch.isprintable() and not 0xD800 <= ord(ch) <= 0xDFFF:
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: a string starting with = + - @ (a formula in Excel,
    LibreOffice and Google Sheets) gets a leading apostrophe. Numbers pass unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


MAX_FILENAME = 80
# Windows opens these as devices whatever their case and extension ("nul.txt", "Com1.tar.gz", "LPT9 .");
# COM0/LPT0 and the superscript digits (folded to 1-3 above) are reserved too.
WINDOWS_DEVICES = frozenset({"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$",
                             *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))})


def safe_filename(text: object, suffix: str = "", default: str = "network") -> str:
    """A file name for a download or a saved file: accents folded, anything but letters, digits, '.', '-'
    and '_' replaced by '_', no leading dots (no hidden files, no '..'), at most MAX_FILENAME characters,
    and never a Windows device name (CON, NUL, COM1, LPT9, … with any case or extension: an '_' is added
    to its first part)."""
    s = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("._-")
    s = s[:MAX_FILENAME].rstrip("._-") or default
    name = s + suffix
    stem, dot, rest = name.partition(".")
    if stem.rstrip(" .").upper() in WINDOWS_DEVICES:
        name = f"{stem}_{dot}{rest}"
    return name
