"""The result callout's format: how notevault writes a result into a note, and how it knows it again.

    > [!failure] bad · failed · cpu · 0.01 s · `ZeroDivisionError: division by zero`
    > %% notevault id=bad hash=5faf0dde2eeedd03 sum=0c4e2a9d51f3b7a8 %%
    > ```text
    > …
    > ```

The title says what happened; the hidden ``%% … %%`` marker names the block, the ``hash`` of what produced the
callout (the block's inputs and how it is shown), and the ``sum`` of the callout's own lines, like cog's
checksum: lines that no longer hash to ``sum`` were edited by hand. The marker is also how a callout is told
from the user's own: notevault never touches a callout without one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

CALLOUT_TYPE = {"passed": "success", "failed": "failure", "skipped": "warning", "stale": "warning"}
STATUS_OF_TYPE = {"success": "passed", "failure": "failed", "warning": "skipped"}
MARKER = re.compile(
    r"^%% notevault id=(?P<id>\S+) hash=(?P<hash>[0-9a-f]+)(?: sum=(?P<sum>[0-9a-f]{16}))?(?P<sep> sep)? %%$"
)
TITLE = re.compile(
    r"^\[!(?P<type>success|failure|warning)\](?P<fold>[+-]?) (?P<id>\S+) · (?P<status>passed|failed|skipped)"
    r"(?: · (?P<device>[a-z]+) · (?P<seconds>\d+(?:\.\d+)?) s)?(?: · (?P<error>.*))?$"
)
SUM_CHARS = 16
MAX_TITLE_ERROR = 200


@dataclass(frozen=True)
class Layout:
    """How result callouts look: the vault's settings that go into every callout's hash."""

    fold_lines: int = 20
    max_output_lines: int = 200
    links: str = "wiki"  # how figures are embedded: "wiki" (![[name]]) or a markdown link format

    def key(self) -> str:
        return f"{self.fold_lines}/{self.max_output_lines}/{self.links}"


def marker_line(block_id: str, block_hash: str, content_sum: str, *, separator: bool) -> str:
    return f"%% notevault id={block_id} hash={block_hash} sum={content_sum}{' sep' if separator else ''} %%"


def content_sum(lines: Iterable[str]) -> str:
    """The checksum of a callout's lines (without their quote), the marker line left out."""
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8", "surrogatepass"))
        digest.update(b"\n")
    return digest.hexdigest()[:SUM_CHARS]


def intact_length(lines: list[str], expected: str) -> int | None:
    """How many of ``lines`` (title, marker, body …) notevault wrote: the shortest run whose sum is ``expected``.

    Lines after that run were added by hand (a note typed at the end of the callout, or the user's own callout
    directly below it): they are the user's and stay. None when no run matches: the callout was edited.
    """
    digest = hashlib.sha256()
    for n, line in enumerate(lines):
        if n != 1:  # the marker holds the sum; it is not part of it
            digest.update(line.encode("utf-8", "surrogatepass"))
            digest.update(b"\n")
        if n >= 1 and digest.copy().hexdigest()[:SUM_CHARS] == expected:
            return n + 1
    return None


def unquote(line: str, quote: str) -> str | None:
    """A callout line without its quote prefix; None when the line is not part of that quote."""
    if not line.startswith(quote):
        return None
    rest = line[len(quote):]
    if not rest:
        return ""
    return rest[1:] if rest[0] == " " else None


def quote_of(title_line: str) -> str:
    """The quote prefix of a callout from its title line: ``> [!success] …`` → ``>``; ``> > [!…`` → ``> >``."""
    return title_line[: title_line.index("[!")].rstrip(" ")


def code_span(text: str) -> str:
    """``text`` as an inline code span, so Markdown, links, tags, math and comments in it show literally."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip(" ") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def title_line(block_id: str, status: str, *, device: str | None, seconds: float | None, error: str | None,
               folded: bool) -> str:
    title = f"[!{CALLOUT_TYPE[status]}]{'-' if folded else ''} {block_id} · {status}"
    if device is not None and seconds is not None:
        title += f" · {device} · {seconds:.2f} s"
    if error:
        summary = error if len(error) <= MAX_TITLE_ERROR else error[: MAX_TITLE_ERROR - 1] + "…"
        title += " · " + code_span(summary)
    return title


@dataclass(frozen=True)
class Title:
    """What a result callout's title says."""

    id: str
    status: str
    folded: bool
    device: str | None
    seconds: float | None
    error: str | None


def read_title(text: str) -> Title | None:
    match = TITLE.match(text)
    if match is None or STATUS_OF_TYPE[match["type"]] != match["status"]:
        return None
    seconds = float(match["seconds"]) if match["seconds"] else None
    return Title(match["id"], match["status"], match["fold"] == "-", match["device"], seconds,
                 _code_span_text(match["error"]))


def _code_span_text(span: str | None) -> str | None:
    """The text of an inline code span written by ``code_span`` (None if it is not one)."""
    if not span:
        return None
    ticks = len(span) - len(span.lstrip("`"))
    if ticks == 0 or not span.endswith("`" * ticks) or len(span) < 2 * ticks:
        return None
    inner = span[ticks:-ticks]
    if inner.startswith(" ") and inner.endswith(" ") and inner.strip(" "):
        inner = inner[1:-1]
    return inner


def fenced(text: str, language: str = "text") -> Iterator[str]:
    """``text`` as a fenced block whose fence no line of the text can close."""
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * max(3, longest + 1)
    yield fence + language
    yield from text.split("\n")
    yield fence
