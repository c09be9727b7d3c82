"""Watch mode, driven as a user drives it: a real `notevault watch` process on a real folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import make_vault


class WatchProcess:
    def __init__(self, root: Path, *options: str, stderr=subprocess.STDOUT) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "notevault", "watch", str(root), "--debounce", "0.3", *options],
            stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out; watch printed: {self.lines}")

    def descendants(self) -> set[int]:
        found, frontier = set(), [self.process.pid]
        while frontier:
            pid = frontier.pop()
            for task in Path(f"/proc/{pid}/task").glob("*"):
                try:
                    children = (task / "children").read_text().split()
                except OSError:
                    continue
                for child in map(int, children):
                    if child not in found:
                        found.add(child)
                        frontier.append(child)
        return found

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=20)


@pytest.fixture
def watcher(tmp_path):
    root = make_vault(tmp_path / "vault", {"start.md": "```python run\nprint('hi')\n```\n"})
    process = WatchProcess(root)
    process.wait_for(lambda: any(line.startswith("watching") for line in process.lines))
    yield root, process
    if process.process.poll() is None:
        os.killpg(process.process.pid, signal.SIGKILL)


def lines_about(process: WatchProcess, name: str) -> list[str]:
    return [line for line in process.lines if f"{name}:" in line and " run, " in line]


def test_results_appear_after_a_save_and_only_changed_blocks_rerun(watcher):
    root, process = watcher
    note = root / "n.md"
    note.write_text("```python run id=a\nx = 1\n```\n\n```python run id=b\nprint(x + 1)\n```\n\n"
                    "```python run id=c isolated\nprint('alone')\n```\n")
    process.wait_for(lambda: "%% notevault id=b" in note.read_text())
    assert "> 2\n" in note.read_text()
    first = process.wait_for(lambda: lines_about(process, "n.md"))
    assert " 3 run, 0 cached, 0 failed" in first[0]
    # edit block b: it runs again (block a only replays, c is untouched)
    note.write_text(note.read_text().replace("print(x + 1)", "print(x + 41)"))
    process.wait_for(lambda: "> 42\n" in note.read_text())
    second = process.wait_for(lambda: len(lines_about(process, "n.md")) >= 2 and lines_about(process, "n.md"))
    assert " 1 run, 2 cached, 0 failed" in second[1]
    time.sleep(1.0)  # our own write must not trigger another run
    assert len(lines_about(process, "n.md")) == 2


def test_a_burst_of_saves_leads_to_one_run(watcher):
    root, process = watcher
    note = root / "burst.md"
    for n in range(5):
        tmp = root / f".burst.md.{n}.tmp"  # editors save via a temp file and a rename
        tmp.write_text(f"```python run\nprint({n})\n```\n")
        os.replace(tmp, note)
        time.sleep(0.05)
    process.wait_for(lambda: "> 4\n" in note.read_text())
    time.sleep(1.0)
    assert len(lines_about(process, "burst.md")) == 1


def test_a_failing_note_and_a_deleted_note_are_reported_and_watching_goes_on(watcher):
    root, process = watcher
    bad = root / "bad.md"
    bad.write_text("```python run timeout=1\nimport time\ntime.sleep(30)\n```\n")
    process.wait_for(lambda: any("bad.md:1: L1: timed out after 1 s" in line for line in process.lines))
    bad.unlink()
    process.wait_for(lambda: any(line.endswith("bad.md: deleted") for line in process.lines))
    good = root / "good.md"
    good.write_text("```python run\nprint('still watching')\n```\n")
    process.wait_for(lambda: "> still watching" in good.read_text())


def test_ctrl_c_stops_cleanly_with_no_worker_left(watcher):
    root, process = watcher
    note = root / "slow.md"
    note.write_text("```python run\nimport time\ntime.sleep(30)\n```\n")
    workers = process.wait_for(lambda: process.descendants())
    time.sleep(1.0)
    workers |= process.descendants()
    assert process.stop() == 0
    assert any(line == "stopped" for line in process.lines) or process.wait_for(lambda: "stopped" in process.lines)

    def alive():
        return [(pid, Path(f"/proc/{pid}/cmdline").read_bytes()) for pid in workers
                if Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"]

    deadline = time.monotonic() + 5  # the worker template exits when it sees its parent's pipe close
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive() == []
    assert note.read_text() == "```python run\nimport time\ntime.sleep(30)\n```\n"  # nothing half-written


def test_format_json_prints_one_report_per_run_on_stdout(tmp_path):
    root = make_vault(tmp_path / "vault", {"start.md": "```python run\nprint('hi')\n```\n"})
    process = WatchProcess(root, "--format", "json", stderr=subprocess.DEVNULL)
    try:
        process.wait_for(lambda: process.lines)
        (root / "second.md").write_text("```python run id=two\n1 / 0\n```\n")
        process.wait_for(lambda: len(process.lines) >= 2)
        first, second = (json.loads(line) for line in process.lines[:2])
        assert [n["path"] for n in first["notes"]] == [os.path.relpath(root / "start.md")]
        assert first["summary"]["passed"] == 1
        assert [(n["path"], [(b["id"], b["status"], b["error"]) for b in n["blocks"]]) for n in second["notes"]] == [
            (os.path.relpath(root / "second.md"), [("two", "failed", "ZeroDivisionError: division by zero")])]
    finally:
        os.killpg(process.process.pid, signal.SIGKILL)


@pytest.mark.parametrize(("files", "edited", "old", "new", "note", "before", "after"), [
    ({"snippets/util.py": "def f():\n    return 1\n",
      "notes/a.md": "```python run\nfrom util import f\nprint(f())\n```\n"},
     "snippets/util.py", "return 1", "return 2", "notes/a.md", "> 1\n", "> 2\n"),
    ({"notes/helper.py": "def g():\n    return 10\n",
      "notes/b.md": "```python run\nfrom helper import g\nprint(g())\n```\n"},
     "notes/helper.py", "return 10", "return 20", "notes/b.md", "> 10\n", "> 20\n"),
    ({"01 a.md": "```python run session=s\nshared = 41\n```\n",
      "02 b.md": "```python run session=s\nprint(shared + 1)\n```\n"},
     "01 a.md", "shared = 41", "shared = 99", "02 b.md", "> 42\n", "> 100\n"),
], ids=["snippet", "module-next-to-the-note", "earlier-note-of-the-session"])
def test_saving_a_file_a_note_rests_on_reruns_the_note(tmp_path, files, edited, old, new, note, before, after):
    root = make_vault(tmp_path / "vault", files)
    process = WatchProcess(root)
    try:
        process.wait_for(lambda: before in (root / note).read_text())  # brought up to date first
        (root / edited).write_text((root / edited).read_text().replace(old, new))
        process.wait_for(lambda: after in (root / note).read_text(), timeout=20)
    finally:
        os.killpg(process.process.pid, signal.SIGKILL)


def test_a_save_during_a_run_is_run_too(watcher):
    root, process = watcher
    note = root / "n.md"
    note.write_text("```python run\nimport time; time.sleep(3)\n```\n\n```python run\nprint('v1')\n```\n")
    process.wait_for(lambda: process.descendants())  # the run has started
    time.sleep(1.0)
    note.write_text(note.read_text().replace("'v1'", "'v2'"))  # saved while the sleep block runs
    process.wait_for(lambda: "> v2\n" in note.read_text(), timeout=20)


def test_a_settings_file_saved_half_typed_is_reported_and_watching_goes_on(watcher):
    root, process = watcher
    (root / "notevault.yaml").write_text("timeout: [\n")
    process.wait_for(lambda: any(line.endswith("notevault.yaml:2: not valid YAML: while parsing a flow node, expected "
                                               "the node content, but found '<stream end>'") for line in process.lines))
    (root / "notevault.yaml").write_text("timeout: 5\n")
    note = root / "later" / "new.md"
    note.parent.mkdir()
    note.write_text("```python run\nprint('after the fix')\n```\n")
    process.wait_for(lambda: "> after the fix" in note.read_text())


def test_a_module_saved_while_the_note_that_imports_it_runs_is_run_again(tmp_path):
    # The block has imported util (V = 1) when the user saves util.py (V = 2); the run writes "> 1". The save's
    # event brings a second run, but the index recorded util.py as it was when the note finished (already V = 2),
    # not as the run used it, so the note is answered as current and keeps "> 1"; `check` prints 2.
    marker = tmp_path / "imported"
    root = make_vault(tmp_path / "vault", {
        "snippets/util.py": "V = 1\n",
        "a.md": f"```python run\nimport time, util\nprint(util.V)\nopen({str(marker)!r}, 'w').close()\n"
                "time.sleep(3)\n```\n",
    })
    process = WatchProcess(root)
    try:
        process.wait_for(marker.exists)
        (root / "snippets" / "util.py").write_text("V = 2\n")  # saved while a.md's block sleeps
        process.wait_for(lambda: "> 1\n" in (root / "a.md").read_text())
        process.wait_for(lambda: "> 2\n" in (root / "a.md").read_text(), timeout=20)
    finally:
        os.killpg(process.process.pid, signal.SIGKILL)
