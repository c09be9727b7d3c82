"""Result callouts spliced into a note's text, and written back safely.

A result callout sits directly below its fence and carries a hidden marker
``%% notevault id=ID hash=HASH %%``; only callouts with that marker are ever replaced or removed. Every
other byte of the note is kept: edits are splices at character offsets of the raw text, never a re-render.
"""

from __future__ import annotations

import os
import posixpath
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from .note import BOM, LINE_BREAK, Fence, Note
from .results import BlockResult
from .vault import Vault

MARKER = re.compile(r"%% notevault id=(?P<id>\S+) hash=(?P<hash>[0-9a-f]+)(?P<sep> sep)? %%")
CALLOUT_TYPE = {"passed": "success", "failed": "failure", "skipped": "warning", "stale": "warning"}
STATUS_OF_TYPE = {"success": "passed", "failure": "failed", "warning": "skipped"}
TITLE = re.compile(
    r"\[!(?P<type>\w+)\][+-]? (?P<id>\S+) · (?P<status>\w+)(?: · (?P<device>\w+) · (?P<seconds>[\d.]+) s)?"
)
EMBED = re.compile(r"!\[\[(?P<name>[^\]|]+)(?:\|[^\]]*)?\]\]|!\[[^\]]*\]\((?P<path>[^)\s]+\.png)\)")


@dataclass(frozen=True)
class Layout:
    """How result callouts look: from the vault's settings."""

    fold_lines: int = 20
    max_output_lines: int = 200
    figure_folder: str | None = None  # None: embed figures as ![[name]]; else markdown links ![](folder + name)


@dataclass(frozen=True)
class StoredResult:
    """A result callout found in a note."""

    id: str
    hash: str
    status: str
    device: str | None
    seconds: float
    start: int  # character offsets of the whole region in the note text (BOM excluded)
    end: int
    figures: tuple[str, ...]  # attachment file names embedded in it


def _eol(note: Note, fence: Fence) -> str:
    for line in (note.lines[fence.span.end - 1], *note.lines):
        match = LINE_BREAK.search(line)
        if match:
            return match.group()
    return "\n"


def _offsets(note: Note) -> list[int]:
    offsets, total = [0], 0
    for line in note.lines:
        total += len(line)
        offsets.append(total)
    return offsets


def _bare(line: str) -> str:
    return LINE_BREAK.sub("", line)


def stored_result(note: Note, fence: Fence, offsets: list[int] | None = None) -> StoredResult | None:
    """The result callout directly below ``fence``, if notevault wrote one."""
    if not fence.closed:
        return None
    offsets = offsets or _offsets(note)
    quote = fence.prefix + ">"
    first = fence.span.end
    if first >= len(note.lines) or not _bare(note.lines[first]).startswith(quote + " [!"):
        return None
    end = first
    while end < len(note.lines) and _bare(note.lines[end]).startswith(quote):
        end += 1
    marker = next((m for m in map(MARKER.search, map(_bare, note.lines[first:end])) if m), None)
    title = TITLE.search(_bare(note.lines[first]))
    if marker is None or title is None:
        return None  # the user's own callout: never touched
    if marker["sep"] and end < len(note.lines) and not _bare(note.lines[end])[len(fence.prefix):].strip():
        end += 1
    start, stop = offsets[first], offsets[end]
    if stop == len(note.text) and not LINE_BREAK.search(note.lines[end - 1]):
        start -= len(LINE_BREAK.search(note.lines[first - 1]).group())  # we added the fence line's ending
    figures = tuple(m["name"] or posixpath.basename(unquote(m["path"]))
                    for line in note.lines[first:end] for m in EMBED.finditer(line))
    seconds = float(title["seconds"]) if title["seconds"] else 0.0
    return StoredResult(marker["id"], marker["hash"], STATUS_OF_TYPE.get(title["type"], "failed"),
                        title["device"], seconds, start, stop, figures)


def _fence_for(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=2)
    return "`" * max(3, longest + 1)


def _fenced(text: str, language: str = "text") -> list[str]:
    fence = _fence_for(text)
    return [fence + language, *text.rstrip("\n").split("\n"), fence]


def _cut(text: str, max_lines: int) -> str:
    lines = text.rstrip("\n").split("\n")
    if len(lines) <= max_lines:
        return text
    return "\n".join(lines[:max_lines]) + f"\n… {len(lines) - max_lines} more lines"


def figure_name(note: Note, result: BlockResult, index: int) -> str:
    stem = re.sub(r"[^\w.-]+", "-", note.path.stem).strip(".-") or "note"
    block = re.sub(r"[^\w.-]+", "-", result.id).strip(".-") or "block"
    return f"{stem}-{block}-{index + 1}.png"


def _embed(name: str, layout: Layout) -> str:
    if layout.figure_folder is None:
        return f"![[{name}]]"
    return f"![]({quote(layout.figure_folder + name)})"


def figure_folder(vault: Vault, note_rel: str) -> str | None:
    """How a note links its figures, as Obsidian would write a new link (useMarkdownLinks, newLinkFormat).

    None for wikilink embeds; else the path prefix of a markdown link: relative to the note, from the vault
    root ("absolute"), or nothing ("shortest": figure names are unique, so the name alone resolves).
    """
    settings = vault.settings
    if not settings.use_markdown_links:
        return None
    if settings.new_link_format == "shortest":
        return ""
    folder = attachment_dir(vault, note_rel).relative_to(vault.root.resolve()).as_posix()  # "." is the root
    if settings.new_link_format == "relative":
        folder = posixpath.relpath(folder, posixpath.dirname(note_rel) or ".")
    return "" if folder == "." else folder + "/"


