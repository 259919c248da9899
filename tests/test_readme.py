"""The README's Python example runs as written (the README stays true)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no ```python example"
    monkeypatch.chdir(README.parent)  # the example names configs/ relative to the repo root
    for code in blocks:
        exec(compile(code, str(README), "exec"), {})


def test_readme_test_command_is_what_ci_runs():
    ci = (README.parent / ".ci" / "run").read_text()
    command = 'pip install torch==2.13.0 && pip install -e ".[dev,export]" && python -m pytest'
    assert command in README.read_text() and command in ci
