"""Reports read back by real parsers: JSON (SPEC §7), JUnit XML, GitHub annotations, text."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import xmlschema
from conftest import make_vault

from notevault.cli import main

NOTE = ("# Small vault\n\n```python run id=ok\nprint('fine')\n```\n\n```python run id=bad\n1 / 0\n```\n\n"
        "![plot](missing.png)\n")
STALE_NOTE = "```python run id=old\nprint('old')\n```\n"
STALE = ("the block, its options or what it depends on (earlier blocks of its session, the vault's modules it "
         "imports, its formula, the limits it runs under) changed since its result was written")


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


SCHEMA = Path(__file__).parent / "junit-surefire.xsd"


def test_junit_report(small_vault, capsys):
    status, out = run_cli(capsys, "check", "--frozen", "--format", "junit", ".")
    xmlschema.XMLSchema(SCHEMA).validate(out)
    root = ET.fromstring(out)
    assert status == 1 and root.tag == "testsuites"
    assert sorted(root.attrib) == ["errors", "failures", "name", "tests", "time"]
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "3", "0")
    suites = root.findall("testsuite")
    assert [(s.get("name"), s.get("tests"), s.get("failures"), s.get("skipped")) for s in suites] == [
        ("a.md", "3", "2", "0"), ("b.md", "2", "1", "0")]
    assert all(re.fullmatch(r"\d+\.\d{3}", s.get("time")) for s in suites)
    cases = {(c.get("classname"), c.get("name")): c for s in suites for c in s.findall("testcase")}
    assert list(cases) == [("a", "ok"), ("a", "bad"), ("a", "lint"), ("b", "old"), ("b", "lint")]
    assert {sorted(c.attrib) == ["classname", "name", "time"] for c in cases.values()} == {True}
    assert cases["a", "ok"].find("failure") is None
    assert cases["a", "ok"].find("system-out") is None  # a stored result keeps no output: check ran nothing
    assert cases["b", "old"].find("failure").get("type") == "stale"
    lint = cases["a", "lint"].find("failure")
    assert (lint.get("message"), lint.text) == ("1 lint error", "a.md:25:1: error: broken image: 'missing.png' not "
                                                                "found [broken-link]")
    assert cases["b", "lint"].find("failure") is None


def test_junit_carries_output_and_validates_whatever_a_block_prints(tmp_path, monkeypatch, capsys):
    noisy = ("```python run id=noisy\nimport sys\nprint('out'); print('err', file=sys.stderr)\n"
             "print('\\x1b[31mred\\x1b[0m', '\\x00', '<&>')\n1 / 0\n```\n")
    skipped = "---\nnotevault: {skip: true}\n---\n\n```python run id=later\nprint(1)\n```\n"
    root = make_vault(tmp_path / "v", {"deep/v1.2 notes.md": noisy, "skipped.md": skipped})
    monkeypatch.chdir(root)
    status, out = run_cli(capsys, "check", "--format", "junit", ".")
    xmlschema.XMLSchema(SCHEMA).validate(out)
    assert status == 1
    suites = {s.get("name"): s for s in ET.fromstring(out).iter("testsuite")}
    case = suites["deep/v1.2 notes.md"].find("testcase")
    assert (case.get("classname"), case.get("name")) == ("deep.v1_2 notes", "noisy")
    assert case.find("system-out").text == "out\nerr\n\\x1b[31mred\\x1b[0m \\x00 <&>\n"
    assert case.find("failure").get("message") == "ZeroDivisionError: division by zero"
    assert case.find("failure").text.splitlines()[-1] == "ZeroDivisionError: division by zero"
    later = suites["skipped.md"]
    assert (later.get("tests"), later.get("skipped"), later.get("failures")) == ("2", "1", "0")
    assert later.find("testcase/skipped") is not None


def test_junit_names_survive_text_moving_above_a_block(small_vault, capsys):
    def names() -> list[tuple[str, str]]:
        _, out = run_cli(capsys, "check", "--frozen", "--format", "junit", ".")
        return [(c.get("classname"), c.get("name")) for c in ET.fromstring(out).iter("testcase")]

    before = names()
    note = small_vault / "a.md"
    note.write_text(note.read_text().replace("# Small vault\n", "# Small vault\n\nA new paragraph.\n\n"))
    assert names() == before


def test_github_annotations(small_vault, capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_WORKSPACE", str(small_vault))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
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
        "2 notes · 3 blocks: 1 passed, 1 failed, 0 skipped, 1 stale (2 cached) · lint: 1 error, 0 warnings, 0 info · ")


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


def test_progress_bar_shows_a_status_until_the_first_note_is_done():
    from notevault.report import STARTING, ProgressDisplay

    master, replica = os.openpty()
    with os.fdopen(replica, "w") as stream:
        with ProgressDisplay(2, stream=stream) as progress:
            progress.status(STARTING)
            progress.bar.refresh()
        stream.flush()
        screen = _drain(master)  # once the bar stopped: it redraws itself while running
        with ProgressDisplay(2, stream=stream) as progress:
            progress.status(STARTING)
            progress.note_done(_notes_for_progress()[0])
            status = progress.bar.tasks[0].fields["status"]
        stream.flush()
        _drain(master)
    os.close(master)
    assert "0/2 notes · starting workers (importing torch)…" in re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", screen)
    assert status == "2 blocks"


def _table(report) -> str:
    from rich.console import Console

    from notevault.report import print_terminal

    console = Console(record=True, width=120, color_system=None)
    print_terminal(report, console)
    return console.export_text()


def test_terminal_table_has_a_title_and_names_lint_counts_as_lint():
    from notevault.findings import Finding
    from notevault.results import Report

    notes = _notes_for_progress()[:1]
    notes[0].lint = [Finding("bad-tag", "warning", 9, 1, "bad tag")]
    linted = _table(Report(notes, 1.5, linted=True)).splitlines()
    assert linted[0] == "a.md:9:1: warning: bad tag [bad-tag]"
    assert linted[1].strip() == "notevault · 1 note"
    assert re.split(r"\s*┃\s*", linted[2]) == ["blocks", "passed", "failed", "skipped", "stale", "cached",
                                               "lint errors", "lint warnings", "seconds"]
    assert re.split(r"\s*│\s*", linted[4].strip()) == ["2", "2", "0", "0", "0", "1", "0", "1", "1.50"]
    ran = _table(Report(notes, 1.5, linted=False)).splitlines()
    assert re.split(r"\s*┃\s*", ran[2]) == ["blocks", "passed", "failed", "skipped", "stale", "cached", "problems",
                                            "seconds"]
    assert re.split(r"\s*│\s*", ran[4].strip()) == ["2", "2", "0", "0", "0", "1", "1", "1.50"]


def test_listings_render_as_text_and_json():
    from notevault.formula import FormulaInfo, NoteFormulas
    from notevault.report import render_cleaned, render_formulas, render_tangled
    from notevault.tangle import Tangled
    from notevault.writer import Cleaned

    cleaned = [Cleaned("a.md", 1, 2), Cleaned("b.md", 0, 0, ("b.md is read-only: not cleaned",))]
    assert render_cleaned(cleaned, "text") == ("cleaned a.md (1 result, 2 figures removed)\n"
                                               "warning: b.md is read-only: not cleaned\n")
    assert json.loads(render_cleaned(cleaned, "json"))["notes"][1] == {
        "path": "b.md", "results_removed": 0, "figures_removed": 0, "warnings": ["b.md is read-only: not cleaned"]}
    tangled = [Tangled("a.md", "a.py"), Tangled("b.md", "b.py", "not written: mine")]
    assert render_tangled(tangled, "text") == "a.py\nb.py: error: not written: mine\n"
    formulas = [NoteFormulas("a.md", (FormulaInfo("bn", 3, "y = 2 x", True, ("y", "x"), None),
                                      FormulaInfo(None, 7, "a = \\int f", False, (), "integral \\int")))]
    assert render_formulas(formulas, "text") == ("a.md:3: ^bn y = 2 x  [binds y, x]\n"
                                                 "a.md:7: - a = \\int f  [not evaluable: integral \\int]\n"
                                                 "2 formulas, 1 evaluable\n")
