"""The plain install (no extras) runs everything that executes no block; running one names the extra to install.

The commands run in a real interpreter that can import only the working tree and the distributions the package
metadata requires without extras (``python -S`` with those on PYTHONPATH), so torch is truly absent there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from conftest import REPO
from packaging.requirements import Requirement

DISTRIBUTION = "notevault-obsidian"


def base_requirements(name: str) -> set[str]:
    """Normalised names of the distributions ``pip install NAME`` brings in, NAME included."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        dist = metadata.distribution(todo.pop())
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        for spec in dist.requires or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def import_roots(name: str) -> set[Path]:
    """The top-level packages and modules a distribution installed."""
    roots = set()
    for file in metadata.distribution(name).files or []:
        top = file.parts[0]
        if top.endswith((".dist-info", ".data", ".pth")) or top in ("..", "__pycache__"):
            continue
        roots.add(Path(metadata.distribution(name).locate_file(top)))
    return roots


@pytest.fixture(scope="module")
def light_path(tmp_path_factory) -> Path:
    """A folder that makes importable the working tree's notevault and its plain dependencies, nothing else."""
    folder = tmp_path_factory.mktemp("light-install")
    (folder / "notevault").symlink_to(REPO / "notevault")
    for dist in base_requirements(DISTRIBUTION) - {DISTRIBUTION}:
        for root in import_roots(dist):
            (folder / root.name).symlink_to(root)
    return folder


def light(light_path: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(light_path)}
    return subprocess.run([sys.executable, "-S", "-m", "notevault", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def sample_vault(tmp_path: Path) -> Path:
    """This repository's sample vault (its root holds .obsidian, snippets/ and vault/), every result current."""
    for name in (".obsidian", "snippets", "vault"):
        shutil.copytree(REPO / name, tmp_path / name)
    return tmp_path


def test_the_plain_install_requires_neither_torch_nor_matplotlib():
    plain = base_requirements(DISTRIBUTION)
    assert "torch" not in plain and "matplotlib" not in plain
    assert {"markdown-it-py", "mdit-py-plugins", "pyyaml", "rich", "watchdog"} <= plain


def test_torch_is_not_importable_in_the_light_environment(light_path, tmp_path):
    probe = subprocess.run([sys.executable, "-S", "-c", "import torch"], env={**os.environ,
                           "PYTHONPATH": str(light_path)}, capture_output=True, text=True)
    assert probe.returncode == 1 and "No module named 'torch'" in probe.stderr


def test_everything_that_runs_no_block_works_without_torch(light_path, sample_vault):
    notes = {p: p.read_bytes() for p in (sample_vault / "vault").glob("*.md")}
    for args in (["lint", "vault"], ["check", "--frozen", "vault"], ["formulas", "vault"], ["run", "vault"],
                 ["tangle", "--out", "scripts", "vault"]):
        done = light(light_path, sample_vault, *args)
        assert (args[0], done.returncode) == (args[0], 0), done.stderr
        assert "Traceback" not in done.stderr and "error" not in done.stderr
    assert {p: p.read_bytes() for p in notes} == notes  # the run found every result current
    assert sorted(p.name for p in (sample_vault / "scripts" / "vault").iterdir()) == sorted(
        p.with_suffix(".py").name for p in notes)  # under --out, each note's vault path
    done = light(light_path, sample_vault, "clean", "vault")
    assert (done.returncode, done.stderr) == (0, "")
    assert not any("notevault id=" in p.read_text(encoding="utf-8") for p in notes)


def test_running_a_block_without_torch_is_one_line_naming_the_extra(light_path, sample_vault):
    note = sample_vault / "vault" / "new.md"
    note.write_text("```python run id=fresh\nprint(1)\n```\n", encoding="utf-8")
    for command in ("run", "check"):
        done = light(light_path, sample_vault, command, "vault")
        assert (done.returncode, done.stdout, done.stderr) == (2, "", (
            "notevault: error: running blocks needs torch: install notevault with its run extra, "
            "pip install 'notevault-obsidian[run]'\n"))
    assert note.read_text(encoding="utf-8") == "```python run id=fresh\nprint(1)\n```\n"
