"""Watch mode: each save brings the results of what it changed into the notes, moments later.

A watchdog observer reports changes anywhere in the vault; a burst of them (Obsidian saves every few seconds
while typing, editors save via temp file + rename) settles for ``debounce`` seconds before one run. What to run
is not guessed from which file changed: every run is a plain ``run`` of the watched path on a fresh look at the
vault, and the index answers every note whose inputs are unchanged without reading it. So an edited snippet, a
module next to a note, an earlier note of a session, a formula's note or ``notevault.yaml`` brings back exactly
the notes that rest on it, and a save that lands while its note runs is run next. notevault's own writes cause
one more run, which finds everything current. The worker template stays warm for the whole session.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from .engine import RunOptions, execute
from .errors import NotevaultError
from .report import to_json
from .results import NoteReport, Report
from .vault import Vault, display_path, ignored

SETTINGS = {".obsidian/app.json", ".obsidian/templates.json"}  # the only dot-folder files a run reads


class _Events(FileSystemEventHandler):
    """When the vault last changed, and which notes were deleted, from the observer's thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.changed_at: float | None = None
        self.deleted: list[Path] = []

    def _relevant(self, raw: str | bytes) -> Path | None:
        path = Path(os.fsdecode(raw))
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            return None
        if any(ignored(part) for part in rel.parts) and rel.as_posix() not in SETTINGS:
            return None  # .git, .notevault, our own temp files (".name.xxx.tmp") …
        return path

    def _touch(self, raw: str | bytes) -> Path | None:
        path = self._relevant(raw)
        if path is not None:
            with self.lock:
                self.changed_at = time.monotonic()
        return path

    def on_created(self, event: FileSystemEvent) -> None:
        self._touch(event.src_path)

    def on_modified(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._touch(event.src_path)

    def on_moved(self, event: FileSystemEvent) -> None:
        self._touch(event.src_path)
        self._touch(event.dest_path)

    def on_deleted(self, event: FileSystemEvent) -> None:
        path = self._touch(event.src_path)
        if path is not None and path.suffix == ".md":
            with self.lock:
                self.deleted.append(path)

    def settled(self, debounce: float) -> tuple[bool, list[Path]]:
        """Whether the vault changed and has been quiet for ``debounce`` seconds since; the notes deleted."""
        with self.lock:
            quiet = self.changed_at is not None and time.monotonic() - self.changed_at >= debounce
            if quiet:
                self.changed_at = None
            deleted, self.deleted = self.deleted, []
        return quiet, deleted


def _ran(report: NoteReport) -> bool:
    """Did this run do anything to the note worth a line: run a block, or warn?"""
    return any(not block.cached for block in report.blocks) or bool(report.warnings)


def _line(report: NoteReport, seconds: float) -> str:
    ran = sum(1 for b in report.blocks if not b.cached)
    cached = len(report.blocks) - ran
    failed = sum(1 for b in report.blocks if b.status == "failed")
    stamp = time.strftime("%H:%M:%S")
    line = f"{stamp} {report.path}: {ran} run, {cached} cached, {failed} failed, {seconds:.2f} s"
    for block in report.blocks:
        if block.status == "failed":
            line += f"\n         {report.path}:{block.line}: {block.id}: {block.error}"
    for warning in report.warnings:
        line += f"\n         {report.path}: warning: {warning}"
    return line


class Watcher:
    """Runs what each change in the vault makes stale until ``stop()`` (or Ctrl-C in ``watch``)."""

    def __init__(self, vault: Vault, path: Path, options: RunOptions, *, debounce: float = 0.2,
                 out: IO[str] | None = None, fmt: str = "text") -> None:
        self.vault = vault
        self.fmt = fmt  # json: one report per run on stdout, one line each; the rest goes to stderr
        self.path = path
        self.options = options
        self.debounce = debounce
        self.out = out or sys.stdout
        self.events = _Events(vault.root)
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def _say(self, text: str) -> None:
        out = sys.stderr if self.fmt == "json" else self.out
        out.write(text + "\n")
        out.flush()

    def run(self) -> None:
        """A ``run`` of the watched path as the vault is now (its files, settings and notes read afresh)."""
        started = time.perf_counter()
        if not os.path.lexists(self.path):
            return  # the watched note is deleted: nothing to run until it is back
        try:
            vault = Vault(self.vault.root, git=self.vault.git)
        except NotevaultError as exc:  # e.g. notevault.yaml saved half-typed: say so, run again once it is fixed
            self._say(f"{time.strftime('%H:%M:%S')} {exc}")
            return
        reports: list[NoteReport] = []
        execute(vault, [self.path], self.options, on_note=reports.append)
        reports = [report for report in reports if _ran(report)]
        seconds = time.perf_counter() - started
        if self.fmt == "json":
            if reports:
                self.out.write(to_json(Report(reports, seconds), indent=None))
                self.out.flush()
            return
        for report in reports:
            self._say(_line(report, seconds))

    def loop(self, on_idle: Callable[[], None] | None = None) -> None:
        observer = Observer()
        observer.schedule(self.events, str(self.vault.root), recursive=True)
        observer.start()
        self._say(f"watching {display_path(self.path)} (Ctrl-C to stop)")
        try:
            self.run()  # bring everything up to date first, watching already: a save meanwhile is seen
            while not self._stop.is_set():
                changed, deleted = self.events.settled(self.debounce)
                for path in deleted:
                    self._say(f"{time.strftime('%H:%M:%S')} {display_path(path)}: deleted")
                if changed:
                    self.run()
                elif on_idle:
                    on_idle()
                self._stop.wait(0.05)
        finally:
            observer.stop()
            observer.join(timeout=5)


def watch(vault: Vault, path: Path, options: RunOptions, *, debounce: float = 0.2, fmt: str = "text") -> None:
    """``notevault watch``: run what changed on every save until Ctrl-C (or SIGTERM)."""
    watcher = Watcher(vault, path, options, debounce=debounce, fmt=fmt)
    signal.signal(signal.SIGTERM, lambda *_: watcher.stop())
    try:
        watcher.loop()
    except KeyboardInterrupt:
        pass
    watcher._say("stopped")
