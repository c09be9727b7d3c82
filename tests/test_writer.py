"""Writing results back: golden callouts, lossless splices, idempotence, clean, concurrent edits, atomic writes."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FIXTURES, SEEDS, make_vault
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notevault.callout import Layout
from notevault.engine import RunOptions, execute
from notevault.files import write_atomic
from notevault.jobs import filename_of
from notevault.lint import Linter
from notevault.note import parse_note, read_note
from notevault.results import BlockResult, FormulaResult
from notevault.vault import Vault
from notevault.writer import Placement, clean_notes, remove_results, splice, terminal_text

GOLDEN = Path(__file__).parent / "golden"
LAYOUT = Layout(fold_lines=20, max_output_lines=30)


def result(block_id, **fields):
    fields.setdefault("status", "passed")
    fields.setdefault("device", "cpu")
    fields.setdefault("seconds", 0.25)
    fields.setdefault("kind", "run")
    return BlockResult(id=block_id, line=0, hash=hashlib.sha256(block_id.encode()).hexdigest()[:16], **fields)


def placed(note, results: dict[int, BlockResult], path="n.md"):
    """Placements for blocks by number; each result's placeholders refer to its own block (task 0)."""
    out = {}
    for number, r in results.items():
        block = note.blocks[number]
        names = tuple(f"fig-{r.id}-{i}.png" for i in range(len(r.figures)))
        out[number] = Placement(r, ((path, block.body_start),), names, tuple(f"![[{n}]]" for n in names),
                                block.tag.output)
    return out


def golden_results():
    here = filename_of(0)
    return {
        0: result("ok", output="hello\n", value="tensor([2., 2.])"),
        1: result("bad", status="failed", error="ZeroDivisionError: division by zero",
                  traceback=f'Traceback (most recent call last):\n  File "{here}", line 1, in <module>\n'
                            "    1 / 0\nZeroDivisionError: division by zero"),
        2: result("gpu", status="skipped", device=None, seconds=0.0, error="CUDA is not available here"),
        3: result("inner", output="inside a callout\n"),
        4: result("long", output="".join(f"line {i}\n" for i in range(45))),
        5: result("bn", kind="check", formula=FormulaResult("bn-norm", 2.4e-7, 1.1e-6, ("[32, 4]", "[32, 4]")),
                  figures=(b"\x89PNG fake",)),
    }


def test_golden_callouts_of_every_kind():
    note = read_note(FIXTURES / "written" / "input.md")
    spliced = splice(note, placed(note, golden_results()), LAYOUT)
    expected = (GOLDEN / "written.md").read_text(encoding="utf-8")
    assert spliced.text == expected
    assert spliced.figures == {"fig-bn-0.png": b"\x89PNG fake"} and spliced.replaced == []
    # the traceback names the line the code is on in the note as written (below ok's callout)
    assert expected.split("\n")[spliced.lines[1]] == "1 / 0"
    # written once more with the same results: not a byte changes; cleaned: the input comes back
    again = parse_note(spliced.text, note.path)
    assert all(b.result is not None and b.result.intact for b in again.blocks)
    assert splice(again, placed(again, golden_results()), LAYOUT).text == spliced.text
    cleaned = remove_results(again)
    assert cleaned.text == note.raw()
    assert [r.figures for r in cleaned.replaced if r.figures] == [("fig-bn-0.png",)]


def test_written_lines_are_returned_without_parsing_again():
    note = read_note(FIXTURES / "written" / "input.md")
    spliced = splice(note, placed(note, golden_results()), LAYOUT)
    again = parse_note(spliced.text)
    assert spliced.lines == {n: b.span.line for n, b in enumerate(again.blocks)}


def test_results_read_back_as_written():
    note = parse_note((GOLDEN / "written.md").read_text(encoding="utf-8"))
    stored = [b.result for b in note.blocks]
    assert [(s.id, s.status, s.device, s.seconds, s.error, s.intact) for s in stored] == [
        ("ok", "passed", "cpu", 0.25, None, True),
        ("bad", "failed", "cpu", 0.25, "ZeroDivisionError: division by zero", True),
        ("gpu", "skipped", None, None, "CUDA is not available here", True),
        ("inner", "passed", "cpu", 0.25, None, True), ("long", "passed", "cpu", 0.25, None, True),
        ("bn", "passed", "cpu", 0.25, None, True)]


