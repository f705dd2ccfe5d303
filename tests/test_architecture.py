"""The house keeps itself: the layer contract (pyproject.toml, import-linter), no import circles, and
no long positional parameter lists. Each reads the code as it is (grimp sees imports inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bcdeploy"
MAX_POSITIONAL = 7  # beyond that, keyword-only: a call site then says what each value is


def test_layer_contracts_hold() -> None:
    """import-linter's contracts from pyproject.toml: no import runs upwards, siblings stay apart."""
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0, \
        "an import breaks the layer picture: run `lint-imports` for the chain"


def test_the_runtime_wings_contract_catches_a_model_to_results_import(tmp_path: Path) -> None:
    """The runtime's own contract (model and results apart) is live: a copy of the package with one
    function-level import from the model wing into the results wing is reported broken, by name."""
    import shutil
    import subprocess
    import sys

    shutil.copytree(PACKAGE, tmp_path / "bcdeploy", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    predictor = tmp_path / "bcdeploy/runtime/model/predictor.py"
    predictor.write_text(predictor.read_text()
                         + "\n\ndef _leak() -> None:\n    from bcdeploy.runtime.results import lesions  # noqa: F401\n")
    lint = ("from importlinter.cli import lint_imports; "
            "raise SystemExit(lint_imports(config_filename='pyproject.toml', no_cache=True))")
    done = subprocess.run([sys.executable, "-c", lint], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)}, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Runtime wings" in done.stdout and "BROKEN" in done.stdout
    assert "bcdeploy.runtime.model.predictor -> bcdeploy.runtime.results.lesions" in done.stdout


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_circle_finder_finds_a_circle() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_through_others() -> None:
    import grimp

    graph = grimp.build_graph("bcdeploy")
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    circles = _circles(edges)
    assert circles == [], f"import circles (function-level imports included): {circles}"


def _is_command(node: ast.FunctionDef) -> bool:
    """A Click command body: its parameters are the command line's, named by Click."""
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr in ("command", "group"):
            return True
    return False


def _positional(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    names = [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
    return names[1:] if names[:1] in (["self"], ["cls"]) else names


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_long_positional_parameter_lists(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    long = [f"{node.name} ({len(_positional(node))})" for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not _is_command(node)
            and len(_positional(node)) > MAX_POSITIONAL]
    assert long == [], f"{path}: more than {MAX_POSITIONAL} positional parameters: {long}"
