"""Every page of the built site in a real browser: headless Chromium driven by Playwright.

Uses Debian's `chromium` (no browser download). The site is served on 127.0.0.1, and every
request to another host is aborted and counted as a failure: pages must be self-contained.
Every page is loaded and checked, two at a time: scripts, images, typeset math, its weight
(gzip), that every table fits the column at 1280 px, and at a phone's width (390 px) that
it does not scroll sideways and that every table or formula wider than its box shows that
it scrolls.
axe-core then checks, in both palettes, the fewest pages that together hold every kind of
element the site's articles use (tag and class), so that no kind goes unchecked.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import http.server
import shutil
import statistics
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from playwright.async_api import Browser, Page, async_playwright

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
# What the page loaded, as the browser's performance timeline records it.
LOADED = """() => [
  ...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')
].map(entry => entry.name)"""
# A first visit with an empty cache, compressed as a web server sends it (gzip): at most
# 500 kB for any page, 200 kB for the median page of each edition. The search index is
# not part of it: it loads when the reader moves to search (docs/overrides/main.html).
PAGE_WEIGHT_MAX, PAGE_WEIGHT_MEDIAN = 500_000, 200_000


@functools.cache
def gzip_size(site: Path, url: str) -> int:
    """The gzip-compressed size of the site's file behind `url`."""
    path = site / unquote(urlsplit(url).path).lstrip("/")
    if path.is_dir():
        path /= "index.html"
    return len(gzip.compress(path.read_bytes(), compresslevel=6))


def page_weight(site: Path, urls: list[str]) -> int:
    """Bytes of a first visit: what the page loaded from the site (not the search index,
    which waits until the reader moves to search: see `check_page`)."""
    host = urlsplit(urls[0]).netloc
    return sum(gzip_size(site, u) for u in set(urls) if urlsplit(u).netloc == host)


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


# At the phone's width: whether the page scrolls sideways, and the regions (tables,
# formulas) wider than their box that do not show the scroll shadows of extra.css.
NARROW = """() => ({
  sideways: document.documentElement.scrollWidth > window.innerWidth,
  unmarked: [...document.querySelectorAll('.md-typeset__scrollwrap, .katex-display')]
    .filter(e => e.scrollWidth > e.clientWidth + 1)
    .filter(e => !getComputedStyle(e).backgroundImage.includes('gradient'))
    .map(e => e.className),
  // an equation's number beside its formula, never over it
  overlapping: [...document.querySelectorAll('.katex-display .tag')]
    .filter(t => t.getBoundingClientRect().left <
                 t.previousElementSibling.getBoundingClientRect().right - 1).length,
})"""
# Per lab figure, the images shown: one, the current palette's.
LAB_IMAGES = """() => [...document.querySelectorAll('figure.lab-figure')].map(f =>
  [...f.querySelectorAll('img')].filter(i => i.offsetWidth > 0)
    .map(i => i.getAttribute('src').split('#').pop()).join(' '))"""
CHECK_PAGE = (
    """async () => {
  const LAB_IMAGES = """
    + LAB_IMAGES
    + """;
  const images = await Promise.all([...document.images].map(img => new Promise(done => {
    const probe = new Image();
    probe.onload = () => done([img.getAttribute('src'), probe.naturalWidth]);
    probe.onerror = () => done([img.getAttribute('src'), 0]);
    probe.src = img.src;
  })));
  const article = document.querySelector('article');
  // A formula or an inline SVG counts as one element: what is inside is KaTeX's or
  // matplotlib's layout, whose colours are the text's.
  const kinds = new Set([...article.querySelectorAll('*')]
    .filter(e => !e.parentElement.closest('.katex, svg'))
    .map(e => e.tagName.toLowerCase() + (e.classList.length ? '.' + e.classList[0] : '')));
  return {
    images,
    kinds: [...kinds],
    katexErrors: document.querySelectorAll('.katex-error').length,
    labImages: LAB_IMAGES(),
    // at the desktop width every table fits its column: a wider one is split or transposed
    wideTables: [...article.querySelectorAll('.md-typeset__scrollwrap')]
      .filter(e => e.scrollWidth > e.clientWidth + 1)
      .map(e => e.querySelector('tr').innerText.slice(0, 60)),
    rawMath: /\\$\\$|\\\\\\(|\\\\\\[/.test(article.innerText),
  };
}"""
)


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
    return page


