"""The import layering of forensics/, analyzers/ and workflows/ (issue 12 item 1).

Dependencies point one way (DESIGN.md §3): cli, receiver → orchestration (and
workflows/, its hera half) → capture, storage, report, views → analysis (and the
analyzers) → archive → a low layer of facts. Every import counts, including
function-local ones and ``if TYPE_CHECKING:`` ones: a lazy import hides a
dependency from start-up time, not from the design.

The graph is read with ``ast`` (nothing is imported), so the check is fast and
sees every module whatever its optional dependencies.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("forensics", "analyzers", "workflows")

# Layer of each package (the first two dotted parts of a forensics module, else the
# top-level name). Higher layers may import lower ones and their peers (no cycles).
LOW = 0
LAYERS: dict[str, int] = {
    "forensics": LOW,  # the package itself: __version__
    "forensics.errors": LOW,
    "forensics.names": LOW,
    "forensics.limits": LOW,
    "forensics.visible": LOW,
    "forensics.home": LOW,
    "forensics.run": LOW,
    "forensics.alert": LOW,  # the typed Falco alert (issue 12 item 2)
    "forensics.trigger": LOW,
    "forensics.paths": LOW,  # the csi home, the kubelet checkpoint directory
    "forensics.units": LOW,  # durations and sizes
    "forensics.status": LOW,  # ExitStatus
    "forensics.migrations": LOW,  # the SQLite migration runner
    "forensics.archive": 1,
    "forensics.analysis": 2,
    "analyzers": 2,
    "forensics.capture": 3,
    "forensics.storage": 3,
    "forensics.report": 3,
    "forensics.views": 3,
    "forensics.orchestration": 4,
    "forensics.sandbox": 4,
    "workflows": 4,
    "forensics.receiver": 5,
    "forensics.console": 5,
    "forensics.cli": 5,
}

# Imports that break the rules on purpose: (importer package, imported package): reason.
ALLOWED: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package(module: str) -> str | None:
    """The layering unit of one of our modules, None for anything else (stdlib, third party)."""
    parts = module.split(".")
    if parts[0] not in SCANNED:
        return None
    if parts[0] != "forensics" or len(parts) == 1:
        return parts[0]
    return ".".join(parts[:2])


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in a file, function-local ones included."""
    module = _module_name(path)
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + is_pkg]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, node.lineno
            for alias in node.names:  # "from forensics import capture" imports a package
                yield f"{target}.{alias.name}", node.lineno


def _sources() -> list[Path]:
    return sorted(p for top in SCANNED for p in (ROOT / top).rglob("*.py"))


def _edges() -> dict[tuple[str, str], list[str]]:
    """(importer package, imported package) -> where, for imports across packages."""
    sources = _sources()
    known = {_module_name(p) for p in sources}
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sources:
        src = _package(_module_name(path))
        assert src is not None
        for target, line in _imports(path):
            while target and target not in known:  # "forensics.x.name" -> "forensics.x"
                target = target.rpartition(".")[0]
            dst = _package(target) if target else None
            if dst is not None and dst != src:
                edges[(src, dst)].append(f"{path.relative_to(ROOT)}:{line}")
    return edges


def test_every_package_has_a_layer() -> None:
    edges = _edges()
    packages = {p for edge in edges for p in edge}
    packages |= {_package(_module_name(p)) or "" for p in _sources()}
    unknown = sorted(p for p in packages if p not in LAYERS)
    assert unknown == [], f"give these packages a layer in tests/test_layering.py: {unknown}"


def test_no_upward_imports() -> None:
    upward = [
        f"{src} (layer {LAYERS[src]}) imports {dst} (layer {LAYERS[dst]}) at {where[0]}"
        for (src, dst), where in sorted(_edges().items())
        if LAYERS.get(src, LOW) < LAYERS.get(dst, LOW) and (src, dst) not in ALLOWED
    ]
    assert upward == []


def test_the_low_layer_imports_nothing_of_ours() -> None:
    low = [f"{src} imports {dst} at {where[0]}" for (src, dst), where in sorted(_edges().items())
           if LAYERS.get(src) == LOW and LAYERS.get(dst) != LOW]
    assert low == []


def test_the_core_never_imports_an_analyzer_by_name() -> None:
    named = [f"{src} at {where[0]}" for (src, dst), where in sorted(_edges().items())
             if dst == "analyzers"]
    assert named == []


def test_analyzers_import_only_archive_analysis_and_facts() -> None:
    allowed = {"forensics.archive", "forensics.analysis"}
    wrong = [f"{dst} at {where[0]}" for (src, dst), where in sorted(_edges().items())
             if src == "analyzers" and dst not in allowed and LAYERS.get(dst) != LOW]
    assert wrong == []


def test_no_package_cycles() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for (src, dst) in _edges():
        if (src, dst) not in ALLOWED:
            graph[src].add(dst)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    for start in sorted(graph):
        if state.get(start):
            continue
        path: list[str] = [start]
        stack: list[Iterator[str]] = [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:  # iterative depth-first search
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt):], nxt])
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    assert cycles == []


def test_the_check_sees_function_local_imports() -> None:
    """The graph includes lazy imports: the pipeline imports storage inside a function."""
    where = _edges()[("forensics.orchestration", "forensics.storage")]
    assert any(w.startswith("forensics/orchestration/pipeline.py:") for w in where)
