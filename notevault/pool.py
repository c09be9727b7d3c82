"""Worker processes: a warm template imports torch once, and workers forked from it run the jobs.

The template (notevault.warm) is started on first use and kept for the life of the CLI process, so watch mode
pays torch's import once; the CLI process itself never imports torch. A worker runs job after job (each note in
a fresh namespace) until a job leaves a trace another note could see (leaks.py); then a fresh one is forked.
A job that hangs is killed at its block's timeout; one that crashes (segfault, os._exit, out of memory) fails
its current block and skips the rest. Either way its worker is gone, and the other jobs go on.
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path

from .errors import SetupError
from .results import BlockResult
from .worker import Job

_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from notevault.warm import main; main(int(sys.argv[2]))"


class TemplateGone(Exception):
    """The worker template died (killed, or out of memory): its running jobs are lost."""


class Template:
    """The warm worker template process, and the socket the CLI drives it through."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # CUDA checks through NVML: no CUDA init before fork
        env.setdefault("MPLBACKEND", "Agg")
        package_parent = str(Path(__file__).resolve().parent.parent)
        self.process = subprocess.Popen([sys.executable, "-c", _BOOT, package_parent, str(theirs.fileno())],
                                        pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env)
        theirs.close()
        self.socket = ours
        self.messages = Connection(os.dup(ours.fileno()))
        self._numbers = 0
        self.gone = False
        self.ready = False  # it has forked a worker: torch imported fine

    @property
    def alive(self) -> bool:
        return not self.gone and self.process.poll() is None

    def fork(self) -> tuple[int, Connection]:
        """Ask for a new worker; return its number and the connection that sends it jobs and brings results."""
        self._numbers += 1
        ours, theirs = socket.socketpair()
        try:
            socket.send_fds(self.socket, [b"W"], [theirs.fileno()])
            self.messages.send(self._numbers)
        except OSError as exc:
            ours.close()
            self.gone = True
            raise TemplateGone(str(exc)) from exc
        finally:
            theirs.close()
        return self._numbers, Connection(ours.detach())

    def events(self) -> list[tuple[str, int, int]]:
        """("started", worker number, pid) and ("exited", worker number, exit code) messages that have arrived."""
        events = []
        try:
            while self.messages.poll():
                events.append(self.messages.recv())
        except (EOFError, OSError) as exc:
            self.gone = True
            if not self.ready:
                status = self.process.wait()
                raise SetupError(f"the worker template could not start (exit status {status}): "
                                 "its error is printed above; is torch installed?") from exc
            raise TemplateGone("the worker template exited") from exc
        self.ready = self.ready or any(kind == "started" for kind, _, _ in events)
        return events

    def close(self) -> None:
        """Stop the template now, even mid warm-up; its workers die with it (PR_SET_PDEATHSIG)."""
        self.messages.close()
        self.socket.close()
        self.process.kill()
        self.process.wait()


_template: Template | None = None


def require_torch() -> None:
    """Running blocks needs torch, an extra of the package: say so in one line, before starting a template.

    find_spec locates torch without importing it (the CLI process never imports torch).
    """
    if importlib.util.find_spec("torch") is None:
        raise SetupError("running blocks needs torch: install notevault with its run extra, "
                         "pip install 'notevault-obsidian[run]'")


def template() -> Template:
    """The worker template, started on first use (and again if it died)."""
    global _template
    if _template is None or not _template.alive:
        require_torch()
        _template = Template()
        atexit.register(_template.close)
    return _template


@dataclass
class _Run:
    """A job in progress on a worker."""

    job: Job
    results: dict[int, BlockResult] = field(default_factory=dict)
    current: int | None = None
    current_device: str | None = None
    started: float = 0.0
    deadline: float | None = None
    done: bool = False
    reusable: bool = False


@dataclass
class _Worker:
    number: int
    kind: tuple
    conn: Connection
    pid: int | None = None
    exitcode: int | None = None
    exited: bool = False
    eof: bool = False
    run: _Run | None = None  # None: idle


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


