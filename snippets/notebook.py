"""What a chapter's notebook calls to show the page's figures, tables and numbers.

The build generates a notebook from each chapter page (`tools/executed/notebook.py`):
where the page shows a result of a demo, the notebook calls `show("module.function")`,
which runs the demo from `snippets/demos/` seeded as the build runs it, and displays it.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from snippets.runtime import seed_everything


@functools.cache
def result(ref: str) -> Any:
    """The result of the demo `ref` ("attention.variance_figure"), run once, seeded."""
    module, function = ref.split(".")
    demo = getattr(importlib.import_module(f"snippets.demos.{module}"), function)
    seed_everything(0)
    return demo()


def show(ref: str, *keys: str) -> None:
    """Display the demo `ref`: its figure, its Markdown (a table, a sentence), or the
    values named `keys` of the dict it returns."""
    from IPython.display import Markdown, display
    from matplotlib.figure import Figure

    value = result(ref)
    if isinstance(value, Figure):
        display(value)
    elif isinstance(value, str):
        display(Markdown(value))
    else:
        for key in keys or value:
            print(f"{key} = {value[key]}")
