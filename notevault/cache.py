"""Block results remembered under ``.notevault/`` at the vault root, keyed by the block's cache key.

An append-only log: one JSON line per result, written with a single ``write`` as the result arrives, so a crash
mid-run keeps every finished line and a torn last line is skipped when read. (One file per key with an atomic
rename cost ≈0.6 ms a block, more than running a small one.) Later lines win; the log is compacted when mostly
superseded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .files import write_atomic
from .results import BlockResult

CACHE_FILE = Path(".notevault") / "cache.jsonl"
COMPACT_AT = 1000  # lines; compact when fewer than half of them are still current
# Machine-specific results never belong in the user's repository: the folder ignores itself, as pytest's does.
GITIGNORE = "# created by notevault: its cache stays out of git\n*\n"


def make_cache_folder(folder: Path) -> None:
    """Create ``folder`` with a ``.gitignore`` holding ``*``; a folder that already exists is left as it is."""
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        return  # the user's, or an earlier run's: its .gitignore (or its absence) is theirs to keep
    (folder / ".gitignore").write_text(GITIGNORE, encoding="utf-8")


class Cache:
    def __init__(self, root: Path) -> None:
        self.path = root / CACHE_FILE
        self._entries: dict[str, dict] | None = None
        self._fd: int | None = None

    def _load(self) -> dict[str, dict]:
        if self._entries is None:
            self._entries, lines = {}, 0
            try:
                text = self.path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                text = ""
            for line in text.splitlines():
                try:
                    key, data = json.loads(line)
                except (ValueError, TypeError):
                    continue  # torn by a crash mid-write
                self._entries[key] = data
                lines += 1
            if lines > COMPACT_AT and lines > 2 * len(self._entries):
                self._compact()
        return self._entries

    def _compact(self) -> None:
        text = "".join(json.dumps([k, v], ensure_ascii=False) + "\n" for k, v in self._entries.items())
        try:
            write_atomic(self.path, text)
        except OSError:
            pass

    def get(self, key: str) -> BlockResult | None:
        data = self._load().get(key)
        if data is None:
            return None
        try:
            return BlockResult.from_json(data)
        except (ValueError, TypeError, KeyError):
            return None  # written by another version: run the block again

    def put(self, key: str, result: BlockResult) -> None:
        """Append a result to the log. It is not kept in memory too: a run asks the cache for results before it
        runs blocks, never for one it has just run, and a vault's results must not pile up in the CLI."""
        line = (json.dumps([key, result.to_json()], ensure_ascii=False) + "\n").encode("utf-8")
        try:
            if self._fd is None:
                make_cache_folder(self.path.parent)
                self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
                size = os.fstat(self._fd).st_size
                if size and os.pread(self._fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # end a line torn by a crash, so that ours is whole
            os.write(self._fd, line)  # one write with O_APPEND: lines of two processes never interleave
        except OSError:
            pass  # a read-only vault still runs; it just cannot remember

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
