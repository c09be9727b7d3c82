"""Result callouts rendered and spliced into a note's text, and written back without losing anything.

Splicing is pure text: each block's result callout replaces the lines notevault wrote there before (never a
line of the user's: see note.ResultCallout) or is inserted below the fence; every other byte of the note stays.
One pass from the top works out where each block ends up, so the written tracebacks name the lines the code is
on in the note as written, and the caller learns every block's new line without parsing the note again.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import callout, figures
from .callout import Layout
from .errors import NoteError
from .files import Changed, Source, writable, write_atomic
from .jobs import OUTPUT_CUT_LINE, locate
from .note import BOM, LINE_BREAK, Block, Note, ResultCallout, decode, parse_note
from .results import BlockResult
from .vault import Vault, display_path

# ANSI escape sequences (colours, cursor moves, window titles): a note shows text, not a terminal.
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
MAX_SECTION_CHARS = 20_000
ATTEMPTS = 3


@dataclass(frozen=True)
class Placement:
    """A result to write below a block."""

    result: BlockResult  # its id and hash are the block's; its texts may hold task placeholders (jobs.locate)
    chain: tuple[tuple[str, int], ...]  # per task of the job that ran it: (note's vault path, 0-based line of
    #                                     its code in that note now); this note's lines move as callouts grow
    figure_names: tuple[str, ...]
    embeds: tuple[str, ...]
    output_option: str | None  # the block's output=show|fold|hide


@dataclass
class Spliced:
    text: str  # with the BOM, if the note has one
    lines: dict[int, int] = field(default_factory=dict)  # block number -> 1-based line of its fence now
    results: dict[int, BlockResult] = field(default_factory=dict)  # block number -> result as written
    figures: dict[str, bytes] = field(default_factory=dict)  # figure files to write
    replaced: list[ResultCallout] = field(default_factory=list)  # callouts replaced or removed
    moved: Callable[[int], int] = lambda line: line  # 0-based line of the note -> its line in ``text``


def terminal_text(text: str) -> str:
    """What a terminal would show, as plain lines: ``\\r`` overwrites (progress bars keep their last state),
    escape sequences go, other control characters (and bidi controls) become visible symbols, lone surrogates
    become U+FFFD."""
    text = ANSI.sub("", text).replace("\r\n", "\n")
    if "\r" in text:
        text = "\n".join(_overwrite(line) for line in text.split("\n"))
    text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return "".join(_visible(c) if (c < " " and c not in "\n\t") or _is_break_like(c) else c for c in text)


def _overwrite(line: str) -> str:
    shown = ""
    for part in line.split("\r"):
        shown = part + shown[len(part):]
    return shown


BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def _is_break_like(char: str) -> bool:
    """Characters an editor would not show as themselves: they break lines or, like the bidi controls, reorder
    the text around them so that output reads as something it is not."""
    return char == "\x7f" or "\x80" <= char <= "\x9f" or char in "\u2028\u2029" or char in BIDI_CONTROLS


def _visible(char: str) -> str:
    if char < " ":
        return chr(0x2400 + ord(char))  # the Unicode control pictures: ␌ for form feed, ␛ for escape …
    if char == "\x7f":
        return "\u2421"
    return f"<U+{ord(char):04X} {unicodedata.name(char, 'control')}>"


def _cut(text: str, max_lines: int) -> str:
    text = text.rstrip("\n")
    if len(text) > MAX_SECTION_CHARS:
        cut_by_worker = OUTPUT_CUT_LINE.search(text)  # kept: it says how much the block printed in all
        kept = text[:cut_by_worker.start()] if cut_by_worker else text
        text = kept[:MAX_SECTION_CHARS] + f"\n… {len(kept) - MAX_SECTION_CHARS:,} more characters"
        text += cut_by_worker.group() if cut_by_worker else ""
    lines = text.split("\n")
    if len(lines) <= max_lines:
        return text
    return "\n".join(lines[:max_lines]) + f"\n… {len(lines) - max_lines} more lines"


def one_line(error: str) -> str:
    return " ".join(terminal_text(error).split())


def render_callout(result: BlockResult, placement: Placement, layout: Layout, *, separator: bool) -> list[str]:
    """The lines of a result callout, without their quote prefix."""
    body: list[str] = []
    if placement.output_option != "hide":
        if result.output.strip():
            body += callout.fenced(_cut(terminal_text(result.output), layout.max_output_lines))
        if result.value is not None:
            body += ["Out:", *callout.fenced(_cut(terminal_text(result.value), layout.max_output_lines))]
        if result.traceback:
            body += callout.fenced(_cut(terminal_text(result.traceback), layout.max_output_lines))
        if result.formula is not None and result.formula.max_abs_err is not None:
            shapes = ""
            if result.formula.shapes:
                shapes = f", shapes {callout.code_span(result.formula.shapes[0])} vs " \
                         f"{callout.code_span(result.formula.shapes[1])}"
            body.append(f"formula {result.formula.id or ''}: max abs err {result.formula.max_abs_err:.3g}, "
                        f"max rel err {result.formula.max_rel_err:.3g}{shapes}")
        body += placement.embeds
    folded = placement.output_option == "fold" or (placement.output_option is None and len(body) > layout.fold_lines)
    ran = result.device is not None and result.status != "skipped"
    error = one_line(result.error) if result.error and result.status != "passed" else None
    title = callout.title_line(result.id, result.status, device=result.device if ran else None,
                               seconds=result.seconds if ran else None, error=error, folded=folded)
    content_sum = callout.content_sum([title, *body])
    return [title, callout.marker_line(result.id, result.hash, content_sum, separator=separator), *body]


def _same_but_time(old: ResultCallout, new: list[str], result: BlockResult) -> bool:
    """A re-run that differs only in the seconds it took leaves the callout alone (no churn on every run)."""
    if not old.intact or (old.id, old.hash) != (result.id, result.hash) or old.lines[2:] != tuple(new[2:]):
        return False
    seconds = re.compile(r" · \d+(?:\.\d+)? s")
    return seconds.sub("", old.lines[0]) == seconds.sub("", new[0])


def splice(note: Note, placements: dict[int, Placement], layout: Layout, *,
           remove: tuple[ResultCallout, ...] = ()) -> Spliced:
    """The note with each placed block's result callout written, and the ``remove`` callouts taken out."""
    edits: list[tuple[int, int, int | None]] = []  # (first line, end line, block number or None), 0-based
    for number, block in enumerate(note.blocks):
        if number in placements and block.closed:
            region = block.result.span if block.result else None
            edits.append((region.start, region.end, number) if region else (block.insert_at, block.insert_at, number))
    edits += [(r.span.start, r.span.end, None) for r in remove]
    edits.sort()
    spliced = Spliced("")
    pieces: list[str] = []
    done = 0  # characters of note.text already copied
    starts: list[int] = []  # first line of each applied edit, and the total line shift below it
    shifts: list[int] = []
    shift = 0

    def moved(line: int) -> int:
        return line + (shifts[bisect.bisect_right(starts, line) - 1] if starts and starts[0] <= line else 0)

    for start, end, number in edits:
        lines: list[str] = []
        if number is not None:
            block = note.blocks[number]
            lines = _callout_lines(note, block, placements[number], layout, end, moved, spliced)
            if lines is None:
                continue  # the same but for its timing: leave it
            if block.result is not None:
                spliced.replaced.append(block.result)
        else:
            spliced.replaced.append(next(r for r in remove if r.span.start == start))
        a, b, new = _text_edit(note, start, end, lines, _eol(note, start))
        pieces += [note.text[done:a], new]
        done = b
        shift += len(lines) - (end - start)
        starts.append(start)
        shifts.append(shift)
    pieces.append(note.text[done:])
    spliced.text = (BOM if note.bom else "") + "".join(pieces)
    spliced.lines = {n: moved(block.span.start) + 1 for n, block in enumerate(note.blocks)}
    spliced.moved = moved
    return spliced


