"""`python -m executed check PAGE... [--out DIR]`: execute the demos of pages, ignoring
the cache, print what each returned, and check the pages' exercises, without building the
site. With `--out DIR`, each result is also written to DIR in each edition's language
(`<demo>.<language>.svg` for a figure, `.md` otherwise), to look at before a build."""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import ExecutionError
from .exercises import check_exercises
from .plan import (
    REGISTRY,
    Item,
    Project,
    demo_source,
    environment_fingerprint,
    item_key,
    scan_page,
)
from .run import execute


def write_results(items: list[Item], out: Path) -> None:
    """Each item's result in each language: a figure's light SVG, else Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    for item in items:
        for language in ("en", *item.result.get("translations", {})):
            shown = item.shown(language)
            if item.result["kind"] == "figure":
                path, text = out / f"{item.name}.{language}.svg", shown["light"]
            elif item.result["kind"] == "values":
                path = out / f"{item.name}.{language}.md"
                text = "\n".join(f"- {k}: {v}" for k, v in shown.items())
            else:
                path, text = out / f"{item.name}.{language}.md", shown
            path.write_text(text, encoding="utf-8")


def check(pages: list[str], project: Project, out: Path | None = None) -> int:
    fingerprint = environment_fingerprint(project.root)
    found: dict[str, Item] = {}  # a demo that several pages declare runs once
    for page in pages:
        for ref in sorted(scan_page(Path(page).read_text(encoding="utf-8"))):
            item = found.setdefault(ref, Item(ref, demo_source(ref, project.root), []))
            item.pages.append(page)
            item.key = "check-" + item_key(item, fingerprint, project.root)
    items = list(found.values())
    try:
        execute(items, project)
    except ExecutionError as err:
        print(err, file=sys.stderr)
        return 1
    if out is not None:
        write_results(items, out)
    for item in items:
        r = item.result
        print(f"{item.name}: {r['kind']} in {r['seconds']:.2f} s")
        item.record(project).unlink(missing_ok=True)
    registry = next((i.result["value"] for i in items if i.name == REGISTRY), None)
    try:
        for page in pages:
            # the edition's language from its folder: docs/zh/... is Chinese
            parts = Path(page).resolve().parts
            language = parts[parts.index("docs") + 1] if "docs" in parts else "en"
            markdown = Path(page).read_text(encoding="utf-8")
            check_exercises(markdown, page, registry, language)
    except ExecutionError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    out = None
    if "--out" in args and args.index("--out") + 1 < len(args):
        k = args.index("--out")
        out, args = Path(args[k + 1]), args[:k] + args[k + 2 :]
    if len(args) >= 2 and args[0] == "check":
        sys.exit(check(args[1:], Project.at(Path.cwd()), out))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
