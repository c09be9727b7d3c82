"""Every command through ``main`` (and the real ``notevault`` process where a pipe or a terminal matters):
help texts, one-line usage errors with exit 2, exit statuses, exact output."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys

import pytest
from conftest import make_vault

from notevault.cli import build_parser, main

COMMANDS = ("run", "check", "watch", "lint", "clean", "tangle", "formulas")
FORMULA = "$$\\hat{x} = \\frac{x - \\mu}{\\sigma}$$\n^bn\n"
NOTE = FORMULA + "\n```python run\nprint(1)\n```\n"


def _seconds(text: str) -> str:
    return re.sub(r"\d+\.\d\d s$", "S s", text, flags=re.M)


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_option_and_path_is_described(command, capsys):
    parser = build_parser().commands[command]
    undescribed = [action.dest for action in parser._actions if not action.help]
    assert undescribed == []
    status, out, _ = run_main(capsys, command, "--help")
    assert status == 0
    description = out.split("\n\n")[1]
    assert len(description) > 60 and not description.startswith(("positional", "options"))
    assert "exit status: 0" in out and "SPEC" not in out


def test_top_level_help_gives_exit_statuses_settings_and_tag_syntax(capsys):
    status, out, _ = run_main(capsys, "--help")
    assert status == 0
    assert "  0  success\n  1  a block failed" in out and "  2  usage or configuration error" in out
    assert "notevault.yaml at the vault root" in out and "```python run```" in out and "session=…" in out
    for command in COMMANDS:
        assert f"    {command} " in out


@pytest.mark.parametrize(("argv", "error", "command"), [
    (["run", "--format", "xml", "v"],
     "argument --format: invalid choice: 'xml' (choose from 'text', 'json', 'junit', 'github')", " run"),
    (["check", "--jobs", "abc", "v"], "argument --jobs: must be a positive integer, not 'abc'", " check"),
    (["watch", "--jobs", "0", "v"], "argument --jobs: must be a positive integer, not '0'", " watch"),
    (["run", "--device", "gpu", "v"],
     "argument --device: invalid choice: 'gpu' (choose from 'auto', 'cpu', 'cuda')", " run"),
    (["run", "--timeout", "0", "v"], "argument --timeout: must be a positive number of seconds, not '0'", " run"),
    (["run", "--timeout", "-1", "v"], "argument --timeout: must be a positive number of seconds, not '-1'", " run"),
    (["watch", "--debounce", "-1", "v"], "argument --debounce: must not be negative, not '-1'", " watch"),
    (["check", "--frozen", "--force", "v"], "argument --force: not allowed with argument --frozen", " check"),
    (["run", "--frozen", "v"], "unrecognized arguments: --frozen", " run"),
    (["lint", "--out", "x", "v"], "unrecognized arguments: --out", " lint"),  # not --output: no abbreviations
    (["tangle", "--format", "junit", "v"], "argument --format: invalid choice: 'junit' (choose from 'text', 'json')",
     " tangle"),
    (["frobnicate", "v"], "argument COMMAND: invalid choice: 'frobnicate' (choose from 'run', 'check', 'watch', "
                          "'lint', 'clean', 'tangle', 'formulas')", ""),
    ([], "the following arguments are required: COMMAND", ""),
    (["run"], "the following arguments are required: PATH", " run"),
])
def test_usage_errors_are_one_line_with_a_hint_and_exit_2(argv, error, command, tmp_path, capsys, monkeypatch):
    root = make_vault(tmp_path / "v", {"n.md": NOTE})
    monkeypatch.chdir(tmp_path)
    status, out, err = run_main(capsys, *argv)
    assert (status, out, err) == (2, "", f"notevault: error: {error} (see notevault{command} --help)\n")
    assert (root / "n.md").read_text() == NOTE and not (root / ".notevault").exists()  # nothing ran


def test_a_missing_path_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for command in COMMANDS:
        assert run_main(capsys, command, "nowhere") == (2, "", "notevault: error: no such file or folder: nowhere\n")


def test_run_check_lint_clean_formulas_through_main(tmp_path, capsys, monkeypatch):
    root = make_vault(tmp_path / "v", {"n.md": NOTE})
    monkeypatch.chdir(tmp_path)
    status, out, _ = run_main(capsys, "check", "--frozen", "v")
    assert (status, _seconds(out)) == (1, "v/n.md:4:1: error: block L4 stale: no stored result: run `notevault run` "
                                          "and commit the note\n1 note · 1 block: 0 passed, 0 failed, 0 skipped, 1 "
                                          "stale (0 cached) · lint: 0 errors, 0 warnings, 0 info · S s\n")
    status, out, _ = run_main(capsys, "run", "v")
    assert (status, _seconds(out)) == (0, "1 note · 1 block: 1 passed, 0 failed, 0 skipped (0 cached) · S s\n")
    status, out, _ = run_main(capsys, "check", "--frozen", "v")
    assert (status, _seconds(out)) == (0, "1 note · 1 block: 1 passed, 0 failed, 0 skipped (1 cached) · lint: 0 "
                                          "errors, 0 warnings, 0 info · S s\n")
    status, out, _ = run_main(capsys, "lint", "v")
    assert (status, _seconds(out)) == (0, "1 note · lint: 0 errors, 0 warnings, 0 info · S s\n")
    status, out, _ = run_main(capsys, "formulas", "v")
    assert (status, out) == (0, "v/n.md:1: ^bn \\hat{x} = \\frac{x - \\mu}{\\sigma}  [binds x_hat, x, mu, sigma]\n"
                                "1 formula, 1 evaluable\n")
    assert run_main(capsys, "clean", "v") == (0, "cleaned v/n.md (1 result, 0 figures removed)\n", "")
    assert (root / "n.md").read_text() == NOTE
    status, out, _ = run_main(capsys, "clean", "--format", "json", "v")
    assert (status, json.loads(out)) == (0, {"version": 1, "notes": []})


RULES = 'rules:\n  unclosed-fence: "off"\n  bad-tag: warning\n'
RULES_NOTE = "```python run timeout=soon\nprint(1)\n```\n\n```python run\nprint(2)\n"
BAD_TAG = "bad tag on ```python run timeout=soon: option timeout=soon must be a number"


def test_rules_hold_in_lint_check_and_run_and_a_bad_tag_is_shown_once(tmp_path, capsys, monkeypatch):
    """REVIEW §5.1: one set of findings per note, with the vault's severities, in run, check and lint."""
    make_vault(tmp_path / "V", {"notevault.yaml": RULES, "n.md": RULES_NOTE})
    monkeypatch.chdir(tmp_path)
    status, out, _ = run_main(capsys, "lint", "V")
    assert (status, _seconds(out)) == (0, f"V/n.md:1:1: warning: {BAD_TAG} [bad-tag]\n"
                                          "1 note · lint: 0 errors, 1 warning, 0 info · S s\n")
    failed = ("V/n.md:1:1: error: block L1 failed: bad tag: option timeout=soon must be a number\n"
              "V/n.md:5:1: error: block L5 failed: the code fence is never closed\n")
    status, out, _ = run_main(capsys, "check", "V")
    assert (status, _seconds(out)) == (1, failed + "1 note · 2 blocks: 0 passed, 2 failed, 0 skipped (0 cached) · "
                                                  "lint: 0 errors, 1 warning, 0 info · S s\n")
    status, out, _ = run_main(capsys, "check", "--format", "json", "V")
    assert [(f["rule"], f["severity"], f["line"]) for f in json.loads(out)["notes"][0]["lint"]] == [
        ("bad-tag", "warning", 1)]
    status, out, _ = run_main(capsys, "run", "--format", "json", "V")
    data = json.loads(out)
    assert status == 1 and [(f["rule"], f["severity"]) for f in data["notes"][0]["lint"]] == [("bad-tag", "warning")]
    assert (data["summary"]["lint_errors"], data["summary"]["lint_warnings"]) == (0, 1)
    status, out, _ = run_main(capsys, "run", "V")
    # run does not lint: no lint counts, only the problem planning found (shown as the failed block's line);
    # the failures were written by the run before, so they are current now
    assert (status, _seconds(out).splitlines()[-1]) == (
        1, "1 note · 2 blocks: 0 passed, 2 failed, 0 skipped (2 cached) · 1 problem · S s")
    assert "lint" not in out and BAD_TAG not in out


