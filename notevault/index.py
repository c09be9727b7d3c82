"""What notevault last verified, per note, so that a note whose inputs are unchanged is not read again.

``.notevault/index.json`` keeps, per note: the size and modification time it was read at and its content hash,
what its verdict depended on (snippet and figure files, other notes, named sessions), and the verdict itself,
one per kind of question (``run``, ``check --frozen``, ``lint``) and settings that shape the answer. A note is
answered from the index only if all of that still holds: a ``stat`` per file, like a build tool. A note
modified within two seconds of the index's save is hashed again (its timestamp cannot tell two edits apart).

It is a cache: a missing, corrupt or foreign index costs time, never correctness, and it is replaced
atomically, so a crash leaves the old or the new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from .files import Source, write_atomic

INDEX_FILE = Path(".notevault") / "index.json"
FORMAT = 1
RACY_NS = 2_000_000_000
SESSION_OPTION = re.compile(rb"\bsession=([A-Za-z0-9_.-]+)")


def file_state(path: Path) -> list | None:
    """What a file a verdict depends on is now: [size, time, content hash], or None when it is absent."""
    try:
        info = os.stat(path)
        return [info.st_size, info.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()]
    except OSError:
        return None


def _same_file(path: Path, recorded: list | None) -> bool:
    """Unchanged: the same size and time, or else the same bytes (a copy, a checkout)."""
    try:
        info = os.stat(path)
    except OSError:
        return recorded is None
    if recorded is None:
        return False
    if [info.st_size, info.st_mtime_ns] == recorded[:2]:
        return True
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == recorded[2]
    except (OSError, IndexError):
        return False


def _stat(path: Path) -> list[int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns]


@dataclass
class Dependencies:
    """What a note's verdict rests on besides the note itself."""

    files: dict[str, list | None] = field(default_factory=dict)  # vault path -> file_state (None: absent)
    notes: dict[str, str] = field(default_factory=dict)  # another note's vault path -> its content hash
    sessions: list[str] = field(default_factory=list)  # named sessions the note takes part in


def _well_formed(entry: object) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("sha"), str) and isinstance(entry.get("answers"), dict)
            and isinstance(entry.get("stat"), list) and len(entry["stat"]) == 2
            and isinstance(entry.get("files", {}), dict) and isinstance(entry.get("notes", {}), dict)
            and isinstance(entry.get("sessions", []), list))


class Index:
    """The index of one vault, loaded once per command and saved once at its end."""

    def __init__(self, root: Path, notes: list[str], entries: dict[str, dict] | None = None,
                 saved_ns: int = 0) -> None:
        self.root = root
        self.notes = notes  # every note of the vault (vault paths): any of them may join a session
        self.path = root / INDEX_FILE
        self.entries: dict[str, dict] = entries or {}
        self.saved_ns = saved_ns
        self.changed = False
        self._hashes: dict[str, str | None] = {}  # vault path -> content hash now (None: gone), found this run
        self._dirty_sessions: set[str] | None = None

    @classmethod
    def load(cls, root: Path, notes: list[str]) -> Index:
        try:
            data = json.loads((root / INDEX_FILE).read_bytes())
            if data.get("format") != FORMAT or not isinstance(data.get("notes"), dict):
                return cls(root, notes)
            entries = {rel: entry for rel, entry in data["notes"].items() if _well_formed(entry)}
            return cls(root, notes, entries, int(data.get("saved_ns", 0)))
        except (OSError, ValueError, TypeError, AttributeError):
            return cls(root, notes)  # missing or corrupt: start afresh

    def save(self) -> None:
        if not self.changed:
            return
        self.saved_ns = time.time_ns()
        text = json.dumps({"format": FORMAT, "saved_ns": self.saved_ns, "notes": self.entries},
                          ensure_ascii=False, separators=(",", ":"))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, text)
        except OSError:
            pass  # a read-only vault still works; it is only slower next time
        self.changed = False

    # Asking ----------------------------------------------------------------------------------------------

    def answer(self, rel: str, question: str) -> dict | None:
        """The stored verdict for ``question`` about the note at ``rel``, if nothing it rests on changed."""
        entry = self.entries.get(rel)
        if entry is None or question not in entry.get("answers", {}):
            return None
        if self.hash_now(rel) != entry["sha"]:
            return None
        if not all(_same_file(self.root / name, state) for name, state in entry.get("files", {}).items()):
            return None
        if any(self.hash_now(name) != sha for name, sha in entry.get("notes", {}).items()):
            return None
        if set(entry.get("sessions", ())) & self.dirty_sessions():
            return None
        return entry["answers"][question]

    def hash_now(self, rel: str) -> str | None:
        """The note's content hash now: from the index while its size and time are unchanged, else read."""
        if rel not in self._hashes:
            self._hashes[rel] = self._current_hash(rel)
        return self._hashes[rel]

    def _current_hash(self, rel: str) -> str | None:
        stat = _stat(self.root / rel)
        if stat is None:
            return None
        entry = self.entries.get(rel)
        if entry is not None and entry["stat"] == stat and stat[1] < self.saved_ns - RACY_NS:
            return entry["sha"]
        try:
            return hashlib.sha256((self.root / rel).read_bytes()).hexdigest()
        except OSError:
            return None

    def dirty_sessions(self) -> set[str]:
        """Named sessions one of whose notes changed or went, or that a new or changed note may now join
        (found by searching its text: the note is not parsed)."""
        if self._dirty_sessions is None:
            dirty: set[str] = set()
            for rel, entry in self.entries.items():
                if entry.get("sessions") and self.hash_now(rel) != entry["sha"]:
                    dirty.update(entry["sessions"])
            for rel in self.notes:
                entry = self.entries.get(rel)
                if entry is not None and self.hash_now(rel) == entry["sha"]:
                    continue
                try:
                    dirty.update(name.decode() for name in SESSION_OPTION.findall((self.root / rel).read_bytes()))
                except OSError:
                    continue
            self._dirty_sessions = dirty
        return self._dirty_sessions

    # Recording -------------------------------------------------------------------------------------------

    def record(self, rel: str, source: Source, question: str, answer: dict, depends: Dependencies) -> None:
        """Remember ``answer`` for the note as ``source`` describes it (its bytes when it was read or written)."""
        entry = self.entries.get(rel)
        if entry is None or entry["sha"] != source.sha:
            entry = {"sha": source.sha, "answers": {}}
        entry["stat"] = [source.size, source.mtime_ns]
        entry["files"] = {**entry.get("files", {}), **depends.files}
        entry["notes"] = {**entry.get("notes", {}), **depends.notes}
        entry["sessions"] = sorted(set(entry.get("sessions", ())) | set(depends.sessions))
        entry["answers"][question] = answer
        self.entries[rel] = entry
        self._hashes[rel] = source.sha
        self.changed = True

    def forget(self, rel: str) -> None:
        if self.entries.pop(rel, None) is not None:
            self.changed = True