def test_a_user_callout_right_under_a_block_is_never_touched():
    text = "```python run\nprint(1)\n```\n> [!note] my own callout\n> %% notevault id=fake hash=00 %%\n"
    note = parse_note(text)
    assert note.blocks[0].result is None and note.orphans == ()  # not in our form: not ours
    written = splice(note, placed(note, {0: result("L1", output="1\n")}), LAYOUT).text
    assert written.endswith("\n\n> [!note] my own callout\n> %% notevault id=fake hash=00 %%\n")
    assert "%% notevault id=L1" in written and written.count("[!note] my own callout") == 1
    assert remove_results(parse_note(written)).text == text


def written_once(text: str, output: str = "1\n") -> str:
    note = parse_note(text)
    return splice(note, placed(note, {n: result(b.id, output=output) for n, b in enumerate(note.blocks)}),
                  LAYOUT).text


def test_a_user_callout_typed_directly_under_a_result_stays_the_users():
    text = written_once("```python run\nprint('hi')\n```\n\ntext\n")
    lines = text.split("\n")
    end = lines.index("> ```", lines.index("> ```text") + 1)
    lines[end + 1:end + 2] = ["> [!tip] My takeaway", "> ![[diagram.png]]", "> I drew this myself."]
    typed = "\n".join(lines)  # the blank separator line removed: markdown merges the two quotes
    note = parse_note(typed)
    assert note.blocks[0].result.intact and note.blocks[0].result.figures == ()
    rerun = splice(note, placed(note, {0: result("L1", output="changed\n")}), LAYOUT).text
    assert "> [!tip] My takeaway\n> ![[diagram.png]]\n> I drew this myself.\n" in rerun
    cleaned = remove_results(parse_note(rerun)).text
    assert "> [!tip] My takeaway\n> ![[diagram.png]]\n> I drew this myself.\n" in cleaned
    assert "notevault" not in cleaned


def test_text_typed_at_the_end_of_a_result_callout_is_kept():
    text = written_once("```python run\nprint('hi')\n```\n")
    typed = text + "> my note on this output\n"
    note = parse_note(typed)
    assert note.blocks[0].result.intact
    rerun = splice(note, placed(note, {0: result("L1", output="2\n")}), LAYOUT).text
    assert rerun.endswith("> 2\n> ```\n\n> my note on this output\n")
    assert remove_results(parse_note(rerun)).text == "```python run\nprint('hi')\n```\n> my note on this output\n"


def test_a_blank_line_between_block_and_result_keeps_the_result_attached():
    text = written_once("```python run\nprint('hi')\n```\n\nafter\n")
    spaced = text.replace("```\n> [!success]", "```\n\n\n> [!success]", 1)
    note = parse_note(spaced)
    assert note.blocks[0].result is not None and note.orphans == ()
    rerun = splice(note, placed(note, {0: result("L1", output="new\n")}), LAYOUT).text
    assert rerun.count("[!success]") == 1 and "> new\n" in rerun
    assert remove_results(parse_note(rerun)).text == "```python run\nprint('hi')\n```\n\n\n\nafter\n"


def test_a_result_separated_from_its_block_is_an_orphan_that_run_and_clean_remove():
    text = written_once("```python run\nprint('hi')\n```\n")
    moved = text.replace("```\n> [!success]", "```\nA paragraph the user wrote in between.\n\n> [!success]", 1)
    note = parse_note(moved)
    assert note.blocks[0].result is None and len(note.orphans) == 1 and note.orphans[0].intact
    rerun = splice(note, placed(note, {0: result("L1")}), LAYOUT, remove=note.orphans).text
    assert rerun.count("[!success]") == 1
    assert "A paragraph the user wrote in between.\n" in rerun
    assert remove_results(parse_note(moved)).text == "```python run\nprint('hi')\n```\n" \
                                                     "A paragraph the user wrote in between.\n\n"


