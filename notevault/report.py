"""Everything a command prints: reports as text, json, junit and github annotations; what clean, tangle and
formulas return; the progress bar."""

from __future__ import annotations

import json
import sys
from typing import IO, TYPE_CHECKING

from .findings import Finding
from .results import BlockResult, NoteReport, Report

if TYPE_CHECKING:
    # rich, junit and github are loaded where they are used: a text report into a pipe needs none of them
    from rich.console import Console
    from rich.progress import Progress

    # the commands' own modules: report only reads their dataclasses
    from .formula import NoteFormulas
    from .tangle import Tangled
    from .writer import Cleaned

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
    from .github import workflow_commands

    return "\n".join([*workflow_commands(report), _summary_line(report)]) + "\n"


def to_junit(report: Report) -> str:
    from .junit import to_junit as junit

    return junit(report)


def _summary_line(report: Report) -> str:
    s = report.summary()
    parts = [plural(s["notes"], "note")]
    if s["blocks"] or s["stale"]:
        parts.append(f"{plural(s['blocks'], 'block')}: {s['passed']} passed, {s['failed']} failed, "
                     f"{s['skipped']} skipped" + (f", {s['stale']} stale" if s["stale"] else "")
                     + f" ({s['cached']} cached)")
    if report.linted:
        parts.append(f"lint: {plural(s['lint_errors'], 'error')}, {plural(s['lint_warnings'], 'warning')}, "
                     f"{report.lint_count('info')} info")
    elif _problems(report):
        # run does not lint: these are only what kept blocks from running as written (bad tags, front matter …)
        parts.append(plural(_problems(report), "problem"))
    return " · ".join(parts) + f" · {s['seconds']:.2f} s"


def _problems(report: Report) -> int:
    return sum(len(note.lint) for note in report.notes)


def _block_line(path: str, block: BlockResult) -> str | None:
    where = f"{path}:{block.line}:1"
    if block.status == "failed":
        return f"{where}: error: block {block.id} failed: {block.error}"
    if block.status == "stale":
        return f"{where}: error: block {block.id} stale: {block.error}"
    if block.status == "skipped":
        return f"{where}: warning: block {block.id} skipped: {block.error}"
    return None


# Findings that say why a block could not run; the block's own failed line says it already.
BLOCK_RULES = ("bad-tag", "unclosed-fence", "unknown-formula")


def _findings_shown(note: NoteReport) -> list[Finding]:
    """The note's findings less those its failed blocks already report on their line (one cause, one line)."""
    failed_at = {b.line for b in note.blocks if b.status == "failed"}
    return [f for f in note.lint if not (f.rule in BLOCK_RULES and f.line in failed_at)]


def to_text(report: Report) -> str:
    lines = []
    for note in report.notes:
        entries = [(b.line, 1, _block_line(note.path, b)) for b in note.blocks]
        entries += [(f.line, f.col, f.format(note.path)) for f in _findings_shown(note)]
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
    columns = {"blocks": s["blocks"], "passed": s["passed"], "failed": s["failed"], "skipped": s["skipped"],
               "stale": s["stale"], "cached": s["cached"]}
    if report.linted:
        columns.update({"lint errors": s["lint_errors"], "lint warnings": s["lint_warnings"]})
    else:
        columns["problems"] = _problems(report)
    table = Table(title=f"notevault · {plural(s['notes'], 'note')}", title_justify="left", show_edge=False,
                  pad_edge=False)
    for column in [*columns, "seconds"]:
        table.add_column(column, justify="right")
    table.add_row(*(str(v) for v in columns.values()), f"{s['seconds']:.2f}",
                  style="red" if report.failed() else "green")
    console.print(table)


RENDERERS = {"text": to_text, "json": to_json, "junit": to_junit, "github": to_github}


def render(report: Report, fmt: str) -> str:
    return RENDERERS[fmt](report)


