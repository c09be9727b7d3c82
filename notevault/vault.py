"""The vault: its root, its Obsidian settings, its files, and link targets resolved the way Obsidian does."""

from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .config import Config, load_config
from .errors import ConfigError, NoteError, UsageError
from .note import Note, read_note

IGNORED_DIRS = frozenset({".obsidian", ".trash", ".git", ".notevault"})
CONFIG_FILE = "notevault.yaml"


@dataclass(frozen=True)
class ObsidianSettings:
    """What notevault reads of ``.obsidian/``; Obsidian's own defaults where a key is missing."""

    attachment_folder: str = "/"  # "/" vault root, "./" note's folder, "./sub", or "X/Y"
    use_markdown_links: bool = False
    new_link_format: str = "shortest"
    templates_folder: str | None = None


def find_root(path: Path) -> Path:
    """The nearest folder at or above ``path`` holding ``.obsidian/``; without one, the given folder."""
    start = path.resolve()
    folder = start if start.is_dir() else start.parent
    for candidate in (folder, *folder.parents):
        if (candidate / ".obsidian").is_dir():
            return candidate
    return folder


def _read_json(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read Obsidian settings: {exc}", path) from None
    if not isinstance(data, dict):
        raise ConfigError("Obsidian settings must be a JSON object", path)
    return data


def read_obsidian_settings(root: Path) -> ObsidianSettings:
    app = _read_json(root / ".obsidian" / "app.json")
    templates = _read_json(root / ".obsidian" / "templates.json")
    folder = templates.get("folder")
    return ObsidianSettings(
        attachment_folder=str(app.get("attachmentFolderPath", "/")) or "/",
        use_markdown_links=bool(app.get("useMarkdownLinks", False)),
        new_link_format=str(app.get("newLinkFormat", "shortest")),
        templates_folder=str(folder).strip("/") if folder else None,
    )


def tracked_files(root: Path) -> list[str]:
    """The files in git's index under ``root``, relative to it, as the walk would list them (``--git``).

    pre-commit stashes unstaged changes but leaves untracked files on disk: judged by the index, a link to a file
    never ``git add``-ed is broken here, as it will be in a clone.
    """
    try:
        listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        reason = exc.stderr.decode(errors="replace").strip() if isinstance(exc, subprocess.CalledProcessError) else exc
        raise UsageError(f"--git: cannot list the files git tracks in {root}: {reason}") from None
    files = []
    for rel in os.fsdecode(listed).split("\0"):
        path = root / rel
        if rel and IGNORED_DIRS.isdisjoint(rel.split("/")[:-1]) and os.path.lexists(path) and not path.is_dir():
            files.append(rel)
    return files


class Vault:
    """A vault root with its settings and an index of its files (paths relative to the root, posix form).

    With ``git``, the index holds only the files git tracks (see ``tracked_files``).
    """

    def __init__(self, root: Path, *, git: bool = False) -> None:
        self.root = root
        self.git = git
        self.settings = read_obsidian_settings(root)
        self.config: Config = load_config(root / CONFIG_FILE)
        self.files: list[str] = []
        self.by_name: dict[str, list[str]] = defaultdict(list)
        self._parsed: dict[str, Note | NoteError] = {}
        self.outside: list[Path] = []  # notes left out by the last notes() call: links to outside the vault
        self._index()

    @classmethod
    def discover(cls, path: Path, *, git: bool = False) -> Vault:
        if not path.exists():
            raise UsageError(f"no such file or folder: {path}")
        return cls(find_root(path), git=git)

    def _index(self) -> None:
        for rel in tracked_files(self.root) if self.git else self._walk():
            self.files.append(rel)
            self.by_name[posixpath.basename(rel).casefold()].append(rel)
        self._file_set = {f.casefold(): f for f in self.files}

    def _walk(self) -> Iterator[str]:
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if d not in IGNORED_DIRS)
            rel_folder = Path(folder).relative_to(self.root).as_posix()
            for name in sorted(files):
                yield name if rel_folder == "." else f"{rel_folder}/{name}"

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix()

    def is_excluded(self, rel: str) -> bool:
        return any(fnmatch.fnmatch(rel, pattern) for pattern in self.config.exclude)

    def is_template(self, rel: str) -> bool:
        folder = self.settings.templates_folder
        return bool(folder) and (rel == folder or rel.startswith(folder + "/"))

    def notes(self, paths: list[Path]) -> list[Path]:
        """The ``.md`` notes under the given files and folders, sorted, without ignored folders.

        A note that is a symbolic link to a file outside the vault is left out (see ``outside``): notevault
        never reads or writes outside the vault.
        """
        found: dict[str, Path] = {}
        root = self.root.resolve()
        self.outside = []
        for path in paths:
            if not path.exists():
                raise UsageError(f"no such file or folder: {path}")
            resolved = path.resolve()
            if resolved.is_file():
                if resolved.is_relative_to(root):
                    found[str(resolved)] = resolved
                else:
                    self.outside.append(path)
                continue
            for rel in self.files:
                if not rel.endswith(".md") or self.is_excluded(rel):
                    continue
                candidate = (self.root / rel).resolve()
                if not candidate.is_relative_to(root):
                    if (self.root / rel).is_relative_to(resolved):
                        self.outside.append(self.root / rel)
                elif candidate.is_relative_to(resolved):
                    found[str(candidate)] = candidate
        return [found[key] for key in sorted(found)]

    def templates(self) -> list[Path]:
        folder = self.settings.templates_folder
        if not folder:
            return []
        return [self.root / f for f in self.files if f.startswith(folder + "/") and f.endswith(".md")]

    def note(self, rel: str) -> Note | NoteError:
        """The parsed note at a vault-relative path (parsed once), or the error that stopped it."""
        if rel not in self._parsed:
            try:
                self._parsed[rel] = read_note(self.root / rel)
            except NoteError as exc:
                self._parsed[rel] = exc
        return self._parsed[rel]

    def forget(self, rel: str) -> None:
        """Drop a parsed note so the next ``note()`` reads the file again (it changed on disk)."""
        self._parsed.pop(rel, None)

    # Link resolution ---------------------------------------------------------------------------------

    def _exists(self, rel: str) -> str | None:
        return self._file_set.get(rel.casefold())

    def _closest(self, candidates: list[str], note_rel: str) -> str:
        folder = posixpath.dirname(note_rel)

        def distance(candidate: str) -> tuple[int, int, str]:
            same = posixpath.dirname(candidate) == folder
            return (0 if same else 1, candidate.count("/"), candidate)

        return min(candidates, key=distance)

    def resolve(self, target: str, note_rel: str, *, wiki: bool) -> str | None:
        """The vault-relative file a link points to, or None. ``wiki`` for ``[[…]]`` links and embeds."""
        if not target:
            return note_rel  # [[#Heading]] points into the note itself
        names = [target]
        if wiki and not PurePosixPath(target).suffix:
            names = [target + ".md", target]
        note_folder = posixpath.dirname(note_rel)
        for name in names:
            for candidate in (posixpath.join(note_folder, name), name.lstrip("/")):
                normal = posixpath.normpath(candidate)
                if normal.startswith("../") or normal == "..":
                    continue  # Obsidian never links outside the vault
                if found := self._exists(normal):
                    return found
            if wiki or "/" not in name.strip("./"):
                attachment = self._exists(posixpath.normpath(posixpath.join(self.attachment_folder(note_rel), name)))
                if attachment:
                    return attachment
                by_name = self._by_suffix(name)
                if by_name:
                    return self._closest(by_name, note_rel)
        return None

    def _by_suffix(self, name: str) -> list[str]:
        """Files whose path ends with ``name`` (Obsidian resolves ``[[folder/Note]]`` by path suffix)."""
        base = posixpath.basename(name).casefold()
        matches = self.by_name.get(base, [])
        if "/" in name:
            suffix = "/" + name.strip("/").casefold()
            matches = [m for m in matches if ("/" + m.casefold()).endswith(suffix)]
        return matches

    def suggest(self, target: str, note_rel: str) -> str | None:
        """A file of the same name elsewhere in the vault, to offer when a link is broken."""
        base = posixpath.basename(target)
        candidates = self.by_name.get(base.casefold()) or self.by_name.get((base + ".md").casefold())
        return self._closest(candidates, note_rel) if candidates else None

    def attachment_folder(self, note_rel: str) -> str:
        """Vault-relative folder where Obsidian puts a note's new attachments ("" is the root)."""
        setting = self.settings.attachment_folder
        note_folder = posixpath.dirname(note_rel)
        if setting in ("/", ""):
            return ""
        if setting == "./" or setting == ".":
            return note_folder
        if setting.startswith("./"):
            return posixpath.normpath(posixpath.join(note_folder, setting[2:]))
        return setting.strip("/")
