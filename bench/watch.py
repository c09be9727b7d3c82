"""Watch latency: from the save of a note with one trivial block to its result callout on disk.

    python bench/watch.py

Median over 20 saves with warm workers, at the default debounce (0.2 s: a burst of saves settles first)
and at --debounce 0.05.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import emit

SAVES = 20


def latencies(debounce: float) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / ".obsidian").mkdir()
        note = root / "note.md"
        note.write_text("```python run\nprint('warm up')\n```\n")
        watcher = subprocess.Popen([sys.executable, "-m", "notevault", "watch", str(root), "--debounce", str(debounce)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while "warm up" not in note.read_text().split("```\n", 1)[-1] and time.monotonic() < deadline:
                time.sleep(0.01)
            results = []
            for n in range(SAVES):
                expected = f"> saved {n}\n"
                start = time.perf_counter()
                note.write_text(f"```python run\nprint('saved {n}')\n```\n")
                while expected not in note.read_text():
                    if time.perf_counter() - start > 30:
                        raise RuntimeError("no result within 30 s")
                    time.sleep(0.002)
                results.append(time.perf_counter() - start)
                time.sleep(0.3)  # a person does not save twenty times a second
            return results
        finally:
            watcher.terminate()
            watcher.wait(timeout=20)


def main() -> None:
    rows = []
    for debounce in (0.2, 0.05):
        values = latencies(debounce)
        rows.append((f"--debounce {debounce} (median of {SAVES} saves)",
                     f"{statistics.median(values) * 1000:.0f} ms (min {min(values) * 1000:.0f}, "
                     f"max {max(values) * 1000:.0f}; goal ≤ 250 ms at the default debounce)"))
    emit("watch latency: save → result callout on disk", rows)


if __name__ == "__main__":
    main()
