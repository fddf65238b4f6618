"""Rendering: each declaration of a page replaced by its result, and the timing box."""

from __future__ import annotations

import posixpath
import re

from .checks import check_leftovers
from .errors import ExecutionError
from .exercises import check_exercises
from .plan import (
    CHAPTER_RE,
    FIGURE_RE,
    REGISTRY,
    VALUE_RE,
    Item,
    anchor,
    in_code,
    numbered,
    scan_page,
)
from .words import words

# A figure declaration and the first line of the caption block that must follow it.
CAPTIONED_RE = re.compile(FIGURE_RE.pattern + r"[ \t]*\n/// caption[ \t]*\n")
# A reference to a numbered figure, table or equation, on its page or another:
# `[](#fig:module.function)`, `[](#tab:label)`, `[](#eq:label)`, or with a page before the
# `#`, as in `[](03-scaled-dot-product-attention.md#fig:module.function)`; the build writes
# the text ("Figure 3.2", "Table 3.1", "(3.4)").
REFERENCE_RE = re.compile(
    r"\[\]\((?P<path>[^)\s#]*)#(?P<key>(?P<kind>fig|tab|eq):(?P<ref>[a-z_][\w.-]*))\)"
)
FIGURE_DIR = "assets/figures"


REPORT_URI = "appendix/build-report.md"


def render_page(
    markdown: str,
    page: str,
    demos: dict[str, Item],
    numbers: dict[str, tuple[str, str]] | None = None,
    language: str = "en",
) -> str:
    """`page`'s Markdown with figures (light and dark) and values in place of their
    declarations, checked for leftovers, and the timing box if it shows timings.

    `numbers` (from `plan.numbering`) numbers the figures, tables and equations of
    chapters (see `number`); a reference to an unknown one stops the build. A chapter's exercises are checked
    against the code exercises declared in snippets/exercises/ (`exercises`)."""
    here = posixpath.dirname(page)
    declared = scan_page(markdown)

    def planned(ref: str) -> Item:
        if ref not in demos:  # the page changed between planning and now
            raise ExecutionError(
                f"page {page}: {ref} was not executed; was the page edited "
                "while the site was being built? Build again."
            )
        return demos[ref]

    if REGISTRY in declared:
        check_exercises(markdown, page, planned(REGISTRY).result["value"], language)
    markdown = number(markdown, page, numbers or {}, language)

    def figure(m: re.Match[str]) -> str:
        item, alt = planned(m["ref"]), m["alt"].strip()
        if item.result["kind"] != "figure":
            raise ExecutionError(
                f"page {page}: {item.name} returned {item.result['kind']}, "
                "but the page shows it as a figure"
            )
        if not alt:
            raise ExecutionError(f"page {page}: figure {item.name} has no alt text")
        after = markdown[m.end() :].lstrip(" \t").split("\n", 2)
        if len(after) < 2 or after[1].strip() != "/// caption":
            raise ExecutionError(
                f"page {page}: figure {item.name} must be followed "
                "by a `/// caption` block on the next line"
            )
        url = posixpath.relpath(f"{FIGURE_DIR}/{item.name}", here)
        return (
            f"![{alt}]({url}.light.svg#only-light){{ loading=lazy }}"
            f"![{alt}]({url}.dark.svg#only-dark){{ loading=lazy }}"
        )

    def value(m: re.Match[str]) -> str:
        item, key = planned(m["ref"]), m["key"]
        kind, shown = item.result["kind"], item.shown(language)
        if key is None:
            if kind != "text":
                raise ExecutionError(
                    f"page {page}: {{{{ {item.name} }}}} needs a "
                    f"demo that returns a str, not {kind}"
                )
            return shown
        if kind != "values" or key not in shown:
            raise ExecutionError(
                f"page {page}: {item.name} returned no value "
                f"named {key!r} (it has: {sorted(shown if kind == 'values' else [])})"
            )
        return shown[key]

    markdown = VALUE_RE.sub(value, FIGURE_RE.sub(figure, markdown))
    check_leftovers(markdown, page)
    timed = [demos[r] for r in sorted(declared) if demos[r].result.get("timings")]
    return markdown + timing_note(timed, here, language) if timed else markdown


