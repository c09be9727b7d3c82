"""Worker processes: a warm template imports torch once, and each job runs in a process forked from it.

multiprocessing's forkserver is that template: it preloads ``notevault.warm`` and forks a child per job
in ≈30 ms. The CLI process itself never imports torch. A job that hangs is killed at its block's timeout;
one that crashes (segfault, os._exit, out of memory) fails its current block and skips the rest.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait

from .results import BlockResult
from .worker import Job, run_job

_context: multiprocessing.context.ForkServerContext | None = None


def context() -> multiprocessing.context.ForkServerContext:
    """The forkserver context, its template warmed with torch (started on first use)."""
    global _context
    if _context is None:
        # Inherited by the template: CUDA checks through NVML (no CUDA init before fork), figures via Agg.
        os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
        os.environ.setdefault("MPLBACKEND", "Agg")
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(["notevault.warm"])
    return _context


@dataclass
class _Running:
    job: Job
    process: multiprocessing.process.BaseProcess
    conn: Connection
    results: dict[int, BlockResult] = field(default_factory=dict)
    current: int | None = None
    current_device: str | None = None
    started: float = 0.0
    deadline: float | None = None
    done: bool = False


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


def crash_reason(exitcode: int | None) -> str:
    """Why a worker ended without finishing, in words a user can act on."""
    if exitcode is None:
        return "worker vanished"
    if exitcode < 0:
        name = _signal_name(-exitcode)
        meaning = {"SIGSEGV": "segmentation fault", "SIGKILL": "killed (out of memory?)",
                   "SIGABRT": "aborted", "SIGBUS": "bus error", "SIGFPE": "arithmetic error"}.get(name, "killed")
        return f"worker crashed: {meaning} ({name})"
    return f"worker exited with status {exitcode} before the block finished (os._exit or sys.exit in C code?)"


def _not_run(result_for: BlockResult, reason: str) -> BlockResult:
    return replace(result_for, status="skipped", error=f"not run: {reason}")


def _placeholder(job: Job, index: int) -> BlockResult:
    task = job.tasks[index]
    return BlockResult(id=task.id, line=task.line, kind=task.kind, status="failed", hash=task.hash)


class WorkerPool:
    """Runs jobs, at most ``jobs`` at a time, and reports each job's results when it ends."""

    def __init__(self, jobs: int) -> None:
        self.jobs = max(1, jobs)

    def run(self, jobs: Iterable[Job], on_done: Callable[[Job, list[BlockResult]], None],
            on_result: Callable[[Job, BlockResult], None] | None = None) -> None:
        pending = deque(jobs)
        running: list[_Running] = []
        ctx = context()
        try:
            while pending or running:
                while pending and len(running) < self.jobs:
                    running.append(self._start(ctx, pending.popleft()))
                self._wait(running)
                for item in list(running):
                    self._drain(item, on_result)
                    if item.done or not item.process.is_alive() or self._timed_out(item):
                        self._finish(item)
                        running.remove(item)
                        on_done(item.job, [item.results[i] for i in range(len(item.job.tasks))])
        finally:
            for item in running:
                self._kill(item)

    def _start(self, ctx: multiprocessing.context.ForkServerContext, job: Job) -> _Running:
        parent, child = ctx.Pipe(duplex=False)
        process = ctx.Process(target=run_job, args=(job, child), name=f"notevault {job.name}", daemon=True)
        process.start()
        child.close()
        return _Running(job, process, parent)

    def _wait(self, running: list[_Running]) -> None:
        deadlines = [r.deadline for r in running if r.deadline is not None]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        waitables = [r.conn for r in running] + [r.process.sentinel for r in running]
        wait(waitables, timeout=timeout)

    def _drain(self, item: _Running, on_result: Callable[[Job, BlockResult], None] | None) -> None:
        while not item.done:
            try:
                if not item.conn.poll():
                    return
                message = item.conn.recv()
            except (EOFError, OSError):
                return
            if message[0] == "start":
                item.current, item.current_device = message[1], message[2]
                item.started = time.monotonic()
                item.deadline = item.started + item.job.tasks[item.current].timeout
            elif message[0] == "result":
                item.results[message[1]] = message[2]
                item.current, item.deadline = None, None
                if on_result is not None:
                    on_result(item.job, message[2])
            elif message[0] == "done":
                item.done = True

    @staticmethod
    def _timed_out(item: _Running) -> bool:
        return item.deadline is not None and time.monotonic() > item.deadline

    def _finish(self, item: _Running) -> None:
        """Make sure the process (and anything it forked) is gone; account for blocks that never finished."""
        timed_out = not item.done and self._timed_out(item)
        self._kill(item)
        if item.done:
            return
        if timed_out:
            task = item.job.tasks[item.current]
            reason = f"timed out after {task.timeout:g} s"
        else:
            reason = crash_reason(item.process.exitcode)
        failed_at = item.current if item.current is not None else len(item.results)
        for index in range(len(item.job.tasks)):
            if index in item.results:
                continue
            if index == failed_at:
                elapsed = time.monotonic() - item.started if item.current is not None else 0.0
                item.results[index] = replace(_placeholder(item.job, index), error=reason,
                                              device=item.current_device, seconds=elapsed)
            else:
                blocker = item.job.tasks[failed_at].id if failed_at < len(item.job.tasks) else "?"
                item.results[index] = _not_run(_placeholder(item.job, index), f"block {blocker} did not finish")

    @staticmethod
    def _kill(item: _Running) -> None:
        pid = item.process.pid
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)  # the worker made itself a process group leader
            except (ProcessLookupError, PermissionError):
                pass
        if item.process.is_alive():
            item.process.kill()
        item.process.join(timeout=5)
        item.conn.close()
