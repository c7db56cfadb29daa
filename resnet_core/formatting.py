"""The one home of the small text helpers every room uses: bytes, "did you mean", text tables."""

from __future__ import annotations

import difflib
from typing import Iterable, Sequence


def fmt_bytes(n: int | float | None) -> str:
    """1536 → "1.5 KiB"; None → "—" (binary units, one decimal)."""
    if n is None:
        return "—"
    for div, suffix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= div:
            return f"{n / div:.1f} {suffix}"
    return f"{int(n)} B"


def did_you_mean(value: str, choices: Iterable[str], n: int = 1) -> list[str]:
    """Up to `n` of `choices` close to `value` (difflib's ratio ≥ 0.6), best first."""
    return difflib.get_close_matches(str(value), list(choices), n=n)


def text_table(header: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[int] = ()) -> list[str]:
    """Lines of a plain-text table: a header, a rule of ─, one line per row; columns in `right` align right."""
    rows = [[str(c) for c in r] for r in rows]
    header = [str(h) for h in header]
    right = set(right)
    widths = [max(len(x) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(header), line(["─" * w for w in widths])] + [line(r) for r in rows]
