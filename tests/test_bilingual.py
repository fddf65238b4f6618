"""One run, two editions: bilingual text (snippets/bilingual.py), Chinese figures
(snippets/plotting.py) and the check that nothing a demo writes for the Chinese edition
is left in English (tools/executed/checks.py)."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest
from matplotlib.ticker import FuncFormatter

from executed.checks import check_chinese, english_words
from executed.plan import Item
from executed.render import render_page
from executed.report import build_report
from executed.worker import serialise
from snippets.bilingual import join, same, say, zh
from snippets.plotting import (
    CJK_FONT,
    add_cjk_font,
    chinese_svg,
    figure,
    markdown_table,
    to_chinese,
)


def test_a_said_string_is_its_english_and_carries_its_chinese():
    text = say("3 heads", "3 个头")
    assert text == "3 heads" and zh(text) == "3 个头"
    assert (
        str(text).zh == "3 个头"
    )  # str() keeps the twin: matplotlib stores str(label)
    assert zh(copy.deepcopy(text)) == zh(pickle.loads(pickle.dumps(text))) == "3 个头"
    assert zh(7) == "7" and zh("plain") == "plain"


def test_joining_keeps_both_languages_on_either_side():
    head = say("head", "头")
    assert zh("a " + head) == "a 头" and zh(head + "!") == "头!"
    assert zh(join(", ", [head, "2", say("key", "键")])) == "头, 2, 键"
    assert zh(join(say(" and ", "和"), [head, head])) == "头和头"
    assert join(", ", [head, 2]) == "head, 2"
    assert same("cat").kept == {"cat"} and (say("a", "甲") + same("cat")).kept == {
        "cat"
    }
    with pytest.raises(TypeError, match="zh must be a str"):
        say("x", None)


def test_a_table_with_said_cells_is_written_in_each_language():
    header, rows = [say("key", "键"), "x"], [[say("cat", "猫"), 2.5], ["", 1]]
    table = markdown_table(header, rows, "lr")
    assert table == "| key | x |\n| --- | ---: |\n| cat | 2.5 |\n| | 1 |"
    assert zh(table) == "| 键 | x |\n| --- | ---: |\n| 猫 | 2.5 |\n| | 1 |"


def test_english_words_are_found_outside_math_code_names_and_kept_data():
    assert english_words("注意力 weights") == ["weights"]
    assert english_words("the cat 吃了", {"the cat"}) == []
    ignored = (
        "$d_k$ 的 softmax、`scores` 与 \\begin{bmatrix} 1 \\end{bmatrix}，"
        "float32 下 2.5 ms，PyTorch 在 GPU 上，pre-LN，d_k，x"
    )
    assert english_words(ignored) == []
    with pytest.raises(ValueError, match="in English in the Chinese edition"):
        check_chinese("键 and 值", where="a label")


def draw(fig) -> None:
    fig.canvas.draw()


def test_a_figure_is_drawn_again_in_chinese_with_every_said_text_translated():
    add_cjk_font()
    fig, (ax, bars) = figure(ncols=2)
    ax.plot([0, 1], [0, 1], label=say("exact", "精确"))
    ax.set(title=say("Error", "误差"), xlabel=say("keys", "键的个数"))
    ax.set_xticks([0, 1], [same("the"), say("cat", "猫")])
    ax.yaxis.set_major_formatter(
        FuncFormatter(lambda v, _: say(f"{v:g} s", f"{v:g} 秒"))
    )
    ax.legend()
    bars.bar([say("one", "一"), say("two", "二")], [1, 2])
    fig.suptitle(say("Two panels", "两幅图"))
    kept = to_chinese(fig)
    draw(fig)
    texts = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
    shown = [t for t in texts if t]
    for word in ("精确", "误差", "键的个数", "猫", "一", "二", "两幅图", "1 秒"):
        assert word in shown, word
    assert kept == {"the"}
    for text in shown:
        check_chinese(text, kept, f"the text {text!r}")
    assert "'Noto Sans CJK SC'" in chinese_svg(f"font-family: '{CJK_FONT}'")


def test_serialising_a_result_gives_both_editions_and_refuses_english_for_chinese():
    record = serialise({"n": 3, "best": say("Roman history", "罗马史")})
    assert record["value"] == {"n": "3", "best": "Roman history"}
    assert record["translations"]["zh"] == {"n": "3", "best": "罗马史"}
    with pytest.raises(ValueError, match="key 'best' is in English"):
        serialise({"best": "Roman history"})
    fig, ax = figure()
    ax.set_title(say("Error", "误差"))
    record = serialise(fig)
    assert "误差" in record["translations"]["zh"]["light"]
    assert (
        "Error" in record["value"]["light"] and "误差" not in record["value"]["light"]
    )
    fig, ax = figure()
    ax.set_title("Error")
    with pytest.raises(ValueError, match="a text of the figure is in English"):
        serialise(fig)


def test_a_chinese_page_shows_the_chinese_result_and_a_chinese_report():
    item = Item("beta.numbers", Path("x.py"), ["index.md"], status="executed")
    item.result = {
        "kind": "values",
        "value": {"best": "Roman history"},
        "translations": {"zh": {"best": "罗马史"}},
        "seconds": 0.01,
        "produced": "2026-12-02 00:00 UTC",
    }
    page = "It is {{ beta.numbers.best }}."
    assert render_page(page, "index.md", {item.name: item}) == "It is Roman history."
    assert render_page(page, "index.md", {item.name: item}, language="zh") == (
        "It is 罗马史."
    )
    report = build_report([item], [], {"device": "cpu", "torch": "x"}, 1.0, "zh")
    assert "# 构建报告" in report and "Build report" not in report
    assert "| `beta.numbers` | 数值 |" in report and "在本次构建中执行" in report


def test_a_chinese_notebook_shows_the_chinese_results(capsys):
    from snippets.notebook import show, use_language

    try:
        use_language("zh")
        show("qkv.lookup", "best")
        use_language("en")
        show("qkv.lookup", "best")
    finally:
        use_language("en")
    assert (
        capsys.readouterr().out
        == "best = 《数学史》\nbest = A history of mathematics\n"
    )
    with pytest.raises(ValueError, match="language must be"):
        use_language("fr")


def test_chinese_is_spaced_from_latin_words_and_numbers_but_not_from_itself():
    from snippets.bilingual import spaced

    assert (
        spaced("FAVOR+", "比", "我们的注意力", "快 3 倍")
        == "FAVOR+ 比我们的注意力快 3 倍"
    )
    assert spaced("比", "$N$", "大") == "比 $N$ 大" and spaced("（", "x") == "（x"
