"""How the machinery reports: an error that stops the build, and log lines."""

from __future__ import annotations

import sys

try:  # MkDocs prints a PluginError as a one-line "Error: ..." and stops the build
    from mkdocs.exceptions import PluginError as _BuildStop
except ImportError:  # the worker process does not need MkDocs
    _BuildStop = Exception  # type: ignore[misc,assignment]


class ExecutionError(_BuildStop):
    """A page's demo or lab failed; the message names the page, the module and the function."""


def info(message: str) -> None:
    print(f"INFO    -  [executed] {message}", file=sys.stderr)


def warn(message: str) -> None:
    """A warning that does not fail a strict build: the build repairs what it reports."""
    print(f"WARNING -  [executed] {message}", file=sys.stderr)
