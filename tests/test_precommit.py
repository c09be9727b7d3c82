"""The pre-commit hook, committed through for real: real git, real pre-commit, the working tree's notevault.

The hook is the one in .pre-commit-hooks.yaml, made a ``repo: local`` hook with ``language: system`` that runs
this interpreter's notevault: pre-commit would otherwise build its own environment from an index (not offline).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, make_vault

from notevault.cli import main
from notevault.engine import RunOptions, execute
from notevault.vault import Vault

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

UTIL = "def double(x):\n    return 2 * x\n"
CALC = "# Calc\n\n```python run id=dbl\nfrom util import double\nprint(double(2))\n```\n"
PLOT = "# Plot\n\nThe figure: ![[plot.png]]\n"


def hook_as_local() -> dict:
    """The repository's one hook, run by this interpreter instead of an environment pre-commit builds."""
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert [h["id"] for h in hooks] == ["notevault-check-frozen"]
    hook = hooks[0]
    command, options = hook["entry"].split(" ", 1)
    assert command == "notevault"
    return {**hook, "language": "system", "entry": f"{shlex.quote(sys.executable)} -m notevault {options}",
            "args": ["vault/"]}


class Repo:
    """A git repository with pre-commit installed, isolated from the user's git and pre-commit settings."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root = root
        home.mkdir()
        self.env = {**os.environ, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "PRE_COMMIT_HOME": str(home / "pc"),
                    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
                    "GIT_COMMITTER_EMAIL": "t@example.com"}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(args, cwd=self.root, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=300)
        if check and done.returncode:
            raise AssertionError(f"{args} exited {done.returncode}:\n{done.stdout}")
        return done

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("git", *args, check=check)

    def commit(self, message: str) -> subprocess.CompletedProcess:
        """``git commit``, which runs the hook; the caller checks whether it went in."""
        return self.git("commit", "-q", "-m", message, check=False)

    def head(self) -> str:
        return self.git("log", "-1", "--format=%s").stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Repo:
    """README at the root, the vault in vault/: a note importing a snippet (result current), a note embedding
    an image. Committed once through the hook."""
    root = tmp_path / "repo"
    make_vault(root / "vault", {"snippets/util.py": UTIL, "notes/calc.md": CALC, "notes/plot.md": PLOT,
                                "images/plot.png": b"\x89PNG\r\n\x1a\n"})
    (root / "README.md").write_text("# My notes\n")
    (root / ".pre-commit-config.yaml").write_text(yaml.safe_dump({"repos": [{"repo": "local",
                                                                             "hooks": [hook_as_local()]}]}))
    assert main(["run", str(root / "vault")]) == 0
    repo = Repo(root, tmp_path / "home")
    repo.git("init", "-q")
    repo.run(sys.executable, "-m", "pre_commit", "install")
    repo.git("add", "-A")
    done = repo.commit("init")
    assert done.returncode == 0 and "Passed" in done.stdout, done.stdout
    assert ".notevault" not in repo.git("ls-files").stdout
    return repo


def test_a_snippet_edit_that_makes_a_note_stale_is_refused(repo):
    (repo.root / "vault/snippets/util.py").write_text(UTIL.replace("2 * x", "x + x"))
    repo.git("add", "vault/snippets/util.py")
    done = repo.commit("faster double")
    assert done.returncode == 1 and repo.head() == "init"
    assert "vault/notes/calc.md:3:1: error: block dbl stale" in done.stdout


def test_deleting_an_embedded_image_is_refused_and_reported_once(repo):
    repo.git("rm", "-q", "vault/images/plot.png")
    done = repo.commit("drop the plot")
    assert done.returncode == 1 and repo.head() == "init"
    assert done.stdout.count("broken embed") == 1, done.stdout
    assert "vault/notes/plot.md:3:" in done.stdout


def test_a_link_to_a_file_never_added_is_refused(repo):
    (repo.root / "vault/images/new.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # on disk, never git-added
    (repo.root / "vault/notes/new.md").write_text("# New\n\n![[new.png]]\n")
    repo.git("add", "vault/notes/new.md")
    done = repo.commit("new note")
    assert done.returncode == 1 and repo.head() == "init"
    assert "vault/notes/new.md:3:" in done.stdout and "broken embed" in done.stdout
    # The disk alone would have let it through: only the index knows the image is not part of the commit.
    assert main(["check", "--frozen", str(repo.root / "vault")]) == 0


def test_a_note_staged_with_a_readme_is_judged_in_its_vault(repo):
    (repo.root / "README.md").write_text("# My notes\n\nNow with a plot.\n")
    note = repo.root / "vault/notes/calc.md"
    note.write_text(note.read_text().replace("# Calc\n", "# Calc\n\nDoubling, from a snippet.\n"))
    repo.git("add", "README.md", "vault/notes/calc.md")
    done = repo.commit("prose")
    assert done.returncode == 0 and repo.head() == "prose", done.stdout


def test_a_commit_touching_no_note_still_runs_the_hook(repo):
    (repo.root / "vault/notes/plot.md").write_text(PLOT.replace("plot.png", "gone.png"))
    (repo.root / "README.md").write_text("# My notes, renamed\n")
    repo.git("add", "README.md")  # the broken note stays unstaged: pre-commit stashes it, the commit is fine
    done = repo.commit("readme only")
    assert done.returncode == 0 and repo.head() == "readme only", done.stdout
    assert "notevault check --frozen" in done.stdout and "Passed" in done.stdout


def test_a_snippet_never_added_is_missing_to_check_frozen_git(tmp_path):
    """A clone lacks a snippet that was never `git add`-ed: --git judges the note as the clone would, also when
    an earlier check without --git left its answer in the index."""
    root = tmp_path / "vault"
    make_vault(root, {"snippets/util9.py": "def double(x):\n    return 2 * x\n",
                      "n.md": "```python run\nfrom util9 import double\nprint(double(21))\n```\n"})
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    execute(Vault(root), [root], RunOptions())
    subprocess.run(["git", "-C", str(tmp_path), "add", "vault/n.md"], check=True)
    assert not execute(Vault(root), [root], RunOptions(write=False, frozen=True)).failed()  # on disk: current
    stale = execute(Vault(root, git=True), [root], RunOptions(write=False, frozen=True))
    assert [b.status for n in stale.notes for b in n.blocks] == ["stale"]
    subprocess.run(["git", "-C", str(tmp_path), "add", "vault/snippets/util9.py"], check=True)
    assert not execute(Vault(root, git=True), [root], RunOptions(write=False, frozen=True)).failed()


def test_a_figure_never_added_is_missing_to_check_frozen_git(tmp_path):
    """The figure a result embeds must be in the commit too: a clone without it shows a broken image."""
    root = tmp_path / "vault"
    plot = "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"
    make_vault(root, {"n.md": f"```python run\n{plot}\n```\n"})
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert not execute(Vault(root), [root], RunOptions()).failed()
    subprocess.run(["git", "-C", str(tmp_path), "add", "vault/n.md"], check=True)
    stale = execute(Vault(root, git=True), [root], RunOptions(write=False, frozen=True))
    assert [b.status for n in stale.notes for b in n.blocks] == ["stale"]
    subprocess.run(["git", "-C", str(tmp_path), "add", "vault"], check=True)
    assert not execute(Vault(root, git=True), [root], RunOptions(write=False, frozen=True)).failed()