def _callout_lines(note: Note, block: Block, placement: Placement, layout: Layout, end: int,
                   moved: Callable[[int], int], spliced: Spliced) -> list[str] | None:
    rel = placement.chain[-1][0] if placement.chain else ""

    def where(task: int) -> tuple[str, int] | None:
        if not 0 <= task < len(placement.chain):
            return None
        path, line = placement.chain[task]
        return path, moved(line) if path == rel else line

    result = placement.result
    result = replace(result, error=locate(result.error, where), output=locate(result.output, where) or "",
                     traceback=locate(result.traceback, where))
    following = LINE_BREAK.sub("", note.lines[end]) if end < len(note.lines) else ""
    separator = bool(following.strip(" \t>"))
    lines = render_callout(result, placement, layout, separator=separator)
    number = note.blocks.index(block)
    spliced.results[number] = result
    spliced.figures.update(zip(placement.figure_names, result.figures, strict=False))
    if block.result is not None and _same_but_time(block.result, lines, result):
        spliced.results[number] = replace(result, seconds=block.result.seconds or result.seconds)
        return None
    quote = block.prefix + ">"
    quoted = [f"{quote} {line}" if line else quote for line in lines]
    if separator:
        quoted.append(block.prefix.rstrip())
    return quoted


def _eol(note: Note, line: int) -> str:
    for text in (note.lines[line - 1] if 0 < line <= len(note.lines) else "", *note.lines):
        match = LINE_BREAK.search(text)
        if match:
            return match.group()
    return "\n"