def test_a_block_duplicated_with_its_result_gets_its_own_result():
    text = written_once("```python run\nprint('hi')\n```\n")
    doubled = text + "\nVariant:\n\n" + text
    note = parse_note(doubled)
    assert [b.id for b in note.blocks] == ["L1", "L7"]  # lines without notevault's callouts
    assert all(b.result is not None for b in note.blocks)
    block = "```python run\nprint('hi')\n```\n"
    assert remove_results(note).text == block + "\nVariant:\n\n" + block


def test_a_hand_edited_result_is_known_and_written_again():
    text = written_once("```python run\nprint(1)\n```\n")
    edited = text.replace("> 1\n", "> 999\n")
    note = parse_note(edited)
    assert not note.blocks[0].result.intact
    rerun = splice(note, placed(note, {0: result("L1")}), LAYOUT)
    assert "> 999" not in rerun.text and [r.intact for r in rerun.replaced] == [False]


def test_a_deleted_marker_line_makes_the_callout_the_users():
    text = written_once("```python run\nprint(1)\n```\n")
    unmarked = "\n".join(line for line in text.split("\n") if "%% notevault" not in line)
    note = parse_note(unmarked)
    assert note.blocks[0].result is None and note.orphans == ()
    rerun = splice(note, placed(note, {0: result("L1")}), LAYOUT).text
    assert rerun.count("[!success]") == 2 and remove_results(parse_note(rerun)).text == unmarked


@pytest.mark.parametrize("output", [
    "epoch 1 loss 0.500\repoch 2 loss 0.333\repoch 3 loss 0.250\r",  # a progress line rewritten in place
    "a\x0cb\x0bc\x1b[31mred\x1b[0m\x00\x07",  # form feed, vertical tab, colour codes, NUL, bell
    "%% notevault id=L1 hash=0000 sum=0000000000000000 %%\n> [!failure] L1 · failed\n~~~\n```\n````\n",
    "\u2028\u2029\x85 line-separator look-alikes\n",
    "\udcff a lone surrogate\n",
])
def test_whatever_a_block_prints_cannot_break_the_note(output):
    original = "# T\r\n\r\n```python run\r\nprint(1)\r\n```\r\nMy conclusion.\r\n"
    note = parse_note(original)
    first = splice(note, placed(note, {0: result("L1", status="failed", error=output, output=output,
                                                 traceback=output, value=output)}), LAYOUT).text
    again = parse_note(first)
    region = again.blocks[0].result
    assert region is not None and region.intact
    ours = first.split("\r\n")[region.span.start:region.span.start + len(region.lines)]
    assert len(ours) > 2 and all(line.startswith(">") for line in ours)
    assert "\r" not in first.replace("\r\n", "")  # no line break but the note's own
    assert first.encode("utf-8")  # valid UTF-8: notevault can read it back
    second = splice(again, placed(again, {0: result("L1", status="failed", error=output, output=output,
                                                    traceback=output, value=output)}), LAYOUT).text
    assert second == first
    assert remove_results(again).text == original


def test_terminal_text_shows_what_a_terminal_shows():
    assert terminal_text("epoch 1\repoch 22\rep 3\n") == "ep 3h 22\n"  # each \r rewrites from the left
    assert terminal_text("\x1b[1;31mbold red\x1b[0m and \x1b]0;title\x07plain") == "bold red and plain"
    assert terminal_text("tab\tok\x0c") == "tab\tok\u240c"
    # a bidi override would make the output read as something it is not ("Trojan source")
    assert terminal_text("loss \u202e0.1\u202c ok") == (
        "loss <U+202E RIGHT-TO-LEFT OVERRIDE>0.1<U+202C POP DIRECTIONAL FORMATTING> ok")
    assert terminal_text("中文 and עברית stay") == "中文 and עברית stay"


def test_an_error_in_the_title_shows_literally():
    note = parse_note("```python run\nprint(1)\n```\n")
    error = "TypeError: <lambda>() takes 0 positional arguments; see [[Missing Note]], $a+b$, *x*, #tag, %%c%% `q`"
    text = splice(note, placed(note, {0: result("L1", status="failed", error=error)}), LAYOUT).text
    title = text.split("\n")[3]
    assert title.endswith(f"· `` {error} ``")  # padded: the text ends with a backtick
    again = parse_note(text)
    assert again.blocks[0].result.error == error
    assert not [f for f in Linter(Vault(Path("."))).findings(again, "n.md") if f.rule == "broken-link"]


