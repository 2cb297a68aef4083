"""The widget and the fragment on a publisher's page, in Chromium: a host page served from another
origin (a second local port, the one ``LIVEFEED_EMBED_ORIGINS`` names in the test stack) with two
``<livefeed-feed>`` widgets of one feed and its own aggressive CSS.

Checked: items posted appear live in both over one shared WebSocket; the host's styles don't reach
the widget and the widget's don't leak out; Cumulative Layout Shift is 0 (a PerformanceObserver of
``layout-shift`` entries, printed); offline then online resumes with nothing missed; no console
errors; a strict-CSP host page shows the feed through the iframe fragment, which also reads
without JavaScript. A screenshot of the widget on a host page goes to ``SCREENSHOTS``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Route, WebSocketRoute, expect
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from deploy.stack import Stack
from tests.conftest import EMBED_HOST_PORT_OFFSET

from .conftest import SCREENSHOTS, PageProblems, new_context, post

pytestmark = pytest.mark.browser

AGGRESSIVE_CSS = """
* { font-family: "Comic Sans MS", "DejaVu Serif", cursive !important; color: lime !important;
    letter-spacing: 4px !important; text-transform: uppercase !important; line-height: 3 !important;
    word-spacing: 9px !important; text-align: right !important; }
li, ol, a, p, h2, h3, time, span, section, header, div { display: inline !important; font-size: 31px !important;
    margin: 13px !important; padding: 7px !important; background: black !important;
    border: 3px dashed red !important; visibility: visible !important; }
body { font: 27px/4 serif; background: #222; }
"""
CLS_OBSERVER = """
window.__cls = 0;
window.__shifts = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if (entry.hadRecentInput) continue;
    window.__cls += entry.value;
    window.__shifts.push({ value: entry.value, sources: entry.sources.map((s) => s.node && s.node.nodeName) });
  }
}).observe({ type: 'layout-shift', buffered: true });
"""
STYLE_PROBES = ["font-family", "font-size", "color", "letter-spacing", "text-transform", "line-height",
                "word-spacing", "text-align", "display", "margin-top", "padding-top", "border-top-style"]


@dataclass
class HostSite:
    """A publisher's site on its own origin: ``pages`` maps a path to its HTML and extra headers."""

    origin: str
    pages: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)


