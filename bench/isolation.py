"""Isolation (issue 17): what running notes in worker processes costs per note, beyond the blocks' own work.

    python bench/isolation.py                  # 100 and 1,000 realistic notes, 3 rounds
    python bench/isolation.py --quick          # 20 and 100 notes, 1 round
    python bench/isolation.py --rounds 5 --settings "jobs: 1"

Cold `notevault run` (a fresh copy of the vault: no cache, no results) on realistic notes with five torch blocks
sharing state, against the floor: one process that imports torch once and exec()s the same blocks, a fresh
namespace per note. Both are measured at two sizes in interleaved rounds (floor, run, … at the small size, then at
the large one), whole process tree included: CPU and minor page faults come from getrusage() of the CLI process and
of everything below it (the template and its workers, reaped through a subreaper so none is missed).

Per note means the slope between the two sizes, so fixed costs (start-up, importing torch, warming the template)
drop out: (cost at 1,000 − cost at 100) / 900. "Beyond the floor" subtracts the floor's slope: the blocks' own work.
The same slope on notes with one trivial block shows a worker's life per note with (almost) no work in it. A bare
fork, measured outside notevault in a process warmed like its template, is the physical reference (FINDINGS).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from _common import (
    emit,
    in_rounds,
    make_realistic_vault,
    notevault,
    tagged_blocks,
    usage_of,
    write_floor,
)

PER_NOTE_GOAL_MS = 12.0  # isolation per note, fork to exit, beyond the blocks' own work
RATIO_GOALS = {100: 1.2, 1000: 2.0}  # cold run / floor, on 2 cores
HUGE_PAGES = {"PYTHONMALLOC": "malloc", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}  # FINDINGS 2026-11-23

# A process warmed as notevault's template is (its own warm_up() when importable), forking children one at a time:
# bare (fork, exit) and running one note's blocks; then the same blocks in-process, for the blocks' own work.
FORK_PROBE = r"""
import gc, json, os, resource, sys, time
try:  # the template's own warm-up, when this version has one
    from notevault.warm import warm_up
    warmed_by = "notevault.warm.warm_up()"
except ImportError:
    def warm_up():
        import torch, torch._dynamo, torch.optim
        try:
            import numpy
        except ImportError:
            pass
        torch.set_num_threads(1)
        x = torch.randn(8, 4, requires_grad=True)
        torch.nn.functional.batch_norm(x, None, None, training=True).sum().backward()
        torch.optim.Adam([x]).step()
        gc.freeze()
    warmed_by = "torch, torch.optim, torch._dynamo imported (no notevault.warm)"
warm_up()
import torch
anon_kb = next((int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("RssAnon:")), 0)
notes = [json.load(open(path)) for path in json.load(open(sys.argv[1]))]
count, out = int(sys.argv[2]), sys.argv[3]


def usage():
    own, below = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return (time.perf_counter(), own.ru_utime + own.ru_stime + below.ru_utime + below.ru_stime,
            own.ru_minflt + below.ru_minflt)


def run_note(i):
    namespace = {"torch": torch}
    for code in notes[i % len(notes)]:
        exec(compile(code, "note", "exec"), namespace)


def per_note(body, fork):
    start = usage()
    for i in range(count):
        if not fork:
            body(i)
            continue
        pid = os.fork()
        if pid == 0:
            try:
                body(i)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    end = usage()
    return {"wall_ms": (end[0] - start[0]) * 1000 / count, "cpu_ms": (end[1] - start[1]) * 1000 / count,
            "faults": (end[2] - start[2]) / count}


run_note(0)  # what the first note imports or compiles lazily is not a per-note cost
results = {"bare": per_note(lambda i: None, True), "note": per_note(run_note, True),
           "inline": per_note(run_note, False), "warmed_by": warmed_by, "anon_mb": anon_kb / 1024}
