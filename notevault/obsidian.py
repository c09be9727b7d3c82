"""Obsidian syntax that no markdown-it plugin covers: wikilinks, embeds, ``%%`` comments, callout headers.

Each piece is a plain markdown-it rule (``plugin(md)`` registers them), so spans still come from tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.rules_block import StateBlock
    from markdown_it.rules_inline import StateInline

CALLOUT_HEADER = re.compile(r"^\[!(?P<type>[^\]|]+)(?:\|(?P<meta>[^\]]*))?\](?P<fold>[+-]?)[ \t]*(?P<title>.*)$")
BLOCK_ID = re.compile(r"^\^(?P<id>[A-Za-z0-9-]+)$")
TRAILING_BLOCK_ID = re.compile(r"[ \t]+\^(?P<id>[A-Za-z0-9-]+)[ \t]*$")


@dataclass(frozen=True)
class WikiTarget:
    """The parts of ``[[path#heading|alias]]`` (``#^block`` for block references)."""

    path: str
    heading: str | None
    block: str | None
    alias: str | None


def split_wikilink(inner: str) -> WikiTarget:
    """Split the text between ``[[`` and ``]]`` the way Obsidian reads it."""
    target, _, alias = inner.partition("|")
    path, _, fragment = target.partition("#")
    heading = block = None
    if fragment.startswith("^"):
        block = fragment[1:]
    elif fragment:
        heading = fragment
    return WikiTarget(path.strip(), heading, block, alias or None)


def _wikilink_rule(state: StateInline, silent: bool) -> bool:
    src, pos = state.src, state.pos
    if src[pos] not in "![":
        return False
    embed = src.startswith("![[", pos)
    start = pos + (3 if embed else 2)
    if not (embed or src.startswith("[[", pos)):
        return False
    end = src.find("]]", start)
    newline = src.find("\n", start)
    if end < 0 or (0 <= newline < end) or end == start:
        return False
    if not silent:
        token = state.push("wikilink", "", 0)
        token.content = src[start:end]
        token.markup = "![[" if embed else "[["
        token.meta = {"embed": embed}
    state.pos = end + 2
    return True


def _inline_comment_rule(state: StateInline, silent: bool) -> bool:
    src, pos = state.src, state.pos
    if src[pos] != "%" or not src.startswith("%%", pos):
        return False
    end = src.find("%%", pos + 2)
    if end < 0:
        return False
    if not silent:
        token = state.push("obsidian_comment", "", 0)
        token.content = src[pos + 2 : end]
    state.pos = end + 2
    return True


def _line_text(state: StateBlock, line: int) -> str:
    return state.src[state.bMarks[line] + state.tShift[line] : state.eMarks[line]]


def _block_comment_rule(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    if not state.src.startswith("%%", state.bMarks[start_line] + state.tShift[start_line]):
        return False  # the common case, decided without copying the line
    first = _line_text(state, start_line)
    if state.sCount[start_line] - state.blkIndent >= 4:
        return False
    # A comment closes at the next %% (on the same line or a later one); an unclosed %% is left as text.
    line, rest = start_line, first[2:]
    while "%%" not in rest:
        line += 1
        if line >= end_line:
            return False
        rest = _line_text(state, line)
    if silent:
        return True
    token = state.push("obsidian_comment", "", 0)
    token.map = [start_line, line + 1]
    token.content = "\n".join(_line_text(state, i) for i in range(start_line, line + 1))
    state.line = line + 1
    return True


def obsidian_plugin(md: MarkdownIt) -> None:
    """Register wikilinks/embeds and ``%%`` comments (block and inline)."""
    md.inline.ruler.before("link", "wikilink", _wikilink_rule)
    md.inline.ruler.before("emphasis", "obsidian_comment", _inline_comment_rule)
    md.block.ruler.before(
        "paragraph", "obsidian_comment", _block_comment_rule, {"alt": ["paragraph", "blockquote", "list"]}
    )
