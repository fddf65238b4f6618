"""The MkDocs plugin (`executed` in mkdocs.yml): wires planning, execution, rendering,
the report and the vendored assets into a build. It holds the state of one build."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from mkdocs.plugins import BasePlugin, event_priority
from mkdocs.structure.files import File, Files
from mkdocs.utils import get_relative_url

from .editions import differences
from .errors import ExecutionError
from .katex import Typesetter
from .notebook import chapter_notebook
from .plan import (
    CHAPTER_RE,
    REGISTRY,
    Item,
    Project,
    demo_source,
    environment_fingerprint,
    item_key,
    numbering,
    read_record,
    scan_page,
    write_record,
)
from .render import FIGURE_DIR, REPORT_URI, number, render_page
from .report import build_report
from .run import execute
from .vendor import add_vendored_assets, subset_fonts
from .words import SOLUTION_TITLES

LAB_DIR = "labs/"
TIMINGS_ENV = "AE_TIMINGS"  # "fresh": re-measure every timed item (the Pages workflow)


def fresh_timings() -> bool:
    """Whether this build measures every timed item again instead of reusing the cache.

    Preview builds reuse cached timings and say so on the page; the publishing build
    (`AE_TIMINGS=fresh nox -s build` in the Pages workflow) measures them all again.
    """
    return os.environ.get(TIMINGS_ENV, "") == "fresh"


def markdown_pages(files: Files) -> dict[str, str]:
    """Each Markdown page's source, by its path in the docs."""
    return {
        file.src_uri: Path(file.abs_src_path).read_text(encoding="utf-8")
        for file in files
        if file.src_uri.endswith(".md") and file.abs_src_path
    }


def plan(
    files: Files, pages: dict[str, str], project: Project, english: Path | None = None
) -> tuple[dict[str, Item], list[Item]]:
    """The demos the pages (`markdown_pages`) declare, by name, and the labs. In a
    translation (`english`: the English edition's docs), a lab is the English lab,
    executed once for both editions; its Markdown cells are swapped in afterwards."""
    demos: dict[str, Item] = {}
    labs: list[Item] = []
    for page, text in pages.items():
        for ref in sorted(scan_page(text)):
            source = demo_source(ref, project.root)
            if not source.exists():
                raise ExecutionError(
                    f"page {page} declares demo {ref}, but "
                    f"{source.relative_to(project.root)} does not exist"
                )
            item = demos.setdefault(ref, Item(ref, source, []))
            item.pages.append(page)
    for file in files:
        if file.src_uri.startswith(LAB_DIR) and file.src_uri.endswith(".py"):
            page = file.src_uri.removesuffix(".py") + ".ipynb"  # what the site shows
            source = (
                Path(file.abs_src_path) if english is None else english / file.src_uri
            )
            labs.append(Item(file.src_uri, source, [page]))
    return demos, labs


def load_cached(item: Item, project: Project, translation: bool = False) -> None:
    """Fill `item.result` from the cache when a usable entry exists. A translation's
    build reuses the timings that the English build of the same run measured again."""
    path = item.record(project)
    if not path.exists():
        return
    item.result, item.status = read_record(path), "cached"
    if item.result is None:
        path.unlink(missing_ok=True)  # corrupt: executed again
    elif item.is_lab and not (project.cache_dir / item.result["value"]).exists():
        item.result = None
    elif item.result.get("measured") and fresh_timings():
        if translation:
            item.status = "shared"  # measured by the English build just before
        else:
            item.result = None  # the publishing build measures again


