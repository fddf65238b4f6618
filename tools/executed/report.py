"""The build report: a page that says where every figure and number was produced."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import posixpath

from .plan import Item
from .worker import now


def device_line(device: str) -> str:
    """The build machine's device, described without importing torch when it is the CPU
    (a build whose results are all cached needs nothing else from torch)."""
    if device != "cpu":
        from snippets.runtime import device_description

        return device_description()
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [
                ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")
            ]
        model = names[0] if names else model
    return f"CPU: {model}, {os.cpu_count()} logical CPUs"


def build_report(
    demos: list[Item], labs: list[Item], fingerprint: dict[str, str], seconds: float
) -> str:
    """The report's Markdown: one row per executed item, then the timed items."""
    from snippets.plotting import significant  # the tables' one number format

    items = sorted([*demos, *labs], key=lambda i: i.name)
    rows = []
    for item in items:
        r = item.result
        kind = "notebook" if item.is_lab else r["kind"]
        status = (
            "executed in this build"
            if item.status == "executed"
            else f"cached (executed {r['produced']})"
        )
        pages = ", ".join(
            f"[{p}]({posixpath.relpath(p, 'appendix')})" for p in item.pages
        )
        ms = significant(r["seconds"] * 1e3, 2)
        rows.append(f"| `{item.name}` | {kind} | {ms} | {status} | {pages} |")
    total = sum(i.result["seconds"] for i in items)
    versions = " · ".join(f"{k} {v}" for k, v in fingerprint.items() if k != "device")
    return "\n".join(
        [
            "---",
            "search:",
            "  exclude: true  # a table of item names, not something a reader searches",
            "---",
            "",
            "# Build report",
            "",
            "This page is written by the build itself (`tools/executed/`). It says where",
            "every figure and number on the site was produced and how long each took.",
            "",
            f"- **Built:** {now()}",
            f"- **Device:** {device_line(fingerprint['device'])}",
            f"- **Versions:** {versions} · MkDocs {importlib.metadata.version('mkdocs')}",
            f"- **Platform:** {platform.platform()}",
            f"- **Executed items:** {len(rows)}; their run time adds up to {total:.1f} s; "
            f"planning and executing took {seconds:.1f} s of this build.",
            "",
            "A *cached* item was not run again because neither its code, nor any `snippets` module "
            "it imports, nor the versions above, nor the device changed since it was executed.",
            "",
            "| item | output | ms | status | used on |",
            "| --- | --- | ---: | --- | --- |",
            *rows,
            "",
            *timed_rows(demos),
        ]
    )


def timed_rows(demos: list[Item]) -> list[str]:
    """The conditions of every timing on the site: one row per `compare` of a timed item."""
    rows = []
    for item in sorted(demos, key=lambda i: i.name):
        for t in item.result.get("timings", []):
            spread = max(c["spread"] for c in t["calls"].values())
            rows.append(
                f"| `{item.name}` | {t['machine']} | {t['threads']} | {t['rounds']} "
                f"| {t['load'][0]:.2f} → {t['load'][1]:.2f} | {spread * 100:.1f}% "
                f"| {', '.join(t['calls'])} |"
            )
    if not rows:
        return []
    return [
        "## Timed items",
        "",
        "Every timing on the site comes from `snippets.measure.compare`: interleaved rounds "
        "with rotating order, every time kept. Timed items run last, after every other "
        "item of the build, one at a time. *Load* is the 1-minute load average before and "
        "after; *spread* is the largest interquartile range over median among the calls.",
        "",
        "| item | machine | threads | rounds | load | spread | calls |",
        "| --- | --- | ---: | ---: | --- | ---: | --- |",
        *rows,
        "",
    ]
