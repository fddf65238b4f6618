"""The words the build itself writes into a page, in each edition's language
(`theme.language` of its config): numbers of figures and tables, the title of an
exercise's solution, the timing box, a chapter notebook's own cells."""

from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "fig": "Figure {}",
        "tab": "Table {}",
        "eq": "({})",
        "solution": "Solution",
        "timing_title": "How the timings on this page were measured",
        "timing": (
            "Measured {when}, on {machines}{cpu}. Each comparison calls its functions in "
            "{rounds} interleaved rounds after warm-up, rotating their order, and keeps "
            "every time; a ratio is the median of same-round ratios, with the exact 95% "
            "interval of a median (`snippets/measure.py`). The 1-minute load average, "
            "taken before and after each comparison and counting the measuring process "
            "itself, was {low:.2f} to {high:.2f}, and the middle half of any call's times "
            "spanned at most {spread:.0f}% of its median. The [build report]({report}) "
            "lists every timed item."
        ),
        "now": "in this build",
        "shared": "by this run's English build",
        "cached": (
            "on {date} (reused from the build cache; the published site measures again)"
        ),
        "and": " and ",
        "cpu": ", with {threads} CPU thread{s}",
        "rounds": "{first} to {last}",
        "notebook_intro": (
            "*This notebook is generated from [this chapter's page]({url}) of Attention, "
            "Executed, by the build that executes the site. Run the cells in order: the "
            "first installs the course's code where it is missing; the figures, tables "
            "and numbers come from the same demos the page shows. Each code exercise has "
            "a cell for your solution and a cell that checks it with the course's tests.*"
        ),
        "notebook_values": "# The numbers above, computed again",
        "notebook_imports": "# What {path} imports",
        "notebook_stub": "# Exercise {id}: write {function} here.",
        "notebook_yours": "...  # your solution",
        "notebook_solution": "*The solution is on [the course's page]({url}), folded.*",
        "report": (
            "# Build report\n\n"
            "This page is written by the build itself (`tools/executed/`). It says where\n"
            "every figure and number on the site was produced and how long each took.\n\n"
            "- **Built:** {built}\n"
            "- **Device:** {device}\n"
            "- **Versions:** {versions}\n"
            "- **Platform:** {platform}\n"
            "- **Executed items:** {items}; their run time adds up to {total:.1f} s; "
            "planning and executing took {seconds:.1f} s of this build.\n\n"
            "A *cached* item was not run again because neither its code, nor any "
            "`snippets` module it imports, nor the versions above, nor the device "
            "changed since it was executed."
        ),
        "report_kinds": "notebook figure text values",
        "report_cpu": "CPU: {model}, {cpus} logical CPUs",
        "report_executed": "executed in this build",
        "report_cached": "cached (executed {produced})",
        "report_header": "| item | output | ms | status | used on |",
        "report_timed": (
            "## Timed items\n\n"
            "Every timing on the site comes from `snippets.measure.compare`: interleaved "
            "rounds with rotating order, every time kept. Timed items run last, after "
            "every other item of the build, one at a time. *Load* is the 1-minute load "
            "average before and after; *spread* is the largest interquartile range over "
            "median among the calls.\n\n"
            "| item | machine | threads | rounds | load | spread | calls |"
        ),
    },
    "zh": {
        "fig": "图 {}",
        "tab": "表 {}",
        "eq": "({})",
        "solution": "解答",
        "timing_title": "本页计时是如何测得的",
        "timing": (
            "{when}在 {machines} 上测得{cpu}。每次比较在预热之后以 {rounds} 个交替轮次"
            "调用被比较的函数，每轮轮换它们的顺序，并保留每一次的时间；比值取同轮比值的"
            "中位数，并给出中位数的精确 95% 置信区间（`snippets/measure.py`）。在每次比较"
            "前后测得的 1 分钟平均负载（计入测量进程本身）为 {low:.2f} 到 {high:.2f}，任何"
            "一次调用的时间的中间一半至多跨越其中位数的 {spread:.0f}%。"
            "[构建报告]({report})列出了每一个计时项目。"
        ),
        "now": "在本次构建中",
        "shared": "由本次构建的英文版",
        "cached": "于 {date}（取自构建缓存；发布的网站会重新测量）",
        "and": "及",
        "cpu": "，使用 {threads} 个 CPU 线程",
        "rounds": "{first} 到 {last}",
        "notebook_intro": (
            "*本笔记本由执行整个网站的构建过程，根据 Attention, Executed 的"
            "[本章页面]({url})生成。请按顺序运行各个单元格：第一个单元格会在缺少课程代码"
            "时安装它；图、表和数值来自页面所用的同一批演示函数。每道编程练习都有一个"
            "填写解答的单元格，以及一个用课程的测试检查它的单元格。*"
        ),
        "notebook_values": "# 重新计算上面的数值",
        "notebook_imports": "# {path} 导入的内容",
        "notebook_stub": "# 练习 {id}：在这里编写 {function}。",
        "notebook_yours": "...  # 你的解答",
        "notebook_solution": "*解答在[课程页面]({url})上，默认折叠。*",
        "report": (
            "# 构建报告\n\n"
            "本页由构建过程本身（`tools/executed/`）写成。它说明网站上的每个图和数值在哪里"
            "产生，以及各用了多长时间。\n\n"
            "- **构建时间：** {built}\n"
            "- **设备：** {device}\n"
            "- **版本：** {versions}\n"
            "- **平台：** {platform}\n"
            "- **执行的项目：** {items} 个；它们的运行时间合计 {total:.1f} s；本次构建的"
            "规划与执行用了 {seconds:.1f} s。\n\n"
            "*已缓存*的项目没有再次运行：自它执行以来，它的代码、它导入的任何 `snippets` "
            "模块、上面的版本和设备都没有变化。"
        ),
        "report_kinds": "笔记本 图 文本 数值",
        "report_cpu": "CPU：{model}，{cpus} 个逻辑 CPU",
        "report_executed": "在本次构建中执行",
        "report_cached": "已缓存（执行于 {produced}）",
        "report_header": "| 项目 | 输出 | 毫秒 | 状态 | 所在页面 |",
        "report_timed": (
            "## 计时项目\n\n"
            "网站上的每个计时都来自 `snippets.measure.compare`：交替进行的轮次，每轮轮换"
            "调用顺序，保留每一次的时间。计时项目最后运行，在构建的所有其他项目之后，一次"
            "一个。*负载*是前后的 1 分钟平均负载；*离散度*是各调用的四分位距与中位数之比"
            "中最大的一个。\n\n"
            "| 项目 | 机器 | 线程数 | 轮次 | 负载 | 离散度 | 调用 |"
        ),
    },
}


SOLUTION_TITLES = sorted({w["solution"] for w in WORDS.values()})


def words(language: str) -> dict[str, str]:
    """The build's words in `language`; English for a language it does not know."""
    return WORDS.get(language, WORDS["en"])
