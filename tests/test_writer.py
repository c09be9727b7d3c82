"""Writing results back: golden callouts, lossless splices, idempotence, clean, concurrent edits, atomic writes."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FIXTURES, SEEDS, make_vault
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notevault.engine import Planner, RunOptions, execute
from notevault.note import parse_note, read_note
from notevault.results import BlockResult, FormulaResult
from notevault.vault import Vault
from notevault.writer import Layout, remove_results, splice_results, stored_result, write_atomic

GOLDEN = Path(__file__).parent / "golden"
LAYOUT = Layout(fold_lines=20, max_output_lines=30)


def hashed(note):
    """Hashes without a vault: each block hashed by its own code (enough for splice tests)."""
    import hashlib

    return [(f, hashlib.sha256(f.code.encode()).hexdigest()[:16]) for f in note.blocks]


def result(block_hash, block_id, **fields):
    fields.setdefault("status", "passed")
    fields.setdefault("device", "cpu")
    fields.setdefault("seconds", 0.25)
    fields.setdefault("kind", "run")
    return BlockResult(id=block_id, line=0, hash=block_hash, **fields)


def golden_results(note):
    (ok, h1), (bad, h2), (gpu, h3), (inner, h4), (long, h5), (chk, h6) = hashed(note)
    return {
        h1: result(h1, "ok", output="hello\n", value="tensor([2., 2.])"),
        h2: result(h2, "bad", status="failed", error="ZeroDivisionError: division by zero",
                   traceback='Traceback (most recent call last):\n  File "n.md", line 12, in <module>\n'
                             "    1 / 0\nZeroDivisionError: division by zero"),
        h3: result(h3, "gpu", status="skipped", device=None, seconds=0.0, error="CUDA is not available here"),
        h4: result(h4, "inner", output="inside a callout\n"),
        h5: result(h5, "long", output="".join(f"line {i}\n" for i in range(45))),
        h6: result(h6, "bn", kind="check", formula=FormulaResult("bn-norm", 2.4e-7, 1.1e-6, ("[32, 4]", "[32, 4]")),
                   figures=(b"\x89PNG fake",)),
    }


def test_golden_callouts_of_every_kind():
    note = read_note(FIXTURES / "written" / "input.md")
    text, figures, replaced = splice_results(note, hashed(note), golden_results(note), LAYOUT)
    expected = (GOLDEN / "written.md").read_text(encoding="utf-8")
    assert text == expected
    assert figures == {"input-bn-1.png": b"\x89PNG fake"} and replaced == []
    # written once more with the same results: not a byte changes; cleaned: the input comes back
    again = parse_note(text, note.path)
    assert splice_results(again, hashed(again), golden_results(again), LAYOUT)[0] == text
    assert remove_results(again) == (note.raw(), ["input-bn-1.png"])


def test_stored_results_are_read_back():
    note = parse_note((GOLDEN / "written.md").read_text(encoding="utf-8"))
    stored = [stored_result(note, f) for f in note.blocks]
    assert [(s.id, s.status, s.device, s.seconds) for s in stored] == [
        ("ok", "passed", "cpu", 0.25), ("bad", "failed", "cpu", 0.25), ("gpu", "skipped", None, 0.0),
        ("inner", "passed", "cpu", 0.25), ("long", "passed", "cpu", 0.25), ("bn", "passed", "cpu", 0.25)]


def test_a_user_callout_right_under_a_block_is_never_touched():
    text = "```python run\nprint(1)\n```\n> [!note] my own callout\n> %% notevault id=fake hash=00 %%\n"
    note = parse_note(text)
    assert stored_result(note, note.blocks[0]) is None  # no title in our form: not ours
    (fence, block_hash), = hashed(note)
    written, _, _ = splice_results(note, hashed(note), {block_hash: result(block_hash, "L1", output="1\n")}, LAYOUT)
    assert written.endswith("> [!note] my own callout\n> %% notevault id=fake hash=00 %%\n")
    assert "%% notevault id=L1" in written and written.count("[!note] my own callout") == 1
    assert remove_results(parse_note(written))[0] == text


# Generated notes: fences (tagged or not), callouts, lists, CRLF or LF, BOM, with or without a final newline.
PIECES = st.sampled_from([
    "# 标题 Heading", "Some text with trailing spaces   ", "\t缩进 tab", "", "> [!note] 提示\n> inside",
    "```python run\nprint(1)\n```", "```python run id=x\nx = 1\n```", "```python\nnot run\n```",
    "> ```python run\n> y = 2\n> ```", "- item\n  ```python run\n  z = 3\n  ```", "$$a = b$$", "---",
    "```python run\nprint('last')\n```\n> [!tip] user callout right below",
])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(pieces=st.lists(PIECES, min_size=1, max_size=8), crlf=st.booleans(), bom=st.booleans(),
       final_newline=st.booleans(), output=st.sampled_from(["", "out\n", "a\nb\n" * 15]))
def test_splice_then_remove_gives_the_original_bytes(pieces, crlf, bom, final_newline, output):
    eol = "\r\n" if crlf else "\n"
    text = eol.join(pieces).replace("\n", eol).replace("\r\r\n", "\r\n") + (eol if final_newline else "")
    note = parse_note(text, bom=bom)
    results = {h: result(h, f"b{i}", output=output) for i, (_, h) in enumerate(hashed(note))}
    written, _, _ = splice_results(note, hashed(note), results, LAYOUT)
    again = parse_note(written[1:] if bom else written, bom=bom)
    assert len(again.blocks) == len(note.blocks)
    assert all(stored_result(again, f) is not None for f in again.blocks if f.closed)
    assert splice_results(again, hashed(again), results, LAYOUT)[0] == written  # a second run is a no-op
    assert remove_results(again)[0] == note.raw()  # clean gives back the original bytes


def run_vault(root, **options):
    return execute(Vault(root), [root], RunOptions(**options))


def test_every_seed_with_its_python_tagged_survives_run_and_clean(tmp_path):
    files = {}
    for seed in sorted(SEEDS.glob("*.md")):
        text = seed.read_bytes().decode("utf-8").replace("```python\n", "```python run timeout=10\n")
        files[seed.name] = text
    root = make_vault(tmp_path, files)
    report = run_vault(root, jobs=2)
    assert sum(len(n.blocks) for n in report.notes) == 8 + 2  # 002's python fences and 004's two
    written = {name: (root / name).read_text(encoding="utf-8") for name in files}
    assert written["004_f28a89be14870720.md"].count("> > [!failure]") == 1  # inside its callout
    assert written["004_f28a89be14870720.md"].count("> > > [!success]") == 1  # two callouts deep: nn.Embedding runs
    again = run_vault(root, jobs=2)
    assert {n: (root / n).read_text(encoding="utf-8") for n in files}.keys() == written.keys()
    assert sum(b.cached for n in again.notes for b in n.blocks) == sum(
        b.status != "failed" for n in again.notes for b in n.blocks)
    from notevault.writer import clean_notes

    clean_notes(Vault(root), [root])
    for name, text in files.items():
        assert (root / name).read_bytes() == text.encode("utf-8")


def test_run_twice_changes_nothing_and_frozen_check_sees_current_results(tmp_path):
    root = make_vault(tmp_path, {"n.md": "# BN\r\n\r\n```python run id=a\r\nprint(torch.ones(2))\r\n```"})
    run_vault(root)
    first = (root / "n.md").read_bytes()
    assert b"> [!success] a \xc2\xb7 passed \xc2\xb7 cpu" in first and first.endswith(b"> ```")
    run_vault(root)
    assert (root / "n.md").read_bytes() == first
    assert not run_vault(root, write=False, frozen=True).failed()
    (root / "n.md").write_bytes(first.replace(b"torch.ones(2)", b"torch.ones(3)", 1))
    frozen = run_vault(root, write=False, frozen=True)
    assert [(b.status, b.error) for b in frozen.notes[0].blocks] == [
        ("stale", "the block changed since its result was written")]


def test_fresh_clone_with_current_results_runs_nothing(tmp_path):
    root = make_vault(tmp_path, {"n.md": "```python run\nprint(1)\n```\n"})
    run_vault(root)
    written = (root / "n.md").read_bytes()
    import shutil

    shutil.rmtree(root / ".notevault")
    report = run_vault(root)
    assert report.notes[0].blocks[0].cached and (root / "n.md").read_bytes() == written


@pytest.mark.skipif(os.path.exists("/dev/nvidiactl"), reason="this machine may have CUDA")
def test_fresh_clone_without_cuda_keeps_a_stored_cuda_skip_without_running_it(tmp_path):
    root = make_vault(tmp_path, {"n.md": "```python run device=cuda\nprint(1)\n```\n"})
    run_vault(root)
    written = (root / "n.md").read_bytes()
    assert b"[!warning] L1 \xc2\xb7 skipped" in written
    import shutil

    shutil.rmtree(root / ".notevault")
    block = run_vault(root).notes[0].blocks[0]
    assert (block.status, block.cached, block.error) == ("skipped", True, "CUDA is not available here")
    assert (root / "n.md").read_bytes() == written
    assert not (root / ".notevault").exists()  # nothing ran, so nothing was remembered


def test_an_edit_made_while_blocks_run_wins(tmp_path):
    text = ("```python run id=slow\nimport time\ntime.sleep(2)\n```\n\n"
            "```python run id=kept isolated\nprint('kept')\n```\n\nend\n")
    root = make_vault(tmp_path, {"n.md": text})
    command = [sys.executable, "-m", "notevault", "run", "--jobs", "2", str(root)]
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 20
    while not (root / ".notevault").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the first result cached means the slow block has started (blocks run in order)
    edited = text.replace("time.sleep(2)", "time.sleep(2)  # edited") + "a line the user added\n"
    (root / "n.md").write_text(edited, encoding="utf-8")
    output, _ = runner.communicate(timeout=60)
    assert "the note changed during the run; results dropped for slow" in output
    final = (root / "n.md").read_text(encoding="utf-8")
    assert final.endswith("end\na line the user added\n")
    assert "time.sleep(2)  # edited" in final
    assert "%% notevault id=slow" not in final  # its code changed: its result was dropped
    assert "%% notevault id=kept" in final  # an unchanged block still gets its result


def _write_then_stall(path: Path, text: str, when: str) -> None:
    real_replace = os.replace

    def stalled_replace(src, dst):
        if when == "after":
            real_replace(src, dst)
        os.kill(os.getpid(), signal.SIGSTOP)  # the parent kills us here
        real_replace(src, dst)

    os.replace = stalled_replace
    write_atomic(path, text)


def test_a_writer_killed_at_the_rename_leaves_the_old_or_the_new_note_whole(tmp_path):
    path = tmp_path / "n.md"
    old, new = "old note\n" * 100_000, "new note\n" * 100_000
    for when, expected in (("before", old), ("after", new)):
        path.write_text(old)
        child = multiprocessing.get_context("fork").Process(target=_write_then_stall, args=(path, new, when))
        child.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status = Path(f"/proc/{child.pid}/stat").read_text().split()[2]
            if status == "T":
                break
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert path.read_text() == expected


def test_figures_go_to_the_attachment_folder_and_clean_removes_them(tmp_path):
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.title('loss')\nprint('plotted')"
    root = make_vault(tmp_path, {"notes/Loss curve.md": f"```python run id=plot\n{code}\n```\n"},
                      app={"attachmentFolderPath": "./assets"})
    run_vault(root)
    figure = root / "notes" / "assets" / "Loss-curve-plot-1.png"
    assert figure.read_bytes().startswith(b"\x89PNG")
    note = (root / "notes" / "Loss curve.md").read_text()
    assert "> ![[Loss-curve-plot-1.png]]" in note
    from notevault.lint import Linter

    assert Linter(Vault(root)).lint(root / "notes" / "Loss curve.md") == []  # the embed resolves
    from notevault.writer import clean_notes

    clean_notes(Vault(root), [root])
    assert not figure.exists()
    assert (root / "notes" / "Loss curve.md").read_text() == f"```python run id=plot\n{code}\n```\n"


@pytest.mark.parametrize(("link_format", "embed"), [
    ("shortest", "![](Loss-curve-plot-1.png)"),
    ("relative", "![](../assets/Loss-curve-plot-1.png)"),
    ("absolute", "![](assets/Loss-curve-plot-1.png)"),
])
def test_figures_are_markdown_links_when_obsidian_writes_markdown_links(tmp_path, link_format, embed):
    code = "import matplotlib.pyplot as plt\nlines = plt.plot([1, 2, 3])"
    original = f"```python run id=plot\n{code}\n```\n"
    root = make_vault(tmp_path, {"my notes/Loss curve.md": original},
                      app={"attachmentFolderPath": "assets", "useMarkdownLinks": True, "newLinkFormat": link_format})
    run_vault(root)
    note = (root / "my notes" / "Loss curve.md").read_text()
    assert f"> {embed}\n" in note
    from notevault.lint import Linter

    assert Linter(Vault(root)).lint(root / "my notes" / "Loss curve.md") == []  # the link resolves
    run_vault(root, force=True)
    again = (root / "my notes" / "Loss curve.md").read_text()
    timing = re.compile(r" · [\d.]+ s")
    assert timing.sub("", again) == timing.sub("", note)  # the old figure link is found and replaced
    assert [p.name for p in (root / "assets").iterdir()] == ["Loss-curve-plot-1.png"]
    from notevault.writer import clean_notes

    clean_notes(Vault(root), [root])
    assert not list((root / "assets").iterdir())
    assert (root / "my notes" / "Loss curve.md").read_text() == original


def test_planner_hash_is_what_the_marker_stores(tmp_path):
    root = make_vault(tmp_path, {"n.md": "```python run\nx = 1\n```\n"})
    run_vault(root)
    vault = Vault(root)
    note = read_note(root / "n.md")
    ((fence, block_hash),) = Planner(vault, RunOptions()).hashes(note, "n.md")
    assert stored_result(note, fence).hash == block_hash


def test_traceback_lines_match_the_written_note(tmp_path):
    root = make_vault(tmp_path, {"n.md": "```python run\nprint('a')\nprint('b')\n```\n\n```python run\n\n1 / 0\n```\n"})
    run_vault(root)
    lines = (root / "n.md").read_text().split("\n")
    frame = next(line for line in lines if 'File "' in line)
    number = int(frame.split("line ")[1].split(",")[0])
    assert lines[number - 1] == "1 / 0"  # the frame points at the line as the note now reads


def test_clean_reports_what_it_removed_as_text_or_json(tmp_path, capsys, monkeypatch):
    from notevault.cli import main

    note = ("```python run\nprint(1)\n```\n\n"
            "```python run\nimport matplotlib.pyplot as plt\nlines = plt.plot([1])\n```\n")
    root = make_vault(tmp_path / "v", {"n.md": note, "untouched.md": "# nothing to clean\n"})
    monkeypatch.chdir(tmp_path)
    run_vault(root)
    capsys.readouterr()
    assert main(["clean", "v", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "version": 1, "notes": [{"path": "v/n.md", "results_removed": 2, "figures_removed": 1}]}
    assert (root / "n.md").read_text() == note
    run_vault(root)
    capsys.readouterr()
    assert main(["clean", "v"]) == 0
    assert capsys.readouterr().out == "cleaned v/n.md (2 results, 1 figure removed)\n"
