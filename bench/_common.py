"""Helpers shared by the benchmark scripts: generated vaults, timing, peak memory."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "tests" / "fixtures" / "seeds"
TEMPLATES = REPO / "tests" / "fixtures" / "templates"

SMALL_BLOCKS = [
    "x = torch.randn(64, 32)\nprint(x.mean().item())",
    "w = torch.nn.Linear(32, 16)\ny = w(x)\nprint(y.shape)",
    "bn = torch.nn.BatchNorm1d(16)\nz = bn(y)\nprint(z.std().item())",
    "opt = torch.optim.Adam(w.parameters(), lr=0.01)\nloss = z.pow(2).mean()\nloss.backward()\nopt.step()\n"
    "print(loss.item())",
    "p = torch.softmax(z, dim=-1)\nprint(p.sum(-1)[:3])",
]
HEAVY_BLOCK = ("model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))\n"
               "opt = torch.optim.SGD(model.parameters(), lr=0.01)\n"
               "data, target = torch.randn(256, 32), torch.randn(256, 1)\n"
               "for _ in range(200):\n    opt.zero_grad()\n"
               "    loss = torch.nn.functional.mse_loss(model(data), target)\n"
               "    loss.backward()\n    opt.step()\nprint(round(loss.item(), 4))")


def make_run_vault(root: Path, notes: int, *, heavy: bool = False) -> Path:
    if root.exists():
        shutil.rmtree(root)
    (root / ".obsidian").mkdir(parents=True)
    for n in range(notes):
        blocks = SMALL_BLOCKS + ([HEAVY_BLOCK] if heavy else [])
        body = f"# Note {n}\n\nSome prose about note {n}.\n\n"
        body += "\n\n".join(f"```python run\n{code}\n```" for code in blocks) + "\n"
        (root / f"note{n:03d}.md").write_text(body)
    return root


def blocks_of(path: Path) -> list[str]:
    """The code of a note's tagged blocks (what the floor and the peers execute)."""
    sys.path.insert(0, str(REPO))
    from notevault.note import read_note

    return [b.code for b in read_note(path).blocks]


def _tree_rss(root: int) -> list[int]:
    """RSS (kB) of ``root`` and every process below it, read from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    sizes = []
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]))
        except OSError:
            continue
    return sizes


def timed(command: list[str], *, cwd: Path | None = None, env: dict | None = None) -> tuple[float, float]:
    """Wall seconds, and the peak RSS (MB) of the largest single process in the command's process tree."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while process.poll() is None:
        peak = max([peak, *_tree_rss(process.pid)])
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    return seconds, peak / 1024


def median_of(runs: int, measure) -> tuple[float, float]:
    results = [measure() for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def interleaved(runs: int, **measures) -> dict[str, tuple[float, float]]:
    """Median seconds and peak MB of each measure, taken in rounds (A B C, A B C, …).

    This machine drifts by ±20% over minutes; measuring in rounds keeps the drift out of the ratios.
    """
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in measures}
    for _ in range(runs):
        for name, measure in measures.items():
            samples[name].append(measure())
    return {name: (statistics.median(s for s, _ in results), max(mb for _, mb in results))
            for name, results in samples.items()}


def emit(name: str, rows: list[tuple[str, str]]) -> None:
    """Print a figure table, and leave it as JSON for bench/all."""
    print(f"\n## {name}")
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    out = os.environ.get("NOTEVAULT_BENCH_JSON")
    if out:
        with open(out, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"name": name, "rows": rows}, ensure_ascii=False) + "\n")
