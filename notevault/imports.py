"""The vault's own modules a block imports, found where its worker will look for them.

A worker puts ``snippets/`` and the folders of its job's notes first on ``sys.path`` (and runs in the note's
folder), so ``import helper`` in ``notes/a.md`` can load ``snippets/helper.py`` or ``notes/helper.py``, and
``from pkg.sub import f`` loads ``snippets/pkg/__init__.py`` and ``snippets/pkg/sub.py``. A block's run hash
covers the bytes of every such module, followed through what each imports in turn (relative imports included),
and the index records every place looked at, present or not: a module that appears, changes or goes makes the
block's result stale. Imports made at run time from strings (``importlib.import_module(name)``) are not seen.
"""

from __future__ import annotations

import ast
import hashlib
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import decode_source


@dataclass(frozen=True)
class Found:
    """What a block's imports rest on in the vault."""

    looked: tuple[str, ...]  # every vault path a module could be at, present or not (sorted)
    sources: tuple[tuple[str, str], ...]  # (vault path, hash of its bytes) of each module found (sorted)


def imported_names(code: str, package: str = "") -> set[str]:
    """Dotted module names ``code`` imports: ``import a.b`` gives a and a.b; ``from a import b`` gives a and a.b
    (``b`` may be a submodule); ``from a import *`` gives a and ``a.*`` (every submodule its ``__all__`` may
    name); a relative import is read from ``package``, the package the code is in."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()  # Python cannot compile it either: the import fails, and nothing further is read
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module or "", node.level, package)
            if base:
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names)
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

    def __init__(self, read: Callable[[str], bytes | None], listing: Callable[[str], list[str]]) -> None:
        self.read = read  # vault path -> bytes, or None where there is no such file (or --git does not track it)
        self.listing = listing  # "folder/" -> the vault paths below it
        self._files: dict[str, tuple[str, str] | None] = {}  # vault path -> (hash, source), None: absent
        self._imports: dict[tuple[str, str], set[str]] = {}  # (vault path, its package) -> what it imports

    def file(self, path: str) -> tuple[str, str] | None:
        """A module file's hash (of its bytes: two encodings of one text differ) and its source as Python reads
        it (its coding line honoured)."""
        if path not in self._files:
            data = self.read(path)
            self._files[path] = None if data is None else (hashlib.sha256(data).hexdigest(), _decoded(data))
        return self._files[path]

    def found(self, code: str, folders: tuple[str, ...]) -> Found:
        """The modules ``code`` imports from ``folders`` (vault paths, "" for the root), and theirs in turn."""
        looked: set[str] = set()
        sources: dict[str, str] = {}
        todo = sorted(imported_names(code))
        seen = set(todo)
        while todo:
            name = todo.pop()
            for folder in folders:
                for module, path in self._places(name, folder):
                    looked.add(path)
                    file = self.file(path)
                    if file is None or path in sources:
                        continue
                    sources[path] = file[0]
                    for more in self._imported_by(path, module) - seen:
                        seen.add(more)
                        todo.append(more)
        return Found(tuple(sorted(looked)), tuple(sorted(sources.items())))

    def _imported_by(self, path: str, module: str) -> set[str]:
        package = module if path.endswith("/__init__.py") else module.rpartition(".")[0]
        if (path, package) not in self._imports:
            self._imports[path, package] = imported_names(self._files[path][1], package)
        return self._imports[path, package]

    def _places(self, name: str, folder: str) -> list[tuple[str, str]]:
        """(module, vault path) where ``name`` may be; for ``pkg.*``, each module and subpackage in pkg's folder."""
        if not name.endswith(".*"):
            return [(name, path) for path in module_paths(name, folder)]
        package = name[:-2]
        prefix = posixpath.join(folder, *package.split(".")) + "/"
        init = self.file(prefix + "__init__.py")
        places = [(f"{package}.{item}", path) for item in _all_names(init[1] if init else "")
                  for path in module_paths(item, prefix.rstrip("/"))]  # named there, maybe not written yet
        for path in self.listing(prefix):
            inner = path[len(prefix):]
            if inner.endswith(".py") and "/" not in inner:
                places.append((f"{package}.{inner[:-3]}", path))
            elif inner.count("/") == 1 and inner.endswith("/__init__.py"):
                places.append((f"{package}.{inner.split('/')[0]}", path))
        return places


def _all_names(source: str) -> list[str]:
    """The names a package's ``__all__`` lists, where it is a literal list or tuple of strings."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    names = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets) \
                and isinstance(node.value, (ast.List, ast.Tuple)):
            names += [e.value for e in node.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return names


def _decoded(data: bytes) -> str:
    try:
        return decode_source(data)
    except (SyntaxError, UnicodeDecodeError, LookupError):
        return data.decode("utf-8", errors="replace")
