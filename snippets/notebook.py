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


LANGUAGE = ["en"]  # what `show` writes in: set by use_language


def use_language(language: str) -> None:
    """Show results in `language`: "en", or "zh" (the Chinese edition's notebooks)."""
    if language not in ("en", "zh"):
        raise ValueError(f"language must be 'en' or 'zh', not {language!r}")
    LANGUAGE[0] = language


def show(ref: str, *keys: str) -> None:
    """Display the demo `ref`: its figure, its Markdown (a table, a sentence), or the
    values named `keys` of the dict it returns, in the language of `use_language`."""
    from IPython.display import Markdown, display
    from matplotlib.figure import Figure

    from snippets.bilingual import in_language
    from snippets.plotting import add_cjk_font, to_chinese

    language = LANGUAGE[0]
    value = result(ref)
    if isinstance(value, Figure):
        if language == "zh":
            try:
                add_cjk_font()
            except RuntimeError as missing:  # the text is drawn, without its glyphs
                print(missing)
            to_chinese(value)
        display(value)
    elif isinstance(value, str):
        display(Markdown(in_language(value, language)))
    else:
        for key in keys or value:
            print(f"{key} = {in_language(value[key], language)}")
