"""KaTeX's stylesheet and fonts, served by the site itself: copied from docs/node_modules
(`npm ci --prefix docs`, pinned in docs/package-lock.json) into the built site."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ExecutionError

VENDORED = {  # node_modules path -> site path
    "katex/dist/katex.min.css": "assets/vendor/katex/katex.min.css",
    "katex/dist/fonts": "assets/vendor/katex/fonts",
}


def add_vendored_assets(files: Any, config: Any, root: Path) -> None:
    """Add the vendored files to the site, if its pages load any of them."""
    from mkdocs.structure.files import File

    assets = [str(getattr(a, "path", a)) for a in config["extra_css"]]
    if not any(a.startswith("assets/vendor/") for a in assets):
        return  # a site that loads no vendored asset (the tests' fixture)
    modules = root / "docs" / "node_modules"
    if not (modules / "katex").is_dir():
        raise ExecutionError(
            "docs/node_modules is missing: run `npm ci --prefix docs` (nox does it for you)"
        )
    for src, dest in VENDORED.items():
        path = modules / src
        if path.is_file():
            targets = [(path, dest)]
        else:
            fonts = sorted(p for p in path.iterdir() if p.suffix == ".woff2")
            targets = [(p, f"{dest}/{p.name}") for p in fonts]
        for source, uri in targets:
            files.append(File.generated(config, uri, abs_src_path=str(source)))
