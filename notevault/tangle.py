"""``notevault tangle``: a note's tagged blocks as one runnable script in the ``# %%`` cell format.

VS Code, Jupyter and jupytext open such a script as cells; each cell is headed by its note's vault path and line.
The script sets up what a worker would before each block (its note's folder as working directory, ``snippets/``
and the note's folder on the path, the seeds, ``device``), so running it with python prints what the note's
results show. A note in a named session gets the earlier notes' blocks of that session first, as a run replays
them. Paths in the script are relative to the script itself: it runs on any machine that has the vault.

A script goes next to its note, or with ``--out DIR`` to the note's vault path under DIR (two notes never share
one). A file there that tangle did not write (its first line says who did) is never overwritten.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .callout import Layout
from .files import write_atomic
from .note import Block
from .plan import NotePlan, PlannedBlock, Planner, RunOptions
from .vault import Vault, display_path

MARK = "# Tangled by notevault from "  # how tangle knows a script it may overwrite: its first line

PRELUDE = '''{mark}{source}: edit the note, not this file.
import os
import random
import sys

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
_SNIPPETS = os.path.normpath(os.path.join(_HERE, {snippets!r}))
_FOLDERS = [os.path.normpath(os.path.join(_HERE, folder)) for folder in {folders!r}]  # the notes' folders
sys.path[:0] = [_SNIPPETS, *_FOLDERS]


def _notevault_cell(seed, folder, requested):
    """What notevault does before each block: its note's folder, the seeds, the device."""
    os.chdir(_FOLDERS[folder])
    random.seed(seed)
    torch.manual_seed(seed)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(seed)
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")
'''


@dataclass(frozen=True)
class Tangled:
    note: str  # as shown to the user, relative to the current folder
    script: str  # the script's path, shown the same way
    refused: str | None = None  # why the script was not written


def _show_last_expression(code: str) -> str:
    """Print the value of a last bare expression, as the note's result shows it (Jupyter's habit)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return code  # Python will say what is wrong when the script runs
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        return code
    last = tree.body[-1]
    if isinstance(last.value, ast.Call) and isinstance(last.value.func, ast.Name) and last.value.func.id == "print":
        return code  # prints itself and shows None, which a result never shows
    lines = code.split("\n")
    source = ast.get_source_segment(code, last)
    before = "\n".join(lines[: last.lineno - 1])
    prefix = lines[last.lineno - 1][: last.col_offset]
    shown = f"{prefix}_value = {source}\nif _value is not None:\n    print(repr(_value))"
    return (before + "\n" if before else "") + shown


def _indent(code: str) -> str:
    return "\n".join("    " + line if line else line for line in code.split("\n"))


def _cell(planned: PlannedBlock, folder: int, vault_device: str) -> str:
    block, rel = planned.block, planned.note.rel
    tag = block.tag
    device = tag.device or planned.note.settings.device or vault_device
    header = f"# %% {rel}:{block.span.line}" + (f" {tag.id}" if tag.id else "")
    body = _show_last_expression(block.code.rstrip("\n"))
    if tag.expect:
        body = f"try:\n{_indent(body)}\nexcept Exception as _error:  # expect={tag.expect}\n" \
               f"    print(f'raised as expected: {{type(_error).__name__}}: {{_error}}')"
    if device == "cuda":  # the note reports such a block as skipped on a machine without CUDA
        body = f"if torch.cuda.is_available():\n{_indent(body)}"
    return f"{header}\ndevice = _notevault_cell({tag.seed}, {folder}, {device!r})\n{body}\n"


def _runnable(block: Block) -> bool:
    return block.closed and not block.tag.errors


def _cells_of(plan: NotePlan, plans: list[NotePlan]) -> list[PlannedBlock]:
    """The note's runnable blocks, after the blocks of its named sessions in earlier notes (vault path order)."""
    own = [p for p in plan.blocks if _runnable(p.block)]
    named = {p.session for p in own if p.session[0] == "session"}
    earlier = [p for other in plans if other.rel < plan.rel for p in other.blocks
               if p.session in named and _runnable(p.block)]
    return earlier + own


def _relative(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def tangle_text(vault: Vault, plan: NotePlan, cells: list[PlannedBlock], script: Path) -> str:
    """The script for one note, to be written at ``script``."""
    here = Path(os.path.abspath(script)).parent
    folders = list(dict.fromkeys([plan.path.parent] + [p.note.path.parent for p in cells]))
    prelude = PRELUDE.format(mark=MARK, source=plan.rel, snippets=_relative(vault.root / "snippets", here),
                             folders=[_relative(folder, here) for folder in folders])
    body = [_cell(p, folders.index(p.note.path.parent), vault.config.device) for p in cells]
    return prelude + "\n\n" + "\n\n".join(body)


def script_path(vault: Vault, rel: str, out: Path | None) -> Path:
    """Next to the note, or under ``out`` at the note's vault path (so two notes never share a script)."""
    name = PurePosixPath(rel).with_suffix(".py")
    return (out / name) if out is not None else vault.root / name


def _why_not_ours(path: Path) -> str | None:
    """Why ``path`` must not be overwritten (None: nothing is there, or tangle wrote it)."""
    if path.is_symlink():
        return "a symbolic link is there (move it away, or give --out DIR)"
    if not path.exists():
        return None
    if not path.is_file():
        return "something other than a file is there (move it away, or give --out DIR)"
    try:
        with path.open("rb") as file:
            first = file.readline(len(MARK) + 1)
    except OSError as exc:
        return f"cannot read it: {exc.strerror}"
    if first.startswith(MARK.encode()):
        return None
    return "the file exists and notevault did not write it (move it away, or give --out DIR)"


def tangle_notes(vault: Vault, paths: list[Path], out: Path | None = None) -> list[Tangled]:
    """Write one script per note that has runnable tagged blocks; a file tangle did not write is left alone."""
    selection = vault.notes(paths, templates=False)  # a template's blocks belong to the notes made from it
    plans = Planner(vault, RunOptions(frozen=True), Layout()).plan(selection.notes)  # also earlier session notes
    tangled, claimed = [], set()
    for plan in plans:
        cells = _cells_of(plan, plans) if plan.in_scope else []
        if not any(p.note is plan for p in cells):
            continue
        target = script_path(vault, plan.rel, out)
        shown = Tangled(display_path(plan.path), display_path(target))
        refused = "another note's script goes there" if target in claimed else _why_not_ours(target)
        if refused is None:
            claimed.add(target)
            refused = _write(target, tangle_text(vault, plan, cells, target))
        tangled.append(shown if refused is None else Tangled(shown.note, shown.script, f"not written: {refused}"))
    return tangled


def _write(target: Path, text: str) -> str | None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_text(encoding="utf-8", errors="replace") != text:
            write_atomic(target, text)
    except OSError as exc:
        return f"cannot write it: {exc.strerror or exc}"
    return None
