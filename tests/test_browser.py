"""Every page of the built site in a real browser: headless Chromium driven by Playwright.

Uses Debian's `chromium` (no browser download). The site is served on 127.0.0.1, and every
request to another host is aborted and counted as a failure: pages must be self-contained.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import sync_playwright

CHROMIUM = next(
    filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))),
    None,
)
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium installed (Debian: apt-get install chromium); .ci/run installs it",
    ),
]
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
# axe-core, from the npm registry like KaTeX (docs/package.json), injected into each page.
AXE = (
    Path(__file__).resolve().parents[1]
    / "docs"
    / "node_modules"
    / "axe-core"
    / "axe.min.js"
)
# WCAG 2 A and AA (contrast, alt text, language, names) and the order of headings.
RUN_AXE = """async () => {
  const result = await axe.run(document, {
    runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']},
    rules: {'heading-order': {enabled: true}},
  });
  if (!result.passes.concat(result.incomplete, result.inapplicable)
        .some(r => r.id === 'heading-order')) throw new Error('heading-order did not run');
  return result.violations.map(v =>
    `${v.id} (${v.nodes.length}x): ${v.nodes[0].target.join(' ')}`);
}"""
# Bytes of the page and of everything it loaded, as the browser's performance timeline
# records them (uncompressed here: the test server does not compress).
PAGE_BYTES = """() => [
  ...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')
].reduce((total, entry) => total + entry.encodedBodySize, 0)"""
# Budget for one page's first, uncached load (HTML, CSS, JS, fonts, figures), uncompressed.
PAGE_WEIGHT_BUDGET = 6_000_000


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server(built_site: Path) -> Iterator[str]:
    handler = functools.partial(QuietHandler, directory=str(built_site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def site_pages(built_site: Path) -> list[str]:
    return sorted(
        p.parent.relative_to(built_site).as_posix() + "/"
        for p in built_site.rglob("index.html")
        if p.parent != built_site / "search"
    )


# Material replaces each diagram's source with an empty element holding a closed shadow root.
DIAGRAMS_DRAWN = (
    "[...document.querySelectorAll('.mermaid')].every(d => !d.textContent.trim())"
)

CHECK_PAGE = """async () => {
  const images = await Promise.all([...document.images].map(img => new Promise(done => {
    const probe = new Image();
    probe.onload = () => done([img.getAttribute('src'), probe.naturalWidth]);
    probe.onerror = () => done([img.getAttribute('src'), 0]);
    probe.src = img.src;
  })));
  const text = document.querySelector('article').innerText;
  return {
    images,
    arithmatex: document.querySelectorAll('.arithmatex').length,
    katex: document.querySelectorAll('.arithmatex .katex').length,
    katexErrors: document.querySelectorAll('.katex-error').length,
    rawMath: /\\$\\$|\\\\\\(|\\\\\\[/.test(text),
  };
}"""


def test_every_page_loads_cleanly_is_accessible_and_toggles_palette(
    built_site, server, browser
):
    problems: list[str] = []
    weights: dict[str, int] = {}
    for path in site_pages(built_site):
        context = browser.new_context(color_scheme="light")
        page = context.new_page()
        errors: list[str] = []

        def on_route(route, errors=errors):
            if route.request.url.startswith(server):
                route.continue_()
            else:
                errors.append(f"request to another host: {route.request.url}")
                route.abort()

        page.route("**/*", on_route)
        page.on(
            "console",
            lambda m, e=errors: e.append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
        page.on("requestfailed", lambda r, e=errors: e.append(f"failed: {r.url}"))
        page.goto(server + path, wait_until="networkidle")
        result = page.evaluate(CHECK_PAGE)
        weights[path] = page.evaluate(PAGE_BYTES)
        for src, width in result["images"]:
            if not width:
                problems.append(f"{path}: image did not load: {src}")
        if result["arithmatex"] and result["katex"] < result["arithmatex"]:
            problems.append(
                f"{path}: {result['arithmatex'] - result['katex']} formulas not typeset"
            )
        if result["katexErrors"] or result["rawMath"]:
            problems.append(f"{path}: math left untypeset or with KaTeX errors")
        try:
            page.wait_for_function(DIAGRAMS_DRAWN, timeout=15_000)
        except PlaywrightTimeoutError:
            problems.append(f"{path}: a Mermaid diagram was not drawn")
        page.add_script_tag(path=str(AXE))
        problems += [f"{path} (light): {v}" for v in page.evaluate(RUN_AXE)]
        scheme = "[data-md-color-scheme]"
        before = page.get_attribute("body", "data-md-color-scheme")
        page.locator("form[data-md-component=palette] label:visible").first.click()
        page.wait_for_function(
            f"document.querySelector('{scheme}').dataset.mdColorScheme !== '{before}'"
        )
        if page.get_attribute("body", "data-md-color-scheme") != "slate":
            problems.append(f"{path}: the palette toggle did not switch to dark")
        problems += [f"{path} (dark): {v}" for v in page.evaluate(RUN_AXE)]
        problems += [f"{path}: {e}" for e in errors]
        if weights[path] > PAGE_WEIGHT_BUDGET:
            problems.append(f"{path}: {weights[path]:,} bytes on first load")
        context.close()
    print("\nfirst-load transferred bytes per page:")
    for path, size in weights.items():
        print(f"  {size / 1e3:9.0f} kB  {path}")
    assert not problems, "\n".join(problems)


def test_search_for_softmax_finds_the_scaled_dot_product_chapter(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server, wait_until="networkidle")
    query = page.locator("input[data-md-component=search-query]")
    query.click()
    query.press_sequentially("softmax", delay=30)  # Material searches on key events
    deadline = time.monotonic() + 20
    hrefs: list[str] = []
    while time.monotonic() < deadline and not hrefs:
        hrefs = page.eval_on_selector_all(
            ".md-search-result__link", "links => links.map(a => a.href)"
        )
        page.wait_for_timeout(200)
    page.close()
    assert any("03-scaled-dot-product-attention" in h for h in hrefs), hrefs