def _handler(site: HostSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/favicon.ico":
                self.send_response(204)
                self.end_headers()
                return
            if path not in site.pages:
                self.send_error(404)
                return
            html, headers = site.pages[path]
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def host_site(stack: Stack) -> Iterator[HostSite]:
    """The host site on the fixed port the stack's ``LIVEFEED_EMBED_ORIGINS`` allows, for this module."""
    t = stack.topology
    site = HostSite(f"http://{t.host}:{t.gateway + EMBED_HOST_PORT_OFFSET}")
    server = ThreadingHTTPServer((t.host, t.gateway + EMBED_HOST_PORT_OFFSET), _handler(site))
    thread = threading.Thread(target=server.serve_forever, name="embed-host-site", daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def reserved_px(limit: int) -> float:
    """The widget's height at its default 16px font size: ``limit`` * 5.6em + 4em (the README's formula)."""
    return (limit * 5.6 + 4) * 16


RESERVE_CSS = (f"livefeed-feed:not(:defined) {{ display: block; }} #w1:not(:defined) {{ height: {reserved_px(3)}px; }} "
               f"#w2:not(:defined) {{ height: {reserved_px(5)}px; }}")
"""The README's rule for a widget in the flow of the page: its height, reserved before the script arrives."""


def host_page(base_url: str, feed: str, *, css: str = AGGRESSIVE_CSS, script: bool = True) -> str:
    """An article page with two widgets of ``feed`` (3 and 5 items) and text above, between and below."""
    tag = f'<script type="module" src="{base_url}/embed/v1.js"></script>' if script else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>An article</title>
{tag}<style>{RESERVE_CSS}</style><style>{css}</style></head><body><main>
<h1>Storm Dara reaches the coast</h1><p class="probe" id="before">The article text, above the feed.</p>
<livefeed-feed id="w1" feed="{feed}" limit="3" more-href="/news-feed"></livefeed-feed>
<p class="probe" id="between">More article text, between the two widgets.</p>
<aside><livefeed-feed id="w2" feed="{feed}" limit="5" heading="Latest"></livefeed-feed></aside>
<p class="probe" id="after">The article's last paragraph, below both widgets.</p>
</main></body></html>"""


class Console:
    """Every console message of type error (and page error) on one page."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._message)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

    def _message(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} ({message.location.get('url')})")


async def open_host(context: BrowserContext, problems: PageProblems, url: str) -> tuple[Page, Console, list[str]]:
    """Open ``url`` with the CLS observer installed; returns the page, its console and its WebSocket URLs."""
    page = problems.watch(await context.new_page())
    console = Console(page)
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    await page.add_init_script(CLS_OBSERVER)
    await page.goto(url)
    return page, console, sockets


async def headlines(page: Page, widget: str) -> list[str]:
    texts: list[str] = await page.evaluate(
        """(id) => [...document.getElementById(id).shadowRoot.querySelectorAll('li:not([hidden]) [part~=headline]')]
                 .map((a) => a.textContent)""",
        widget,
    )
    return texts


async def expect_headlines(page: Page, widget: str, wanted: list[str]) -> None:
    """Wait (bounded) until the widget shows exactly ``wanted``, newest first; the failure says what it shows."""
    try:
        await page.wait_for_function(
            """([id, wanted]) => {
                 const shown = [...document.getElementById(id).shadowRoot
                   .querySelectorAll('li:not([hidden]) [part~=headline]')].map((a) => a.textContent);
                 return JSON.stringify(shown) === JSON.stringify(wanted);
               }""",
            arg=[widget, wanted],
            timeout=10_000,
        )
    except PlaywrightTimeoutError:
        pytest.fail(f"{widget} shows {await headlines(page, widget)}, not {wanted}")


async def expect_live(page: Page) -> None:
    for widget in ("w1", "w2"):
        await expect(page.locator(f"#{widget} [part~=status]")).to_have_attribute("data-state", "live")


async def layout_shift(page: Page) -> float:
    cls: float = await page.evaluate("window.__cls")
    return cls


@pytest.fixture
async def host_context(browser: Browser, base_url: str) -> AsyncIterator[BrowserContext]:
    ctx = await new_context(browser, base_url)
    try:
        yield ctx
    finally:
        await ctx.close()


async def test_two_widgets_on_a_foreign_page_go_live_together_over_one_connection_without_layout_shift(
    host_context: BrowserContext, problems: PageProblems, api: httpx.AsyncClient, base_url: str,
    host_site: HostSite, feed: str,
) -> None:
    host_site.pages["/article"] = (host_page(base_url, feed), {})
    before = [await post(api, feed, f"Before the page opened {n}") for n in range(2)]
    page, console, sockets = await open_host(host_context, problems, f"{host_site.origin}/article")
    await expect_live(page)
    await expect_headlines(page, "w2", [i["headline"] for i in reversed(before)])

    live = [
        await post(api, feed, "<b>Markup</b> stays text & so does <script>x</script>"),
        await post(api, feed, "Red warning issued for the west coast", urgency="breaking",
                   body="The weather service raised its warning to red from 18:00."),
        await post(api, feed, "Rail services suspended north of the capital"),
    ]
    newest_first = [i["headline"] for i in reversed(before + live)]
    await expect_headlines(page, "w1", newest_first[:3])
    await expect_headlines(page, "w2", newest_first[:5])

    breaking = page.locator("#w1 li:not([hidden])").nth(1)
    await expect(breaking.locator("[part~=badge]")).to_be_visible()
    await expect(breaking).to_have_attribute("part", "item breaking")
    await expect(page.locator("#w1 li:not([hidden])").nth(0).locator("[part~=badge]")).to_be_hidden()
    await expect(page.locator("#w1 [part~=more]")).to_have_attribute("href", f"{host_site.origin}/news-feed")
    await expect(page.locator("#w2 [part~=more]")).to_have_attribute("href", f"{base_url}/feeds/{feed}")
    await expect(page.locator("#w1 [aria-live=polite]")).to_contain_text("Rail services suspended")
    markup = await page.evaluate("document.getElementById('w2').shadowRoot.querySelectorAll('b, script').length")
    assert markup == 0
    assert await page.locator("#w1 time").first.text_content() != ""

    streams = [url for url in sockets if f"/v1/feeds/{feed}/stream" in url]
    assert len(streams) == 1, streams
    cls = await layout_shift(page)
    print(f"\nembed widget: cumulative layout shift {cls} "
          f"({await page.evaluate('JSON.stringify(window.__shifts)')})")
    assert cls == 0
    for widget, limit in (("w1", 3), ("w2", 5)):
        height = await page.evaluate(f"document.getElementById('{widget}').getBoundingClientRect().height")
        assert height == pytest.approx(reserved_px(limit), abs=0.5), widget
    assert console.errors == []


async def _styles(page: Page, widget: str) -> dict[str, dict[str, str]]:
    """Computed styles and sizes of the widget's parts, read inside its shadow root."""
    result: dict[str, dict[str, str]] = await page.evaluate(
        """([id, props]) => {
             const root = document.getElementById(id).shadowRoot;
             const out = {};
             for (const part of ['container', 'title', 'headline', 'time', 'body', 'more', 'list']) {
               const node = root.querySelector(`[part~=${part}]`);
               const style = getComputedStyle(node);
               const box = node.getBoundingClientRect();
               out[part] = Object.fromEntries(props.map((p) => [p, style.getPropertyValue(p)]));
               out[part].height = String(box.height);
               out[part].width = String(box.width);
             }
             return out;
           }""",
        [widget, STYLE_PROBES],
    )
    return result


async def _probe_styles(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(
        """(props) => ({
             sheets: document.styleSheets.length,
             elements: document.querySelectorAll('body *').length,
             probes: [...document.querySelectorAll('.probe, h1')].map((node) =>
               Object.fromEntries(props.map((p) => [p, getComputedStyle(node).getPropertyValue(p)]))),
           })""",
        STYLE_PROBES,
    )
    return result


async def test_the_hosts_styles_do_not_reach_the_widget_and_the_widgets_do_not_leak_out(
    host_context: BrowserContext, problems: PageProblems, api: httpx.AsyncClient, base_url: str,
    host_site: HostSite, feed: str,
) -> None:
    await post(api, feed, "A headline long enough to wrap onto a second line in a narrow column of news",
               body="A body line.")
    host_site.pages["/aggressive"] = (host_page(base_url, feed), {})
    host_site.pages["/plain"] = (host_page(base_url, feed, css="body { margin: 8px; }"), {})
    host_site.pages["/no-widget"] = (host_page(base_url, feed, script=False), {})

    pages = {}
    for name in ("plain", "aggressive", "no-widget"):
        page, console, _ = await open_host(host_context, problems, f"{host_site.origin}/{name}")
        pages[name] = (page, console)
    for name in ("plain", "aggressive"):
        await expect_live(pages[name][0])
        await expect(pages[name][0].locator("#w1 [part~=headline]").first).to_contain_text("A headline long")

    plain, aggressive = await _styles(pages["plain"][0], "w1"), await _styles(pages["aggressive"][0], "w1")
    assert aggressive == plain
    assert aggressive["headline"]["color"] != "rgb(0, 255, 0)"
    assert await _probe_styles(pages["aggressive"][0]) == await _probe_styles(pages["no-widget"][0])
    for page, console in pages.values():
        assert console.errors == []
        await page.close()


async def test_offline_then_online_resumes_with_nothing_missed(
    host_context: BrowserContext, problems: PageProblems, api: httpx.AsyncClient, base_url: str,
    host_site: HostSite, feed: str,
) -> None:
    host_site.pages["/offline"] = (host_page(base_url, feed), {})
    first = await post(api, feed, "Posted before the page opened")
    page, console, sockets = await open_host(host_context, problems, f"{host_site.origin}/offline")
    await expect_live(page)
    await expect_headlines(page, "w1", [first["headline"]])

    await host_context.set_offline(True)
    await expect(page.locator("#w1 [part~=status]")).to_have_attribute("data-state", "offline")
    missed = [await post(api, feed, f"Posted while the reader was offline {n}") for n in range(3)]
    await host_context.set_offline(False)

    wanted = [i["headline"] for i in reversed([first, *missed])]
    await expect_live(page)
    await expect_headlines(page, "w1", wanted[:3])
    await expect_headlines(page, "w2", wanted)
    streams = [url for url in sockets if f"/v1/feeds/{feed}/stream" in url]
    assert len(streams) == 2 and "since=" in streams[1], streams
    after = await post(api, feed, "Live again after the outage")
    await expect_headlines(page, "w2", [after["headline"], *wanted])
    assert console.errors == []


async def test_a_reset_reloads_the_snapshot_and_the_widgets_go_on_live(
    host_context: BrowserContext, problems: PageProblems, api: httpx.AsyncClient, base_url: str,
    host_site: HostSite, feed: str,
) -> None:
    kept = await post(api, feed, "Still published")
    gone = await post(api, feed, "Retracted while the widgets were away")
    host_site.pages["/reset"] = (host_page(base_url, feed), {})
    page = problems.watch(await host_context.new_page())
    console = Console(page)
    snapshots: list[str] = []

    async def stale_first_snapshot(route: Route) -> None:
        """The first snapshot's cursor is from another topic epoch: the stream must answer with a reset."""
        snapshots.append(route.request.url)
        if len(snapshots) > 1:
            await route.continue_()
            return
        response = await route.fetch()
        body = await response.json()
        await route.fulfill(response=response, json={**body, "cursor": "deadbeef.0.5"})

    streams: list[str] = []

    async def retract_during_the_first_stream(ws: WebSocketRoute) -> None:
        streams.append(ws.url)
        if len(streams) == 1:
            assert (await api.delete(f"/v1/feeds/{feed}/items/{gone['id']}")).status_code == 200
        ws.connect_to_server()

    await page.route(re.compile(rf".*/v1/feeds/{feed}/items\?.*"), stale_first_snapshot)
    await page.route_web_socket(re.compile(rf".*/v1/feeds/{feed}/stream.*"), retract_during_the_first_stream)
    await page.goto(f"{host_site.origin}/reset")
    await expect_live(page)
    await expect_headlines(page, "w2", [kept["headline"]])
    await expect_headlines(page, "w1", [kept["headline"]])
    assert "since=deadbeef.0.5" in streams[0] and "deadbeef" not in streams[-1], streams
    assert len(snapshots) == 2, snapshots
    fresh = await post(api, feed, "After the reset")
    await expect_headlines(page, "w2", [fresh["headline"], kept["headline"]])
    assert console.errors == []


PICTURE = (b'<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="800">'
           b'<rect width="1200" height="800" fill="#48c"/></svg>')


async def test_a_widget_item_shows_its_picture_in_a_fixed_box_and_its_correction_live(
    host_context: BrowserContext, problems: PageProblems, api: httpx.AsyncClient, base_url: str,
    host_site: HostSite, feed: str,
) -> None:
    host_site.pages["/pictures"] = (host_page(base_url, feed, css="body { margin: 8px; }"), {})
    page, console, _ = await open_host(host_context, problems, f"{host_site.origin}/pictures")
    await page.route("https://images.example/**",
                     lambda route: route.fulfill(body=PICTURE, content_type="image/svg+xml"))
    await expect_live(page)
    item = await post(api, feed, "Flooded streets in the old town", images=[
        {"url": "https://images.example/flood.svg", "alt": "A flooded street", "width": 1200, "height": 800}])
    image = page.locator("#w1 li:not([hidden]) [part~=image]").first
    await expect(image).to_have_attribute("alt", "A flooded street")
    await expect(image).to_have_attribute("loading", "lazy")
    box = await image.bounding_box()
    assert box is not None and (box["width"], box["height"]) == (96, 64)
    fixed = await api.patch(f"/v1/feeds/{feed}/items/{item['id']}",
                            json={"headline": "Flooded streets in the new town", "correction": "It was the new town."})
    assert fixed.status_code == 200, fixed.text
    await expect_headlines(page, "w1", ["Flooded streets in the new town"])
    correction = page.locator("#w1 li:not([hidden]) [part~=correction]").first
    await expect(correction).to_contain_text("Corrected")
    await expect(correction).to_contain_text(": It was the new town.")
    await expect(correction).to_have_attribute("title", "It was the new town.")
    assert await layout_shift(page) == 0
    assert console.errors == []


async def test_a_strict_csp_host_page_shows_the_feed_through_the_iframe_fragment(
    host_context: BrowserContext, problems: PageProblems, browser: Browser, api: httpx.AsyncClient,
    base_url: str, host_site: HostSite, feed: str,
) -> None:
    posted = [await post(api, feed, f"Fragment update {n}", urgency="breaking" if n == 2 else "normal")
              for n in range(3)]
    markup = await post(api, feed, "<img src=x onerror=alert(1)> shown as text")
    policy = f"default-src 'self'; frame-src {base_url}"
    host_site.pages["/strict"] = (
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Strict</title></head>
<body><h1>A page with a strict policy</h1>
<iframe id="feed" title="News feed" src="{base_url}/feeds/{feed}/embed?limit=5" width="360" height="520"></iframe>
</body></html>""",
        {"Content-Security-Policy": policy},
    )
    page, console, _ = await open_host(host_context, problems, f"{host_site.origin}/strict")
    frame = page.frame_locator("#feed")
    await expect(frame.locator("article").first).to_contain_text(markup["headline"])
    await expect(frame.locator("article")).to_have_count(4)
    await expect(frame.locator("article.is-breaking")).to_contain_text(posted[2]["headline"])
    await expect(frame.locator(".lf-more")).to_have_attribute("href", f"/feeds/{feed}")
    assert console.errors == []

    no_js = await new_context(browser, base_url, java_script_enabled=False)
    try:
        direct = await no_js.new_page()
        await direct.goto(f"/feeds/{feed}/embed?limit=2")
        await expect(direct.locator("article")).to_have_count(2)
        await expect(direct.locator("article").first).to_contain_text("shown as text")
        await expect(direct.locator("article time").first).to_contain_text("UTC")
    finally:
        await no_js.close()


async def test_screenshot_of_the_widget_on_a_host_page(
    host_context: BrowserContext, problems: PageProblems, api: httpx.AsyncClient, base_url: str,
    host_site: HostSite,
) -> None:
    feed = "storm-dara-embed"
    for fields in [
        {"headline": "Coastguard rescues crew of fishing boat off the north cape",
         "body": "All five crew members were airlifted to hospital."},
        {"headline": "Prime minister to chair emergency committee at 10:00",
         "body": "Ministers will discuss support for households without power."},
        {"headline": "80,000 homes without power, grid operator says", "urgency": "breaking",
         "body": "Crews are working to restore supply."},
    ]:
        await post(api, feed, **fields)
    css = """body { margin: 0; font: 18px/1.6 Georgia, serif; color: #222; background: #fff; }
main { display: grid; grid-template-columns: 1fr 320px; gap: 40px; max-width: 1000px; margin: 24px auto; }
h1 { font-size: 34px; line-height: 1.15; margin: 0 0 12px; } p { margin: 0 0 14px; }
livefeed-feed { --livefeed-accent: #0a5aa8; --livefeed-font: system-ui, sans-serif; }
livefeed-feed::part(headline) { color: #0b1f3a; }"""
    html = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>The Daily Example</title>
<script type="module" src="{base_url}/embed/v1.js"></script><style>{css}</style></head><body><main><article>
<h1>Storm Dara: a night on the west coast</h1>
<p>Gusts of up to 140 km/h hit the coast overnight, bringing down trees and power lines.</p>
<p>Rail services are suspended north of the capital and schools in three regions are closed today.</p>
<p>The national weather service says the wind will ease by the evening.</p></article>
<aside><livefeed-feed feed="{feed}" limit="3" more-href="/news-feed"></livefeed-feed></aside></main></body></html>"""
    host_site.pages["/screenshot"] = (html, {})
    page, console, _ = await open_host(host_context, problems, f"{host_site.origin}/screenshot")
    await expect(page.locator("livefeed-feed [part~=status]")).to_have_attribute("data-state", "live")
    await expect(page.locator("livefeed-feed li:not([hidden])")).to_have_count(3)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.set_viewport_size({"width": 1040, "height": 520})
    await page.screenshot(path=str(SCREENSHOTS / "embed-widget.png"))
    assert console.errors == []
