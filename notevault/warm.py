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
import pickle
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
    for optimizer in _optimizer_classes(torch):  # the first of each class patches its step(): once, here
        try:
            weight = torch.randn(4, requires_grad=True)
            weight.pow(2).sum().backward()
            optimizer([weight]).step()  # and its first step() initialises what every later one reuses
        except (TypeError, ValueError, RuntimeError):
            pass
    for _ in range(WARM_ROUNDS):
        _run_a_typical_note()
    # Everything made so far lives as long as the template: keep the garbage collector away from it, so
    # forked workers do not copy those pages just by collecting (copy-on-write faults are a fork's main cost).
    gc.collect()
    gc.freeze()


# What notes do most, run here a few times so that every fork starts with it done: first calls (module
# construction, tensor printing, autograd, optimizer steps) fill caches and let the interpreter specialise
# the code, and a fork that redoes that writes to pages it shares with the template.
TYPICAL_NOTE = (
    "import torch.nn.functional as F\ntorch.manual_seed(0)\nx = torch.randn(64, 32)\n"
    "print(x.mean().item(), x.shape, x[:2, :3], f'{x.std().item():+.4f}', x.argmax(-1)[:4].tolist())",
    "w = torch.nn.Linear(32, 16)\nmodel = torch.nn.Sequential(w, torch.nn.ReLU(), torch.nn.Dropout(0.1))\n"
    "y = model(x)\nprint(y.shape, model)",
    "bn = torch.nn.BatchNorm1d(16)\nz = bn(y)\nln = torch.nn.LayerNorm(16)\nz = ln(z)\nprint(z.std().item())",
    "opt = torch.optim.Adam(model.parameters(), lr=0.01)\nloss = F.mse_loss(z, torch.zeros_like(z))"
    "\nloss.backward()\nopt.step()\nopt.zero_grad()\nsgd = torch.optim.SGD(model.parameters(), lr=0.1)\n"
    "sgd.step()\nprint(loss.item())",
    "p = torch.softmax(z, dim=-1)\nq = torch.nn.functional.log_softmax(z, -1)\nprint(p.sum(-1)[:3], q.exp()[:1])",
    "Q = K = V = torch.randn(2, 4, 8)\nattn = torch.softmax(Q @ K.transpose(-2, -1) / 8 ** 0.5, -1) @ V\n"
    "out = torch.nn.functional.scaled_dot_product_attention(Q, K, V)\n"
    "print(torch.allclose(attn, out, atol=1e-6), attn.dtype)\nwith torch.no_grad():\n    e = torch.nn.Embedding(10, 4)"
    "(torch.arange(3))\nce = F.cross_entropy(torch.randn(3, 5), torch.randint(0, 5, (3,)))\nce.item()\n"
    "torch.allclose(Q, K, atol=1e-5), bool(attn.sum(-1).allclose(torch.ones(2, 4)))",
)
WARM_ROUNDS = 3


def _run_a_typical_note() -> None:
    """The notes' common operations, through the worker's own path (results encoded as they are sent)."""
    import sys

    from notevault.jobs import Job, Task
    from notevault.worker import _Output, run_job

    fd = os.memfd_create("notevault-warm-up")
    job = Job("warm-up", tuple(Task("w", "run", code, os.getcwd(), "cpu", 60.0) for code in TYPICAL_NOTE))
    job = pickle.loads(pickle.dumps(job))  # as a worker receives it
    saved = sys.stdout, sys.stderr, list(sys.path)
    sys.stdout = sys.stderr = open(fd, "w", encoding="utf-8", closefd=False)
    try:
        run_job(job, _Discard(), _Output(fd))
    finally:
        sys.stdout, sys.stderr = saved[0], saved[1]
        sys.path[:] = saved[2]
        os.close(fd)


class _Discard:
    def send(self, message: dict) -> None:
        from notevault.jobs import frame

        frame(message)


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
