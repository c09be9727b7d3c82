"""What notevault last verified, per note, so that a note whose inputs are unchanged is not read again.

``.notevault/index-{run,frozen,lint}.json`` (one per kind of question) keeps, per note: the size and modification
time it was read at, its content hash and the named sessions that content takes part in; and per question asked of
it (``run``, ``check --frozen``, with the settings that shape the answer) the answer and what the answer rested on
when it was given: the vault modules its blocks import (and the places they could appear), figure files, the notes
its formulas come from and how the vault resolved them, and the notes of its sessions. A note is answered from the
index only if all of that still holds, checked with a ``stat`` per file like a build tool. A note modified within
two seconds of the index's save is hashed again (its timestamp cannot tell two edits apart).

It is a cache: a missing, corrupt or foreign index costs time, never correctness, and it is replaced
atomically, so a crash leaves the old or the new one. An index written by other notevault code (another version,
or an edited checkout) is foreign: its answers were worked out by that code.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .cache import make_cache_folder
from .files import Source, write_atomic
from .options import code_version
from .tags import sessions_named

INDEX_FOLDER = Path(".notevault")
FORMAT = 2
RACY_NS = 2_000_000_000


def file_state(path: Path) -> str | None:
    """What a file a verdict depends on is now: "size time hash", or None when it is absent."""
    try:
        info = os.stat(path)
        return state_of(info, path.read_bytes())
    except OSError:
        return None


def state_of(info: os.stat_result, data: bytes) -> str:
    """A file's state from its stat (taken before reading: a write after it changes the time) and its bytes."""
    return f"{info.st_size} {info.st_mtime_ns} {hashlib.sha256(data).hexdigest()[:32]}"


def _same_file(path: Path, recorded: str | None) -> bool:
    """Unchanged: the same size and time, or else the same bytes (a copy, a checkout)."""
    try:
        info = os.stat(path)
    except OSError:
        return recorded is None
    if recorded is None:
        return False
    size, mtime, sha = recorded.split(" ")
    if info.st_size == int(size) and info.st_mtime_ns == int(mtime):
        return True
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:32] == sha
    except OSError:
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

    files: dict[str, str | None] = field(default_factory=dict)  # vault path -> file_state (None: absent)
    notes: dict[str, str | None] = field(default_factory=dict)  # another note's vault path -> its content hash
    sessions: list[str] = field(default_factory=list)  # named sessions the note takes part in
    links: list[list] = field(default_factory=list)  # the vault's answers to its links (Vault.answers_given)


def _well_formed(entry: object) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("sha"), str) and isinstance(entry.get("answers"), dict)
            and isinstance(entry.get("stat"), list) and len(entry["stat"]) == 2
            and isinstance(entry.get("sessions"), list)
            and all(isinstance(a, dict) and isinstance(a.get("files"), dict) and isinstance(a.get("notes"), dict)
                    and isinstance(a.get("members"), dict) for a in entry["answers"].values()))


