"""Provenance: the code version of each stage, derived from what the stage actually imports.

A rule's params carry ``code_version(<the stage module>, <the plugin modules it loads by
name>)``: the package version and a hash of the source of every package module in the import
closure of those roots. So a change to a module that refine imports (directly or through
another module, at the top of a file or inside a function) reruns refine, and a change to a
module refine never imports does not.

The closure is read from the source with :mod:`ast` (nothing is imported, so building the DAG
stays free of torch). Plugins that a stage looks up by name at run time (a method module from
the method registry, a trainer's module) are not static imports of the stage; the rule adds
their module as a further root, so a change to one method reruns that method alone.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

from photostyle import __version__

PACKAGE = "photostyle"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


class UnknownModule(LookupError):
    """A code-version root or an import that names no module of the package."""


def module_file(module: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The source file of ``photostyle.a.b`` (a module or a package's ``__init__``), else None."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = package_dir.joinpath(*parts[1:])
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _parents(module: str) -> list[str]:
    """``photostyle.a.b`` -> ``photostyle``, ``photostyle.a`` (importing a module runs its parents)."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _import_statements(body):
    """The import statements of a statement list, at any depth of statements (function and class
    bodies, if/try/with/match blocks); expressions are not visited (an import is a statement)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            inner = getattr(node, field, None)
            if isinstance(inner, list):
                yield from _import_statements(inner)


@lru_cache(maxsize=None)
def package_imports(module: str, package_dir: Path = PACKAGE_DIR) -> frozenset[str]:
    """Package modules that ``module``'s source imports anywhere in the file (function bodies too)."""
    path = module_file(module, package_dir)
    if path is None:
        raise UnknownModule(f"no module {module!r} in {package_dir}")
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in _import_statements(tree.body):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:  # ast.ImportFrom
            base = _absolute(node, module, path.name == "__init__.py")
            # `from pkg import name`: name is a submodule if it has a file, else an attribute of pkg
            names = [f"{base}.{a.name}" if module_file(f"{base}.{a.name}", package_dir) else base
                     for a in node.names]
        for name in names:
            if name.split(".")[0] != PACKAGE:
                continue
            if module_file(name, package_dir) is None:
                raise UnknownModule(f"{path}: imports {name!r}, which is not a module of the package")
            found.add(name)
            found.update(_parents(name))
    return frozenset(found - {module})


def import_closure(*roots: str, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """Every package module the roots import, transitively, the roots and their parents included."""
    todo = [r if r.startswith(PACKAGE) else f"{PACKAGE}.{r}" for r in roots]
    seen: set[str] = set()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        if module_file(mod, package_dir) is None:
            raise UnknownModule(f"no module {mod!r} in {package_dir}")
        seen.add(mod)
        todo.extend(_parents(mod))
        todo.extend(package_imports(mod, package_dir))
    return sorted(seen)


@lru_cache(maxsize=None)
def code_hash(*roots: str, package_dir: Path = PACKAGE_DIR) -> str:
    h = hashlib.sha256()
    for mod in import_closure(*roots, package_dir=package_dir):
        path = module_file(mod, package_dir)
        h.update(mod.encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def code_version(*roots: str, package_dir: Path = PACKAGE_DIR) -> str:
    """``<package version>+<hash of the roots' import closure>``, e.g. ``0.1.0+3fa2c1d9e0b7``.

    ``roots`` are module names relative to the package (``"stages.refine"``)."""
    return f"{__version__}+{code_hash(*sorted(set(roots)), package_dir=package_dir)}"