def render_callout(note: Note, fence: Fence, result: BlockResult, layout: Layout, *, output_option: str | None,
                   separator: bool) -> list[str]:
    """The lines (without prefix or line ending) of a result callout."""
    body: list[str] = []
    if result.error and result.status != "passed":
        body.append(result.error.replace("\n", " "))
    if output_option != "hide":
        if result.output.strip():
            body += _fenced(_cut(result.output, layout.max_output_lines))
        if result.value is not None:
            body += ["Out:", *_fenced(_cut(result.value, layout.max_output_lines))]
        if result.traceback:
            body += _fenced(_cut(result.traceback, layout.max_output_lines))
        if result.formula is not None and result.formula.max_abs_err is not None:
            shapes = ""
            if result.formula.shapes:
                shapes = f", shapes {result.formula.shapes[0]} vs {result.formula.shapes[1]}"
            body.append(f"formula {result.formula.id or ''}: max abs err {result.formula.max_abs_err:.3g}, "
                        f"max rel err {result.formula.max_rel_err:.3g}{shapes}")
        body += [_embed(figure_name(note, result, i), layout) for i in range(len(result.figures))]
    fold = ""
    if output_option == "fold" or (output_option is None and len(body) > layout.fold_lines):
        fold = "-"
    title = f"{result.id} · {result.status}"
    if result.status != "skipped":
        title += f" · {result.device or 'cpu'} · {result.seconds:.2f} s"
    marker = f"%% notevault id={result.id} hash={result.hash}{' sep' if separator else ''} %%"
    return [f"[!{CALLOUT_TYPE[result.status]}]{fold} {title}", marker, *body]


def splice_results(note: Note, hashed: list[tuple[Fence, str]], results: dict[str, BlockResult], layout: Layout
                   ) -> tuple[str, dict[str, bytes], list[str]]:
    """Note text (with BOM) with each block's result callout replaced or inserted.

    ``hashed`` pairs each tagged fence with its hash; ``results`` maps a hash to its result, so a result
    lands only on a block that still hashes the same (an edit made during the run wins).
    Returns the new text, the figure files to write (name → PNG), and the figure files it replaced.
    """
    offsets = _offsets(note)
    edits: list[tuple[int, int, str]] = []
    figures: dict[str, bytes] = {}
    old_figures: list[str] = []
    for fence, block_hash in hashed:
        result = results.get(block_hash)
        if result is None or not fence.closed:
            continue
        stored = stored_result(note, fence, offsets)
        eol = _eol(note, fence)
        at = offsets[fence.span.end]
        following = note.lines[fence.span.end] if fence.span.end < len(note.lines) else ""
        if stored is not None:
            old_figures += stored.figures
            after = note.text[stored.end:]
            following = after.split("\n", 1)[0] if after else ""
        separator = bool(_bare(following)[len(fence.prefix):].strip())
        lines = render_callout(note, fence, result, layout, output_option=fence.tag.output,
                               separator=separator)
        quote = fence.prefix + ">"
        text_lines = [f"{quote} {line}" if line else quote for line in lines]
        if separator:
            text_lines.append(fence.prefix.rstrip())
        new = eol.join(text_lines) + eol
        start, end = (stored.start, stored.end) if stored else (at, at)
        if end == len(note.text) and not note.text.endswith(("\n", "\r")):
            new = eol + new[: -len(eol)]  # keep "no final newline": the fence line gets the ending instead
            if stored is None:
                start = end = len(note.text)
        for i, png in enumerate(result.figures):
            figures[figure_name(note, result, i)] = png
        edits.append((start, end, new))
    text = note.text
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return (BOM if note.bom else "") + text, figures, [f for f in old_figures if f not in figures]


def remove_results(note: Note) -> tuple[str, list[str]]:
    """Note text (with BOM) without any result callout, and the figure files those callouts embedded."""
    offsets = _offsets(note)
    text, figures = note.text, []
    regions = [r for fence in note.blocks if (r := stored_result(note, fence, offsets))]
    for region in sorted(regions, key=lambda r: r.start, reverse=True):
        text = text[: region.start] + text[region.end :]
        figures += region.figures
    return (BOM if note.bom else "") + text, figures


def write_atomic(path: Path, content: str | bytes) -> None:
    """Replace a file's content all at once (temp file in the same folder, then rename); keep its mode."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    mode = path.stat().st_mode & 0o7777 if path.exists() else None
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(handle.name, mode)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def attachment_dir(vault: Vault, note_rel: str) -> Path:
    """Where a note's figures go: the Obsidian attachment folder, or the vault root if that points outside."""
    root = vault.root.resolve()
    folder = (root / vault.attachment_folder(note_rel)).resolve()
    return folder if folder.is_relative_to(root) else root


def remove_attachments(vault: Vault, note_rel: str, names: list[str]) -> None:
    """Delete figure files notevault wrote for a note (only PNGs inside the vault)."""
    folder = attachment_dir(vault, note_rel)
    for name in names:
        path = (folder / name).resolve()
        if path.is_relative_to(vault.root.resolve()) and path.suffix == ".png":
            path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Cleaned:
    path: str  # as shown to the user, relative to the current folder
    results: int  # result callouts removed
    figures: int  # figure files removed


def clean_notes(vault: Vault, paths: list[Path]) -> list[Cleaned]:
    """``notevault clean``: remove every result callout and its figure files; return the notes changed."""
    changed = []
    for path in vault.notes(paths):
        note = vault.note(vault.relative(path))
        if not isinstance(note, Note):
            continue
        results = sum(1 for fence in note.blocks if stored_result(note, fence))
        text, figures = remove_results(note)
        if text == note.raw():
            continue
        write_atomic(path, text)
        remove_attachments(vault, vault.relative(path), figures)
        changed.append(Cleaned(os.path.relpath(path), results, len(figures)))
    return changed
