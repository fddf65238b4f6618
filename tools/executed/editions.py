"""Editions: what two languages' editions of a page must share, and how much of a
translation is in its own script.

A translation (`docs/zh/...`) rewrites the prose of its English page and keeps everything
the build reads: the same code and includes, math, demo declarations and numbered labels,
references and links, block markers, and the same section anchors in the same order (each
translated heading carries its English anchor, `## 实现 { #the-implementation }`). In a
formula only the words are prose: `\\text{...}`, spacing and punctuation may differ, its
symbols may not (`\\text{if query } i` becomes `\\text{若查询 } i`).
`differences` lists where two editions of a page part.
"""

from __future__ import annotations

import re
from collections import Counter

from markdown.extensions.toc import slugify

from .plan import FIGURE_RE, VALUE_RE, in_code

FRONT_MATTER_RE = re.compile(r"\A---\n.*?\n---\n", re.S)
FENCED_RE = re.compile(r"^([ \t]*)(`{3,}|~{3,})[^\n]*\n.*?^\1\2[ \t]*$", re.M | re.S)
DISPLAY_MATH_RE = re.compile(
    r"^[ \t]*\$\$[ \t]*\n(.*?)\n[ \t]*\$\$[ \t]*$", re.M | re.S
)
# `$...$`, possibly wrapped over lines of a paragraph (never across a blank line)
INLINE_MATH_RE = re.compile(
    r"(?<![\\$])\$(?!\$)((?:[^$\n]|\n(?![ \t]*\n))+?)(?<![\\$])\$"
)
# What a formula's editions may word differently: its words, spacing and punctuation.
MATH_PROSE_RE = re.compile(r"\\text\{[^{}]*\}|\\(?:qquad|quad|[,;:! ])|[\s~.,;:]")
HEADING_RE = re.compile(r"^(#{2,6})[ \t]+(.+?)[ \t]*$", re.M)
ANCHOR_RE = re.compile(r"\s*\{\s*#([\w.-]+)\s*\}$")
BLOCK_RE = re.compile(r"^[ \t]*(!!!|\?\?\?\+?|===|///)[ \t]*([\w-]*)", re.M)
TABLE_CAPTION_RE = re.compile(r"^[ \t]*/// table-caption.*$", re.M)
REFERENCE_RE = re.compile(r"\[\]\([^)\s]+\)")
LINK_TARGET_RE = re.compile(r"\]\((?!exec:)([^)\s]+)\)")
INLINE_CODE_RE = re.compile(r"`[^`\n]+`")
HTML_RE = re.compile(r"<[^>\n]+>")
CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LATIN_RE = re.compile(r"[A-Za-z]")


def heading_anchor(title: str) -> str:
    """The anchor of a heading: its `{ #id }`, or what the toc extension makes of it."""
    found = ANCHOR_RE.search(title)
    if found:
        return found[1]
    return slugify(title, "-")


def math_symbols(tex: str) -> str:
    """A formula without what a translation rewords: `\\text{...}`, spacing, punctuation."""
    return MATH_PROSE_RE.sub("", tex)


def structure(markdown: str) -> dict[str, list[str]]:
    """What a page's editions must share, part by part."""
    code = in_code(markdown)
    fenced = [m[0].strip() for m in FENCED_RE.finditer(markdown)]
    prose = FENCED_RE.sub("", markdown)
    outside = [m for m in HEADING_RE.finditer(markdown) if not code(m.start())]
    return {
        "code blocks and includes": fenced,
        "display math": [math_symbols(m[1]) for m in DISPLAY_MATH_RE.finditer(prose)],
        "inline math": sorted(
            math_symbols(m[1]) for m in INLINE_MATH_RE.finditer(prose)
        ),
        "figures": [m["ref"] for m in FIGURE_RE.finditer(prose)],
        "placeholders": sorted(m[0].replace(" ", "") for m in VALUE_RE.finditer(prose)),
        "table captions": [m[0].strip() for m in TABLE_CAPTION_RE.finditer(prose)],
        "references": sorted(REFERENCE_RE.findall(prose)),
        "link targets": sorted(LINK_TARGET_RE.findall(prose)),
        "blocks": [f"{m[1]} {m[2]}".strip() for m in BLOCK_RE.finditer(prose)],
        "section anchors": [f"h{len(m[1])} #{heading_anchor(m[2])}" for m in outside],
    }


def differences(english: str, translation: str, anchors: bool = True) -> list[str]:
    """Where a translation's structure differs from its English page, in words.
    `anchors=False` for a lab's Markdown cells, whose headings the notebook renderer
    gives ids of its own."""
    found = []
    ours, theirs = structure(english), structure(translation)
    if not anchors:
        del ours["section anchors"], theirs["section anchors"]
    for part, items in ours.items():
        other = theirs[part]
        if items == other:
            continue
        missing = Counter(items) - Counter(other)
        extra = Counter(other) - Counter(items)
        if not missing and not extra:
            found.append(f"{part}: the same items in another order")
            continue
        for item in missing:
            found.append(f"{part}: missing {item[:120]!r}")
        for item in extra:
            found.append(f"{part}: not in the English page {item[:120]!r}")
    return found


def visible_prose(markdown: str) -> str:
    """A page's prose without code, math, declarations, markup and link targets."""
    text = FRONT_MATTER_RE.sub("", markdown)
    text = FENCED_RE.sub("", text)
    text = DISPLAY_MATH_RE.sub("", text)
    text = INLINE_MATH_RE.sub("", text)
    text = INLINE_CODE_RE.sub("", text)
    text = VALUE_RE.sub("", FIGURE_RE.sub("", text))
    text = LINK_TARGET_RE.sub("]", text)
    text = BLOCK_RE.sub("", HTML_RE.sub("", text))
    return re.sub(r"\{\s*#[\w.-]+\s*\}", "", text)  # headings' anchors


def cjk_share(markdown: str) -> float:
    """The share of CJK characters among the letters (CJK and Latin) of the prose."""
    prose = visible_prose(markdown)
    cjk, latin = len(CJK_RE.findall(prose)), len(LATIN_RE.findall(prose))
    return cjk / (cjk + latin) if cjk + latin else 0.0
