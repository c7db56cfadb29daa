"""Line charts drawn on the server as one inline SVG: no chart runtime in the browser.

A Vega-Lite chart costs the browser 0.3–0.5 CPU s to compile and draw (three of them were half of a Live lab
view's cost; benchmarks/RESULTS.md); the same chart as SVG markup costs it a few milliseconds. The charts
here are those whose hover tooltips and static look are all a view needs: every point carries its numbers
in an SVG `<title>` (shown on hover), the text is sized for a projector, and the figure scales with its
column (viewBox). Every text that reaches the markup is escaped.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

W, H_AXIS = 680, 52  # viewBox width (about a column's width in pixels); room under the plot for the x axis
LEFT, RIGHT, TOP = 62, 160, 34  # margins: y axis; legend; title
FONT = 14


@dataclass(frozen=True)
class Point:
    x: float
    y: float | None  # None: no value (not drawn)
    tip: str
    color: str | None = None  # None: the series' colour
    shape: str | None = None  # None: the series' marker


@dataclass(frozen=True)
class Series:
    name: str
    points: list[Point]
    color: str
    line: bool = True
    marker: str = "circle"  # circle | square | triangle | diamond | none


@dataclass(frozen=True)
class Rule:
    y: float
    label: str


@dataclass
class Chart:
    title: str
    x_title: str
    y_title: str
    series: list[Series]
    log_y: bool = False
    y_domain: tuple[float, float] | None = None
    y_percent: bool = False
    x_labels: list[str] | None = None  # categorical x: point i sits at x = i
    rules: list[Rule] = field(default_factory=list)
    rings: list[tuple[float, float]] = field(default_factory=list)  # ringed points (the chosen one)
    legend: list[tuple[str, str, str, bool]] | None = None  # (label, colour, marker, line); None: the series
    height: int = 300


def _e(text: str) -> str:
    """Escaped, on one line: the markup has no line break, so Markdown takes it whole as one HTML block."""
    return html.escape(" ".join(str(text).split()), quote=True)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round ticks covering [lo, hi] with a 1, 2 or 5 × 10^k step, about n of them."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    out, v = [], first
    while v <= hi + step * 1e-9:
        out.append(round(v, 12))
        v += step
    return out


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten in [lo, hi]; with 1, 2 and 5 times them when the range is under two decades."""
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mults = (1, 2, 5) if b - a <= 2 else (1,)
    out = [m * 10.0 ** k for k in range(a, b + 1) for m in mults if lo * (1 - 1e-9) <= m * 10.0 ** k <= hi * (1 + 1e-9)]
    return out or [lo, hi]


def _fmt(v: float, percent: bool) -> str:
    if percent:
        return f"{v:.0%}"
    if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-3):
        m, k = f"{v:.0e}".split("e")
        return f"{m}e{int(k)}"
    return f"{v:g}"


def _marker(shape: str, x: float, y: float, color: str, tip: str, r: float = 5.5) -> str:
    title = f"<title>{_e(tip)}</title>"
    if shape == "none":
        return ""
    if shape == "square":
        return f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r:.1f}" height="{2 * r:.1f}" fill="{color}">{title}</rect>'
    if shape in ("triangle", "triangle-down", "diamond"):
        pts = {"triangle": [(0, -1.1), (1.15, 1.0), (-1.15, 1.0)], "triangle-down": [(0, 1.1), (1.15, -1.0), (-1.15, -1.0)],
               "diamond": [(0, -1.3), (1.1, 0), (0, 1.3), (-1.1, 0)]}[shape]
        coords = " ".join(f"{x + dx * r:.1f},{y + dy * r:.1f}" for dx, dy in pts)
        return f'<polygon points="{coords}" fill="{color}">{title}</polygon>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{color}">{title}</circle>'


def _ems(text: str) -> float:
    """How many em `text` is wide: a Latin glyph about 0.56 em on average, a Chinese character (a wide one) 1 em."""
    import unicodedata
    wide = sum(1 for ch in text if unicodedata.east_asian_width(ch) in ("W", "F"))
    return (len(text) - wide) * 0.56 + wide


def _text_width(text: str) -> float:
    return _ems(text) * FONT