def crash_reason(exitcode: int | None) -> str:
    """Why a worker ended without finishing, in words a user can act on."""
    if exitcode is None:
        return "worker vanished: the worker template died"
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
    """Runs jobs on at most ``jobs`` workers at a time, and reports each job's results when it ends."""

    def __init__(self, jobs: int) -> None:
        self.jobs = max(1, jobs)

    def run(self, jobs: Iterable[Job], on_done: Callable[[Job, list[BlockResult]], None],
            on_result: Callable[[Job, BlockResult], None] | None = None) -> None:
        pending = deque(jobs)
        workers: dict[int, _Worker] = {}
        try:
            while pending or any(w.run for w in workers.values()):
                template_ = template()
                self._assign(template_, pending, workers)
                busy = [w for w in workers.values() if w.run is not None]
                self._wait(template_, busy)
                self._note_events(template_, workers)
                finished: list[_Run] = []
                for worker in busy:
                    self._drain(worker, on_result)
                    run = worker.run
                    if run.done:
                        worker.run = None
                        if not run.reusable:
                            self._retire(worker, workers)
                        finished.append(run)
                    elif worker.exited or (worker.pid is not None and self._timed_out(run)):
                        self._fail_unfinished(worker, run)
                        self._retire(worker, workers)
                        finished.append(run)
                for worker in [w for w in workers.values() if w.run is None and w.exited]:
                    self._retire(worker, workers)
                self._assign(template_, pending, workers)  # before on_done: workers need not wait for write-back
                for run in finished:
                    on_done(run.job, [run.results[i] for i in range(len(run.job.tasks))])
        finally:
            for worker in list(workers.values()):
                self._retire(worker, workers)

    def _assign(self, template_: Template, pending: deque[Job], workers: dict[int, _Worker]) -> None:
        """Hand pending jobs to idle workers of their kind, forking new ones while there is room."""
        while pending:
            job = pending[0]
            idle = [w for w in workers.values() if w.run is None and not w.exited]
            worker = next((w for w in idle if w.kind == job.worker_kind), None)
            if worker is None:
                if len(workers) >= self.jobs and idle:
                    self._retire(idle[0], workers)  # an idle worker of another kind makes room
                if len(workers) >= self.jobs:
                    return
                try:
                    number, conn = template_.fork()
                except TemplateGone:
                    return  # a new template is started on the next pass
                worker = workers[number] = _Worker(number, job.worker_kind, conn)
            try:
                worker.conn.send(job)
            except OSError:
                worker.exited = True  # it died while idle: retired on this pass, the job goes to another
                continue
            worker.run = _Run(job)
            pending.popleft()

    @staticmethod
    def _wait(template_: Template, busy: list[_Worker]) -> None:
        deadlines = [w.run.deadline for w in busy if w.run.deadline is not None]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        wait([template_.messages] + [w.conn for w in busy if not w.eof], timeout=timeout)

    @staticmethod
    def _note_events(template_: Template, workers: dict[int, _Worker]) -> None:
        try:
            events = template_.events()
        except TemplateGone:
            for worker in workers.values():
                worker.exited = True  # exit code unknown: reported as "worker vanished"
            return
        for kind, number, value in events:
            worker = workers.get(number)
            if worker is None:
                continue  # already retired
            if kind == "started":
                worker.pid = value
            else:
                worker.exited, worker.exitcode = True, value

    @staticmethod
    def _drain(worker: _Worker, on_result: Callable[[Job, BlockResult], None] | None) -> None:
        run = worker.run
        while not run.done and not worker.eof:
            try:
                if not worker.conn.poll():
                    return
                message = worker.conn.recv()
            except (EOFError, OSError):
                worker.eof = True
                return
            if message[0] == "start":
                run.current, run.current_device = message[1], message[2]
                run.started = time.monotonic()
                run.deadline = run.started + run.job.tasks[run.current].timeout
            elif message[0] == "result":
                run.results[message[1]] = message[2]
                run.current, run.deadline = None, None
                if on_result is not None:
                    on_result(run.job, message[2])
            elif message[0] == "done":
                run.done, run.reusable = True, message[1]

    @staticmethod
    def _timed_out(run: _Run) -> bool:
        return run.deadline is not None and time.monotonic() > run.deadline

    def _fail_unfinished(self, worker: _Worker, run: _Run) -> None:
        """The worker timed out or died mid-job: fail the block it was on, and mark the rest not run."""
        if worker.exited:
            reason = crash_reason(worker.exitcode)
        else:
            reason = f"timed out after {run.job.tasks[run.current].timeout:g} s"
        failed_at = run.current if run.current is not None else len(run.results)
        for index in range(len(run.job.tasks)):
            if index in run.results:
                continue
            if index == failed_at:
                elapsed = time.monotonic() - run.started if run.current is not None else 0.0
                run.results[index] = replace(_placeholder(run.job, index), error=reason,
                                             device=run.current_device, seconds=elapsed)
            else:
                blocker = run.job.tasks[failed_at].id if failed_at < len(run.job.tasks) else "?"
                run.results[index] = _not_run(_placeholder(run.job, index), f"block {blocker} did not finish")

    @staticmethod
    def _retire(worker: _Worker, workers: dict[int, _Worker]) -> None:
        """Kill the worker's process group (it called setsid), which also takes what a snippet forked.

        Not waited for: the template reaps its children.
        """
        if worker.pid is not None:
            try:
                os.killpg(worker.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        worker.conn.close()
        workers.pop(worker.number, None)
