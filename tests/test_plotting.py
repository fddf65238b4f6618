"""The lab figures' HTML: the image, its alt text and its caption (snippets/plotting.py)."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser

import matplotlib.pyplot as plt
import pytest

from snippets.plotting import (
    MIN_TEXT_PX,
    figure,
    figure_html,
    legible,
    markdown_table,
    show_figure,
    significant,
    smallest_text_px,
)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_figure_html_holds_the_svg_its_alt_text_and_its_caption():
    fig, ax = figure()
    ax.plot([0, 1], [1, 0])
    markup = figure_html(
        fig, 'A line falling from 1 to 0 ("down")', "Loss < 1 & falling."
    )
    plt.close(fig)
    parsed = _Tags()
    parsed.feed(markup)
    assert [t for t, _ in parsed.tags] == ["figure", "img", "figcaption"]
    img = parsed.tags[1][1]
    assert (
        img["alt"] == 'A line falling from 1 to 0 ("down")'
    )  # escaped, then read back
    assert "".join(parsed.text) == "Loss < 1 & falling."
    prefix = "data:image/svg+xml;base64,"
    assert img["src"].startswith(prefix)
    svg = base64.b64decode(img["src"][len(prefix) :]).decode()
    assert re.search(r"<svg[ >]", svg)


def test_show_figure_closes_the_figure_and_refuses_an_empty_description(capsys):
    fig, _ = figure()
    show_figure(fig, "An empty plot", "Nothing to see.")
    assert not plt.fignum_exists(
        fig.number
    )  # the inline backend will not show it again
    fig, _ = figure()
    with pytest.raises(ValueError, match="alt"):
        figure_html(fig, "  ", "A caption.")
    with pytest.raises(ValueError, match="caption"):
        figure_html(fig, "An empty plot", "")
    plt.close(fig)


def test_markdown_table_writes_the_header_the_rule_and_one_line_per_row():
    table = markdown_table(
        ["", "time", "verdict"], [["dense", 1.5, "slow"], ["**total**", "", "—"]], "lrc"
    )
    assert table.splitlines() == [
        "| | time | verdict |",
        "| --- | ---: | :---: |",
        "| dense | 1.5 | slow |",
        "| **total** | | — |",
    ]
    assert markdown_table(["a", "b"], []).splitlines()[1] == "| --- | --- |"


@pytest.mark.parametrize(
    ("rows", "align"),
    [([["only one cell"]], "ll"), ([["a", "b"]], "lx"), ([["a", "b"]], "l")],
)
def test_markdown_table_refuses_a_row_or_an_alignment_of_the_wrong_width(rows, align):
    with pytest.raises(ValueError):
        markdown_table(["a", "b"], rows, align)


def test_smallest_text_is_measured_as_the_column_draws_the_svg():
    def svg(width_pt: float, *sizes: float) -> str:
        texts = "".join(f'<text style="font-size: {s}px">x</text>' for s in sizes)
        return (
            f'<svg width="{width_pt}pt" height="100pt" viewBox="0 0 {width_pt} 100">'
            f"{texts}</svg>"
        )

    # 360 pt = 480 px fits the 688 px column: points become pixels at 96/72.
    assert smallest_text_px(svg(360, 12, 9)) == pytest.approx(9 * 96 / 72)
    # 1032 pt = 1376 px is drawn at 688 px, half size.
    assert smallest_text_px(svg(1032, 12, 9)) == pytest.approx(9 * 96 / 72 / 2)
    assert smallest_text_px(svg(360)) is None


@pytest.mark.parametrize("width", [4.0, 7.0, 10.5])
def test_legible_raises_every_text_to_ten_pixels_in_the_column(width):
    fig, (ax, ax_log) = figure(ncols=2, width=width, height=3.0)
    ax.plot([1, 2, 3], [3, 1, 2], label="$q_i \\cdot k_j$")
    ax.set_xlabel("small", fontsize=5)
    ax.tick_params(labelsize=4)
    ax.legend(fontsize=4)
    ax.text(2, 2, "tiny", fontsize=3)
    ax_log.loglog([1, 10, 100], [1e-3, 1e-1, 1e1])
    ax_log.set_title("big stays big", fontsize=20)
    buffer = io.StringIO()
    legible(fig).savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    assert smallest_text_px(buffer.getvalue()) >= MIN_TEXT_PX
    assert "font-size: 20px" in buffer.getvalue()


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (2, "2.00"),
        (1.8, "1.80"),
        (0.05541, "0.0554"),
        (0.001, "0.00100"),
        (447.2, "447"),
        (99.96, "100"),
        (1070.4, "1,070"),
        (0.000123, "1.23e-04"),
        (0, "0"),
        (-3.14159, "-3.14"),
    ],
)
def test_significant_keeps_three_digits_and_trailing_zeros(x, text):
    assert significant(x) == text
