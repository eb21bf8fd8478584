"""The house has no circles and no upward imports.

Every module of runtime/ is either a foundation module at the top of the package (it
imports nothing of runtime but other foundation modules) or lives in a room, a
sub-package named for its job. Rooms stand in tiers: a module may import its own room and
rooms of lower tiers, never a room of its own tier or above (an upward or sideways arrow),
and no set of modules may import each other in a circle. Every import counts, lazy ones
inside functions and ``TYPE_CHECKING`` ones included: an import that only runs later is
still an arrow a reader has to follow.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "runtime"

FOUNDATION = {"runtime", "runtime.errors", "runtime.tensors", "runtime.units", "runtime.files",
              "runtime.retry", "runtime.backend_table"}  # fmt: skip

# Lowest first. A room may import only rooms of lower tiers (and itself).
TIERS: list[set[str]] = [
    {"config"},
    {"hardware", "structured"},
    {"catalog"},
    {"profiles"},
    {"backends"},
    {"selection", "images", "codecs"},
    {"service"},
    {"box"},
    {"loading"},
    {"factory"},
    {"demo"},
    {"api", "mqtt"},
    {"sparkplug"},
    {"streams"},
    {"governor"},
    {"fleet"},
    {"daemon"},
    {"cli"},
    {"__main__"},
]
TIER_OF = {room: i for i, rooms in enumerate(TIERS) for room in rooms}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The runtime modules ``name`` imports (``from pkg import sub`` resolves to the
    submodule when ``pkg.sub`` is a module)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "runtime")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "runtime":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    found.discard(name)
    return {m for m in found if m in modules}


def room_of(module: str) -> str | None:
    """The room a module lives in; None for a foundation module."""
    if module in FOUNDATION:
        return None
    return module.split(".")[1]


def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_every_module_is_foundation_or_in_a_known_room() -> None:
    strays = [m for m in all_modules() if m not in FOUNDATION and room_of(m) not in TIER_OF]
    assert not strays, f"modules outside any room (give them a room in TIERS): {strays}"
    loose = [m for m in all_modules() if m.count(".") == 1 and m not in FOUNDATION
             and not (ROOT / m.split(".")[1]).is_dir() and m != "runtime.__main__"]  # fmt: skip
    assert not loose, f"loose modules at the top of runtime/ that are not foundation: {loose}"


def test_foundation_imports_only_foundation() -> None:
    bad = {m: sorted(t for t in deps if t not in FOUNDATION)
           for m, deps in graph().items() if m in FOUNDATION}  # fmt: skip
    assert not any(bad.values()), f"foundation modules importing rooms: {bad}"


def test_no_upward_or_sideways_imports() -> None:
    bad = []
    for module, deps in graph().items():
        room = room_of(module)
        if room is None:
            continue
        for dep in deps:
            other = room_of(dep)
            if other is None or other == room:
                continue
            if TIER_OF[other] >= TIER_OF[room]:
                bad.append(f"{module} -> {dep} ({room} tier {TIER_OF[room]}, "
                           f"{other} tier {TIER_OF[other]})")  # fmt: skip
    assert not bad, "imports that run upward or sideways:\n" + "\n".join(sorted(bad))


def test_no_import_circles() -> None:
    """Tarjan's strongly connected components over every module: each must be alone."""
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # recursion depth is bounded by the module count (~250)
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_the_checks_can_fail() -> None:
    """The walker sees lazy and TYPE_CHECKING imports, and submodules through a face."""
    g = graph()
    assert "runtime.config.systemd_env" in g["runtime.config.settings"]
    rooms_seen = defaultdict(set)
    for module, deps in g.items():
        for dep in deps:
            rooms_seen[room_of(module)].add(room_of(dep))
    assert "catalog" in rooms_seen["service"]  # a real downward arrow is seen
