"""The package's layering (docs/architecture.md): task packages import no other task package, task-neutral
modules import no task package, and no import cycle between modules, counting imports inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "perceptlab"
TASKS = ("sr", "style", "codec", "deepsim")  # one package per task
FRONT = ("cli",)  # may import everything


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, package: str | None = None) -> set[str]:
    """Every perceptlab module ``path`` imports, at the top or inside functions (``package``: the file's package)."""
    found = set()
    if package is None:
        package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("perceptlab")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.startswith("perceptlab"):
                found.add(base)
                # "from perceptlab.sr import data" names a module too
                found |= {f"{base}.{a.name}" for a in node.names if (ROOT.parent / f"{base}.{a.name}".replace(".", "/")).exists()
                          or (ROOT.parent / (f"{base}.{a.name}".replace(".", "/") + ".py")).exists()}  # fmt: skip
    return found


GRAPH = {_module(p): _imports(p) for p in sorted(ROOT.rglob("*.py"))}


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_task_packages_import_no_other_task_and_shared_modules_no_task():
    wrong = []
    for module, imports in GRAPH.items():
        area = _area(module)
        if area in FRONT:
            continue
        for target in imports:
            other = _area(target)
            if other in TASKS and other != area:
                wrong.append(f"{module} imports {target}")
    assert not wrong, wrong


def test_no_import_cycle_between_modules():
    modules = set(GRAPH)
    edges = {m: {t for t in GRAPH[m] if t in modules and t != m} for m in modules}
    # Package __init__ files re-export their modules: an edge into a package's own __init__ from inside it is not a
    # cycle a reader has to untangle, so those are left out.
    for m in modules:
        edges[m] = {t for t in edges[m] if not m.startswith(t + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(modules):
        if m not in state:
            visit(m)
    assert not cycles, [" -> ".join(c) for c in cycles]


@pytest.mark.parametrize("task", TASKS)
def test_the_rule_sees_a_cross_task_import(task, tmp_path):
    other = next(t for t in TASKS if t != task)
    probe = tmp_path / "probe.py"
    probe.write_text(f"def f():\n    from perceptlab.{other}.models import x\n    from ..{other} import models\n")
    found = _imports(probe, package=f"perceptlab.{task}")
    assert {f"perceptlab.{other}.models", f"perceptlab.{other}"} <= found