def prune(items: list[Item], project: Project) -> None:
    """Remove the cache entries a successful build made stale: older results of the items
    it used. Entries of items it did not plan (another edition's, say) are kept, and so
    are the labs' notebooks that a kept entry points to."""
    keys = {i.name: i.key for i in items}
    if not keys or not project.cache_dir.is_dir():
        return
    kept_labs = set()
    for path in project.cache_dir.glob("*.json"):
        if path.name == "last-build.json":
            continue
        record = read_record(path) or {}
        name = record.get("name")
        if name in keys and keys[name] != path.stem:
            path.unlink(missing_ok=True)
        elif record.get("kind") == "lab":
            kept_labs.add(Path(record["value"]).parts[1])
    for folder in (project.cache_dir / "labs").glob("*"):
        # a translated lab's folder is named after its English lab's: "<key>-<digest>"
        if folder.name.split("-")[0] not in kept_labs:
            shutil.rmtree(folder, ignore_errors=True)


# A code block as pymdownx.highlight writes it on a page, and as mkdocs-jupyter does in a
# lab, with the hidden plain-text copy of each cell that its copy button reads.
CODE_BLOCK = re.compile(
    r'<div class="(language-[\w-]+ highlight|highlight-ipynb[^"]*|clipboard-copy-txt)"'
)


# An exercise's folded solution (`??? success "Solution"`, see `exercises`).
SOLUTION_BLOCK = re.compile(
    r'<details class="success">(?=\s*<summary>(?:'
    + "|".join(map(re.escape, SOLUTION_TITLES))
    + r")</summary>)"
)
# A chapter's table under its caption ("Table 3.1. ..."): rows of a demo's numbers.
CAPTIONED_TABLE = re.compile(r"(</figcaption>\s*)<table>")


def without_code_in_search(html: str) -> str:
    """Mark code blocks so that search neither indexes them nor shows them as excerpts;
    inline code and the prose around a block stay searchable. Left out too: exercises'
    solutions (a search result should not give one away) and the bodies of chapters'
    tables, whose captions say what they hold (the search index is loaded on every first
    visit, and rows of numbers are not what a reader searches for)."""
    html = SOLUTION_BLOCK.sub('<details class="success" data-search-exclude>', html)
    html = CAPTIONED_TABLE.sub(r"\1<table data-search-exclude>", html)
    return CODE_BLOCK.sub(r'<div class="\1" data-search-exclude', html)


# The stylesheets mkdocs-jupyter writes into every notebook page (about 590 kB).
NOTEBOOK_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.DOTALL)
NOTEBOOK_CSS = "assets/stylesheets/notebook.{digest}.css"


def shared_notebook_css(page_html: str, page_url: str) -> tuple[str, str, str]:
    """A notebook page with its inline stylesheets replaced by one link to a shared file,
    which the browser caches across labs; the page, the file's URI and its CSS."""
    styles = NOTEBOOK_STYLE.findall(page_html)
    # mkdocs-jupyter also writes a Python list's repr as a stylesheet: not CSS, dropped.
    css = "\n".join(s.strip() for s in styles if not s.strip().startswith("["))
    uri = NOTEBOOK_CSS.format(digest=hashlib.sha256(css.encode()).hexdigest()[:8])
    href = get_relative_url(uri, page_url)
    link = f'<link rel="stylesheet" href="{href}">'
    first = iter([link])
    page_html = NOTEBOOK_STYLE.sub(lambda _: next(first, ""), page_html)
    return page_html, uri, css


def check_edition(files: Files, pages: dict[str, str], english: Path) -> None:
    """Stop a translation's build when a page has no English page or the reverse, or
    when a page differs from its English page in what the build reads (`editions`)."""
    found = []
    ours = {f.src_uri for f in files if f.src_uri.endswith((".md", ".py"))}
    theirs = {
        p.relative_to(english).as_posix()
        for p in english.rglob("*")
        if p.suffix in (".md", ".py")
    }
    found += [f"{page}: no English page" for page in sorted(ours - theirs)]
    found += [f"{page}: not translated" for page in sorted(theirs - ours)]
    for page, markdown in sorted(pages.items()):
        if page in theirs:
            english_page = (english / page).read_text(encoding="utf-8")
            found += [f"{page}: {d}" for d in differences(english_page, markdown)]
    if found:
        raise ExecutionError(
            "the translation differs from the English edition:\n  " + "\n  ".join(found)
        )


