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


def test_an_experiment_on_a_huge_builder_network_is_refused_while_the_server_stays_healthy(app_url, page):
    """Issue 25, item 1, in a real server: the Why page's ERF run on the builder's network, a Wide ResNet-101
    four times as wide (2.0 G parameters) from a share link, is refused by its estimated cost (~30 GB, ~5.7 T
    mult-adds) before anything is allocated, with the numbers; the server's health check answers quickly all
    the while."""
    import dataclasses
    import threading
    import time
    import urllib.request

    import resnet_core as rc

    wide = rc.get_preset("wide_resnet101_2")
    stages = tuple(dataclasses.replace(st, width=st.width * 4) for st in wide.stages)
    token = to_url_token(wide.replace(input_size=(256, 256), stages=stages, name="huge"))
    latencies: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            with urllib.request.urlopen(f"{app_url}/_stcore/health", timeout=30) as r:
                assert r.read().strip() == b"ok"
            latencies.append(time.monotonic() - t0)
            time.sleep(0.2)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        page.goto(f"{app_url}/why?spec={token}")
        wait_idle(page)
        page.get_by_text("Receptive field", exact=True).first.click()
        wait_idle(page)
        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_text("The experiment could not finish", exact=False).first.wait_for(timeout=120_000)
        body = page.inner_text("body")
    finally:
        stop.set()
        watcher.join(35)
    shot(page, "why_refused_huge_network")
    assert "needs about" in body and ("budget" in body or "free" in body or "limit" in body), body[-800:]
    assert len(latencies) >= 3 and max(latencies) < 2.0, latencies
