"""`python -m executed check PAGE...`: execute the demos of pages, ignoring the cache,
print what each returned, and check the pages' exercises, without building the site."""

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


def check(pages: list[str], project: Project) -> int:
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
    if len(sys.argv) >= 3 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2:], Project.at(Path.cwd())))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