# Generated notes: fences (tagged or not), callouts, lists, CRLF or LF, BOM, with or without a final newline.
PIECES = st.sampled_from([
    "# 标题 Heading", "Some text with trailing spaces   ", "\t缩进 tab", "", "> [!note] 提示\n> inside",
    "```python run\nprint(1)\n```", "```python run id=x\nx = 1\n```", "```python\nnot run\n```",
    "> ```python run\n> y = 2\n> ```", "- item\n  ```python run\n  z = 3\n  ```", "$$a = b$$", "---",
    "```python run\nprint('last')\n```\n> [!tip] user callout right below", "-\t```python run\n\tprint(1)\n\t```",
])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(pieces=st.lists(PIECES, min_size=1, max_size=8), crlf=st.booleans(), bom=st.booleans(),
       final_newline=st.booleans(), output=st.sampled_from(["", "out\n", "a\nb\n" * 15, "p\rq\n"]))
def test_splice_then_remove_gives_the_original_bytes(pieces, crlf, bom, final_newline, output):
    eol = "\r\n" if crlf else "\n"
    text = eol.join(pieces).replace("\n", eol).replace("\r\r\n", "\r\n") + (eol if final_newline else "")
    note = parse_note(text, bom=bom)
    results = {n: result(b.id, output=output) for n, b in enumerate(note.blocks)}
    written = splice(note, placed(note, results), LAYOUT)
    again = parse_note(written.text[1:] if bom else written.text, bom=bom)
    assert len(again.blocks) == len(note.blocks)
    assert [b.id for b in again.blocks] == [b.id for b in note.blocks]  # ids stay put across our own writes
    assert all(b.result is not None and b.result.intact for b in again.blocks if b.closed)
    assert written.lines == {n: b.span.line for n, b in enumerate(again.blocks)}
    assert splice(again, placed(again, results), LAYOUT).text == written.text  # a second run is a no-op
    assert remove_results(again).text == note.raw()  # clean gives back the original bytes


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
    written = {name: (root / name).read_bytes() for name in files}
    assert written["004_f28a89be14870720.md"].decode().count("> > [!failure]") == 1  # inside its callout
    assert written["004_f28a89be14870720.md"].decode().count("> > > [!success]") == 1  # two deep: it runs
    again = run_vault(root, jobs=2)
    assert {n: (root / n).read_bytes() for n in files} == written  # failures included: nothing changes
    assert all(b.cached for n in again.notes for b in n.blocks)
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
    assert [b.status for b in frozen.notes[0].blocks] == ["stale"]
    assert frozen.notes[0].blocks[0].error.startswith("the block, its options or what it depends on")


def test_failing_blocks_and_forced_reruns_change_no_byte(tmp_path):
    code = "x = torch.randn(300, 300)\nfor _ in range(30): x = x @ x.T / 300\nassert False"
    root = make_vault(tmp_path, {"n.md": f"```python run\n{code}\n```\n\n```python run\nprint(1)\n```\n"})
    run_vault(root)
    first = (root / "n.md").read_bytes()
    started = time.perf_counter()
    again = run_vault(root)
    assert (root / "n.md").read_bytes() == first and all(b.cached for b in again.notes[0].blocks)
    assert time.perf_counter() - started < 2  # nothing ran: no worker was needed
    run_vault(root, force=True)  # runs again; differs at most in timings, which are left as they were
    assert (root / "n.md").read_bytes() == first


def test_changing_output_or_id_rerenders_without_running(tmp_path):
    root = make_vault(tmp_path, {"n.md": "```python run id=gelu-plot\nfor i in range(3): print(i)\n```\n"})
    run_vault(root)
    text = (root / "n.md").read_text()
    (root / "n.md").write_text(text.replace("```python run id=gelu-plot", "```python run id=gelu-curve output=hide"))
    assert run_vault(root, write=False, frozen=True).notes[0].blocks[0].error == (
        "the block's id changed (its result says gelu-plot)")
    block = run_vault(root).notes[0].blocks[0]
    assert block.cached  # re-rendered from the cache, not run
    rewritten = (root / "n.md").read_text()
    assert "gelu-plot" not in rewritten and "> 0\n" not in rewritten
    assert "[!success] gelu-curve · passed" in rewritten
    assert not run_vault(root, write=False, frozen=True).failed()


