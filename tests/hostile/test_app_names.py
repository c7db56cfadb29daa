"""A name the builder's text box accepts is one its own share link accepts (issue 25, item 7): what is typed
into the box goes through the spec's own rule (`spec.check_name`, the rule of links and files), and the
network's link in the address bar always reads back as the network the builder shows."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from resnet_core.structure.spec import from_url_token, to_url_token
from resnet_core.structure.spec_text import MAX_NAME_CHARS, check_name

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")

TYPED = ["a\tb", "x\u202ey (reversed)", " leading space", "trailing dot. ", "emoji 😀", "line\u2028sep",
         "del\x7f", "CON", "nul.txt", "z" * 80, "\u200b", "a\u00adb"]


def test_every_name_the_box_takes_reads_back_from_its_share_link():
    at = AppTest.from_file(APP, default_timeout=180).run()
    assert not at.exception
    for typed in TYPED:
        at.text_input(key="net.name").set_value(typed).run()
        assert not at.exception, [e.value for e in at.exception]
        spec = at.session_state["spec"]
        assert check_name(spec.name) is None, (typed, spec.name)
        assert spec.name.strip(), typed
        if check_name(typed) is None:
            assert spec.name == typed  # what the link takes, the box keeps as typed
        else:  # changed, and the page says why, in the spec's own words
            notes = [c.value for c in at.caption if "The name was changed" in c.value]
            assert notes and "control character" in notes[0], (typed, notes)
        token = to_url_token(spec)
        assert from_url_token(token) == spec, typed
        qp = dict(at.query_params)
        if "spec" in qp:
            value = qp["spec"][0] if isinstance(qp["spec"], list) else qp["spec"]
            assert from_url_token(value) == spec, typed


def test_an_edited_network_with_a_long_loaded_name_keeps_a_name_its_link_takes():
    from app.state import EDITED, edited_name
    long = "n" * MAX_NAME_CHARS
    edited = edited_name(long)
    assert edited.endswith(EDITED) and len(edited) <= MAX_NAME_CHARS and check_name(edited) is None
    assert edited_name(edited) == edited
