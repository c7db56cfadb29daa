"""The server-drawn charts (app/charts/svg.py) and the Live lab's charts built on them: every point where its
value says, its numbers in its tooltip, ticks that cover the data, text escaped; the ratio sentence."""

import math
import random
import xml.etree.ElementTree as ET

import pytest

import resnet_core as rc
from app.charts import live as live_charts
from app.charts import svg
from resnet_core.lab import forward, images
from resnet_core.lab.views import ratio_trend
from resnet_core.structure.plan import plan as make_plan

NS = "{http://www.w3.org/2000/svg}"
MARKS = {NS + "circle", NS + "rect", NS + "polygon"}


def parse(chart: svg.Chart) -> ET.Element:
    return ET.fromstring(svg.render(chart))


def markers(root: ET.Element) -> list[tuple[ET.Element, str]]:
    """Every data marker (a shape with a tooltip) and its tooltip; the legend's are inside its group."""
    out = []
    for e in root:
        if e.tag in MARKS:
            title = e.find(NS + "title")
            if title is not None:
                out.append((e, title.text))
    return out


def centre_y(e: ET.Element) -> float:
    if e.tag == NS + "circle":
        return float(e.get("cy"))
    if e.tag == NS + "rect":
        return float(e.get("y")) + float(e.get("height")) / 2
    ys = [float(p.split(",")[1]) for p in e.get("points").split()]
    return (max(ys) + min(ys)) / 2


def tick_ys(root: ET.Element) -> dict[str, float]:
    """The y axis's labels and their heights (labels right-aligned left of the plot)."""
    return {t.text: float(t.get("y")) - 5 for t in root.iter(NS + "text") if t.get("text-anchor") == "end"
            and t.get("transform") is None}


@pytest.fixture(scope="module")
def resnet18_record():
    p = make_plan(rc.get_preset("resnet18"))
    model = rc.build_model(p, seed=0)
    x = images.load_sample(images.list_samples()[0], p.input_shape).tensor
    return p, forward.forward_record(model, x, p, device="cpu")


def test_block_ratio_chart_puts_every_block_at_its_ratio(resnet18_record):
    p, rec = resnet18_record
    rows = rec.block_ratios()
    root = parse(live_charts.block_ratio_chart(rows, current="layer2.0"))
    data = [(e, tip) for e, tip in markers(root) if "‖F(x)‖/‖x‖" in tip]
    assert [tip.split(" · ")[0] for _, tip in data] == [b.name for b in p.blocks]
    for (_e, tip), r in zip(data, rows, strict=True):
        assert f"{r['ratio']:.3g}" in tip and r["shortcut"] in tip
    # linear scale: the height of a marker is an affine function of its ratio, the same one as the axis's
    ticks = {float(k): v for k, v in tick_ys(root).items()}
    (r0, y0), (r1, y1) = sorted(ticks.items())[:2]
    slope = (y1 - y0) / (r1 - r0)
    for (e, _), r in zip(data, rows, strict=True):
        assert centre_y(e) == pytest.approx(y0 + (r["ratio"] - r0) * slope, abs=0.6)
    # the chosen block is ringed: a ring centred on its marker
    chosen = next(e for (e, tip) in data if tip.startswith("layer2.0 "))
    rings = [c for c in root.iter(NS + "circle") if c.get("fill") == "none"]
    assert len(rings) == 1 and float(rings[0].get("cy")) == pytest.approx(centre_y(chosen), abs=0.2)


