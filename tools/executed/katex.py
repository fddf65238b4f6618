"""Math typeset at build time: KaTeX, from docs/node_modules (pinned in
docs/package-lock.json), run by Node once per page that has formulas.

pymdownx.arithmatex marks each formula in the HTML (`<span class="arithmatex">\\(...\\)`
inline, `<div class="arithmatex">\\[...\\]` on its own line); each mark is replaced by
KaTeX's HTML and MathML, so a page reads without JavaScript and search sees no TeX.
Results are kept in `.cache/executed/katex/formulas.<language>.json`, one file an edition,
keyed by KaTeX's version, this module's script and the formula.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import subprocess
from pathlib import Path

from .errors import ExecutionError
from .plan import EQUATION_LABEL_RE, anchor, write_record

# One formula as pymdownx.arithmatex's generic mode writes it.
MARK = re.compile(
    r'<(?P<tag>span|div) class="arithmatex">'
    r"(?:\\\((?P<inline>.*?)\\\)|\\\[(?P<display>.*?)\\\])</(?P=tag)>",
    re.DOTALL,
)
# What the build reads in a display formula and KaTeX never sees: a label, and \notag.
NOT_FOR_KATEX = re.compile(rf"{EQUATION_LABEL_RE.pattern}|\\(?:notag|nonumber)\b")
# A formula in a heading's title, which the toc extension keeps as text.
TITLE_MARK = re.compile(r"\\\((.*?)\\\)", re.DOTALL)
# Reads [[tex, display], ...] as JSON on stdin; writes [[html, error], ...].
RENDER = """
const katex = require(process.argv[1]);
let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const out = JSON.parse(input).map(([tex, display]) => {
    try {
      return [katex.renderToString(tex, { displayMode: display, throwOnError: true }), null];
    } catch (e) {
      return [null, String(e.message)];
    }
  });
  process.stdout.write(JSON.stringify(out));
});
"""
# Search indexes no formula: its TeX (in the MathML) and its glyphs (in the HTML, split by
# zero-width spaces) are no words; the prose around a formula stays searchable. The marker
# sits on an element of its own: mkdocs-material's search parser matches end tags by name,
# so inside KaTeX's nested spans an excluded span would end at the first `</span>`.
SEARCH_EXCLUDE = "<ae-math data-search-exclude>{}</ae-math>"


class Typesetter:
    """Typesets the formulas of pages, reusing what an earlier build rendered."""

    def __init__(self, root: Path, cache_file: Path) -> None:
        self.katex = root / "docs" / "node_modules" / "katex"
        self.cache_file = cache_file
        self.used: dict[str, str] = {}
        try:
            self.cache = json.loads(cache_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.cache = {}
        try:
            package = json.loads((self.katex / "package.json").read_text("utf-8"))
            self.version = package["version"]
        except (OSError, ValueError, KeyError):
            self.version = ""

    def key(self, tex: str, display: bool) -> str:
        text = f"{self.version}\0{RENDER}\0{SEARCH_EXCLUDE}\0{int(display)}\0{tex}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def typeset(self, page_html: str, page: str) -> str:
        """The page with every formula typeset; a formula KaTeX refuses stops the build.
        A display formula labelled `\\label{eq:name}` is wrapped in an element with the
        id "eq-name", the target of its references; `\\notag` marks one left unnumbered.
        Neither reaches KaTeX."""
        marks, ids = [], []
        for m in MARK.finditer(page_html):
            display = m["display"] is not None
            tex = html.unescape(m["display"] if display else m["inline"])
            found = EQUATION_LABEL_RE.search(tex) if display else None
            ids.append(anchor(found["ref"]) if found else None)
            marks.append((NOT_FOR_KATEX.sub("", tex) if display else tex, display))
        typeset = iter(zip(self._html(marks, page), ids, strict=True))

        def place(_: re.Match[str]) -> str:
            out, id_ = next(typeset)
            return f'<div class="equation" id="{id_}">{out}</div>' if id_ else out

        return MARK.sub(place, page_html)

    def typeset_title(self, title: str, page: str) -> str:
        """A heading's title as the table of contents shows it (text, where the toc
        extension left each formula as `\\(...\\)`), with its formulas typeset."""
        marks = [(html.unescape(m[1]), False) for m in TITLE_MARK.finditer(title)]
        typeset = iter(self._html(marks, page))
        return TITLE_MARK.sub(lambda _: next(typeset), title)

    def _html(self, marks: list[tuple[str, bool]], page: str) -> list[str]:
        keys = [self.key(tex, display) for tex, display in marks]
        missing = {
            k: mark for k, mark in zip(keys, marks, strict=True) if k not in self.cache
        }
        if missing:
            self.cache.update(self._render(list(missing.items()), page))
        self.used.update((key, self.cache[key]) for key in keys)
        return [self.cache[key] for key in keys]

    def _render(self, todo: list, page: str) -> dict[str, str]:
        if not (self.katex / "package.json").is_file():
            raise ExecutionError(
                "docs/node_modules/katex is missing: run `npm ci --prefix docs` "
                "(nox does it for you)"
            )
        try:
            result = subprocess.run(
                ["node", "-e", RENDER, str(self.katex)],
                input=json.dumps([formula for _, formula in todo]),
                capture_output=True,
                timeout=120,
                check=True,
                encoding="utf-8",
            )
        except FileNotFoundError as exc:
            raise ExecutionError(
                "Node.js is needed to typeset math: install node"
            ) from exc
        except subprocess.CalledProcessError as exc:
            raise ExecutionError(
                f"KaTeX failed on {page}: {exc.stderr.strip()}"
            ) from exc
        rendered = {}
        for (key, (tex, _)), (out, error) in zip(
            todo, json.loads(result.stdout), strict=True
        ):
            if error is not None:
                raise ExecutionError(
                    f"page {page}: KaTeX cannot typeset {tex!r}: {error}"
                )
            rendered[key] = SEARCH_EXCLUDE.format(out)
        return rendered

    def save(self) -> None:
        """Keep what this build used (a formula removed from every page is forgotten),
        written atomically."""
        write_record(self.cache_file, dict(sorted(self.used.items())))
