"""A second edition is a sibling config that inherits mkdocs.yml and has its own docs folder.

This builds a one-page Chinese edition that includes the same snippet and declares the same
figure as chapter 3, and checks that it reuses the English build's cached results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PAGE = """\
# 缩放点积注意力

```python title="snippets/attention.py"
--8<-- "snippets/attention.py:sdpa"
```

![q·k 的方差随 d_k 线性增长](exec:attention.variance_figure)
/// caption
方差的测量值。
///
"""


def test_an_inheriting_edition_builds_with_the_same_snippets_and_cache(
    built_site, tmp_path
):
    docs = tmp_path / "docs" / "zh"
    docs.mkdir(parents=True)
    (docs / "index.md").write_text(PAGE, encoding="utf-8")
    # Beside mkdocs.yml, as CONTRIBUTING.md says: the inherited relative paths (theme
    # overrides, hooks, snippets) resolve against the folder of the config file.
    config = REPO / f".mkdocs.zh-test-{os.getpid()}.yml"
    config.write_text(
        "INHERIT: mkdocs.yml\n"
        f"docs_dir: {docs}\n"
        f"site_dir: {tmp_path / 'site'}\n"
        "theme:\n  language: zh\n"
        "nav:\n  - index.md\n",
        encoding="utf-8",
    )
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        config.unlink()
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert '<html lang="zh"' in html
    assert "scaled_dot_product_attention" in html
    assert "attention.variance_figure.dark.svg#only-dark" in html
    statuses = json.loads((REPO / ".cache/executed/last-build.json").read_text())
    assert statuses == {"attention.variance_figure": "cached"}
