"""The layers drawn from the imports of ``crevnet/``: read from the source (AST), nothing imported.

- ``crevnet/nn`` imports only torch, the standard library and ``crevnet.nn`` (and PyYAML, to read a
  config file).
- A command module (``crevnet/commands/<name>.py``) imports no other command module; the shared
  ``crevnet.commands.common`` is the only part of the layer it may use (no sideways edges).
- No library module (anything but ``crevnet/commands/`` and the dispatcher ``crevnet/cli.py``)
  imports ``crevnet.commands`` or ``crevnet.cli``, nor ``argparse``: parsing lives in the commands.
- The subpackages stand in layers (``LAYERS``, bottom first): a module imports only from its own layer
  or below, so ``crevnet.io`` and ``crevnet.data`` import nothing above them.
- No import cycle between modules, imports inside functions counted.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "crevnet"
COMMANDS = "crevnet.commands"
SHARED = {f"{COMMANDS}.common"}  # what every command module may import from its own layer
DISPATCHER = "crevnet.cli"
# PyYAML: CrevNet.from_config / load_config read a config file (imported inside that function only).
NN_ALLOWED_ROOTS = {"torch", "yaml"} | set(sys.stdlib_module_names)
# Bottom first; a module may import from its own layer and the ones before it.
LAYERS = (
    ("crevnet.errors",),
    ("crevnet.nn",),
    ("crevnet",),  # the package root re-exports the model classes of crevnet.nn
    ("crevnet.io", "crevnet.configs"),  # the shipped configs' lookup needs only crevnet.errors
    ("crevnet.data",),
    ("crevnet.weights",),
    ("crevnet.models",),
    ("crevnet.evaluation",),
    ("crevnet.inference",),
    ("crevnet.deploy",),
    ("crevnet.train",),
    ("crevnet.testing",),
    (COMMANDS, DISPATCHER),
)


def layer_of(module: str) -> int | None:
    """The index in ``LAYERS`` of the most specific layer holding ``module`` (None: outside crevnet)."""
    best, depth = None, -1
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or (name != "crevnet" and _within(module, name))) and len(name) > depth:
                best, depth = index, len(name)
    return best


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(source: str, module: str, is_package: bool, known: set[str]) -> set[str]:
    """Every module ``module`` imports (at any depth of the file), relative imports resolved."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return found


def import_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """``{module: (source, is_package)}`` -> ``{module: modules it imports}``."""
    known = set(sources)
    return {name: _imports(src, name, pkg, known) for name, (src, pkg) in sources.items()}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that breaks a rule of the module docstring, as ``"a -> b: why"``."""
    found = []
    for module, targets in sorted(graph.items()):
        command_layer = _within(module, COMMANDS) or module == DISPATCHER
        for target in sorted(targets):
            if _within(module, "crevnet.nn") and not (
                _within(target, "crevnet.nn") or target.split(".")[0] in NN_ALLOWED_ROOTS
            ):
                found.append(f"{module} -> {target}: crevnet.nn imports only torch, stdlib and crevnet.nn")
            if (
                _within(module, COMMANDS)
                and module not in SHARED | {COMMANDS}
                and _within(target, COMMANDS)
                and target not in SHARED
            ):
                found.append(f"{module} -> {target}: a command module imports another command module")
            if module in SHARED and _within(target, COMMANDS) and target not in SHARED:
                found.append(f"{module} -> {target}: the shared module imports a command module")
            if not command_layer and (_within(target, COMMANDS) or target == DISPATCHER):
                found.append(f"{module} -> {target}: a library module imports the command line")
            if not command_layer and target == "argparse":
                found.append(f"{module} -> {target}: argument parsing belongs in crevnet.commands")
            low, high = layer_of(module), layer_of(target)
            reported = any(line.startswith(f"{module} -> {target}:") for line in found)
            if low is not None and high is not None and high > low and not reported:
                found.append(f"{module} -> {target}: a lower layer imports a higher one ({LAYERS[high][0]})")
    return found + [f"cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules (Tarjan), e.g. ``[a, b, a]``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                found.append([*sorted(group), sorted(group)[0]])

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def package_sources(root: Path = PACKAGE) -> dict[str, tuple[str, bool]]:
    """``{module name: (source, is_package)}`` for every ``.py`` file under ``root``."""
    return {
        _module_name(path, root): (path.read_text(encoding="utf-8"), path.name == "__init__.py")
        for path in sorted(root.rglob("*.py"))
    }


def test_the_package_keeps_its_layers() -> None:
    """No layer rule broken and no cycle: the real package's graph passes every check."""
    sources = package_sources()
    assert {"crevnet.nn.model", "crevnet.commands.common", "crevnet.commands.evaluate"} <= set(sources)
    graph = import_graph(sources)
    assert "crevnet.commands.common" in graph["crevnet.commands.predict"]  # the graph sees real edges
    assert violations(graph) == []


