"""Writing the user's files safely: all at once, never over an edit made meanwhile, never a temp file left.

A note is written to a temp file beside it and renamed over it, so a reader (Obsidian, git, a sync tool) sees
the old note or the new one, never half of one. Right before the rename the note is read again: if it no
longer holds what notevault spliced onto, an editor saved it meanwhile, and the save wins.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

TEMP_PREFIX = ".notevault-"  # temp names: .notevault-<note name>.<random>.tmp
STALE_TEMP_SECONDS = 60.0  # older ones were left by a run that was killed

_UMASK = os.umask(0o022)
os.umask(_UMASK)


@dataclass(frozen=True)
class Source:
    """A file's bytes as read or written: size and time from the same open file, and the content hash."""

    size: int
    mtime_ns: int
    sha: str


def read_source(path: Path) -> tuple[bytes, Source]:
    """A file's bytes, and its size and time taken *before* reading: a save racing the read can only make
    the recorded time older than the content, so the next run reads the file again rather than trusting it."""
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        data = handle.read()
    return data, Source(info.st_size, info.st_mtime_ns, hashlib.sha256(data).hexdigest())


class Changed(Exception):
    """The file no longer holds what the caller expected: someone else wrote it meanwhile."""


def new_file_mode() -> int:
    """The mode the user's umask gives a new file, as their editor would create it."""
    return 0o666 & ~_UMASK


def writable(path: Path) -> bool:
    """May notevault write this file (and its folder, where the temp file goes)? A file without any write
    permission bit was made read-only on purpose: it is left alone even when running as root."""
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return False
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return True
    return bool(mode & 0o222) and os.access(path, os.W_OK)


def write_atomic(path: Path, content: str | bytes, *, expected: bytes | None = None) -> Source:
    """Replace a file's content all at once, keeping its mode (a new file gets the umask's); return what was
    written, with the size and time it has at ``path`` (a rename keeps them).

    With ``expected``, the file must hold exactly those bytes right before the rename, else ``Changed`` is
    raised and nothing is written.
    """
    data = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
    mode = path.stat().st_mode & 0o7777 if path.exists() else new_file_mode()
    _remove_stale_temps(path)
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            info = os.fstat(fd)
        finally:
            os.close(fd)
        os.chmod(temp, mode)
        if expected is not None and _current(path) != expected:
            raise Changed(str(path))
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return Source(info.st_size, info.st_mtime_ns, hashlib.sha256(data).hexdigest())


def _current(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


_swept: set[str] = set()  # folders already rid of old temp files by this process


def _remove_stale_temps(path: Path) -> None:
    """Temp files left in this folder by a killed run (a fresh one may belong to a run going on now); once per
    folder per process, not once per note written."""
    folder = str(path.parent)
    if folder in _swept:
        return
    _swept.add(folder)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        if entry.name.startswith(TEMP_PREFIX) and entry.name.endswith(".tmp"):
            try:
                if now - entry.stat().st_mtime > STALE_TEMP_SECONDS:
                    os.unlink(entry.path)
            except OSError:
                pass
