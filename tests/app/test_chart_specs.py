"""app/charts.vega_spec: a chart's Vega-Lite made once per (function, arguments, scale, language), equal to
what Altair makes of the chart each time."""

import resnet_core as rc
from app import charts
from app.charts import structure
from resnet_core import i18n
from resnet_core.structure.report import staircase_rows


def rows(name="resnet20"):
    return staircase_rows(rc.trace(rc.get_preset(name)))


def test_the_kept_spec_is_altairs_and_is_made_once():
    r = rows()
    first = charts.vega_spec(structure.staircase, r, "spatial", scale=1.0)
    assert first == structure.staircase(r, "spatial", scale=1.0).to_dict()
    assert charts.vega_spec(structure.staircase, rows(), "spatial", scale=1.0) is first  # equal rows: the same


def test_another_network_scale_or_language_is_another_spec():
    r = rows()
    base = charts.vega_spec(structure.staircase, r, "spatial", scale=1.0)
    assert charts.vega_spec(structure.staircase, rows("resnet56"), "spatial", scale=1.0) != base
    assert charts.vega_spec(structure.staircase, r, "channels", scale=1.0) != base
    big = charts.vega_spec(structure.staircase, r, "spatial", scale=1.35)
    assert big != base and big["config"]["axis"]["labelFontSize"] > base["config"]["axis"]["labelFontSize"]
    with i18n.use("zh"):
        assert charts.vega_spec(structure.staircase, r, "spatial", scale=1.0) is not base


def test_sessions_asking_at_once_build_it_once():
    import threading
    built = []

    def slow_chart(r, field, scale=None):
        built.append(field)
        import time
        time.sleep(0.2)
        return structure.staircase(r, field, scale=scale)

    r = rows("resnet32")
    threads = [threading.Thread(target=charts.vega_spec, args=(slow_chart, r, "channels")) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert built == ["channels"]
