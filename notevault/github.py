"""GitHub Actions annotations (workflow commands) for a report, and the full list where GitHub would drop some.

GitHub attaches an annotation to a file only when its path is relative to the repository root, and shows at most
10 errors, 10 warnings and 10 notices per step, dropping the rest silently (FINDINGS, "Ecosystem"). So paths are
made relative to ``GITHUB_WORKSPACE`` (else the note's git top-level, else the current folder), and past the cap
the whole list goes to the job summary (``GITHUB_STEP_SUMMARY``) and a notice says what was not shown.
Escaping matches @actions/core's ``escapeData`` and ``escapeProperty``.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .findings import STOPS_ITS_BLOCK
from .results import NoteReport, Report

SHOWN_PER_LEVEL = 10  # GitHub's cap per step, for each of error, warning and notice
LEVELS = {"error": "error", "warning": "warning", "info": "notice"}


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


@dataclass(frozen=True)
class Annotation:
    level: str  # error | warning | notice
    file: str  # relative to the repository root, with /
    line: int | None
    col: int | None
    title: str
    message: str

    def command(self) -> str:
        properties = [f"file={_escape_property(self.file)}"]
        properties += [f"line={self.line}"] if self.line else []
        properties += [f"col={self.col}"] if self.col else []
        properties.append(f"title={_escape_property(self.title)}")
        return f"::{self.level} {','.join(properties)}::{_escape_data(self.message)}"


@lru_cache(maxsize=256)
def _git_toplevel(folder: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", folder, "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    except OSError:
        return None  # no git
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def repository_path(path: str) -> str:
    """``path`` (as reported, relative to the current folder) relative to the repository root."""
    real = os.path.realpath(path)
    root = os.environ.get("GITHUB_WORKSPACE") or _git_toplevel(os.path.dirname(real)) or os.getcwd()
    return Path(os.path.relpath(real, os.path.realpath(root))).as_posix()


def _note_annotations(note: NoteReport) -> list[Annotation]:
    file = repository_path(note.path)
    explained = {f.line for f in note.lint if f.rule in STOPS_ITS_BLOCK}
    found = []
    for block in note.blocks:
        if block.status in ("failed", "stale") and block.line not in explained:
            level = "error"  # a block the finding on its line stops (a bad tag …) is annotated once, by the finding
        elif block.status == "skipped":
            level = "warning"
        else:
            continue
        found.append(Annotation(level, file, block.line, None, f"notevault: block {block.id} {block.status}",
                                block.error or block.status))
    found += [Annotation(LEVELS[f.severity], file, f.line, f.col, f"notevault {f.rule}", f.message)
              for f in note.lint]
    found += [Annotation("warning", file, None, None, "notevault", warning) for warning in note.warnings]
    return found


def annotations(report: Report) -> list[Annotation]:
    """One annotation per problem: failed, stale and skipped blocks, lint findings, note warnings."""
    return [a for note in report.notes for a in _note_annotations(note)]


def _markdown(text: str) -> str:
    """Text for a Markdown table cell: punctuation that would format, link or end the cell is escaped."""
    return re.sub(r"([\\`*_{}\[\]<>()#+!|~$])", r"\\\1", text.replace("\r", " ").replace("\n", " "))


def step_summary(found: list[Annotation]) -> str:
    """The whole list as a Markdown table, for ``GITHUB_STEP_SUMMARY``."""
    counts = Counter(a.level for a in found)
    shown = ", ".join(f"{counts[level]} {level}{'' if counts[level] == 1 else 's'}" for level in LEVELS.values())
    rows = [f"### notevault: {shown}", "",
            "| level | file | line | problem |", "| --- | --- | --- | --- |"]
    rows += [f"| {a.level} | {_markdown(a.file)} | {a.line or ''} | {_markdown(a.title)}: {_markdown(a.message)} |"
             for a in found]
    return "\n".join(rows) + "\n"


def _write_step_summary(found: list[Annotation]) -> bool:
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if not summary:
        return False
    try:
        with open(summary, "a", encoding="utf-8") as stream:
            stream.write(step_summary(found))
    except OSError:
        return False
    return True


def _overflow_notice(counts: Counter, *, in_summary: bool) -> str:
    hidden = {level: counts[level] + (level == "notice") - SHOWN_PER_LEVEL for level in LEVELS.values()}
    parts = [f"{n} {level}{'' if n == 1 else 's'}" for level, n in hidden.items() if n > 0]
    where = "the job summary lists them all" if in_summary else "run notevault locally to see them all"
    return (f"GitHub shows {SHOWN_PER_LEVEL} annotations of each level per step: {', '.join(parts)} not shown "
            f"here; {where}")


def workflow_commands(report: Report) -> list[str]:
    """The annotation commands, preceded (past GitHub's cap) by a notice of what it will not show."""
    found = annotations(report)
    counts = Counter(a.level for a in found)
    lines = [a.command() for a in found]
    if any(n > SHOWN_PER_LEVEL for n in counts.values()):
        notice = _overflow_notice(counts, in_summary=_write_step_summary(found))
        lines.insert(0, f"::notice title=notevault::{_escape_data(notice)}")  # first, so GitHub keeps it
    return lines
