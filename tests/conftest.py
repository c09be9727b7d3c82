"""Shared fixtures: real seed notes in a throwaway vault, and a way to build small vaults."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SEEDS = FIXTURES / "seeds"
TEMPLATES = FIXTURES / "templates"
REPO = Path(__file__).parent.parent


def seed(prefix: str) -> Path:
    """The seed note whose file name starts with ``prefix`` ("002")."""
    return next(SEEDS.glob(f"{prefix}_*.md"))


def make_vault(root: Path, files: dict[str, str | bytes], *, app: dict | None = None,
               templates: str | None = None) -> Path:
    """A vault at ``root`` with ``.obsidian/`` settings and the given files (text written as-is, no newline fixes)."""
    (root / ".obsidian").mkdir(parents=True, exist_ok=True)
    (root / ".obsidian" / "app.json").write_text(json.dumps(app or {}))
    if templates:
        (root / ".obsidian" / "templates.json").write_text(json.dumps({"folder": templates}))
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_bytes(content.encode("utf-8"))
    return root


@pytest.fixture
def seed_vault(tmp_path: Path) -> Path:
    """The five seeds and the study template in a vault, as the user keeps them."""
    root = make_vault(tmp_path / "seeds", {}, templates="Templates")
    for note in SEEDS.glob("*.md"):
        shutil.copy(note, root / note.name)
    (root / "Templates").mkdir()
    for template in TEMPLATES.glob("*.md"):
        shutil.copy(template, root / "Templates" / template.name)
    return root
