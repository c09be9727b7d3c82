"""The vault: its root, its Obsidian settings, its files, and link targets resolved the way Obsidian does."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import posixpath
import subprocess
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from .config import Config, load_config
from .errors import ConfigError, NoteError, UsageError
from .tags import FORMULA_REF

if TYPE_CHECKING:  # notes are parsed on demand: a run answered from the index never loads the parser
    from .note import Note

CONFIG_FILE = "notevault.yaml"
PARSED_KEPT = 256


@dataclass(frozen=True)
class ObsidianSettings:
    """What notevault reads of ``.obsidian/``; Obsidian's own defaults where a key is missing."""

    attachment_folder: str = "/"  # "/" vault root, "./" note's folder, "./sub", or "X/Y"
    use_markdown_links: bool = False
    new_link_format: str = "shortest"
    templates_folder: str | None = None


def ignored(name: str) -> bool:
    """Obsidian leaves out dot-files and dot-folders (.obsidian, .git, .venv, .trash, our .notevault …)."""
    return name.startswith(".")


def find_root(path: Path) -> Path:
    """The nearest folder at or above ``path`` holding ``.obsidian/``; without one, the given folder.

    Walked up from the path as given, not from where a symbolic link points: a link to outside the vault
    belongs to the vault it sits in (which then refuses it), never to the folder it points into.
    """
    start = Path(os.path.abspath(path))
    folder = start if start.is_dir() and not start.is_symlink() else start.parent
    for candidate in (folder, *folder.parents):
        if (candidate / ".obsidian").is_dir():
            return candidate
    return folder


def display_path(path: Path | str) -> str:
    """Paths in reports are relative to the current folder (SPEC §7)."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Selection:
    """The notes a command works on, and the ones it must leave alone (links to files outside the vault)."""

    notes: list[Path]
    outside: list[Path]


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


def _digest_of(*paths: Path) -> str:
    """One hash of these files' bytes (a missing file counts as absent, not empty)."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"\0absent")
        digest.update(b"\0")
    return digest.hexdigest()


def _boolean(settings: dict, key: str, path: Path) -> bool:
    value = settings.get(key, False)
    if not isinstance(value, bool):  # bool("no") would be True
        raise ConfigError(f"{key} must be true or false, not {json.dumps(value)}", path)
    return value


