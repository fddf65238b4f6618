"""The lab figures' HTML: the image, its alt text and its caption (snippets/plotting.py)."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import matplotlib.pyplot as plt
import pytest

from snippets.plotting import figure, figure_html, markdown_table, show_figure


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
