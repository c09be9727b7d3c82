"""The run engine with real worker processes: semantics a user relies on, and faults that must stay contained."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import make_vault

from notevault.engine import RunOptions, execute
from notevault.vault import Vault
from notevault.writer import clean_notes


def run(root, options=None):
    options = options or RunOptions(write=False)
    report = execute(Vault(root), [root], options)
    return {(n.path.rsplit("/", 1)[-1], b.id): b for n in report.notes for b in n.blocks}, report


def fence(code: str, tag: str = "python run") -> str:
    return f"```{tag}\n{code}\n```\n\n"


def test_blocks_share_a_namespace_and_show_the_last_expression(tmp_path):
    root = make_vault(tmp_path, {"n.md": fence("x = torch.arange(3)\nprint('x is', x)", "python run id=a")
                                 + fence("x.sum().item() + 1", "python run id=b")
                                 + fence("y = 2", "python run id=c")})
    blocks, _ = run(root)
    assert blocks["n.md", "a"].output == "x is tensor([0, 1, 2])\n"
    assert blocks["n.md", "a"].value is None
    assert blocks["n.md", "b"].value == "4"
    assert blocks["n.md", "c"].value is None
    assert {b.status for b in blocks.values()} == {"passed"}
    assert blocks["n.md", "a"].device == "cpu"


def test_stdout_and_stderr_in_the_order_written_including_c_level(tmp_path):
    code = "import os, sys\nprint('one')\nprint('two', file=sys.stderr)\nos.write(1, b'three\\n')\nprint('four')"
    root = make_vault(tmp_path, {"n.md": fence(code)})
    blocks, _ = run(root)
    assert blocks["n.md", "L1"].output == "one\ntwo\nthree\nfour\n"


def test_traceback_points_at_the_notes_own_lines(tmp_path):
    root = make_vault(tmp_path, {"n.md": "# Title\n\ntext\n\n" + fence("def f(v):\n    return 1 / v\n\nf(0)",
                                                                         "python run id=div")})
    blocks, _ = run(root)
    result = blocks["n.md", "div"]
    assert result.status == "failed"
    assert result.error == "ZeroDivisionError: division by zero"
    frames = re.findall(r'File "(.+?)", line (\d+)', result.traceback)
    assert [(file.rsplit("/", 1)[-1], line) for file, line in frames] == [("n.md", "9"), ("n.md", "7")]
    assert "    return 1 / v" in result.traceback
    assert "worker.py" not in result.traceback


def test_later_blocks_still_run_after_an_exception(tmp_path):
    root = make_vault(tmp_path, {"n.md": fence("raise ValueError('bad')") + fence("print('still here')")})
    blocks, report = run(root)
    assert [b.status for b in report.notes[0].blocks] == ["failed", "passed"]
    assert report.notes[0].blocks[1].output == "still here\n"


def test_expect_error(tmp_path):
    root = make_vault(tmp_path, {"n.md": fence("1 / 0", "python run id=a expect=ZeroDivisionError")
                                 + fence("1 / 0", "python run id=b expect=error")
                                 + fence("1 / 0", "python run id=c expect=KeyError")
                                 + fence("pass", "python run id=d expect=error")})
    blocks, _ = run(root)
    assert [blocks["n.md", i].status for i in "abcd"] == ["passed", "passed", "failed", "failed"]
    assert blocks["n.md", "c"].error == "expected KeyError, got ZeroDivisionError: division by zero"
    assert blocks["n.md", "d"].error == "expected error to be raised, but the block ran without error"


def test_seeds_make_printed_results_reproducible(tmp_path):
    code = "import random, numpy as np\nprint(torch.rand(2).tolist(), random.random(), np.random.rand())"
    root = make_vault(tmp_path, {"a.md": fence(code, "python run seed=7"), "b.md": fence(code, "python run seed=7"),
                                 "c.md": fence(code, "python run seed=8")})
    blocks, _ = run(root)
    assert blocks["a.md", "L1"].output == blocks["b.md", "L1"].output
    assert blocks["a.md", "L1"].output != blocks["c.md", "L1"].output
    again, _ = run(root, RunOptions(write=False, force=True))
    assert again["a.md", "L1"].output == blocks["a.md", "L1"].output


def test_timeout_kills_a_hanging_block_and_later_blocks_are_not_run(tmp_path):
    root = make_vault(tmp_path, {"hang.md": fence("print('before')") + fence("import time\ntime.sleep(60)",
                                 "python run id=hang timeout=1") + fence("print('after')", "python run id=later"),
                                 "ok.md": fence("print('fine')")})
    blocks, _ = run(root)
    assert blocks["hang.md", "hang"].status == "failed"
    assert blocks["hang.md", "hang"].error == "timed out after 1 s"
    assert 1.0 <= blocks["hang.md", "hang"].seconds < 5
    assert blocks["hang.md", "later"].status == "skipped"
    assert blocks["hang.md", "later"].error == "not run: block hang did not finish"
    assert blocks["hang.md", "L1"].output == "before\n"
    assert blocks["ok.md", "L1"].output == "fine\n"


@pytest.mark.parametrize(("code", "reason"), [
    ("import ctypes\nctypes.string_at(0)", "worker crashed: segmentation fault (SIGSEGV)"),
    ("import os\nos._exit(3)", "worker exited with status 3 before the block finished"),
])
def test_a_crashing_block_fails_clearly_and_the_vault_still_runs(tmp_path, code, reason):
    root = make_vault(tmp_path, {"crash.md": fence(code, "python run id=crash") + fence("print(1)"),
                                 "fine.md": fence("print('fine')")})
    blocks, _ = run(root)
    assert blocks["crash.md", "crash"].status == "failed"
    assert blocks["crash.md", "crash"].error.startswith(reason)
    assert blocks["crash.md", "L6"].status == "skipped"
    assert blocks["fine.md", "L1"].status == "passed"


def test_memory_exhaustion_fails_the_block_not_the_run(tmp_path):
    root = make_vault(tmp_path, {"n.md": fence("x = torch.empty(64 * 1024**3, dtype=torch.uint8)\nx.fill_(1)")
                                 + fence("print('next')"),
                                 "notevault.yaml": "memory_limit_mb: 4096\n"})
    blocks, _ = run(root)
    first = blocks["n.md", "L1"]
    assert first.status == "failed"
    assert "memory" in first.error.lower() or "alloc" in first.error.lower()
    assert blocks["n.md", "L6"].status == "passed"


def test_cuda_block_is_skipped_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the block runs for real")
    root = make_vault(tmp_path, {"n.md": fence("x = torch.ones(2, device=device)", "python run device=cuda")})
    blocks, report = run(root)
    assert (blocks["n.md", "L1"].status, blocks["n.md", "L1"].error) == ("skipped", "CUDA is not available here")
    assert not report.failed()


def test_sessions_and_isolated_blocks(tmp_path):
    root = make_vault(tmp_path, {
        "a.md": fence("shared = 41", "python run session=s") + fence("x = 1", "python run id=own"),
        "b.md": fence("print(shared + 1)", "python run id=reader session=s")
                + fence("print('x' in globals())", "python run id=alone isolated"),
    })
    blocks, _ = run(root)
    assert blocks["b.md", "reader"].output == "42\n"
    assert blocks["b.md", "alone"].output == "False\n"


def test_snippets_folder_is_importable(tmp_path):
    root = make_vault(tmp_path, {"snippets/helper.py": "def twice(v):\n    return 2 * v\n",
                                 "notes/n.md": fence("from helper import twice\nprint(twice(21))")})
    blocks, _ = run(root)
    assert blocks["n.md", "L1"].output == "42\n"


def test_cache_hit_after_no_change_and_miss_after_editing_an_earlier_block(tmp_path):
    note = fence("a = 1", "python run id=one") + fence("b = a + 1", "python run id=two") \
        + fence("print(b)", "python run id=three")
    root = make_vault(tmp_path, {"n.md": note})
    first, _ = run(root, RunOptions())
    assert not any(b.cached for b in first.values())
    clean_notes(Vault(root), [root])  # the results are gone from the note: they come from the cache
    second, _ = run(root, RunOptions())
    assert all(b.cached for b in second.values())
    assert second["n.md", "three"].output == "2\n"
    edited = (root / "n.md").read_text().replace("b = a + 1", "b = a + 10")
    (root / "n.md").write_text(edited)
    third, _ = run(root, RunOptions())
    assert [third["n.md", i].cached for i in ("one", "two", "three")] == [True, False, False]
    assert third["n.md", "three"].output == "11\n"  # block one was replayed to rebuild the namespace
    forced, _ = run(root, RunOptions(force=True))
    assert not any(b.cached for b in forced.values())
    checked, _ = run(root)  # check runs everything
    assert not any(b.cached for b in checked.values())


def test_cache_skips_a_line_torn_by_a_crash_and_keeps_the_rest(tmp_path):
    root = make_vault(tmp_path, {"n.md": fence("print(1)", "python run id=one") + fence("print(2)",
                                                                                        "python run id=two")})
    run(root, RunOptions())
    clean_notes(Vault(root), [root])
    log = root / ".notevault" / "cache.jsonl"
    lines = log.read_text().splitlines()
    assert len(lines) == 2
    log.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])  # killed halfway through the second write
    blocks, _ = run(root, RunOptions())
    assert [(blocks["n.md", i].cached, blocks["n.md", i].output) for i in ("one", "two")] == [(True, "1\n"),
                                                                                               (False, "2\n")]
    clean_notes(Vault(root), [root])
    again, _ = run(root, RunOptions())
    assert again["n.md", "two"].cached


def test_snippet_change_invalidates_blocks_that_import_it(tmp_path):
    root = make_vault(tmp_path, {"snippets/h.py": "V = 1\n", "n.md": fence("from h import V\nprint(V)")})
    run(root, RunOptions())
    (root / "snippets" / "h.py").write_text("V = 2\n")
    blocks, _ = run(root, RunOptions())
    assert (blocks["n.md", "L1"].cached, blocks["n.md", "L1"].output) == (False, "2\n")


def test_a_forked_child_that_outlives_its_block_is_killed(tmp_path):
    marker = tmp_path / "orphan-alive"
    code = (f"import os, time\nif os.fork() == 0:\n    time.sleep(3)\n    open({str(marker)!r}, 'w').close()\n"
            "    os._exit(0)\nprint('parent done')")
    root = make_vault(tmp_path / "v", {"n.md": fence(code)})
    blocks, _ = run(root)
    assert blocks["n.md", "L1"].status == "passed"
    import time

    time.sleep(3.5)
    assert not marker.exists()


def test_huge_output_is_cut(tmp_path):
    root = make_vault(tmp_path, {"n.md": fence("import sys\nsys.stdout.write('x' * 50_000_000)")})
    blocks, _ = run(root, RunOptions())
    result = blocks["n.md", "L1"]
    assert result.status == "passed"
    assert len(result.output) < 1_100_000
    assert result.output.endswith("… output cut: 50,000,000 bytes in all\n")
    note = (root / "n.md").read_text()  # the note shows the start, and how much there was in all
    assert "\n> … 1,028,576 more characters\n> … output cut: 50,000,000 bytes in all\n> ```\n" in note
    assert len(note) < 25_000


def test_bad_tag_and_unclosed_fence_fail_without_running(tmp_path):
    root = make_vault(tmp_path, {"n.md": fence("print(1)", "python run timeout=x") + "```python run\nprint(2)\n"})
    blocks, report = run(root)
    assert blocks["n.md", "L1"].error.startswith("bad tag: option timeout=x must be a number")
    assert blocks["n.md", "L5"].error == "the code fence is never closed"
    assert [f.rule for f in report.notes[0].lint] == ["bad-tag", "unclosed-fence"]


def test_the_cli_process_never_imports_torch(tmp_path):
    root = make_vault(tmp_path, {"n.md": fence("print(torch.ones(2).sum().item())")})
    script = ("import sys\nfrom notevault.cli import main\nstatus = main(['run', sys.argv[1]])\n"
              "print(status, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script, str(root)], capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines()[-1] == "0 False"
    assert "2.0" in (root / "n.md").read_text()


def test_problems_found_while_planning_name_the_lines_of_the_note_as_written(tmp_path):
    note = fence("print(1)") + fence("print(2)", "python run timeout=soon")
    root = make_vault(tmp_path, {"n.md": note})
    report = execute(Vault(root), [root], RunOptions())
    (finding,) = report.notes[0].lint
    failed = report.notes[0].blocks[1]
    lines = (root / "n.md").read_text().split("\n")
    assert finding.rule == "bad-tag" and finding.line == failed.line
    assert lines[finding.line - 1] == "```python run timeout=soon"  # below the first block's new callout


def test_a_changed_memory_limit_runs_the_block_again(tmp_path):
    """memory_limit_mb shapes what a block can do (a block that fit may no longer), as timeout does: a result
    obtained under another limit is stale."""
    root = make_vault(tmp_path, {"n.md": fence("print(1)")})
    first, _ = run(root, RunOptions())
    assert (first["n.md", "L1"].status, first["n.md", "L1"].cached) == ("passed", False)
    (root / "notevault.yaml").write_text("memory_limit_mb: 4096\n")
    frozen, _ = run(root, RunOptions(write=False, frozen=True))
    assert frozen["n.md", "L1"].status == "stale"
    again, _ = run(root, RunOptions())
    assert (again["n.md", "L1"].status, again["n.md", "L1"].cached) == ("passed", False)
    (root / "notevault.yaml").write_text("memory_limit_mb: 8192\n")  # the default: the first result holds again
    back, _ = run(root, RunOptions())
    assert (back["n.md", "L1"].status, back["n.md", "L1"].cached) == ("passed", True)


def test_a_note_run_through_a_symlinked_folder_is_current_for_the_vault(tmp_path):
    # real/n.md reached as linkdir/n.md (linkdir -> real, inside the vault): the run hashes the note under
    # "linkdir/n.md", so the result it writes is stale to `check --frozen` of the vault (and `run` of the vault
    # writes it again): the same stored result is judged current or stale depending on the path named.
    root = make_vault(tmp_path, {"real/n.md": fence("print(1)")})
    (root / "linkdir").symlink_to("real")
    note = root / "linkdir" / "n.md"
    execute(Vault.discover(note), [note], RunOptions())
    assert "> 1" in (root / "real" / "n.md").read_text()
    frozen = execute(Vault(root), [root], RunOptions(write=False, frozen=True))
    assert [b.status for n in frozen.notes for b in n.blocks] == ["passed"]


def test_a_session_note_run_alone_imports_from_the_folders_its_result_is_hashed_with(tmp_path):
    # Session s spans A/s1.md, B/s2.md, C/s3.md; s2 imports helper, which is next to s3 (C/helper.py). The run
    # hash of s2's block covers C/helper.py (C is a folder of the session), but `run B/s2.md` replays only the
    # earlier notes, so its worker lacks C/ on sys.path: ModuleNotFoundError is written, and `run` and
    # `check --frozen` of the vault take that failure as current while `check` of the vault passes.
    root = make_vault(tmp_path, {
        "C/helper.py": "V = 7\n",
        "A/s1.md": fence("x = 1", "python run session=s"),
        "B/s2.md": fence("import helper\nprint(helper.V)", "python run session=s"),
        "C/s3.md": fence("print(x)", "python run session=s"),
    })
    execute(Vault(root), [root / "B" / "s2.md"], RunOptions())
    checked, _ = run(root)  # check: every block fresh
    assert checked["s2.md", "L1"].status == "passed"
    ran, _ = run(root, RunOptions())
    assert ran["s2.md", "L1"].status == "passed"
