"""The documentation site builds cleanly and the README stays a five-minute read."""

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250


def _nav_pages(node) -> list[str]:
    """Every Markdown path named in mkdocs.yml's ``nav`` (nested sections included)."""
    if isinstance(node, str):
        return [node] if node.endswith(".md") else []
    if isinstance(node, list):
        return [page for item in node for page in _nav_pages(item)]
    if isinstance(node, dict):
        return [page for value in node.values() for page in _nav_pages(value)]
    return []


def _config() -> dict:
    # mkdocs.yml may hold !!python/name tags (e.g. for Material's emoji); none is needed to read the nav
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"


def test_every_nav_page_exists():
    pages = _nav_pages(_config()["nav"])
    assert "index.md" in pages and "results/index.md" in pages
    missing = [page for page in pages if not (ROOT / "docs" / page).is_file()]
    assert not missing, f"pages named in mkdocs.yml's nav but missing under docs/: {missing}"


def test_readme_links_to_docs_exist():
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\((docs/[^)#\s]+)", text)
    assert targets, "the README links no docs page"
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README links to missing docs files: {missing}"


def test_mkdocs_build_strict(tmp_path):
    """`mkdocs build --strict`: a broken link, a missing page or a bad API reference fails."""
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet"]
    result = subprocess.run(
        [*command, "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "api" / "nn" / "index.html").is_file()
