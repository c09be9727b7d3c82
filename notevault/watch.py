"""Watch mode: each save of a note brings its changed blocks' results into it, moments later.

A watchdog observer reports saves; a burst of saves (Obsidian saves every few seconds while typing, editors
save via temp file + rename) settles for ``debounce`` seconds before one run. Only blocks whose hash changed run
(the rest are current in the note or cached), and the worker template stays warm for the whole session.
notevault's own writes are recognised by content and never trigger a run.
"""

from __future__ import annotations

import hashlib
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
from .report import to_json
from .results import NoteReport, Report
from .vault import Vault, display_path, ignored


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class _Events(FileSystemEventHandler):
    """Collects which notes changed (and when), from the observer's thread."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.lock = threading.Lock()
        self.pending: dict[Path, float] = {}
        self.snippets_changed = False
        self.deleted: list[Path] = []

    def _relevant(self, raw: str | bytes) -> Path | None:
        path = Path(os.fsdecode(raw))
        try:
            rel = path.relative_to(self.vault.root)
        except ValueError:
            return None
        if any(ignored(part) for part in rel.parts):
            return None  # .obsidian, .git, our own temp files (".name.xxx.tmp") …
        if rel.parts and rel.parts[0] == "snippets" and path.suffix == ".py":
            self.snippets_changed = True
            return None
        return path if path.suffix == ".md" else None

    def _touch(self, raw: str | bytes) -> None:
        path = self._relevant(raw)
        with self.lock:
            if path is not None:
                self.pending[path] = time.monotonic()
            elif self.snippets_changed:
                self.pending[Path("snippets")] = time.monotonic()

    def on_created(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._touch(event.src_path)

    def on_modified(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._touch(event.src_path)

    def on_moved(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._touch(event.dest_path)

    def on_deleted(self, event: FileSystemEvent) -> None:
        path = self._relevant(event.src_path)
        if path is not None:
            with self.lock:
                self.pending.pop(path, None)
                self.deleted.append(path)

    def settled(self, debounce: float) -> tuple[list[Path], list[Path], bool]:
        """Notes quiet for ``debounce`` seconds, notes deleted, and whether snippets changed."""
        now = time.monotonic()
        with self.lock:
            ready = [p for p, t in self.pending.items() if now - t >= debounce]
            for path in ready:
                del self.pending[path]
            deleted, self.deleted = self.deleted, []
            snippets = Path("snippets") in ready
            if snippets:
                self.snippets_changed = False
        return [p for p in ready if p != Path("snippets")], deleted, snippets


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
    """Runs notes as they are saved until ``stop()`` (or Ctrl-C in ``watch``)."""

    def __init__(self, vault: Vault, path: Path, options: RunOptions, *, debounce: float = 0.2,
                 out: IO[str] | None = None, fmt: str = "text") -> None:
        self.vault = vault
        self.fmt = fmt  # json: one report per run on stdout, one line each; the rest goes to stderr
        self.scope = path.resolve()
        self.options = options
        self.debounce = debounce
        self.out = out or sys.stdout
        self.events = _Events(vault)
        self.written: dict[Path, str | None] = {}  # what notevault itself last wrote to each note
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def _say(self, text: str) -> None:
        out = sys.stderr if self.fmt == "json" else self.out
        out.write(text + "\n")
        out.flush()

    def run_notes(self, notes: list[Path]) -> None:
        started = time.perf_counter()
        notes = [n for n in notes if n.exists() and n.is_relative_to(self.scope)]
        if not notes:
            return
        reports: list[NoteReport] = []
        execute(self.vault, notes, self.options, on_note=reports.append)
        seconds = time.perf_counter() - started
        seen = {report.path: report.seen for report in reports}
        for note in notes:
            # What notevault wrote (or read and left), not what is there now: a save landing right after
            # the write must look like a change.
            self.written[note] = seen.get(display_path(note)) or _digest(note)
        if self.fmt == "json":
            self.out.write(to_json(Report(reports, seconds), indent=None))
            self.out.flush()
            return
        by_path = {report.path: report for report in reports}
        for note in notes:
            report = by_path.get(display_path(note))
            if report is not None and (report.blocks or report.warnings):
                self._say(_line(report, seconds))

    def loop(self, on_idle: Callable[[], None] | None = None) -> None:
        observer = Observer()
        observer.schedule(self.events, str(self.vault.root), recursive=True)
        observer.start()
        self._say(f"watching {display_path(self.scope)} (Ctrl-C to stop)")
        try:
            while not self._stop.is_set():
                ready, deleted, snippets = self.events.settled(self.debounce)
                for path in deleted:
                    self.written.pop(path, None)
                    self._say(f"{time.strftime('%H:%M:%S')} {display_path(path)}: deleted")
                if snippets:
                    ready = sorted(set(ready) | set(self.vault.notes([self.scope], templates=False).notes))
                changed = [p for p in ready if _digest(p) != self.written.get(p)]
                if changed:
                    self.run_notes(sorted(changed))
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
    watcher.run_notes(vault.notes([path], templates=False).notes)  # bring everything up to date first
    try:
        watcher.loop()
    except KeyboardInterrupt:
        pass
    watcher._say("stopped")
