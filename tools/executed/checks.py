"""The checks on what demos return and on the pages they fill: pure functions."""

from __future__ import annotations

import re
from typing import Any

from .errors import ExecutionError

NAN_RE = re.compile(r"(?<![\w.])(nan|inf)(?![\w])", re.I)
LEFTOVER_RE = re.compile(r"\{\{.{0,60}?\}\}|\{\{|exec:[\w.-]*")


def check_text_finite(text: str, where: str = "the returned text") -> None:
    """A "nan" or "inf" in text a page shows stops the build."""
    if NAN_RE.search(text):
        raise ValueError(f"{where} contains NaN or inf: {text[:200]!r}")


def check_figure_finite(fig: Any) -> None:
    """NaN or inf anywhere a figure draws data stops the build: lines, images, meshes,
    collections (scatter, fill_between, error bars), patches and text."""
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.collections import Collection
    from matplotlib.image import AxesImage
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.text import Text

    def finite(values: Any) -> bool:
        # matplotlib masks NaN itself (imshow, pcolormesh, scatter): read under the mask.
        # A demo that wants blank cells masks them explicitly, over finite data.
        arr = np.asarray(np.ma.getdata(values), dtype=float)
        return bool(np.isfinite(arr).all())

    for artist in fig.findobj():
        ax = artist.axes if isinstance(getattr(artist, "axes", None), Axes) else None
        where = (
            f"the figure's axes {ax.get_title()!r}" if ax is not None else "the figure"
        )
        data: list[Any] = []
        if isinstance(artist, Line2D):
            data.append(artist.get_xydata())
        elif isinstance(artist, AxesImage):
            data.append(artist.get_array())
        elif isinstance(artist, Collection):
            data.append(artist.get_offsets())
            if artist.get_array() is not None:
                data.append(artist.get_array())
            data += [p.vertices for p in artist.get_paths()]
        elif isinstance(artist, Patch) and ax is not None:
            data.append(artist.get_path().vertices)
            if hasattr(artist, "get_height"):
                data.append([artist.get_height(), artist.get_width()])
        elif isinstance(artist, Text) and artist.get_text():
            check_text_finite(artist.get_text(), f"a text of {where}")
        for values in data:
            if np.size(values) and not finite(values):
                raise ValueError(
                    f"{where} draws NaN or infinite data ({type(artist).__name__})"
                )


def install_data_guards() -> None:
    """fill_between drops NaN from its polygons before any check could see it: make it
    refuse non-finite input instead (idempotent; the worker calls it once)."""
    import numpy as np
    from matplotlib.axes import Axes

    for name in ("fill_between", "fill_betweenx"):
        original = getattr(Axes, name)
        if getattr(original, "guarded", False):
            continue

        def guarded(self: Any, *args: Any, _original: Any = original, **kw: Any) -> Any:
            for value in [*args[:3], *(kw.get(k) for k in ("x", "y", "y1", "y2"))]:
                if value is None or isinstance(value, str):
                    continue
                arr = np.asarray(np.ma.getdata(value), dtype=float)
                if not np.isfinite(arr).all():
                    raise ValueError(
                        f"the figure's axes {self.get_title()!r} fill between "
                        "NaN or infinite data"
                    )
            return _original(self, *args, **kw)

        guarded.guarded = True  # type: ignore[attr-defined]
        setattr(Axes, name, guarded)


def check_leftovers(markdown: str, page: str) -> None:
    """A `{{` or `exec:` that survived substitution is a typo in a declaration: stop."""
    found = LEFTOVER_RE.search(markdown)
    if found:
        line = markdown.count("\n", 0, found.start()) + 1
        raise ExecutionError(
            f"page {page}, line {line} of the substituted page: {found.group(0)!r} is not "
            "a declaration the build understands (a typo? declarations look like "
            "{{ module.function }}, {{ module.function.key }} and "
            "![alt](exec:module.function), in lower case)"
        )


# Latin-script words a Chinese page keeps: names, abbreviations and units that Chinese
# technical writing writes in Latin letters too (d2l-zh: softmax, Transformer, GPU ...).
LATIN_TERMS = frozenset(
    """
    softmax PyTorch Python NumPy Transformer Transformers GPU CPU CUDA LayerNorm MLP FFN
    HBM SRAM LSH FAVOR Performer Reformer FlashAttention ViT Swin RNN CNN LSTM GRU NaN
    GPT BERT BigBird Longformer Linformer RoPE ALiBi ReLU GELU SDPA BLAS ImageNet Adam
    AdamW FLOP FLOPs IO logits tanh sin cos exp log max min argmax
    kB KB MB GB KiB MiB GiB ms µs ns
    """.split()  # noqa: SIM905 (a list of words reads best as words)
)
# Kept whole: terms with a hyphen or a space.
LATIN_PHRASES = ("pre-LN", "post-LN", "Sparse Transformer", "log-sum-exp", "top-k")
# What is not prose: math ($...$, \(...\), and the LaTeX of a value that a page puts
# inside its math), inline code, HTML tags, link targets, URLs.
NOT_PROSE_RE = re.compile(
    r"\$\$.*?\$\$|\$[^$]*\$|\\\(.*?\\\)|\\[A-Za-z]+(?:\{[^{}]*\})?|`[^`]*`|<[^>]*>|\]\([^)]*\)"
    r"|https?://\S+",
    re.S,
)
# A word in Latin letters that is not part of an identifier (d_k, float32, x1).
LATIN_WORD_RE = re.compile(r"(?<![\w])[A-Za-z]{2,}(?:'[a-z]+)?(?![\w])")


def english_words(
    text: str, kept: frozenset[str] | set[str] = frozenset()
) -> list[str]:
    """The English words of text that a Chinese page would show: Latin words of two
    letters or more outside math, code, HTML and links, other than the terms Chinese
    writing keeps (LATIN_TERMS) and the data a demo keeps verbatim (`kept`: the tokens of
    an English example sentence, a machine's name)."""
    for part in sorted(kept, key=len, reverse=True):
        text = text.replace(part, " ")
    text = NOT_PROSE_RE.sub(" ", text)
    for phrase in LATIN_PHRASES:
        text = text.replace(phrase, " ")
    return [w for w in LATIN_WORD_RE.findall(text) if w not in LATIN_TERMS]


def check_chinese(
    text: str, kept: frozenset[str] | set[str] = frozenset(), where: str = "the text"
) -> None:
    """Stop the build when text that a demo made for the Chinese edition has English in it."""
    found = english_words(text, kept)
    if found:
        raise ValueError(
            f"{where} is in English in the Chinese edition ({', '.join(found[:6])}): "
            f'{text[:160]!r}; write it as say("English", "中文") (snippets/bilingual.py)'
        )


def format_value(v: str | int | float) -> str:
    """How a demo's value appears on a page: ints with separators, floats to 4 digits."""
    return v if isinstance(v, str) else f"{v:,}" if isinstance(v, int) else f"{v:.4g}"