def test_activation_spread_is_on_a_log_scale_and_names_every_layer(resnet18_record):
    p, rec = resnet18_record
    df = live_charts.stats_frame(rec.stats)
    spread, zeros = live_charts.activation_charts(df)
    root = parse(spread)
    data = markers(root)
    assert len(data) == len(df)  # one marker per layer call with statistics
    ticks = {float(k): v for k, v in tick_ys(root).items()}
    lo, hi = min(ticks), max(ticks)
    assert lo <= df["std"].min() and df["std"].max() <= hi  # the axis covers the data
    by_name = {" · ".join(tip.split(" · ")[:2]): (e, tip) for e, tip in data}
    assert len(by_name) == len(df)  # every layer call once, told apart ("relu (1)", "relu (2)")
    for _, row in df.iterrows():
        e, tip = by_name[f"{row['layer']} · {row['kind']}"]
        assert f"std {row['std']:.3g}" in tip
        want = ticks[lo] + (math.log10(row["std"]) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (ticks[hi] - ticks[lo])
        assert centre_y(e) == pytest.approx(want, abs=0.6)
    zroot = parse(zeros)
    assert set(tick_ys(zroot)) >= {"0%", "100%"}
    assert len(markers(zroot)) == len(df)


def test_ticks_are_round_and_cover_the_range():
    rng = random.Random(0)
    for _ in range(300):
        lo = rng.uniform(-1e3, 1e3) * 10 ** rng.randint(-4, 2)
        hi = lo + abs(rng.uniform(0.01, 1e3)) * 10 ** rng.randint(-4, 2)
        ticks = svg.nice_ticks(lo, hi)
        assert 2 <= len(ticks) <= 11, (lo, hi, ticks)
        assert all(lo - 1e-9 * abs(hi - lo) <= t <= hi + 1e-9 * abs(hi - lo) for t in ticks)
        step = ticks[1] - ticks[0]
        mantissa = step / 10 ** math.floor(math.log10(step))
        assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-6, (lo, hi, step)
        assert ticks[0] - lo < step * (1 + 1e-9) and hi - ticks[-1] < step * (1 + 1e-9)  # no gap of a step at the ends
    assert svg.log_ticks(0.1, 10) == pytest.approx([0.1, 0.2, 0.5, 1, 2, 5, 10])
    assert svg.log_ticks(1e-6, 1e3) == pytest.approx([10.0 ** k for k in range(-6, 4)])


def test_text_reaches_the_markup_escaped():
    evil = '<script>alert(1)</script> & "quotes"\n\n# not a heading'
    chart = svg.Chart(evil, evil, evil, [svg.Series(evil, [svg.Point(0, 1, evil), svg.Point(1, 2, evil)], "#000")],
                      x_labels=[evil, "b"], rules=[svg.Rule(1.5, evil)])
    markup = svg.render(chart)
    root = ET.fromstring(markup)  # well-formed
    assert "<script" not in markup and not list(root.iter(NS + "script"))
    assert "\n" not in markup  # one HTML block for Markdown: a blank line would end it
    assert any(t.text == " ".join(evil.split()) for t in root.iter(NS + "title"))


def test_degenerate_data_still_draws():
    for points in ([], [svg.Point(0, 3.0, "a")], [svg.Point(0, 0.0, "zero"), svg.Point(1, float("nan"), "nan")]):
        for log in (False, True):
            root = parse(svg.Chart("t", "x", "y", [svg.Series("s", points, "#000")], log_y=log))
            assert root.tag == NS + "svg"
            drawn = [tip for _, tip in markers(root) if tip != "s"]
            assert "nan" not in drawn and ("zero" not in drawn if log else True)


def test_the_ratio_sentence_follows_the_numbers_it_prints():
    def rows(*ratios):
        return [{"block": f"b{i}", "ratio": r} for i, r in enumerate(ratios)]
    same = ratio_trend(rows(1.2712, 0.6, 1.2734))  # 1.27 and 1.27 as printed
    assert "rises" not in same and "falls" not in same and "1.27 at both" in same
    assert ratio_trend(rows(0.9, 0.5, 0.2)).startswith("falls from 0.9 at b0 to 0.2 at b2")
    assert ratio_trend(rows(0.2, 0.5, 0.9)).startswith("rises from 0.2 at b0 to 0.9 at b2")
    assert "smallest 0.2 (b0), largest 0.9 (b2)" in ratio_trend(rows(0.2, 0.5, 0.9))
    assert ratio_trend(rows(0.0, 0.0)).startswith("is 0 at every block")
    assert ratio_trend(rows(0.5, float("inf"))) is None and ratio_trend(rows(None, 0.5)) is None


def test_the_projector_layout_puts_the_legend_under_the_plot_within_the_figure(resnet18_record):
    p, rec = resnet18_record
    spread, _ = live_charts.activation_charts(live_charts.stats_frame(rec.stats))
    ratios = live_charts.block_ratio_chart(rec.block_ratios(), current="layer1.0")
    for chart in (spread, ratios):
        root = ET.fromstring(svg.render(chart, width=420, legend_below=True))
        width, height = (float(v) for v in root.get("viewBox").split()[2:])
        frame = next(r for r in root if r.tag == NS + "rect" and r.get("fill") == "none")
        plot_bottom = float(frame.get("y")) + float(frame.get("height"))
        assert float(frame.get("x")) + float(frame.get("width")) <= width  # the plot fits
        legend = next(g for g in root if g.get("class") == "legend")
        texts = list(legend.iter(NS + "text"))
        assert len(texts) == len(chart.legend or chart.series)
        for t in texts:
            x, y = float(t.get("x")), float(t.get("y"))
            assert plot_bottom < y <= height and x >= 0 and x + svg._text_width(t.text) <= width + 1, t.text
        beside = ET.fromstring(svg.render(chart, width=420))
        frame_beside = next(r for r in beside if r.tag == NS + "rect" and r.get("fill") == "none")
        assert float(frame.get("width")) > 1.5 * float(frame_beside.get("width"))  # the plot keeps the width
