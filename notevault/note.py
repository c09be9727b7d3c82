"""A note parsed into parts that each carry their exact source span.

The raw text stays the source of truth (BOM, CRLF, a missing final newline are kept); every span comes from
markdown-it tokens. Lines are 0-based half-open in ``Span`` and 1-based wherever a user sees them.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from . import callout
from .errors import NoteError
from .files import Source, read_source
from .findings import Finding
from .obsidian import BLOCK_ID, CALLOUT_HEADER, TRAILING_BLOCK_ID, obsidian_plugin, split_wikilink
from .tags import Tag, parse_info

if TYPE_CHECKING:  # the parser is imported when a note is first parsed: a run with nothing to do never needs it
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

BOM = "\ufeff"
# The same rule markdown-it uses; str.splitlines() would also split on \x0c, \x85, \u2028.
LINE_BREAK = re.compile(r"\r\n?|\n")
OTHER_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")  # where splitlines() disagrees
LIST_MARKER = re.compile(r"[-*+]|\d{1,9}[.)]")
BLOCK_ID_LINE = re.compile(r"^\^[A-Za-z0-9-]+[ \t]*$")
# A figure embed notevault writes on a line of its own: ![[name.png]] or ![](path/name.png).
FIGURE_EMBED = re.compile(r"^!\[\[(?P<name>[^\]|]+\.png)\]\]$|^!\[\]\((?P<path>[^)\s]+\.png)\)$")


@dataclass(frozen=True)
class Span:
    """Lines ``start`` (inclusive) to ``end`` (exclusive), 0-based."""

    start: int
    end: int

    @property
    def line(self) -> int:
        """The 1-based line a user sees for the start of the span."""
        return self.start + 1


@dataclass(frozen=True)
class Heading:
    level: int
    title: str
    span: Span  # the heading line through the end of its section (next heading of the same or higher level)


@dataclass(frozen=True)
class Callout:
    type: str
    fold: str  # "", "+" or "-"
    title: str
    depth: int  # 0 for a top-level callout, 1 inside another callout …
    span: Span


@dataclass(frozen=True)
class Fence:
    language: str
    info: str
    code: str  # the body with container prefixes (``> ``, list indentation) removed
    span: Span  # opening fence through closing fence
    prefix: str  # what continues the fence's container on a new line ("> ", "  ", "")
    closed: bool
    tag: Tag | None

    @property
    def body_start(self) -> int:
        """0-based line of the first code line."""
        return self.span.start + 1


@dataclass(frozen=True)
class ResultCallout:
    """A result callout notevault wrote, read back from the note (see callout.py for its format)."""

    id: str
    hash: str
    status: str
    device: str | None
    seconds: float | None
    error: str | None  # the one-line summary in its title
    span: Span  # notevault's own lines: title through its last line (and its blank separator line, if any)
    quote: str  # the quote prefix of its lines: ">" or "> >" (inside a callout) or "  >" (in a list)
    lines: tuple[str, ...]  # its lines without the quote
    intact: bool  # its checksum holds: nobody edited it
    legacy: bool  # written by notevault 0.1 (no checksum)
    figures: tuple[str, ...]  # figure file names its embed lines name

    @property
    def body(self) -> tuple[str, ...]:
        """The lines below title and marker."""
        return self.lines[2:]


@dataclass(frozen=True)
class Block:
    """A fence tagged ``python run``/``python check``: its id, and the result callout below it, if any."""

    fence: Fence
    id: str  # tag's id=, else L<line> counted without notevault's result callouts
    result: ResultCallout | None
    below: int | None = None  # where its result goes when it has none (0-based): after a ``^id`` line under it

    @property
    def insert_at(self) -> int:
        """The line a new result callout is inserted at: right below the fence, or below the Obsidian block id
        (``^code1``) written under it, which must stay attached to the block it names."""
        return self.below if self.below is not None else self.fence.span.end

    @property
    def tag(self) -> Tag:
        return self.fence.tag

    @property
    def span(self) -> Span:
        return self.fence.span

    @property
    def code(self) -> str:
        return self.fence.code

    @property
    def body_start(self) -> int:
        return self.fence.body_start

    @property
    def closed(self) -> bool:
        return self.fence.closed

    @property
    def prefix(self) -> str:
        return self.fence.prefix


@dataclass(frozen=True)
class Math:
    latex: str
    line: int  # 1-based
    span: Span
    block_id: str | None


@dataclass(frozen=True)
class Link:
    kind: str  # image | link | embed | wikilink | html-img
    target: str  # decoded path or note name, without #fragment
    fragment: str | None  # "Heading" or "^block"
    line: int
    col: int

    @property
    def is_remote(self) -> bool:
        return self.target.startswith(("http://", "https://"))


@dataclass(frozen=True)
class Comment:
    text: str
    line: int


@dataclass(frozen=True)
class Note:
    path: Path
    text: str  # without the BOM; line endings as in the file
    bom: bool
    lines: tuple[str, ...]  # each with its own line ending
    front_matter: dict
    headings: tuple[Heading, ...]
    callouts: tuple[Callout, ...]
    fences: tuple[Fence, ...]
    maths: tuple[Math, ...]
    links: tuple[Link, ...]
    comments: tuple[Comment, ...]
    block_ids: frozenset[str] = field(default=frozenset())
    problems: tuple[Finding, ...] = field(default=())
    blocks: tuple[Block, ...] = field(default=())  # the tagged fences, in note order
    orphans: tuple[ResultCallout, ...] = field(default=())  # result callouts whose block is gone or moved away
    source: Source | None = None  # the file's bytes it was read from (size, time, hash)
    light: bool = False  # read for running only: links, embeds, comments and most block ids were skipped

    def raw(self) -> str:
        return (BOM if self.bom else "") + self.text

    @cached_property
    def offsets(self) -> tuple[int, ...]:
        """Character offset of each line's start, and of the end of the text."""
        offsets, total = [0], 0
        for line in self.lines:
            total += len(line)
            offsets.append(total)
        return tuple(offsets)

    @property
    def results(self) -> tuple[ResultCallout, ...]:
        """Every result callout in the note, attached or orphaned."""
        attached = tuple(b.result for b in self.blocks if b.result is not None)
        return tuple(sorted(attached + self.orphans, key=lambda r: r.span.start))

    def line_text(self, line: int) -> str:
        """The 1-based line without its ending."""
        return LINE_BREAK.sub("", self.lines[line - 1]) if 0 < line <= len(self.lines) else ""


