"""Fault injection: one bad note or block never costs another note a byte, and the rest of the vault runs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_vault

from notevault.engine import RunOptions, execute
from notevault.vault import Vault
from notevault.writer import clean_notes

GOOD = "# Good {n}\n\n```python run id=good{n}\nprint('good', {n})\n```\n"


def fence(code: str, tag: str = "python run") -> str:
    return f"```{tag}\n{code}\n```\n"


BAD_BLOCKS = {
    "segfault.md": fence("import ctypes\nctypes.string_at(0)"),
    "exit.md": fence("import os\nos._exit(7)"),
    "memory.md": fence("chunks = []\nwhile True:\n    chunks.append(torch.ones(2**25))"),
    "orphan.md": fence("import os, time\nif os.fork() == 0:\n    time.sleep(600)\n    os._exit(0)\nprint('forked')"),
    "hang.md": fence("while True:\n    pass", "python run timeout=2"),
    "loud.md": fence("import sys\nsys.stdout.write('y' * 50_000_000)\nprint()"),
}
BAD_NOTES = {
    "latin1.md": "caf\xe9 ```python run\nprint(1)\n```\n".encode("latin-1"),
    "frontmatter.md": "---\ntitle: [oops\n---\n" + fence("print('never')"),
    "unclosed.md": "# Unclosed\n\n```python run\nprint('no end')\n",
}


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*.md")}


@pytest.fixture
def faulty_vault(tmp_path):
    files: dict[str, str | bytes] = {f"good{n}.md": GOOD.format(n=n) for n in range(4)}
    files.update(BAD_BLOCKS)
    files.update(BAD_NOTES)
    files["notevault.yaml"] = "memory_limit_mb: 3072\n"
    return make_vault(tmp_path / "vault", files)


def test_every_fault_is_contained(faulty_vault):
    before = snapshot(faulty_vault)
    started = time.monotonic()
    report = execute(Vault(faulty_vault), [faulty_vault], RunOptions(jobs=2))
    assert time.monotonic() - started < 60
    by_note = {Path(n.path).name: n for n in report.notes}
    for n in range(4):
        (block,) = by_note[f"good{n}.md"].blocks
        assert (block.status, block.output) == ("passed", f"good {n}\n")
        assert f"> good {n}" in (faulty_vault / f"good{n}.md").read_text()
    status = {name: by_note[name].blocks[0] for name in BAD_BLOCKS}
    assert status["segfault.md"].error == "worker crashed: segmentation fault (SIGSEGV)"
    assert status["exit.md"].error.startswith("worker exited with status 7")
    assert status["memory.md"].status == "failed"
    assert "memory" in status["memory.md"].error.lower() or "alloc" in status["memory.md"].error.lower()
    assert status["orphan.md"].status == "passed"
    assert status["hang.md"].error == "timed out after 2 s"
    assert status["loud.md"].status == "passed" and len(status["loud.md"].output) < 1_100_000
    assert [f.rule for f in by_note["latin1.md"].lint] == ["unreadable"]
    assert by_note["latin1.md"].lint[0].message.startswith("not valid UTF-8 (byte 0xe9")
    assert [(b.status, b.error) for b in by_note["frontmatter.md"].blocks] == [
        ("skipped", "not run: the note's front matter is broken")]
    assert [(b.status, b.error) for b in by_note["unclosed.md"].blocks] == [
        ("failed", "the code fence is never closed")]
    # no note lost a byte: cleaning the results gives every note back exactly
    clean_notes(Vault(faulty_vault), [faulty_vault])
    assert snapshot(faulty_vault) == before
    # the loud block's note holds a readable, cut result, not 50 MB
    assert len(before["loud.md"]) < 200


def test_a_note_deleted_during_the_run_is_not_recreated(tmp_path):
    root = make_vault(tmp_path, {"gone.md": fence("import time\ntime.sleep(2)"), "stays.md": fence("print('ok')")})
    runner = subprocess.Popen([sys.executable, "-m", "notevault", "run", "--jobs", "2", str(root)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.2)
    (root / "gone.md").unlink()
    output, _ = runner.communicate(timeout=60)
    assert not (root / "gone.md").exists()
    assert "gone.md: warning: results not written" in output
    assert "> ok" in (root / "stays.md").read_text()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupting_a_run_leaves_cache_and_notes_consistent(tmp_path, sig, code):
    files = {f"n{n}.md": fence(f"import time\ntime.sleep({0.2 if n < 2 else 30})\nprint({n})") for n in range(5)}
    root = make_vault(tmp_path, files)
    before = snapshot(root)
    runner = subprocess.Popen([sys.executable, "-m", "notevault", "run", "--jobs", "2", str(root)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while "%% notevault" not in (root / "n0.md").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    runner.send_signal(sig)
    runner.communicate(timeout=30)
    assert runner.returncode == code
    for name, data in before.items():
        text = (root / name).read_text()
        assert text.startswith(data.decode()) and (text == data.decode() or "%% notevault" in text)
    lines = (root / ".notevault" / "cache.jsonl").read_text().splitlines()
    assert lines and all(json.loads(line)[1]["status"] == "passed" for line in lines)  # whole, never torn
    assert not list(root.rglob("*.tmp"))
    time.sleep(1.0)
    leftovers = subprocess.run(["pgrep", "-f", f"sleep\\(30\\)|{root}"], capture_output=True, text=True).stdout
    assert leftovers.strip() == ""
    clean_notes(Vault(root), [root])
    assert snapshot(root) == before


def test_nothing_is_written_outside_the_vault(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text(fence("print('outside')"))
    root = make_vault(tmp_path / "vault", {"n.md": fence(
        "import matplotlib.pyplot as plt\nplt.plot([1, 2])", "python run id=../../escape")
        .replace("id=../../escape", "id=..") + "\n" + fence("print('in')")},
        app={"attachmentFolderPath": "../outside"})
    os.symlink(outside / "secret.md", root / "link.md")
    report = execute(Vault(root), [root], RunOptions())
    assert [p.name for p in outside.iterdir()] == ["secret.md"]
    assert (outside / "secret.md").read_text() == fence("print('outside')")
    assert (root / "link.md").is_symlink()
    by_note = {Path(n.path).name: n for n in report.notes}
    assert [f.rule for f in by_note["link.md"].lint] == ["outside-vault"]
    pngs = [p.relative_to(root).as_posix() for p in root.rglob("*.png")]
    assert len(pngs) == 1 and re.fullmatch(r"n-block-1-[0-9a-f]{6}\.png", pngs[0])  # id ".." is sanitised; the
    # attachment folder outside the vault is refused


def test_a_dead_worker_template_fails_the_running_note_and_the_rest_still_run(tmp_path):
    killer = "import os, signal, time\nos.kill(os.getppid(), signal.SIGKILL)  # the template forked us\ntime.sleep(10)"
    root = make_vault(tmp_path, {"a.md": fence(killer), "b.md": fence("print('b ran')")})
    report = execute(Vault(root), [root], RunOptions(write=False, jobs=1))
    a, b = (note.blocks[0] for note in report.notes)
    assert (a.status, a.error) == ("failed", "worker vanished: the worker template died")
    assert (b.status, b.output) == ("passed", "b ran\n")


def test_a_broken_torch_install_is_one_clear_error(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "torch.py").write_text("raise ImportError('this torch is broken')\n")
    root = make_vault(tmp_path / "vault", {"n.md": fence("print(1)")})
    env = {**os.environ, "PYTHONPATH": str(fake)}
    done = subprocess.run([sys.executable, "-m", "notevault", "run", str(root)], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 2
    assert "ImportError: this torch is broken" in done.stderr
    assert done.stderr.rstrip().endswith("notevault: error: the worker template could not start (exit status 1): "
                                         "its error is printed above; is torch installed and working?")
    assert (root / "n.md").read_text() == fence("print(1)")