def render(c: Chart, width: int = W, legend_below: bool = False) -> str:
    """The chart as one `<svg>` element (width 100 % of its container). The text keeps its size in the
    viewBox, so a smaller `width` draws it larger on the page (the presentation setting); `legend_below`
    puts the legend under the axis, in rows, so that the plot keeps the width."""
    values = [p.y for s in c.series for p in s.points if p.y is not None and math.isfinite(p.y)]
    if c.log_y:
        values = [v for v in values if v > 0]
    xs = [p.x for s in c.series for p in s.points]
    if c.x_labels is not None:
        x0, x1 = -0.5, len(c.x_labels) - 0.5
    else:
        x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
        if x1 == x0:
            x0, x1 = x0 - 1, x1 + 1
    if c.y_domain is not None:
        y0, y1 = c.y_domain
    elif values:
        y0, y1 = min(values + [r.y for r in c.rules]), max(values + [r.y for r in c.rules])
    else:
        y0, y1 = (1.0, 10.0) if c.log_y else (0.0, 1.0)
    if c.log_y:
        y0, y1 = 10 ** math.floor(math.log10(max(y0, 1e-300))), 10 ** math.ceil(math.log10(max(y1, 1e-300)))
        if y1 <= y0:
            y1 = y0 * 10
    elif y1 <= y0:
        y0, y1 = y0 - 1, y1 + 1
    x_label_room = 0
    if c.x_labels is not None:
        longest = max((_ems(s) / 0.56 for s in c.x_labels), default=0)  # in Latin glyphs
        x_label_room = min(110, int(longest * (FONT - 2) * 0.4))  # labels at -45°
    legend = c.legend if c.legend is not None else [(s.name, s.color, s.marker, s.line) for s in c.series]
    below = c.height + TOP + H_AXIS + x_label_room  # the top of the legend when it is under the axis
    spots: list[tuple[float, float]] = []  # where each legend entry goes
    if legend_below:
        lx, ly = float(LEFT), below + 10.0
        for label, *_ in legend:
            w = _text_width(label.lstrip("§")) + (6 if label.startswith("§") else 34) + 18
            if lx > LEFT and (lx + w > width or label.startswith("§")):  # a heading begins a row
                lx, ly = float(LEFT), ly + 22
            spots.append((lx, ly))
            lx += w
        height = (ly + 18 if legend else below)
    else:
        height = below
    # the legend's column is as wide as its longest label (a fixed margin cut "activation output")
    right = max(RIGHT, 14 + max((_text_width(lb.lstrip("§")) + (6 if lb.startswith("§") else 34)
                                 for lb, *_ in legend), default=0) + 8)
    right = min(right, width * 0.45)
    pw, ph = width - LEFT - (20 if legend_below else right), c.height

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        t = (math.log10(y) - math.log10(y0)) / (math.log10(y1) - math.log10(y0)) if c.log_y else (y - y0) / (y1 - y0)
        return TOP + (1 - min(1.0, max(0.0, t))) * ph

    out = [f'<svg viewBox="0 0 {width} {height:.0f}" width="100%" role="img" aria-label="{_e(c.title)}" '
           f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="{FONT}" style="display:block">',
           f"<title>{_e(c.title)}</title>",
           f'<text x="{LEFT}" y="{TOP - 16}" font-weight="bold" font-size="{FONT + 2}">{_e(c.title)}</text>']
    # y grid, ticks and labels
    for v in (log_ticks(y0, y1) if c.log_y else nice_ticks(y0, y1)):
        y = sy(v)
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6ea"/>')
        out.append(f'<text x="{LEFT - 8}" y="{y + 5:.1f}" text-anchor="end" fill="#444">{_e(_fmt(v, c.y_percent))}</text>')
    # x ticks and labels
    if c.x_labels is not None:
        every = max(1, math.ceil(len(c.x_labels) / 24))
        for i, label in enumerate(c.x_labels):
            x = sx(i)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP + ph}" y2="{TOP + ph + 5}" stroke="#888"/>')
            if i % every == 0:
                out.append(f'<text transform="translate({x + 4:.1f},{TOP + ph + 14}) rotate(-45)" text-anchor="end" '
                           f'fill="#444" font-size="{FONT - 2}">{_e(label)}</text>')
    else:
        for v in nice_ticks(x0, x1, 8):
            x = sx(v)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP + ph}" y2="{TOP + ph + 5}" stroke="#888"/>')
            out.append(f'<text x="{x:.1f}" y="{TOP + ph + 22}" text-anchor="middle" fill="#444">{_e(_fmt(v, False))}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
    out.append(f'<text x="{LEFT + pw / 2:.1f}" y="{below - 10}" text-anchor="middle" fill="#222">{_e(c.x_title)}</text>')
    out.append(f'<text transform="translate(16,{TOP + ph / 2:.1f}) rotate(-90)" text-anchor="middle" '
               f'fill="#222">{_e(c.y_title)}</text>')
    for r in c.rules:
        if (r.y > 0 or not c.log_y) and y0 <= r.y <= y1:
            y = sy(r.y)
            out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#777" '
                       f'stroke-dasharray="6 5" stroke-width="1.5"><title>{_e(r.label)}</title></line>')
            out.append(f'<text x="{LEFT + 6}" y="{y - 6:.1f}" fill="#555" font-size="{FONT - 2}">{_e(r.label)}</text>')

    def drawable(p: Point) -> bool:
        return p.y is not None and math.isfinite(p.y) and (p.y > 0 or not c.log_y)

    for s in c.series:
        pts = [p for p in s.points if drawable(p)]
        if s.line and len(pts) >= 2:
            path = " ".join(f"{sx(p.x):.1f},{sy(p.y):.1f}" for p in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{s.color}" stroke-width="2.5" '
                       f'stroke-linejoin="round"/>')
        for p in pts:
            out.append(_marker(p.shape or s.marker, sx(p.x), sy(p.y), p.color or s.color, p.tip))
    for x, y in c.rings:
        if y is not None and math.isfinite(y) and (y > 0 or not c.log_y):
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="12" fill="none" stroke="#000" stroke-width="2.5"/>')
    out.append('<g class="legend">')
    for i, (label, color, marker, line) in enumerate(legend):
        lx, ly = spots[i] if legend_below else (LEFT + pw + 14, TOP + 8 + 22 * i)
        if label.startswith("§"):  # a heading inside the legend
            out.append(f'<text x="{lx:.1f}" y="{ly + 5:.1f}" font-weight="bold" fill="#222">{_e(label[1:])}</text>')
            continue
        if line:
            out.append(f'<line x1="{lx:.1f}" x2="{lx + 26:.1f}" y1="{ly:.1f}" y2="{ly:.1f}" stroke="{color}" '
                       'stroke-width="2.5"/>')
        out.append(_marker(marker, lx + 13, ly, color, label, r=5))
        out.append(f'<text x="{lx + 34:.1f}" y="{ly + 5:.1f}" fill="#222">{_e(label)}</text>')
    out.append("</g></svg>")
    return "".join(out)
