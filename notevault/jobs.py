"""What crosses the process boundary: jobs the CLI sends to a worker, and the messages a worker sends back.

A job is one namespace: a note's blocks, a named session's blocks across notes, or one isolated block. The CLI
pickles it to the worker (the CLI is trusted). The worker runs the user's code, which can break anything in its
own process (``__builtins__``, ``pickle``, its file descriptors), so what comes back is plain JSON in length-prefixed
frames that the CLI decodes and checks field by field: a malformed message fails that job, never the CLI.

Block code is compiled under a placeholder file name, ``\\ue000<task index>\\ue000``, with lines counted from the
block's first code line. Results keep those placeholders, so a result does not depend on where its block sits in
the note; ``locate`` turns them into the note's path and line when the result is written or reported.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from .results import STATUSES, BlockResult

FRAME_HEADER = struct.Struct("!i")  # multiprocessing.connection's framing, so the CLI reads with recv_bytes
MAX_MESSAGE_BYTES = 64 << 20
OUTPUT_CUT = "\n… output cut: {size:,} bytes in all\n"  # the worker's last line when a block printed too much
OUTPUT_CUT_LINE = re.compile(r"\n… output cut: [0-9,]+ bytes in all$")  # that line, found again by the writer
PLACE = "\ue000"
PLACEHOLDER = re.compile(PLACE + r"(?P<task>\d+)" + PLACE + r"""(?:(?P<sep>", line |, line |:)(?P<line>\d+))?""")


def filename_of(task_index: int) -> str:
    """The name a block is compiled under: tracebacks and warnings carry it until ``locate`` resolves it."""
    return f"{PLACE}{task_index}{PLACE}"


@dataclass(frozen=True)
class Task:
    """One block to execute."""

    id: str  # the block's id, for messages
    kind: str  # run | check
    code: str
    cwd: str  # the note's folder: a block reads relative files from there
    device: str  # cpu | cuda | auto
    timeout: float
    seed: int = 0
    expect: str | None = None
    replay: bool = False  # only rebuild the namespace for later blocks: its result is already known
    formula: str | None = None  # LaTeX to check after the code ran
    formula_id: str | None = None
    rtol: float = 1e-5
    atol: float = 1e-6


@dataclass(frozen=True)
class Job:
    """The blocks of one namespace, run in order by one freshly forked worker."""

    name: str
    tasks: tuple[Task, ...]
    import_paths: tuple[str, ...] = ()  # snippets/ and the notes' folders
    threads: int = 1
    memory_limit_mb: int | None = None


class ProtocolError(Exception):
    """A worker sent something that is not a well-formed message."""


@dataclass(frozen=True)
class Started:
    task: int
    device: str | None


@dataclass(frozen=True)
class Finished:
    task: int
    result: BlockResult


@dataclass(frozen=True)
class Done:
    pass


Message = Started | Finished | Done


def frame(message: dict, dumps: Callable[..., str] = json.dumps, pack: Callable[[int], bytes] = FRAME_HEADER.pack,
          length: Callable[[bytes], int] = len) -> bytes:
    """A message as one frame. The worker passes the functions it bound before any user code ran."""
    payload = dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    return pack(length(payload)) + payload


def decode(payload: bytes, job: Job) -> Message:
    """A frame's payload as a checked message of this job; ProtocolError for anything else."""
    try:
        data = json.loads(payload)
        kind = data["kind"]
        if kind == "done":
            return Done()
        task = data["task"]
        if not isinstance(task, int) or isinstance(task, bool) or not 0 <= task < len(job.tasks):
            raise ProtocolError(f"no task {task!r} in this job")
        if kind == "start":
            device = data["device"]
            if device is not None and not isinstance(device, str):
                raise ProtocolError("device is not a string")
            return Started(task, device)
        if kind == "result":
            result = BlockResult.from_json(data["result"])
            if result.status not in STATUSES:
                raise ProtocolError(f"unknown status {result.status!r}")
            return Finished(task, result)
        raise ProtocolError(f"unknown message kind {kind!r}")
    except ProtocolError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise ProtocolError(f"{type(exc).__name__}: {exc}") from None


Locate = Callable[[int], tuple[str, int] | None]  # task index -> (note path as shown, 0-based line of its code)


def locate(text: str | None, where: Locate) -> str | None:
    """Replace placeholders with note paths and note lines (line n of task t is note line where(t)[1] + n)."""
    if not text or PLACE not in text:
        return text

    def replace(match: re.Match) -> str:
        found = where(int(match["task"]))
        if found is None:
            return match.group(0).replace(PLACE, "")
        path, body_start = found
        if match["line"] is None:
            return path
        return f"{path}{match['sep']}{body_start + int(match['line'])}"

    return PLACEHOLDER.sub(replace, text)
