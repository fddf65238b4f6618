"""The Chinese edition (docs/zh, work in progress for the build) against the English one:
each translated page keeps its English page's structure and is written in Chinese."""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest

from executed.editions import cjk_share, differences, structure

REPO = Path(__file__).resolve().parents[1]
EN, ZH = REPO / "docs" / "en", REPO / "docs" / "zh"
TRANSLATED = sorted(p for p in ZH.rglob("*") if p.suffix in (".md", ".py"))
MIN_CJK_SHARE = 0.6  # of the letters of the visible prose (code and math excluded)

ENGLISH = """---
description: A page.
---

# 3. A chapter

## The implementation

Text with $d_k$ and {{ attention.numbers.var_64 }}, see [](#fig:attention.figure) and
[chapter 4](04-masks.md).

![A figure](exec:attention.figure)
/// caption
What it shows.
///

```python title="snippets/attention.py"
--8<-- "snippets/attention.py:sdpa"
```

!!! note "A note"
    Noted.
"""
CHINESE = """---
description: 一页。
---

# 3. 一章

## 实现 { #the-implementation }

含有 $d_k$ 和 {{ attention.numbers.var_64 }} 的文字，见 [](#fig:attention.figure) 和
[第 4 章](04-masks.md)。

![一幅图](exec:attention.figure)
/// caption
它展示的内容。
///

```python title="snippets/attention.py"
--8<-- "snippets/attention.py:sdpa"
```

!!! note "注"
    已注。
"""


def test_a_faithful_translation_has_the_same_structure():
    assert differences(ENGLISH, CHINESE) == []
    assert structure(ENGLISH)["section anchors"] == ["h2 #the-implementation"]
    assert cjk_share(CHINESE) > 0.9 and cjk_share(ENGLISH) == 0


@pytest.mark.parametrize(
    "change, part",
    [
        (("{{ attention.numbers.var_64 }}", "63.3"), "placeholders"),
        (("## 实现 { #the-implementation }", "## 实现"), "section anchors"),
        (('--8<-- "snippets/attention.py:sdpa"', "def f(): ..."), "code blocks"),
        (("(exec:attention.figure)", "(exec:attention.other)"), "figures"),
        (("$d_k$", "$d$"), "inline math"),
        (("(04-masks.md)", "(05-multi-head-attention.md)"), "link targets"),
        (('!!! note "注"', '!!! tip "注"'), "blocks"),
    ],
)
def test_a_translation_that_changes_what_the_build_reads_is_found(change, part):
    found = differences(ENGLISH, CHINESE.replace(*change))
    assert found and all(d.startswith(part) for d in found), found


def test_the_words_of_a_formula_are_translated_and_its_symbols_kept():
    rule = "\n$$\nM_{{ij}} = 0 \\quad {} .\n$$\n"
    english = ENGLISH + rule.format(r"\text{if } j \le i")
    assert (
        differences(english, CHINESE + rule.format(r"\text{若 } j \le i \text{。}"))
        == []
    )
    found = differences(english, CHINESE + rule.format(r"\text{若 } j < i"))
    assert found and all(d.startswith("display math") for d in found), found


def test_every_translated_page_has_an_english_page():
    assert all((EN / p.relative_to(ZH)).exists() for p in TRANSLATED)


@pytest.mark.parametrize("page", TRANSLATED, ids=lambda p: p.relative_to(ZH).as_posix())
def test_a_translated_page_keeps_the_english_structure_in_chinese(page):
    english = EN / page.relative_to(ZH)
    if page.suffix == ".py":  # a lab: the code cells unchanged, the Markdown translated
        ours, theirs = jupytext.read(english), jupytext.read(page)
        assert [c.cell_type for c in ours.cells] == [c.cell_type for c in theirs.cells]
        problems = []
        for k, (a, b) in enumerate(zip(ours.cells, theirs.cells, strict=True)):
            if a.cell_type == "code":
                assert a.source == b.source, f"code cell {k} differs"
            else:
                found = differences(a.source, b.source, anchors=False)
                problems += [f"cell {k}: {d}" for d in found]
        prose = "\n\n".join(c.source for c in theirs.cells if c.cell_type == "markdown")
    else:
        problems = differences(english.read_text(), page.read_text())
        prose = page.read_text()
    assert not problems, "\n".join(problems)
    assert cjk_share(prose) >= MIN_CJK_SHARE


def test_the_search_terms_are_the_glossarys_chinese_terms():
    """docs/terms.zh.txt (jieba's user dictionary for Chinese search) lists every
    Chinese term of the glossary on the notation page, so that search keeps it whole."""
    import re

    notation = (EN / "appendix" / "notation.md").read_text(encoding="utf-8")
    table = notation.split("## English and Chinese terms", 1)[1]
    terms = set()
    for chinese in re.findall(r"^\| .+? \| (.+?) \|$", table, re.M)[1:]:
        for part in re.split(r"[、，,（）()]", chinese):
            part = part.strip()
            if re.search(r"[\u4e00-\u9fff]", part) and " " not in part:
                terms.add(part)
    listed = {
        line.split()[0]
        for line in (REPO / "docs" / "terms.zh.txt")
        .read_text(encoding="utf-8")
        .splitlines()
        if line.strip()
    }
    assert terms and terms <= listed, sorted(terms - listed)
