"""Rendering: each declaration of a page replaced by its result, and the timing box."""

from __future__ import annotations

import posixpath
import re

from .checks import check_leftovers
from .errors import ExecutionError
from .plan import FIGURE_RE, VALUE_RE, Item, scan_page

# A figure declaration and the first line of the caption block that must follow it.
CAPTIONED_RE = re.compile(FIGURE_RE.pattern + r"[ \t]*\n/// caption[ \t]*\n")
# A reference to a figure, on its page or another: `[](#fig:module.function)` or
# `[](03-scaled-dot-product-attention.md#fig:module.function)`; the build writes the text.
FIGURE_REF_RE = re.compile(
    r"\[\]\((?P<path>[^)\s#]*)#fig:(?P<ref>[a-z_]\w*\.[a-z_]\w*)\)"
)
FIGURE_DIR = "assets/figures"


def figure_anchor(ref: str) -> str:
    """The id of a numbered figure on its page."""
    return "fig-" + ref.replace(".", "-")


REPORT_URI = "appendix/build-report.md"


def render_page(
    markdown: str,
    page: str,
    demos: dict[str, Item],
    figures: dict[str, tuple[str, str]] | None = None,
) -> str:
    """`page`'s Markdown with figures (light and dark) and values in place of their
    declarations, checked for leftovers, and the timing box if it shows timings.

    `figures` (from `plan.figure_numbers`) numbers the figures of chapters: each caption
    starts with "Figure 3.2." and each reference `[](#fig:module.function)` becomes a
    link with that text; a reference to an unknown figure stops the build."""
    here = posixpath.dirname(page)
    declared = scan_page(markdown)
    figures = figures or {}
    markdown = number_figures(markdown, page, figures)

    def planned(ref: str) -> Item:
        if ref not in demos:  # the page changed between planning and now
            raise ExecutionError(
                f"page {page}: {ref} was not executed; was the page edited "
                "while the site was being built? Build again."
            )
        return demos[ref]

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
        result = item.result
        if key is None:
            if result["kind"] != "text":
                raise ExecutionError(
                    f"page {page}: {{{{ {item.name} }}}} needs a "
                    f"demo that returns a str, not {result['kind']}"
                )
            return result["value"]
        if result["kind"] != "values" or key not in result["value"]:
            raise ExecutionError(
                f"page {page}: {item.name} returned no value "
                f"named {key!r} (it has: {sorted(result.get('value') or [])})"
            )
        return result["value"][key]

    markdown = VALUE_RE.sub(value, FIGURE_RE.sub(figure, markdown))
    check_leftovers(markdown, page)
    timed = [demos[r] for r in sorted(declared) if demos[r].result.get("timings")]
    return markdown + timing_note(timed, here) if timed else markdown


def number_figures(
    markdown: str, page: str, figures: dict[str, tuple[str, str]]
) -> str:
    """Caption prefixes and anchors for the page's numbered figures, and the text of
    every figure reference."""
    here = posixpath.dirname(page)

    def caption(m: re.Match[str]) -> str:
        if figures.get(m["ref"], ("",))[0] != page:
            return m[0]
        number = figures[m["ref"]][1]
        return (
            f"{m[0]}    attrs: {{id: {figure_anchor(m['ref'])}}}\n**Figure {number}.** "
        )

    def reference(m: re.Match[str]) -> str:
        ref, path = m["ref"], m["path"]
        target = posixpath.normpath(posixpath.join(here, path)) if path else page
        if ref not in figures or figures[ref][0] != target:
            where = (
                f"on {figures[ref][0]}" if ref in figures else "not a numbered figure"
            )
            raise ExecutionError(
                f"page {page}: the reference {m[0]} points to {target}, but {ref} is {where}"
            )
        return f"[Figure {figures[ref][1]}]({path}#{figure_anchor(ref)})"

    markdown = FIGURE_REF_RE.sub(reference, CAPTIONED_RE.sub(caption, markdown))
    if "#fig:" in markdown:
        start = markdown.index("#fig:")
        raise ExecutionError(
            f"page {page}: a figure reference must be written [](page.md#fig:module.function)"
            f", with empty text: {markdown[max(0, start - 40) : start + 40]!r}"
        )
    return markdown


def timing_note(items: list[Item], here: str) -> str:
    """A box at the end of a page with timings: where, how and when they were measured."""
    records = [t for item in items for t in item.result["timings"]]
    machines = " and ".join(sorted({t["machine"] for t in records}))
    threads = "/".join(str(n) for n in sorted({t["threads"] for t in records}))
    rounds = sorted({t["rounds"] for t in records})
    loads = [x for t in records for x in t["load"]]
    spread = max(c["spread"] for t in records for c in t["calls"].values())
    when = " and ".join(
        sorted(
            {
                "in this build"
                if i.status == "executed"
                else f"on {i.result['produced']} (reused from the build cache; "
                "the published site measures again)"
                for i in items
            }
        )
    )
    report = posixpath.relpath(REPORT_URI, here or ".")
    n_rounds = f"{rounds[0]}" if len(rounds) == 1 else f"{rounds[0]} to {rounds[-1]}"
    on_cpu = not any(w in machines for w in ("CUDA", "GPU"))
    cpu = (
        f", with {threads} CPU thread{'s' if threads != '1' else ''}" if on_cpu else ""
    )
    return "\n".join(
        [
            "",
            "",
            '!!! info "How the timings on this page were measured"',
            f"    Measured {when}, on {machines}{cpu}. Each comparison calls its "
            f"functions in {n_rounds} interleaved rounds after warm-up, rotating their "
            "order, and keeps every time; a ratio is the median of same-round ratios, "
            "with the exact 95% interval of a median (`snippets/measure.py`). The "
            "1-minute load average, taken before and after each comparison and counting "
            f"the measuring process itself, was {min(loads):.2f} to {max(loads):.2f}, "
            "and the middle half of any call's times spanned at most "
            f"{spread * 100:.0f}% of its median. The "
            f"[build report]({report}) lists every timed item.",
            "",
        ]
    )