def test_every_command_has_a_module_of_its_own() -> None:
    # The dispatcher imports command modules by name (its COMMANDS table), read here from its source.
    sources = package_sources()
    tree = ast.parse(sources[DISPATCHER][0])
    table = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "COMMANDS" for t in node.targets)
    )
    commands = ast.literal_eval(table)
    assert set(commands) == {"fit", "validate", "test", "data", "evaluate", "predict", "export", "config"}
    for module in commands.values():
        assert module in sources and _within(module, COMMANDS) and module not in SHARED


def _with(extra: dict[str, str]) -> list[str]:
    sources = package_sources()
    for name, src in extra.items():
        sources[name] = (src, False)
    return violations(import_graph(sources))


@pytest.mark.parametrize(
    ("module", "source", "why"),
    [
        ("crevnet.commands.evaluate", "from crevnet.commands.predict import main", "another command module"),
        ("crevnet.commands.evaluate", "from crevnet.commands import predict", "another command module"),
        ("crevnet.commands.export", "from . import data", "another command module"),
        ("crevnet.commands.common", "import crevnet.commands.fit", "the shared module imports"),
        (
            "crevnet.evaluation.evaluate",
            "from crevnet.commands.common import run_tool",
            "library module imports",
        ),
        ("crevnet.data.video", "def f():\n    from crevnet.cli import main", "library module imports"),
        ("crevnet.inference.predict", "import argparse", "argument parsing belongs"),
        ("crevnet.nn.model", "import lightning", "crevnet.nn imports only"),
        ("crevnet.nn.stream", "from crevnet.data.video import read_clip", "crevnet.nn imports only"),
        ("crevnet.nn.cells", "import numpy as np", "crevnet.nn imports only"),
        ("crevnet.io.runs", "def f():\n    from crevnet.weights import BUNDLED", "lower layer imports"),
        ("crevnet.data.video", "from crevnet.models.checkpoint import load_model", "lower layer imports"),
        ("crevnet.data.grid", "from crevnet.evaluation import metrics", "lower layer imports"),
    ],
)
def test_a_bad_import_is_caught(module: str, source: str, why: str) -> None:
    found = _with({module: source})
    rules = [line for line in found if not line.startswith("cycle: ")]
    assert len(rules) == 1 and rules[0].startswith(f"{module} -> ") and why in rules[0], found
    # an edge back up may also close a cycle (every command module imports the shared one): that is all
    assert all(module in line for line in found if line.startswith("cycle: ")), found


def test_allowed_imports_pass() -> None:
    allowed = {
        "crevnet.commands.evaluate": "from crevnet.commands.common import add_ckpt\nimport argparse",
        "crevnet.commands.export": (
            "from .common import parse_size\nfrom crevnet.deploy.export import export_model"
        ),
        "crevnet.nn.model": "import torch\nimport dataclasses\nfrom crevnet.nn.encoder import Encoder",
        "crevnet.nn.stream": "from .model import CrevNet",
    }
    assert _with(allowed) == []


def test_an_import_cycle_is_caught_even_inside_a_function() -> None:
    found = _with(
        {
            "crevnet.deploy.manifest": "def f():\n    from crevnet.deploy.loader import load_exported",
        }
    )
    assert found == ["cycle: crevnet.deploy.loader -> crevnet.deploy.manifest -> crevnet.deploy.loader"], (
        found
    )


def test_cycles_are_found_in_a_small_graph() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c", "a"], ["e", "e"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
