"""The app through Streamlit's AppTest: every page, the builder's interactions, links, import."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import resnet_core as rc
from resnet_core.formatting import fmt_count
from resnet_core.structure.lessons import EXERCISES
from resnet_core.structure.spec import spec_from_dict, to_url_token
from resnet_core.text import md

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")
PAGES = ["app_pages/trace.py", "app_pages/graph.py", "app_pages/compare.py", "app_pages/export.py",
         "app_pages/learn.py"]


SECTIONS = ["ui.exp.input", "ui.exp.stem", "ui.exp.blocks"] + [f"ui.stage_exp.{i}" for i in range(8)]


def open_sections(at: AppTest, open_: bool = True) -> AppTest:
    """Open (or close) every collapsible section of the builder: their widgets are drawn only while open."""
    for key in SECTIONS:
        at.session_state[key + ".open"] = open_
    return at


def new_app(open_sections_: bool = True, **query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    if open_sections_:
        open_sections(at)
    return at.run()


def spec_of(at: AppTest) -> rc.ArchSpec:
    return at.session_state["spec"]


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def dot_of(at: AppTest) -> str:
    """The drawn graph: the SVG made on the server (Graphviz installed), else the DOT given to the browser."""
    import base64
    import re
    images = [re.search(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", h.proto.body)
              for h in at.get("html") if "rx-graph" in h.proto.body]
    if images and images[0]:
        return base64.b64decode(images[0].group(1)).decode()
    charts = at.get("graphviz_chart")
    assert charts, "no graph drawn"
    return charts[0].proto.spec


def dashed(graph: str) -> bool:
    """Whether the drawing has a dashed (skip) edge, in SVG or in DOT."""
    import re
    if "<svg" in graph:  # an edge group with a dashed path (cluster frames are dashed too: not counted)
        return any("stroke-dasharray" in g for g in re.findall(r'<g id="edge\d+" class="edge">(.*?)</g>', graph, re.S))
    return bool(re.search(r"->[^\n]*style=dashed", graph))


@pytest.fixture
def app() -> AppTest:
    return new_app()


def test_opens_on_resnet18(app):
    no_exception(app)
    assert spec_of(app) == rc.get_preset("resnet18")
    assert app.title[0].value == "resnet18: shape trace"
    assert metric(app, "Parameters") == "11.69 M"
    assert metric(app, "Output") == "1000"
    assert app.query_params["net"] == "resnet18"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_loads(app, page):
    app.switch_page(page).run()
    no_exception(app)
    assert app.title


@pytest.mark.parametrize("name", rc.list_presets())
def test_choosing_each_preset(app, name):
    app.selectbox(key="ui.preset").set_value(name).run()
    no_exception(app)
    assert spec_of(app) == rc.get_preset(name)
    assert metric(app, "Parameters") == fmt_count(rc.trace(rc.get_preset(name)).total_params)
    assert app.query_params["net"] == name


def test_editing_a_stage_retraces(app):
    app.number_input(key="net.s1.blocks").set_value(5).run()
    no_exception(app)
    spec = spec_of(app)
    assert spec.stages[1].blocks == 5
    assert metric(app, "Parameters") == fmt_count(rc.trace(spec).total_params)
    assert "spec" in app.query_params and "net" not in app.query_params  # no longer a preset: a token link
    app.number_input(key="net.s3.width").set_value(256).run()
    assert spec_of(app).stages[3].width == 256


def test_collapsed_sections_draw_no_widgets_and_keep_their_values():
    at = new_app(open_sections_=False)
    no_exception(at)
    keys = {w.key for w in at.number_input}
    assert not any(k.startswith("net.s") or k in ("net.input_h", "net.stem_channels") for k in keys), keys
    stage = next(e for e in at.expander if e.label.startswith("Stage 2 "))
    assert stage.label == "Stage 2 · basic × 2 · width 128 · /2"
    at.session_state["ui.stage_exp.1.open"] = True  # as the expander's on_change records a click
    at.run()
    at.number_input(key="net.s1.blocks").set_value(5).run()  # the label changes: the section stays open
    assert any(e.label == "Stage 2 · basic × 5 · width 128 · /2" for e in at.expander)
    assert at.number_input(key="net.s1.blocks").value == 5
    open_sections(at, False).run()
    no_exception(at)
    assert "net.s1.blocks" not in {w.key for w in at.number_input}
    at.switch_page("app_pages/graph.py").run()  # reruns and a page change with the section closed
    no_exception(at)
    assert spec_of(at).stages[1].blocks == 5


def test_toggling_skip_and_batch_norm(app):
    app.toggle(key="net.skip").set_value(False).run()
    no_exception(app)
    # an edited network is not the preset: it is named as edited, and the unused shortcut option says so
    assert spec_of(app) == rc.get_preset("plain18").replace(name="resnet18 (edited)")
    assert app.title[0].value == "resnet18 (edited): shape trace"
    assert app.segmented_control(key="net.shortcut").disabled
    assert any("not in use" in c.value for c in app.caption)
    app.toggle(key="net.batch_norm").set_value(False).run()
    spec = spec_of(app)
    assert spec.norm == "none" and not spec.skip
    assert metric(app, "Parameters") == fmt_count(rc.trace(spec).total_params)


def test_breaking_edit_shows_the_located_error_and_keeps_the_page(app):
    app.segmented_control(key="net.shortcut").set_value("identity").run()
    no_exception(app)
    errors = [e.value for e in app.error]
    assert len(errors) == 1
    assert "stage 2 · block 0 · shortcut" in errors[0]
    assert "128×28×28" in errors[0] and "64×56×56" in errors[0] and "1×1 projection" in errors[0]
    assert metric(app, "Output") == "breaks"
    # the graph renders up to the failing layer, marked
    app.switch_page("app_pages/graph.py").run()
    no_exception(app)
    dot = dot_of(app)
    assert "✗ +" in dot and "layer3" not in dot
    # and fixing it brings everything back
    app.segmented_control(key="net.shortcut").set_value("B").run()
    assert not app.error and spec_of(app) == rc.get_preset("resnet18")


def test_stage_list_add_remove_reorder(app):
    app.button(key="ui.add_stage").click().run()
    no_exception(app)
    stages = spec_of(app).stages
    assert len(stages) == 5 and stages[4].width == 1024 and stages[4].stride == 2
    app.button(key="ui.up.4").click().run()
    stages = spec_of(app).stages
    assert [s.width for s in stages] == [64, 128, 256, 1024, 512]
    app.button(key="ui.rm.3").click().run()
    assert spec_of(app) == rc.get_preset("resnet18")


def test_block_type_for_all_stages(app):
    app.selectbox(key="ui.all_blocks.basic").set_value("bottleneck").run()
    no_exception(app)
    assert {s.block for s in spec_of(app).stages} == {"bottleneck"}
    assert spec_of(app).replace(name="resnet50") == rc.get_preset("resnet50").replace(
        stages=tuple(s.__class__(**{**s.__dict__, "blocks": 2}) for s in rc.get_preset("resnet50").stages))


def test_restoring_a_network_from_the_link():
    spec = rc.get_preset("resnet50").with_stage(2, blocks=9).replace(name="my-net", shortcut="C")
    at = new_app(spec=to_url_token(spec))
    no_exception(at)
    assert spec_of(at) == spec
    assert not at.warning
    at = new_app(net="resnext50_32x4d")
    assert spec_of(at) == rc.get_preset("resnext50_32x4d")


@pytest.mark.parametrize("query", [{"spec": "garbage!"}, {"spec": "eJzLSM3JyQcABiwCFQ"}, {"net": "resnet9000"}])
def test_tampered_links_fall_back_with_a_message(query):
    at = new_app(**query)
    no_exception(at)
    assert spec_of(at) == rc.get_preset("resnet18")
    assert any("could not be read" in w.value for w in at.warning)


def test_link_outside_the_builders_limits_falls_back():
    spec = rc.get_preset("resnet18").with_stage(0, blocks=5000)
    at = new_app(spec=to_url_token(spec))
    assert spec_of(at) == rc.get_preset("resnet18")
    assert any("does not fit the builder" in w.value and "stage 1 · blocks is 5000" in w.value for w in at.warning)


def test_graph_page_detail_and_expand(app):
    app.selectbox(key="ui.preset").set_value("resnet152").run()
    app.switch_page("app_pages/graph.py").run()
    no_exception(app)
    dot = dot_of(app)
    assert "⋯ 29 more blocks" in dot  # stage 3's 36 blocks elided to 6 + ⋯ + 1
    app.selectbox(key="graph.expand").set_value(2).run()
    dot = dot_of(app)
    assert "layer1 · bottleneck × 3" in dot and "layer3.0" in dot
    app.segmented_control(key="graph.detail").set_value("stage").run()
    assert "layer3 · bottleneck × 36" in dot_of(app)
    labels = [b.proto.label for b in app.get("download_button")]
    assert "⬇ DOT" in labels


def test_import_a_pasted_spec_into_the_builder(app):
    app.switch_page("app_pages/export.py").run()
    spec = rc.get_preset("resnet20").replace(name="imported", num_classes=7)
    app.text_area(key="export.paste").set_value(spec.to_yaml()).run()
    no_exception(app)
    assert any("imported" in s.value and "builds" in s.value for s in app.success)
    app.button(key="export.load").click().run()
    assert spec_of(app) == spec


def test_import_rejects_a_bad_spec_with_located_reasons(app):
    app.switch_page("app_pages/export.py").run()
    app.text_area(key="export.paste").set_value("stages:\n  - {widht: 3}\n").run()
    no_exception(app)
    # the message quotes the file, so the page shows it as text (Markdown-escaped: stages\[0\]...)
    assert any(md("stages[0].widht: unknown key 'widht'; did you mean 'width'?") in e.value for e in app.error)
    before = spec_of(app)
    assert before == rc.get_preset("resnet18")  # nothing lost


def test_share_link_round_trips(app):
    app.number_input(key="net.num_classes").set_value(10).run()
    app.switch_page("app_pages/export.py").run()
    link = app.code[0].value
    token = link.split("spec=")[1]
    assert spec_of(new_app(spec=token)) == spec_of(app)


def test_compare_classic_pair(app):
    app.switch_page("app_pages/compare.py").run()
    app.button(key="compare.pair.resnet50.resnext50_32x4d").click().run()
    no_exception(app)
    assert spec_of(app) == rc.get_preset("resnet50")
    assert app.selectbox(key="compare.b").value == "resnext50_32x4d"
    table = next(m.value for m in app.markdown if m.value.startswith("| | **A: resnet50**"))
    assert "| Parameters | 25,557,032 (25.56 M) | 25,028,904 (25.03 M) | -528,128 (-2.1%) |" in table.replace("\u00a0", " ")


@pytest.mark.parametrize("index", range(len(EXERCISES)))
def test_learn_exercise_load_and_fix(app, index):
    ex = EXERCISES[index]
    app.switch_page("app_pages/learn.py").run()
    app.button(key=f"learn.ex.{ex.key}").click().run()
    no_exception(app)
    assert spec_of(app) == ex.broken
    assert any("not solved yet" in w.value for w in app.warning)
    app.switch_page("app_pages/trace.py").run()
    assert app.error  # the located error is there to read
    fixes = {
        "shortcut": lambda a: a.segmented_control(key="net.shortcut").set_value("B"),
        "option-a": lambda a: a.segmented_control(key="net.shortcut").set_value("B"),
        "groups": lambda a: a.number_input(key="net.s0.groups").set_value(2),
        "tiny-input": lambda a: a.number_input(key="net.stem_padding").set_value(5),
        "zero-width": lambda a: a.number_input(key="net.s0.width_per_group").set_value(8),
    }
    fixes[ex.key](app).run()
    app.switch_page("app_pages/learn.py").run()
    no_exception(app)
    assert any("Solved" in s.value for s in app.success)


def test_learn_block_toggle_removes_the_skip():
    at = new_app()
    at.switch_page("app_pages/learn.py").run()
    with_skip = dot_of(at)
    at.toggle(key="learn.skip").set_value(False).run()
    without = dot_of(at)
    assert dashed(with_skip) and not dashed(without)
    assert spec_from_dict(rc.get_preset("resnet18").to_dict()) == spec_of(at)  # the builder is untouched


def test_editing_after_turning_batch_norm_off(app):
    """Regression: hidden BN widgets lost their values and the next rerun raised a KeyError."""
    app.toggle(key="net.batch_norm").set_value(False).run()
    app.toggle(key="net.skip").set_value(False).run()
    no_exception(app)
    app.number_input(key="net.s0.blocks").set_value(3).run()
    no_exception(app)
    spec = spec_of(app)
    assert spec.norm == "none" and not spec.skip and spec.stages[0].blocks == 3
    assert spec.bn_momentum == 0.1 and spec.bn_eps == 1e-5
    app.toggle(key="net.batch_norm").set_value(True).run()
    assert spec_of(app).norm == "batch"


def test_custom_stem_fields_survive_switching_the_stem_away_and_back(app):
    app.selectbox(key="net.stem_type").set_value("custom").run()
    app.number_input(key="net.stem_kernel").set_value(5).run()
    app.selectbox(key="net.stem_type").set_value("cifar").run()
    no_exception(app)
    app.number_input(key="net.s0.width").set_value(32).run()
    no_exception(app)
    app.selectbox(key="net.stem_type").set_value("custom").run()
    no_exception(app)
    assert spec_of(app).stem.kernel == 5


def test_a_linked_custom_network_is_not_labelled_as_a_preset_and_undo_returns_to_it():
    spec = rc.get_preset("resnet34").with_stage(0, blocks=4).replace(name="linked")
    at = new_app(spec=to_url_token(spec))
    assert at.selectbox(key="ui.preset").value is None
    assert any("A custom network, loaded from link" in c.value for c in at.caption)
    at.number_input(key="net.s1.width").set_value(96).run()
    assert spec_of(at) != spec
    at.button(key="ui.reset").click().run()
    no_exception(at)
    assert spec_of(at) == spec


@pytest.mark.parametrize("changes", [dict(bn_eps=1e-10), dict(bn_eps=2.0), dict(bn_momentum=1.5)])
def test_link_with_batch_norm_settings_outside_the_builder_is_refused_not_changed(changes):
    at = new_app(spec=to_url_token(rc.get_preset("resnet18").replace(**changes)))
    assert spec_of(at) == rc.get_preset("resnet18")
    assert any("does not fit the builder" in w.value and "batch-norm" in w.value for w in at.warning)


def test_import_of_a_spec_beyond_the_builder_is_refused_before_tracing(app, monkeypatch):
    from app import ui
    real = ui.cached_trace
    traced_big = []

    def guarded(spec):
        if any(st.blocks > 1000 for st in spec.stages):
            traced_big.append(spec)
        return real(spec)

    monkeypatch.setattr(ui, "cached_trace", guarded)
    app.switch_page("app_pages/export.py").run()
    app.text_area(key="export.paste").set_value("stages:\n  - {blocks: 50000, width: 16}\n").run()
    no_exception(app)
    assert not traced_big
    assert any("the builder cannot show it" in e.value and "stage 1 · blocks is 50000" in e.value for e in app.error)


def test_depth_as_the_paper_counts_it_on_the_page_and_in_compare(app):
    assert metric(app, "Depth") == "18"
    assert any("depth 18 weight layers (69 layers planned)" in c.value for c in app.caption)
    app.switch_page("app_pages/compare.py").run()
    app.button(key="compare.pair.resnet34.plain34").click().run()
    no_exception(app)
    table = next(m.value for m in app.markdown if m.value.startswith("| | **A: resnet34**"))
    assert "| Depth (weight layers) | 34 | 34 | +0 |" in table.replace("\u00a0", " ")  # He et al.: both 34 deep


def test_a_broken_network_in_compare_has_partial_totals(app):
    app.segmented_control(key="net.shortcut").set_value("identity").run()
    app.switch_page("app_pages/compare.py").run()
    no_exception(app)
    table = next(m.value for m in app.markdown if m.value.startswith("| | **A: resnet18 (edited)**"))
    params = next(line for line in table.splitlines() if line.startswith("| Parameters"))
    assert "(partial)" in params and "%" not in params
    assert any("partial" in c.value for c in app.caption)


def test_edited_names_round_trip_through_the_link_and_the_json_export(app):
    app.toggle(key="net.skip").set_value(False).run()
    assert spec_of(app).name == "resnet18 (edited)"
    token = app.query_params["spec"]
    assert spec_of(new_app(spec=token)).name == "resnet18 (edited)"  # the link keeps "(edited)"
    # a name of one's own, through the link and through the JSON file
    app.text_input(key="net.name").set_value("my plain 18").run()
    renamed = spec_of(app)
    assert renamed == rc.get_preset("plain18").replace(name="my plain 18")
    linked = new_app(spec=app.query_params["spec"])
    assert spec_of(linked) == renamed and linked.title[0].value == "my plain 18: shape trace"
    fresh = new_app()
    fresh.switch_page("app_pages/export.py").run()
    fresh.text_area(key="export.paste").set_value(renamed.to_json()).run()
    fresh.button(key="export.load").click().run()
    no_exception(fresh)
    assert spec_of(fresh) == renamed
    fresh.switch_page("app_pages/trace.py").run()
    assert fresh.title[0].value == "my plain 18: shape trace"
    # undoing the edits gives the preset back, under its own name
    app.text_input(key="net.name").set_value("resnet18").run()
    app.toggle(key="net.skip").set_value(True).run()
    assert spec_of(app) == rc.get_preset("resnet18") and app.query_params["net"] == "resnet18"


def test_file_names_of_an_edited_network():
    from app.ui import file_stem
    assert file_stem(rc.get_preset("resnet18").replace(name="resnet18 (edited)")) == "resnet18-edited"
    assert file_stem(rc.get_preset("resnet18").replace(name="../../etc/passwd")) == "etc-passwd"
    assert file_stem(rc.get_preset("resnet18").replace(name="***")) == "network"


def test_share_link_opens_the_page_it_was_shared_from(app):
    app.switch_page("app_pages/graph.py").run()
    app.switch_page("app_pages/export.py").run()
    no_exception(app)
    assert app.selectbox(key="export.opens").value == "graph"
    assert app.code[0].value.startswith("graph?net=resnet18")


def test_broken_network_tables_mark_the_row_the_text_promises():
    from resnet_core.structure.lessons import EXERCISES
    ex = next(e for e in EXERCISES if e.key == "zero-width")  # stops before any layer of stage 1
    at = new_app(spec=to_url_token(ex.broken))
    no_exception(at)
    assert any("the last row of the table, in red" in e.value for e in at.error)
    assert not any("marked in red" in e.value and "failing layer" in e.value for e in at.error)


def test_a_styled_table_formats_numbers_as_the_browser_formats_a_plain_one():
    """A broken network's table (styled, to mark the failing row) shows numbers as a valid one's does: the
    browser's en-US "localized" format (Intl.NumberFormat: separators, ≤ 3 decimals, no trailing zeros)."""
    from app.ui import _cell
    assert [_cell(v) for v in (10192.0, 784.0, 7.9, 9536, 118_014_080, None, float("nan"))] == \
        ["10,192", "784", "7.9", "9,536", "118,014,080", "—", "—"]
