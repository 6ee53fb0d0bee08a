"""The architecture holds (issue 19): packages by noun, imports that follow the data flow and
never form a circle, modules of one job and a bounded size, and a wheel that carries the
whole product (sub-packages found by themselves, the viewer as package data).

The import graph is read from the source (every import, those inside functions included;
those only for type checkers left out), so a new module is checked without being listed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("ingest", "server")
MAX_LINES = 400
# What each group may import besides itself (a group: a sub-package, or a top module).
# The data plane (ingest) never imports the server; the runtime never imports who uses it.
ALLOWED: dict[str, set[str]] = {
    "ingest.rates": set(),
    "ingest.redact": set(),
    "ingest.digest": set(),
    "ingest.picture": set(),
    "ingest.source": {"ingest.picture", "ingest.digest"},
    "ingest.encode": {"ingest.picture"},
    "ingest.camera": {"ingest.source", "ingest.picture", "ingest.rates", "ingest.redact"},
    "ingest.wall": {"ingest.camera", "ingest.source", "ingest.picture", "ingest.encode", "ingest.rates"},
    "ingest.hub": {"ingest.encode", "ingest.rates"},
    "server.errors": set(),
    "server.memory": set(),
    "server.keys": set(),  # its imports are for type checkers only
    "server.config": set(),
    "server.audit": set(),
    "server.runtime": {"ingest.*", "server.config"},
    "server.access": {"ingest.hub", "ingest.digest", "server.config", "server.audit", "server.runtime", "server.keys",
                      "server.errors"},
    "server.outputs": {"ingest.encode", "ingest.hub", "server.access", "server.runtime", "server.audit",
                       "server.keys", "server.errors"},
    "server.web": {"server.access", "server.keys", "server.audit"},
    "server.api": {"ingest.*", "server.access", "server.runtime", "server.audit", "server.config",
                   "server.keys", "server.errors", "server.web", "server.cluster"},
    "server.demo": {"server.config", "server.access"},
    "server.cluster": {"ingest.*", "server.config", "server.runtime", "server.keys", "server.access",
                       "server.audit"},
    "server.app": {"ingest.redact", "server.*"},
    "server.cli": {"ingest.redact", "server.*"},
}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules a module imports (a package's name for the package itself)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in PACKAGES:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] in PACKAGES)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def group_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, known) for name, path in known.items()}


def test_no_import_circle() -> None:
    edges = graph()
    # Tarjan's strongly connected components: any component of two or more is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in edges:
                continue
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in edges:
        if node not in index:
            connect(node)
    assert not circles, circles


def _allowed(source_group: str, target: str) -> bool:
    target_group = group_of(target)
    if target_group == source_group or target.startswith(source_group + "."):
        return True
    for rule in ALLOWED[source_group]:
        if rule.endswith(".*") and target.startswith(rule[:-1]):
            return True
        if target_group == rule or target == rule:
            return True
    return False


def test_imports_follow_the_data_flow() -> None:
    wrong = []
    for module, targets in graph().items():
        source_group = group_of(module)
        if source_group in PACKAGES:  # a package's own __init__
            continue
        assert source_group in ALLOWED, f"{module}: a new group; say what it may import (ALLOWED)"
        wrong += [f"{module} -> {target}" for target in sorted(targets) if not _allowed(source_group, target)]
    assert not wrong, "\n".join(wrong)


def test_the_rules_are_not_empty() -> None:
    """The checks above must be able to fail: a known forbidden import is caught."""
    assert not _allowed("ingest.picture", "server.runtime")
    assert not _allowed("server.runtime", "server.access.views")
    assert _allowed("server.outputs", "server.access.views")
    assert "server.runtime" in graph()["server.api.walls"]


def test_every_package_says_what_it_holds_and_may_import() -> None:
    for init in [p for package in PACKAGES for p in (REPO / package).rglob("__init__.py")]:
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        if init.parent.name in PACKAGES:
            continue
        assert "May import" in doc, f"{init.relative_to(REPO)}: say what the package holds and may import"


def test_no_module_is_over_the_size_limit() -> None:
    long = {str(path.relative_to(REPO)): lines for path in modules().values()
            if (lines := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_the_wheel_carries_every_package_and_the_viewer(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q",
                             "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    wheel = next(tmp_path.glob("vigie-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(path.relative_to(REPO)) for path in modules().values()}
    expected |= {str(path.relative_to(REPO)) for path in (REPO / "viewer").rglob("*")
                 if path.is_file() and "__pycache__" not in path.parts}
    assert expected <= names, sorted(expected - names)
    assert not [name for name in names if name.startswith(("tests/", "bench/"))]


@pytest.mark.parametrize("module", ["server.web.static"])
def test_the_viewer_is_found_through_its_package(module: str) -> None:
    from server.web.static import VIEWER_ROOT

    assert (VIEWER_ROOT / "index.html").is_file() and (VIEWER_ROOT / "assets" / "player.js").is_file()


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "tests/support/camsim/Dockerfile"])
def test_dockerfiles_copy_what_exists(dockerfile: str) -> None:
    """No Docker engine here: what can be checked is that every COPY finds its sources
    (a moved module would break the image at build time, far from this change), and that
    the server's image carries the viewer it serves."""
    lines = (REPO / dockerfile).read_text().splitlines()
    copies = [line.split()[1:-1] for line in lines if line.startswith("COPY ")]
    assert copies
    for sources in copies:
        for source in sources:
            assert (REPO / source).exists(), f"{dockerfile}: COPY {source}: not in the repository"
    if dockerfile == "Dockerfile":
        assert ["viewer"] in copies and ["ingest"] in copies and ["server"] in copies
