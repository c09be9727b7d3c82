"""The worker template: a process that imports torch once, warms it up, and keeps workers forked ahead of need.

The CLI starts it with ``python -c`` (see pool.Template). Every job runs in a fresh fork of this process, so no
job can see what another did. Forking costs the template ≈ 4–14 ms of CPU (FINDINGS, 2026-11-23), so it forks
*before* it is asked: it keeps ``spares`` workers waiting, hands one to the CLI the moment the CLI sends ``W`` (its
socket travels over the hand-over socket with SCM_RIGHTS), then forks the next spare while that job runs. A run,
and above all a save in watch mode, never waits for a fork.

Events go back on the control socket: ("exited", worker number, exit code) once a worker is reaped. When the CLI
goes away the template kills every worker's process group (what a snippet started too) and exits.

FINDINGS: import torch, torch.optim and torch._dynamo before forking (the first optimizer imports dynamo,
≈1 s), and warm up with ONE thread: a multi-threaded op before fork can deadlock children in libgomp.
Nothing here may touch CUDA (a forked child could not use it).
"""

from __future__ import annotations

import ctypes
import gc
import os
import select
import signal
import socket
import struct
import traceback
from collections import deque
from multiprocessing.connection import Connection

HANDOVER = struct.Struct("!ii")  # worker number, pid

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _libc.prctl  # noqa: B018 - missing outside Linux
except (OSError, AttributeError):  # pragma: no cover
    _libc = None


def warm_up() -> None:
    """Import and exercise what most notes use, so that no forked worker has to."""
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    import torch
    import torch._dynamo  # noqa: F401
    import torch.optim

    try:  # numpy is optional for torch, but notes use it and seeding wants it
        import numpy  # noqa: F401
    except ImportError:  # pragma: no cover
        pass
    from notevault import formula  # noqa: F401
    from notevault.worker import seed_everything

    torch.set_num_threads(1)
    seed_everything(0)
    x = torch.randn(8, 4, requires_grad=True)
    torch.nn.functional.batch_norm(x, None, None, training=True).sum().backward()
    torch.optim.Adam([x]).step()
    torch.softmax(x, -1)
    for optimizer in _optimizer_classes(torch):  # the first of each class patches its step(): once, here
        try:
            optimizer([x])
        except (TypeError, ValueError, RuntimeError):
            pass
    # Everything made so far lives as long as the template: keep the garbage collector away from it, so
    # forked workers do not copy those pages just by collecting (copy-on-write faults are a fork's main cost).
    gc.freeze()


def _optimizer_classes(torch) -> list[type]:
    base = torch.optim.Optimizer
    return [value for value in vars(torch.optim).values()
            if isinstance(value, type) and issubclass(value, base) and value is not base]


class _Spares:
    """Workers forked ahead of need, each waiting on its own socket for a job."""

    def __init__(self, wanted: int, keep_fds: list[int]) -> None:
        self.wanted = max(1, wanted)
        self.keep_fds = keep_fds  # the template's own descriptors: closed in every child
        self.waiting: deque[tuple[int, int, socket.socket]] = deque()  # (number, pid, our end)
        self.children: dict[int, int] = {}  # pid -> worker number, until reaped
        self.numbers = 0

    def fill(self) -> None:
        while len(self.waiting) < self.wanted:
            self.fork()

    def fork(self) -> None:
        ours, theirs = socket.socketpair()
        self.numbers += 1
        pid = os.fork()
        if pid == 0:
            _become_worker(theirs.fileno(), self.keep_fds + [ours.fileno()] + [s.fileno() for *_, s in self.waiting])
        theirs.close()
        self.children[pid] = self.numbers
        self.waiting.append((self.numbers, pid, ours))

    def take(self) -> tuple[int, int, socket.socket]:
        if not self.waiting:
            self.fork()
        return self.waiting.popleft()

    def kill_all(self) -> None:
        for pid in self.children:
            try:
                os.killpg(pid, signal.SIGKILL)  # each worker leads its own process group
            except OSError:
                pass


def serve(control: socket.socket, handover: socket.socket, spares: _Spares) -> None:
    """Hand a waiting worker to the CLI for each ``W`` it sends (``+``: keep one more waiting); report each
    worker's exit code."""
    events = Connection(os.dup(control.fileno()))
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # only to wake select() through the wakeup fd
    spares.keep_fds += [events.fileno(), wake_read, wake_write]
    spares.fill()
    while True:
        ready, _, _ = select.select([control, wake_read], [], [])
        if wake_read in ready:
            os.read(wake_read, 4096)
            _reap(spares.children, events, spares)
        if control in ready:
            try:
                requests = control.recv(4096)
            except OSError:
                requests = b""
            if not requests:  # the CLI is gone: so are its workers and what they started
                spares.kill_all()
                os._exit(0)
            spares.wanted += requests.count(b"+")
            for _ in range(requests.count(b"W")):
                number, pid, ours = spares.take()
                try:
                    socket.send_fds(handover, [HANDOVER.pack(number, pid)], [ours.fileno()])
                except OSError:
                    spares.kill_all()
                    os._exit(0)
                ours.close()
            spares.fill()


def _tell(events: Connection, message: tuple, spares: _Spares) -> None:
    try:
        events.send(message)
    except OSError:  # the CLI is gone
        spares.kill_all()
        os._exit(0)


def _reap(children: dict[int, int], events: Connection, spares: _Spares) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        number = children.pop(pid, None)
        if number is not None:
            _tell(events, ("exited", number, os.waitstatus_to_exitcode(status)), spares)


def _become_worker(jobs_fd: int, template_fds: list[int]) -> None:
    """In the forked child: drop the template's plumbing, then serve one job (which ends the process)."""
    try:
        os.setsid()  # its own process group, so the CLI can also kill what a snippet forks
        if _libc is not None:
            _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the template (Linux only)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # snippets that use subprocess need the default
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for fd in template_fds:
            os.close(fd)
        from notevault.worker import serve

        serve(Connection(jobs_fd))
    except BaseException:  # noqa: BLE001 - serve leaves through os._exit(0): this is notevault's own failure
        traceback.print_exc()
    finally:
        os._exit(70)


def main(control_fd: int, handover_fd: int, spares: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the CLI's to handle: it stops the template
    control = socket.socket(fileno=control_fd)
    handover = socket.socket(fileno=handover_fd)
    warm_up()
    serve(control, handover, _Spares(spares, [control.fileno(), handover.fileno()]))
