"""The house style of every figure and table: one look, readable in both palettes.

Figures are drawn once with INK for text and axes and GRID for grid lines. The build writes
the SVG twice: as drawn for the light palette, and with INK and GRID swapped for their dark
counterparts for the dark palette. Data colours are chosen to read on both backgrounds.
Tables are Markdown, written by `markdown_table` alone.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Callable, Iterable, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, LogFormatterMathtext

from snippets.bilingual import Say, join, zh

INK = "#1f2329"  # text, ticks and spines in the light palette
INK_DARK = "#d5d8df"  # ... and in the dark palette
GRID = "#c9ccd3"
GRID_DARK = "#4a4f5c"
# Okabe-Ito colours: distinguishable with colour-vision deficiencies, legible on white and slate.
COLORS = ["#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#f0e442"]

STYLE = {
    "figure.dpi": 100,
    "savefig.transparent": True,
    "svg.fonttype": "none",  # text stays text: smaller files, selectable labels
    "svg.hashsalt": "attention-executed",  # stable ids: two builds give identical bytes
    "font.family": "sans-serif",
    "font.size": 10,
    "text.color": INK,
    "axes.labelcolor": INK,
    "axes.edgecolor": INK,
    "axes.titlecolor": INK,
    "axes.facecolor": "none",
    "axes.grid": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=COLORS),
    "grid.color": GRID,
    "grid.linewidth": 0.6,
    "xtick.color": INK,
    "ytick.color": INK,
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "image.cmap": "viridis",
    # Matrices are drawn cell by cell: the SVG holds the matrix itself, not a resampled copy.
    "image.interpolation": "none",
}
plt.rcParams.update(STYLE)


def figure(
    ncols: int = 1, nrows: int = 1, width: float = 6.4, height: float = 3.6, **kw
) -> tuple:
    """A new figure in the house style: `fig, ax = figure()` or `fig, axes = figure(ncols=2)`."""
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width, height), layout="constrained", **kw
    )
    return fig, axes


# The page's text column on a desktop screen (mkdocs-material at 1280 px), in CSS pixels
COLUMN_PX = 688
MIN_TEXT_PX = 10  # the smallest text of a figure, as that column draws it
TEXT_PX = 12  # ... and most of its text: titles, axis labels, legends, ticks
# An axis with more labelled ticks than this (a heat map's tokens) keeps MIN_TEXT_PX.
DENSE_TICKS = 12
# Mathtext with a script, a fraction or a root: those parts are drawn at 0.7 of its size.
SCRIPTS = re.compile(r"\$.*([_^]|\\frac|\\sqrt).*\$")


def legible(fig: Figure) -> Figure:
    """Raise the text of `fig` to the sizes the page's column can be read at.

    A page scales a figure wider than its column down, text included (an SVG is sized in
    points: 96 CSS pixels per inch). Titles, axis labels, legends and tick labels grow to
    TEXT_PX as the column draws them; the texts inside a plot (annotations) and the ticks
    of an axis with many labels (a heat map's tokens) to MIN_TEXT_PX, which leaves them
    room. The constrained layout makes room for larger text when the figure is drawn. A
    root drawn by mathtext (`\\sqrt`) is a glyph and a bar that a browser's fonts set
    apart: figures write √ as a character instead.
    """
    # 5% to spare: the saved SVG is cropped to what is drawn, which may reach a little
    # beyond the figure's edge and so be scaled down a little more; 2% for the rounding
    # of font sizes in the SVG.
    scale = min(1.0, COLUMN_PX / (fig.get_figwidth() * 96 * 1.05))

    def points(px: float, scripts: bool = False) -> float:
        """The font size (pt) the column draws at px; mathtext draws a script or a
        fraction's parts at 0.7 times the size of its text, and those need MIN_TEXT_PX
        (a script of a script at 0.49: write none)."""
        low = MIN_TEXT_PX / 0.7 if scripts else 0.0
        return max(px, low) * 1.02 / scale * 72 / 96

    def raise_to(text: Text, px: float) -> None:
        content = text.get_text()
        needed = points(px, SCRIPTS.search(content) is not None)
        if content and text.get_fontsize() < needed:
            text.set_fontsize(needed)

    inside = {id(t) for ax in fig.axes for t in ax.texts}
    tick_texts = {  # tick labels and offsets: sized per axis below
        id(text)
        for ax in fig.axes
        for axis in (ax.xaxis, ax.yaxis)
        for tick in axis.get_major_ticks() + axis.get_minor_ticks()
        for text in (tick.label1, tick.label2, axis.offsetText)
    }
    for text in fig.findobj(Text):
        if id(text) not in tick_texts:
            raise_to(text, MIN_TEXT_PX if id(text) in inside else TEXT_PX)
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            # the labels as they will be drawn (a formatter writes most at draw time)
            formatter = axis.get_major_formatter()
            labels = formatter.format_ticks(axis.get_majorticklocs())
            labels = [str(text) for text in labels if str(text)]
            px = MIN_TEXT_PX if len(labels) > DENSE_TICKS else TEXT_PX
            # a logarithmic axis may label its ticks 10^k, the exponent a superscript
            scripts = isinstance(formatter, LogFormatterMathtext) or any(
                SCRIPTS.search(text) for text in labels
            )
            needed = points(px, scripts)
            every = axis.get_major_ticks() + axis.get_minor_ticks()
            if every and min(t.label1.get_fontsize() for t in every) < needed:
                axis.set_tick_params(which="both", labelsize=needed)
            # "1e-5" or "×10^-5", written at draw time
            if axis.offsetText.get_fontsize() < points(TEXT_PX, scripts=True):
                axis.offsetText.set_fontsize(points(TEXT_PX, scripts=True))
    # Texts of one kind keep one size, the largest, so that one with a subscript does not
    # stand out from its neighbours: axis labels, each legend's entries. (Not panel
    # titles: a larger one could run into its neighbour's.)
    kinds = [
        [label for ax in fig.axes for label in (ax.xaxis.label, ax.yaxis.label)],
        *([*legend.get_texts()] for ax in fig.axes if (legend := ax.get_legend())),
        *([*legend.get_texts()] for legend in fig.legends),
    ]
    for texts in kinds:
        texts = [t for t in texts if t.get_text()]
        for text in texts:
            text.set_fontsize(max(t.get_fontsize() for t in texts))
    return fig


# The Chinese edition's figures: matplotlib lays them out with Noto Sans CJK, which holds
# every CJK glyph (from the PyPI package notojp-matplotlib, a dependency of the course);
# the SVG keeps text as text and asks the reader's browser for a Simplified Chinese font.
CJK_FONT = "Noto Sans CJK JP"
CJK_FAMILY = [CJK_FONT, "DejaVu Sans"]  # CJK first: mathtext sets its plain text in it
CJK_CSS = "'Noto Sans CJK SC', 'Source Han Sans SC', 'PingFang SC', 'Microsoft YaHei'"


def add_cjk_font() -> None:
    """Make the CJK font known to matplotlib, without importing its package (whose import
    would change rcParams)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        files = distribution("notojp-matplotlib").files or []
    except PackageNotFoundError:
        raise RuntimeError(
            "the Chinese figures need the package notojp-matplotlib: pip install -e ."
        ) from None
    font = next(f for f in files if f.name.endswith(".otf"))
    font_manager.fontManager.addfont(str(font.locate()))


def to_chinese(fig: Figure) -> frozenset[str]:
    """Every text of `fig` written with `say` set to its Chinese twin, in the CJK font:
    titles, labels, legends, annotations and the tick labels an axis was given. Returns
    the data kept verbatim (`same`), which may stay in Latin letters."""
    kept: set[str] = set()
    for text in fig.findobj(Text):
        content = text.get_text()
        if isinstance(content, Say):
            kept |= content.kept
            text.set_text(content.zh)
            text.set_fontfamily(CJK_FAMILY)
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for formatter in (axis.get_major_formatter(), axis.get_minor_formatter()):
                labels = getattr(formatter, "seq", None) or []  # a FixedFormatter's
                units = getattr(formatter, "_units", None) or {}  # a categorical axis's
                if any(isinstance(t, Say) for t in [*labels, *units]):
                    kept.update(
                        *(t.kept for t in [*labels, *units] if isinstance(t, Say))
                    )
                    if labels:
                        formatter.seq = [zh(t) for t in labels]
                    if units:
                        formatter._units = {zh(k): v for k, v in units.items()}
                    axis.set_tick_params(which="both", labelfontfamily=CJK_FAMILY)
                if isinstance(formatter, FuncFormatter):  # labels written at draw time
                    formatter.func = _in_chinese(formatter.func)
                    axis.set_tick_params(which="both", labelfontfamily=CJK_FAMILY)
    return frozenset(kept)


def _in_chinese(func: Callable[..., object]) -> Callable[..., str]:
    """A tick formatter's function that writes the Chinese of what it returns."""
    return lambda *args: zh(func(*args))


def chinese_svg(svg: str) -> str:
    """A Chinese figure's SVG naming the Simplified Chinese fonts a reader may have."""
    return svg.replace(f"'{CJK_FONT}'", CJK_CSS)


def text_px(svg: str) -> list[tuple[float, int]]:
    """Each text of a matplotlib SVG: its size in CSS pixels as the page's column draws it,
    and its number of characters. Sizes are in points, 96 CSS pixels per 72 points, and a
    figure wider than the column is scaled down to fit it."""
    size = re.search(r'<svg[^>]*\bwidth="([\d.]+)pt"[^>]*viewBox="0 0 ([\d.]+) ', svg)
    if size is None:
        raise ValueError("not an SVG sized in points, as matplotlib writes it")
    width_pt, view_width = float(size[1]), float(size[2])
    scale = min(COLUMN_PX, width_pt * 96 / 72) / view_width
    # a plain text carries its size; mathtext sizes each of its <tspan> parts
    texts = re.finditer(
        r"<(?:text|tspan)\b[^>]*font-size:\s*([\d.]+)px[^>]*>([^<]*)", svg
    )
    return [(float(t[1]) * scale, len(t[2].strip())) for t in texts]


def smallest_text_px(svg: str) -> float | None:
    """The smallest text of a matplotlib SVG, in CSS pixels, as the page's column draws it
    (None if it has no text)."""
    return min((px for px, _ in text_px(svg)), default=None)


def dark_variant(svg: str) -> str:
    """The same SVG for the dark palette: ink and grid colours swapped, data colours kept."""
    return svg.replace(INK, INK_DARK).replace(GRID, GRID_DARK)


def figure_html(fig: Figure, alt: str, caption: str) -> str:
    """A notebook figure as HTML: <figure>, the SVG for each palette, <figcaption>.

    A plain image output has no alt text (nbconvert, which renders the lab pages, then
    writes "No description has been provided for this image"); this markup carries both
    the description and the caption. The two images are the chapters' light and dark
    variants, told apart as Material tells them apart (#only-light, #only-dark). Outside
    the site, in Jupyter or Colab, only the light one shows, on a white ground that keeps
    it legible under a dark notebook theme. alt and caption are plain text; they are
    escaped.
    """
    for name, text in (("alt", alt), ("caption", caption)):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{name} must be a non-empty description of the figure")
    buffer = io.BytesIO()
    legible(fig).savefig(buffer, format="svg")
    svg = buffer.getvalue().decode("utf-8")
    alt = html.escape(alt.strip())

    def img(svg: str, palette: str, style: str) -> str:
        data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
        src = f"data:image/svg+xml;base64,{data}#only-{palette}"
        return f'<img src="{src}" alt="{alt}" style="{style}">'

    return (
        f'<figure class="lab-figure">{img(svg, "light", "background: #fff")}'
        f"{img(dark_variant(svg), 'dark', 'display: none')}"
        f"<figcaption>{html.escape(caption.strip())}</figcaption></figure>"
    )


def show_figure(fig: Figure, alt: str, caption: str) -> None:
    """Display fig in a notebook with its alt text and caption (see figure_html), then
    close it, so that the inline backend does not show it a second time without them."""
    from IPython.display import display

    markup = figure_html(fig, alt, caption)
    plt.close(fig)
    display({"text/html": markup, "text/plain": caption}, raw=True)


def significant(x: float, digits: int = 3) -> str:
    """One number format for the columns of a table: `digits` significant digits, trailing
    zeros kept (2.00 beside 1.87), no exponent from 0.001 up; from 10^digits on, the
    whole integer part, thousands separated (1,070, not 1.07e+03).

    >>> [significant(v) for v in (2, 1.8, 0.05541, 447.2, 1070.4, 0.000123)]
    ['2.00', '1.80', '0.0554', '447', '1,070', '1.23e-04']
    """
    if x == 0:
        return "0"
    if abs(x) >= 10 ** (digits - 1):
        return f"{x:,.0f}"
    if abs(x) >= 0.001:
        return f"{x:#.{digits}g}".rstrip(".")
    return f"{x:.{digits - 1}e}"


# A column's alignment, as the rule under a Markdown table's header writes it.
_RULES = {"l": "---", "r": "---:", "c": ":---:"}


def markdown_table(
    header: Sequence[object], rows: Iterable[Sequence[object]], align: str = ""
) -> Say:
    """A Markdown table: the header, the rule under it, then one line per row.

    `align` gives one letter per column: "l" (left, Markdown's default), "r" (right, for
    numbers) or "c" (centred); empty: every column left. Cells are written with str(), as
    they are: a cell is Markdown, so a "|" it holds must be escaped by the caller. An empty
    cell stays empty. Every row must have as many cells as the header. Cells written
    with `say` give the table in both languages (snippets/bilingual.py).
    """
    align = align or "l" * len(header)
    if len(align) != len(header) or set(align) - set(_RULES):
        raise ValueError(
            f"align must give one of l, r, c for each of the {len(header)} columns, "
            f"got {align!r}"
        )

    def line(cells: Sequence[object]) -> Say:
        if len(cells) != len(header):
            raise ValueError(
                f"a row has {len(cells)} cells for {len(header)} columns: {cells!r}"
            )
        texts = [c if isinstance(c, Say) else str(c) for c in cells]
        return join("|", ["", *(" " + t + " " if t else " " for t in texts), ""])

    rule = line([_RULES[a] for a in align])
    return join("\n", [line(header), rule, *(line(r) for r in rows)])


__all__ = [
    "COLORS",
    "GRID",
    "INK",
    "Figure",
    "dark_variant",
    "figure",
    "figure_html",
    "markdown_table",
    "show_figure",
]
