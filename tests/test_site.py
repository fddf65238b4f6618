"""The real site: a strict build, then checks over every built page.

The build itself is the `built_site` fixture in conftest.py.
"""

from __future__ import annotations

import base64
import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import yaml

from executed.checks import english_words
from executed.plan import (
    FIGURE_RE,
    Item,
    Project,
    demo_source,
    environment_fingerprint,
    item_key,
    read_record,
    scan_page,
)
from executed.render import REPORT_URI
from executed.run import execute
from snippets.plotting import MIN_TEXT_PX, TEXT_PX, smallest_text_px, text_px

REPO = Path(__file__).resolve().parents[1]
# A zero-width space between two characters that are not CJK: KaTeX's, not jieba's.
CJK_FREE_ZWSP = re.compile("(?<![\u4e00-\u9fff])\u200b(?![\u4e00-\u9fff])")
DOCS = REPO / "docs" / "en"


class Page(HTMLParser):
    """What the checks need from one HTML page: links, images, ids, figures, text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.links: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.ids: set[str] = set()
        self.lang: str | None = None
        self.figures = 0
        self.captions = 0
        self._skip = 0  # inside <code>, <pre> or <script>
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "html":
            self.lang = a.get("lang")
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "img":
            self.images.append(a)
        elif tag == "figure":
            self.figures += 1
        elif tag == "figcaption":
            self.captions += 1
        elif tag in ("code", "pre", "script"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("code", "pre", "script"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def mkdocs_config() -> dict:
    """mkdocs.yml, read as plain YAML (its !!python/name tags are kept as strings)."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *a: str(a[1]))
    return yaml.load((REPO / "mkdocs.yml").read_text(), Loader=Loader)


def pages(site: Path) -> dict[Path, Page]:
    return {
        p: Page(p.read_text(encoding="utf-8"))
        for p in sorted(site.rglob("*.html"))
        if p.name != "404.html"
    }


def resolve(site: Path, page: Path, url: str) -> Path | None:
    """The file an internal URL points to, or None for external and special URLs."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or url.startswith(("mailto:", "#")):
        return None
    target = (page.parent / unquote(parts.path)).resolve()
    if target.is_dir():
        target = target / "index.html"
    return target


def test_every_internal_link_and_anchor_resolves(built_site):
    parsed = pages(built_site)
    broken = []
    for path, page in parsed.items():
        for url in page.links:
            target = resolve(built_site, path, url)
            fragment = urlsplit(url).fragment
            if url.startswith("#"):
                target = path
            if target is None:
                continue
            if not target.exists():
                broken.append(f"{path.relative_to(built_site)}: {url} (no such file)")
            elif fragment and target.suffix == ".html":
                ids = (
                    parsed[target].ids
                    if target in parsed
                    else Page(target.read_text()).ids
                )
                if unquote(fragment) not in ids:
                    broken.append(
                        f"{path.relative_to(built_site)}: {url} (no such anchor)"
                    )
    assert not broken, "\n".join(broken)


def test_every_image_exists_and_has_alt_text(built_site):
    problems = []
    for path, page in pages(built_site).items():
        for img in page.images:
            src = img.get("src") or ""
            target = resolve(built_site, path, src)
            if src.startswith("data:"):
                continue
            if target is None:
                problems.append(f"{path.relative_to(built_site)}: external image {src}")
            elif not target.exists():
                problems.append(f"{path.relative_to(built_site)}: missing {src}")
            if not (img.get("alt") or "").strip():
                problems.append(f"{path.relative_to(built_site)}: no alt text on {src}")
    assert not problems, "\n".join(problems)


def test_every_declared_figure_is_on_its_page_in_both_palettes(built_site):
    missing = []
    for md in sorted(DOCS.rglob("*.md")):
        refs = [m["ref"] for m in FIGURE_RE.finditer(md.read_text())]
        if not refs:
            continue
        rel = md.relative_to(DOCS).with_suffix("")
        html = built_site / rel / "index.html"
        if rel.name == "index":
            html = built_site / rel.parent / "index.html"
        text = html.read_text(encoding="utf-8")
        page = Page(text)
        for ref in refs:
            for palette, fragment in (("light", "only-light"), ("dark", "only-dark")):
                name = f"{ref}.{palette}.svg#{fragment}"
                if name not in text:
                    missing.append(f"{rel}: {name}")
                svg = built_site / "assets" / "figures" / f"{ref}.{palette}.svg"
                if not svg.exists() or not svg.read_text().lstrip().startswith("<?xml"):
                    missing.append(f"{rel}: file {svg.name}")
        if page.captions < len(refs):
            missing.append(f"{rel}: {len(refs)} figures but {page.captions} captions")
    assert not missing, "\n".join(missing)


def test_no_declaration_is_left_unreplaced(built_site):
    left = []
    for path, page in pages(built_site).items():
        text = " ".join(page.text)
        for pattern in (r"\{\{\s*[a-z_]\w*\.\w+", r"exec:[a-z_]\w*\.\w+"):
            if re.search(pattern, text):
                left.append(f"{path.relative_to(built_site)}: {pattern}")
    assert not left, "\n".join(left)


def test_every_page_declares_its_language(built_site):
    """English pages say lang="en", the Chinese edition's (under zh/) lang="zh"."""
    for path, page in pages(built_site).items():
        edition = "zh" if path.relative_to(built_site).parts[0] == "zh" else "en"
        assert page.lang == edition, path


