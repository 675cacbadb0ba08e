"""The shape of the code: imports point one way (no cycles between ftscope, flows and tasks modules), the
core never imports Prefect, and an import inside a function is there only to defer a heavy dependency
(each says so with `# deferred:`)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ftscope", "flows", "tasks")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = f.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _module_level_imports(tree: ast.Module, name: str, is_package: bool, modules: dict) -> set[str]:
    """What a module imports when it is imported: imports outside function bodies, resolved to modules
    of ours (`from a import b` is a.b when that is a module), and the submodules of a package that
    imports all of its own (pkgutil.iter_modules(__path__))."""
    targets = set()
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.Import):
            targets |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name if is_package else name.rsplit(".", 1)[0]
                for _ in range(node.level - 1):
                    pkg = pkg.rsplit(".", 1)[0]
                base = f"{pkg}.{base}" if base else pkg
            targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
        stack.extend(ast.iter_child_nodes(node))
    if is_package and "iter_modules(__path__)" in ast.unparse(tree):
        targets |= {m for m in modules if m.rsplit(".", 1)[0] == name}
    return {t for t in targets if t in modules and t != name}


def test_no_import_cycles_and_no_prefect_in_the_core():
    modules = _modules()
    graph = {}
    for name, f in modules.items():
        tree = ast.parse(f.read_text())
        graph[name] = _module_level_imports(tree, name, f.name == "__init__.py", modules)
        if name.startswith("ftscope"):
            assert "prefect" not in {n.split(".")[0] for n in _all_imports(tree)}, f"{f}: the core imports Prefect"
    cycles, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _all_imports(tree) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
    return out


def test_imports_inside_functions_only_defer_heavy_dependencies():
    undeclared = []
    for name, f in _modules().items():
        lines = f.read_text().splitlines()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)) and "# deferred:" not in lines[sub.lineno - 1]:
                        undeclared.append(f"{f.relative_to(ROOT)}:{sub.lineno}: {lines[sub.lineno - 1].strip()}")
    assert not undeclared, "imports inside functions without '# deferred: <why>':\n" + "\n".join(sorted(set(undeclared)))
