"""Running a vault: plan each note's blocks into sessions, reuse what is current, run the rest, write back.

A block's *hash* is what produced its result: its code, the code before it in its session, its options,
the formula it checks and the snippets it imports. The note's own result marker stores that hash (so a
fresh clone of a vault with current results runs nothing); the cache in ``.notevault/`` is keyed by the
hash plus the device and the torch/notevault versions.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from . import __version__
from .cache import Cache
from .config import note_settings
from .errors import NoteError
from .findings import Finding
from .lint import Linter, outside_reports
from .note import Fence, Note, decode, parse_note
from .pool import WorkerPool, template
from .results import BlockResult, NoteReport, Report
from .tags import FORMULA_REF
from .vault import Vault
from .worker import NO_CUDA, Job, Task
from .writer import (
    Layout,
    attachment_dir,
    figure_folder,
    remove_attachments,
    splice_results,
    stored_result,
    write_atomic,
)


@dataclass(frozen=True)
class RunOptions:
    device: str | None = None  # --device: overrides the vault default, not a block's own device=
    jobs: int | None = None
    timeout: float | None = None
    force: bool = False  # ignore the cache and the results stored in notes
    write: bool = True  # run writes results back; check does not
    lint: bool = False  # check also lints
    frozen: bool = False  # check --frozen: run nothing, compare stored results with the blocks


@dataclass
class _Planned:
    """One tagged block of one note, with everything decided before anything runs."""

    fence: Fence
    hash: str
    id: str
    task: Task | None  # None: not runnable (bad tag, unclosed fence, skipped note)
    session: tuple
    result: BlockResult | None = None  # known before running (failure, skip, cache, stored in the note)
    from_note: bool = False  # the note already shows this result: leave its callout alone


@dataclass
class _NotePlan:
    path: Path
    rel: str
    display: str
    note: Note | None
    blocks: list[_Planned] = field(default_factory=list)
    problems: list[Finding] = field(default_factory=list)


def display_path(path: Path) -> str:
    """Paths in reports are relative to the current folder (SPEC §7)."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


@lru_cache(maxsize=1)
def _versions() -> str:
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "none"
    return f"torch={torch_version} notevault={__version__} python={sys.version_info[:2]}"


def _cuda_present() -> bool:
    """A cheap guess, without importing torch, that goes into cache keys of device=auto blocks."""
    return os.path.exists("/dev/nvidiactl") and "+cpu" not in _versions()


