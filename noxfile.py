"""Developer commands. `nox -s docs` previews the site, `nox -s tests` runs every check.

Dependencies are declared once, in pyproject.toml; each session installs the group it needs.
The browser assets (KaTeX, Mermaid) come from the npm registry, pinned in docs/package-lock.json.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"

ROOT = Path(__file__).parent
PYTHON = None  # the interpreter nox runs on: any Python >= 3.11 (pyproject.toml)


def _install(session: nox.Session, extra: str) -> None:
    session.install("-e", f".[{extra}]")
    # mkdocs-material prints a banner about its end of life on every build; it is known.
    session.env["NO_MKDOCS_2_WARNING"] = "1"


def _vendor_assets(session: nox.Session) -> None:
    """`npm ci` the pinned KaTeX and Mermaid, unless the lock file is unchanged since last time."""
    lock = ROOT / "docs" / "package-lock.json"
    stamp = ROOT / "docs" / "node_modules" / ".lock-sha256"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    session.run(
        "npm", "ci", "--prefix", "docs", "--no-audit", "--no-fund", external=True
    )
    if stamp.parent.is_dir():  # not under --install-only, which skips npm
        stamp.write_text(digest)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the site and serve it with live reload on http://127.0.0.1:8000."""
    _install(session, "docs")
    _vendor_assets(session)
    session.run("mkdocs", "serve", "--dev-addr", "127.0.0.1:8000", *session.posargs)


@nox.session(python=PYTHON)
def build(session: nox.Session) -> None:
    """Strict build of the site into site/ (every warning is an error)."""
    _install(session, "docs")
    _vendor_assets(session)
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Unit tests, code blocks in the Markdown, a strict build with checks, and the browser test."""
    _install(session, "test")
    _vendor_assets(session)
    args = session.posargs or ["tests", "--codeblocks", "README.md", "docs/en"]
    session.run("pytest", *args)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=False)
def new_chapter(session: nox.Session) -> None:
    """Scaffold a chapter: `nox -s new_chapter -- "Title"` (see CONTRIBUTING.md)."""
    if len(session.posargs) != 1:
        session.error('usage: nox -s new_chapter -- "Chapter title"')
    session.run(
        "python3", "docs/hooks/new_chapter.py", session.posargs[0], external=True
    )
