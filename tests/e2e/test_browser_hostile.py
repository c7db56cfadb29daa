"""A hostile name in a shared link, in a real Chromium: shown as plain text on every page it reaches,
with no link to another site and no request for a URL of the link author's choosing."""


import pytest

from resnet_core.structure.spec import ArchSpec, Stage, to_url_token

from .conftest import shot, wait_idle

EVIL = ("![x](http://evil.example/p.png) [click](https://evil.example/go) <img src=http://evil.example/i.png> "
        "www.evil.example mail@evil.example :red[alarm] $x^2$")


@pytest.mark.parametrize("path", ["", "graph", "compare", "export"])
def test_a_hostile_name_in_a_link_is_plain_text_in_the_browser(app_url, page, path):
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    token = to_url_token(ArchSpec(name=EVIL, input_size=(32, 32), stages=(Stage(blocks=1, width=16),),
                                  num_classes=10))
    page.goto(f"{app_url}/{path}?spec={token}")
    wait_idle(page)
    shot(page, f"hostile_name_{path or 'trace'}")
    body = page.inner_text("body")
    # the name is there, as written (an invisible word joiner may sit inside what looked like a URL)
    assert EVIL in body.replace("\u2060", "")
    outside = page.eval_on_selector_all(
        "a[href], img[src]", "els => els.map(e => e.getAttribute('href') || e.getAttribute('src'))")
    assert not [u for u in outside if u and "evil" in u and not u.startswith("#")], outside
    assert not [u for u in requested if "evil.example" in u], requested
    assert not page.query_selector_all("[data-testid='stMarkdownContainer'] img[src*='evil']")
