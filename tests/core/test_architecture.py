"""The import graph keeps the shape of docs/architecture.md.

Read from the source with `ast` (nothing is imported), every import counted wherever it
stands, inside a function too: a late import is still a dependency.

- `apps.core` imports no other app and not `config`: it is the middle everything rests on.
- An integration (`dexma`, `partner_api`, `pull`, `volue`, `wattics`) imports `apps.core` and
  itself, nothing else of the project: never another integration, the sandbox or `config`.
- `apps.sandbox` (the simulators and the demo that wires them to the hub) may import `core`
  and the integrations, since the demo drives the real hub code; nothing but `config` imports
  the sandbox.
- `config` (settings, urls, the Celery app) is the top: it may import any app.
- No module reaches itself again through its imports (no cycle), however long the loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("apps", "config")
INTEGRATIONS = frozenset({"dexma", "partner_api", "pull", "volue", "wattics"})


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Each project module under `root` → the project modules it imports."""
    sources = {
        _module_name(path, root): path
        for package in PACKAGES if (root / package).is_dir()
        for path in sorted((root / package).rglob("*.py"))
    }
    graph: dict[str, set[str]] = {}
    for module, path in sources.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = module.split(".")
                    anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                    base = ".".join(anchor + ([base] if base else []))
                # `from package import module` imports that module; `from module import name`
                # the module itself.
                names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in sources else base
                         for alias in node.names]
            else:
                continue
            for name in names:
                # `import apps.core.models` needs the longest prefix that is a module of ours.
                while name and name not in sources:
                    name = name.rpartition(".")[0]
                if name and name != module:
                    targets.add(name)
        graph[module] = targets
    return graph


def layer(module: str) -> str | None:
    """`core`, an integration's name, `sandbox`, `config`; None for the bare `apps` package."""
    parts = module.split(".")
    if parts[0] == "config":
        return "config"
    return parts[1] if len(parts) > 1 else None


def may_import(importer: str, imported: str) -> bool:
    if importer == "config" or importer == imported or imported is None:
        return True
    if importer == "sandbox":
        return imported == "core" or imported in INTEGRATIONS
    if importer in INTEGRATIONS:
        return imported == "core"
    return False  # core, or an app this rule does not know yet: add it to the docstring first


def rule_breaks(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if not may_import(layer(module), layer(target))
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:
        # Iterative, so a long chain of imports cannot reach the recursion limit.
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
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
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
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

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


def test_every_import_follows_the_layers():
    assert rule_breaks(import_graph(ROOT)) == []


def test_no_module_imports_itself_through_a_loop():
    assert cycles(import_graph(ROOT)) == []


# --- The check itself: it finds what it is meant to find ----------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _real_tree_with(tmp_path: Path, name: str, line: str) -> Path:
    """A copy of the project's apps/ and config/ with one line added to one file."""
    import shutil

    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "static", "templates"))
    path = tmp_path / name
    path.write_text(path.read_text() + "\n" + line + "\n")
    return tmp_path


def test_a_planted_arrow_from_core_to_an_app_is_found(tmp_path):
    tree = _real_tree_with(tmp_path, "apps/core/selectors.py",
                           "def late():\n    from apps.dexma.models import Installation")

    assert rule_breaks(import_graph(tree)) == ["apps.core.selectors -> apps.dexma.models"]


def test_a_planted_loop_is_found(tmp_path):
    tree = _real_tree_with(tmp_path, "apps/core/models.py", "import apps.core.selectors")

    assert ["apps.core.models", "apps.core.selectors"] in cycles(import_graph(tree))


def test_each_rule_is_read_from_every_spelling_of_an_import(tmp_path):
    tree = _tree(tmp_path, {
        "apps/__init__.py": "",
        "apps/core/__init__.py": "",
        "apps/core/models.py": "from config import settings\n",
        "apps/dexma/__init__.py": "",
        "apps/dexma/models.py": "from apps.core import models\n",
        "apps/dexma/demo.py": "def f():\n    from apps.sandbox.models import Fake\n",
        "apps/dexma/feed.py": "from ..wattics import client\n",
        "apps/wattics/__init__.py": "",
        "apps/wattics/client.py": "from . import streams\n",
        "apps/wattics/streams.py": "from apps.wattics.client import send\n",
        "apps/sandbox/__init__.py": "",
        "apps/sandbox/models.py": "from apps.dexma.models import Installation\n"
                                  "from apps.core.models import Deployment\n",
        "config/__init__.py": "",
        "config/settings.py": "",
        "config/urls.py": "from apps.sandbox import models\n",
    })
    graph = import_graph(tree)

    assert rule_breaks(graph) == [
        "apps.core.models -> config.settings",
        "apps.dexma.demo -> apps.sandbox.models",
        "apps.dexma.feed -> apps.wattics.client",
    ]
    assert cycles(graph) == [["apps.wattics.client", "apps.wattics.streams"]]
