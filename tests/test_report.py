"""Reports read back by real parsers: JSON (SPEC §7), JUnit XML, GitHub annotations, text."""

from __future__ import annotations

import json
import os
import re
from xml.etree import ElementTree as ET

import pytest
from conftest import make_vault

from notevault.cli import main

NOTE = ("# Small vault\n\n```python run id=ok\nprint('fine')\n```\n\n```python run id=bad\n1 / 0\n```\n\n"
        "![plot](missing.png)\n")
STALE_NOTE = "```python run id=old\nprint('old')\n```\n"
STALE = ("the block, its options or what it depends on (earlier blocks of its session, snippets it imports, its "
         "formula) changed since its result was written")


@pytest.fixture
def small_vault(tmp_path, monkeypatch):
    """One pass, one failure, one stale stored result, one broken link."""
    root = make_vault(tmp_path / "v", {"a.md": NOTE, "b.md": STALE_NOTE})
    monkeypatch.chdir(root)
    assert main(["run", "b.md"]) == 0
    (root / "b.md").write_text((root / "b.md").read_text().replace("print('old')", "print('new')"))
    assert main(["run", "a.md"]) == 1
    return root


def run_cli(capsys, *args):
    capsys.readouterr()
    status = main(list(args))
    return status, capsys.readouterr().out


def test_json_report(small_vault, capsys):
    status, out = run_cli(capsys, "check", "--frozen", "--format", "json", ".")
    data = json.loads(out)
    assert status == 1
    summary = data["summary"]
    assert {k: summary[k] for k in ("notes", "blocks", "passed", "failed", "skipped", "stale", "lint_errors")} == {
        "notes": 2, "blocks": 3, "passed": 1, "failed": 1, "skipped": 0, "stale": 1, "lint_errors": 1}
    a, b = data["notes"]
    assert a["path"] == "a.md" and b["path"] == "b.md"
    assert [(x["id"], x["line"], x["kind"], x["status"]) for x in a["blocks"]] == [
        ("ok", 3, "run", "passed"), ("bad", 12, "run", "failed")]  # below ok's result callout
    assert a["blocks"][1]["error"] == "ZeroDivisionError: division by zero"  # read back from its callout
    assert b["blocks"][0]["status"] == "stale"
    assert b["blocks"][0]["error"] == STALE
    assert a["lint"] == [{"rule": "broken-link", "severity": "error", "line": 25, "col": 1,
                          "message": "broken image: 'missing.png' not found"}]
    assert set(a["blocks"][0]) == {"id", "line", "kind", "status", "cached", "device", "seconds", "error", "formula"}


def test_check_runs_everything_and_writes_nothing(small_vault, capsys):
    before = {p.name: p.read_bytes() for p in small_vault.glob("*.md")}
    status, out = run_cli(capsys, "check", "--format", "json", "--force", ".")
    data = json.loads(out)
    assert status == 1
    assert [(b["id"], b["status"], b["cached"]) for n in data["notes"] for b in n["blocks"]] == [
        ("ok", "passed", False), ("bad", "failed", False), ("old", "passed", False)]
    assert {p.name: p.read_bytes() for p in small_vault.glob("*.md")} == before


def test_junit_report(small_vault, capsys):
    status, out = run_cli(capsys, "check", "--frozen", "--format", "junit", ".")
    root = ET.fromstring(out)
    assert status == 1 and root.tag == "testsuites"
    counts = (root.get("tests"), root.get("failures"), root.get("skipped"), root.get("errors"))
    assert counts == ("4", "3", "0", "0")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["a.md", "b.md"]
    cases = {(c.get("classname"), c.get("name")): c for s in suites for c in s.findall("testcase")}
    assert set(cases) == {("a.md", "ok (line 3)"), ("a.md", "bad (line 12)"),
                          ("a.md lint", "broken-link (line 25:1)"), ("b.md", "old (line 1)")}
    assert cases["a.md", "ok (line 3)"].find("failure") is None
    assert cases["b.md", "old (line 1)"].find("failure").get("type") == "stale"
    assert cases["a.md lint", "broken-link (line 25:1)"].find("failure").get("message") == (
        "broken image: 'missing.png' not found")


def test_github_annotations(small_vault, capsys):
    status, out = run_cli(capsys, "check", "--frozen", "--format", "github", ".")
    annotation = r"^::(error|warning|notice) file=([^,]+),line=(\d+)(?:,col=(\d+))?,title=([^:]+)::(.*)$"
    annotations = re.findall(annotation, out, re.M)
    assert status == 1
    assert annotations == [
        ("error", "a.md", "12", "", "notevault%3A block bad failed", "ZeroDivisionError: division by zero"),
        ("error", "a.md", "25", "1", "notevault broken-link", "broken image: 'missing.png' not found"),
        ("error", "b.md", "1", "", "notevault%3A block old stale", STALE),
    ]


def test_output_file_and_text_summary(small_vault, capsys):
    status, out = run_cli(capsys, "check", "--frozen", "--format", "json", "--output", "report.json", ".")
    assert status == 1 and out == ""
    assert json.loads((small_vault / "report.json").read_text())["summary"]["stale"] == 1
    status, out = run_cli(capsys, "check", "--frozen", ".")
    assert out.splitlines() == [
        "a.md:12:1: error: block bad failed: ZeroDivisionError: division by zero",
        "a.md:25:1: error: broken image: 'missing.png' not found [broken-link]",
        f"b.md:1:1: error: block old stale: {STALE}",
        out.splitlines()[-1],
    ]
    assert out.splitlines()[-1].startswith(
        "2 notes · 3 blocks: 1 passed, 1 failed, 0 skipped, 1 stale (3 cached) · lint: 1 errors, 0 warnings, 0 info")


def _notes_for_progress():
    from notevault.results import BlockResult, NoteReport

    def block(status, cached=False):
        return BlockResult(id="b", line=1, kind="run", status=status, hash="h", cached=cached)

    return [NoteReport("a.md", [block("passed"), block("passed", cached=True)]), NoteReport("b.md", [block("failed")])]


def test_progress_without_a_terminal_is_one_plain_line_per_note():
    import io

    from notevault.report import ProgressDisplay

    stream = io.StringIO()
    with ProgressDisplay(2, stream=stream) as progress:
        for note in _notes_for_progress():
            progress.note_done(note)
    assert stream.getvalue() == ("a.md: 2 blocks, 0 failed, 1 cached\n"
                                 "b.md: 1 block, 1 failed, 0 cached\n")


def _drain(fd: int) -> str:
    """Everything written to the pty so far (one read may return only part of it)."""
    import select

    chunks = []
    while select.select([fd], [], [], 0.5)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_progress_bar_on_a_terminal_counts_notes_blocks_and_failures():
    from notevault.report import ProgressDisplay

    master, replica = os.openpty()
    with os.fdopen(replica, "w") as stream:
        with ProgressDisplay(2, stream=stream) as progress:
            for note in _notes_for_progress():
                progress.note_done(note)
                progress.bar.refresh()
        stream.flush()
        screen = _drain(master)
    os.close(master)
    plain = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", screen)
    assert "1/2 notes · 2 blocks" in plain
    assert "2/2 notes · 3 blocks · 1 failed" in plain
