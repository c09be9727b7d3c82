"""The vault's own modules a block imports, found where its worker will look for them.

A worker puts ``snippets/`` and the folders of its job's notes first on ``sys.path`` (and runs in the note's
folder), so ``import helper`` in ``notes/a.md`` can load ``snippets/helper.py`` or ``notes/helper.py``, and
``from pkg.sub import f`` loads ``snippets/pkg/__init__.py`` and ``snippets/pkg/sub.py``. A block's run hash
covers the source of every such module, followed through what each imports in turn (relative imports included),
and the index records every place looked at, present or not: a module that appears, changes or goes makes the
block's result stale. Imports made at run time from strings (``importlib.import_module(name)``) are not seen.
"""

from __future__ import annotations

import ast
import posixpath
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Found:
    """What a block's imports rest on in the vault."""

    looked: tuple[str, ...]  # every vault path a module could be at, present or not (sorted)
    sources: tuple[tuple[str, str], ...]  # (vault path, source) of each module found (sorted)


def imported_names(code: str, package: str = "") -> set[str]:
    """Dotted module names ``code`` imports: ``import a.b`` gives a and a.b; ``from a import b`` gives a and a.b
    (``b`` may be a submodule); a relative import is read from ``package``, the package the code is in."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module or "", node.level, package)
            if base:
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return {parent for name in names for parent in _parents(name)}


def _parents(name: str) -> list[str]:
    """``a.b.c`` → a, a.b, a.b.c: importing a module imports every package above it."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _absolute(module: str, level: int, package: str) -> str:
    if level == 0:
        return module
    parts = package.split(".") if package else []
    if level - 1 > len(parts) or not package:
        return ""  # beyond the top: Python raises ImportError, nothing of the vault is read
    base = parts[: len(parts) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def module_paths(name: str, folder: str) -> tuple[str, str]:
    """Where module ``name`` would be below ``folder``, as vault paths: a module file or a package."""
    path = posixpath.join(folder, *name.split("."))
    return f"{path}.py", f"{path}/__init__.py"


class VaultModules:
    """Finds and reads the vault's modules; each file is read once per run."""

    def __init__(self, read: Callable[[str], str | None]) -> None:
        self.read = read  # vault path -> source, or None where there is no such file (or --git does not track it)
        self._sources: dict[str, str | None] = {}

    def source(self, path: str) -> str | None:
        if path not in self._sources:
            self._sources[path] = self.read(path)
        return self._sources[path]

    def found(self, code: str, folders: tuple[str, ...]) -> Found:
        """The modules ``code`` imports from ``folders`` (vault paths, "" for the root), and theirs in turn."""
        looked: set[str] = set()
        sources: dict[str, str] = {}
        todo = sorted(imported_names(code))
        seen = set(todo)
        while todo:
            name = todo.pop()
            for folder in folders:
                for path in module_paths(name, folder):
                    looked.add(path)
                    source = self.source(path)
                    if source is None or path in sources:
                        continue
                    sources[path] = source
                    package = name if path.endswith("/__init__.py") else name.rpartition(".")[0]
                    for more in imported_names(source, package) - seen:
                        seen.add(more)
                        todo.append(more)
        return Found(tuple(sorted(looked)), tuple(sorted(sources.items())))