def _text_edit(note: Note, start: int, end: int, lines: list[str], eol: str) -> tuple[int, int, str]:
    """Character range and new text for replacing lines [start, end) with ``lines`` (quoted, no endings)."""
    a, b = note.offsets[start], note.offsets[end]
    new = "".join(line + eol for line in lines)
    at_end_without_newline = b == len(note.text) and not note.text.endswith(("\n", "\r"))
    if at_end_without_newline:
        # The note has no final newline: the line above gets one instead, and the last line stays without.
        if start == end:  # inserting after the last line
            return a, b, eol + new[: -len(eol)] if new else ""
        before = LINE_BREAK.search(note.lines[start - 1]) if start > 0 else None
        cut = len(before.group()) if before else 0
        return a - cut, b, (eol + new[: -len(eol)]) if new else ""
    return a, b, new


def remove_results(note: Note, regions: tuple[ResultCallout, ...] | None = None) -> Spliced:
    """The note without these result callouts (all of them by default), and which were removed."""
    return splice(note, {}, Layout(), remove=note.results if regions is None else regions)


# Writing back ------------------------------------------------------------------------------------------------

@dataclass
class WriteBack:
    """What writing one note's results did."""

    lines: dict[int, int] = field(default_factory=dict)  # block number -> line of its fence as written
    results: dict[int, BlockResult] = field(default_factory=dict)  # as written (placeholders resolved)
    warnings: list[str] = field(default_factory=list)
    note: Note | None = None  # the note the results were spliced into (the newest, if it changed meanwhile)
    written: bool = False
    seen: str | None = None  # sha256 of the note's bytes as this left them
    source: Source | None = None  # the note as written (None: not written)
    figures: tuple[str, ...] = ()  # the figure files the note's result callouts embed as it was left
    moved: Callable[[int], int] = lambda line: line  # 1-based line of the planned note -> its line as written


Placer = Callable[[Note], tuple[dict[int, Placement], list[str]]]  # note -> placements, warnings


