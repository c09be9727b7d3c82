"""``notevault tangle``: a note's tagged blocks as one runnable script in the ``# %%`` cell format.

VS Code, Jupyter and jupytext open such a script as cells; each cell is headed by the note's path and line, and
the script sets up what a worker would (``torch``, ``device``, seeds, ``snippets/`` on the path) so running it
with python prints what the note's results show.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from .note import Fence, Note
from .vault import Vault

PRELUDE = '''# Tangled by notevault from {source}: edit the note, not this file.
import random
import sys

import torch

sys.path[:0] = [{snippets!r}, {folder!r}]


def _notevault_seed(seed):
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy
    except ImportError:
        return
    numpy.random.seed(seed)


def _notevault_device(requested):
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")
'''


def _show_last_expression(code: str) -> str:
    """Print the value of a last bare expression, as the note's result shows it (Jupyter's habit)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        return code
    last = tree.body[-1]
    lines = code.split("\n")
    source = ast.get_source_segment(code, last)
    before = "\n".join(lines[: last.lineno - 1])
    prefix = lines[last.lineno - 1][: last.col_offset]
    shown = f"{prefix}_value = {source}\nif _value is not None:\n    print(repr(_value))"
    return (before + "\n" if before else "") + shown


def _indent(code: str) -> str:
    return "\n".join("    " + line if line else line for line in code.split("\n"))


def _cell(note_display: str, block: Fence, vault_device: str) -> str:
    tag = block.tag
    device = tag.device or vault_device
    header = f"# %% {note_display}:{block.span.line}" + (f" {tag.id}" if tag.id else "")
    body = _show_last_expression(block.code.rstrip("\n"))
    if tag.expect:
        body = f"try:\n{_indent(body)}\nexcept Exception as _error:  # expect={tag.expect}\n" \
               f"    print(f'raised as expected: {{type(_error).__name__}}: {{_error}}')"
    if device == "cuda":  # the note reports such a block as skipped on a machine without CUDA
        body = f"if torch.cuda.is_available():\n{_indent(body)}"
    return f"{header}\n_notevault_seed({tag.seed})\ndevice = _notevault_device({device!r})\n{body}\n"


def tangle_note(vault: Vault, note: Note, path: Path) -> str:
    display = os.path.relpath(path)
    runnable = [block for block in note.blocks if block.closed and not block.tag.errors]
    cells = [_cell(display, block, vault.config.device) for block in runnable]
    prelude = PRELUDE.format(source=display, snippets=str(vault.root / "snippets"), folder=str(path.parent))
    return prelude + "\n\n" + "\n\n".join(cells)


def tangle_notes(vault: Vault, paths: list[Path], out: Path | None = None) -> list[tuple[str, str]]:
    """Write one script per note that has tagged blocks; return (note, script) paths, as shown to the user."""
    written = []
    for path in vault.notes(paths).notes:
        note = vault.note(vault.relative(path))
        if not isinstance(note, Note) or not note.blocks:
            continue
        folder = out or path.parent
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{path.stem}.py"
        target.write_text(tangle_note(vault, note, path), encoding="utf-8")
        written.append((os.path.relpath(path), os.path.relpath(target)))
    return written
