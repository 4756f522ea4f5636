"""The import graph of ``src/pathnet_fer`` flows one way (issue 21).

Read from the source with ``ast`` (nothing is imported): every ``import`` of a
``pathnet_fer`` module, at module level or inside a function, except under
``if TYPE_CHECKING:``. Three rules:

1. **Layers.** A module imports only from its own group or from lower layers
   (``LAYERS``); the groups of one layer (experiments and predict, say) are independent.
2. **No circles.** No two modules reach each other through imports.
3. **No hidden imports.** A ``pathnet_fer`` import inside a function is how a circle
   hides; the ones left (``import_debt.FUNCTION_IMPORTS``) may only shrink.

What the redesign has not reached yet is listed, exactly, in ``tests/import_debt.py``:
a new violation fails here, and so does a listed one that has gone (so the list is
tightened as it is paid off and cannot hide a new one behind an old one).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import import_debt

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "pathnet_fer"

# Lowest first; each name is a group: a module and everything under it ("pathnet_fer"
# itself: only its __init__). A module belongs to the group of its longest matching name.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("pathnet_fer", "pathnet_fer.paths", "pathnet_fer.safe_load",
     "pathnet_fer.settings_dict", "pathnet_fer.parent_watch", "pathnet_fer.names"),
    ("pathnet_fer.data", "pathnet_fer.yaml_config"),
    ("pathnet_fer.faces", "pathnet_fer.pathnet"),
    ("pathnet_fer.evolution",),
    ("pathnet_fer.formats", "pathnet_fer.datasets"),
    # the shipped model's location (pretrained/__init__.py), not its build
    ("pathnet_fer.scoring", "pathnet_fer.pretrained"),
    ("pathnet_fer.experiments", "pathnet_fer.predict"),
    ("pathnet_fer.baselines",),
    ("pathnet_fer.pretrained.recipe", "pathnet_fer.pretrained.figures"),
    ("pathnet_fer.pretrained.build",),
    ("pathnet_fer.pretrained.commands",),
    ("pathnet_fer.cli",),
)  # fmt: skip


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def group(module: str) -> tuple[int, str]:
    """``(layer, group name)`` of a module."""
    best: tuple[int, str] | None = None
    for i, names in enumerate(LAYERS):
        for prefix in names:
            inside = module == prefix or (
                prefix != "pathnet_fer" and module.startswith(prefix + ".")
            )
            if inside and (best is None or len(prefix) > len(best[1])):
                best = (i, prefix)
    assert best is not None, f"{module} is in no group of LAYERS: add it"
    return best


def allowed(importer: str, imported: str) -> bool:
    """An import within a group, or from a lower layer."""
    (mine, my_group), (theirs, their_group) = group(importer), group(imported)
    return my_group == their_group or theirs < mine


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The ``pathnet_fer`` modules an import statement loads."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".")
            if MODULES[module].name != "__init__.py":
                package = package[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, *([node.module] if node.module else [])])
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                 for a in node.names]  # fmt: skip
    for name in names:
        while name not in MODULES and "." in name:
            name = name.rsplit(".", 1)[0]
        if name in MODULES:
            yield name


def _walk(module: str, body: list[ast.stmt], in_function: bool) -> Iterator[tuple[str, bool]]:
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for target in _targets(module, node):
                yield target, in_function
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _walk(module, node.orelse, in_function)  # the if-branch: types only
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _walk(module, node.body, True)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, field, None)
                if isinstance(children, list) and children and isinstance(children[0], ast.AST):
                    yield from _walk(module, children, in_function)


def imports() -> dict[str, list[tuple[str, bool]]]:
    """``{module: [(imported module, inside a function), ...]}``, self-imports left out."""
    return {
        m: [(t, f) for t, f in _walk(m, ast.parse(p.read_text()).body, False) if t != m]
        for m, p in MODULES.items()
    }


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
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
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def _short(name: str) -> str:
    return name.removeprefix("pathnet_fer.")


def test_every_import_goes_to_its_own_group_or_a_lower_layer() -> None:
    upward = sorted(
        {(_short(m), _short(t)) for m, found in imports().items() for t, _ in found
         if not allowed(m, t)}
    )  # fmt: skip
    listed = sorted(import_debt.UPWARD)
    new = sorted(set(upward) - set(listed))
    gone = sorted(set(listed) - set(upward))
    assert not new, f"imports from a higher layer or a sibling group (see LAYERS): {new}"
    assert not gone, f"paid off: remove from tests/import_debt.py UPWARD: {gone}"


def test_no_module_reaches_itself_through_imports() -> None:
    graph = {m: {t for t, _ in found} for m, found in imports().items()}
    found = {frozenset(_short(m) for m in c) for c in circles(graph)}
    allowed = {frozenset(c) for c in import_debt.CIRCLES}
    assert not found - allowed, f"import circles: {[sorted(c) for c in found - allowed]}"
    assert not allowed - found, (
        "circles broken or changed: update tests/import_debt.py CIRCLES to "
        f"{[sorted(c) for c in found]}"
    )


def test_imports_inside_functions_only_shrink() -> None:
    counts = Counter(_short(m) for m, found in imports().items() for _, inner in found if inner)
    grown = {m: (n, import_debt.FUNCTION_IMPORTS.get(m, 0)) for m, n in counts.items()
             if n > import_debt.FUNCTION_IMPORTS.get(m, 0)}  # fmt: skip
    shrunk = {m: (counts.get(m, 0), n) for m, n in import_debt.FUNCTION_IMPORTS.items()
              if counts.get(m, 0) < n}  # fmt: skip
    assert not grown, (
        "pathnet_fer imports inside functions (now, allowed); import at module level, "
        f"breaking the circle that made it necessary: {grown}"
    )
    assert not shrunk, f"paid off (now, listed): lower tests/import_debt.py: {shrunk}"


def test_the_checks_see_a_circle_an_upward_import_and_a_hidden_import() -> None:
    """The rules above on a made-up graph, so that a walker that finds nothing fails."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [frozenset("abc")]
    assert allowed("pathnet_fer.predict.evaluate", "pathnet_fer.formats.model_file")
    assert not allowed("pathnet_fer.formats.model_file", "pathnet_fer.predict.evaluate")
    assert not allowed("pathnet_fer.predict.evaluate", "pathnet_fer.experiments.config")
    assert not allowed("pathnet_fer.experiments.export", "pathnet_fer.predict.predictor")
    assert allowed("pathnet_fer.pretrained.build", "pathnet_fer.pretrained")
    assert not allowed("pathnet_fer.pretrained", "pathnet_fer.pretrained.build")
    found = imports()
    assert ("pathnet_fer.formats.model_file", False) in found["pathnet_fer.predict.predictor"]
    assert any(inner for _, inner in found["pathnet_fer.experiments.runner"]) == bool(
        import_debt.FUNCTION_IMPORTS.get("experiments.runner")
    )


def test_the_cli_builds_its_parser_without_torch() -> None:
    """Why the command modules may import their stage inside functions: ``pathnet-fer
    --help`` and an argument error answer without loading torch or Dask (seconds on a
    cold disk)."""
    code = (
        "import sys; from pathnet_fer.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'dask', 'distributed') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