def split_lines(text: str) -> list[str]:
    """Split into lines that keep their endings, so ``"".join(split_lines(t)) == t``."""
    if not OTHER_BREAKS.search(text):
        return text.splitlines(keepends=True)  # only \n breaks: the fast built-in agrees with markdown-it
    lines, start = [], 0
    for match in LINE_BREAK.finditer(text):
        lines.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        lines.append(text[start:])
    return lines


@lru_cache(maxsize=2)
def markdown(light: bool = False) -> MarkdownIt:
    """The one parser configuration notevault uses everywhere.

    ``light``: what running needs, for about two thirds of the time. Block structure as always (fences, result
    callouts, display math and its ^id), but markdown-it's inline pass only for paragraphs holding ``$$``
    (display math written inside text); links, embeds and comments are left unread.
    """
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin
    from mdit_py_plugins.front_matter import front_matter_plugin

    md = MarkdownIt("commonmark").enable("table")
    md.use(front_matter_plugin)
    md.use(dollarmath_plugin, allow_labels=False, double_inline=True)
    md.use(obsidian_plugin)
    if light:
        md.core.ruler.at("inline", _inline_math_only)
    return md


def _inline_math_only(state) -> None:
    for token in state.tokens:
        if token.type == "inline":
            token.children = []
            if "$$" in token.content:
                state.md.inline.parse(token.content, state.md, state.env, token.children)


