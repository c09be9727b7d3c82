"""Running a vault: plan the notes, run what is not current in fresh workers, write results back, report.

Results travel by identity: the pool reports (job, task), and each job keeps the planned blocks it runs, so a
result can only ever land on the block that produced it. A note is written back as soon as its last block has
its result, by a writer thread: a write waits for the disk (fsync), and the thread that hands jobs to workers
must not.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import figures
from .callout import Layout
from .index import Index
from .options import RunOptions, cuda_present, sha
from .results import BlockResult, NoteReport, Report, note_answer, report_from_answer
from .vault import Vault

if TYPE_CHECKING:  # planning, linting and writing are loaded once a note needs them: not for a no-change run
    from .jobs import Job
    from .lint import Linter
    from .note import Note
    from .plan import NotePlan, PlannedBlock, Planner
    from .writer import Placement, WriteBack

__all__ = ["RunOptions", "execute", "layout_of"]


def layout_of(vault: Vault) -> Layout:
    config = vault.config
    return Layout(config.fold_lines, config.max_output_lines, figures.link_style(vault))


PLANNED_AHEAD = 64  # notes read and planned but not yet written back: what the CLI holds in memory at most


def _jobs_count(vault: Vault, options: RunOptions) -> int:
    return options.jobs or vault.config.jobs or os.cpu_count() or 1


def _start_workers(vault: Vault, options: RunOptions) -> None:
    """Start the worker template (importing torch) while the rest of the vault is planned."""
    from .pool import template

    template(_jobs_count(vault, options))


def _question(vault: Vault, options: RunOptions) -> str | None:
    """What the index is asked for this command: run (current results as they are written) or check --frozen
    (stored results judged; lint has an index of its own), with everything besides the notes that shapes it.

    None where the index cannot answer: --force and check run every block.
    """
    if options.force or not (options.write or options.frozen):
        return None
    shaping = [vault.settings_digest, options.device or "", str(options.timeout or ""),
               str(cuda_present()), vault.files_digest if vault.git else ""]  # --git: as a clone would have it
    return ("frozen:" if options.frozen else "run:") + sha(*shaping)[:16]


class _Run:
    """One ``execute``: the plans, what each note still waits for, and the reports as notes finish."""

    def __init__(self, vault: Vault, options: RunOptions, on_note: Callable[[NoteReport], None] | None) -> None:
        self.vault, self.options, self.on_note = vault, options, on_note
        self.layout = layout_of(vault)
        self.planner: Planner | None = None  # made once a note must be planned
        self.linter: Linter | None = None
        self.plans: list[NotePlan] = []
        self.reports: dict[str, NoteReport] = {}
        self.waiting: dict[str, int] = defaultdict(int)
        self.chains: dict[int, tuple[tuple[str, int], ...]] = {}  # id(planned block) -> its session up to it
        self.question = _question(vault, options)
        self.index: Index | None = None
        self.unfinished = 0  # notes planned and not yet finished: planning waits while too many are
        self.finished = threading.Condition()
        self.stopped = False  # running failed or was interrupted: plan no more

    def wait_to_plan_more(self) -> None:
        with self.finished:
            self.finished.wait_for(lambda: self.unfinished < PLANNED_AHEAD or self.stopped)

    def stop(self) -> None:
        with self.finished:
            self.stopped = True
            self.finished.notify_all()

    def answer(self, paths: list[Path]) -> tuple[list[Path], list[NoteReport]]:
        """Answer what the index can; return the notes still to plan, and reports for notes left out."""
        selection = self.vault.notes(paths, templates=False)  # a template's blocks never run
        notes = [f for f in self.vault.files if f.endswith(".md")]
        if self.question is not None:
            self.index = Index.load(self.vault.root, self.question.split(":")[0], notes,
                                    links_hold=self.vault.still_answers)
        if self.options.lint:
            from .lint import Linter

            self.linter = Linter(self.vault, Index.load(self.vault.root, "lint", notes) if self.index else None)
        todo = []
        for path in selection.notes:
            rel = self.vault.relative(path)
            answer = self.index.answer(rel, self.question) if self.index else None
            try:
                answered = report_from_answer(self.vault.display(rel), answer) if answer is not None else None
            except (ValueError, TypeError, KeyError):
                answered = None  # an answer in another shape: ask again
            if answered is not None:
                self.reports[rel] = answered
                if self.linter is not None:
                    self.reports[rel].lint = self.linter.lint(path)
                if self.on_note:
                    self.on_note(answered)
            else:
                self.reports[rel] = NoteReport(self.vault.display(rel))
                todo.append(path)
        if todo:
            from .plan import Planner

            self.planner = Planner(self.vault, self.options, self.layout,
                                   eager=lambda: _start_workers(self.vault, self.options))
        outside = []
        if selection.outside:
            from .lint import outside_reports

            outside = outside_reports(self.vault, selection.outside)
        return todo, outside

    def add(self, batch: list[NotePlan]) -> None:
        """Take a batch of plans in: where each block's session is (what a result's placeholders refer to)."""
        self.plans += batch
        sessions: dict[tuple, list[tuple[str, int]]] = defaultdict(list)
        for plan in batch:
            if self.index is not None:
                self.index.saw(plan.rel, plan.note.source.sha if plan.note and plan.note.source else None)
            for planned in plan.blocks:
                if planned.task is not None:
                    sessions[planned.session].append((plan.rel, planned.block.body_start))
                    self.chains[id(planned)] = tuple(sessions[planned.session])

    def finish(self, plan: NotePlan, results: list[BlockResult] | None = None) -> None:
        report = self.reports[plan.rel]
        findings = self.linter.lint(plan.path, plan.note) if self.linter else plan.findings
        report.lint = findings
        source, figure_names = plan.note.source if plan.note else None, ()
        if results is not None:  # check --frozen
            report.blocks = results
            figure_names = tuple(n for b in plan.note.blocks if b.result for n in b.result.figures) if plan.note else ()
        elif self.options.write and plan.note is not None:
            from .writer import write_back

            done = write_back(self.vault, plan.path, plan.rel, plan.note, lambda note: self._place(plan, note),
                              self.layout)
            report.warnings += done.warnings
            report.seen = done.seen
            report.blocks = self._as_written(plan, done)
            if done.note is plan.note:  # the lines of the note as written
                report.lint = [replace(f, line=done.moved(f.line)) for f in report.lint]
            source, figure_names = done.source or source, done.figures
            if done.note is not plan.note:
                source = None  # changed during the run: what was written is not what was planned
        else:
            report.blocks = [self._shown(p, p.block.span.line) for p in plan.blocks]
        if report.seen is None and plan.note is not None:
            report.seen = hashlib.sha256(plan.note.raw().encode("utf-8", "surrogatepass")).hexdigest()
        if self.index is not None and source is not None and not report.warnings:
            answer = note_answer(replace(report, blocks=[replace(b, cached=True) for b in report.blocks],
                                         lint=plan.findings))
            self.index.record(plan.rel, source, self.question, answer, self.planner.dependencies(plan, figure_names))
        plan.note = None  # written and reported: its text and blocks are no longer needed (memory stays flat)
        for planned in plan.blocks:
            self.chains.pop(id(planned), None)
        plan.blocks = []
        self.vault.forget(plan.rel)
        if self.on_note:
            self.on_note(report)
        with self.finished:
            self.unfinished -= 1
            self.finished.notify()

    def _place(self, plan: NotePlan, note: Note) -> tuple[dict[int, Placement], list[str]]:
        """The results to write into ``note``: the plan's, or, if the note changed meanwhile, those of its
        blocks whose inputs are unchanged (the rest are dropped with a warning)."""
        planned, warnings = plan.blocks, []
        if note is not plan.note:
            fresh = self.planner.replan(plan, note, self.plans)
            by_hash = {p.run_hash: p for p in reversed(plan.blocks) if p.result is not None}
            planned = []
            for new in fresh.blocks:
                old = by_hash.pop(new.run_hash, None)
                if old is not None and old.result is not None:
                    new.result, new.origin = replace(old.result, id=new.id, hash=new.hash), old.origin
                    self.chains[id(new)] = self.chains.get(id(old), ())
                planned.append(new)
            dropped = [p.id for p in by_hash.values() if p.origin in ("run", "cache")]
            if dropped:
                warnings.append("the note changed during the run; results dropped for " + ", ".join(dropped))
        from .writer import Placement

        occurrences: dict[str, int] = defaultdict(int)
        placements = {}
        for number, p in enumerate(planned):
            occurrences[p.id] += 1
            if p.result is None or p.origin == "note":
                continue
            names = tuple(figures.name_for(plan.rel, p.id, occurrences[p.id], i) for i in range(len(p.result.figures)))
            placements[number] = Placement(
                result=replace(p.result, id=p.id, hash=p.hash), chain=self.chains.get(id(p), ()),
                figure_names=names, embeds=tuple(figures.embed(self.vault, plan.rel, n) for n in names),
                output_option=p.block.tag.output)
        return placements, warnings

    def _as_written(self, plan: NotePlan, done: WriteBack) -> list[BlockResult]:
        if done.note is not None and done.note is not plan.note:  # reported as the note now is
            return [replace(r, line=done.lines.get(n, r.line)) for n, r in sorted(done.results.items())]
        shown = []
        for number, planned in enumerate(plan.blocks):
            line = done.lines.get(number, planned.block.span.line)
            written = done.results.get(number)
            shown.append(replace(written, line=line) if written else self._shown(planned, line))
        return shown

    def _shown(self, planned: PlannedBlock, line: int) -> BlockResult:
        """A result as reported for a note left as it is: its placeholders name the lines the code is on."""
        result = planned.result or BlockResult(id=planned.id, line=line, kind=planned.block.tag.kind,
                                               status="skipped", hash=planned.hash, error="not run")
        from .jobs import locate

        chain = self.chains.get(id(planned), ())

        def where(task: int) -> tuple[str, int] | None:
            return chain[task] if 0 <= task < len(chain) else None

        return replace(result, id=planned.id, hash=planned.hash, line=line, error=locate(result.error, where),
                       output=locate(result.output, where) or "", traceback=locate(result.traceback, where))


class _Writer:
    """Finishes notes (write-back, report) one at a time on a thread of its own, in the order given."""

    def __init__(self, finish: Callable[[NotePlan], None]) -> None:
        self.finish = finish
        self.todo: queue.SimpleQueue[NotePlan | None] = queue.SimpleQueue()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._work, name="notevault-writer", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while (plan := self.todo.get()) is not None:
            if self.failure is None:
                try:
                    self.finish(plan)
                except BaseException as exc:  # noqa: BLE001 - raised again in the main thread by close()
                    self.failure = exc

    def submit(self, plan: NotePlan) -> None:
        self.todo.put(plan)

    def close(self) -> None:
        self.todo.put(None)
        self.thread.join()
        if self.failure is not None:
            raise self.failure


def execute(vault: Vault, paths: list[Path], options: RunOptions,
            on_note: Callable[[NoteReport], None] | None = None) -> Report:
    """Run (or with ``frozen``, only verify) the tagged blocks of the notes under ``paths``."""
    started = time.perf_counter()
    run = _Run(vault, options, on_note)
    todo, outside = run.answer(paths)
    try:
        if todo and options.frozen:
            for batch in run.planner.plan_batches(todo):
                run.add(batch)
                for plan in batch:
                    if plan.in_scope:
                        run.unfinished += 1
                        run.finish(plan, run.planner.frozen(plan) if plan.note else [])
        elif todo:
            _run_blocks(run, todo)
    finally:
        if run.index is not None:
            run.index.save()
        if run.linter is not None and run.linter.index is not None:
            run.linter.index.save()
    return Report(list(run.reports.values()) + outside, time.perf_counter() - started, linted=options.lint)


def _run_blocks(run: _Run, todo: list[Path]) -> None:
    """Plan on a thread of its own and run the jobs here as they come; notes are written back by the writer."""
    from .plan import jobs_of
    from .pool import WorkerPool

    vault, options = run.vault, run.options
    jobs_count = _jobs_count(vault, options)
    threads = max(1, (os.cpu_count() or 1) // jobs_count)
    pool = WorkerPool(jobs_count)
    writer = _Writer(run.finish)
    jobs: list[tuple[Job, list[PlannedBlock]] | None] = []
    failure: list[BaseException] = []

    def plan_and_submit() -> None:
        try:
            for batch in run.planner.plan_batches(todo):
                if run.stopped:
                    return
                run.add(batch)
                batch_jobs = jobs_of(batch, vault, threads)
                for _, chain in batch_jobs:
                    for planned in chain:
                        if planned.result is None and planned.note.in_scope:
                            run.waiting[planned.note.rel] += 1
                with run.finished:
                    run.unfinished += sum(1 for plan in batch if plan.in_scope)
                for plan in batch:
                    if plan.in_scope and run.waiting[plan.rel] == 0:
                        writer.submit(plan)
                for job, chain in batch_jobs:
                    jobs.append((job, chain))
                    pool.submit(job)
                run.wait_to_plan_more()
        except BaseException as exc:  # noqa: BLE001 - raised again in the main thread
            failure.append(exc)
        finally:
            pool.close()

    def on_result(job: int, task: int, result: BlockResult) -> None:
        planned = jobs[job][1][task]
        if jobs[job][0].tasks[task].replay:
            return
        if options.remember:
            run.planner.cache.put(run.planner.cache_key(planned), result)
        planned.result, planned.origin = result, "run"
        run.waiting[planned.note.rel] -= 1
        if run.waiting[planned.note.rel] == 0:
            writer.submit(planned.note)

    planner = threading.Thread(target=plan_and_submit, name="notevault-planner", daemon=True)
    planner.start()
    try:
        pool.serve(on_result=on_result, on_done=lambda job: jobs.__setitem__(job, None))  # done: let it go
    finally:
        run.stop()
        planner.join()
        run.planner.cache.close()
        writer.close()
    if failure:
        raise failure[0]