def number(
    markdown: str,
    page: str,
    numbers: dict[str, tuple[str, str]],
    language: str = "en",
) -> str:
    """A chapter's figures, tables and display equations numbered, and the text of every
    reference written.

    A figure's caption starts "**Figure 3.2.**", a table's "**Table 3.1.**" (its
    `/// table-caption` block becomes a caption above the table, with the label's anchor),
    an equation gets `\\tag{3.4}` (the typesetter gives a labelled one its anchor). On other
    pages captions have no number and equations no tag. Code is left as it is."""
    here = posixpath.dirname(page)
    chapter = CHAPTER_RE.search(page)
    names = words(language)

    def table(m: re.Match[str], name: str | None, number: str | None) -> str:
        indent = m["indent"]
        header = f"{indent}/// caption | <"  # a table's caption goes above it
        if name:
            header += f"\n{indent}    attrs: {{id: {anchor('tab:' + name)}}}"
        return header + (
            f"\n{indent}**{names['tab'].format(number)}.** " if number else ""
        )

    def equation(m: re.Match[str], name: str | None, number: str | None) -> str:
        indent = m["indent"]
        tex = m["tex"] + (f"\n{indent}\\tag{{{number}}}" if number else "")
        return f"{indent}$$\n{tex}\n{indent}$$"

    for kind, rewrite in (("tab", table), ("eq", equation)):
        items = numbered(kind, markdown, page)
        # from the end, so that the positions of the earlier ones hold
        for k, (m, name) in reversed(list(enumerate(items, start=1))):
            number = f"{int(chapter['number'])}.{k}" if chapter else None
            markdown = (
                markdown[: m.start()] + rewrite(m, name, number) + markdown[m.end() :]
            )

    def caption(m: re.Match[str]) -> str:
        key = f"fig:{m['ref']}"
        if numbers.get(key, ("",))[0] != page:
            return m[0]
        name = names["fig"].format(numbers[key][1])
        return f"{m[0]}    attrs: {{id: {anchor(key)}}}\n**{name}.** "

    markdown = CAPTIONED_RE.sub(caption, markdown)
    code = in_code(markdown)

    def reference(m: re.Match[str]) -> str:
        if code(m.start()):
            return m[0]
        key, path = m["key"], m["path"]
        target = posixpath.normpath(posixpath.join(here, path)) if path else page
        if key not in numbers or numbers[key][0] != target:
            where = f"on {numbers[key][0]}" if key in numbers else "not numbered"
            raise ExecutionError(
                f"page {page}: the reference {m[0]} points to {target}, but {key} is {where}"
            )
        text = names[m["kind"]].format(numbers[key][1])
        return f"[{text}]({path}#{anchor(key)})"

    markdown = REFERENCE_RE.sub(reference, markdown)
    code = in_code(markdown)
    for stray in re.finditer(r"#(fig|tab|eq):", markdown):
        if not code(stray.start()):
            start = stray.start()
            raise ExecutionError(
                f"page {page}: a reference must be written [](page.md#fig:module.function), "
                f"[](#tab:label) or [](#eq:label), with empty text: "
                f"{markdown[max(0, start - 40) : start + 40]!r}"
            )
    return markdown


def timing_note(items: list[Item], here: str, language: str = "en") -> str:
    """A box at the end of a page with timings: where, how and when they were measured."""
    say = words(language)
    records = [t for item in items for t in item.result["timings"]]
    machines = say["and"].join(sorted({t["machine"] for t in records}))
    threads = "/".join(str(n) for n in sorted({t["threads"] for t in records}))
    rounds = sorted({t["rounds"] for t in records})
    loads = [x for t in records for x in t["load"]]
    spread = max(c["spread"] for t in records for c in t["calls"].values())
    when = say["and"].join(
        sorted(
            {
                say["now"]
                if i.status == "executed"
                else say["shared"]
                if i.status == "shared"
                else say["cached"].format(date=i.result["produced"])
                for i in items
            }
        )
    )
    report = posixpath.relpath(REPORT_URI, here or ".")
    n_rounds = (
        f"{rounds[0]}"
        if len(rounds) == 1
        else say["rounds"].format(first=rounds[0], last=rounds[-1])
    )
    on_cpu = not any(w in machines for w in ("CUDA", "GPU"))
    plural = "s" if threads != "1" else ""
    cpu = say["cpu"].format(threads=threads, s=plural) if on_cpu else ""
    text = say["timing"].format(
        when=when,
        machines=machines,
        cpu=cpu,
        rounds=n_rounds,
        low=min(loads),
        high=max(loads),
        spread=spread * 100,
        report=report,
    )
    return "\n".join(["", "", f'!!! info "{say["timing_title"]}"', f"    {text}", ""])
