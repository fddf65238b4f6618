"""Scaffold a chapter: `nox -s new_chapter -- "Title"` (`python -m executed.scaffold "Title"`).

Creates, from the recipe in CONTRIBUTING.md:
- `snippets/<module>.py`, the concept, with one section the page includes;
- `snippets/demos/<module>.py`, a figure made at build time;
- `docs/en/chapters/NN-<slug>.md`, the page, already wired to both;
- `docs/zh/chapters/NN-<slug>.md`, its Chinese twin, with the same structure;
- `tests/test_<module>.py`, a test against an independent reference;
and adds the page to the navigation of both editions (mkdocs.yml, mkdocs.zh.yml), so that
`nox -s tests` passes at once.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SNIPPET = '''\
"""{title}: the concept this chapter teaches."""

from __future__ import annotations

import torch
from torch import Tensor


# --8<-- [start:core]
def row_softmax(scores: Tensor) -> Tensor:
    """Softmax along the last dimension: (..., n) -> (..., n), each row sums to 1.

    Replace this with the chapter's own concept; keep shapes in comments.
    """
    shifted = scores - scores.amax(dim=-1, keepdim=True)  # exp() cannot overflow
    exp = torch.exp(shifted)
    return exp / exp.sum(dim=-1, keepdim=True)


# --8<-- [end:core]
'''

DEMO = '''\
"""{title}: the figures, tables and numbers its page shows."""

from __future__ import annotations

import torch

from snippets import {module}
from snippets.bilingual import say
from snippets.plotting import Figure, figure


def temperature_figure() -> Figure:
    scores = torch.linspace(-2, 2, 9)
    fig, ax = figure(width=5.6, height=3.2)
    for t in (0.5, 1.0, 2.0):
        weights = {module}.row_softmax(scores / t)
        label = say(f"temperature {{t}}", f"温度 {{t}}")  # each edition's words
        ax.plot(scores, weights, "o-", label=label)
    ax.set(xlabel=say("score", "评分"), ylabel=say("weight", "权重"))
    ax.legend()
    return fig


def numbers() -> dict[str, str]:
    weights = {module}.row_softmax(torch.tensor([1.0, 2.0, 3.0]))
    return {{"largest": f"{{weights.max().item():.3f}}"}}
'''

PAGE = """\
# {number}. {title}

Say in a paragraph what this chapter explains and why a reader should care.

## The idea

State the idea with its formula, for example $p_i = e^{{s_i}} / \\sum_j e^{{s_j}}$.

```python title="snippets/{module}.py"
--8<-- "snippets/{module}.py:core"
```

For the scores $(1, 2, 3)$ the largest weight is {{{{ {module}.numbers.largest }}}},
computed by the build.

![Softmax weights of nine scores at three temperatures: lower temperatures give peakier weights.](exec:{module}.temperature_figure)
/// caption
Softmax of nine scores at three temperatures, drawn by `snippets/demos/{module}.py`.
///

## Key takeaways

!!! abstract ""
    - One sentence per thing the reader should remember.

## References

- Cite the papers the chapter relies on, with links.
"""

PAGE_ZH = """\
# {number}. {title}

用一段话说明本章讲什么，以及读者为什么应该关心。

## 思路 {{ #the-idea }}

写出思路及其公式，例如 $p_i = e^{{s_i}} / \\sum_j e^{{s_j}}$。

```python title="snippets/{module}.py"
--8<-- "snippets/{module}.py:core"
```

对于评分 $(1, 2, 3)$，最大的权重是 {{{{ {module}.numbers.largest }}}}，由构建过程算出。

![九个评分在三个温度下的 softmax 权重：温度越低，权重越集中。](exec:{module}.temperature_figure)
/// caption
九个评分在三个温度下的 softmax，由 `snippets/demos/{module}.py` 绘制。
///

## 要点 {{ #key-takeaways }}

!!! abstract ""
    - 每件读者应当记住的事，用一句话写出。

## 参考文献 {{ #references }}

- 引用本章所依据的论文，并附上链接。
"""

TEST = '''\
"""{title}: the chapter's code against an independent reference."""

from __future__ import annotations

import torch

from snippets.{module} import row_softmax


def test_row_softmax_matches_torch(gen):
    scores = torch.randn(3, 5, 7, generator=gen)
    torch.testing.assert_close(row_softmax(scores), torch.softmax(scores, dim=-1))
'''


def scaffold(root: Path, title: str) -> list[Path]:
    """Write the chapter's four files and its navigation entry; return the files written."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    module = slug.replace("-", "_")
    if not module or not module[0].isalpha():
        raise ValueError(f"cannot make a module name from {title!r}")
    chapters = root / "docs" / "en" / "chapters"
    numbers = [int(p.name[:2]) for p in chapters.glob("[0-9][0-9]-*.md")]
    number = max(numbers, default=0) + 1
    fields = {"title": title, "module": module, "number": number}
    page = f"chapters/{number:02d}-{slug}.md"
    files = {
        root / "snippets" / f"{module}.py": SNIPPET,
        root / "snippets" / "demos" / f"{module}.py": DEMO,
        root / "docs" / "en" / page: PAGE,
        root / "docs" / "zh" / page: PAGE_ZH,
        root / "tests" / f"test_{module}.py": TEST,
    }
    clash = [p for p in files if p.exists()]
    if clash:
        raise FileExistsError(f"already there: {', '.join(map(str, clash))}")
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**fields), encoding="utf-8")

    configs = {"mkdocs.yml": "  - Appendix:\n", "mkdocs.zh.yml": "  - 附录:\n"}
    for name, marker in configs.items():
        config = root / name
        text = config.read_text(encoding="utf-8")
        if marker not in text:
            raise ValueError(f"{name} has no {marker.strip()!r} navigation section")
        entry = f"      - {number}. {title}: {page}\n"
        config.write_text(text.replace(marker, entry + marker, 1), encoding="utf-8")
    return [*files, *(root / name for name in configs)]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit('usage: python -m executed.scaffold "Chapter title"')
    root = Path.cwd()  # nox runs it in the repository
    for written in scaffold(root, sys.argv[1].strip()):
        print(f"wrote {written.relative_to(root)}")
