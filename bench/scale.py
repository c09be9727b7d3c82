"""Scale (issue 14): what a run costs when nothing changed, on generated realistic vaults of thousands of notes.

    python bench/scale.py                      # 2,000 and 10,000 notes, and a note of 5,000 blocks
    python bench/scale.py --quick              # 200 notes and a 200-block note: well under a minute
    python bench/scale.py --notes 2000 --big-blocks 0 --runs 5 --timeout 30 --keep /tmp/notevault-scale
    python bench/scale.py --measures all       # run, check --frozen and lint at every size

By default each size gets the measures issue 14 sets a goal for there: a no-change run and check --frozen at
2,000 notes, a no-change run and lint at 10,000 (all three at any other size).

Each vault is primed first: one `notevault run` makes every result current, and a second one shows nothing was
left to run (its JSON report must say every block came from the note). Priming 10,000 notes runs 50,000 blocks,
so the scale vault's blocks are plain python (the realistic vault with `cheap=True`): priming then costs
notevault's own overhead, not torch's work, and the notes are the same size and shape as with torch blocks.
`--keep DIR` keeps primed vaults in DIR, so the next invocation starts measuring at once.

Measured through the CLI as a user runs it (`python -m notevault …`); wall time from outside, the CLI process's
own peak RSS and CPU from getrusage(). A measure that takes longer than --timeout (--big-timeout for the big note)
is stopped (SIGTERM, then SIGKILL) and printed as "> N s"; one that takes over --patience seconds is not repeated
(its noise is small next to its distance from the goal). Goals are issue 14's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import GENERATOR, Usage, emit, make_big_note, make_realistic_vault, notevault, usage_of

# (measure, notes) -> seconds; issue 14 sets them at these sizes only
GOALS = {("run", 2000): 0.3, ("run", 10000): 1.0, ("check", 2000): 0.5, ("lint", 10000): 3.0}
PLAN_GOAL = 1.0  # a 5,000-block note planned in about a second
COMMANDS = {"run": ["run"], "check": ["check", "--frozen"], "lint": ["lint"]}

PLAN_PROBE = r"""
import json, sys, time
from pathlib import Path

note, out = Path(sys.argv[1]), Path(sys.argv[2])
try:
    from notevault.engine import layout_of
    from notevault.plan import Planner, RunOptions
    from notevault.vault import Vault

    vault = Vault.discover(note)
    planner = Planner(vault, RunOptions(frozen=True), layout_of(vault))
    start = time.perf_counter()
    (plan,) = planner.plan([note])
    out.write_text(json.dumps({"seconds": time.perf_counter() - start, "blocks": len(plan.blocks)}))
except (ImportError, AttributeError, TypeError) as exc:
    out.write_text(json.dumps({"missing": f"{type(exc).__name__}: {exc}"}))