def plural(n: int, noun: str) -> str:
    """``1 block``, ``2 blocks``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


# What clean, tangle and formulas return, as text or JSON ------------------------------------------------------

LISTING_FORMATS = ("text", "json")


def _json(notes: list[dict]) -> str:
    return json.dumps({"version": 1, "notes": notes}, ensure_ascii=False, indent=2) + "\n"


def render_cleaned(cleaned: list[Cleaned], fmt: str) -> str:
    if fmt == "json":
        return _json([{"path": c.path, "results_removed": c.results, "figures_removed": c.figures,
                       "warnings": list(c.warnings)} for c in cleaned])
    lines = []
    for c in cleaned:
        if c.results or c.figures:
            lines.append(f"cleaned {c.path} ({plural(c.results, 'result')}, {plural(c.figures, 'figure')} removed)")
        lines.extend(f"warning: {w}" for w in c.warnings)
    return "".join(line + "\n" for line in lines)


def render_tangled(tangled: list[Tangled], fmt: str) -> str:
    if fmt == "json":
        return _json([{"path": t.note, "script": t.script, "error": t.refused} for t in tangled])
    return "".join((f"{t.script}: error: {t.refused}" if t.refused else t.script) + "\n" for t in tangled)


def render_formulas(notes: list[NoteFormulas], fmt: str) -> str:
    if fmt == "json":
        return _json([{"path": n.path, "formulas": [
            {"id": f.id, "line": f.line, "latex": f.latex, "evaluable": f.evaluable, "symbols": list(f.symbols),
             "reason": f.reason} for f in n.formulas]} for n in notes])
    lines = []
    for note in notes:
        for f in note.formulas:
            flat = " ".join(f.latex.split())
            shown = flat if len(flat) <= 70 else flat[:69] + "…"
            what = "binds " + ", ".join(f.symbols) if f.evaluable else f"not evaluable: {f.reason}"
            lines.append(f"{note.path}:{f.line}: {'^' + f.id if f.id else '-'} {shown}  [{what}]")
    total = sum(len(n.formulas) for n in notes)
    evaluable = sum(f.evaluable for n in notes for f in n.formulas)
    lines.append(f"{plural(total, 'formula')}, {evaluable} evaluable")
    return "\n".join(lines) + "\n"


STARTING = "starting workers (importing torch)…"


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class ProgressDisplay:
    """A progress bar on a terminal; one plain line per note otherwise (CI logs stay readable).

    ``status`` says what is happening before any note is done (the first block waits seconds for torch to be
    imported); the first finished note replaces it with the counts.
    """

    def __init__(self, total: int, *, stream: IO[str] | None = None, enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.failures = 0
        self.blocks = 0
        self.bar: Progress | None = None
        if enabled and _is_terminal(self.stream):
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.console = Console(file=self.stream)
            self.bar = Progress(TextColumn("[bold]notevault"), BarColumn(complete_style="green"),
                                MofNCompleteColumn(), TextColumn("notes · {task.fields[status]}"),
                                TimeElapsedColumn(), console=self.console, transient=True)
            self.task = self.bar.add_task("notes", total=total, status=self._counts())

    def __enter__(self) -> ProgressDisplay:
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.stop()

    def status(self, text: str | None) -> None:
        """Show ``text`` in place of the counts (None: the counts again)."""
        if self.bar:
            self.bar.update(self.task, status=self._counts() if text is None else text)

    def _counts(self) -> str:
        return plural(self.blocks, "block") + (f" · [red]{self.failures} failed" if self.failures else "")

    def note_done(self, note: NoteReport) -> None:
        failed = sum(1 for b in note.blocks if b.status == "failed")
        self.failures += failed
        self.blocks += len(note.blocks)
        if self.bar:
            self.bar.update(self.task, advance=1, status=self._counts())
            if self.failures:
                self.bar.columns[1].complete_style = "red"
        elif self.enabled and note.blocks and not (failed == 0 and all(b.cached for b in note.blocks)):
            # a note whose results all stood as stored, none failing, had nothing happen to it: not listed
            cached = sum(1 for b in note.blocks if b.cached)
            self.stream.write(f"{note.path}: {plural(len(note.blocks), 'block')}, {failed} failed, {cached} cached\n")
            self.stream.flush()