def decode(data: bytes, path: Path) -> tuple[str, bool]:
    """Decode a note's bytes as UTF-8, saying where it fails; return (text without BOM, had BOM)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise NoteError("UTF-16 text, not UTF-8: re-save the note as UTF-8", path, 1)
    if b"\x00" in data[:8192]:
        raise NoteError("binary file, not a UTF-8 note", path, data[:8192].count(b"\n", 0, data.find(b"\x00")) + 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise NoteError(f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}): re-save the note "
                        "as UTF-8", path, line) from None
    bom = text.startswith(BOM)
    return (text[1:] if bom else text), bom


def read_note(path: Path, *, light: bool = False) -> Note:
    """Read and parse a note file; raises NoteError when it cannot be read as a UTF-8 note."""
    try:
        data, source = read_source(path)
    except OSError as exc:
        raise NoteError(f"cannot read: {exc.strerror}", path) from None
    text, bom = decode(data, path)
    return replace(parse_note(text, path, bom=bom, light=light), source=source)


def parse_note(text: str, path: Path = Path("note.md"), *, bom: bool = False, light: bool = False) -> Note:
    """Parse note text (without BOM) into a Note (``light``: for running only, see ``markdown``)."""
    lines = tuple(split_lines(text))
    return replace(_NoteBuilder(path, text, lines, light).build(bom), light=light)


class _NoteBuilder:
    """One pass over markdown-it's token stream, collecting each part with its span."""

    def __init__(self, path: Path, text: str, lines: tuple[str, ...], light: bool = False) -> None:
        self.path, self.text, self.lines, self.light = path, text, lines, light
        self.front_matter: dict = {}
        self.headings: list[tuple[int, str, int]] = []
        self.callouts: list[Callout] = []
        self.fences: list[Fence] = []
        self.maths: list[Math] = []
        self.links: list[Link] = []
        self.comments: list[Comment] = []
        self.block_ids: set[str] = set()
        self.problems: list[Finding] = []
        self._link_cursor: dict[tuple[int, str], int] = {}
        self.results: dict[int, ResultCallout] = {}  # by index of its blockquote_open token
        self.attached: dict[int, int] = {}  # index of a tagged fence in self.fences -> its result's token index
        self.anchored: dict[int, int] = {}  # index of a tagged fence -> end line of the ^id line right below it

    def build(self, bom: bool) -> Note:
        tokens = markdown(self.light).parse(self.text)
        callout_depth: list[bool] = []  # one entry per open blockquote: is it a callout?
        for i, token in enumerate(tokens):
            if token.type == "blockquote_open":
                callout_depth.append(self._callout(tokens, i, sum(callout_depth)))
            elif token.type == "blockquote_close":
                callout_depth.pop()
            elif token.type == "front_matter":
                self._front_matter(token)
            elif token.type == "heading_open":
                self.headings.append((int(token.tag[1]), tokens[i + 1].content.strip(), token.map[0]))
            elif token.type == "fence":
                self._fence(token)
                if self.fences[-1].tag is not None:
                    self._attach_result(tokens, i)
            elif token.type == "math_block":
                self._math_block(token, tokens[i + 1] if i + 1 < len(tokens) else None)
            elif token.type == "inline":
                self._inline(token)
            elif token.type == "html_block":
                self._html_images(token.content, token.map[0])
            elif token.type == "obsidian_comment":
                self.comments.append(Comment(token.content, token.map[0] + 1))
        return Note(
            path=self.path,
            text=self.text,
            bom=bom,
            lines=self.lines,
            front_matter=self.front_matter,
            headings=self._sections(),
            callouts=tuple(self.callouts),
            fences=tuple(self.fences),
            maths=tuple(self.maths),
            links=tuple(self.links),
            comments=tuple(self.comments),
            block_ids=frozenset(self.block_ids | {m.block_id for m in self.maths if m.block_id}),
            problems=tuple(self.problems),
            blocks=(blocks := self._blocks()),
            orphans=tuple(r for r in self.results.values() if all(b.result is not r for b in blocks)),
        )

    def _blocks(self) -> tuple[Block, ...]:
        """Tagged fences with their result callouts and ids; ids count lines without notevault's callouts."""
        blocks, regions = [], sorted(self.results.values(), key=lambda r: r.span.start)
        ours_above, next_region = 0, 0
        self.attached = {n: i for n, i in self.attached.items() if i in self.results}
        for n, fence in enumerate(self.fences):
            if fence.tag is None:
                continue
            while next_region < len(regions) and regions[next_region].span.start < fence.span.start:
                ours_above += regions[next_region].span.end - regions[next_region].span.start
                next_region += 1
            result = self.results.get(self.attached[n]) if n in self.attached else None
            blocks.append(Block(fence, fence.tag.id or f"L{fence.span.line - ours_above}", result,
                                self.anchored.get(n)))
        return tuple(blocks)

    def _problem(self, rule: str, line: int, message: str, col: int = 1) -> None:
        self.problems.append(Finding(rule, "error", line, col, message))

    def _front_matter(self, token: Token) -> None:
        import yaml

        try:
            data = yaml.safe_load(token.content)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 2 if mark else 1  # +1 for 1-based, +1 for the opening ---
            reason = getattr(exc, "problem", None) or str(exc)
            self._problem("front-matter", line, f"broken YAML front matter: {reason}")
            return
        if data is None:
            return
        if not isinstance(data, dict):
            self._problem("front-matter", 1, "front matter is not a mapping of keys to values")
            return
        self.front_matter = data

    def _callout(self, tokens: list[Token], i: int, depth: int) -> bool:
        if i + 2 >= len(tokens) or tokens[i + 1].type != "paragraph_open":
            return False
        first_line = tokens[i + 2].content.split("\n", 1)[0]
        match = CALLOUT_HEADER.match(first_line)
        if not match:
            return False
        span = Span(tokens[i].map[0], tokens[i].map[1])
        self.callouts.append(
            Callout(match["type"].lower(), match["fold"], match["title"].strip(), depth, span)
        )
        result = self._result_callout(span)
        if result is not None:
            self.results[i] = result
        return True

    def _result_callout(self, span: Span) -> ResultCallout | None:
        """The callout at ``span`` read as a result notevault wrote, or None if it is not one of ours."""
        title_text = self._bare(span.start)
        if "[!" not in title_text:
            return None
        quote = callout.quote_of(title_text)
        lines = []
        for n in range(span.start, span.end):
            line = callout.unquote(self._bare(n), quote)
            if line is None:
                break  # a lazy continuation line: markdown's, not ours
            lines.append(line)
        title = callout.read_title(lines[0])
        marker = callout.MARKER.match(lines[1]) if len(lines) > 1 else None
        if title is None or marker is None or marker["id"] != title.id:
            return None
        length = callout.intact_length(lines, marker["sum"]) if marker["sum"] else None
        end = span.start + (length or len(lines))
        ours_whole = length is not None or marker["sum"] is None
        if ours_whole and marker["sep"] and end < len(self.lines) and not self._bare(end).strip(" \t>"):
            end += 1  # the blank line notevault put between its callout and the text below
        ours = tuple(lines[: end - span.start]) if length else tuple(lines)
        return ResultCallout(
            id=marker["id"], hash=marker["hash"], status=title.status, device=title.device, seconds=title.seconds,
            error=title.error, span=Span(span.start, end), quote=quote, lines=ours, intact=length is not None,
            legacy=marker["sum"] is None, figures=_figures(ours),
        )

    def _attach_result(self, tokens: list[Token], i: int) -> None:
        """A result callout belongs to the block it follows, with nothing but blank lines between.

        Noted here, kept in ``_blocks`` if the blockquote turns out to be a result callout (read later).
        """
        fence_token = tokens[i]
        after, j = fence_token.map[1], i + 1
        if _is_block_id(tokens, j, after):  # ```…``` then ^code1: the result goes below the id
            after, j = tokens[j].map[1], j + 3
            self.anchored[len(self.fences) - 1] = after
        following = tokens[j] if j < len(tokens) else None
        if following is None or following.type != "blockquote_open" or following.level != fence_token.level:
            return
        gap = range(after, following.map[0])
        if all(not self._bare(n).strip(" \t>") for n in gap):
            self.attached[len(self.fences) - 1] = j

    def _fence(self, token: Token) -> None:
        start, end = token.map
        opening = self._bare(start)
        prefix = opening[: opening.find(token.markup)] if token.markup in opening else ""
        continuation = LIST_MARKER.sub(lambda m: " " * len(m.group()), prefix)
        # markdown-it's own reading: a closed fence spans its body plus the opening and closing lines.
        body_lines = token.content.count("\n") + (1 if token.content and not token.content.endswith("\n") else 0)
        closed = end - start == body_lines + 2
        language, tag = parse_info(token.info)
        if not closed:
            self._problem("unclosed-fence", start + 1, f"code fence {token.markup}{language} is never closed")
        self.fences.append(
            Fence(language, token.info.strip(), token.content, Span(start, end), continuation, closed, tag)
        )

    def _math_block(self, token: Token, following: Token | None) -> None:
        start, end = token.map
        block_id = None
        if following is not None and following.type == "paragraph_open" and following.map[0] == end:
            # The id paragraph's inline content is the next-but-one token; read the raw line instead.
            match = BLOCK_ID.match(self._bare(end).strip().lstrip("> ").strip())
            block_id = match["id"] if match else None
        # dollarmath reads "$$a$$$$b$$" on one line as one block; Obsidian shows two formulas.
        parts = token.content.split("$$")
        offset = 0
        for n, part in enumerate(parts):
            if part.strip():
                line = start + 1 + token.content[:offset].count("\n")
                last = n == len(parts) - 1 or not any(p.strip() for p in parts[n + 1 :])
                self.maths.append(Math(part.strip(), line, Span(start, end), block_id if last else None))
            offset += len(part) + 2

    def _inline(self, token: Token) -> None:
        if token.map is None or not token.children:
            return
        if "^" in token.content:
            for text_line in token.content.split("\n"):
                match = TRAILING_BLOCK_ID.search(text_line) or BLOCK_ID.match(text_line.strip())
                if match:
                    self.block_ids.add(match["id"])
        base, offset = token.map[0], 0
        content_cursor = 0
        for child in token.children:
            line = base + offset
            if child.type in ("softbreak", "hardbreak"):
                offset += 1
            elif child.type == "image":
                self._add_link("image", unquote(child.attrs.get("src", "")), line, "![")
            elif child.type == "link_open":
                href = str(child.attrs.get("href", ""))
                if href and not href.startswith(("#", "mailto:")):
                    self._add_link("link", unquote(href), line, "](")
            elif child.type == "wikilink":
                target = split_wikilink(child.content)
                kind = "embed" if child.meta["embed"] else "wikilink"
                fragment = f"^{target.block}" if target.block else target.heading
                col = self._column(line, child.markup + child.content)
                self.links.append(Link(kind, target.path, fragment, line + 1, col))
            elif child.type == "html_inline":
                self._html_images(child.content, line)
            elif child.type == "math_inline_double":
                content_cursor = self._inline_math(token, child, base, content_cursor)
            elif child.type == "obsidian_comment":
                self.comments.append(Comment(child.content, line + 1))
            if child.type in ("math_inline_double", "html_inline", "obsidian_comment"):
                offset += child.content.count("\n")

    def _inline_math(self, token: Token, child: Token, base: int, cursor: int) -> int:
        source = f"$${child.content}$$"
        at = token.content.find(source, cursor)
        if at < 0:
            return cursor
        end = at + len(source)
        line = base + token.content.count("\n", 0, at)
        after = token.content[end:].split("\n", 2)
        block_id = None
        same_line = TRAILING_BLOCK_ID.match(" " + after[0]) if after[0].strip() else None
        if same_line:
            block_id = same_line["id"]
        elif not after[0].strip() and len(after) > 1 and BLOCK_ID.match(after[1].strip()):
            block_id = after[1].strip()[1:]
        last_line = base + token.content.count("\n", 0, end)
        self.maths.append(Math(child.content.strip(), line + 1, Span(line, last_line + 1), block_id))
        return end

    def _html_images(self, html: str, first_line: int) -> None:
        if "<img" not in html.lower():
            return
        for (row, _col), src in _img_sources(html):
            line = first_line + row - 1
            self._add_link("html-img", unquote(src), line, "<img")

    def _add_link(self, kind: str, target: str, line: int, marker: str) -> None:
        path, _, fragment = target.partition("#")
        col = self._column(line, marker)
        self.links.append(Link(kind, path, fragment or None, line + 1, col))

    def _column(self, line: int, marker: str) -> int:
        """1-based column of the next unclaimed ``marker`` on a line (markdown-it gives lines, not columns)."""
        text = self._bare(line)
        key = (line, marker[:2])
        at = text.find(marker, self._link_cursor.get(key, 0))
        if at < 0:
            return 1
        self._link_cursor[key] = at + 1
        return at + 1

    def _bare(self, line: int) -> str:
        return LINE_BREAK.sub("", self.lines[line]) if line < len(self.lines) else ""

    def _sections(self) -> tuple[Heading, ...]:
        headings = []
        for n, (level, title, start) in enumerate(self.headings):
            end = len(self.lines)
            for other_level, _, other_start in self.headings[n + 1 :]:
                if other_level <= level:
                    end = other_start
                    break
            headings.append(Heading(level, title, Span(start, end)))
        return tuple(headings)