def test_notes_in_other_encodings_are_named_with_what_to_do(tmp_path, capsys, monkeypatch):
    make_vault(tmp_path / "v", {"utf16.md": "# 笔记\n".encode("utf-16"), "gbk.md": "# 笔记\n".encode("gbk")})
    monkeypatch.chdir(tmp_path)
    status, out, _ = run_main(capsys, "lint", "--format", "json", "v")
    assert status == 1
    assert {n["path"]: [(f["line"], f["message"]) for f in n["lint"]] for n in json.loads(out)["notes"]} == {
        "v/gbk.md": [(1, "not valid UTF-8 (byte 0xb1 at offset 2): re-save the note as UTF-8")],
        "v/utf16.md": [(1, "UTF-16 text, not UTF-8: re-save the note as UTF-8")],
    }


def test_output_piped_into_head_ends_quietly(tmp_path):
    """A reader that stops early (head, less) closes the pipe: no traceback, the pipeline's usual status."""
    make_vault(tmp_path / "v", {"n.md": "".join(f"$$y_{{{i}}} = {i} x$$\n\n" for i in range(3000))})
    # Unbuffered, CPython's text stdout drops what a partial write left instead of raising: keep the default.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    process = subprocess.Popen([sys.executable, "-m", "notevault", "formulas", "v"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    first = process.stdout.readline()  # the output is larger than the pipe: notevault is still writing
    process.stdout.close()
    assert process.wait(timeout=60) == 141  # 128 + SIGPIPE, as a tool killed by the signal
    assert first == b"v/n.md:1: - y_{0} = 0 x  [binds y_0, x]\n"
    assert process.stderr.read() == b""


def test_the_progress_bar_says_workers_are_starting_until_the_first_note_is_done(tmp_path):
    root = make_vault(tmp_path / "v", {"n.md": "```python run\nprint(1)\n```\n"})
    master, replica = os.openpty()
    process = subprocess.Popen([sys.executable, "-m", "notevault", "run", str(root)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=replica, env={**os.environ, "COLUMNS": "160"})
    os.close(replica)
    screen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        try:
            chunk = os.read(master, 65536) if ready else b""
        except OSError:
            chunk = b""
        if not chunk:
            break
        screen += chunk
    os.close(master)
    assert process.wait(timeout=60) == 0
    plain = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", screen.decode())
    assert "0/1 notes · starting workers (importing torch)…" in plain
