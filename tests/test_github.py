"""GitHub annotations: paths from the repository root, one per problem, and the full list past GitHub's cap."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from conftest import make_vault

from notevault.cli import main
from notevault.findings import Finding
from notevault.github import workflow_commands
from notevault.results import BlockResult, NoteReport, Report

ANNOTATION = re.compile(r"^::(error|warning|notice) (?:file=([^,]*),)?(?:line=(\d+),)?(?:col=(\d+),)?"
                        r"title=([^:]*)::(.*)$")
DROPPED = "results of 1 block dropped: the note changed while its blocks ran"
NOTE = "# N\n\n```python run id=ok\nprint(1)\n```\n\n![[gone.png]]\n"


@pytest.fixture(autouse=True)
def outside_actions(monkeypatch):
    """As on a developer's machine, unless a test sets them: no workspace, no step summary."""
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def github_lint(capsys, *paths: str) -> list[tuple[str, ...]]:
    capsys.readouterr()
    assert main(["lint", "--format", "github", *paths]) == 1
    return [m.groups() for m in map(ANNOTATION.match, capsys.readouterr().out.splitlines()) if m]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_paths_are_relative_to_the_git_top_level_wherever_the_command_runs(tmp_path, monkeypatch, capsys):
    repo = tmp_path / "repo"
    make_vault(repo / "notes" / "vault", {"sub/n.md": NOTE})
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    monkeypatch.chdir(repo / "notes" / "vault" / "sub")
    assert github_lint(capsys, ".") == [
        ("error", "notes/vault/sub/n.md", "7", "1", "notevault broken-link", "broken embed: 'gone.png' not found")]


def test_paths_are_relative_to_github_workspace_when_set(tmp_path, monkeypatch, capsys):
    make_vault(tmp_path / "ws" / "vault", {"n.md": NOTE})
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.chdir(tmp_path / "ws" / "vault")
    assert [a[1] for a in github_lint(capsys, "n.md")] == ["vault/n.md"]


def test_one_annotation_per_problem_skips_and_warnings_included(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    bad_tag = Finding("bad-tag", "error", 3, 1, "bad tag on ```python run colour=red: unknown option 'colour'")
    note = NoteReport("n.md", blocks=[
        BlockResult(id="L3", line=3, kind="run", status="failed", hash="h", error="bad tag: unknown option 'colour'"),
        BlockResult(id="gpu", line=7, kind="run", status="skipped", hash="h", error="CUDA is not available here"),
        BlockResult(id="bad", line=11, kind="run", status="failed", hash="h", error="ValueError: x"),
    ], lint=[bad_tag], warnings=[DROPPED])
    assert [ANNOTATION.match(line).groups() for line in workflow_commands(Report([note]))] == [
        ("warning", "n.md", "7", None, "notevault%3A block gpu skipped", "CUDA is not available here"),
        ("error", "n.md", "11", None, "notevault%3A block bad failed", "ValueError: x"),
        ("error", "n.md", "3", "1", "notevault bad-tag", bad_tag.message),
        ("warning", "n.md", None, None, "notevault", DROPPED),
    ]


def many(errors: int, infos: int) -> Report:
    lint = [Finding("broken-link", "error", n, 1, f"broken link: 'a|{n}.md' not found") for n in range(1, errors + 1)]
    lint += [Finding("empty-field", "info", 100 + n, 1, "field is *empty*") for n in range(infos)]
    return Report([NoteReport("n.md", lint=lint)])


def test_past_githubs_cap_the_job_summary_gets_every_annotation(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    lines = workflow_commands(many(errors=13, infos=10))
    assert lines[0] == ("::notice title=notevault::GitHub shows 10 annotations of each level per step: 3 errors, "
                        "1 notice not shown here; the job summary lists them all")
    assert len(lines) == 1 + 13 + 10
    table = summary.read_text().splitlines()
    assert table[:5] == ["earlier step", "### notevault: 13 errors, 0 warnings, 10 notices", "",
                         "| level | file | line | problem |", "| --- | --- | --- | --- |"]
    assert table[5] == r"| error | n.md | 1 | notevault broken-link: broken link: 'a\|1.md' not found |"
    assert table[-1] == r"| notice | n.md | 109 | notevault empty-field: field is \*empty\* |"
    assert len(table) == 5 + 23


def test_past_the_cap_without_a_step_summary_the_notice_says_how_to_see_them(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert workflow_commands(many(errors=11, infos=0))[0].endswith(
        "1 error not shown here; run notevault locally to see them all")


def test_at_the_cap_nothing_is_added(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    monkeypatch.chdir(tmp_path)
    lines = workflow_commands(many(errors=10, infos=10))
    assert len(lines) == 20 and not lines[0].startswith("::notice title=notevault::")
    assert not (tmp_path / "summary.md").exists()


def test_the_job_summary_counts_in_correct_plurals():
    from notevault.github import Annotation, step_summary

    found = [Annotation("error", "a.md", 1, 1, "t", "m"), Annotation("notice", "a.md", 2, 1, "t", "m"),
             Annotation("notice", "a.md", 3, 1, "t", "m")]
    assert step_summary(found).splitlines()[0] == "### notevault: 1 error, 0 warnings, 2 notices"


@pytest.mark.parametrize("note", [
    "```python check formula=nope\nx = 1\n```\n",  # unknown-formula
    "```python run\nprint(1)\n",  # unclosed-fence
])
def test_a_block_that_cannot_run_because_of_a_lint_error_is_annotated_once(tmp_path, monkeypatch, capsys, note):
    root = make_vault(tmp_path / "vault", {"n.md": note})
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["check", "--format", "github", str(root)]) == 1
    found = [m.groups() for m in map(ANNOTATION.match, capsys.readouterr().out.splitlines()) if m]
    assert [(level, file, line) for level, file, line, *_ in found] == [("error", "vault/n.md", "1")], found
