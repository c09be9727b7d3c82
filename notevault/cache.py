"""Block results stored under ``.notevault/cache/`` at the vault root, one JSON file per cache key.

Each file is written atomically as its result arrives, so a crash mid-run keeps what finished.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .results import BlockResult

CACHE_DIR = Path(".notevault") / "cache"


class Cache:
    def __init__(self, root: Path) -> None:
        self.folder = root / CACHE_DIR

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> BlockResult | None:
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
            return BlockResult.from_json(data)
        except (OSError, ValueError, TypeError, KeyError):
            return None  # missing or unreadable: run the block again

    def put(self, key: str, result: BlockResult) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp",
                                             encoding="utf-8") as handle:
                json.dump(result.to_json(), handle)
            os.replace(handle.name, path)
        except OSError:
            pass  # a read-only vault still runs; it just cannot remember
