"""Runs one job inside a worker freshly forked from the warm template, then the process exits.

Its blocks run top to bottom in one namespace, like notebook cells. Nothing survives the job: the next job gets
a new fork of the template, so no note can see what another did (isolation by construction, not by inspection).

This module is imported by the template before it forks (notevault.warm), never by the CLI, so it may use torch.
"""

from __future__ import annotations

import ast
import builtins
import io
import json
import linecache
import os
import random
import re
import resource
import sys
import time
import traceback
from multiprocessing.connection import Connection
from types import CodeType

from .jobs import FRAME_HEADER, OUTPUT_CUT, Job, Task, filename_of, frame
from .results import BlockResult, FormulaResult

MAX_OUTPUT_BYTES = 1 << 20  # a block printing 50 MB must not flood the note or the parent
MAX_VALUE_CHARS = 10_000
NO_CUDA = "CUDA is not available here"
# Warnings print "path:line: Category: message"; library paths are shortened like traceback frames.
WARNING_PATH = re.compile(r"^(?P<path>/[^\n:]+\.py)(?=:\d+: )", re.MULTILINE)

# The user's code may rebind builtins, json, os.write … in this process. What sends results back was bound
# before any of it ran, and the builtins the user's code changed are in place only while that code runs:
# notevault's own code in the worker always sees them as they were.
_write, _len, _view, _exit = os.write, builtins.len, builtins.memoryview, os._exit
_dumps, _pack = json.dumps, FRAME_HEADER.pack
_BUILTINS = builtins.__dict__
_PRISTINE = _BUILTINS.copy()


class _UsersBuiltins:
    """The builtins as the note's code left them, swapped in only while it runs."""

    def __init__(self) -> None:
        self.state = _PRISTINE.copy()

    def enter(self) -> None:
        _BUILTINS.clear()
        _BUILTINS.update(self.state)

    def leave(self) -> None:
        self.state = _BUILTINS.copy()
        _BUILTINS.clear()
        _BUILTINS.update(_PRISTINE)


class _Channel:
    """Frames to the CLI, written with functions bound before the user's code could replace them."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, message: dict) -> None:
        data = _view(frame(message, _dumps, _pack, _len))
        while _len(data):
            data = data[_write(self.fd, data):]


def serve(conn: Connection) -> None:
    """Entry point of a forked worker: wait for one job, run it, report, exit."""
    output = _capture_output()
    try:
        job = conn.recv()
    except (EOFError, OSError):
        _exit(0)  # the CLI needed no more workers
    run_job(job, _Channel(conn.fileno()), output)
    _exit(0)  # skip interpreter teardown, and whatever the user's code did to sys.stdout


def run_job(job: Job, channel: _Channel, output: _Output) -> None:
    """Run a job's blocks in one fresh namespace; send ("start", "result") per block, then "done"."""
    import torch

    _limit_memory(job)
    if torch.get_num_threads() != job.threads:
        torch.set_num_threads(job.threads)
    sys.path[:0] = [p for p in job.import_paths if p not in sys.path]
    for index, task in enumerate(job.tasks):
        lines = [line + "\n" for line in task.code.split("\n")]
        linecache.cache[filename_of(index)] = (sum(map(len, lines)), None, lines, filename_of(index))
    namespace: dict = {"__name__": "__main__", "__builtins__": builtins, "torch": torch}
    shorten = _path_shortener()
    users = _UsersBuiltins()
    for index, task in enumerate(job.tasks):
        if os.getcwd() != task.cwd:
            os.chdir(task.cwd)
        device = _resolve_device(task.device)
        channel.send({"kind": "start", "task": index, "device": device.type if device else None})
        result = _run_task(task, index, device, namespace, output, shorten, users)
        channel.send({"kind": "result", "task": index, "result": result.to_json()})
    channel.send({"kind": "done"})


def _limit_memory(job: Job) -> None:
    if job.memory_limit_mb is None or any(t.device == "cuda" for t in job.tasks):
        return
    import torch

    if any(t.device == "auto" for t in job.tasks) and torch.cuda.is_available():  # NVML check: CUDA stays cold
        return  # CUDA reserves far more address space than it uses: a limit would break it
    limit = job.memory_limit_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


