"""Every third-party module the package imports is declared in pyproject.toml's [project].dependencies.

CI installs the test extras, which pull in more than a plain `pip install .` does, so a module
missing from `dependencies` (scipy was, for dedup.py) passes CI and fails for users. This walks
the imports of every rag/*.py (ast), maps each third-party top-level module to the distribution
that provides it (importlib.metadata.packages_distributions) and looks that up in `dependencies`.
A module that the package imports somewhere inside `try: ... except ImportError` is optional (the
code says what to install; its other imports run after that check): its distribution must be in
an extra at least.
"""
from __future__ import annotations

import ast
import importlib.metadata
import re
import sys

import pytest

from conftest import REPO

tomllib = pytest.importorskip("tomllib")


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement string ("faiss-cpu>=1.8" -> "faiss-cpu")."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip()).group()).lower()


def _catches_import_error(node: ast.Try) -> bool:
    names = []
    for h in node.handlers:
        kinds = h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]
        names += [k.id for k in kinds if isinstance(k, ast.Name)]
    return bool({"ImportError", "ModuleNotFoundError"} & set(names))


def package_imports() -> dict[str, tuple[list[str], bool]]:
    """{top-level module: (files importing it, optional)} of the absolute imports in rag/*.py."""
    files: dict[str, set[str]] = {}
    optional: set[str] = set()
    for path in sorted((REPO / "rag").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        guarded = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) and _catches_import_error(t)
                   for stmt in t.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            for top in {m.split(".")[0] for m in mods} - {"rag"} - set(sys.stdlib_module_names):
                files.setdefault(top, set()).add(path.relative_to(REPO).as_posix())
                if id(node) in guarded:
                    optional.add(top)
    return {m: (sorted(f), m in optional) for m, f in files.items()}


def undeclared(imports: dict[str, tuple[list[str], bool]], dependencies: set[str], extras: set[str]) -> list[str]:
    """What is wrong: modules whose distribution is not declared where it must be."""
    provided = importlib.metadata.packages_distributions()
    problems = []
    for module, (files, optional) in sorted(imports.items()):
        dists = {_name(d) for d in provided.get(module, [])}
        where = ", ".join(files)
        if not dists:
            problems.append(f"{module} (imported by {where}) is provided by no installed distribution")
        elif not optional and not dists & dependencies:
            problems.append(f"{module} (imported by {where}) needs {' or '.join(sorted(dists))} "
                            f"in [project].dependencies")
        elif optional and not dists & (dependencies | extras):
            problems.append(f"{module} (optional import in {where}) needs {' or '.join(sorted(dists))} in an extra")
    return problems


@pytest.fixture(scope="module")
def declared():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    dependencies = {_name(r) for r in project["dependencies"]}
    extras = {_name(r) for group in project.get("optional-dependencies", {}).values() for r in group}
    return dependencies, extras


def test_every_imported_distribution_is_a_dependency(declared):
    dependencies, extras = declared
    imports = package_imports()
    assert {"numpy", "faiss", "scipy", "jieba", "gradio"} <= set(imports)  # the walk sees the package
    assert imports["qdrant_client"] == (["rag/store.py"], True)  # optional: the qdrant extra
    assert undeclared(imports, dependencies, extras) == []


def test_a_dependency_left_to_the_extras_is_caught(declared):
    dependencies, extras = declared
    imports = package_imports()
    problems = undeclared(imports, dependencies - {"scipy"}, extras | {"scipy"})
    assert len(problems) == 1 and problems[0].startswith("scipy (imported by rag/dedup.py) needs scipy")
    assert any("qdrant-client" in p for p in undeclared(imports, dependencies, extras - {"qdrant-client"}))