def test_build_report_lists_every_executed_item(built_site):
    report = (built_site / "appendix" / "build-report" / "index.html").read_text()
    expected = set()
    for md in DOCS.rglob("*.md"):
        expected |= scan_page(md.read_text())
    expected |= {p.relative_to(DOCS).as_posix() for p in (DOCS / "labs").glob("*.py")}
    missing = [
        name for name in sorted(expected) if f"<code>{name}</code>" not in report
    ]
    assert not missing, f"not in the build report: {missing}"


def test_math_and_diagram_assets_are_served_by_the_site(built_site):
    assert (built_site / "assets/vendor/katex/katex.min.css").stat().st_size > 1000
    assert not (
        built_site / "assets/vendor/mermaid"
    ).exists()  # figures are drawn by the build
    css = (built_site / "assets/vendor/katex/katex.min.css").read_text()
    for font in re.findall(r"url\((fonts/[^)]+\.woff2)\)", css):
        assert (built_site / "assets/vendor/katex" / font).exists(), font


RAW_TEX = re.compile(r"\\\(|\\\[|\$\$|\\frac|\\begin\{|\$[^$\s][^$]*\$")


def visible_text(page: str) -> str:
    """What a reader sees with JavaScript off, code apart: no scripts, styles, MathML
    annotations or code (where `$` is Python or shell)."""
    page = re.sub(
        r"<(script|style|annotation|code|pre)\b.*?</\1>", "", page, flags=re.S
    )
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_math_is_typeset_in_the_html_and_search_sees_no_tex(built_site):
    pages = sorted(built_site.rglob("index.html"))
    typeset = 0
    for path in pages:
        page = path.read_text(encoding="utf-8")
        assert 'class="arithmatex"' not in page, f"{path}: a formula left untypeset"
        assert "katex-error" not in page, path
        raw = RAW_TEX.search(visible_text(page))
        assert raw is None, f"{path}: raw TeX in the visible text near {raw}"
        typeset += page.count('class="katex"')
    assert typeset > 500, "the chapters hold hundreds of formulas"
    index = json.loads((built_site / "search" / "search_index.json").read_text())
    for doc in index["docs"]:
        raw = RAW_TEX.search(doc["text"] + doc["title"])
        assert raw is None, f"search entry {doc['location']}: TeX {raw}"
        # KaTeX's glyphs, which it separates by zero-width spaces, are not words either
        # (jieba's word breaks in Chinese text, next to a CJK character, are)
        lone = CJK_FREE_ZWSP.search(doc["text"])
        assert lone is None, f"search entry {doc['location']}: a formula"


