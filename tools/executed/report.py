"""The build report: a page that says where every figure and number was produced."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import posixpath

from .plan import Item
from .words import words
from .worker import now


def device_line(device: str, language: str = "en") -> str:
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
    return words(language)["report_cpu"].format(model=model, cpus=os.cpu_count())


def build_report(
    demos: list[Item],
    labs: list[Item],
    fingerprint: dict[str, str],
    seconds: float,
    language: str = "en",
) -> str:
    """The report's Markdown: one row per executed item, then the timed items."""
    from snippets.plotting import significant  # the tables' one number format

    say = words(language)
    items = sorted([*demos, *labs], key=lambda i: i.name)
    rows = []
    for item in items:
        r = item.result
        kind = say["report_kinds"].split()[
            KINDS.index("lab" if item.is_lab else r["kind"])
        ]
        status = (
            say["report_executed"]
            if item.status == "executed"
            else say["report_cached"].format(produced=r["produced"])
        )
        pages = ", ".join(
            f"[{p}]({posixpath.relpath(p, 'appendix')})" for p in item.pages
        )
        ms = significant(r["seconds"] * 1e3, 2)
        rows.append(f"| `{item.name}` | {kind} | {ms} | {status} | {pages} |")
    total = sum(i.result["seconds"] for i in items)
    versions = " · ".join(f"{k} {v}" for k, v in fingerprint.items() if k != "device")
    mkdocs = importlib.metadata.version("mkdocs")
    return "\n".join(
        [
            "---",
            "search:",
            "  exclude: true  # a table of item names, not something a reader searches",
            "---",
            "",
            say["report"].format(
                built=now(),
                device=device_line(fingerprint["device"], language),
                versions=f"{versions} · MkDocs {mkdocs}",
                platform=platform.platform(),
                items=len(rows),
                total=total,
                seconds=seconds,
            ),
            "",
            say["report_header"],
            "| --- | --- | ---: | --- | --- |",
            *rows,
            "",
            *timed_rows(demos, say),
        ]
    )


KINDS = ("lab", "figure", "text", "values")  # in the order of words' "report_kinds"


def timed_rows(demos: list[Item], say: dict[str, str]) -> list[str]:
    """The conditions of every timing on the site: one row per `compare` of a timed item."""
    rows = []
    for item in sorted(demos, key=lambda i: i.name):
        for t in item.result.get("timings", []):
            spread = max(c["spread"] for c in t["calls"].values())
            rows.append(
                f"| `{item.name}` | {t['machine']} | {t['threads']} | {t['rounds']} "
                f"| {t['load'][0]:.2f} → {t['load'][1]:.2f} | {spread * 100:.1f}% "
                f"| {', '.join(f'`{c}`' for c in t['calls'])} |"
            )
    if not rows:
        return []
    return [
        say["report_timed"],
        "| --- | --- | ---: | ---: | --- | ---: | --- |",
        *rows,
        "",
    ]