json.dump(results, open(out, "w"))
"""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def prepare(work: Path, notes: int, *, blocks: int, cheap: bool) -> tuple[Path, Path, Path]:
    """A generated vault of ``notes`` notes and the floor for it (script and argument)."""
    vault = make_realistic_vault(work / f"vault-{notes}-{blocks}", notes, blocks=blocks, cheap=cheap)
    code = [tagged_blocks(path.read_text(encoding="utf-8"))
            for path in sorted(vault.rglob("*.md")) if "Templates" not in path.parts]
    script, argument = write_floor(work / f"floor-{notes}-{blocks}", code)
    return vault, script, argument


def cold_run(template: Path, work: Path, settings: str, timeout: float):
    """`notevault run` on a fresh copy of ``template``: nothing cached, no results in the notes."""
    vault = work / "cold"
    if vault.exists():
        shutil.rmtree(vault)
    shutil.copytree(template, vault)
    if settings:
        (vault / "notevault.yaml").write_text(settings + "\n")
    return notevault("run", str(vault), timeout=timeout, reap=True)


def slope(samples: dict[str, list], large: str, small: str, span: int, value) -> float:
    """Median over rounds of (value at the large size − value at the small size) / span."""
    return statistics.median((value(big) - value(little)) / span
                             for big, little in zip(samples[large], samples[small], strict=True))


MIN_SPAN = 80  # notes between the two sizes below which a slope is mostly the noise of the fixed costs


def per_note_text(cpu_s: float, faults: float, goal_ms: float | None = None, span: int = MIN_SPAN) -> str:
    ms = cpu_s * 1000
    verdict = "met" if ms <= (goal_ms or 0) else "not met"
    if span < MIN_SPAN:
        verdict = f"not judged: fewer than {MIN_SPAN} notes between the sizes"
    goal = f" (goal ≤ {goal_ms:g} ms: {verdict})" if goal_ms else ""
    return f"{ms:.1f} ms CPU{goal}, {faults:,.0f} minor faults"


def problem(results: list) -> str | None:
    """Why these results cannot be used, if a run was killed or failed."""
    for usage in results:
        if usage.timed_out:
            return f"> {usage.seconds:.0f} s (killed at --timeout)"
        if usage.returncode != 0:
            return f"exit status {usage.returncode} (blocks failed or notevault stopped): not comparable"
    return None


def measure(args: argparse.Namespace, work: Path) -> list[tuple[str, str]]:
    small, large = args.notes
    measures = {}
    for notes in (small, large):
        say(f"generating {notes:,} realistic notes (5 torch blocks) and {notes:,} with one trivial block …")
        vault, floor_script, floor_arg = prepare(work, notes, blocks=5, cheap=False)
        trivial, _, _ = prepare(work, notes, blocks=1, cheap=True)
        measures[f"floor{notes}"] = lambda s=floor_script, a=floor_arg: usage_of(
            str(s), [str(a)], module=False, timeout=args.timeout)
        measures[f"cold{notes}"] = lambda v=vault: cold_run(v, work, args.settings, args.timeout)
        measures[f"trivial{notes}"] = lambda v=trivial: cold_run(v, work, args.settings, args.timeout)
    say(f"measuring in {args.rounds} round(s): " + ", ".join(measures))
    samples = in_rounds(args.rounds, **measures)
    rows = []
    for notes in (small, large):
        floor, cold = samples[f"floor{notes}"], samples[f"cold{notes}"]
        why = problem(floor + cold)
        if why:
            rows.append((f"{notes:,} notes: cold `notevault run VAULT` vs the floor", why))
            continue
        floor_s, cold_s = (statistics.median(u.seconds for u in floor), statistics.median(u.seconds for u in cold))
        ratio, goal = cold_s / floor_s, RATIO_GOALS.get(notes)
        verdict = f" (goal ≤ {goal:g}×: {'met' if ratio <= goal else 'not met'})" if goal else ""
        rows.append((f"{notes:,} notes: cold `notevault run VAULT` vs the floor, wall",
                     f"{cold_s:.2f} s vs {floor_s:.2f} s = {ratio:.2f}×{verdict}"))
        rows.append((f"{notes:,} notes: the same, CPU of the whole process tree",
                     f"{statistics.median(u.tree_cpu for u in cold):.2f} s vs "
                     f"{statistics.median(u.tree_cpu for u in floor):.2f} s; "
                     f"CLI peak {max(u.peak_mb for u in cold):.0f} MB, largest worker or template "
                     f"{max(u.below_peak_mb for u in cold):.0f} MB, floor {max(u.peak_mb for u in floor):.0f} MB"))
    rows += per_note_rows(samples, small, large)
    return rows


def per_note_rows(samples: dict[str, list], small: str, large: str) -> list[tuple[str, str]]:
    span = large - small
    names = [f"{kind}{notes}" for kind in ("floor", "cold", "trivial") for notes in (small, large)]
    why = problem([u for name in names for u in samples[name]])
    if why:
        return [("per note", f"not measured: {why}")]

    def per(kind: str, value) -> float:
        return slope(samples, f"{kind}{large}", f"{kind}{small}", span, value)

    floor_cpu, floor_faults = per("floor", lambda u: u.tree_cpu), per("floor", lambda u: u.tree_faults)
    below_cpu, below_faults = per("cold", lambda u: u.below_cpu), per("cold", lambda u: u.below_faults)
    return [
        ("per note, floor: the blocks' own work", per_note_text(floor_cpu, floor_faults)),
        ("per note, cold run: whole process tree",
         per_note_text(per("cold", lambda u: u.tree_cpu), per("cold", lambda u: u.tree_faults))),
        ("per note, cold run: CLI process (parse, plan, schedule, write back)",
         per_note_text(per("cold", lambda u: u.cpu), per("cold", lambda u: u.faults))),
        ("per note, cold run: template and workers (forks, each worker's whole life, the blocks)",
         per_note_text(below_cpu, below_faults)),
        ("per note, isolation's cost: template and workers beyond the floor",
         per_note_text(below_cpu - floor_cpu, below_faults - floor_faults, PER_NOTE_GOAL_MS, span)),
        ("per note, cold run: whole process tree beyond the floor",
         per_note_text(per("cold", lambda u: u.tree_cpu) - floor_cpu,
                       per("cold", lambda u: u.tree_faults) - floor_faults)),
        ("per note, notes of one trivial block: template and workers",
         per_note_text(per("trivial", lambda u: u.below_cpu), per("trivial", lambda u: u.below_faults))),
    ]


def fork_reference(work: Path, forks: int, timeout: float) -> list[tuple[str, str]]:
    """Fork physics outside notevault, with the default allocator and with the heap in huge pages."""
    _, _, argument = prepare(work, 20, blocks=5, cheap=False)
    script = work / "fork_probe.py"
    script.write_text(FORK_PROBE)
    rows = []
    for label, extra in (("", {}), (", heap in huge pages", HUGE_PAGES)):
        out = work / "fork_probe.json"
        out.unlink(missing_ok=True)
        say(f"fork reference{label or ', default allocator'}: {forks} forks …")
        usage = usage_of(str(script), [str(argument), str(forks), str(out)], module=False, timeout=timeout,
                         env=dict(os.environ, **extra))
        if not out.exists():
            rows.append((f"bare fork of a warm torch process{label}",
                         f"> {usage.seconds:.0f} s (killed)" if usage.timed_out else f"exit {usage.returncode}"))
            continue
        result = json.loads(out.read_text())
        bare, note, inline = result["bare"], result["note"], result["inline"]
        rows.append((f"reference, outside notevault{label}: bare fork to exit",
                     f"{bare['cpu_ms']:.1f} ms CPU, {bare['faults']:,.0f} minor faults, {bare['wall_ms']:.1f} ms wall "
                     f"(parent: {result['warmed_by']}, {result['anon_mb']:.0f} MB anonymous)"))
        rows.append((f"reference{label}: fork, run one note's 5 blocks, exit",
                     f"{note['cpu_ms']:.1f} ms CPU, {note['faults']:,.0f} minor faults; in-process "
                     f"{inline['cpu_ms']:.1f} ms, {inline['faults']:,.0f} faults; beyond it "
                     f"{note['cpu_ms'] - inline['cpu_ms']:.1f} ms"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 and 100 notes, 1 round, 50 forks")
    parser.add_argument("--notes", type=int, nargs=2, metavar=("SMALL", "LARGE"),
                        help="the two vault sizes (default 100 1000)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (median; default 3, quick 1)")
    parser.add_argument("--settings", default="", metavar="YAML",
                        help='notevault.yaml for the cold runs, e.g. "jobs: 1" (default: none)')
    parser.add_argument("--forks", type=int, help="forks in the reference measure (default 200, quick 50)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before one run is killed")
    args = parser.parse_args()
    args.notes = sorted(args.notes or ([20, 100] if args.quick else [100, 1000]))
    if args.notes[0] == args.notes[1]:
        parser.error("--notes needs two different sizes (per-note costs are the slope between them)")
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.forks = args.forks or (50 if args.quick else 200)
    with tempfile.TemporaryDirectory(prefix="notevault-isolation-") as tmp:
        rows = measure(args, Path(tmp))
        rows += fork_reference(Path(tmp), args.forks, args.timeout)
    settings = f"notevault.yaml: {args.settings}" if args.settings else "default settings"
    small, large = args.notes
    emit(f"isolation: cold runs of realistic notes against the floor ({settings}; medians of {args.rounds} "
         f"round(s); per note = the slope from {small:,} to {large:,} notes)", rows)


if __name__ == "__main__":
    main()