def test_search_indexes_neither_code_blocks_nor_the_build_report(built_site):
    index = json.loads((built_site / "search" / "search_index.json").read_text())
    locations = [doc["location"] for doc in index["docs"]]
    assert not [x for x in locations if x.startswith("appendix/build-report")]
    assert any(x.startswith("labs/mini_transformer") for x in locations)
    text = " ".join(doc["text"] for doc in index["docs"])
    # A code block of chapter 3, and two code cells of lab 8 (whose copy button also
    # keeps a plain-text copy of each cell)
    for code in (
        "def scaled_dot_product_attention(",
        "import importlib.util",
        "def show(",
    ):
        assert code not in text, code
    assert "scaled_dot_product_attention" in text  # inline code stays searchable


def nav_entries(nav: list) -> list[tuple[str, str]]:
    out = []
    for entry in nav:
        for title, target in entry.items():
            out += (
                nav_entries(target) if isinstance(target, list) else [(title, target)]
            )
    return out


def page_title(target: str) -> str:
    """The first level-1 heading of a page (Markdown) or lab (jupytext script)."""
    if target.startswith("labs/"):
        source = DOCS / target.replace(".ipynb", ".py")
        lines = [ln.removeprefix("# ") for ln in source.read_text().splitlines()]
    else:
        lines = (DOCS / target).read_text().splitlines()
    return next(ln[2:] for ln in lines if ln.startswith("# "))


def test_every_nav_title_is_its_page_title_or_a_short_form_of_it():
    for title, target in nav_entries(mkdocs_config()["nav"]):
        if title == "Home" or target == REPORT_URI:  # the report is generated
            continue
        full = page_title(target)
        assert full == title or full.startswith((f"{title}: ", f"{title} (")), (
            f"nav says {title!r}, the page {target} says {full!r}"
        )


def test_chapter_figures_tables_and_equations_are_numbered_and_referenced(built_site):
    referenced = {"Figure": 0, "Table": 0, "equation": 0}
    for page in sorted((built_site / "chapters").glob("*/index.html")):
        chapter = int(page.parent.name.split("-")[0])
        text = page.read_text()
        figures = re.findall(r'<figure id="fig-[\w-]+">.*?<figcaption>\s*<p><strong>Figure (\d+\.\d+)\.</strong>', text, re.S)  # fmt: skip
        # a table's caption is above it, in the figure that holds both
        tables = re.findall(r"<figure[^>]*>\s*<figcaption>\s*<p><strong>Table (\d+\.\d+)\.</strong>[^<]*.*?</figcaption>\s*<table[ >]", text, re.S)  # fmt: skip
        equations = re.findall(r'class="katex-display">.*?<span class="tag">.*?</ae-math>', text, re.S)  # fmt: skip
        tags = [
            "".join(re.findall(r'<span class="mord">([\d.()]+)</span>', e.split('class="tag">')[1]))
            for e in equations
        ]  # fmt: skip
        for kind, found, total in (
            ("figures", figures, text.count('<figure id="fig-')),
            ("tables", tables, len(re.findall(r"<table[ >]", text))),
            ("equations", tags, text.count('class="katex-display"')),
        ):
            form = "({})" if kind == "equations" else "{}"
            expected = [form.format(f"{chapter}.{k}") for k in range(1, total + 1)]
            assert found == expected, f"{page}: {kind} numbered {found}, not {expected}"
        for name in referenced:
            target = "eq" if name == "equation" else name[:3].lower()
            text_re = r"\(\d+\.\d+\)" if name == "equation" else rf"{name} \d+\.\d+"
            referenced[name] += len(
                re.findall(rf'<a href="[^"]*#{target}-[\w-]+">{text_re}</a>', text)
            )
    # the prose's references (their anchors: the link test)
    assert referenced["Figure"] >= 7 and referenced["Table"] >= 5, referenced
    assert referenced["equation"] >= 2, referenced