def _is_block_id(tokens: list[Token], i: int, line: int) -> bool:
    """Is token ``i`` a paragraph of one line, ``line``, holding only an Obsidian block id (``^code1``)?"""
    return (i + 1 < len(tokens) and tokens[i].type == "paragraph_open" and tokens[i].map == [line, line + 1]
            and BLOCK_ID_LINE.match(tokens[i + 1].content) is not None)


def _figures(lines: tuple[str, ...]) -> tuple[str, ...]:
    """File names of the figure embeds notevault wrote: embed lines outside the callout's fenced output."""
    names, fence = [], None
    for line in lines:
        if fence is not None:
            if line.rstrip() == fence:
                fence = None
            continue
        if line.startswith("```"):
            fence = line[: len(line) - len(line.lstrip("`"))]
            continue
        match = FIGURE_EMBED.match(line)
        if match:
            names.append(match["name"] or posixpath.basename(unquote(match["path"])))
    return tuple(names)


class _ImgSources(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[tuple[int, int], str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            src = dict(attrs).get("src")
            if src:
                self.found.append((self.getpos(), src))

    handle_startendtag = handle_starttag


def _img_sources(html: str) -> list[tuple[tuple[int, int], str]]:
    parser = _ImgSources()
    parser.feed(html)
    parser.close()
    return parser.found
