"""The app under hostile links and imports (AppTest): names and keys from a link or a file render as
text, never as Markdown or HTML (no image fetched, no link shown), and oversized links are refused."""

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import resnet_core as rc
from resnet_core.structure.spec import ArchSpec, Stage, to_url_token

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")

EVIL = "![x](http://evil.example/p.png) [click](http://evil.example) <img src=http://evil.example/i> www.evil.example"

# Markdown that would fetch or link something, in any element's body
ACTIVE = [re.compile(r"(?<!\\)!(?<!\\)\[[^\]]*(?<!\\)\]\("),  # an image: ![..](
          re.compile(r"(?<![\\!])(?<!\\)\[[^\]]*(?<!\\)\]\("),  # a link: [..](
          re.compile(r"(?<!\\)<img", re.I), re.compile(r"(?<!\\)<a\s", re.I),
          re.compile(r"(?<!\\)https?(?<!\\):(?<!\\)//"), re.compile(r"(?<![\\/])www(?<!\\)\.")]


def new_app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def texts(at: AppTest) -> list[str]:
    """Every Markdown body the page shows: titles, headers, Markdown, captions and alerts."""
    out = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "error", "warning", "info", "success"):
        out += [str(e.value) for e in getattr(at, kind)]
    return out


def active_markdown(at: AppTest) -> list[str]:
    return [t for t in texts(at) if any(p.search(t) for p in ACTIVE)]


def tiny(name: str) -> ArchSpec:
    return ArchSpec(name=name, input_size=(32, 32), stages=(Stage(blocks=1, width=16),), num_classes=10)


def test_a_hostile_name_in_a_link_shows_as_text_on_every_page():
    at = new_app(spec=to_url_token(tiny(EVIL)))
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["spec"].name == EVIL  # the link was read: the name is the visitor's
    assert any(r"\!\[x\]" in t.value for t in at.title)  # shown, escaped
    assert not active_markdown(at), active_markdown(at)
    for page in ("app_pages/graph.py", "app_pages/compare.py", "app_pages/export.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not active_markdown(at), (page, active_markdown(at))


def test_a_hostile_preset_name_or_key_in_a_link_is_quoted_as_text():
    at = new_app(net=EVIL)
    assert at.session_state["spec"] == rc.get_preset("resnet18")
    assert any("could not be read" in w.value for w in at.warning)
    assert not active_markdown(at), active_markdown(at)
    import base64
    import zlib
    raw = json.dumps({"name": "x", EVIL: 1, "stages": [{"block": EVIL}]}).encode()
    token = base64.urlsafe_b64encode(zlib.compress(raw)).decode().rstrip("=")
    at = new_app(spec=token)
    assert any("could not be read" in w.value for w in at.warning)
    assert not active_markdown(at), active_markdown(at)


def test_a_broken_network_from_a_link_quotes_its_values_as_text():
    at = new_app(spec=to_url_token(tiny("x").with_stage(0, block=EVIL)))
    assert not at.exception
    assert not active_markdown(at), active_markdown(at)


def test_an_imported_file_with_hostile_keys_and_names_is_shown_as_text():
    at = new_app()
    at.switch_page("app_pages/export.py").run()
    for text in (json.dumps({EVIL: 1}), json.dumps({"name": EVIL, "stages": [{"blocks": 1}]}),
                 json.dumps({"name": EVIL, "stages": [{"blocks": 99_999}]}), "name: [" + EVIL):
        at.text_area(key="export.paste").set_value(text).run()
        assert not at.exception, [e.value for e in at.exception]
        assert not active_markdown(at), (text, active_markdown(at))


@pytest.mark.parametrize("spec", [
    ArchSpec(name="many", stages=tuple(Stage(blocks=1, width=16) for _ in range(200))),  # within MAX_SPEC_STAGES
    ArchSpec(name="blocks", stages=tuple(Stage(blocks=900, width=16) for _ in range(9))),  # 8,100 blocks
])
def test_a_link_with_too_many_stages_or_blocks_in_all_is_refused_with_the_limit(spec):
    at = new_app(spec=to_url_token(spec))
    assert not at.exception
    assert at.session_state["spec"] == rc.get_preset("resnet18")
    warning = " ".join(w.value for w in at.warning)
    assert "does not fit the builder" in warning and "at most" in warning


def test_a_link_name_with_control_characters_is_refused():
    import base64
    import zlib
    raw = json.dumps({"name": "a\n# heading\n![x](http://evil.example/p.png)"}).encode()
    at = new_app(spec=base64.urlsafe_b64encode(zlib.compress(raw)).decode().rstrip("="))
    assert at.session_state["spec"] == rc.get_preset("resnet18")
    assert any("control character" in w.value for w in at.warning)
    assert not active_markdown(at)
