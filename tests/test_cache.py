"""The result cache under ``.notevault/``: it keeps itself out of the user's git repository."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import make_vault

from notevault.cache import Cache
from notevault.results import BlockResult

RESULT = BlockResult(id="b", line=1, kind="run", status="passed", hash="h1", output="1\n")

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(root, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


@needs_git
def test_git_sees_no_cache_file_in_a_vault_repository(tmp_path):
    root = make_vault(tmp_path / "v", {"n.md": "```python run\nprint(1)\n```\n"})
    git(root, "init", "-q")
    cache = Cache(root)
    cache.put("key", RESULT)
    cache.close()
    assert (root / ".notevault" / "cache.jsonl").exists()
    assert git(root, "status", "--porcelain", "--untracked-files=all").splitlines() == [
        "?? .obsidian/app.json", "?? n.md"]
    git(root, "add", "-A")
    assert ".notevault" not in git(root, "diff", "--cached", "--name-only")
    assert Cache(root).get("key") == RESULT


def test_the_folder_gets_a_gitignore_holding_star_only_when_notevault_creates_it(tmp_path):
    fresh = make_vault(tmp_path / "fresh", {})
    Cache(fresh).put("key", RESULT)
    assert (fresh / ".notevault" / ".gitignore").read_text().splitlines()[-1] == "*"

    kept = make_vault(tmp_path / "kept", {".notevault/keep.txt": "the user's"})
    Cache(kept).put("key", RESULT)
    assert sorted(p.name for p in (kept / ".notevault").iterdir()) == ["cache.jsonl", "keep.txt"]
