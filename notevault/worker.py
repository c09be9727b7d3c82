"""Runs jobs inside a forked worker process: each job's blocks in one fresh namespace, like notebook cells.

A worker serves job after job for as long as none leaves a trace the next could see (leaks.py).

This module is imported by the CLI process too (for Task and Job), so it must not import torch at the top:
torch comes from the warm worker template (notevault.warm) that the worker was forked from.
"""

from __future__ import annotations

import ast
import io
import linecache
import os
import random
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from .leaks import StateWatch
from .results import BlockResult, FormulaResult

MAX_OUTPUT_BYTES = 1 << 20  # a block printing 50 MB must not flood the note or the parent
MAX_VALUE_CHARS = 10_000
NO_CUDA = "CUDA is not available here"


@dataclass(frozen=True)
class Task:
    """One block to execute."""

    id: str
    line: int  # 1-based line of the opening fence
    kind: str
    code: str
    body_start: int  # 0-based note line of the first code line: code line 1 is note line body_start + 1
    filename: str  # the note's path as shown in tracebacks
    hash: str
    device: str  # cpu | cuda | auto
    timeout: float
    seed: int = 0
    expect: str | None = None
    replay: bool = False  # only rebuild the namespace: its result is already known
    formula: str | None = None  # LaTeX to check after the code ran
    formula_id: str | None = None
    rtol: float = 1e-5
    atol: float = 1e-6


@dataclass(frozen=True)
class Job:
    """One worker process: blocks sharing a namespace (a note, a named session, or one isolated block)."""

    name: str
    tasks: tuple[Task, ...]
    cwd: str
    import_paths: tuple[str, ...] = ()
    threads: int = 1
    memory_limit_mb: int | None = None
    sources: dict[str, dict[int, str]] = field(default_factory=dict)  # filename -> {note line: code line}
    share_worker: bool = True  # False (isolation: process): the worker exits after this job

    @property
    def worker_kind(self) -> tuple:
        """Jobs of one kind can follow each other in a worker (its memory limit and thread count stay)."""
        return (self.memory_limit_mb, self.threads, any(t.device == "cuda" for t in self.tasks))


def serve(conn: Connection) -> None:
    """Entry point of a forked worker: run the jobs the CLI sends, one at a time, while they leave no trace.

    Sends ("start", i, device) and ("result", i, BlockResult) for each block, then ("done", reusable, leaks).
    Exits after a job that leaked (see leaks.py), or when the CLI closes the connection.
    """
    output = _capture_output()
    watch: StateWatch | None = None
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            break
        if watch is None:
            _limit_memory(job)
            sys.modules["torch"].set_num_threads(job.threads)
            watch = StateWatch()
        if not run_job(job, conn, output, watch):
            break
    conn.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown: nothing of this process is needed any more


def run_job(job: Job, conn: Connection, output: _Output, watch: StateWatch) -> bool:
    """Run one job's blocks in a fresh namespace; return whether this worker may run another job."""
    import torch

    _register_sources(job.sources)
    os.chdir(job.cwd)  # the next job changes it again: a chdir in a note does not leak
    search_path = list(sys.path)
    sys.path[:0] = [p for p in job.import_paths if p not in sys.path]
    output.reset()
    namespace: dict = {"__name__": "__main__", "torch": torch}
    failed = False
    for index, task in enumerate(job.tasks):
        device = _resolve_device(task.device)
        conn.send(("start", index, device.type if device else None))
        result = _run_task(task, device, namespace, output)
        failed = failed or result.status == "failed"
        conn.send(("result", index, result))
    sys.path[:] = search_path  # a module the note imported through it is a leak of its own
    leaks = ["a block failed"] if failed else watch.leaks([t.code for t in job.tasks], namespace)
    reusable = job.share_worker and not leaks
    conn.send(("done", reusable, leaks))
    return reusable


def _limit_memory(job: Job) -> None:
    if job.memory_limit_mb is None or any(t.device == "cuda" for t in job.tasks):
        return
    import torch

    if any(t.device == "auto" for t in job.tasks) and torch.cuda.is_available():  # NVML check: CUDA stays cold
        return  # CUDA reserves far more address space than it uses: a limit would break it
    import resource

    limit = job.memory_limit_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _register_sources(sources: dict[str, dict[int, str]]) -> None:
    """Let tracebacks show the note's own code lines."""
    for filename, by_line in sources.items():
        lines = ["\n"] * (max(by_line, default=0))
        for number, text in by_line.items():
            lines[number - 1] = text + "\n"
        linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)