def test_frozen_check_reports_a_hand_edited_result_and_run_restores_it(tmp_path):
    root = make_vault(tmp_path, {"n.md": "```python run\nprint(1)\n```\n"})
    run_vault(root)
    original = (root / "n.md").read_text()
    (root / "n.md").write_text(original.replace("> 1\n", "> 999\n"))
    frozen = run_vault(root, write=False, frozen=True)
    assert frozen.failed() and frozen.notes[0].blocks[0].error.startswith("the result callout was edited by hand")
    report = run_vault(root)
    assert (root / "n.md").read_text() == original
    assert report.notes[0].warnings == [
        f"{os.path.relpath(root / 'n.md')}:4: the result callout of block L1 had been edited by hand; "
        "it was written again"]


def test_stored_tracebacks_follow_the_code_and_frozen_sees_stale_lines(tmp_path):
    root = make_vault(tmp_path, {"n.md": "```python run id=conv expect=ValueError\nint('x')\n```\n"})
    run_vault(root)
    assert 'File "n.md", line 2' in (root / "n.md").read_text()
    (root / "n.md").write_text("new\nparagraph\n\nabove\n\n" + (root / "n.md").read_text())
    frozen = run_vault(root, write=False, frozen=True)
    assert frozen.notes[0].blocks[0].status == "stale"
    assert frozen.notes[0].blocks[0].error == "its traceback names line 2, where that code no longer is"
    run_vault(root)
    text = (root / "n.md").read_text()
    assert 'File "n.md", line 7' in text and text.split("\n")[6] == "int('x')"
    assert not run_vault(root, write=False, frozen=True).failed()


def test_fresh_clone_with_current_results_runs_nothing(tmp_path):
    root = make_vault(tmp_path, {"n.md": "```python run\nprint(1)\n```\n"})
    run_vault(root)
    written = (root / "n.md").read_bytes()
    shutil.rmtree(root / ".notevault")
    report = run_vault(root)
    assert report.notes[0].blocks[0].cached and (root / "n.md").read_bytes() == written


@pytest.mark.skipif(os.path.exists("/dev/nvidiactl"), reason="this machine may have CUDA")
def test_fresh_clone_without_cuda_keeps_a_stored_cuda_skip_without_running_it(tmp_path):
    root = make_vault(tmp_path, {"n.md": "```python run device=cuda\nprint(1)\n```\n"})
    run_vault(root)
    written = (root / "n.md").read_bytes()
    assert b"[!warning] L1 \xc2\xb7 skipped \xc2\xb7 `CUDA is not available here`" in written
    shutil.rmtree(root / ".notevault")
    block = run_vault(root).notes[0].blocks[0]
    assert (block.status, block.cached, block.error) == ("skipped", True, "CUDA is not available here")
    assert (root / "n.md").read_bytes() == written
    assert not (root / ".notevault" / "cache.jsonl").exists()  # nothing ran: no result was remembered


