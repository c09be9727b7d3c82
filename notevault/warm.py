"""The worker template: a process that imports torch once, warms it up, then forks workers on request.

The CLI starts it with ``python -c`` (see pool.Template) and talks to it over a Unix socket. For each worker the
CLI sends one end of a fresh socket pair and a number; the template forks, the child serves jobs on that socket
(worker.serve), and the template tells the CLI the child's pid ("started") and, once it has reaped it, its exit
code ("exited"). The template exits when the CLI closes the socket.

We fork ourselves rather than use multiprocessing's forkserver: its per-process start (pickled preparation data,
re-running the main script, bootstrap, a join per child) cost ≈10 ms of the CLI's time per worker.

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
import traceback
from multiprocessing.connection import Connection

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
    from notevault.leaks import remember_shared_classes
    from notevault.worker import seed_everything

    torch.set_num_threads(1)
    seed_everything(0)
    x = torch.randn(8, 4, requires_grad=True)
    torch.nn.functional.batch_norm(x, None, None, training=True).sum().backward()
    torch.optim.Adam([x]).step()
    for optimizer in _optimizer_classes(torch):  # the first of each class patches its step(): a leak in a worker
        try:
            optimizer([x])
        except (TypeError, ValueError, RuntimeError):
            pass
    remember_shared_classes()
    # Everything imported so far lives as long as the template: keep the garbage collector away from it, so
    # forked workers do not copy those pages just by collecting (copy-on-write faults are a fork's main cost).
    gc.freeze()


def _optimizer_classes(torch) -> list[type]:
    base = torch.optim.Optimizer
    return [value for value in vars(torch.optim).values()
            if isinstance(value, type) and issubclass(value, base) and value is not base]


def serve(control: socket.socket) -> None:
    """Fork a worker each time the CLI asks; report each worker's pid and exit code."""
    messages = Connection(os.dup(control.fileno()))
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # only to wake select() through the wakeup fd
    children: dict[int, int] = {}  # pid -> worker number
    while True:
        ready, _, _ = select.select([control, wake_read], [], [])
        if wake_read in ready:
            os.read(wake_read, 4096)
            _reap(children, messages)
        if control in ready:
            try:
                marker, fds, _, _ = socket.recv_fds(control, 1, 1)
            except OSError:
                marker, fds = b"", []
            if not marker:  # the CLI is gone: its workers die with us (PR_SET_PDEATHSIG)
                os._exit(0)
            number = messages.recv()
            pid = os.fork()
            if pid == 0:
                _become_worker(fds[0], [control.fileno(), messages.fileno(), wake_read, wake_write])
            os.close(fds[0])
            children[pid] = number
            _tell(messages, ("started", number, pid))


def _tell(messages: Connection, message: tuple) -> None:
    try:
        messages.send(message)
    except OSError:  # the CLI is gone
        os._exit(0)


def _reap(children: dict[int, int], messages: Connection) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        number = children.pop(pid, None)
        if number is not None:
            _tell(messages, ("exited", number, os.waitstatus_to_exitcode(status)))


def _become_worker(jobs_fd: int, template_fds: list[int]) -> None:
    """In the forked child: drop the template's plumbing, then serve jobs (which ends the process)."""
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


def main(control_fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the CLI's to handle: it stops the template
    control = socket.socket(fileno=control_fd)
    warm_up()
    serve(control)

