"""Lint wall time through the real CLI: the seeds, and a generated 1,000-note vault with 5,000 links.

    python bench/lint.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from _common import SEEDS, TEMPLATES, emit, median_of, timed


def seed_vault(root: Path) -> Path:
    (root / ".obsidian").mkdir(parents=True)
    (root / ".obsidian" / "templates.json").write_text('{"folder": "Templates"}')
    (root / "Templates").mkdir()
    for template in TEMPLATES.glob("*.md"):
        shutil.copy(template, root / "Templates" / template.name)
    for note in SEEDS.glob("*.md"):
        shutil.copy(note, root / note.name)
    return root


def big_vault(root: Path, notes: int = 1000, links_per_note: int = 5) -> Path:
    (root / ".obsidian").mkdir(parents=True)
    (root / "images").mkdir()
    for n in range(0, notes, 2):
        (root / "images" / f"fig{n}.png").write_bytes(b"\x89PNG")
    for n in range(notes):
        links = [f"[[note{(n + k) % notes}]]" if k % 2 else f"![fig](images/fig{(n + k) % notes}.png)"
                 for k in range(1, links_per_note + 1)]
        body = f"# Note {n}\n\n## Section\n\nSome text $x^2$ and more.\n\n" + "\n".join(links) + "\n"
        (root / f"note{n}.md").write_text(body)
    return root


def main() -> None:
    cli = [sys.executable, "-m", "notevault", "lint"]
    with tempfile.TemporaryDirectory() as tmp:
        seeds = seed_vault(Path(tmp) / "seeds")
        big = big_vault(Path(tmp) / "big")
        seeds_s, seeds_mb = median_of(5, lambda: timed(cli + [str(seeds)]))
        big_s, big_mb = median_of(3, lambda: timed(cli + [str(big)]))
        help_s, _ = median_of(5, lambda: timed([sys.executable, "-m", "notevault", "--help"]))
    emit("lint (wall time through the CLI, median)", [
        ("seeds (5 notes + template)", f"{seeds_s:.3f} s (target ≤ 0.5 s), peak {seeds_mb:.0f} MB"),
        ("generated vault: 1,000 notes, 5,000 links", f"{big_s:.3f} s, peak {big_mb:.0f} MB"),
        ("`notevault --help` (start-up alone)", f"{help_s:.3f} s"),
    ])


if __name__ == "__main__":
    main()
