"""Every page of the built site in a real browser: headless Chromium driven by Playwright.

Uses Debian's `chromium` (no browser download). The site is served on 127.0.0.1, and every
request to another host is aborted and counted as a failure: pages must be self-contained.
Every page is loaded and checked (scripts, images, math, diagrams, weight), two at a time.
axe-core then checks, in both palettes, the fewest pages that together hold every kind of
element the site's articles use (tag and class), so that no kind goes unchecked.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

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
# WCAG 2 A and AA (contrast, alt text, language, names) and the order of headings, in the
# light palette; in the dark one only what depends on colour.
RUN_AXE = """async (everything) => {
  const options = everything ? {
    runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']},
    rules: {'heading-order': {enabled: true}},
  } : {runOnly: {type: 'rule', values: ['color-contrast', 'link-in-text-block']}};
  const result = await axe.run(document, options);
  const ran = result.passes.concat(result.violations, result.incomplete, result.inapplicable);
  const expected = everything ? 'heading-order' : 'color-contrast';
  if (!ran.some(r => r.id === expected)) throw new Error(expected + ' did not run');
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
MATH_TYPESET = """() => document.querySelectorAll('.arithmatex').length
  <= document.querySelectorAll('.arithmatex .katex').length"""

CHECK_PAGE = """async () => {
  const images = await Promise.all([...document.images].map(img => new Promise(done => {
    const probe = new Image();
    probe.onload = () => done([img.getAttribute('src'), probe.naturalWidth]);
    probe.onerror = () => done([img.getAttribute('src'), 0]);
    probe.src = img.src;
  })));
  const article = document.querySelector('article');
  const kinds = new Set([...article.querySelectorAll('*')].map(e =>
    e.tagName.toLowerCase() + (e.classList.length ? '.' + e.classList[0] : '')));
  return {
    images,
    kinds: [...kinds],
    arithmatex: document.querySelectorAll('.arithmatex').length,
    katex: document.querySelectorAll('.arithmatex .katex').length,
    katexErrors: document.querySelectorAll('.katex-error').length,
    rawMath: /\\$\\$|\\\\\\(|\\\\\\[/.test(article.innerText),
  };
}"""


def covering(kinds: dict[str, set[str]]) -> list[str]:
    """The fewest pages (greedily) whose elements include every kind on the site."""
    left = set().union(*kinds.values())
    chosen = []
    while left:
        best = max(sorted(kinds), key=lambda p: len(kinds[p] & left))
        chosen.append(best)
        left -= kinds[best]
    return chosen


async def open_page(browser: Browser, url: str, problems: list[str], path: str):
    """A new page in the light palette that counts errors and foreign requests."""
    context = await browser.new_context(color_scheme="light")
    page = await context.new_page()

    async def on_route(route):
        if route.request.url.startswith(url.split(path)[0]):
            await route.continue_()
        else:
            problems.append(f"{path}: request to another host: {route.request.url}")
            await route.abort()

    await page.route("**/*", on_route)
    page.on(
        "console",
        lambda m: problems.append(f"{path}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda exc: problems.append(f"{path}: {exc}"))
    page.on("requestfailed", lambda r: problems.append(f"{path}: failed: {r.url}"))
    await page.goto(url, wait_until="load")
    return context, page


async def check_page(browser: Browser, server: str, path: str, problems: list[str]):
    """Load one page and check it; the kinds of element its article holds, and its weight."""
    context, page = await open_page(browser, server + path, problems, path)
    with contextlib.suppress(PlaywrightTimeoutError):  # reported below, if so
        await page.wait_for_function(MATH_TYPESET, timeout=15_000)
    result = await page.evaluate(CHECK_PAGE)
    weight = await page.evaluate(PAGE_BYTES)
    for src, width in result["images"]:
        if not width:
            problems.append(f"{path}: image did not load: {src}")
    if result["arithmatex"] and result["katex"] < result["arithmatex"]:
        missing = result["arithmatex"] - result["katex"]
        problems.append(f"{path}: {missing} formulas not typeset")
    if result["katexErrors"] or result["rawMath"]:
        problems.append(f"{path}: math left untypeset or with KaTeX errors")
    try:
        await page.wait_for_function(DIAGRAMS_DRAWN, timeout=15_000)
    except PlaywrightTimeoutError:
        problems.append(f"{path}: a Mermaid diagram was not drawn")
    if weight > PAGE_WEIGHT_BUDGET:
        problems.append(f"{path}: {weight:,} bytes on first load")
    await context.close()
    return set(result["kinds"]), weight


async def check_accessibility(browser: Browser, server: str, path: str, problems):
    """axe-core in the light palette, then the palette toggle, then axe in the dark."""
    context, page = await open_page(browser, server + path, problems, path)
    await page.add_script_tag(path=str(AXE))
    problems += [f"{path} (light): {v}" for v in await page.evaluate(RUN_AXE, True)]
    scheme = "[data-md-color-scheme]"
    before = await page.get_attribute("body", "data-md-color-scheme")
    await page.locator("form[data-md-component=palette] label:visible").first.click()
    await page.wait_for_function(
        f"document.querySelector('{scheme}').dataset.mdColorScheme !== '{before}'"
    )
    if await page.get_attribute("body", "data-md-color-scheme") != "slate":
        problems.append(f"{path}: the palette toggle did not switch to dark")
    problems += [f"{path} (dark): {v}" for v in await page.evaluate(RUN_AXE, False)]
    await context.close()


async def in_pairs(jobs) -> list:
    """Run coroutines two at a time: the machine has two cores."""
    gate = asyncio.Semaphore(2)

    async def gated(job):
        async with gate:
            return await job

    return await asyncio.gather(*(gated(j) for j in jobs))


async def check_site(built_site: Path, server: str) -> tuple[list[str], dict, list]:
    problems: list[str] = []
    paths = site_pages(built_site)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        checked = await in_pairs(
            check_page(browser, server, x, problems) for x in paths
        )
        kinds = {path: k for path, (k, _) in zip(paths, checked, strict=True)}
        sample = covering(kinds)
        await in_pairs(
            check_accessibility(browser, server, x, problems) for x in sample
        )
        await browser.close()
    weights = {path: w for path, (_, w) in zip(paths, checked, strict=True)}
    return problems, weights, sample


def test_every_page_loads_cleanly_is_accessible_and_toggles_palette(built_site, server):
    problems, weights, sample = asyncio.run(check_site(built_site, server))
    print(f"\naxe-core, both palettes, on {len(sample)} pages: {', '.join(sample)}")
    print("first-load transferred bytes per page:")
    for path, size in weights.items():
        print(f"  {size / 1e3:9.0f} kB  {path}")
    assert not problems, "\n".join(problems)


def test_the_pages_chosen_for_axe_hold_every_kind_of_element():
    kinds = {"a/": {"p", "table"}, "b/": {"p", "img"}, "c/": {"p", "table", "img"}}
    assert covering(kinds) == ["c/"]
    kinds["d/"] = {"svg"}
    assert covering(kinds) == ["c/", "d/"]


async def search(server: str, query: str) -> list[str]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(server, wait_until="networkidle")
        box = page.locator("input[data-md-component=search-query]")
        await box.click()
        await box.press_sequentially(query, delay=30)  # Material searches on key events
        hrefs: list[str] = []
        for _ in range(100):
            hrefs = await page.eval_on_selector_all(
                ".md-search-result__link", "links => links.map(a => a.href)"
            )
            if hrefs:
                break
            await page.wait_for_timeout(200)
        await browser.close()
    return hrefs


def test_search_for_softmax_finds_the_scaled_dot_product_chapter(server):
    hrefs = asyncio.run(search(server, "softmax"))
    assert any("03-scaled-dot-product-attention" in h for h in hrefs), hrefs
