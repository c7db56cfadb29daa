"""Sessions at once against the real server: three browser sessions open the Live lab together, each on its
own network, and each page shows its own network's name and its own numbers (no cross-talk). The full
classroom (20 sessions, with timings) is benchmarks/bench_classroom.py."""

import dataclasses

import resnet_core as rc
from resnet_core.lab import forward, images
from resnet_core.structure.plan import plan as make_plan
from resnet_core.structure.spec import to_url_token

READY = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def class_specs() -> list:
    """Three small networks whose layer1.0 ‖F(x)‖/‖x‖ all differ (stage-1 widths 20, 24, 28)."""
    out = []
    for i, (base, width) in enumerate((("resnet20", 20), ("plain20", 24), ("resnet20", 28))):
        b = rc.get_preset(base)
        first = dataclasses.replace(b.stages[0], width=width)
        out.append(b.replace(name=f"student{i}-{base}-w{width}", stages=(first, *b.stages[1:])))
    return out


def own_ratio(spec) -> float:
    """What the page computes by default: seed 0, the first sample image, running statistics, one image."""
    p = make_plan(spec)
    x = images.load_sample(images.list_samples()[0], p.input_shape).tensor
    return forward.forward_record(rc.build_model(p, seed=0), x, p, device="cpu").anatomy("layer1.0").ratio


def test_three_sessions_at_once_each_see_their_own_network(browser, app_url):
    specs = class_specs()
    expected = {s.name: own_ratio(s) for s in specs}
    assert len({f"{v:.3g}" for v in expected.values()}) == len(specs), "the test needs distinguishable numbers"
    contexts = [browser.new_context(viewport={"width": 1280, "height": 800}) for _ in specs]
    try:
        pages = [c.new_page() for c in contexts]
        for pg, spec in zip(pages, specs, strict=True):  # goto returns at the load event: the three scripts overlap
            pg.set_default_timeout(240_000)
            pg.goto(f"{app_url}/live?spec={to_url_token(spec)}")
        for pg, spec in zip(pages, specs, strict=True):
            pg.get_by_text("‖F(x)‖ / ‖x‖", exact=True).first.wait_for()
            pg.wait_for_selector(READY)
            text = pg.locator('[data-testid="stMain"]').inner_text()
            assert f"Runs {spec.name} for real" in text
            metric = pg.locator('[data-testid="stMetric"]').filter(has_text="‖F(x)‖ / ‖x‖")
            shown = float(metric.locator('[data-testid="stMetricValue"]').inner_text().strip())
            assert abs(shown - expected[spec.name]) <= 0.01 * abs(expected[spec.name]), (spec.name, shown, expected)
            assert pg.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').count() == 0
    finally:
        for c in contexts:
            c.close()
