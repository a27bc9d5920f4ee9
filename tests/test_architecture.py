"""The arrows of docs/architecture.md, read from the source: which module may import which.

Every import counts, the ones inside functions too: a deferred import that closes a loop is still a
loop. The one exception is a lazy import of `studyapp.tasks`, which queueing code needs for
`delay_on_commit` and the tasks module needs the queueing code for.
"""

import ast
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

PACKAGES = ("studyapp", "generation")
DOMAINS = ("catalog", "runs", "studies", "rating", "results")
FACES = ("views", "browser", "urls")  # a domain's pages, reached only from its own urls and the root urls
LAZY_TASKS = "studyapp.tasks"


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files():
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def imported_names(path: Path, module: str) -> set[str]:
    """Every dotted name the module imports, at the top or inside a function."""
    names = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def project_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a name resolves to the longest module it names)."""
    files = {module_name(path): path for path in source_files()}
    graph = {}
    for module, path in files.items():
        targets = set()
        for name in imported_names(path, module):
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):  # a package's own __init__
                targets.add(name)
        graph[module] = targets
    return graph


def external_imports(module: str) -> set[str]:
    path = next(p for p in source_files() if module_name(p) == module)
    return {name.split(".")[0] for name in imported_names(path, module)}


GRAPH = project_graph()


def domain_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "studyapp" and parts[1] in DOMAINS else None


def test_the_graph_covers_the_rooms():
    assert {"studyapp.models", "studyapp.rating.assignment", "studyapp.runs.reconciler", "generation.api"} <= set(GRAPH)


def test_generation_imports_neither_django_nor_studyapp():
    for module in (m for m in GRAPH if m.startswith("generation")):
        assert not external_imports(module) & {"django", "rest_framework", "celery", "studyapp"}, module


def test_statistics_import_nothing_of_django_or_the_web_side():
    stats = [m for m in GRAPH if m == "studyapp.stats" or m.startswith("studyapp.stats.")]
    assert stats
    for module in stats:
        assert "django" not in external_imports(module), module
        assert all(t.startswith("studyapp.stats") for t in GRAPH[module]), (module, GRAPH[module])


def test_models_import_no_domain():
    assert GRAPH["studyapp.models"] == set()


@pytest.mark.parametrize("face", ["studyapp.admin", "studyapp.api"])
def test_no_domain_reaches_into_the_admin_or_the_api(face):
    for module, targets in GRAPH.items():
        if not module.startswith(face) and module != "studyapp.urls":
            assert not {t for t in targets if t == face or t.startswith(face + ".")}, module


def test_domain_logic_never_imports_pages_or_routes():
    for module, targets in GRAPH.items():
        if module.rpartition(".")[2] in FACES or module == "studyapp.urls":
            continue
        pages = {t for t in targets if domain_of(t) and t.rpartition(".")[2] in FACES}
        assert not pages, (module, pages)


def test_there_is_no_import_cycle():
    graph = {module: {t for t in targets if t != LAZY_TASKS} for module, targets in GRAPH.items()}
    assert strongly_connected(graph) == []


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or not (iterative Tarjan)."""
    index, low, on_stack, stack, groups = {}, {}, set(), [], []
    for root in graph:
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
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def test_the_cycle_finder_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