class _Output:
    """stdout and stderr of this process (Python and C level alike) go to one file, in the order written."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile()
        self.mark = 0

    def reset(self) -> None:
        os.ftruncate(self.file.fileno(), 0)
        self.mark = 0

    def begin(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.mark = os.lseek(self.file.fileno(), 0, os.SEEK_END)

    def read(self) -> str:
        sys.stdout.flush()
        sys.stderr.flush()
        end = os.lseek(self.file.fileno(), 0, os.SEEK_END)
        size = end - self.mark
        data = os.pread(self.file.fileno(), min(size, MAX_OUTPUT_BYTES), self.mark)
        text = data.decode("utf-8", errors="replace")
        if size > MAX_OUTPUT_BYTES:
            text += f"\n… output cut: {size:,} bytes in all\n"
        return text


def _capture_output() -> _Output:
    output = _Output()
    fd = output.file.fileno()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0, closefd=False), encoding="utf-8", write_through=True)
    sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", buffering=0, closefd=False), encoding="utf-8", write_through=True)
    return output


def _resolve_device(requested: str):
    import torch

    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    return None if requested == "cuda" else torch.device("cpu")


def seed_everything(seed: int) -> None:
    """What torch.manual_seed does, minus its per-call stack capture for CUDA's lazy seeding (≈1–3 ms a block)."""
    import torch

    random.seed(seed)
    torch.random.default_generator.manual_seed(seed)
    if torch.cuda.is_available():  # NVML-based check: does not initialise CUDA
        torch.cuda.manual_seed_all(seed)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(seed)


def _run_task(task: Task, device, namespace: dict, output: _Output) -> BlockResult:
    base = BlockResult(id=task.id, line=task.line, kind=task.kind, status="passed", hash=task.hash)
    if device is None:
        return BlockResult(**{**base.__dict__, "status": "skipped", "error": NO_CUDA})
    namespace["device"] = device
    seed_everything(task.seed)
    output.begin()
    start = time.perf_counter()
    value, error, trace, formula = None, None, None, None
    try:
        value = _execute(task, namespace)
        if task.formula is not None:
            formula, error = _check_formula(task, namespace)
    except BaseException as exc:  # noqa: BLE001 - the user's code may raise anything, SystemExit included
        error, trace = _describe_exception(exc, task.filename)
    seconds = time.perf_counter() - start
    status = "failed" if error else "passed"
    if task.expect is not None:
        status, error = _expected(task.expect, error, trace)
    return BlockResult(
        id=task.id, line=task.line, kind=task.kind, status=status, hash=task.hash, device=device.type,
        seconds=seconds, error=error, output=output.read(), value=value, traceback=trace,
        figures=_take_figures(), formula=formula,
    )


def _execute(task: Task, namespace: dict) -> str | None:
    """exec the block with note line numbers; return the repr of a last bare expression, as Jupyter shows it."""
    tree = ast.parse(task.code, filename=task.filename)
    ast.increment_lineno(tree, task.body_start)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, task.filename, "exec"), namespace)
    if last is None:
        return None
    result = eval(compile(ast.Expression(last.value), task.filename, "eval"), namespace)
    if result is None:
        return None
    text = repr(result)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + " …"


def _check_formula(task: Task, namespace: dict) -> tuple[FormulaResult, str | None]:
    from .formula import check_formula

    outcome = check_formula(task.formula, namespace, rtol=task.rtol, atol=task.atol)
    result = FormulaResult(task.formula_id, outcome.max_abs_err, outcome.max_rel_err, outcome.shapes)
    return result, outcome.error


def _describe_exception(exc: BaseException, filename: str) -> tuple[str, str]:
    """One line for the title, and a traceback that starts at the note's own frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    lines = traceback.format_exception(type(exc), exc, tb)
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return message.splitlines()[0] if message else type(exc).__name__, "".join(lines).rstrip("\n")


def _expected(expect: str, error: str | None, trace: str | None) -> tuple[str, str | None]:
    if error is None:
        return "failed", f"expected {expect} to be raised, but the block ran without error"
    raised = error.split(":", 1)[0]
    if expect == "error" or raised == expect or raised.endswith("." + expect):
        return "passed", None
    return "failed", f"expected {expect}, got {error}"


def _take_figures() -> tuple[bytes, ...]:
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return ()
    figures = []
    for number in pyplot.get_fignums():
        buffer = io.BytesIO()
        pyplot.figure(number).savefig(buffer, format="png", dpi=80, metadata={"Software": None})
        figures.append(buffer.getvalue())
    pyplot.close("all")
    return tuple(figures)