"""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Heartbeat:
    """Prints how far a long command has got every ``every`` seconds (it counts the CLI's progress lines)."""

    def __init__(self, label: str, every: float = 15.0) -> None:
        self.label, self.every, self.lines = label, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def line(self, _text: str) -> None:
        self.lines += 1

    def _beat(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(self.every):
            say(f"    {self.label}: {self.lines:,} progress lines, {time.monotonic() - start:.0f} s")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


def blocks_not_current(report: Path) -> int | None:
    """Blocks a JSON report says were run now or did not pass (None: no readable report)."""
    try:
        notes = json.loads(report.read_text(encoding="utf-8"))["notes"]
        return sum(1 for note in notes for block in note.get("blocks", [])
                   if block.get("status") != "passed" or not block.get("cached"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_to_current(target: Path, label: str, timeout: float) -> tuple[list[Usage], int | None]:
    """`notevault run` until nothing is left to run (at most twice): the runs, and the blocks still not current."""
    runs: list[Usage] = []
    left = None
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        for _ in range(2):
            with Heartbeat(label) as beat:
                usage = notevault("run", str(target), "--format", "json", "--output", str(report),
                                  timeout=timeout, on_line=beat.line)
            runs.append(usage)
            left = None if usage.timed_out else blocks_not_current(report)
            if left != 0 and left is not None:
                continue  # that run made results current: the next one should find nothing to run
            break
    return runs, left


class Store:
    """Where generated, primed vaults live: a temporary folder, or --keep DIR across invocations."""

    def __init__(self, keep: Path | None) -> None:
        self._tmp = None if keep else tempfile.TemporaryDirectory(prefix="notevault-scale-")
        self.root = keep or Path(self._tmp.name)
        self.root.mkdir(parents=True, exist_ok=True)

    def get(self, name: str, make) -> tuple[Path, bool]:
        """The folder ``name``, made by ``make(folder)`` unless a kept one was made by this generator."""
        folder, stamp = self.root / name, self.root / f"{name}.json"
        if folder.exists() and stamp.exists() and json.loads(stamp.read_text()) == {"generator": GENERATOR}:
            return folder, True
        stamp.unlink(missing_ok=True)
        if folder.exists():
            shutil.rmtree(folder)
        make(folder)
        return folder, False

    def mark(self, name: str) -> None:
        (self.root / f"{name}.json").write_text(json.dumps({"generator": GENERATOR}))

    def close(self) -> None:
        if self._tmp:
            self._tmp.cleanup()


def repeat(measure, runs: int, patience: float) -> list[Usage]:
    """Up to ``runs`` results, fewer when one is killed or takes longer than ``patience`` seconds."""
    results = []
    for _ in range(runs):
        results.append(measure())
        if results[-1].timed_out or results[-1].seconds > patience:
            break
    return results


def measures_at(notes: int, chosen) -> list[str]:
    """The measures to take on a vault of ``notes``: the chosen ones, or (``issue``) those with a goal there."""
    if chosen == "all" or (chosen == "issue" and not any(size == notes for _, size in GOALS)):
        return list(COMMANDS)
    if chosen == "issue":
        return [measure for measure in COMMANDS if (measure, notes) in GOALS]
    return chosen


def goal_text(seconds: float, goal: float | None) -> str:
    if goal is None:
        return ""
    return f" (goal ≤ {goal:g} s: {'met' if seconds <= goal else 'not met'})"


def figure(results: list[Usage], goal: float | None = None, *, memory: bool = True) -> str:
    """``0.41 s (goal ≤ 0.3 s: not met), median of 3; CLI peak 45 MB, CPU 0.40 s``, or ``> 60 s …``."""
    if results[-1].timed_out:
        killed = results[-1]
        so_far = f"; CLI peak by then {killed.peak_mb:.0f} MB" if memory and killed.peak_mb else ""
        return f"> {killed.seconds:g} s (stopped at the time limit){goal_text(float('inf'), goal)}{so_far}"
    if any(r.returncode not in (0, 1) for r in results):
        return f"error: exit status {results[-1].returncode}"
    seconds = statistics.median(r.seconds for r in results)
    text = f"{seconds:.2f} s{goal_text(seconds, goal)}, " + (f"median of {len(results)}" if len(results) > 1
                                                             else "1 run")
    if memory:
        text += (f"; CLI peak {max(r.peak_mb for r in results):.0f} MB, "
                 f"CPU {statistics.median(r.cpu for r in results):.2f} s")
    return text


def vault_size(root: Path) -> str:
    notes = [p for p in root.rglob("*.md") if ".notevault" not in p.parts]
    megabytes = sum(p.stat().st_size for p in notes) / 1e6
    return f"{len(notes):,} .md files, {megabytes:.0f} MB of Markdown"


def priming_text(primes: list[Usage], left: int | None) -> str:
    """``95.2 s then 41.0 s``; one run that found everything current says so (a kept vault)."""
    text = " then ".join(f"> {u.seconds:.0f} s (killed)" if u.timed_out else f"{u.seconds:.1f} s" for u in primes)
    return text + (" (already current)" if len(primes) == 1 and left == 0 else "")


def measure_vault(store: Store, notes: int, args: argparse.Namespace) -> tuple[list[tuple[str, str]], str]:
    """The rows for one vault size, and the CLI's peak RSS over its measures and its priming runs."""
    name = f"vault-{notes}"
    say(f"vault of {notes:,} notes: generating (or reusing) in {store.root} …")
    started = time.perf_counter()
    vault, reused = store.get(name, lambda folder: make_realistic_vault(folder, notes, cheap=True))
    made = "reused from --keep" if reused else f"generated in {time.perf_counter() - started:.1f} s"
    rows = [(f"{notes:,} notes: the vault", f"{vault_size(vault)}, {notes * 5:,} plain-python blocks; {made}")]
    say(f"  priming: `notevault run` until every result is current (at most {args.prime_timeout:.0f} s) …")
    primes, left = run_to_current(vault, "priming", args.prime_timeout)
    rows.append((f"{notes:,} notes: priming, `notevault run VAULT` until current", priming_text(primes, left)))
    priming_peak = f"priming runs {max(u.peak_mb for u in primes):.0f} MB"
    if left != 0:
        why = "the JSON report was unreadable" if left is None else f"{left:,} blocks were still run or failing"
        rows.append((f"{notes:,} notes: measures", f"skipped: the vault is not current ({why})"))
        return rows, priming_peak
    store.mark(name)
    measured: list[Usage] = []
    measures = measures_at(notes, args.measures)
    for measure in measures:
        command = COMMANDS[measure]
        if measure != "run":  # priming ran `run`: this question is asked for the first time
            say(f"  `notevault {' '.join(command)} VAULT`, first time …")
            first = notevault(*command, str(vault), timeout=args.timeout)
            rows.append((f"{notes:,} notes: `notevault {' '.join(command)} VAULT`, first time (nothing verified "
                         "yet: what a fresh clone's CI pays)", figure([first], None)))
            measured.append(first)
        say(f"  `notevault {' '.join(command)} VAULT` …")
        results = repeat(lambda c=command: notevault(*c, str(vault), timeout=args.timeout), args.runs, args.patience)
        label = f"{notes:,} notes: `notevault {' '.join(command)} VAULT`, nothing changed"
        rows.append((label, figure(results, GOALS.get((measure, notes)))))
        measured += results
    if not measured:
        return rows, priming_peak
    at_least = "≥ " if any(r.timed_out for r in measured) else ""  # a run stopped at the limit had not peaked yet
    names = ", ".join(COMMANDS[m][0] for m in measures)
    return rows, f"{names} {at_least}{max(r.peak_mb for r in measured):.0f} MB, {priming_peak}"


def plan_probe(note: Path, timeout: float, goal: float | None) -> str:
    """Planning alone, in-process through the library (Planner.plan), when this version has it."""
    with tempfile.TemporaryDirectory() as tmp:
        script, out = Path(tmp) / "probe.py", Path(tmp) / "probe.json"
        script.write_text(PLAN_PROBE)
        usage = usage_of(str(script), [str(note), str(out)], module=False, timeout=timeout)
        if usage.timed_out:
            return f"> {usage.seconds:g} s (stopped at the time limit){goal_text(float('inf'), goal)}"
        if not out.exists():
            return f"error: exit status {usage.returncode}"
        result = json.loads(out.read_text())
    if "missing" in result:
        return f"n/a (not available in this version: {result['missing']})"
    return f"{result['seconds']:.2f} s for {result['blocks']:,} blocks{goal_text(result['seconds'], goal)}"


def measure_big_note(store: Store, blocks: int, args: argparse.Namespace) -> list[tuple[str, str]]:
    label = f"{blocks:,}-block note"
    say(f"note of {blocks:,} tagged blocks without id= …")
    fresh_name, primed_name = f"big-{blocks}-fresh", f"big-{blocks}-primed"
    fresh, _ = store.get(fresh_name, lambda folder: make_big_note(folder / "big.md", blocks))
    store.mark(fresh_name)
    goal = PLAN_GOAL if blocks == 5000 else None
    say("  `notevault check --frozen NOTE`, no results stored …")
    cold = repeat(lambda: notevault("check", "--frozen", str(fresh / "big.md"), timeout=args.big_timeout),
                  args.runs, args.patience)
    rows = [(f"{label}: `notevault check --frozen NOTE`, no results stored (plans all, runs none)",
             figure(cold, goal))]
    say("  planning through the library …")
    rows.append((f"{label}: parse + plan in-process, no results stored (plan.Planner.plan)",
                 plan_probe(fresh / "big.md", args.big_timeout, goal)))
    if cold[-1].timed_out:
        rows.append((f"{label}: results current", f"not measured: planning alone takes over {args.big_timeout:g} s, "
                                                  "so priming would too"))
        return rows
    primed, _ = store.get(primed_name, lambda folder: shutil.copytree(fresh, folder))
    say(f"  priming: `notevault run NOTE` until current (at most {args.prime_timeout:.0f} s) …")
    primes, left = run_to_current(primed / "big.md", "priming", args.prime_timeout)
    rows.append((f"{label}: priming, `notevault run NOTE` until current", priming_text(primes, left)))
    if left != 0:
        rows.append((f"{label}: results current", "not measured: the note did not become current"))
        return rows
    store.mark(primed_name)
    for command in (["check", "--frozen"], ["run"]):
        say(f"  `notevault {' '.join(command)} NOTE`, results current …")
        results = repeat(lambda c=command: notevault(*c, str(primed / "big.md"), timeout=args.big_timeout),
                         args.runs, args.patience)
        rows.append((f"{label}: `notevault {' '.join(command)} NOTE`, results current", figure(results, goal)))
    return rows


def memory_row(peaks: dict[int, str]) -> tuple[str, str]:
    """The CLI's peak RSS at each size, side by side (issue 14: flat with vault size)."""
    sizes = "; ".join(f"{notes:,} notes: {text}" for notes, text in peaks.items())
    return "CLI peak memory (RSS of the CLI process)", sizes + " (goal: flat with vault size)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 notes and a 200-block note, 30 s limits")
    parser.add_argument("--notes", type=int, action="append", help="vault size (repeatable; default 2000, 10000)")
    parser.add_argument("--big-blocks", type=int, help="blocks of the big note (default 5000; 0: skip)")
    parser.add_argument("--measures", default="issue",
                        help="comma-separated, of run (no change), check (--frozen), lint; or all; default issue: "
                             "those issue 14 sets a goal for at that size (all three at a size it names none)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each measure (median; default 3)")
    parser.add_argument("--timeout", type=float, help="seconds before a vault measure is stopped (default 120)")
    parser.add_argument("--big-timeout", type=float, help="the same for the big note's measures (default 60)")
    parser.add_argument("--patience", type=float, default=10.0,
                        help="a measure slower than this is not repeated (default 10 s)")
    parser.add_argument("--prime-timeout", type=float, default=1800.0,
                        help="seconds allowed to each priming run (default 1800)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep primed vaults in DIR for the next run")
    args = parser.parse_args()
    args.notes = args.notes or ([200] if args.quick else [2000, 10000])
    args.big_blocks = args.big_blocks if args.big_blocks is not None else (200 if args.quick else 5000)
    args.timeout = args.timeout or (30.0 if args.quick else 120.0)
    args.big_timeout = args.big_timeout or (30.0 if args.quick else 60.0)
    if args.measures not in ("issue", "all"):
        args.measures = [m.strip() for m in args.measures.split(",") if m.strip()]
        unknown = set(args.measures) - set(COMMANDS)
        if unknown:
            parser.error(f"unknown measure(s): {', '.join(sorted(unknown))}")
    store = Store(args.keep)
    try:
        rows: list[tuple[str, str]] = []
        peaks: dict[int, str] = {}
        for notes in args.notes:
            vault_rows, peaks[notes] = measure_vault(store, notes, args)
            rows += vault_rows
        if peaks:
            rows.append(memory_row(peaks))
        if args.big_blocks:
            rows += measure_big_note(store, args.big_blocks, args)
    finally:
        store.close()
    emit(f"scale: realistic vaults, nothing changed (limits {args.timeout:g} s, big note {args.big_timeout:g} s; "
         "goals from issue 14)", rows)


if __name__ == "__main__":
    main()
