"""Scaffold a chapter: `nox -s new_chapter -- "Title"` (`python -m executed.scaffold "Title"`).

Creates, from the recipe in CONTRIBUTING.md:
- `snippets/<module>.py`, the concept, with one section the page includes;
- `snippets/demos/<module>.py`, a figure made at build time;
- `docs/en/chapters/NN-<slug>.md`, the page, already wired to both;
- `tests/test_<module>.py`, a test against an independent reference;
and adds the page to the navigation in mkdocs.yml, so that `nox -s tests` passes at once.
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

from snippets.{module} import row_softmax
from snippets.plotting import Figure, figure


def temperature_figure() -> Figure:
    scores = torch.linspace(-2, 2, 9)
    fig, ax = figure(width=5.6, height=3.2)
    for t in (0.5, 1.0, 2.0):
        ax.plot(scores, row_softmax(scores / t), "o-", label=f"temperature {{t}}")
    ax.set(xlabel="score", ylabel="weight")
    ax.legend()
    return fig


def numbers() -> dict[str, str]:
    weights = row_softmax(torch.tensor([1.0, 2.0, 3.0]))
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
    files = {
        root / "snippets" / f"{module}.py": SNIPPET,
        root / "snippets" / "demos" / f"{module}.py": DEMO,
        chapters / f"{number:02d}-{slug}.md": PAGE,
        root / "tests" / f"test_{module}.py": TEST,
    }
    clash = [p for p in files if p.exists()]
    if clash:
        raise FileExistsError(f"already there: {', '.join(map(str, clash))}")
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**fields), encoding="utf-8")

    config = root / "mkdocs.yml"
    text = config.read_text(encoding="utf-8")
    entry = f"      - {number}. {title}: chapters/{number:02d}-{slug}.md\n"
    marker = "  - Appendix:\n"
    if marker not in text:
        raise ValueError("mkdocs.yml has no '  - Appendix:' navigation section")
    config.write_text(text.replace(marker, entry + marker, 1), encoding="utf-8")
    return [*files, config]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit('usage: python -m executed.scaffold "Chapter title"')
    root = Path.cwd()  # nox runs it in the repository
    for written in scaffold(root, sys.argv[1].strip()):
        print(f"wrote {written.relative_to(root)}")
