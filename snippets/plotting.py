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
from collections.abc import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

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
    fig.savefig(buffer, format="svg")
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
