"""The MkDocs plugin (`executed` in mkdocs.yml): wires planning, execution, rendering,
the report and the vendored assets into a build. It holds the state of one build."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from mkdocs.plugins import BasePlugin, event_priority
from mkdocs.structure.files import File, Files
from mkdocs.utils import get_relative_url

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
    files: Files, pages: dict[str, str], project: Project
) -> tuple[dict[str, Item], list[Item]]:
    """The demos the pages (`markdown_pages`) declare, by name, and the labs."""
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
            labs.append(Item(file.src_uri, Path(file.abs_src_path), [page]))
    return demos, labs


def load_cached(item: Item, project: Project) -> None:
    """Fill `item.result` from the cache when a usable entry exists."""
    path = item.record(project)
    if not path.exists():
        return
    item.result, item.status = read_record(path), "cached"
    if item.result is None:
        path.unlink(missing_ok=True)  # corrupt: executed again
    elif item.is_lab and not (project.cache_dir / item.result["value"]).exists():
        item.result = None
    elif item.result.get("measured") and fresh_timings():
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
        if folder.name not in kept_labs:
            shutil.rmtree(folder, ignore_errors=True)


# A code block as pymdownx.highlight writes it on a page, and as mkdocs-jupyter does in a
# lab, with the hidden plain-text copy of each cell that its copy button reads.
CODE_BLOCK = re.compile(
    r'<div class="(language-[\w-]+ highlight|highlight-ipynb[^"]*|clipboard-copy-txt)"'
)


# An exercise's folded solution (`??? success "Solution"`, see `exercises`).
SOLUTION_BLOCK = re.compile(
    r'<details class="success">(?=\s*<summary>Solution</summary>)'
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


class ExecutedPlugin(BasePlugin):
    """Run what the pages declare, cache it, and embed the results."""

    def __init__(self) -> None:
        self.project: Project | None = None
        self.demos: dict[str, Item] = {}
        self.labs: list[Item] = []
        self.typesetter: Typesetter | None = None
        self.numbers: dict[str, tuple[str, str]] = {}
        self.notebooks: dict[str, str] = {}  # site path -> a chapter's notebook

    @event_priority(100)  # before mkdocs-jupyter wraps the notebooks
    def on_files(self, files: Files, config: Any) -> Files:
        """Plan, execute what is stale, and add figures, labs, assets and the report."""
        self.project = project = Project.at(Path(config["config_file_path"]).parent)
        started = time.perf_counter()
        pages = markdown_pages(files)
        self.demos, self.labs = demos, labs = plan(files, pages, project)
        self.numbers = numbering(pages)
        self.typesetter = Typesetter(
            project.root, project.cache_dir / "katex" / "formulas.json"
        )
        fingerprint = environment_fingerprint(project.root)
        everything = [*demos.values(), *labs]
        stale = []
        for item in everything:
            item.key = item_key(item, fingerprint, project.root)
            load_cached(item, project)
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
                    content = item.result["value"][palette]
                    files.append(File.generated(config, uri, content=content))
        # mkdocs-jupyter renders each executed notebook in place of its lab script.
        for item in labs:
            script = files.get_file_from_path(item.name)
            files.remove(script)
            files.append(
                File(
                    item.pages[0],
                    src_dir=str(project.cache_dir / "labs" / item.key),
                    dest_dir=config["site_dir"],
                    use_directory_urls=config["use_directory_urls"],
                )
            )
        self.notebooks = self.chapter_notebooks(pages, config)
        add_vendored_assets(files, config, project.root)
        if files.get_file_from_path(REPORT_URI) is None:
            seconds = time.perf_counter() - started
            report = build_report(list(demos.values()), labs, fingerprint, seconds)
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
                number(markdown, page, self.numbers),
                page,
                self.demos,
                self.project.root,
                config["site_url"] or "/",
                config["repo_url"],
                registry.result["value"] if registry else None,
            )
        return notebooks

    def on_page_markdown(self, markdown: str, page: Any, **kwargs: Any) -> str:
        """Replace each declaration with its result: figures (light and dark) and values."""
        return render_page(markdown, page.file.src_uri, self.demos, self.numbers)

    def on_page_content(self, html: str, page: Any, **kwargs: Any) -> str:
        """Typeset the page's math with KaTeX, so that it reads without JavaScript: in
        the article and in the table of contents."""
        stack = list(page.toc)
        while stack:
            link = stack.pop()
            # Material shows `typeset.title` and keeps `title` as text (aria-label)
            typeset = self.typesetter.typeset_title(link.title, page.file.src_uri)
            if typeset != link.title:
                link.typeset = {"title": typeset}
            stack.extend(link.children)
        html = self.typesetter.typeset(html, page.file.src_uri)
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
            )
        if self.project is not None:
            prune([*self.demos.values(), *self.labs], self.project)
