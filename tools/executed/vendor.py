"""KaTeX's stylesheet and fonts, served by the site itself: copied from docs/node_modules
(`npm ci --prefix docs`, pinned in docs/package-lock.json) into the built site, each font
cut down to the glyphs the site's formulas use."""

from __future__ import annotations

import hashlib
import html
import os
import re
from pathlib import Path
from typing import Any

from .errors import ExecutionError

NODE_MODULES = Path("docs", "node_modules")  # `npm ci --prefix docs`, under the root
KATEX_FONTS = "katex/dist/fonts"  # in NODE_MODULES; VENDORED[KATEX_FONTS] in the site
VENDORED = {  # node_modules path -> site path
    "katex/dist/katex.min.css": "assets/vendor/katex/katex.min.css",
    KATEX_FONTS: "assets/vendor/katex/fonts",
}


def add_vendored_assets(files: Any, config: Any, root: Path) -> None:
    """Add the vendored files to the site, if its pages load any of them."""
    from mkdocs.structure.files import File

    assets = [str(getattr(a, "path", a)) for a in config["extra_css"]]
    if not any(a.startswith("assets/vendor/") for a in assets):
        return  # a site that loads no vendored asset (the tests' fixture)
    modules = root / NODE_MODULES
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


FONT_FEATURES = "*"  # every OpenType layout feature is kept
# The TeX source that KaTeX keeps in its MathML, for assistive technology: never drawn.
ANNOTATION = re.compile(r"<annotation\b.*?</annotation>", re.S)


def used_characters(formulas: list[str]) -> str:
    """The characters the typeset formulas (`Typesetter.used`) draw, sorted: KaTeX
    draws each with one of its fonts, so a font needs no other glyph."""
    chars = {" "}
    for formula in formulas:
        chars |= set(html.unescape(re.sub(r"<[^>]+>", "", ANNOTATION.sub("", formula))))
    return "".join(sorted(chars))


def subset_fonts(
    site_dir: Path, formulas: list[str], cache_dir: Path, root: Path
) -> None:
    """Cut each KaTeX font in the built site down to the glyphs of the characters its
    formulas use: a page with math then loads about a third of the bytes. Each subset is
    made from KaTeX's own font in docs/node_modules (never from a subset) and cached under
    a key of the font, the characters and the subsetting recipe."""
    import fontTools
    from fontTools import subset

    fonts = site_dir / VENDORED[KATEX_FONTS]
    source = root / NODE_MODULES / KATEX_FONTS
    if not fonts.is_dir():
        return
    chars = used_characters(formulas)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(fonts.glob("*.woff2")):
        original = (source / path.name).read_bytes()
        recipe = f"{fontTools.version}\0{FONT_FEATURES}\0{chars}".encode()
        key = hashlib.sha256(original + recipe).hexdigest()[:24]
        cached = cache_dir / f"{path.stem}.{key}.woff2"
        if not cached.exists():
            options = subset.Options()
            options.flavor = "woff2"
            options.layout_features = [FONT_FEATURES]
            options.notdef_outline = True
            font = subset.load_font(source / path.name, options)
            subsetter = subset.Subsetter(options)
            subsetter.populate(text=chars)
            subsetter.subset(font)
            tmp = cached.with_suffix(f".tmp{os.getpid()}")
            subset.save_font(font, tmp, options)
            os.replace(tmp, cached)
        path.write_bytes(cached.read_bytes())
