"""The one home of the small text helpers every room uses: numbers, bytes, "did you mean", text tables."""

from __future__ import annotations

import difflib
import math
import unicodedata
from collections.abc import Iterable, Sequence

from resnet_core.i18n import _


def _width(text: str) -> int:
    """Columns a text takes in a monospaced terminal: a Chinese character takes two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def fmt_bytes(n: int | float | None) -> str:
    """1536 → "1.5 KiB"; None → "—" (binary units, one decimal)."""
    if n is None:
        return "—"
    for div, suffix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= div:
            return f"{n / div:.1f} {suffix}"
    return f"{int(n)} B"


def fmt_count(n: int | float | None, unit: str = "") -> str:
    """11689512 → "11.69 M" (decimal prefixes k, M, G, T, two decimals); small numbers stay exact; None → "—"."""
    if n is None:
        return "—"
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.2f} {suffix}{unit}"
    return f"{n:g} {unit}".rstrip() if isinstance(n, float) else f"{n} {unit}".rstrip()


def fmt_sig(v: float | None, digits: int = 3, missing: str = "—", nan: str = "NaN",
            inf: tuple[str, str] = ("∞", "−∞")) -> str:
    """A number for a sentence or a table: `digits` significant digits, exactly "0" for zero; None →
    `missing`, NaN → `nan`, ±Inf → `inf` (each place says these in its own words)."""
    if v is None:
        return missing
    if math.isnan(v):
        return nan
    if math.isinf(v):
        return inf[0] if v > 0 else inf[1]
    return "0" if v == 0 else f"{v:.{digits}g}"


def fmt_pct(v: float | None, decimals: int = 1, missing: str = "—", sep: str = "") -> str:
    """A fraction as a percentage: 0.9671 → "96.7%" (sep=" ": "96.7 %"); None or NaN/Inf → `missing`."""
    if v is None or not math.isfinite(v):
        return missing
    return f"{100 * v:.{decimals}f}{sep}%"


def fmt_int(v: int, exact_digits: int = 15) -> str:
    """An integer of any size for a message: exact with separators up to `exact_digits` digits ("1,234"),
    then three significant digits ("1.23e+20"), and past 300 digits only its length ("a 5,001-digit
    number"), never calling str() on it (Python refuses that past 4,300 digits)."""
    n = abs(v)
    if n < 10**exact_digits:
        return f"{v:,}"
    if n < 10**300:
        return f"{float(v):.3g}"
    digits = int(n.bit_length() * 0.30102999566398120) + 1  # log10(2): the digit count, or one more
    if n < 10 ** (digits - 1):
        digits -= 1
    return _("a {n:,}-digit number", n=digits)


def listing(items: Iterable[str]) -> str:
    """Names in a sentence: "a, b, c" (Chinese: "a、b、c", so that option names do not read as English words)."""
    return _(", ").join(items)


def did_you_mean(value: str, choices: Iterable[str], n: int = 1) -> list[str]:
    """Up to `n` of `choices` close to `value` (difflib's ratio ≥ 0.6), best first."""
    return difflib.get_close_matches(str(value), list(choices), n=n)


def text_table(header: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[int] = ()) -> list[str]:
    """Lines of a plain-text table: a header, a rule of ─, one line per row; columns in `right` align right."""
    rows = [[str(c) for c in r] for r in rows]
    header = [str(h) for h in header]
    right = set(right)
    widths = [max(_width(x) for x in col) for col in zip(header, *rows, strict=True)] if rows else \
        [_width(h) for h in header]

    def pad(c: str, w: int, at_right: bool) -> str:
        fill = " " * (w - _width(c))
        return fill + c if at_right else c + fill

    def line(cells: Sequence[str]) -> str:
        return "  ".join(pad(c, w, i in right) for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return [line(header), line(["─" * w for w in widths])] + [line(r) for r in rows]