class _Output:
    """stdout and stderr of this process (Python and C level alike) go to one file, in the order written."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.mark = 0

    def begin(self) -> None:
        _flush()
        self.mark = os.lseek(self.fd, 0, os.SEEK_END)

    def read(self) -> str:
        _flush()
        size = os.lseek(self.fd, 0, os.SEEK_END) - self.mark
        text = os.pread(self.fd, min(size, MAX_OUTPUT_BYTES), self.mark).decode("utf-8", errors="replace")
        if size > MAX_OUTPUT_BYTES:
            text += OUTPUT_CUT.format(size=size)
        return text


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001, S110 - the user's code may have replaced or closed it
            pass


def _capture_output() -> _Output:
    fd = os.memfd_create("notevault-output") if hasattr(os, "memfd_create") else _temporary_fd()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0, closefd=False), encoding="utf-8", write_through=True)
    sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", buffering=0, closefd=False), encoding="utf-8", write_through=True)
    return _Output(fd)


def _temporary_fd() -> int:
    import tempfile

    return os.dup(tempfile.TemporaryFile().fileno())


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


def _run_task(task: Task, index: int, device, namespace: dict, output: _Output, shorten,
              users: _UsersBuiltins) -> BlockResult:
    base = {"id": "", "line": 0, "kind": task.kind, "hash": ""}
    if device is None:
        return BlockResult(**base, status="skipped", error=NO_CUDA)
    namespace["device"] = device
    seed_everything(task.seed)
    output.begin()
    start = time.perf_counter()
    value, error, trace, formula = None, None, None, None
    try:
        body, last = _compile(task.code, filename_of(index))
        users.enter()
        try:
            value = _execute(body, last, namespace)
        finally:
            users.leave()
        if task.formula is not None:
            formula, error = _check_formula(task, namespace)
    except BaseException as exc:  # noqa: BLE001 - the user's code may raise anything, SystemExit included
        error, trace = _describe_exception(exc, shorten)
    seconds = time.perf_counter() - start
    status = "failed" if error else "passed"
    if task.expect is not None:
        status, error = _expected(task.expect, error)
    text = WARNING_PATH.sub(lambda m: shorten(m["path"]), output.read())
    return BlockResult(**base, status=status, device=device.type, seconds=seconds, error=error, output=text,
                       value=value, traceback=trace, figures=_take_figures(), formula=formula)


def _compile(code: str, filename: str) -> tuple[CodeType, CodeType | None]:
    """The block's statements, and its last bare expression apart (its value is shown, as Jupyter does)."""
    tree = ast.parse(code, filename=filename)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    body = compile(tree, filename, "exec")
    return body, compile(ast.Expression(last.value), filename, "eval") if last is not None else None


def _execute(body: CodeType, last: CodeType | None, namespace: dict) -> str | None:
    """Run the block's code as the note's own (its builtins in place); the repr of a last bare expression."""
    exec(body, namespace)
    result = eval(last, namespace) if last is not None else None
    if result is None:
        return None
    text = repr(result)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + " …"


def _check_formula(task: Task, namespace: dict) -> tuple[FormulaResult, str | None]:
    from .formula import check_formula

    outcome = check_formula(task.formula, namespace, rtol=task.rtol, atol=task.atol)
    result = FormulaResult(task.formula_id, outcome.max_abs_err, outcome.max_rel_err, outcome.shapes)
    return result, outcome.error


def _path_shortener():
    """Library paths as the module path below their sys.path entry (``torch/nn/functional.py``): a stored
    traceback must not carry the machine's folders (a virtualenv, a home folder)."""
    roots = sorted({os.path.join(p, "") for p in sys.path if os.path.isabs(p)}, key=len, reverse=True)

    def shorten(path: str) -> str:
        for root in roots:
            if path.startswith(root):
                return path[len(root):]
        return path

    return shorten


def _describe_exception(exc: BaseException, shorten) -> tuple[str, str]:
    """One line for the title, and a traceback from the note's own frames on, with short library paths."""
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("\ue000"):
        tb = tb.tb_next  # our own exec() frames are noise
    described = traceback.TracebackException(type(exc), exc, tb)
    for part in _chain(described):
        for frame_summary in part.stack:
            frame_summary.filename = shorten(frame_summary.filename)
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    summary = message.splitlines()[0] if message.strip() else type(exc).__name__
    return summary, "".join(described.format()).rstrip("\n")


def _chain(described: traceback.TracebackException) -> list[traceback.TracebackException]:
    seen, todo = [], [described]
    while todo:
        part = todo.pop()
        if part in seen:
            continue
        seen.append(part)
        todo += [p for p in (part.__cause__, part.__context__) if p is not None]
    return seen


def _expected(expect: str, error: str | None) -> tuple[str, str | None]:
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