def test_an_edit_made_while_blocks_run_wins(tmp_path):
    text = ("```python run id=slow\nimport time\ntime.sleep(2)\n```\n\n"
            "```python run id=kept isolated\nprint('kept')\n```\n\nend\n")
    root = make_vault(tmp_path, {"n.md": text})
    command = [sys.executable, "-m", "notevault", "run", "--jobs", "2", str(root)]
    runner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 20
    while not (root / ".notevault" / "cache.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the isolated block's result cached: the slow block is running by now
    edited = text.replace("time.sleep(2)", "time.sleep(2)  # edited") + "a line the user added\n"
    (root / "n.md").write_text(edited, encoding="utf-8")
    output, _ = runner.communicate(timeout=60)
    assert "the note changed during the run; results dropped for slow" in output
    final = (root / "n.md").read_text(encoding="utf-8")
    assert final.endswith("end\na line the user added\n")
    assert "time.sleep(2)  # edited" in final
    assert "%% notevault id=slow" not in final  # its code changed: its result was dropped
    assert "%% notevault id=kept" in final  # an unchanged block still gets its result


def test_a_save_landing_during_write_back_wins(tmp_path):
    """The review's repro: the editor saves while the temp file is being fsynced."""
    root = make_vault(tmp_path, {"n.md": "```python run\nprint('hi')\n```\n\nmy text\n"})
    script = f"""
import os, sys
from pathlib import Path
note = Path({str(root / 'n.md')!r})
real, saved = os.fsync, []
def fsync(fd):
    real(fd)
    if not saved and os.readlink(f"/proc/self/fd/{{fd}}").startswith(str(note.parent / ".notevault-n.md.")):
        saved.append(1)
        note.write_text(note.read_text() + "a sentence saved just now\\n")
os.fsync = fsync
from notevault.cli import main
main(["run", {str(root)!r}])
"""
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=60)
    final = (root / "n.md").read_text()
    assert final.endswith("my text\na sentence saved just now\n")
    assert "%% notevault id=L1" in final  # spliced again onto the newest text
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]


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
    (figure,) = (root / "notes" / "assets").iterdir()
    assert re.fullmatch(r"Loss-curve-plot-1-[0-9a-f]{6}\.png", figure.name)
    assert figure.read_bytes().startswith(b"\x89PNG")
    note = (root / "notes" / "Loss curve.md").read_text()
    assert f"> ![[{figure.name}]]" in note
    assert Linter(Vault(root)).lint(root / "notes" / "Loss curve.md") == []  # the embed resolves
    clean_notes(Vault(root), [root])
    assert not figure.exists()
    assert (root / "notes" / "Loss curve.md").read_text() == f"```python run id=plot\n{code}\n```\n"


@pytest.mark.parametrize(("link_format", "folder"), [("shortest", ""), ("relative", "../assets/"),
                                                     ("absolute", "assets/")])
def test_figures_are_markdown_links_when_obsidian_writes_markdown_links(tmp_path, link_format, folder):
    code = "import matplotlib.pyplot as plt\nlines = plt.plot([1, 2, 3])"
    original = f"```python run id=plot\n{code}\n```\n"
    root = make_vault(tmp_path, {"my notes/Loss curve.md": original},
                      app={"attachmentFolderPath": "assets", "useMarkdownLinks": True, "newLinkFormat": link_format})
    run_vault(root)
    (figure,) = (root / "assets").iterdir()
    note = (root / "my notes" / "Loss curve.md").read_text()
    assert f"> ![]({folder}{figure.name})\n" in note
    assert Linter(Vault(root)).lint(root / "my notes" / "Loss curve.md") == []  # the link resolves
    run_vault(root, force=True)
    assert (root / "my notes" / "Loss curve.md").read_text() == note  # only the timing could differ: kept
    assert [p.name for p in (root / "assets").iterdir()] == [figure.name]
    clean_notes(Vault(root), [root])
    assert not list((root / "assets").iterdir())
    assert (root / "my notes" / "Loss curve.md").read_text() == original


def test_traceback_lines_match_the_written_note(tmp_path):
    root = make_vault(tmp_path, {"n.md": "```python run\nprint('a')\nprint('b')\n```\n\n```python run\n\n1 / 0\n```\n"})
    report = run_vault(root)
    lines = (root / "n.md").read_text().split("\n")
    frame = next(line for line in lines if 'File "' in line)
    number = int(frame.split("line ")[1].split(",")[0])
    assert lines[number - 1] == "1 / 0"  # the frame points at the line as the note now reads
    failed = report.notes[0].blocks[1]
    assert lines[failed.line - 1] == "```python run" and f'line {number}' in failed.traceback  # reports agree


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
        "version": 1, "notes": [{"path": "v/n.md", "results_removed": 2, "figures_removed": 1, "warnings": []}]}
    assert (root / "n.md").read_text() == note
    run_vault(root)
    capsys.readouterr()
    assert main(["clean", "v"]) == 0
    assert capsys.readouterr().out == "cleaned v/n.md (2 results, 1 figure removed)\n"


