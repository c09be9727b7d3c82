"""Runs jobs in workers forked from the warm template, at most ``jobs`` at a time, one job per worker.

The template (notevault.warm) is started on first use and kept for the life of the CLI process, so watch mode
pays torch's import once; the CLI process itself never imports torch. A job that hangs is killed at its block's
timeout; one whose worker crashes (segfault, os._exit, out of memory) or sends something malformed fails its
current block and reports the rest as not run. Either way only that job is affected; the other jobs go on.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import NoReturn

from .errors import SetupError
from .jobs import MAX_MESSAGE_BYTES, Done, Finished, Job, ProtocolError, Started, decode
from .results import BlockResult

_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); from notevault.warm import main; "
         "main(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))")
HANDOVER_BYTES = 8


class TemplateGone(Exception):
    """The worker template died (killed, or out of memory): its running jobs are lost."""


def require_torch() -> None:
    """Running blocks needs torch, an extra of the package: say so in one line, before starting a template.

    find_spec locates torch without importing it (the CLI process never imports torch).
    """
    if importlib.util.find_spec("torch") is None:
        raise SetupError("running blocks needs torch: install notevault with its run extra, "
                         "pip install 'notevault-obsidian[run]'")


def _template_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # CUDA checks through NVML: no CUDA init before fork
    env.setdefault("MPLBACKEND", "Agg")
    # FINDINGS 2026-11-23: with the template's heap in transparent huge pages a fork copies far fewer page
    # tables (13.6 → 3.4 ms). Both must be set before the interpreter starts; the user's own settings win.
    env.setdefault("PYTHONMALLOC", "malloc")
    env.setdefault("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")
    return env


class Template:
    """The warm worker template process, and the sockets the CLI drives it through."""

    def __init__(self, spares: int) -> None:
        require_torch()
        control, control_theirs = socket.socketpair()
        handover, handover_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        package_parent = str(Path(__file__).resolve().parent.parent)
        fds = [control_theirs.fileno(), handover_theirs.fileno()]
        self.process = subprocess.Popen(
            [sys.executable, "-c", _BOOT, package_parent, *map(str, fds), str(spares)],
            pass_fds=fds, stdin=subprocess.DEVNULL, env=_template_environment())
        control_theirs.close()
        handover_theirs.close()
        self.control, self.handover = control, handover
        self.events = Connection(os.dup(control.fileno()))
        self.spares = spares
        self.gone = False
        self.ready = False  # it has handed over a worker: torch imported fine
        self.asked = 0  # workers asked for and not yet handed over
        self.in_hand: deque[tuple[int, int, Connection]] = deque()  # handed over, waiting for a job here

    @property
    def alive(self) -> bool:
        return not self.gone and self.process.poll() is None

    def worker(self) -> tuple[int, int, Connection]:
        """A worker waiting for a job: its number, its pid (its process group), and its connection.

        The next one is asked for at once, so that it is in hand when it is needed: the CLI never waits for
        the template (busy forking the next spare, perhaps) between one job and the next.
        """
        if not self.in_hand and not self.asked:
            self._ask()
        self._receive(wait=not self.in_hand)
        worker = self.in_hand.popleft()
        self._ask()
        return worker

    def _ask(self) -> None:
        try:
            self.control.sendall(b"W")
        except OSError as exc:
            self.gone = True
            raise TemplateGone(str(exc)) from exc
        self.asked += 1

    def _receive(self, *, wait: bool) -> None:
        """Take the workers the template has handed over (waiting for the first, if ``wait``)."""
        while self.asked:
            try:
                message, fds, _, _ = socket.recv_fds(self.handover, HANDOVER_BYTES, 1,
                                                     0 if wait else socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                message, fds = b"", []
            if len(message) != HANDOVER_BYTES or not fds:
                self._gone_while_asking()
            self.asked -= 1
            self.ready = True
            number = int.from_bytes(message[:4], "big", signed=True)
            pid = int.from_bytes(message[4:], "big", signed=True)
            self.in_hand.append((number, pid, Connection(fds[0])))
            wait = False

    def _gone_while_asking(self) -> NoReturn:
        self.gone = True
        if not self.ready:
            status = self.process.wait()
            raise SetupError(f"the worker template could not start (exit status {status}): "
                             "its error is printed above; is torch installed and working?")
        raise TemplateGone("the worker template exited")

    def keep_more(self, count: int) -> None:
        """Keep ``count`` more workers forked ahead (a later run asks for more in parallel)."""
        try:
            self.control.sendall(b"+" * count)
            self.spares += count
        except OSError:
            self.gone = True

    def exits(self) -> list[tuple[int, int]]:
        """(worker number, exit code) of the workers reaped since the last call."""
        exits = []
        try:
            while self.events.poll():
                kind, number, code = self.events.recv()
                if kind == "exited":
                    exits.append((number, code))
        except (EOFError, OSError) as exc:
            self.gone = True
            raise TemplateGone("the worker template exited") from exc
        return exits

    def close(self) -> None:
        """Stop the template now, even mid warm-up; it takes its workers with it."""
        for _, _, conn in self.in_hand:
            conn.close()
        for closable in (self.events, self.control, self.handover):
            closable.close()
        self.process.kill()
        self.process.wait()


_template: Template | None = None


def template(spares: int = 2) -> Template:
    """The worker template, started on first use (and again if it died), keeping ``spares`` workers ready."""
    global _template
    if _template is None or not _template.alive:
        _template = Template(spares)
        atexit.register(_template.close)
    elif spares > _template.spares:
        _template.keep_more(spares - _template.spares)
    return _template


@dataclass
class _Run:
    """A job in progress on its worker."""

    index: int  # of the job in the list given to run()
    job: Job
    number: int
    pid: int
    conn: Connection
    finished: set[int] = field(default_factory=set)
    current: int | None = None
    current_device: str | None = None
    started: float = 0.0
    deadline: float | None = None
    done: bool = False
    eof: bool = False
    exit_code: int | None = None
    exited: bool = False
    vanished: bool = False  # the template died: this worker's exit code will never come
    broken: str | None = None  # why its messages can no longer be trusted

    @property
    def over(self) -> bool:
        timed_out = self.deadline is not None and time.monotonic() > self.deadline
        return self.done or self.broken is not None or self.exited or self.vanished or timed_out


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


def crash_reason(exit_code: int | None, exited: bool) -> str:
    """Why a worker ended without finishing, in words a user can act on."""
    if not exited:
        return "worker vanished: the worker template died"
    if exit_code is not None and exit_code < 0:
        name = _signal_name(-exit_code)
        meaning = {"SIGSEGV": "segmentation fault", "SIGKILL": "killed (out of memory?)",
                   "SIGABRT": "aborted", "SIGBUS": "bus error", "SIGFPE": "arithmetic error"}.get(name, "killed")
        return f"worker crashed: {meaning} ({name})"
    return f"worker exited with status {exit_code} before the block finished (os._exit, or sys.exit in C code?)"


OnResult = Callable[[int, int, BlockResult], None]  # job index, task index, result
OnDone = Callable[[int], None]  # job index


class WorkerPool:
    """Runs each job in its own worker, at most ``jobs`` at a time.

    Jobs may be submitted from another thread while the pool serves (the planner hands over a note's jobs as
    soon as it is planned): ``submit`` wakes the serving loop, ``close`` says no more will come.
    """

    def __init__(self, jobs: int) -> None:
        self.jobs = max(1, jobs)
        self._pending: deque[tuple[int, Job]] = deque()
        self._submitted = 0
        self._closed = False
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)

    def submit(self, job: Job) -> int:
        """Queue a job; return its index (what on_result and on_done name it by)."""
        index = self._submitted
        self._submitted += 1
        self._pending.append((index, job))
        self._wake()
        return index

    def close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_write, b"!")
        except OSError:
            pass  # already awake, or done serving

    def run(self, jobs: Sequence[Job], on_result: OnResult, on_done: OnDone) -> None:
        """Run every job; each task gets exactly one ``on_result``, then its job one ``on_done``."""
        for job in jobs:
            self.submit(job)
        self.close()
        self.serve(on_result, on_done)

    def serve(self, on_result: OnResult, on_done: OnDone) -> None:
        """Run jobs as they are submitted, until the pool is closed and every job has run."""
        pending = self._pending
        running: list[_Run] = []
        try:
            while not self._closed or pending or running:
                if not pending and not running:
                    self._sleep()
                    continue
                template_ = template(self.jobs)
                self._start(template_, pending, running)
                self._wait(template_, running)
                self._note_exits(template_, running)
                for run in list(running):
                    self._drain(run, on_result)
                    if run.over:
                        if not run.done:
                            self._fail_unfinished(run, on_result)
                        self._stop(run)
                        running.remove(run)
                        self._start(template_, pending, running)  # before on_done: no worker waits for write-back
                        on_done(run.index)
        finally:
            for run in running:
                self._stop(run)
            os.close(self._wake_read)
            os.close(self._wake_write)

    def _sleep(self) -> None:
        """Nothing to do until a job is submitted or the pool is closed."""
        wait([self._wake_read])
        self._drain_wake()

    def _drain_wake(self) -> None:
        os.set_blocking(self._wake_read, False)
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass

    def _start(self, template_: Template, pending: deque[tuple[int, Job]], running: list[_Run]) -> None:
        while pending and len(running) < self.jobs:
            index, job = pending[0]
            try:
                number, pid, conn = template_.worker()
            except TemplateGone:
                return  # a new template is started on the next pass
            try:
                conn.send(job)
            except OSError:
                conn.close()
                continue  # that worker died while waiting: the job goes to the next one
            pending.popleft()
            # Until its first block starts, the first block's limit also covers the job's set-up.
            running.append(_Run(index, job, number, pid, conn, deadline=time.monotonic() + job.tasks[0].timeout))

    def _wait(self, template_: Template, running: list[_Run]) -> None:
        deadlines = [r.deadline for r in running if r.deadline is not None]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        if any(r.eof and not (r.exited or r.vanished) for r in running):
            timeout = 0.05 if timeout is None else min(timeout, 0.05)  # its exit code is on its way
        ready = wait([template_.events, self._wake_read] + [r.conn for r in running if not r.eof], timeout=timeout)
        if self._wake_read in ready:
            self._drain_wake()

    @staticmethod
    def _note_exits(template_: Template, running: list[_Run]) -> None:
        try:
            exits = dict(template_.exits())
        except TemplateGone:
            for run in running:
                run.vanished = True
            return
        for run in running:
            if run.number in exits:
                run.exited, run.exit_code = True, exits[run.number]

    @staticmethod
    def _drain(run: _Run, on_result: OnResult) -> None:
        while not run.done and not run.eof and not run.broken:
            try:
                if not run.conn.poll():
                    return
                payload = run.conn.recv_bytes(MAX_MESSAGE_BYTES)
            except (EOFError, OSError):
                run.eof = True
                return
            try:
                message = decode(payload, run.job)
            except ProtocolError as exc:
                run.broken = f"worker sent a malformed message ({exc})"
                return
            if isinstance(message, Started):
                run.current, run.current_device = message.task, message.device
                run.started = time.monotonic()
                run.deadline = run.started + run.job.tasks[message.task].timeout
            elif isinstance(message, Finished):
                if message.task in run.finished:
                    run.broken = f"worker sent a second result for task {message.task}"
                    return
                run.finished.add(message.task)
                run.current, run.deadline = None, None
                on_result(run.index, message.task, message.result)
            elif isinstance(message, Done):
                if len(run.finished) != len(run.job.tasks):
                    run.broken = "worker said it was done before every block had a result"
                    return
                run.done = True

    @staticmethod
    def _fail_unfinished(run: _Run, on_result: OnResult) -> None:
        """The worker timed out, died or broke the protocol mid-job: fail its current block, skip the rest."""
        if run.broken:
            reason = run.broken
        elif run.eof or run.exited or run.vanished:
            reason = crash_reason(run.exit_code, run.exited)
        else:
            limit = run.job.tasks[run.current if run.current is not None else 0].timeout
            reason = f"timed out after {limit:g} s"
        failed_at = run.current if run.current is not None else min(
            (i for i in range(len(run.job.tasks)) if i not in run.finished), default=None)
        for index, task in enumerate(run.job.tasks):
            if index in run.finished:
                continue
            if index == failed_at:
                elapsed = time.monotonic() - run.started if run.current is not None else 0.0
                result = BlockResult(id="", line=0, kind=task.kind, status="failed", hash="", error=reason,
                                     device=run.current_device if run.current is not None else None,
                                     seconds=elapsed)
            else:
                blocker = run.job.tasks[failed_at].id if failed_at is not None else "?"
                result = BlockResult(id="", line=0, kind=task.kind, status="skipped", hash="",
                                     error=f"not run: block {blocker} did not finish")
            on_result(run.index, index, result)

    @staticmethod
    def _stop(run: _Run) -> None:
        """Kill the worker's process group (it called setsid), which also takes what a snippet started.

        Not waited for: the template reaps its children.
        """
        try:
            os.killpg(run.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        run.conn.close()