async def check_page(
    browser: Browser, site: Path, server: str, path: str, problems: list[str]
):
    """Load one page and check it; the kinds of element its article holds, its weight,
    and the page, still open (axe-core may check it next)."""
    page = await open_page(browser, server + path, problems, path)
    weight = page_weight(site, await page.evaluate(LOADED))  # before images are probed
    result = await page.evaluate(CHECK_PAGE)
    for src, width in result["images"]:
        if not width:
            problems.append(f"{path}: image did not load: {src}")
    if any(shown != "only-light" for shown in result["labImages"]):
        problems.append(f"{path}: lab figures show {result['labImages']} in light")
    if result["wideTables"]:
        problems.append(f"{path}: tables wider than the column: {result['wideTables']}")
    if result["katexErrors"] or result["rawMath"]:
        problems.append(f"{path}: math left untypeset or with KaTeX errors")
    await page.set_viewport_size({"width": 390, "height": 844})
    narrow = await page.evaluate(NARROW)
    if narrow["sideways"]:
        problems.append(f"{path}: the page scrolls sideways at 390 px")
    if narrow["overlapping"]:
        problems.append(
            f"{path}: {narrow['overlapping']} equation numbers over formulas"
        )
    if narrow["unmarked"]:
        problems.append(f"{path}: wide regions without a scroll shadow: {narrow}")
    await page.set_viewport_size({"width": 1280, "height": 720})
    # seconds after the load event, with nothing done near search: no index yet
    if any(
        url.endswith("/search/search_index.json") for url in await page.evaluate(LOADED)
    ):
        problems.append(f"{path}: the search index loaded before search was opened")
    if weight > PAGE_WEIGHT_MAX:
        problems.append(f"{path}: {weight:,} bytes (gzip) on a first visit")
    return set(result["kinds"]), weight, page


async def check_accessibility(page: Page, path: str, problems: list[str]) -> None:
    """axe-core in the light palette, then the palette toggle, then axe in the dark;
    a figure opened full-screen in each palette."""
    await check_zoom(page, path, problems)
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
    # a lab figure (a kind of element, so a lab page is among those checked here)
    shown = await page.evaluate(LAB_IMAGES)
    if any(images != "only-dark" for images in shown):
        problems.append(f"{path}: lab figures show {shown} in dark")
    await check_zoom(page, path, problems)


async def check_zoom(page: Page, path: str, problems: list[str]) -> None:
    """A figure opens full-screen with its button, in the current palette, and Escape
    closes it."""
    button = page.locator("article figure .figure-zoom__open:visible").first
    if not await button.count():
        return
    await button.click()
    dialog = page.locator("dialog.figure-zoom[open]")
    shown = dialog.locator("img:visible")
    if not await dialog.count() or await shown.count() != 1:
        problems.append(f"{path}: a figure did not open full-screen with one image")
    await page.keyboard.press("Escape")
    if await dialog.count():
        problems.append(f"{path}: Escape did not close the full-screen figure")


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
            check_page(browser, built_site, server, x, problems) for x in paths
        )
        kinds = {path: k for path, (k, _, _) in zip(paths, checked, strict=True)}
        sample = covering(kinds)
        pages = {path: page for path, (_, _, page) in zip(paths, checked, strict=True)}
        for path, page in pages.items():
            if path not in sample:
                await page.context.close()
        await in_pairs(check_accessibility(pages[x], x, problems) for x in sample)
        await browser.close()
    weights = {path: w for path, (_, w, _) in zip(paths, checked, strict=True)}
    return problems, weights, sample


