"""The house rules, read from the source with `ast` (docs/architecture.md, "Rules").

- mdupload's import graph has no cycle, and no function-level import of an mdupload module hides one
  (the few allowed are listed below, each with its reason);
- the sandbox never imports the client, and the client reaches the sandbox only from the command layer;
- docs/architecture.md names every module under mdupload/.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mdupload"

# Function-level imports of mdupload modules that are allowed, each with its reason: (module, imported).
FUNCTION_LEVEL_ALLOWED: dict[tuple[str, str], str] = {}

# Besides mdupload/commands/, the modules that may reach into the sandbox: the `make demo` entry point.
ENTRY_POINTS = {"mdupload.demo"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def resolve(module: str, node: ast.ImportFrom | ast.Import, is_package: bool) -> list[str]:
    """The mdupload modules an import statement names (`from . import x` names the module x when it is one)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.startswith("mdupload")]
    if node.level:
        base = module.split(".")
        if not is_package:
            base = base[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("mdupload"):
        return []
    names = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in MODULES]
    return names or [target]


def imports(module: str) -> list[tuple[str, bool, int]]:
    """(imported module, at function level, line) for every import of an mdupload module in `module`."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for target in resolve(module, child, path.name == "__init__.py"):
                    found.append((target, in_function, child.lineno))
            visit(child, nested)

    visit(tree, False)
    return found


def graph(*, function_level: bool) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {module: set() for module in MODULES}
    for module in MODULES:
        for target, in_function, _line in imports(module):
            if target in MODULES and target != module and (function_level or not in_function):
                edges[module].add(target)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_import_graph_has_no_cycle_even_counting_function_level_imports():
    cycle = find_cycle(graph(function_level=True))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_function_level_import_of_an_mdupload_module_but_the_allowed_ones():
    found = [f"{MODULES[module].relative_to(ROOT)}:{line} imports {target}"
             for module in MODULES for target, in_function, line in imports(module)
             if in_function and (module, target) not in FUNCTION_LEVEL_ALLOWED]
    assert found == []


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_sandbox_and_the_client_import_each_other_only_through_the_command_layer():
    for module in MODULES:
        targets = {target for target, _in_function, _line in imports(module)}
        if module.startswith("mdupload.sandbox"):
            client = sorted(t for t in targets if not t.startswith("mdupload.sandbox") and t != "mdupload")
            assert client == [], f"the sandbox module {module} imports the client: {client}"
        elif module not in ENTRY_POINTS and not module.startswith("mdupload.commands"):
            sandbox = sorted(t for t in targets if t.startswith("mdupload.sandbox"))
            assert sandbox == [], f"the client module {module} imports the sandbox: {sandbox}"


def test_architecture_md_names_every_module():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [str(path.relative_to(PACKAGE)) for path in MODULES.values()
               if f"`{path.relative_to(PACKAGE)}`" not in text]
    assert missing == []
