"""Reports in the formats a user or a CI system reads: text, json (SPEC §7), junit, github annotations."""

from __future__ import annotations

import json
import sys
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .github import workflow_commands
from .junit import to_junit
from .results import BlockResult, NoteReport, Report

FORMATS = ("text", "json", "junit", "github")


def block_json(block: BlockResult) -> dict:
    formula = None
    if block.formula is not None:
        formula = {"id": block.formula.id, "max_abs_err": block.formula.max_abs_err,
                   "max_rel_err": block.formula.max_rel_err}
    return {"id": block.id, "line": block.line, "kind": block.kind, "status": block.status,
            "cached": block.cached, "device": block.device, "seconds": round(block.seconds, 4),
            "error": block.error, "formula": formula}


def to_json(report: Report, *, indent: int | None = 2) -> str:
    """SPEC §7; with ``indent=None`` on one line (watch prints one report per run)."""
    data = {
        "version": 1,
        "summary": report.summary(),
        "notes": [
            {
                "path": note.path,
                "blocks": [block_json(b) for b in note.blocks],
                "lint": [{"rule": f.rule, "severity": f.severity, "line": f.line, "col": f.col,
                          "message": f.message} for f in note.lint],
            }
            for note in report.notes
        ],
    }
    return json.dumps(data, ensure_ascii=False, indent=indent) + "\n"


def to_github(report: Report) -> str:
    """Annotations (see github.py), then the summary line as plain log text."""
    return "\n".join([*workflow_commands(report), _summary_line(report)]) + "\n"


def _summary_line(report: Report) -> str:
    s = report.summary()
    parts = []
    if s["blocks"] or s["stale"]:
        parts.append(f"{s['blocks']} blocks: {s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped"
                     + (f", {s['stale']} stale" if s["stale"] else "") + f" ({s['cached']} cached)")
    lint_info = report.lint_count("info")
    parts.append(f"lint: {s['lint_errors']} errors, {s['lint_warnings']} warnings, {lint_info} info")
    return f"{s['notes']} notes · " + " · ".join(parts) + f" · {s['seconds']:.2f} s"


def _block_line(path: str, block: BlockResult) -> str | None:
    where = f"{path}:{block.line}:1"
    if block.status == "failed":
        return f"{where}: error: block {block.id} failed: {block.error}"
    if block.status == "stale":
        return f"{where}: error: block {block.id} stale: {block.error}"
    if block.status == "skipped":
        return f"{where}: warning: block {block.id} skipped: {block.error}"
    return None


def to_text(report: Report) -> str:
    lines = []
    for note in report.notes:
        entries = [(b.line, 1, _block_line(note.path, b)) for b in note.blocks]
        entries += [(f.line, f.col, f.format(note.path)) for f in note.lint]
        lines.extend(text for _, _, text in sorted(entries, key=lambda e: (e[0], e[1])) if text)
        lines.extend(f"{note.path}: warning: {w}" for w in note.warnings)
    lines.append(_summary_line(report))
    return "\n".join(lines) + "\n"


def print_terminal(report: Report, console: Console) -> None:
    """The text report with a summary table, for a person at a terminal."""
    from rich.table import Table

    for line in to_text(report).splitlines()[:-1]:
        style = "red" if ": error:" in line else "yellow" if ": warning:" in line else None
        console.print(line, style=style, markup=False, highlight=False, soft_wrap=True)
    s = report.summary()
    table = Table(title=None, show_edge=False, pad_edge=False)
    for column in ("notes", "blocks", "passed", "failed", "skipped", "stale", "cached", "errors", "warnings", "s"):
        table.add_column(column, justify="right")
    table.add_row(*(str(s[k]) for k in ("notes", "blocks", "passed", "failed", "skipped", "stale", "cached",
                                         "lint_errors", "lint_warnings")), f"{s['seconds']:.2f}",
                  style="red" if report.failed() else "green")
    console.print(table)


RENDERERS = {"text": to_text, "json": to_json, "junit": to_junit, "github": to_github}


def render(report: Report, fmt: str) -> str:
    return RENDERERS[fmt](report)


def plural(n: int, noun: str) -> str:
    """``1 block``, ``2 blocks``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


class ProgressDisplay:
    """A progress bar on a terminal; one plain line per note otherwise (CI logs stay readable)."""

    def __init__(self, total: int, *, stream: IO[str] | None = None, enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.failures = 0
        self.blocks = 0
        self.console = Console(file=self.stream)
        self.bar: Progress | None = None
        if enabled and self.console.is_terminal:
            self.bar = Progress(TextColumn("[bold]notevault"), BarColumn(complete_style="green"),
                                MofNCompleteColumn(), TextColumn("notes · {task.fields[status]}"),
                                TimeElapsedColumn(), console=self.console, transient=True)
            self.task = self.bar.add_task("notes", total=total, status="0 blocks")

    def __enter__(self) -> ProgressDisplay:
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.stop()

    def note_done(self, note: NoteReport) -> None:
        failed = sum(1 for b in note.blocks if b.status == "failed")
        self.failures += failed
        self.blocks += len(note.blocks)
        if self.bar:
            status = f"{self.blocks} blocks" + (f" · [red]{self.failures} failed" if self.failures else "")
            self.bar.update(self.task, advance=1, status=status)
            if self.failures:
                self.bar.columns[1].complete_style = "red"
        elif self.enabled and note.blocks:
            cached = sum(1 for b in note.blocks if b.cached)
            self.stream.write(f"{note.path}: {plural(len(note.blocks), 'block')}, {failed} failed, {cached} cached\n")
            self.stream.flush()