def write_back(vault: Vault, path: Path, rel: str, planned: Note, place: Placer, layout: Layout) -> WriteBack:
    """Splice results into the note as it is on disk now and write it atomically. An edit saved meanwhile
    wins: right before the rename the note is compared again, and the results are spliced onto the newest
    text (``place`` decides which still apply), or dropped with a warning."""
    outcome = WriteBack()
    if not writable(path):
        outcome.warnings.append(f"results not written: {display_path(path)} is read-only")
        return outcome
    for _attempt in range(ATTEMPTS):
        try:
            data = path.read_bytes()
            text, bom = decode(data, path)
        except (OSError, NoteError) as exc:
            outcome.warnings.append(f"results not written: {exc}")
            return outcome
        outcome.seen = hashlib.sha256(data).hexdigest()
        note = planned if (text, bom) == (planned.text, planned.bom) else parse_note(text, path, bom=bom)
        placements, warnings = place(note)
        orphans = tuple(r for r in note.orphans if r.intact)
        spliced = splice(note, placements, layout, remove=orphans)
        outcome.lines, outcome.results, outcome.note = spliced.lines, spliced.results, note
        outcome.moved = lambda line, moved=spliced.moved: moved(line - 1) + 1
        outcome.warnings = warnings + _edited_warnings(spliced.replaced, path)
        outcome.figures = _embedded(note, placements)
        if spliced.text == note.raw():
            missing = {n: png for n, png in spliced.figures.items() if not figures.exists(vault, rel, n)}
            figures.write(vault, rel, missing)  # the callout stands; its figure file had gone
            return outcome
        try:
            figures.write(vault, rel, spliced.figures)
            outcome.source = write_atomic(path, spliced.text, expected=data)
        except Changed:
            continue  # saved by an editor between our read and our rename: splice onto the newest text
        except OSError as exc:
            outcome.warnings = [f"results not written: {exc.strerror or exc}"]
            return outcome
        outcome.written = True
        outcome.seen = outcome.source.sha
        replaced = [name for region in spliced.replaced for name in region.figures if name not in spliced.figures]
        figures.remove_unused(vault, rel, replaced)
        return outcome
    outcome.warnings.append("results not written: the note kept changing while notevault tried to write it")
    return outcome


def _embedded(note: Note, placements: dict[int, Placement]) -> tuple[str, ...]:
    """The figures the note's result callouts embed once the placements are written."""
    names: list[str] = []
    for number, block in enumerate(note.blocks):
        if number in placements:
            names += placements[number].figure_names
        elif block.result is not None:
            names += block.result.figures
    return tuple(names)


def _edited_warnings(replaced: list[ResultCallout], path: Path) -> list[str]:
    return [f"{display_path(path)}:{r.span.line}: the result callout of block {r.id} had been edited by hand; "
            "it was written again" for r in replaced if not r.intact and not r.legacy]


@dataclass(frozen=True)
class Cleaned:
    path: str  # as shown to the user, relative to the current folder
    results: int  # result callouts removed
    figures: int  # figure files removed
    warnings: tuple[str, ...] = ()


def clean_notes(vault: Vault, paths: list[Path]) -> list[Cleaned]:
    """``notevault clean``: remove every result callout notevault wrote, and the figure files only they used."""
    changed = []
    for path in vault.notes(paths).notes:
        rel = vault.relative(path)
        note = vault.note(rel)
        if not isinstance(note, Note) or not note.results:
            continue
        spliced = remove_results(note)
        if not writable(path):
            changed.append(Cleaned(display_path(path), 0, 0, (f"{display_path(path)} is read-only: not cleaned",)))
            continue
        write_atomic(path, spliced.text)
        names = [name for region in spliced.replaced for name in region.figures]
        removed = figures.remove_unused(vault, rel, names)
        warnings = tuple(w.replace("it was written again", "it was removed")
                         for w in _edited_warnings(spliced.replaced, path))
        changed.append(Cleaned(display_path(path), len(spliced.replaced), len(removed), warnings))
    return changed