def _sha(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


@lru_cache(maxsize=4096)
def _imported_modules(code: str) -> frozenset[str]:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return frozenset()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return frozenset(names)


class Planner:
    """Hashes and plans the blocks of notes in one vault."""

    def __init__(self, vault: Vault, options: RunOptions) -> None:
        self.vault = vault
        self.options = options
        self.snippets = vault.root / "snippets"
        self.cache = Cache(vault.root)
        self._snippet_sources: dict[str, str] = {}

    def snippet_source(self, module: str) -> str:
        """The source of ``snippets/<module>`` ("" for any other module), read once per run."""
        if module not in self._snippet_sources:
            self._snippet_sources[module] = ""
            for candidate in (self.snippets / f"{module}.py", self.snippets / module / "__init__.py"):
                if candidate.is_file():
                    self._snippet_sources[module] = candidate.read_text(encoding="utf-8", errors="replace")
                    break
        return self._snippet_sources[module]

    def formula_latex(self, note: Note, rel: str, ref: str) -> str | None:
        match = FORMULA_REF.match(ref)
        if not match:
            return None
        target = note
        if match["note"]:
            target_rel = self.vault.resolve(match["note"], rel, wiki=True)
            target = self.vault.note(target_rel) if target_rel else None
        if not isinstance(target, Note):
            return None
        return next((m.latex for m in target.maths if m.block_id == match["id"]), None)

    @staticmethod
    def session_of(fence: Fence, rel: str) -> tuple:
        if fence.tag.isolated:
            return ("isolated", rel, fence.span.line)
        if fence.tag.session:
            return ("session", fence.tag.session)
        return ("note", rel)

    def hashes(self, note: Note, rel: str) -> list[tuple[Fence, str]]:
        """Each tagged fence of the note with its hash."""
        earlier: dict[tuple, list[str]] = defaultdict(list)
        hashed = []
        for fence in note.blocks:
            session = self.session_of(fence, rel)
            formula = self.formula_latex(note, rel, fence.tag.formula) if fence.tag.formula else None
            snippets = [self.snippet_source(m) for m in sorted(_imported_modules(fence.code))]
            digest = _sha(*earlier[session], fence.code, fence.tag.source(), formula or "", *snippets)
            hashed.append((fence, digest[:16]))
            earlier[session].append(fence.code)
        return hashed

    def plan(self, path: Path) -> _NotePlan:
        rel = self.vault.relative(path)
        self.vault.forget(rel)
        parsed = self.vault.note(rel)
        plan = _NotePlan(path, rel, display_path(path), parsed if isinstance(parsed, Note) else None)
        if isinstance(parsed, NoteError):
            plan.problems.append(Finding("unreadable", "error", parsed.line or 1, 1, parsed.message))
            return plan
        note = parsed
        settings, problems = note_settings(note.front_matter)
        plan.problems += list(note.problems)
        plan.problems += [Finding("front-matter", "error", 1, 1, message) for message in problems]
        front_matter_broken = any(p.rule == "front-matter" for p in plan.problems)
        config = self.vault.config
        for fence, block_hash in self.hashes(note, rel):
            tag = fence.tag
            block_id = tag.id or default_id(note, fence)
            planned = _Planned(fence, block_hash, block_id, None, self.session_of(fence, rel))
            base = BlockResult(id=block_id, line=fence.span.line, kind=tag.kind, status="failed", hash=block_hash)
            plan.blocks.append(planned)
            if tag.errors:
                planned.result = replace(base, error="bad tag: " + "; ".join(tag.errors))
                plan.problems.append(Finding("bad-tag", "error", fence.span.line, 1, "; ".join(tag.errors)))
                continue
            if not fence.closed:
                planned.result = replace(base, error="the code fence is never closed")
                continue
            if front_matter_broken:
                planned.result = replace(base, status="skipped", error="not run: the note's front matter is broken")
                continue
            if settings.skip:
                planned.result = replace(base, status="skipped", error="skipped by front matter (notevault: skip)")
                continue
            formula = None
            if tag.formula:
                formula = self.formula_latex(note, rel, tag.formula)
                if formula is None:
                    planned.result = replace(base, error=f"formula={tag.formula}: no display formula with that ^id")
                    continue
            device = tag.device or settings.device or self.options.device or config.device
            timeout = tag.timeout or settings.timeout or self.options.timeout or config.timeout
            planned.task = Task(
                id=block_id, line=fence.span.line, kind=tag.kind, code=fence.code, body_start=fence.body_start,
                filename=plan.display, hash=block_hash, device=device, timeout=timeout, seed=tag.seed,
                expect=tag.expect, formula=formula, formula_id=tag.formula, rtol=tag.rtol, atol=tag.atol,
            )
        return plan

    def cache_key(self, task: Task) -> str:
        cuda = _cuda_present() if task.device != "cpu" else False
        return _sha(task.hash, task.device, str(cuda), _versions())

    @staticmethod
    def _still_holds(status: str, task: Task) -> bool:
        """A stored pass is current; so is a device=cuda skip on a machine that still has no CUDA."""
        return status == "passed" or (status == "skipped" and task.device == "cuda" and not _cuda_present())

    def reuse(self, plan: _NotePlan) -> None:
        """Fill in results that need no run: current results stored in the note, then the cache."""
        if self.options.force:
            return
        for planned in plan.blocks:
            if planned.task is None:
                continue
            if self.options.write:
                stored = stored_result(plan.note, planned.fence)
                if stored and stored.hash == planned.hash and self._still_holds(stored.status, planned.task):
                    planned.result = BlockResult(
                        id=planned.task.id, line=planned.task.line, kind=planned.task.kind, status=stored.status,
                        hash=planned.hash, cached=True, device=stored.device, seconds=stored.seconds,
                        error=NO_CUDA if stored.status == "skipped" else None)
                    planned.from_note = True
                    continue
            cached = self.cache.get(self.cache_key(planned.task))
            if cached is not None:
                planned.result = replace(cached, line=planned.task.line, cached=True)


def default_id(note: Note, fence: Fence) -> str:
    """``L<line>``, counting lines as if no result callout were written, so ids stay put across runs."""
    offsets_above = sum(
        note.text.count("\n", stored.start, stored.end)
        for other in note.blocks
        if other.span.start < fence.span.start and (stored := stored_result(note, other))
    )
    return f"L{fence.span.line - offsets_above}"


def frozen_results(planner: Planner, plan: _NotePlan) -> list[BlockResult]:
    """check --frozen: each block's stored result, or ``stale`` when it is missing or out of date."""
    results = []
    for planned in plan.blocks:
        if planned.task is None and planned.result is not None:
            results.append(planned.result)
            continue
        stored = stored_result(plan.note, planned.fence)
        base = BlockResult(id=planned.id, line=planned.fence.span.line, kind=planned.fence.tag.kind, status="stale",
                           hash=planned.hash, cached=True)
        if stored is None:
            results.append(replace(base, error="no stored result: run `notevault run` and commit the note"))
        elif stored.hash != planned.hash:
            results.append(replace(base, error="the block changed since its result was written"))
        else:
            error = None if stored.status == "passed" else f"stored result is {stored.status}"
            results.append(replace(base, status=stored.status, device=stored.device, seconds=stored.seconds,
                                   error=error))
    return results


def _jobs_of(plans: list[_NotePlan], vault: Vault, threads: int) -> list[Job]:
    """Group runnable blocks into worker jobs: one per session that has something to run."""
    sessions: dict[tuple, list[tuple[_NotePlan, _Planned]]] = defaultdict(list)
    for plan in plans:
        for planned in plan.blocks:
            if planned.task is not None:
                sessions[planned.session].append((plan, planned))
    jobs = []
    for session, members in sessions.items():
        first_to_run = next((i for i, (_, p) in enumerate(members) if p.result is None), None)
        if first_to_run is None:
            continue
        tasks = []
        sources: dict[str, dict[int, str]] = defaultdict(dict)
        for i, (plan, planned) in enumerate(members):
            task = replace(planned.task, replay=True) if i < first_to_run else planned.task
            tasks.append(task)
            for n, code_line in enumerate(planned.fence.code.split("\n")):
                sources[plan.display][planned.fence.body_start + n + 1] = code_line
        first_plan = members[0][0]
        name = session[1] if session[0] == "session" else f"{first_plan.display}:{members[0][1].fence.span.line}"
        jobs.append(Job(
            name=name, tasks=tuple(tasks), cwd=str(first_plan.path.parent),
            import_paths=(str(vault.root / "snippets"), str(first_plan.path.parent)),
            threads=threads, memory_limit_mb=vault.config.memory_limit_mb, sources=dict(sources),
            share_worker=vault.config.isolation == "namespace",
        ))
    return jobs


def write_back(vault: Vault, planner: Planner, plan: _NotePlan, results: dict[str, BlockResult],
               layout: Layout) -> list[str]:
    """Splice results into the note as it is on disk now; return warnings. An edit made meanwhile wins."""
    warnings: list[str] = []
    original = plan.note.raw() if plan.note else None
    layout = replace(layout, figure_folder=figure_folder(vault, plan.rel))
    for _attempt in range(3):
        try:
            data = plan.path.read_bytes()
            text, bom = decode(data, plan.path)
        except (OSError, NoteError) as exc:
            return [f"results not written: {exc}"]
        if plan.note is not None and (text, bom) == (plan.note.text, plan.note.bom):
            note, hashed = plan.note, [(p.fence, p.hash) for p in plan.blocks]  # untouched since planned
        else:
            note = parse_note(text, plan.path, bom=bom)
            hashed = planner.hashes(note, plan.rel)
        present = {h for _, h in hashed}
        if note.raw() != original:
            dropped = [r.id for h, r in results.items() if h not in present]
            if dropped:
                warnings.append("the note changed during the run; results dropped for " + ", ".join(dropped))
        new_text, figures, old_figures = splice_results(note, hashed, results, layout)
        relocated = _relocate_tracebacks(plan, planner, results, new_text)
        if relocated != results:
            new_text, figures, old_figures = splice_results(note, hashed, relocated, layout)
        if new_text == note.raw():
            return warnings
        folder = attachment_dir(vault, plan.rel)
        for name, png in figures.items():
            folder.mkdir(parents=True, exist_ok=True)
            write_atomic(folder / name, png)
        if plan.path.read_bytes() != data:
            continue  # edited between our read and our write: splice onto the newest text
        write_atomic(plan.path, new_text)
        remove_attachments(vault, plan.rel, old_figures)
        return warnings
    return warnings + ["results not written: the note kept changing while notevault tried to write"]


FRAME_LINE = re.compile(r'(File "(?P<file>[^"]+)", line )(?P<line>\d+)')


def _relocate_tracebacks(plan: _NotePlan, planner: Planner, results: dict[str, BlockResult],
                         written: str) -> dict[str, BlockResult]:
    """Tracebacks name the lines a block had when it ran; result callouts written above it move it down."""
    if not any(r.traceback for r in results.values()):
        return results
    text = written[1:] if written.startswith("\ufeff") else written
    after = {h: fence.body_start for fence, h in planner.hashes(parse_note(text, plan.path), plan.rel)}
    shift: dict[int, int] = {}  # 1-based code line when it ran -> line in the written note
    for planned in plan.blocks:
        if planned.hash in after:
            moved = after[planned.hash] - planned.fence.body_start
            for n in range(planned.fence.code.count("\n") + 1):
                shift[planned.fence.body_start + 1 + n] = planned.fence.body_start + 1 + n + moved

    def move(match: re.Match) -> str:
        if match["file"] != plan.display:
            return match.group(0)
        line = int(match["line"])
        return f"{match.group(1)}{shift.get(line, line)}"

    return {h: replace(r, traceback=FRAME_LINE.sub(move, r.traceback)) if r.traceback else r
            for h, r in results.items()}


def execute(vault: Vault, paths: list[Path], options: RunOptions,
            on_note: Callable[[NoteReport], None] | None = None) -> Report:
    """Run (or with ``frozen``, only verify) the tagged blocks of the notes under ``paths``."""
    started = time.perf_counter()
    planner = Planner(vault, options)
    linter = Linter(vault) if options.lint else None
    plans = []
    for path in vault.notes(paths):
        plan = planner.plan(path)
        if not options.frozen:
            planner.reuse(plan)
            if any(p.task is not None and p.result is None for p in plan.blocks):
                template()  # start importing torch now, while the other notes are planned
        plans.append(plan)
    reports = {plan.rel: NoteReport(plan.display) for plan in plans}
    for outside in outside_reports(vault):
        reports[outside.path] = outside
    config = vault.config
    layout = Layout(config.fold_lines, config.max_output_lines)

    def finish(plan: _NotePlan, results: list[BlockResult]) -> None:
        report = reports[plan.rel]
        report.blocks = results
        report.lint = linter.lint(plan.path) if linter else sorted(plan.problems, key=lambda f: (f.line, f.col))
        if options.write and plan.note is not None:
            to_write = {p.hash: r for p, r in zip(plan.blocks, results, strict=True) if not p.from_note}
            if to_write:
                report.warnings += write_back(vault, planner, plan, to_write, layout)
        if on_note:
            on_note(report)

    if options.frozen:
        for plan in plans:
            finish(plan, frozen_results(planner, plan) if plan.note else [])
        return Report(list(reports.values()), time.perf_counter() - started)

    jobs_count = options.jobs or config.jobs or os.cpu_count() or 1
    threads = max(1, (os.cpu_count() or 1) // jobs_count)
    jobs = _jobs_of(plans, vault, threads)
    waiting: dict[str, int] = defaultdict(int)
    for job in jobs:
        for plan in _plans_in(job, plans):
            waiting[plan.rel] += 1
    results_by_task: dict[tuple[str, str, int], BlockResult] = {}

    def remember(job: Job, result: BlockResult) -> None:
        task = next(t for t in job.tasks if t.line == result.line and t.id == result.id)
        if not task.replay and result.status != "failed":  # failures run again next time, like pytest
            planner.cache.put(planner.cache_key(task), result)

    def job_done(job: Job, results: list[BlockResult]) -> None:
        for task, result in zip(job.tasks, results, strict=True):
            if not task.replay:
                results_by_task[(task.filename, task.hash, task.line)] = result
        for plan in _plans_in(job, plans):
            waiting[plan.rel] -= 1
            if waiting[plan.rel] == 0:
                finish(plan, _collect(plan, results_by_task))

    for plan in plans:
        if waiting[plan.rel] == 0:
            finish(plan, _collect(plan, results_by_task))
    try:
        WorkerPool(jobs_count).run(jobs, on_done=job_done, on_result=remember)
    finally:
        planner.cache.close()
    return Report(list(reports.values()), time.perf_counter() - started)


def _plans_in(job: Job, plans: list[_NotePlan]) -> list[_NotePlan]:
    files = {task.filename for task in job.tasks}
    return [plan for plan in plans if plan.display in files]


def _collect(plan: _NotePlan, ran: dict[tuple[str, str, int], BlockResult]) -> list[BlockResult]:
    results = []
    for planned in plan.blocks:
        result = planned.result or ran.get((plan.display, planned.hash, planned.fence.span.line))
        if result is None:
            result = BlockResult(id=planned.id, line=planned.fence.span.line,
                                 kind=planned.fence.tag.kind, status="skipped", hash=planned.hash,
                                 error="not run")
        results.append(result)
    return results