def test_a_read_only_note_is_reported_and_every_other_note_still_written(tmp_path):
    root = make_vault(tmp_path, {name: f"```python run\nprint({n})\n```\n"
                                 for n, name in enumerate(("a.md", "locked.md", "z.md"), start=1)})
    os.chmod(root / "locked.md", 0o444)
    report = run_vault(root)
    by_name = {Path(n.path).name: n for n in report.notes}
    assert by_name["locked.md"].warnings == [f"results not written: {os.path.relpath(root / 'locked.md')} is read-only"]
    assert (root / "locked.md").read_text() == "```python run\nprint(2)\n```\n"
    assert "%% notevault id=L1" in (root / "a.md").read_text() and "%% notevault id=L1" in (root / "z.md").read_text()


def test_templates_are_never_run_or_written(tmp_path):
    root = make_vault(tmp_path, {"Templates/t.md": "# T\n\n```python run\nprint(1)\n```\n",
                                 "n.md": "```python run\nprint(2)\n```\n"}, templates="Templates")
    report = run_vault(root)
    assert [Path(n.path).name for n in report.notes] == ["n.md"]
    assert (root / "Templates" / "t.md").read_text() == "# T\n\n```python run\nprint(1)\n```\n"


def test_a_users_image_named_in_output_or_embedded_survives_rerun_and_clean(tmp_path):
    root = make_vault(tmp_path, {"architecture.png": b"MY-OWN-IMAGE", "diagram.png": b"MINE-TOO",
                                 "n.md": "![[architecture.png]]\n\n```python run\nprint('![[architecture.png]]')\n"
                                         "```\n\n> [!tip] My takeaway\n> ![[diagram.png]]\n"})
    run_vault(root)
    (root / "n.md").write_text((root / "n.md").read_text().replace("print('!", "print(' !"))  # re-run it
    run_vault(root)
    clean_notes(Vault(root), [root])
    assert (root / "architecture.png").read_bytes() == b"MY-OWN-IMAGE"
    assert (root / "diagram.png").read_bytes() == b"MINE-TOO"


def test_two_notes_of_one_name_and_a_duplicated_plot_never_share_a_figure(tmp_path):
    plot = "```python run id=plot\nimport matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.title('{}')\n```\n"
    root = make_vault(tmp_path, {"a/Loss.md": plot.format("note a"), "b/Loss.md": plot.format("note b")})
    run_vault(root)
    embeds = [re.findall(r"!\[\[(.+?)\]\]", (root / d / "Loss.md").read_text()) for d in "ab"]
    assert len({e[0] for e in embeds}) == 2 and all((root / e[0]).exists() for e in embeds)
    clean_notes(Vault(root), [root / "a" / "Loss.md"])
    assert (root / embeds[1][0]).exists()  # b's figure is b's alone
    one = root / "one.md"
    one.write_text(plot.format("original") + "\ntext\n")
    run_vault(root, force=True)
    copy = one.read_text().split("\ntext\n")[0].replace("original", "variant")
    one.write_text(one.read_text() + "\nVariant:\n\n" + copy + "\n")  # the block and its result, duplicated
    run_vault(root)
    names = re.findall(r"!\[\[(.+?)\]\]", one.read_text())
    assert len(names) == len(set(names)) == 2 and all((root / n).exists() for n in names)
    assert [f.rule for f in Linter(Vault(root)).lint(one)] == ["duplicate-id"]  # both embeds resolve


def test_a_block_id_under_the_fence_stays_attached_to_its_block():
    """Obsidian's ``^code1`` under a code block names that block: the result goes below it, not between."""
    text = "See [[#^code1]].\n\n```python run\nprint(1)\n```\n^code1\n\nprose\n"
    note = parse_note(text)
    written = splice(note, placed(note, {0: result("L3")}), LAYOUT).text
    lines = written.split("\n")
    assert lines[4:7] == ["```", "^code1", lines[6]] and lines[6].startswith("> [!success] L3")
    again = parse_note(written)
    assert again.blocks[0].result is not None and again.orphans == ()
    assert remove_results(again).text == text
