"""Workers forked from the warm template: every note in a fresh process, whatever the note before it did.

Each contamination class of the review is a pair of notes: A changes something process-wide, B would observe it.
B's result must be the same alone and right after A on one worker slot (``--jobs 1``), by construction.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import make_vault

from notevault.engine import RunOptions, execute
from notevault.jobs import Job, Task
from notevault.pool import WorkerPool, template
from notevault.vault import Vault


def fence(code: str, tag: str = "python run") -> str:
    return f"```{tag}\n{code}\n```\n"


PAIRS = {
    "once-per-process warning": (
        "x = torch.arange(3)\ngrid = torch.meshgrid(x, x)\nprint(len(grid))",
        "x = torch.arange(3)\ngrid = torch.meshgrid(x, x)\nprint(len(grid))"),
    "memory of the previous note": (
        "def loss_fn(x):\n    return x.sum()\nactivations = torch.ones(250_000_000)",
        "weights = torch.ones(250_000_000)\nprint(weights.shape)"),
    "logger state": (
        "import logging\nlog = logging.getLogger(__name__)\nlog.addHandler(logging.StreamHandler())\n"
        "log.setLevel(logging.INFO)\nlog.info('step 10')",
        "import logging\nlog = logging.getLogger(__name__)\nlog.addHandler(logging.StreamHandler())\n"
        "log.setLevel(logging.INFO)\nlog.info('step 10')"),
    "class patched through a helper": (
        "def add_summary(cls):\n    cls.summary = lambda self: 'params'\nadd_summary(torch.nn.Module)",
        "print(hasattr(torch.nn.Linear(3, 4), 'summary'))"),
    "torch switches": (
        "torch.set_default_dtype(torch.float64)\ntorch.set_printoptions(precision=1)\ntorch.set_grad_enabled(False)",
        "print(torch.ones(2).dtype, torch.tensor([1/3]), torch.is_grad_enabled())"),
    "vault module named like the standard library": (
        "import sched\nfor s in range(3): sched.warmup(s)",
        "import sched\nsched.warmup(0)\nprint(len(sched.HISTORY))"),
    "python process state": (
        "import sys\nsys.stdout.reconfigure(encoding='ascii')\nsys.setrecursionlimit(50)",
        "print('批归一化 BatchNorm')\nimport sys\nprint(sys.getrecursionlimit() > 50)"),
    "builtins rebound": (
        "import builtins\nbuiltins.len = lambda x: 42\nbuiltins.print = None",
        "print(len([1, 2]))"),
    "a thread left running": (
        "import threading, time\nthreading.Thread(target=lambda: [time.sleep(0.01) for _ in range(10**6)], "
        "daemon=True).start()",
        "import threading\nprint(threading.active_count())"),
}


@pytest.fixture(scope="module")
def contamination_vault(tmp_path_factory):
    files = {"snippets/sched.py": "HISTORY = []\ndef warmup(step):\n    HISTORY.append(step)\n",
             "notevault.yaml": "memory_limit_mb: 2200\n"}
    for n, (a, b) in enumerate(PAIRS.values()):
        files[f"p{n}-a.md"] = fence(a)
        files[f"p{n}-b.md"] = fence(b)
    return make_vault(tmp_path_factory.mktemp("pairs"), files)


def b_results(root, paths):
    report = execute(Vault(root), paths, RunOptions(write=False, jobs=1))
    return {os.path.basename(n.path): n.blocks[0] for n in report.notes if n.path.endswith("-b.md")}


@pytest.fixture(scope="module")
def after_a(contamination_vault):
    return b_results(contamination_vault, [contamination_vault])  # a before b: vault path order, one slot


@pytest.mark.parametrize("pair", range(len(PAIRS)), ids=list(PAIRS))
def test_a_note_sees_nothing_of_the_note_before_it(contamination_vault, after_a, pair):
    alone = b_results(contamination_vault, [contamination_vault / f"p{pair}-b.md"])[f"p{pair}-b.md"]
    after = after_a[f"p{pair}-b.md"]
    assert (after.status, after.error, after.output, after.value) == (
        alone.status, alone.error, alone.output, alone.value)
    assert alone.status == "passed"


def test_what_b_shows_alone_is_what_a_fresh_python_shows(after_a):
    assert "UserWarning: torch.meshgrid" in after_a["p0-b.md"].output  # the warning, in every note
    assert after_a["p2-b.md"].output == "step 10\n"  # one handler: the logger is the note's own
    assert after_a["p3-b.md"].output == "False\n"
    assert after_a["p4-b.md"].output == "torch.float32 tensor([0.3333]) True\n"
    assert after_a["p5-b.md"].output == "1\n"
    assert after_a["p6-b.md"].output == "批归一化 BatchNorm\nTrue\n"
    assert after_a["p7-b.md"].output == "2\n"
    assert after_a["p8-b.md"].output == "1\n"


def test_a_note_that_breaks_its_own_process_gets_a_result_and_the_rest_run(tmp_path):
    breaker = ("import builtins, json, pickle\nbuiltins.len = lambda x: 42\nbuiltins.isinstance = None\n"
               "json.dumps = None\npickle.dumps = None\nprint('still here')")
    silencer = "import sys\nsys.stdout = sys.stderr = None\n1 / 0"
    root = make_vault(tmp_path, {"a.md": fence(breaker) + "\n" + fence("print(len([1, 2]))"),
                                 "b.md": fence(silencer), "c.md": fence("print('fine')")})
    report = execute(Vault(root), [root], RunOptions(jobs=1))
    (first, second), (b,), (c,) = (n.blocks for n in report.notes)
    assert (first.status, first.output, second.status, second.output) == ("passed", "still here\n", "passed", "42\n")
    assert (b.status, b.error) == ("failed", "ZeroDivisionError: division by zero")
    assert (c.status, c.output) == ("passed", "fine\n")
    assert "%% notevault id=L1" in (root / "c.md").read_text()


def test_a_worker_that_closes_its_channel_or_writes_garbage_fails_only_its_block(tmp_path):
    garbage = ("import os, socket\nfor fd in range(3, 64):\n    try:\n        if socket.socket(fileno=os.dup(fd))"
               ".type == socket.SOCK_STREAM:\n            os.write(fd, b'\\x00\\x00\\x00\\x05{bad}')\n"
               "    except OSError:\n        pass\nprint('done')")
    closer = "import os\nfor fd in range(3, 64):\n    try:\n        os.close(fd)\n    except OSError:\n        pass"
    root = make_vault(tmp_path, {"a.md": fence(garbage), "b.md": fence(closer), "c.md": fence("print('c')")})
    report = execute(Vault(root), [root], RunOptions(write=False, jobs=1))
    a, b, c = (n.blocks[0] for n in report.notes)
    assert a.status == "failed" and a.error.startswith("worker sent a malformed message")
    assert b.status == "failed" and b.error.startswith("worker exited with status")
    assert (c.status, c.output) == ("passed", "c\n")


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_every_job_gets_a_new_worker_and_spares_wait_forked_ahead(tmp_path):
    forks = template(2)
    job = Job("pid", (Task("pid", "run", "import os\nprint(os.getpid(), os.getppid())", str(tmp_path), "cpu", 10),))
    results = {}
    WorkerPool(2).run([job] * 4, on_result=lambda j, t, r: results.__setitem__(j, r), on_done=lambda j: None)
    pids = [tuple(map(int, r.output.split())) for r in results.values()]
    assert len({pid for pid, _ in pids}) == 4  # four jobs, four processes
    assert {parent for _, parent in pids} == {forks.process.pid}  # forked by the template, not by the CLI
    finished = {pid for pid, _ in pids}
    deadline = time.monotonic() + 10
    while len(set(_children(forks.process.pid)) - finished) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(set(_children(forks.process.pid)) - finished) >= 2  # the next two are already forked, waiting