class Index:
    """One kind of question's index of a vault (``run``, ``frozen``, ``lint``: each its own file, so a command
    loads only what it asks), loaded once per command and saved once at its end."""

    def __init__(self, root: Path, kind: str, notes: list[str], entries: dict[str, dict] | None = None,
                 saved_ns: int = 0, *, links_hold: Callable[[list[list], str], bool] | None = None) -> None:
        self.root = root
        self.links_hold = links_hold  # would the vault answer these link look-ups for this note the same now?
        self.notes = notes  # every note of the vault (vault paths): any of them may join a session
        self.path = root / INDEX_FOLDER / f"index-{kind}.json"
        self.entries: dict[str, dict] = entries or {}
        self.saved_ns = saved_ns
        self.changed = False
        self._hashes: dict[str, str | None] = {}  # vault path -> content hash now (None: gone), found this run
        self._members: dict[str, list[str]] | None = None
        self._pending: list[tuple[str, str, dict, Dependencies]] = []  # answers settled at save()
        self._files: dict[tuple[str, str | None], bool] = {}  # file checks made this run

    @classmethod
    def load(cls, root: Path, kind: str, notes: list[str], *,
             links_hold: Callable[[list[list], str], bool] | None = None) -> Index:
        try:
            data = json.loads((root / INDEX_FOLDER / f"index-{kind}.json").read_bytes())
            if data.get("format") != FORMAT or data.get("code") != code_version() or not isinstance(
                    data.get("notes"), dict):  # another notevault's answers: worked out by other code
                return cls(root, kind, notes, links_hold=links_hold)
            entries = {rel: entry for rel, entry in data["notes"].items() if _well_formed(entry)}
            return cls(root, kind, notes, entries, int(data.get("saved_ns", 0)), links_hold=links_hold)
        except (OSError, ValueError, TypeError, AttributeError):
            return cls(root, kind, notes, links_hold=links_hold)  # missing or corrupt: start afresh

    def save(self) -> None:
        self._settle()
        if not self.changed:
            return
        self.saved_ns = time.time_ns()
        text = json.dumps({"format": FORMAT, "code": code_version(), "saved_ns": self.saved_ns, "notes": self.entries},
                          ensure_ascii=False, separators=(",", ":"))
        try:
            make_cache_folder(self.path.parent)
            write_atomic(self.path, text)
        except OSError:
            pass  # a read-only vault still works; it is only slower next time
        self.changed = False

    # Asking ----------------------------------------------------------------------------------------------

    def answer(self, rel: str, question: str) -> dict | None:
        """The stored verdict for ``question`` about the note at ``rel``, if nothing it rests on changed."""
        entry = self.entries.get(rel)
        if entry is None or question not in entry["answers"] or self.hash_now(rel) != entry["sha"]:
            return None
        given = entry["answers"][question]
        if not all(self._same_file(name, state) for name, state in given["files"].items()):
            return None
        if any(self.hash_now(name) != sha for name, sha in given["notes"].items()):
            return None
        if any(self.members(session) != members for session, members in given["members"].items()):
            return None
        links = given.get("links")
        if links and (self.links_hold is None or not isinstance(links, list) or not self.links_hold(links, rel)):
            return None
        return given["answer"]

    def _same_file(self, name: str, state: str | None) -> bool:
        if (name, state) not in self._files:
            self._files[name, state] = _same_file(self.root / name, state)
        return self._files[name, state]

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

    def members(self, session: str) -> list[str]:
        """The notes of the vault that may take part in a named session now: those the index knows to, and
        any new or changed note whose text names it (a text search: the note is not parsed)."""
        if self._members is None:
            found: dict[str, list[str]] = {}
            for rel in self.notes:
                entry = self.entries.get(rel)
                if entry is not None and self.hash_now(rel) == entry["sha"]:
                    names = entry["sessions"]
                else:
                    try:
                        names = sessions_named((self.root / rel).read_bytes())
                    except OSError:
                        continue
                for name in names:
                    found.setdefault(name, []).append(rel)
            self._members = {name: sorted(rels) for name, rels in found.items()}
        return self._members.get(session, [])

    # Recording -------------------------------------------------------------------------------------------

    def saw(self, rel: str, sha: str | None) -> None:
        """The content notevault used for a note in this run (as read, or as it wrote it)."""
        self._hashes[rel] = sha

    def record(self, rel: str, source: Source, question: str, answer: dict, depends: Dependencies) -> None:
        """Remember ``answer`` for the note as ``source`` describes it (its bytes when it was read or written).

        What it rests on among other notes (its sessions' notes, as they were used in this run) is settled
        when the index is saved, once every note of the run has been written.
        """
        entry = self.entries.get(rel)
        if entry is None or entry["sha"] != source.sha:
            entry = {"sha": source.sha, "answers": {}}
        entry["stat"] = [source.size, source.mtime_ns]
        entry["sessions"] = sorted(set(depends.sessions))
        self.entries[rel] = entry
        self.saw(rel, source.sha)
        self._pending.append((rel, question, answer, depends))
        self.changed = True

    def _settle(self) -> None:
        self._members = None  # notes' sessions may have changed in this run
        for rel, question, answer, depends in self._pending:
            entry = self.entries[rel]
            members = {name: self.members(name) for name in entry["sessions"]}
            notes = {**{m: self.hash_now(m) for names in members.values() for m in names if m != rel},
                     **{m: self.hash_now(m) for m in depends.notes}}
            entry["answers"][question] = {"answer": answer, "files": depends.files, "notes": notes,
                                          "members": members, **({"links": depends.links} if depends.links else {})}
        self._pending = []

    def forget(self, rel: str) -> None:
        if self.entries.pop(rel, None) is not None:
            self.changed = True
