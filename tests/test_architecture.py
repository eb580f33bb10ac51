"""The house in floors: every import of our own code, including those inside
functions, points down or sideways; no cycles; no importlib on our modules.

Floors, lowest first (README "Tree" and each package's opening comment):
  0 inference.contracts      standard library only
  1 inference                the Lambda: standard library, numpy, orjson, boto3/botocore
  2 models_py                training (inference and libraries only)
  3 apy_runway.foundation    errors and output, paths, S3, HTTP
  4 apy_runway.landing       generate, fetch, collect, ingest
  5 apy_runway.warehouse     the dbt runner, build, leakage
  6 apy_runway.operations    train, retrain, promote, publish, score, ledger, backtest
  7 apy_runway.board         the static board
  8 apy_runway.cli           the command line: every command's flags, run-all, refresh
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("inference", "apy_runway", "models_py")
FLOORS = (
    ("inference.contracts", 0),
    ("inference", 1),
    ("models_py", 2),
    ("apy_runway.foundation", 3),
    ("apy_runway.landing", 4),
    ("apy_runway.warehouse", 5),
    ("apy_runway.operations", 6),
    ("apy_runway.board", 7),
    ("apy_runway.cli", 8),
    ("apy_runway", 8),
)
# What the Lambda's own code may import besides the standard library: the
# model is served as plain arrays, so no scikit-learn, scipy or joblib; orjson
# encodes the hourly document (measured: 15 ms vs json's 143 ms).
SERVING_THIRD_PARTY = {"numpy", "boto3", "botocore", "orjson"}
# ... and the standard-library modules that deserialise code: never in serving.
SERVING_FORBIDDEN = {"pickle", "marshal", "shelve", "copyreg", "_pickle"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def our_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            modules[module_name(path)] = path
    return modules


MODULES = our_modules()


def floor(module: str) -> int:
    for prefix, level in FLOORS:
        if module == prefix or module.startswith(prefix + "."):
            return level
    raise AssertionError(f"{module} is on no floor")


def imports(path: Path, name: str | None = None) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement, at any depth."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((candidate if candidate in MODULES else base, node.lineno))
    return found


def own_edges() -> list[tuple[str, str, int]]:
    edges = []
    for source, path in MODULES.items():
        for target, line in imports(path):
            if target.split(".")[0] in PACKAGES:
                while target not in MODULES and "." in target:
                    target = target.rpartition(".")[0]
                edges.append((source, target, line))
    return edges


def test_every_module_sits_on_a_floor():
    assert len(MODULES) > 30
    for module in MODULES:
        floor(module)


def test_no_module_imports_a_floor_above_its_own():
    upward = [
        f"{MODULES[s].relative_to(REPO)}:{line} imports {t} (floor {floor(t)} > {floor(s)})"
        for s, t, line in own_edges()
        if floor(t) > floor(s)
    ]
    assert not upward, "\n".join(upward)


def test_the_import_graph_has_no_cycles():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for source, target, _ in own_edges():
        if source != target:
            graph[source].add(target)
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_no_importlib_on_our_own_modules():
    offenders = []
    for path in MODULES.values():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                if name.endswith("import_module") or name == "__import__":
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} calls {name}")
    assert not offenders, "\n".join(offenders)


def third_party(path: Path) -> set[str]:
    return {
        name.split(".")[0]
        for name, _ in imports(path)
        if name
        and name.split(".")[0] not in PACKAGES
        and name.split(".")[0] not in sys.stdlib_module_names
    }


def test_contracts_import_the_standard_library_only():
    assert third_party(MODULES["inference.contracts"]) == set()
    assert not [t for s, t, _ in own_edges() if s == "inference.contracts"]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if floor(m) <= 1))
def test_serving_imports_only_numpy_and_boto3(module):
    assert third_party(MODULES[module]) <= SERVING_THIRD_PARTY
    imported = {name.split(".")[0] for name, _ in imports(MODULES[module])}
    assert not imported & SERVING_FORBIDDEN, imported & SERVING_FORBIDDEN


def test_only_the_command_line_parses_arguments():
    """Flags live in apy_runway/cli/: every other module takes plain parameters."""
    parsing = [
        f"{MODULES[m].relative_to(REPO)}:{line}"
        for m in MODULES
        if floor(m) < floor("apy_runway.cli")
        for name, line in imports(MODULES[m])
        if name.split(".")[0] == "argparse"
    ]
    assert not parsing, parsing


def test_serving_never_loads_arrays_with_pickles_allowed():
    """inference/ reads .npz files with artefact.read_npz (object arrays
    refused, shapes checked against the bytes), and np.load, if ever called,
    with allow_pickle=False."""
    readers = [
        module
        for module in ("inference.features", "inference.model.portable")
        if "read_npz(" in MODULES[module].read_text()
    ]
    assert readers == ["inference.features", "inference.model.portable"]
    calls = []
    for module in (m for m in MODULES if floor(m) <= 1):
        tree = ast.parse(MODULES[module].read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(
                ("np.load", "numpy.load")
            ):
                keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
                calls.append((module, node.lineno, keywords.get("allow_pickle")))
    assert all(flag == "False" for _, _, flag in calls), calls


def test_the_checker_sees_imports_inside_functions(tmp_path):
    """A test of the test: an upward import hidden in a function is an edge
    (the probe lives in a temporary folder, never in the source tree)."""
    probe = tmp_path / "_probe_upward.py"
    probe.write_text("def f():\n    from apy_runway.warehouse import build\n    return build\n")
    found = [target for target, _ in imports(probe, "models_py._probe_upward")]
    assert found == ["apy_runway.warehouse.build"]
    assert floor("apy_runway.warehouse.build") > floor("models_py._probe_upward")


def code_lines(folder: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in folder.glob("*.py"))


def test_no_folder_holds_more_than_a_quarter_of_the_code():
    """Each folder of the three packages (its own .py files, not its subfolders)
    holds at most 25% of their lines: no hall the whole house walks through."""
    folders = {p.parent for package in PACKAGES for p in (REPO / package).rglob("*.py")}
    lines = {folder: code_lines(folder) for folder in folders}
    total = sum(lines.values())
    over = {
        str(folder.relative_to(REPO)): round(count / total, 3)
        for folder, count in lines.items()
        if count > 0.25 * total
    }
    assert len(folders) >= 8
    assert not over, f"folders over 25% of {total} lines: {over}"


def test_each_folder_says_what_lives_there_in_ten_lines_at_most():
    folders = {p.parent for package in PACKAGES for p in (REPO / package).rglob("*.py")}
    long = {}
    for folder in folders:
        init = folder / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text())) if init.is_file() else None
        if not doc or len(doc.splitlines()) > 10:
            long[str(folder.relative_to(REPO))] = len(doc.splitlines()) if doc else 0
    assert not long, f"package docstrings missing or over 10 lines: {long}"


MODULE_DOCSTRING_MAX_LINES = 12


def long_module_docstrings(paths: list[Path]) -> dict[str, str]:
    """Each module without a docstring, or with one over 12 lines, and its count."""
    found = {}
    for path in paths:
        doc = ast.get_docstring(ast.parse(path.read_text(), filename=str(path)))
        name = str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
        if not doc:
            found[name] = "missing"
        elif len(doc.splitlines()) > MODULE_DOCSTRING_MAX_LINES:
            found[name] = f"{len(doc.splitlines())} lines"
    return found


def test_every_module_says_what_lives_there_in_twelve_lines_at_most():
    """What lives there, what it may import and why; formats and rules live in
    docs/ (or their dbt docs block, or inference/contracts.py), measurements in
    benchmarks/RESULTS.md."""
    paths = sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))
    assert len(paths) >= 50
    long = long_module_docstrings(paths)
    listing = "\n".join(f"  {name}: {count}" for name, count in sorted(long.items()))
    assert not long, (
        f"module docstrings missing or over {MODULE_DOCSTRING_MAX_LINES} lines "
        f"(move the detail to docs/*.md and link it):\n{listing}"
    )


def test_the_docstring_checker_sees_long_and_missing_docstrings(tmp_path):
    short = tmp_path / "short.py"
    short.write_text('"""One line."""\n\nx = 1\n')
    long = tmp_path / "long.py"
    long.write_text('"""' + "\n".join(f"line {i}" for i in range(13)) + '\n"""\n')
    bare = tmp_path / "bare.py"
    bare.write_text("x = 1\n")
    assert long_module_docstrings([short, long, bare]) == {
        str(long): "13 lines",
        str(bare): "missing",
    }
