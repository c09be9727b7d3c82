"""The few errors notevault raises; each knows the file and line it is about (cog's habit)."""

from __future__ import annotations

from pathlib import Path


class NotevaultError(Exception):
    """Base error: formats itself as ``path:line: message``."""

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        return where + self.message


class UsageError(NotevaultError):
    """Bad command line or bad configuration: exit status 2."""


class ConfigError(UsageError):
    """``notevault.yaml`` or ``.obsidian`` settings that cannot be used."""


class SetupError(UsageError):
    """The Python environment cannot run blocks (torch missing or broken): exit status 2."""


class NoteError(NotevaultError):
    """A note that cannot be read or parsed (encoding, front matter)."""
