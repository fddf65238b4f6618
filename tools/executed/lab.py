"""One lab: `python -m executed.lab SCRIPT OUT NAME` executes a jupytext percent script
into a notebook, in a fresh kernel, with a time limit per cell."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from .errors import ExecutionError
from .run import TIMEOUT_ENV, item_timeout

SVG_DATE_RE = re.compile(r"\s*<dc:date>.*?</dc:date>", re.S)


def run_notebook(notebook: Any, name: str) -> None:
    """Execute every cell in a fresh kernel, reached over local sockets in a temporary
    folder (over TCP, the kernel warns that its traffic is unencrypted).

    The kernel manager is asynchronous, so that nbclient's per-cell timeout fires (with a
    blocking client it never does); a cell past AE_ITEM_TIMEOUT stops the build.
    """
    import nbclient
    from jupyter_client.manager import AsyncKernelManager
    from nbclient.util import run_sync

    limit = item_timeout()
    current = [0]  # index of the cell being executed

    def starting(cell: Any, cell_index: int) -> None:
        current[0] = cell_index

    with tempfile.TemporaryDirectory() as sockets:
        kernel = AsyncKernelManager(
            kernel_name="python3", transport="ipc", ip=f"{sockets}/kernel"
        )
        client = nbclient.NotebookClient(
            notebook,
            km=kernel,
            timeout=limit,
            on_cell_start=starting,
            resources={"metadata": {"path": os.getcwd()}},  # the project root
        )
        try:
            client.execute()
        except nbclient.exceptions.CellTimeoutError:
            raise ExecutionError(
                f"lab {name}: cell {current[0]} ran for more than {limit:g} s "
                f"({TIMEOUT_ENV}) and was stopped"
            ) from None
        finally:
            if kernel.has_kernel:  # the kernel is ours to stop
                run_sync(kernel.shutdown_kernel)(now=True)


def deterministic(notebook: Any) -> None:
    """No run-dependent metadata in the published notebook: no execution times, no
    dates in SVGs (cell ids are fixed before execution)."""
    for cell in notebook.cells:
        cell.get("metadata", {}).pop("execution", None)
        for output in cell.get("outputs", []):
            svg = output.get("data", {}).get("image/svg+xml")
            if isinstance(svg, str):
                output["data"]["image/svg+xml"] = SVG_DATE_RE.sub("", svg)


def main(source: str, out: str, name: str) -> int:
    """Execute a lab; a cell that raises or runs past AE_ITEM_TIMEOUT fails, naming
    lab and cell."""
    import jupytext
    import nbclient
    import nbformat

    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index}"  # stable ids: jupytext draws random ones
    try:
        with tempfile.TemporaryDirectory() as rc:
            # Stable SVG ids in every figure the kernel draws, whatever the lab sets.
            Path(rc, "matplotlibrc").write_text("svg.hashsalt: attention-executed\n")
            os.environ["MATPLOTLIBRC"] = rc
            run_notebook(notebook, name)
    except nbclient.exceptions.CellExecutionError as err:
        print(f"lab {name} failed in a cell:\n{err}", file=sys.stderr)
        return 1
    except ExecutionError as err:
        print(err, file=sys.stderr)
        return 1
    deterministic(notebook)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nbformat.writes(notebook), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
