"""`pytest --notevault`: the notes, ids, lines and outcomes of `notevault check`, as test items."""

from __future__ import annotations

import json
import subprocess
import sys

import conftest
import torch  # here, not in a test: pytester removes modules a test imported, and torch cannot be imported twice
from conftest import REPO

from notevault.cli import main

NOTE = """```python run id=good
print("ok")
```

```python run id=broken
raise ValueError("wrong shape")
```

```python run id=gpu device=cuda
torch.ones(1, device=device)
```
"""

SKIPPED_NOTE = """---
notevault: {skip: true}
---

```python run
print(1)
```
"""


def make_vault(pytester, files: dict[str, str | bytes]):
    return conftest.make_vault(pytester.mkdir("vault"), files)


def test_blocks_are_test_items(pytester):
    make_vault(pytester, {"note.md": NOTE, "plain.md": "no blocks here\n"})
    result = pytester.runpytest_subprocess("--notevault", "vault", "-rA")
    # the blocks, and a passing lint item for each note
    outcome = {"passed": 3, "failed": 1, "skipped": 1}
    if torch.cuda.is_available():
        outcome = {"passed": 4, "failed": 1}
    result.assert_outcomes(**outcome)
    result.stdout.fnmatch_lines(["*note.md:5 broken*", "ValueError: wrong shape", "*File \"note.md\", line 6*"])


def _check_blocks(vault) -> list[tuple[str, str, int, str]]:
    """(note, id, line, status) of every block, as `notevault check` reports them."""
    done = subprocess.run([sys.executable, "-m", "notevault", "check", "--format", "json", "."], cwd=vault,
                          capture_output=True, text=True, timeout=120)
    return [(n["path"], b["id"], b["line"], b["status"]) for n in json.loads(done.stdout)["notes"] for b in n["blocks"]]


def test_items_have_checks_ids_lines_and_outcomes(pytester):
    vault = make_vault(pytester, {"n.md": "# N\n\n```python run\nx = 1\n```\n\n```python run id=two\nx / 0\n```\n\n"
                                          "```python run\nprint(x)\n```\n"})
    # Result callouts above a block: its default id counts lines without them, its line is where it is now.
    assert main(["run", str(vault)]) == 1
    expected = _check_blocks(vault)
    assert expected == [("n.md", "L3", 3, "passed"), ("n.md", "two", 9, "failed"), ("n.md", "L11", 22, "passed")]
    result = pytester.runpytest_subprocess("--notevault", "vault", "-v")
    lines = [line.split(" ", 1)[0] for line in result.outlines if line.startswith("vault/n.md::")]
    assert lines == ["vault/n.md::L3", "vault/n.md::two", "vault/n.md::L11", "vault/n.md::lint"]
    result.stdout.fnmatch_lines(["*_ n.md:9 two _*", "ZeroDivisionError: division by zero"])
    result.assert_outcomes(passed=3, failed=1)


def test_each_block_runs_once_under_xdist(pytester):
    blocks = "".join(f'```python run id=b{i}\nopen("log.txt", "a").write("{i}\\n")\n```\n\n' for i in range(6))
    vault = make_vault(pytester, {"n.md": blocks, "m.md": blocks.replace("b", "c")})
    result = pytester.runpytest_subprocess("--notevault", "vault", "-n", "2")
    result.assert_outcomes(passed=14)
    assert (vault / "log.txt").read_text() == "0\n1\n2\n3\n4\n5\n" * 2  # each note once, its blocks in order


def test_an_unreadable_note_is_one_failing_item_and_lint_errors_fail_as_in_check(pytester):
    make_vault(pytester, {"latin.md": "caf\xe9\n".encode("latin-1"),
                          "n.md": "![plot](missing.png)\n\n```python run timeout=soon\nprint(1)\n```\n",
                          "notevault.yaml": "rules:\n  broken-link: warning\n"})
    result = pytester.runpytest_subprocess("--notevault", "vault")
    # the bad tag fails its block and the note's lint item; the broken link only warns
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines([
        "*_ latin.md lint _*",
        "latin.md:1:1: error: not valid UTF-8 (byte 0xe9 at offset 3): re-save the note as UTF-8 [unreadable]",
        "*_ n.md:3 L3 _*",
        "bad tag: option timeout=soon must be a number",
        "*_ n.md lint _*",
        "n.md:3:1: error: bad tag on ```python run timeout=soon: option timeout=soon must be a number [bad-tag]",
    ])
    assert "missing.png" not in result.stdout.str()


def test_a_settings_error_fails_each_notes_lint_item(pytester):
    make_vault(pytester, {"a.md": NOTE, "b.md": "text\n", "notevault.yaml": "timeout: 1\ntimeout: 2\n"})
    result = pytester.runpytest_subprocess("--notevault", "vault")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*_ a.md lint _*", "*/vault/notevault.yaml:2: duplicate key 'timeout' (first at "
                                                   "line 1)"])


def test_skips_point_at_the_notes_line(pytester):
    make_vault(pytester, {"skipped.md": SKIPPED_NOTE})
    result = pytester.runpytest_subprocess("--notevault", "vault", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] vault/skipped.md:5: skipped by front matter (notevault: skip)"])


def test_excluded_template_and_dot_folder_notes_are_not_collected(pytester):
    vault = make_vault(pytester, {"keep.md": NOTE, "drafts/d.md": NOTE, "Templates/t.md": NOTE, ".trash/x.md": NOTE,
                                  "notevault.yaml": "exclude: ['drafts/*']\n"})
    (vault / ".obsidian" / "templates.json").write_text('{"folder": "Templates"}')
    result = pytester.runpytest_subprocess("--notevault", "vault", "--collect-only", "-q", "vault/.trash/x.md")
    assert [line for line in result.outlines if "::" in line] == [
        "vault/keep.md::good", "vault/keep.md::broken", "vault/keep.md::gpu", "vault/keep.md::lint"]


def test_notes_outside_a_vault_are_collected_only_when_named(pytester):
    pytester.makefile(".md", README="```python run\nraise SystemExit('a README is not a note')\n```\n")
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest_subprocess("--notevault")
    result.assert_outcomes(passed=1)
    result = pytester.runpytest_subprocess("--notevault", "README.md")
    result.assert_outcomes(failed=1, passed=1)


def test_last_failed_reruns_the_failed_blocks(pytester):
    vault = make_vault(pytester, {"n.md": NOTE.replace("id=gpu device=cuda", "id=fine")})
    pytester.runpytest_subprocess("--notevault", "vault").assert_outcomes(passed=3, failed=1)
    (vault / "n.md").write_text((vault / "n.md").read_text().replace('raise ValueError("wrong shape")', "pass"))
    result = pytester.runpytest_subprocess("--notevault", "vault", "--lf")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["collected 1 item", "run-last-failure: rerun previous 1 failure*"])


def test_this_repository_collects_no_test_fixture_as_a_note():
    command = [sys.executable, "-m", "pytest", "--notevault", "--collect-only", "-q", "-p", "no:cacheprovider",
               "tests/fixtures", "tests/golden", "vault"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    collected = sorted({line.split("::")[0] for line in done.stdout.splitlines() if "::" in line})
    assert collected == ["vault/Adam 与注意力.md", "vault/BatchNorm 批归一化.md", "vault/LayerNorm 层归一化.md"]