def test_every_page_loads_cleanly_is_accessible_and_toggles_palette(built_site, server):
    problems, weights, sample = asyncio.run(check_site(built_site, server))
    print(f"\naxe-core, both palettes, on {len(sample)} pages: {', '.join(sample)}")
    print("bytes of a first visit, gzip, per page:")
    for path, size in weights.items():
        print(f"  {size / 1e3:9.0f} kB  {path}")
    for edition in ("en", "zh"):
        ours = [
            w
            for path, w in weights.items()
            if path.startswith("zh/") == (edition == "zh")
        ]
        median = statistics.median(ours)
        print(f"  {median / 1e3:9.0f} kB  median, {edition}")
        assert median <= PAGE_WEIGHT_MEDIAN, (
            f"{edition}: median page weight {median:,.0f} bytes"
        )
    assert not problems, "\n".join(problems)


def test_the_pages_chosen_for_axe_hold_every_kind_of_element():
    kinds = {"a/": {"p", "table"}, "b/": {"p", "img"}, "c/": {"p", "table", "img"}}
    assert covering(kinds) == ["c/"]
    kinds["d/"] = {"svg"}
    assert covering(kinds) == ["c/", "d/"]


async def result_links(page: Page, tries: int) -> list[str]:
    """The links of the search results once they appear (every 0.2 s, `tries` times)."""
    hrefs: list[str] = []
    for _ in range(tries):
        hrefs = await page.eval_on_selector_all(
            ".md-search-result__link", "links => links.map(a => a.href)"
        )
        if hrefs:
            break
        await page.wait_for_timeout(200)
    return hrefs


async def search(server: str, queries: list[str]) -> dict[str, list[str]]:
    """The result links Material's search shows for each query, best first."""
    found = {}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(server, wait_until="networkidle")
        box = page.locator("input[data-md-component=search-query]")
        await box.click()
        for query in queries:
            await box.fill("")
            await page.wait_for_function(
                "!document.querySelector('.md-search-result__link')"
            )
            await box.press_sequentially(query, delay=30)  # Material searches on keys
            found[query] = await result_links(page, tries=100)
        await browser.close()
    return found


def test_search_finds_the_chapter_of_a_topic_first(server):
    """A chapter ranks above the appendix (boosted down) for its own topic, and the build
    report is not in the index. Softmax is every chapter's topic: chapter 3 is among them."""
    first = {
        "Performer": "11-performer",
        "positional encoding": "06-positional-encoding",
        "Reformer": "12-reformer",
    }
    found = asyncio.run(search(server, [*first, "softmax"]))
    for query, chapter in first.items():
        assert found[query] and chapter in found[query][0], (query, found[query])
    assert any("03-scaled-dot-product-attention" in h for h in found["softmax"])
    assert not any("build-report" in h for hrefs in found.values() for h in hrefs)


async def shared_search(server: str, queries: list[str]) -> dict[str, list[str]]:
    """The result links of each query opened as a shared search link (`?q=`, Material's
    search.share), best first."""
    found = {}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        for query in queries:
            await page.goto(f"{server}?q={query}", wait_until="networkidle")
            found[query] = await result_links(page, tries=150)
        await browser.close()
    return found


def test_chinese_search_finds_the_chapter_of_a_term_first(server):
    """Material's search, with jieba's segmentation and the glossary's terms as whole
    words (docs/terms.zh.txt), ranks the chapter of each term first. For 注意力 itself
    that is chapter 9, whose title is 注意力家族 ("attention families")."""
    first = {
        "注意力": "09-attention-families",
        "位置编码": "06-positional-encoding",
        "掩码": "04-masks",
        "多头注意力": "05-multi-head-attention",
        "稀疏注意力": "10-sparse-attention",
    }
    found = asyncio.run(shared_search(server + "zh/", list(first)))
    for query, chapter in first.items():
        assert found[query] and f"/zh/chapters/{chapter}/" in found[query][0], (
            query,
            found[query][:3],
        )