# A number as the tables write it: "1,024", "0.0554", "-1.667", "8.3e-09", "4.59×".
NUMBER = re.compile(
    r"^[+−-]?(?P<whole>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?(?P<exp>e[+-]?\d+)?"
)


def table_columns(page: str) -> list[tuple[str, list[str]]]:
    """Each column of each table of a page: its header and its cells, as text."""
    columns = []
    for table in re.findall(r"<table[ >].*?</table>", page, re.S):
        rows = [
            [visible_text(c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)
        ]  # fmt: skip
        columns += [
            (h, [r[j] for r in rows[1:] if j < len(r)]) for j, h in enumerate(rows[0])
        ]
    return columns


def test_every_table_column_writes_its_numbers_in_one_format(built_site):
    """No column mixes exponents with plain decimals ("1.27e+03" beside "0.0902"), or
    writes one number to a single significant digit and another to four or more (a fixed
    number of decimals over values orders of magnitude apart)."""
    problems = []
    for path in sorted(built_site.rglob("index.html")):
        for header, cells in table_columns(path.read_text(encoding="utf-8")):
            forms, digits = set(), []
            for cell in cells:
                if (m := NUMBER.match(cell)) is None:
                    continue
                forms.add(
                    "exponent" if m["exp"] else "decimal" if m["frac"] else "integer"
                )
                if m["frac"] and not m["exp"]:
                    significant = (m["whole"].replace(",", "") + m["frac"][1:]).lstrip(
                        "0"
                    )
                    if significant.strip("0"):  # a zero has no significant digits
                        digits.append(len(significant))
            if {"exponent", "decimal"} <= forms or (
                digits and min(digits) == 1 and max(digits) >= 4
            ):
                problems.append(
                    f"{path.parent.relative_to(built_site)}, {header!r}: {cells}"
                )
    assert not problems, "\n".join(problems)


def site_figures(site: Path) -> dict[str, str]:
    """Every figure of the site as SVG text: the chapters' files and the labs' inline
    images, by name."""
    figures = {
        p.name: p.read_text(encoding="utf-8")
        for p in (site / "assets" / "figures").glob("*.svg")
    }
    for lab in (site / "labs").rglob("index.html"):
        inline = re.findall(
            r'src="data:image/svg\+xml;base64,([\w+/=]+)(?:#only-\w+)?"',
            lab.read_text(),
        )
        for i, data in enumerate(inline):
            figures[f"{lab.parent.name} figure {i + 1}"] = base64.b64decode(
                data
            ).decode()
    return figures


def test_every_figure_text_is_legible_in_the_column(built_site):
    figures = site_figures(built_site)
    assert len(figures) > 80  # the chapters' (light and dark) and the labs'
    small = {
        name: round(px, 1)
        for name, svg in figures.items()
        if (px := smallest_text_px(svg)) is not None and px < MIN_TEXT_PX
    }
    assert not small, f"text under {MIN_TEXT_PX} px in the 688 px column: {small}"
    # and most of it, counted in characters, at TEXT_PX or more
    sizes = [size for svg in figures.values() for size in text_px(svg)]
    large = sum(n for px, n in sizes if px >= TEXT_PX - 0.05) / sum(n for _, n in sizes)
    print(f"figure text at {TEXT_PX} px or more: {large:.0%} of the characters")
    assert large > 0.8, (
        f"only {large:.0%} of the figures' text is at {TEXT_PX} px or more"
    )
    # mathtext's \sqrt: a radical glyph and a separate bar, which browsers set apart
    roots = [n for n, svg in figures.items() if re.search(r"STIXSize\w*[^>]*>√<", svg)]
    assert not roots, f"figures with a mathtext root (write √ as text): {roots}"


def test_every_lab_figure_has_both_palettes_alt_text_and_a_caption(built_site):
    labs = sorted((built_site / "labs").rglob("index.html"))
    assert len(labs) == 2
    for lab in labs:
        page = lab.read_text(encoding="utf-8")
        figures = re.findall(r'<figure class="lab-figure">(.*?)</figure>', page, re.S)
        assert len(figures) >= 3, f"{lab}: {len(figures)} figures"
        # every inline image of a lab is one palette's variant of a captioned figure
        assert page.count("<img") == 2 * len(figures), lab
        for i, markup in enumerate(figures, 1):
            where = f"{lab.parent.name}, figure {i}"
            images = [
                dict(re.findall(r'(\w+)="([^"]*)"', a))
                for a in re.findall(r"<img ([^>]*)>", markup)
            ]
            assert [img["src"].rsplit("#", 1)[-1] for img in images] == [
                "only-light",
                "only-dark",
            ], where
            alts = {html.unescape(img.get("alt", "")).strip() for img in images}
            assert len(alts) == 1 and len(alts.pop()) > 20, f"{where}: alt text {alts}"
            assert "No description" not in markup, where
            caption = re.search(r"<figcaption>(.+?)</figcaption>", markup, re.S)
            assert caption and caption[1].strip(), f"{where}: no caption"


def test_labs_offer_their_executed_notebook_for_download_and_in_colab(built_site):
    config = mkdocs_config()
    repo = config["repo_url"].removeprefix("https://github.com/").strip("/")
    branch = config["extra"]["notebooks_branch"]
    for lab in (DOCS / "labs").glob("*.py"):
        name = lab.stem
        notebook = built_site / "labs" / name / f"{name}.ipynb"
        assert notebook.exists(), notebook
        cells = json.loads(notebook.read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert code and all(c.get("execution_count") for c in code), (
            f"{name} not executed"
        )
        links = Page((notebook.parent / "index.html").read_text()).links
        assert f"{name}.ipynb" in links, f"{name}: no download link"
        # The Pages workflow publishes site/labs/<name>/<name>.ipynb as labs/<name>.ipynb.
        colab = f"https://colab.research.google.com/github/{repo}/blob/{branch}/labs/{name}.ipynb"
        assert colab in links, f"{name}: no Colab link {colab}"
        page = (notebook.parent / "index.html").read_text()
        inline = re.findall(r"<style[^>]*>(.*?)</style>", page, re.S)
        assert all(len(css) < 10_000 for css in inline), f"{name}: inline notebook CSS"
        shared = re.search(
            r'href="\.\./\.\./(assets/stylesheets/notebook\.\w+\.css)"', page
        )
        assert shared and (built_site / shared[1]).stat().st_size > 100_000, name
        for label in ("Open in Colab", "Download notebook", "Edit"):
            button = rf'class="md-button"[^>]*>\s*<svg[^<]*(?:<(?!/a>)[^<]*)*?</svg>\s*{label}\s*</a>'
            assert re.search(button, page, re.S), (
                f"{name}: no labelled {label!r} button"
            )


def test_every_chapter_offers_its_notebook_for_download_and_in_colab(built_site):
    """Each chapter's notebook, generated from its page, is valid, its code cells
    compile, its links into the site reach ids that exist, and its page links it."""
    config = mkdocs_config()
    repo = config["repo_url"].removeprefix("https://github.com/").strip("/")
    branch = config["extra"]["notebooks_branch"]
    site_url = config["site_url"]
    chapters = sorted((DOCS / "chapters").glob("[0-9][0-9]-*.md"))
    ids: dict[Path, set[str]] = {}  # a page's ids, parsed once
    for chapter in chapters:
        name = chapter.stem
        path = built_site / "chapters" / name / f"{name}.ipynb"
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        code = [c.source for c in notebook.cells if c.cell_type == "code"]
        for k, source in enumerate(code):
            compile(source, f"{name}.ipynb, code cell {k}", "exec")
        prose = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
        for url in re.findall(rf"\]\(({re.escape(site_url)}[^)\s]*)\)", prose):
            target, _, fragment = url.removeprefix(site_url).partition("#")
            html_page = built_site / target / "index.html"
            assert html_page.exists(), f"{name}.ipynb links to {url}"
            if fragment:
                if html_page not in ids:
                    ids[html_page] = Page(html_page.read_text()).ids
                assert fragment in ids[html_page], f"{name}: {url}"
        page = (path.parent / "index.html").read_text()
        links = Page(page).links
        assert f"{name}.ipynb" in links, f"{name}: no download link"
        colab = f"https://colab.research.google.com/github/{repo}/blob/{branch}/chapters/{name}.ipynb"
        assert colab in links, f"{name}: no Colab link {colab}"
    assert len(chapters) == 15


def test_a_chapter_notebook_runs_end_to_end(built_site):
    """Chapter 3's notebook, executed in a fresh kernel: no cell fails; every demo cell
    shows something; each exercise's check reports on the empty cell left to fill."""
    from executed.lab import run_notebook

    name = "03-scaled-dot-product-attention"
    notebook = nbformat.read(
        built_site / "chapters" / name / f"{name}.ipynb", as_version=4
    )
    run_notebook(notebook, name)  # raises on a failing cell
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if cell.source.startswith("show("):
            assert cell.outputs, cell.source
        if cell.source.startswith("check("):
            text = "".join(o.get("text", "") for o in cell.outputs)
            assert "fails on this case" in text and "got:      None" in text


def test_every_edit_link_opens_a_file_of_the_repository(built_site):
    prefix = mkdocs_config()["repo_url"].rstrip("/") + "/edit/main/"
    wrong = []
    for path, page in pages(built_site).items():
        for url in page.links:
            if (
                url.startswith(prefix)
                and not (REPO / url.removeprefix(prefix)).is_file()
            ):
                wrong.append(f"{path.relative_to(built_site)}: {url}")
    assert not wrong, "\n".join(wrong)


def test_demos_give_byte_identical_results_when_run_again(built_site, tmp_path):
    """Two builds agree byte for byte, except demos marked @measured (wall-clock timings).

    `built_site` left every demo's result in the cache; run again, in a fresh worker and
    into an empty cache, the deterministic demos of every module whose demos took under
    a second in all (demos of one module share cached work), and compare.
    """
    project = Project.at(REPO)
    fingerprint = environment_fingerprint(REPO)
    first: dict[str, dict] = {}
    items: dict[str, Item] = {}
    for md in sorted(DOCS.rglob("*.md")):
        for ref in scan_page(md.read_text()):
            item = Item(ref, demo_source(ref, REPO), [md.name])
            item.key = item_key(item, fingerprint, REPO)
            first[ref] = read_record(item.record(project))
            items[ref] = item
    cost: dict[str, float] = {}
    for ref, record in first.items():
        module = ref.split(".")[0]
        cost[module] = cost.get(module, 0.0) + record["seconds"]
    again = [
        item
        for ref, item in items.items()
        if not first[ref]["measured"] and cost[ref.split(".")[0]] < 1.0
    ]
    assert len(again) >= 20, f"only {len(again)} quick deterministic demos"
    execute(again, Project(REPO, tmp_path))
    differ = [
        i.name
        for i in again
        for part in ("value", "translations")
        if i.result[part] != first[i.name][part]
    ]
    assert not differ, f"results changed between two runs: {differ}"


def test_katex_fonts_keep_every_glyph_the_formulas_draw(built_site):
    """The build cuts KaTeX's fonts down to the characters its formulas use: every
    character drawn in a formula of any page, that a font of KaTeX has, is still in it."""
    from fontTools.ttLib import TTFont

    from executed.vendor import ANNOTATION

    drawn = set()
    for page in built_site.rglob("index.html"):
        for formula in re.findall(
            r'<span class="katex">.*?</ae-math>', page.read_text(), re.S
        ):
            text = re.sub(r"<[^>]+>", "", ANNOTATION.sub("", formula))
            drawn |= {ord(c) for c in html.unescape(text)}
    assert len(drawn) > 100
    originals = REPO / "docs" / "node_modules" / "katex" / "dist" / "fonts"
    for path in sorted(
        (built_site / "assets" / "vendor" / "katex" / "fonts").glob("*.woff2")
    ):
        full = set(TTFont(originals / path.name).getBestCmap())
        kept = set(TTFont(path).getBestCmap())
        assert kept < full or not full & drawn, path.name
        missing = (full & drawn) - kept
        assert not missing, f"{path.name} lost {sorted(map(chr, missing))}"


def test_the_chinese_edition_executes_nothing_again(built_site):
    """The Chinese build (after the English one) reuses every result: nothing executed."""
    statuses = json.loads((built_site.parent / "zh-statuses.json").read_text())
    assert statuses and set(statuses.values()) <= {"cached", "shared"}, statuses


def test_the_language_switch_opens_the_same_page_in_the_other_edition(built_site):
    for path in sorted(built_site.rglob("index.html")):
        if path.parent.name == "search":
            continue
        relative = path.relative_to(built_site)
        zh = relative.parts[0] == "zh"
        twin = Path(*relative.parts[1:]) if zh else Path("zh", *relative.parts)
        switch = re.findall(
            r'<a href="([^"]+)" hreflang="(en|zh)" lang="\2" class="md-select__link">',
            path.read_text(),
        )
        assert {lang for _, lang in switch} == {"en", "zh"}, path
        for href, lang in switch:
            target = (path.parent / href / "index.html").resolve()
            expected = built_site / (
                twin if lang != ("zh" if zh else "en") else relative
            )
            assert target == expected.resolve(), (relative, href)


def test_solutions_are_left_out_of_search_and_notebooks_speak_the_edition(built_site):
    """In both editions a folded solution is not indexed (a search result must not give
    one away), and a Chinese chapter's notebook numbers its figures 图, not Figure."""
    solutions = 0
    for path in built_site.rglob("index.html"):
        for m in re.finditer(
            r"<details class=\"success\"([^>]*)>\s*<summary>(\w+)", path.read_text()
        ):
            if m[2] in ("Solution", "解答"):
                solutions += 1
                assert "data-search-exclude" in m[1], path
    assert solutions == 2 * 60
    name = "03-scaled-dot-product-attention"
    notebook = (built_site / "zh" / "chapters" / name / f"{name}.ipynb").read_text()
    assert "**图 3.1.**" in notebook and "**Figure 3.1.**" not in notebook
    assert "use_language('zh')" in notebook  # its demos show their Chinese results


def svg_texts(svg: str) -> list[str]:
    """The texts of a matplotlib SVG whose text is kept as text, one per <text>."""
    found = re.findall(r"<text\b[^>]*>(.*?)</text>", svg, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", t)).strip() for t in found]


def test_what_the_demos_write_for_the_chinese_edition_is_in_chinese(built_site):
    """No sentence, table, value or figure text that a demo wrote for a Chinese page is
    in English (math, code, names and data kept verbatim aside), and the Chinese site
    serves the Chinese figures; the same check finds English in the English results."""
    project, fingerprint = Project.at(REPO), environment_fingerprint(REPO)
    english, checked, found = 0, 0, {}
    for md in sorted((REPO / "docs" / "zh").rglob("*.md")):
        for ref in sorted(scan_page(md.read_text(encoding="utf-8"))):
            item = Item(ref, demo_source(ref, REPO), [md.name])
            item.key = item_key(item, fingerprint, REPO)
            record = read_record(item.record(project))
            zh, kept = record["translations"]["zh"], set(record["kept"])
            texts = {
                "figure": lambda v: svg_texts(v["light"]),
                "text": lambda v: [v],
                "values": lambda v: list(v.values()),
            }[record["kind"]]
            if record["kind"] == "figure":
                served = built_site / "zh" / "assets" / "figures" / f"{ref}.light.svg"
                assert served.read_text(encoding="utf-8") == zh["light"], ref
            words = [w for text in texts(zh) for w in english_words(text, kept)]
            if words:
                found[ref] = words[:5]
            checked += 1
            english += any(english_words(t, kept) for t in texts(record["value"]))
    assert not found, f"English in the Chinese edition's results: {found}"
    assert checked > 150 and english > checked / 2, (checked, english)
