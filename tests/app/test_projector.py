"""Projector mode through AppTest: `?present=1` turns it on, the address keeps it, a share link carries it,
the switch and the chip's "Leave projector mode" turn it off; tables become HTML in projector mode and charts
are drawn larger (their font sizes in the chart spec, against the house sizes at scale 1)."""

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import resnet_core as rc
from app import charts, state
from app.charts import structure
from resnet_core.structure.report import staircase_rows, table_rows
from resnet_core.structure.trace import trace

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")


def new_app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def html_bodies(at: AppTest) -> list[str]:
    return [h.proto.body for h in at.get("html")]


@pytest.mark.parametrize(("value", "on"), [("1", True), ("true", True), ("0", False), ("<b>x</b>", False)])
def test_a_links_present_value_turns_projector_mode_on_or_leaves_it_off(value, on):
    at = new_app(net="resnet18", present=value)
    no_exception(at)
    assert at.session_state[state.PRESENT] is on
    assert ("present" in at.query_params) is on  # the address says "1" or nothing: what was read, normalised
    if on:
        assert at.query_params["present"] == "1"
        assert any(b.key == "ui.chip" for b in at.button)
        chip = next(b for b in at.button if b.key == "ui.chip")
        assert "resnet18" in chip.label and "11.69 M parameters" in chip.label and "depth 18" in chip.label
    else:
        assert not any(b.key == "ui.chip" for b in at.button)


def test_projector_mode_round_trips_through_the_share_link_and_the_switch():
    at = new_app(net="resnet34", present="1")
    at.switch_page("app_pages/export.py").run()
    no_exception(at)
    link = at.code[0].value
    assert "net=resnet34" in link and "present=1" in link
    # an edit keeps the mode in the address, beside the network's token
    at.toggle(key="net.skip").set_value(False).run()
    assert "spec" in at.query_params and at.query_params["present"] == "1"
    # the chip's way out: the mode goes, and with it the address's present=1 and the chip
    at.button(key="ui.present_off").click().run()
    no_exception(at)
    assert at.session_state[state.PRESENT] is False and "present" not in at.query_params
    assert not any(b.key == "ui.chip" for b in at.button)
    # the sidebar's switch turns it back on
    at.toggle(key=state.PRESENT).set_value(True).run()
    assert at.query_params["present"] == "1"
    assert "present=1" in at.code[0].value


def test_url_params_carry_the_mode():
    spec = rc.get_preset("resnet18")
    assert state.url_params(spec, present=True) == {"net": "resnet18", "present": "1"}
    assert state.url_params(spec, present=False) == {"net": "resnet18"}


def test_in_projector_mode_tables_are_html_in_the_pages_font_with_every_row():
    at = new_app(net="resnet18", present="1")
    no_exception(at)
    tables = [b for b in html_bodies(at) if 'class="rx-table"' in b]
    assert tables, "the trace's table is not drawn as HTML"
    assert not at.dataframe  # no canvas grid (13 px, whatever the page's font) on the trace
    body = tables[0]
    # the header and every row of the default depth (blocks): stem, 8 basic blocks, head
    assert body.count("<tr") == 1 + 1 + 8 + 1
    columns = table_rows(trace(rc.get_preset("resnet18")), "block")[0].keys()
    assert re.findall(r"<th(?: class=num)?>([^<]*)</th>", body) == list(columns)
    assert f">{512 * 1000 + 1000:,}<" in body  # the head's FC (512 → 1000): thousands separated
    plain = new_app(net="resnet18")
    assert plain.dataframe and not [b for b in html_bodies(plain) if 'class="rx-table"' in b]


def _sizes(chart) -> dict:
    cfg = json.loads(chart.to_json())["config"]
    return {"axis": cfg["axis"]["labelFontSize"], "title": cfg["title"]["fontSize"],
            "legend": cfg["legend"]["labelFontSize"]}


def test_charts_take_a_scale_and_projector_mode_draws_them_larger():
    rows = staircase_rows(trace(rc.get_preset("resnet18")))
    normal, large = structure.staircase(rows, scale=1.0), structure.staircase(rows, scale=charts.PROJECTOR_SCALE)
    n, big = _sizes(normal), _sizes(large)
    assert n == {"axis": charts.LABEL, "title": charts.HEADING, "legend": charts.LABEL}
    assert all(big[k] >= 17 for k in big) and all(big[k] > n[k] for k in n)
    assert json.loads(large.to_json())["height"] > json.loads(normal.to_json())["height"]
    assert charts.mode_scale(None) == 1.0  # outside a session: normal size