NOTEBOOK_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
HTML_HEADING = re.compile(r'<h([1-6]) id="[^"]*"(.*?)</h\1>', re.S)
ANCHOR_LINK = re.compile(r'(class="anchor-link" href="#)[^"]*(")')


def lab_anchors(notebook: Any) -> list[tuple[int, str]]:
    """The (level, id) of each heading of a notebook's Markdown cells, in order, with
    the ids mkdocs-jupyter gives them (ASCII slugs: a Chinese heading would get none)."""
    from mkdocs_jupyter.utils import slugify
    from nbconvert.filters.strings import _convert_header_id

    found = []
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for m in NOTEBOOK_HEADING.finditer(cell.source):
                text = re.sub(r"[*_`]", "", m[2])
                found.append((len(m[1]), _convert_header_id(slugify(text))))
    return found


def toc_links(toc: Any) -> list[Any]:
    """Every link of a page's table of contents, in document order."""
    stack, links = list(reversed(list(toc))), []
    while stack:
        link = stack.pop()
        links.append(link)
        stack.extend(reversed(link.children))
    return links


def with_english_anchors(html: str, toc: Any, anchors: list[tuple[int, str]]) -> str:
    """A translated lab's headings and table of contents given the English lab's
    anchors, in order, so that links into the lab work in both editions."""
    headings = len(HTML_HEADING.findall(html))
    if headings != len(anchors):
        raise ExecutionError(
            f"a translated lab has {headings} headings, its English lab "
            f"{len(anchors)}: each heading must have its twin"
        )
    ids = iter(anchors)

    def heading(m: re.Match[str]) -> str:
        _, id_ = next(ids)
        inner = ANCHOR_LINK.sub(lambda a: f"{a[1]}{id_}{a[2]}", m[2])
        return f'<h{m[1]} id="{id_}"{inner}</h{m[1]}>'

    html = HTML_HEADING.sub(heading, html)
    remaining = list(anchors)
    for link in toc_links(toc):
        k = next((i for i, (lv, _) in enumerate(remaining) if lv == link.level), None)
        if k is not None:
            link.id = remaining.pop(k)[1]
            remaining = remaining[k:]
    return html


def translated_lab(
    folder: Path, item: Item, script: Path
) -> tuple[Path, list[tuple[int, str]]]:
    """The English lab's executed notebook with the translation's Markdown cells, in a
    folder of its own beside it; nothing is executed again."""
    import jupytext
    import nbformat

    page = item.pages[0]
    notebook = nbformat.read(folder / page, as_version=4)
    anchors = lab_anchors(notebook)  # the English headings'
    cells = jupytext.read(script).cells
    if [c.cell_type for c in cells] != [c.cell_type for c in notebook.cells]:
        raise ExecutionError(
            f"lab {script.name}: its cells differ from the English lab's"
        )
    for k, (ours, theirs) in enumerate(zip(notebook.cells, cells, strict=True)):
        if ours.cell_type == "markdown":
            found = differences(ours.source, theirs.source, anchors=False)
            if found:
                raise ExecutionError(
                    f"lab {script.name}, Markdown cell {k}: " + "; ".join(found)
                )
            ours.source = theirs.source
        elif ours.source != theirs.source:
            raise ExecutionError(
                f"lab {script.name}: code cell {k} differs from the English lab's; "
                "a translation changes only the Markdown cells"
            )
    digest = hashlib.sha256(script.read_bytes()).hexdigest()[:12]
    out = folder.with_name(f"{folder.name}-{digest}")
    (out / page).parent.mkdir(parents=True, exist_ok=True)
    (out / page).write_text(nbformat.writes(notebook), encoding="utf-8")
    return out, anchors


