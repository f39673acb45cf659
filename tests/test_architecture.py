"""The import graph of the code: every module on one floor of the README's table, none importing upward.

Read from the source with `ast` (imports inside functions included), so the
rules hold for every import, not only those a test happens to execute:

* every first-party module stands on exactly one floor (`FLOORS`, the README's
  table, lowest first), and imports only modules on its own floor or below;
* `featnet_tf` imports nothing of `pipelines`, `serving` or `demo`;
* `serving` imports nothing of `featnet_tf` or `pipelines`: it serves any SavedModel;
* `featnet_tf.features` and `featnet_tf.files` stand on the ground floor,
  `featnet_tf.prepared_data` and the config schema on them;
* no module imports itself back through others.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("tfbase", "featnet_tf", "pipelines", "serving", "demo")


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def first_party_modules() -> dict[str, pathlib.Path]:
    return {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}


def imports_of(name: str, path: pathlib.Path, modules: dict[str, pathlib.Path]) -> set[str]:
    """The first-party modules `name` imports (a ``from package import module`` counts as the module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {module for module in found if module in modules and module != name}


# The README's floor table, lowest first.
FLOORS = ("tensorflow floor", "ground floor", "library", "pipeline steps", "commands", "applications")
GROUND_FLOOR = tuple(f"featnet_tf{module}" for module in ("", ".features", ".files", ".prepared_data", ".config"))
COMMANDS = ("train", "evaluate", "export", "analyze", "benchmark", "scaling", "synthetic", "servability", "tune")
PIPELINE_PROGRAMS = ("pipelines.preprocess", "pipelines.score", "pipelines.synthesize")


def floor_of(name: str) -> int:
    """The index in `FLOORS` of the floor `name` stands on."""
    package = name.split(".")[0]
    if package == "tfbase":
        return FLOORS.index("tensorflow floor")
    if name in GROUND_FLOOR:
        return FLOORS.index("ground floor")
    if name in {f"featnet_tf.{command}" for command in COMMANDS}:
        return FLOORS.index("commands")
    if package == "featnet_tf":
        return FLOORS.index("library")
    if package == "pipelines" and name not in PIPELINE_PROGRAMS:
        return FLOORS.index("pipeline steps")
    if package in ("demo", "serving") or name in PIPELINE_PROGRAMS:
        return FLOORS.index("applications")
    raise AssertionError(f"{name} stands on no floor of the README's table")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = first_party_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def arrows(graph: dict[str, set[str]], source: str, target: str) -> list[str]:
    inside = lambda name, package: name == package or name.startswith(package + ".")  # noqa: E731
    return sorted(
        f"{a} -> {b}" for a, targets in graph.items() if inside(a, source) for b in targets if inside(b, target)
    )


def test_every_module_imports_only_its_own_floor_or_below(graph):
    upward = sorted(
        f"{a} ({FLOORS[floor_of(a)]}) -> {b} ({FLOORS[floor_of(b)]})"
        for a, targets in graph.items()
        for b in targets
        if floor_of(b) > floor_of(a)
    )
    assert upward == []


def test_the_floors_hold_what_the_readme_says(graph):
    floors = {name: FLOORS[floor_of(name)] for name in graph}
    assert floors["featnet_tf.lifecycle"] == floors["featnet_tf.training"] == "library"
    assert floors["featnet_tf.train"] == floors["featnet_tf.benchmark"] == floors["featnet_tf.scaling"] == "commands"
    assert floors["featnet_tf.synthetic"] == "commands", "test and benchmark data, imported by no library module"
    assert floors["pipelines.transforms"] == "pipeline steps" and floors["pipelines.preprocess"] == "applications"
    assert floors["tfbase.sessions"] == "tensorflow floor" and floors["serving.server"] == "applications"


def test_the_library_imports_no_application(graph):
    for application in ("pipelines", "serving", "demo"):
        assert arrows(graph, "featnet_tf", application) == []


def test_serving_never_imports_featnet_tf_or_the_pipelines(graph):
    assert arrows(graph, "serving", "featnet_tf") + arrows(graph, "serving", "pipelines") == []


def test_the_ground_floor_imports_nothing_of_ours_above_it(graph):
    assert graph["featnet_tf.features"] == set()
    assert graph["featnet_tf.prepared_data"] == {"featnet_tf.features"}
    assert graph["featnet_tf.files"] == set()
    # the schema knows no model (`featnet_tf.experiments` joins them); it writes itself atomically
    assert graph["featnet_tf.config"] == {"featnet_tf.files"}


def test_no_module_imports_itself_back(graph):
    # A package's __init__ re-exporting its own modules is not a circle: it is the package's face.
    edges = {a: {b for b in targets if not a.startswith(b + ".")} for a, targets in graph.items()}
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(edges[name]):
            if state.get(target) == 1:
                circles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert circles == []


PROGRAM_MODULES = (
    "featnet_tf.train",
    "featnet_tf.evaluate",
    "featnet_tf.export",
    "featnet_tf.analyze",
    "featnet_tf.benchmark",
    "featnet_tf.tune",
    "pipelines.preprocess",
    "pipelines.score",
    "pipelines.synthesize",
    "serving.server",
    "serving.client",
    "serving.loadtest",
)


def argv_calls(path: pathlib.Path) -> list[str]:
    """Calls of another program's ``main(...)`` or ``run(...)`` (its argv entry points) in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name] = alias.name
    return [
        f"{path.relative_to(ROOT)}:{node.lineno} {aliases[node.func.value.id]}.{node.func.attr}(...)"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("main", "run")
        and isinstance(node.func.value, ast.Name)
        and aliases.get(node.func.value.id) in PROGRAM_MODULES
    ]


def test_no_program_composes_another_through_its_argv():
    """Programs call each other's library functions (`Trainer`, `Benchmark`, `preprocess`, `score`, ...),
    never another program's argv entry point; only the tests of a command line call its `main`/`run`."""
    found = [
        call
        for package in (*PACKAGES, "benchmarks")
        for path in sorted((ROOT / package).rglob("*.py"))
        for call in argv_calls(path)
    ]
    assert found == []
