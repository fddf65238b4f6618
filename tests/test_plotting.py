"""The lab figures' HTML: the image, its alt text and its caption (snippets/plotting.py)."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser

import matplotlib.pyplot as plt
import pytest

from snippets.plotting import (
    COLUMN_PX,
    INK,
    INK_DARK,
    MIN_TEXT_PX,
    TEXT_PX,
    figure,
    figure_html,
    legible,
    markdown_table,
    show_figure,
    significant,
    smallest_text_px,
    text_px,
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


def test_figure_html_holds_both_palettes_svgs_their_alt_text_and_the_caption():
    fig, ax = figure()
    ax.plot([0, 1], [1, 0])
    alt = 'A line falling from 1 to 0 ("down")'
    markup = figure_html(fig, alt, "Loss < 1 & falling.")
    plt.close(fig)
    parsed = _Tags()
    parsed.feed(markup)
    assert [t for t, _ in parsed.tags] == ["figure", "img", "img", "figcaption"]
    light, dark = parsed.tags[1][1], parsed.tags[2][1]
    assert light["alt"] == dark["alt"] == alt  # escaped, then read back
    assert "".join(parsed.text) == "Loss < 1 & falling."
    # Material shows one image per palette; a notebook shows the light one only
    assert "display: none" in dark["style"] and "display" not in light["style"]
    svgs = {}
    for palette, img in (("light", light), ("dark", dark)):
        data = re.fullmatch(
            rf"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)#only-{palette}", img["src"]
        )
        assert data, img["src"][:60]
        svgs[palette] = base64.b64decode(data[1]).decode()
        assert re.search(r"<svg[ >]", svgs[palette])
    assert INK in svgs["light"] and INK not in svgs["dark"]
    assert INK_DARK in svgs["dark"] and INK_DARK not in svgs["light"]


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


def test_legible_sets_labels_at_twelve_pixels_and_leaves_dense_ticks_at_ten():
    width = 10.0  # inches: drawn at 688 / 960 of its size in the column
    fig, (ax, heat) = figure(ncols=2, width=width, height=3.0)
    ax.plot([1, 2, 3], [3, 1, 2], label="a line")
    ax.set_xlabel("label", fontsize=5)
    ax.legend(fontsize=4)
    note = ax.text(2, 2, "note", fontsize=3)
    heat.imshow([[0.0] * 20] * 20)
    heat.set_xticks(range(20), [str(i) for i in range(20)], fontsize=4)  # tokens
    legible(fig)
    scale = COLUMN_PX / (width * 96 * 1.05)

    def px(
        points: float,
    ) -> float:  # as the column draws it, with the margins of legible
        return points / 0.75 * scale / 1.02

    assert px(ax.xaxis.label.get_fontsize()) >= TEXT_PX
    assert px(ax.get_legend().get_texts()[0].get_fontsize()) >= TEXT_PX
    assert px(ax.xaxis.get_major_ticks()[0].label1.get_fontsize()) >= TEXT_PX
    assert MIN_TEXT_PX <= px(note.get_fontsize()) < TEXT_PX  # inside the plot
    dense = heat.xaxis.get_major_ticks()[0].label1.get_fontsize()
    assert MIN_TEXT_PX <= px(dense) < TEXT_PX  # twenty labels keep their room
    plt.close(fig)


def test_legible_sizes_script_ticks_and_a_category_axis_by_their_drawn_labels():
    fig, (ax, bars) = figure(ncols=2, width=10.0, height=3.0)
    ax.plot([0, 1, 2], [1, 2, 3])
    ax.set_xticks(
        range(3), ["$q_1$", "$q_2$", "$q_3$"]
    )  # subscripts at 0.7 of the size
    bars.bar([f"c{i}" for i in range(20)], range(20))  # labelled only when drawn
    buffer = io.StringIO()
    legible(fig).savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    assert smallest_text_px(buffer.getvalue()) >= MIN_TEXT_PX
    scale = COLUMN_PX / (10.0 * 96 * 1.05)
    dense = bars.xaxis.get_major_ticks()[0].label1.get_fontsize() / 0.75 * scale / 1.02
    assert MIN_TEXT_PX <= dense < TEXT_PX  # twenty categories keep their room


def test_text_px_reads_plain_and_mathtext_sizes_in_column_pixels():
    fig, ax = figure(width=COLUMN_PX / 96 * 2, height=2)  # drawn at half its size
    ax.set_axis_off()
    ax.text(0, 0, "abc", fontsize=24)  # 32 CSS px, 16 in the column
    ax.text(0, 1, "$x_i$", fontsize=24)  # mathtext: x at 16 px, i at 0.7 of it
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    sizes = sorted(text_px(buffer.getvalue()))
    assert [n for _, n in sizes] == [1, 1, 3]  # i; then x and abc, both at 16 px
    assert sizes[-1][0] == pytest.approx(16, rel=0.01)
    assert sizes[0][0] == pytest.approx(16 * 0.7, rel=0.01)


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