class ExecutedPlugin(BasePlugin):
    """Run what the pages declare, cache it, and embed the results."""

    def __init__(self) -> None:
        self.project: Project | None = None
        self.demos: dict[str, Item] = {}
        self.labs: list[Item] = []
        self.typesetter: Typesetter | None = None
        self.numbers: dict[str, tuple[str, str]] = {}
        self.notebooks: dict[str, str] = {}  # site path -> a chapter's notebook
        self.language = "en"  # theme.language of the edition being built
        self.english: Path | None = None  # the English docs, when this is a translation
        self.lab_anchors: dict[str, list[tuple[int, str]]] = {}  # a translated lab's

    @event_priority(100)  # before mkdocs-jupyter wraps the notebooks
    def on_files(self, files: Files, config: Any) -> Files:
        """Plan, execute what is stale, and add figures, labs, assets and the report."""
        self.project = project = Project.at(Path(config["config_file_path"]).parent)
        started = time.perf_counter()
        self.language = dict(config["theme"].items()).get("language", "en")
        english = project.root / "docs" / "en"
        # A translation: an edition in another language whose English twin is docs/en.
        translation = (
            self.language != "en"
            and english.is_dir()
            and Path(config["docs_dir"]).resolve() != english
        )
        self.english = english if translation else None
        self.lab_anchors = {}
        pages = markdown_pages(files)
        if self.english is not None:
            check_edition(files, pages, self.english)
        self.demos, self.labs = demos, labs = plan(files, pages, project, self.english)
        self.numbers = numbering(pages)
        # one cache an edition: each keeps what its own build used
        self.typesetter = Typesetter(
            project.root, project.cache_dir / "katex" / f"formulas.{self.language}.json"
        )
        fingerprint = environment_fingerprint(project.root)
        everything = [*demos.values(), *labs]
        stale = []
        for item in everything:
            item.key = item_key(item, fingerprint, project.root)
            load_cached(item, project, translation=self.english is not None)
            if item.result is None:
                stale.append(item)
        try:
            execute(stale, project)
        except BaseException:
            for item in stale:
                if item.result is None:
                    item.status = "failed or not run"
            raise
        finally:
            statuses = {i.name: i.status for i in everything}
            write_record(project.cache_dir / "last-build.json", statuses)

        for item in demos.values():
            if item.result["kind"] == "figure":
                for palette in ("light", "dark"):
                    uri = f"{FIGURE_DIR}/{item.name}.{palette}.svg"
                    content = item.shown(self.language)[palette]
                    files.append(File.generated(config, uri, content=content))
        # mkdocs-jupyter renders each executed notebook in place of its lab script.
        for item in labs:
            script = files.get_file_from_path(item.name)
            files.remove(script)
            folder = project.cache_dir / "labs" / item.key
            if self.english is not None:  # the English outputs under translated text
                folder, anchors = translated_lab(
                    folder, item, Path(script.abs_src_path)
                )
                self.lab_anchors[item.pages[0]] = anchors
            files.append(
                File(
                    item.pages[0],
                    src_dir=str(folder),
                    dest_dir=config["site_dir"],
                    use_directory_urls=config["use_directory_urls"],
                )
            )
        self.notebooks = self.chapter_notebooks(pages, config)
        if self.english is not None:  # the English edition's stylesheets and scripts
            for path in sorted((self.english / "assets").rglob("*")):
                uri = path.relative_to(self.english).as_posix()
                if path.is_file() and files.get_file_from_path(uri) is None:
                    files.append(
                        File(
                            uri,
                            src_dir=str(self.english),
                            dest_dir=config["site_dir"],
                            use_directory_urls=config["use_directory_urls"],
                        )
                    )
        add_vendored_assets(files, config, project.root)
        if files.get_file_from_path(REPORT_URI) is None:
            seconds = time.perf_counter() - started
            report = build_report(
                list(demos.values()), labs, fingerprint, seconds, self.language
            )
            files.append(File.generated(config, REPORT_URI, content=report))
        return files

    def chapter_notebooks(self, pages: dict[str, str], config: Any) -> dict[str, str]:
        """Each chapter as a notebook, at chapters/<name>/<name>.ipynb beside its page."""
        registry = self.demos.get(REGISTRY)
        notebooks = {}
        for page, markdown in pages.items():
            if CHAPTER_RE.search(page) is None:
                continue
            name = Path(page).stem
            notebooks[f"{Path(page).parent}/{name}/{name}.ipynb"] = chapter_notebook(
                number(markdown, page, self.numbers, self.language),
                page,
                self.demos,
                self.project.root,
                config["site_url"] or "/",
                config["repo_url"],
                registry.result["value"] if registry else None,
                self.language,
            )
        return notebooks

    def on_page_markdown(self, markdown: str, page: Any, **kwargs: Any) -> str:
        """Replace each declaration with its result: figures (light and dark) and values."""
        return render_page(
            markdown, page.file.src_uri, self.demos, self.numbers, self.language
        )

    def on_page_content(self, html: str, page: Any, **kwargs: Any) -> str:
        """Typeset the page's math with KaTeX, so that it reads without JavaScript: in
        the article and in the table of contents."""
        for link in toc_links(page.toc):
            # Material shows `typeset.title` and keeps `title` as text (aria-label)
            typeset = self.typesetter.typeset_title(link.title, page.file.src_uri)
            if typeset != link.title:
                link.typeset = {"title": typeset}
        html = self.typesetter.typeset(html, page.file.src_uri)
        if page.file.src_uri in self.lab_anchors:  # a translated lab: English anchors
            anchors = self.lab_anchors[page.file.src_uri]
            html = with_english_anchors(html, page.toc, anchors)
        # the anchors of labelled equations, made here, for mkdocs' check of links
        if page.present_anchor_ids is not None:
            page.present_anchor_ids.update(
                re.findall(r'<div class="equation" id="([^"]+)"', html)
            )
        return without_code_in_search(html)

    def on_page_context(self, context: Any, page: Any, **kwargs: Any) -> Any:
        """A lab page's "edit" link opens its jupytext script, not the generated notebook."""
        if page.edit_url and page.file.src_uri.startswith(LAB_DIR):
            page.edit_url = page.edit_url.removesuffix(".ipynb") + ".py"
        if CHAPTER_RE.search(page.file.src_uri):
            page.chapter_notebook = f"{page.file.name}.ipynb"  # main.html's buttons
        return context

    def on_post_page(self, output: str, page: Any, config: Any) -> str:
        """A lab page links one shared notebook stylesheet instead of inlining it."""
        if not page.file.src_uri.startswith(LAB_DIR) or "jupyter-wrapper" not in output:
            return output
        output, uri, css = shared_notebook_css(output, page.url)
        path = Path(config["site_dir"]) / uri
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(css, encoding="utf-8")
        return output

    def on_post_build(self, config: Any) -> None:
        # Material's search writes its index with every non-ASCII character escaped
        # (\\u6ce8, six bytes for three): the same JSON in UTF-8 is a third smaller.
        index = Path(config["site_dir"]) / "search" / "search_index.json"
        if index.exists():
            data = json.loads(index.read_text(encoding="utf-8"))
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            index.write_text(text, encoding="utf-8")
        # Written here, not added as files: mkdocs-jupyter would render them as pages.
        for uri, content in self.notebooks.items():
            path = Path(config["site_dir"]) / uri
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        if self.typesetter is not None:
            self.typesetter.save()
            subset_fonts(
                Path(config["site_dir"]),
                list(self.typesetter.used.values()),
                self.project.cache_dir / "fonts",
                self.project.root,
            )
        if self.project is not None:
            prune([*self.demos.values(), *self.labs], self.project)
