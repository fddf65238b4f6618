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
from collections.abc import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import LogFormatterMathtext

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


# The rcParams that colour text, spines and ticks.
TEXT_AND_AXES = (
    "text.color",
    "axes.labelcolor",
    "axes.titlecolor",
    "axes.edgecolor",
    "xtick.color",
    "ytick.color",
)


def notebook_style() -> None:
    """The house style adapted to a lab notebook's inline figures.

    A notebook's figures cannot switch colours with the site's palette, so their text and
    axes are mid-grey on a transparent background: legible on the light and the dark page.
    """
    grey = "#808080"
    plt.rcParams.update(
        {
            **dict.fromkeys(TEXT_AND_AXES, grey),
            "grid.color": "#80808055",
            "figure.facecolor": "none",
            "savefig.facecolor": "none",
        }
    )


COLUMN_PX = (
    688  # the page's text column on a desktop screen (mkdocs-material at 1280 px)
)
MIN_TEXT_PX = 10  # the smallest text of a figure, as that column draws it


def legible(fig: Figure) -> Figure:
    """Raise every text of `fig` to at least MIN_TEXT_PX as the page's column draws it.

    A page scales a figure wider than its column down, text included (an SVG is sized in
    points: 96 CSS pixels per inch). Text below the limit grows instead, and the
    constrained layout makes room for it when the figure is drawn. A root drawn by
    mathtext (`\\sqrt`) is a glyph and a bar that a browser's fonts set apart: figures
    write √ as a character instead.
    """
    # 5% to spare: the saved SVG is cropped to what is drawn, which may reach a little
    # beyond the figure's edge and so be scaled down a little more; 2% for the rounding
    # of font sizes in the SVG.
    scale = min(1.0, COLUMN_PX / (fig.get_figwidth() * 96 * 1.05))
    smallest = MIN_TEXT_PX * 1.02 / scale * 72 / 96  # in points
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            # a logarithmic axis may label its ticks 10^k, the exponent a superscript
            powers = isinstance(axis.get_major_formatter(), LogFormatterMathtext)
            needed = smallest / 0.7 if powers else smallest
            ticks = axis.get_major_ticks() + axis.get_minor_ticks()
            if ticks and min(t.label1.get_fontsize() for t in ticks) < needed:
                axis.set_tick_params(which="both", labelsize=needed)
            if (
                axis.offsetText.get_fontsize() < smallest
            ):  # "1e-5", written at draw time
                axis.offsetText.set_fontsize(smallest)
    for text in fig.findobj(Text):
        content = text.get_text()
        # mathtext draws a script or a fraction's parts at 0.7 times the size of its text
        # (a script of a script at 0.49: write none)
        scripts = re.search(r"\$.*([_^]|\\frac|\\sqrt).*\$", content)
        needed = smallest / 0.7 if scripts else smallest
        if content and text.get_fontsize() < needed:
            text.set_fontsize(needed)
    # Texts of one kind keep one size, the largest, so that one with a subscript does not
    # stand out from its neighbours: panel titles, axis labels, each legend's entries.
    kinds = [
        [ax.title for ax in fig.axes],
        [label for ax in fig.axes for label in (ax.xaxis.label, ax.yaxis.label)],
        *([*legend.get_texts()] for ax in fig.axes if (legend := ax.get_legend())),
    ]
    for texts in kinds:
        texts = [t for t in texts if t.get_text()]
        for text in texts:
            text.set_fontsize(max(t.get_fontsize() for t in texts))
    return fig


def smallest_text_px(svg: str) -> float | None:
    """The smallest text of a matplotlib SVG, in CSS pixels, as the page's column draws it
    (None if it has no text). Its sizes are in points, 96 CSS pixels per 72 points, and
    a figure wider than the column is scaled down to fit it."""
    size = re.search(r'<svg[^>]*\bwidth="([\d.]+)pt"[^>]*viewBox="0 0 ([\d.]+) ', svg)
    if size is None:
        raise ValueError("not an SVG sized in points, as matplotlib writes it")
    width_pt, view_width = float(size[1]), float(size[2])
    drawn_px = min(COLUMN_PX, width_pt * 96 / 72)
    fonts = [float(f) for f in re.findall(r"font-size:\s*([\d.]+)px", svg)]
    return min(fonts) * drawn_px / view_width if fonts else None


def dark_variant(svg: str) -> str:
    """The same SVG for the dark palette: ink and grid colours swapped, data colours kept."""
    return svg.replace(INK, INK_DARK).replace(GRID, GRID_DARK)


def figure_html(fig: Figure, alt: str, caption: str) -> str:
    """A notebook figure as HTML: <figure>, the SVG as an <img> with alt text, <figcaption>.

    A plain image output has no alt text (nbconvert, which renders the lab pages, then
    writes "No description has been provided for this image"); this markup carries both
    the description and the caption. alt and caption are plain text; they are escaped.
    """
    for name, text in (("alt", alt), ("caption", caption)):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{name} must be a non-empty description of the figure")
    buffer = io.BytesIO()
    legible(fig).savefig(buffer, format="svg")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (
        f'<figure><img src="data:image/svg+xml;base64,{data}" '
        f'alt="{html.escape(alt.strip())}">'
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
) -> str:
    """A Markdown table: the header, the rule under it, then one line per row.

    `align` gives one letter per column: "l" (left, Markdown's default), "r" (right, for
    numbers) or "c" (centred); empty: every column left. Cells are written with str(), as
    they are: a cell is Markdown, so a "|" it holds must be escaped by the caller. An empty
    cell stays empty. Every row must have as many cells as the header.
    """
    align = align or "l" * len(header)
    if len(align) != len(header) or set(align) - set(_RULES):
        raise ValueError(
            f"align must give one of l, r, c for each of the {len(header)} columns, "
            f"got {align!r}"
        )

    def line(cells: Sequence[object]) -> str:
        if len(cells) != len(header):
            raise ValueError(
                f"a row has {len(cells)} cells for {len(header)} columns: {cells!r}"
            )
        return "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"

    return "\n".join(
        [line(header), line([_RULES[a] for a in align]), *(line(r) for r in rows)]
    )


__all__ = [
    "COLORS",
    "GRID",
    "INK",
    "Figure",
    "dark_variant",
    "figure",
    "figure_html",
    "markdown_table",
    "notebook_style",
    "show_figure",
]
