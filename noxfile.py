"""Developer commands. `nox -s docs` previews the site, `nox -s tests` runs every check.

Dependencies are declared once, in pyproject.toml. `docs`, `build` and `tests` share one
virtual environment, `.nox/course`, so that the second command installs nothing: it is
created by whichever runs first and reinstalled only when pyproject.toml changes.
KaTeX (typeset at build time) and axe-core (for the browser test) come from the npm registry, pinned in docs/package-lock.json.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"

ROOT = Path(__file__).parent
COURSE_ENV = ROOT / ".nox" / "course"  # shared by docs, build and tests


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _course_env(session: nox.Session) -> Path:
    """The shared environment's bin/, (re)installed only if pyproject.toml changed."""
    stamp = COURSE_ENV / ".pyproject-sha256"
    digest = _digest(ROOT / "pyproject.toml")
    python = COURSE_ENV / "bin" / "python"
    if not (stamp.exists() and stamp.read_text() == digest):
        if not python.exists():
            session.run_install(sys.executable, "-m", "venv", str(COURSE_ENV))
        session.run_install(
            str(python), "-m", "pip", "install", "--quiet",
            "--disable-pip-version-check", "-e", ".[test]",
        )  # fmt: skip
        stamp.write_text(digest)
    _vendor_assets(session)
    # mkdocs-material prints a banner about its end of life on every build; it is known.
    session.env["NO_MKDOCS_2_WARNING"] = "1"
    session.env["VIRTUAL_ENV"] = str(COURSE_ENV)
    return COURSE_ENV / "bin"


def _vendor_assets(session: nox.Session) -> None:
    """`npm ci` the pinned KaTeX and axe-core, unless the lock file is unchanged since last time."""
    lock = ROOT / "docs" / "package-lock.json"
    stamp = ROOT / "docs" / "node_modules" / ".lock-sha256"
    digest = _digest(lock)
    if stamp.exists() and stamp.read_text() == digest:
        return
    session.run_install(
        "npm", "ci", "--prefix", "docs", "--no-audit", "--no-fund", external=True
    )
    if stamp.parent.is_dir():
        stamp.write_text(digest)


EDITIONS = {"zh": "mkdocs.zh.yml"}  # the translations; English is mkdocs.yml


@nox.session(python=False)
def docs(session: nox.Session) -> None:
    """Build the site and serve it with live reload on http://127.0.0.1:8000;
    `nox -s docs -- zh` serves the Chinese edition (after `nox -s build`, whose English
    build its labs and timings come from)."""
    bin_dir = _course_env(session)
    args = list(session.posargs)
    if args and args[0] in EDITIONS:
        args = ["-f", EDITIONS[args[0]], *args[1:]]
    session.run(str(bin_dir / "mkdocs"), "serve", "--dev-addr", "127.0.0.1:8000", *args)


@nox.session(python=False)
def build(session: nox.Session) -> None:
    """Strict build of the site into site/ (every warning is an error): the English
    edition, then each translation into site/<lang>/, which executes nothing again."""
    bin_dir = _course_env(session)
    session.run(str(bin_dir / "mkdocs"), "build", "--strict", *session.posargs)
    for config in EDITIONS.values():
        session.run(str(bin_dir / "mkdocs"), "build", "--strict", "-f", config)


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """Unit tests, code blocks in the Markdown, a strict build with checks, and the browser test."""
    bin_dir = _course_env(session)
    args = session.posargs or ["tests", "--codeblocks", "README.md", "docs/en"]
    session.run(str(bin_dir / "pytest"), *args)


@nox.session
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
    bin_dir = _course_env(session)
    session.run(str(bin_dir / "python"), "-m", "executed.scaffold", session.posargs[0])
