"""Lint on the user's real notes: exactly what is unfilled, broken and where."""

from __future__ import annotations

import json
from collections import Counter

from conftest import make_vault

from notevault.cli import main
from notevault.lint import Linter, lint_paths
from notevault.vault import Vault


def findings(vault_root, name):
    vault = Vault(vault_root)
    return Linter(vault).lint(next(vault_root.glob(f"{name}*.md")))


def test_seed_000_sections_2_to_12_unfilled(seed_vault):
    result = findings(seed_vault, "000")
    unfilled = [f for f in result if f.rule == "unfilled-section"]
    assert [f.message.split("'")[1].split(".")[0] for f in unfilled] == [str(n) for n in range(2, 13)]
    assert [f.line for f in unfilled] == [67, 79, 89, 100, 112, 122, 132, 142, 152, 162, 172]
    assert all(f.severity == "warning" for f in unfilled)
    assert not [f for f in result if f.rule == "missing-section"]


def test_seed_001_section_0_and_2_to_12_unfilled_and_empty_fields(seed_vault):
    result = findings(seed_vault, "001")
    unfilled = [f.message.split("'")[1].split(".")[0] for f in result if f.rule == "unfilled-section"]
    assert unfilled == ["0"] + [str(n) for n in range(2, 13)]
    empty = [(f.line, f.message) for f in result if f.rule == "empty-field"]
    assert empty == [
        (34, "field 'Key Definition 1' in '1. 公理 / 定义区（Axioms & Definitions）' is empty"),
        (35, "field 'Key Definition 2' in '1. 公理 / 定义区（Axioms & Definitions）' is empty"),
        (36, "field '数学或概念公理' in '1. 公理 / 定义区（Axioms & Definitions）' is empty"),
    ]


def test_seed_broken_images(seed_vault):
    counts = {name: Counter((f.rule, f.severity) for f in findings(seed_vault, name)) for name in ("002", "003", "004")}
    assert counts["002"] == {("broken-link", "error"): 9}
    assert counts["003"] == {("broken-link", "error"): 58}
    assert counts["004"] == {("remote-link", "info"): 2}
    first = findings(seed_vault, "002")[0]
    assert (first.line, first.col, first.message) == (
        223, 1, "broken image: './images/image-20250525204419078.png' not found")
    html = [f for f in findings(seed_vault, "002") if "<img>" in f.message]
    assert [(f.line, f.col) for f in html] == [(426, 1)]


def test_seeds_are_not_matched_to_the_template_unless_made_from_it(seed_vault):
    for name in ("002", "003", "004"):
        assert not [f for f in findings(seed_vault, name) if "section" in f.rule]


def test_broken_link_suggests_a_file_of_that_name(tmp_path):
    root = make_vault(tmp_path, {
        "n.md": "![x](images/plot.png)\n![[gone.png]]\n[[Note#Missing]] [[Note#^nope]] [[Note#Real]]\n"
                "```python check formula=nothere\nx = 1\n```\n",
        "assets/plot.png": b"\x89PNG", "Note.md": "## Real\ntext ^blk\n",
    })
    result = [(f.rule, f.line, f.col, f.message) for f in findings(root, "n")]
    assert result == [
        ("broken-link", 1, 1, "broken image: 'images/plot.png' not found; did you mean 'assets/plot.png'?"),
        ("broken-link", 2, 1, "broken embed: 'gone.png' not found"),
        ("broken-link", 3, 1, "broken heading link: no heading 'Missing' in 'Note.md'"),
        ("broken-link", 3, 18, "broken block link: no ^nope in 'Note.md'"),
        ("unknown-formula", 4, 1, "formula=nothere: no display formula with that ^id"),
    ]


def test_bad_tag_is_an_error_at_the_fence(tmp_path):
    root = make_vault(tmp_path, {"n.md": "text\n\n```python run timeout=soon\nx = 1\n```\n"})
    (finding,) = findings(root, "n")
    assert (finding.rule, finding.severity, finding.line) == ("bad-tag", "error", 3)
    assert "timeout=soon must be a number" in finding.message


def test_severities_from_notevault_yaml(tmp_path):
    root = make_vault(tmp_path, {"n.md": "![x](gone.png)\n", "notevault.yaml": "rules:\n  broken-link: warning\n"})
    assert [(f.rule, f.severity) for f in findings(root, "n")] == [("broken-link", "warning")]


def test_unreadable_note_is_reported_and_the_rest_still_lints(tmp_path):
    root = make_vault(tmp_path, {"a.md": b"\xff\xfe\x00bad", "b.md": "![x](gone.png)\n"})
    report = lint_paths(Vault(root), [root])
    assert [(n.path.split("/")[-1], [f.rule for f in n.lint]) for n in report.notes] == [
        ("a.md", ["unreadable"]), ("b.md", ["broken-link"])]


def test_cli_lint_exit_codes_and_json(seed_vault, capsys, monkeypatch):
    monkeypatch.chdir(seed_vault)
    assert main(["lint", "000_abca75ce1f514f2f.md"]) == 0  # warnings only
    capsys.readouterr()
    assert main(["lint", "--strict", "000_abca75ce1f514f2f.md"]) == 1
    capsys.readouterr()
    assert main(["lint", "--format", "json", "."]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["version"] == 1
    assert data["summary"]["lint_errors"] == 9 + 58
    assert data["summary"]["lint_warnings"] == 11 + 12
    note = next(n for n in data["notes"] if n["path"].startswith("002"))
    assert note["lint"][0] == {"rule": "broken-link", "severity": "error", "line": 223, "col": 1,
                               "message": "broken image: './images/image-20250525204419078.png' not found"}
    text_exit = main(["lint", "002_bd18929a818b2557.md"])
    out = capsys.readouterr().out
    assert text_exit == 1
    assert out.splitlines()[0] == ("002_bd18929a818b2557.md:223:1: error: broken image: "
                                   "'./images/image-20250525204419078.png' not found [broken-link]")


def test_cli_config_error_exits_2(tmp_path, capsys):
    root = make_vault(tmp_path, {"notevault.yaml": "colour: red\n", "n.md": ""})
    assert main(["lint", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("notevault: error: ") and "notevault.yaml:1: unknown key 'colour'" in err
    assert main(["lint", str(tmp_path / "missing")]) == 2