def read_obsidian_settings(root: Path) -> ObsidianSettings:
    app = _read_json(root / ".obsidian" / "app.json")
    templates = _read_json(root / ".obsidian" / "templates.json")
    folder = templates.get("folder")
    return ObsidianSettings(
        attachment_folder=str(app.get("attachmentFolderPath", "/")) or "/",
        use_markdown_links=_boolean(app, "useMarkdownLinks", root / ".obsidian" / "app.json"),
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
        if rel and not any(ignored(part) for part in rel.split("/")) and os.path.lexists(path) and not path.is_dir():
            files.append(rel)
    return files


class Vault:
    """A vault root with its settings and an index of its files (paths relative to the root, posix form).

    With ``git``, the index holds only the files git tracks (see ``tracked_files``).
    """

    def __init__(self, root: Path, *, git: bool = False) -> None:
        self.root = Path(os.path.abspath(root))
        self.real_root = self.root.resolve()  # where its files really are: nothing outside is read or written
        self.git = git
        self.settings = read_obsidian_settings(root)
        self.config: Config = load_config(root / CONFIG_FILE)
        self.settings_digest = _digest_of(root / CONFIG_FILE, root / ".obsidian" / "app.json",
                                          root / ".obsidian" / "templates.json")
        self.files: list[str] = []
        self.by_name: dict[str, list[str]] = defaultdict(list)
        self._parsed: OrderedDict[str, Note | NoteError] = OrderedDict()
        self._anchors: dict[str, tuple[tuple[str, ...], frozenset[str]] | None] = {}
        self._recording = threading.local()  # lookups are recorded per thread: the planner reads notes meanwhile
        self.links: set[str] = set()  # files that are symbolic links
        self._display_prefix: str | None = None
        self._index()

    @classmethod
    def discover(cls, path: Path, *, git: bool = False) -> Vault:
        if not os.path.lexists(path):
            raise UsageError(f"no such file or folder: {path}")
        return cls(find_root(path), git=git)

    @classmethod
    def of_paths(cls, paths: list[Path], *, git: bool = False) -> Vault:
        """The one vault holding every path; a usage error if they span two vaults (never dropped silently)."""
        vault = cls.discover(paths[0], git=git)
        for path in paths[1:]:
            if not os.path.lexists(path):
                raise UsageError(f"no such file or folder: {path}")
            other = find_root(path)
            if other != vault.root:
                raise UsageError(f"{path} is in another vault ({display_path(other)}) than {paths[0]} "
                                 f"({display_path(vault.root)}): run notevault once per vault")
        return vault

    def _index(self) -> None:
        for rel in tracked_files(self.root) if self.git else self._walk():
            self.files.append(rel)
            self.by_name[posixpath.basename(rel).casefold()].append(rel)
        self._file_set = {f.casefold(): f for f in self.files}
        self.files_digest = hashlib.sha256("\n".join(self.files).encode("utf-8", "surrogatepass")).hexdigest()

    def _walk(self, folder: str = "") -> Iterator[str]:
        """Files below the root in sorted order, as os.walk lists them (links to folders are not followed);
        files that are symbolic links are noted in ``links``: only those can point outside the vault."""
        try:
            entries = sorted(os.scandir(self.root / folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if ignored(entry.name):
                continue
            rel = f"{folder}/{entry.name}" if folder else entry.name
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(rel)
            elif entry.is_dir() and entry.is_symlink():
                continue  # a link to a folder: not followed, as os.walk would not
            else:
                if entry.is_symlink():
                    self.links.add(rel)
                yield rel

    @property
    def lookups(self) -> list[list] | None:
        """While set (on this thread), every link resolution, suggestion and note read is recorded: what a lint
        verdict rests on."""
        return getattr(self._recording, "lookups", None)

    @lookups.setter
    def lookups(self, value: list[list] | None) -> None:
        self._recording.lookups = value

    def display(self, rel: str) -> str:
        """A vault path as reports show it: relative to the current folder (``display_path``, without asking
        the file system for every note)."""
        if self._display_prefix is None:
            prefix = display_path(self.root)
            self._display_prefix = "" if prefix == "." else prefix + os.sep
        return self._display_prefix + rel.replace("/", os.sep)

    def relative(self, path: Path) -> str:
        """The vault-relative posix path of a note found by ``notes()`` (or of any path inside the vault)."""
        absolute = os.path.abspath(path)
        inside = os.path.join(str(self.root), "")
        if absolute.startswith(inside):  # string work: pathlib's relative_to is most of a no-change run's time
            return absolute[len(inside):].replace(os.sep, "/")
        return Path(path).resolve().relative_to(self.real_root).as_posix()

    def is_excluded(self, rel: str) -> bool:
        return any(fnmatch.fnmatch(rel, pattern) for pattern in self.config.exclude)

    def is_template(self, rel: str) -> bool:
        folder = self.settings.templates_folder
        return bool(folder) and (rel == folder or rel.startswith(folder + "/"))

    def notes(self, paths: list[Path], *, templates: bool = True) -> Selection:
        """The ``.md`` notes under the given files and folders, in vault path order.

        Dot-folders and ``exclude`` patterns are left out, and with ``templates=False`` the templates folder
        (running a template would put results into every note made from it). A note that is a symbolic link to
        a file outside the vault is listed in ``outside``: notevault never reads or writes outside the vault.
        """
        found: dict[str, Path] = {}
        outside: list[Path] = []
        for path in paths:
            if not os.path.lexists(path):
                raise UsageError(f"no such file or folder: {path}")
            given = self._as_walked(Path(os.path.abspath(path)))
            if not given.is_relative_to(self.root):
                raise UsageError(f"{path} is not inside the vault at {display_path(self.root)}")
            rels = [given.relative_to(self.root).as_posix()] if not given.is_dir() else [
                rel for rel in self.files
                if rel.endswith(".md") and (given == self.root or (self.root / rel).is_relative_to(given))
                and not self.is_excluded(rel)]
            for rel in rels:
                if not templates and self.is_template(rel):
                    continue
                note = self.root / rel
                if (rel in self.links or not given.is_dir()) and not note.resolve().is_relative_to(self.real_root):
                    outside.append(note)
                elif self._file_set.get(rel.casefold()) == rel or note.is_file():
                    found[rel] = note
        return Selection([found[rel] for rel in sorted(found)], outside)

    def _as_walked(self, given: Path) -> Path:
        """A path reached through a link to a folder of the vault, named as the vault's walk names it (links to
        folders are not followed), so a note has one path, and so one identity and one run hash."""
        folder = given if given.is_dir() else given.parent
        real = Path(os.path.realpath(folder))
        if real == folder or not real.is_relative_to(self.real_root):
            return given  # no link on the way (the common case), or a link out of the vault: notes() reports it
        walked = self.root / real.relative_to(self.real_root)
        return walked if given.is_dir() else walked / given.name

    def templates(self) -> list[Path]:
        folder = self.settings.templates_folder
        if not folder:
            return []
        return [self.root / f for f in self.files if f.startswith(folder + "/") and f.endswith(".md")]

    def note(self, rel: str) -> Note | NoteError:
        """The parsed note at a vault-relative path, or the error that stopped it.

        The last few hundred are kept parsed (templates, notes others link to): a vault of thousands of notes
        is never held in memory at once.
        """
        if self.lookups is not None:
            self.lookups.append(["note", rel])
        return self._note(rel)

    def _note(self, rel: str) -> Note | NoteError:
        if rel in self._parsed:
            self._parsed.move_to_end(rel)
        else:
            from .note import read_note

            try:
                note = self._parsed[rel] = read_note(self.root / rel)
                self._anchors[rel] = (tuple(h.title for h in note.headings), note.block_ids)
            except NoteError as exc:
                self._parsed[rel] = exc
            if len(self._parsed) > PARSED_KEPT:
                self._parsed.popitem(last=False)
        return self._parsed[rel]

    def anchors(self, rel: str) -> tuple[tuple[str, ...], frozenset[str]] | None:
        """A note's heading titles and ``^block`` ids, what links into it can name (None: unreadable).

        Kept for every note asked about: far smaller than the note, and asked for again and again by the notes
        that link to it.
        """
        if self.lookups is not None:
            self.lookups.append(["note", rel])
        if rel not in self._anchors:
            note = self._note(rel)
            self._anchors[rel] = None if isinstance(note, NoteError) else (
                tuple(h.title for h in note.headings), note.block_ids)
        return self._anchors[rel]

    def formula(self, note: Note, rel: str, ref: str) -> str | None:
        """The LaTeX of the display formula ``ref`` names (``ID`` in the note, ``Note#^ID`` in another)."""
        match = FORMULA_REF.match(ref)
        if not match:
            return None
        target: Note | NoteError | None = note
        if match["note"]:
            target_rel = self.resolve(match["note"], rel, wiki=True)
            target = self.note(target_rel) if target_rel else None
        if target is None or isinstance(target, NoteError):
            return None
        return next((m.latex for m in target.maths if m.block_id == match["id"]), None)

    def has_file(self, rel: str) -> bool:
        """Whether the file is there as a clone would have it: on disk, and with ``--git`` also tracked."""
        return (self.root / rel).is_file() and (not self.git or self._file_set.get(rel.casefold()) == rel)

    def forget(self, rel: str) -> None:
        """Drop a parsed note so the next ``note()`` reads the file again (it changed on disk, or is done)."""
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
        found = self._resolve(target, note_rel, wiki)
        if self.lookups is not None:
            self.lookups.append(["resolve", target, note_rel, wiki, found])
        return found

    def _resolve(self, target: str, note_rel: str, wiki: bool) -> str | None:
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
        found = self._closest(candidates, note_rel) if candidates else None
        if self.lookups is not None:
            self.lookups.append(["suggest", target, note_rel, found])
        return found

    @staticmethod
    def answers_given(lookups: list[list], note_rel: str) -> list[list]:
        """The link look-ups recorded while ``note_rel`` was linted, each once, as ``still_answers`` takes them."""
        kept: dict[str, list] = {}
        for lookup in lookups:
            if lookup[0] == "resolve" and lookup[2] == note_rel:
                kept.setdefault(repr(lookup), ["r", lookup[1], lookup[3], lookup[4]])
            elif lookup[0] == "suggest" and lookup[2] == note_rel:
                kept.setdefault(repr(lookup), ["s", lookup[1], lookup[3]])
            elif lookup[0] != "note":  # asked for another note (a formula's note link): kept whole
                kept.setdefault(repr(lookup), lookup)
        return list(kept.values())

    def still_answers(self, given: list[list], note_rel: str) -> bool:
        """Would this vault give the same answers to these look-ups (see ``answers_given``)?"""
        for lookup in given:
            kind = lookup[0]
            if kind == "r" and self._resolve(lookup[1], note_rel, lookup[2]) != lookup[3]:
                return False
            if kind == "s" and self.suggest(lookup[1], note_rel) != lookup[2]:
                return False
            if kind == "resolve" and self._resolve(lookup[1], lookup[2], lookup[3]) != lookup[4]:
                return False
            if kind == "suggest" and self.suggest(lookup[1], lookup[2]) != lookup[3]:
                return False
        return True

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
