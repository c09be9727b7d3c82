"""Planning a run: which blocks run, in which namespaces, and which results are already known.

Pure: it reads notes through the vault, runs nothing and writes nothing.

A block's *run hash* covers everything that can change what it produces: its code and options, the note it is
in (its folder is the working directory), the device, time and memory limits it gets, the formula it checks, the
vault's modules it imports (from ``snippets/`` or the note's folder, followed through their own imports; see
imports.py), and the run hash of the block before it in its session — in whichever note that block is. The hash
its callout's marker states adds how the result is shown (its id, ``output=``, the vault's layout), so a callout
that would be rendered differently is not current either. The cache in ``.notevault/`` is keyed by the run hash
plus the machine (device, CUDA, versions): a result is re-rendered from it without running.

Sessions: a note's blocks share one namespace; ``isolated`` blocks have their own; ``session=NAME`` blocks share
one across notes, run in the order of their notes' vault paths (Unicode order, as ``sorted`` gives), top to
bottom within a note. Running part of a session replays the blocks before it, so it gives what the whole would.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import figures
from .cache import Cache
from .callout import Layout
from .config import NoteSettings, note_settings
from .errors import NoteError
from .findings import Finding
from .imports import VaultModules
from .index import Dependencies, file_state, state_of
from .jobs import Job, Task
from .lint import block_findings
from .note import Block, Note, ResultCallout, read_note
from .options import RunOptions, cuda_present, sha, versions
from .results import BlockResult
from .tags import FORMULA_REF, sessions_named
from .vault import Vault, display_path

FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+)')
WARNING = re.compile(r"^(?P<path>[^\s:][^:]*):(?P<line>\d+): \w+(?:Warning|Error)\b")
HASH_CHARS = 16
SNIPPETS = "snippets"  # the vault folder of modules every block can import


SessionKey = tuple[str, ...]  # ("note", rel) | ("session", name) | ("isolated", rel, n)


@dataclass(eq=False)
class PlannedBlock:
    """One tagged block with everything decided before anything runs."""

    note: NotePlan
    block: Block
    session: SessionKey
    run_hash: str
    hash: str  # what its callout's marker must say
    task: Task | None  # None: it cannot run (bad tag, unclosed fence, skipped note, unknown formula)
    result: BlockResult | None = None  # known before running
    origin: str = "run"  # "note": current as written · "cache" · "static": decided without running · "run"
    stale: str | None = None  # why the result stored in the note is not current
    imports: tuple[str, ...] = ()  # where its vault modules are or could be (vault paths): what it rests on

    @property
    def id(self) -> str:
        return self.block.id


@dataclass(eq=False)
class NotePlan:
    path: Path
    rel: str
    note: Note | None
    settings: NoteSettings = field(default_factory=NoteSettings)
    blocks: list[PlannedBlock] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # with the vault's severities
    in_scope: bool = True  # False: planned only because a session needs its blocks; replayed, never written

    @property
    def display(self) -> str:
        return display_path(self.path)


def _import_folders(plans: list[NotePlan]) -> dict[SessionKey, tuple[str, ...]]:
    """Where each session's blocks import the vault's modules from, as its worker's sys.path has it: snippets/,
    then the folders of the session's notes (see ``jobs_of``)."""
    folders: dict[SessionKey, dict[str, None]] = defaultdict(dict)
    for plan in plans:
        for number, block in enumerate(plan.note.blocks if plan.note else ()):
            folders[session_of(block, plan.rel, number)][posixpath.dirname(plan.rel)] = None
    return defaultdict(lambda: (SNIPPETS,), {key: (SNIPPETS, *names) for key, names in folders.items()})


def session_of(block: Block, rel: str, number: int) -> SessionKey:
    if block.tag.isolated:
        return ("isolated", rel, str(number))
    if block.tag.session:
        return ("session", block.tag.session)
    return ("note", rel)


class Planner:
    """Plans the notes of one vault."""

    def __init__(self, vault: Vault, options: RunOptions, layout: Layout,
                 eager: Callable[[], None] | None = None) -> None:
        self.vault = vault
        self.options = options
        self.layout = layout
        self.eager = eager  # called once when a note is read whose blocks will likely need running
        self.cache = Cache(vault.root)
        self.modules = VaultModules(self._module_bytes, self._files_below)
        self.module_states: dict[str, str | None] = {}  # vault path -> file state when read for hashing

    # Which notes ----------------------------------------------------------------------------------------

    def plan(self, notes: list[Path]) -> list[NotePlan]:
        """Plans for ``notes``, plus (out of scope) the other notes of every named session they take part in."""
        plans = [self.read(path) for path in notes]
        named = {b.tag.session for p in plans if p.note for b in p.note.blocks if b.tag.session}
        if named:
            known = {p.rel for p in plans}
            plans += [replace(self.read(self.vault.root / rel), in_scope=False)
                      for rel in self._session_members(named) if rel not in known]
        plans.sort(key=lambda p: p.rel)
        self._hash_and_task(plans)
        for plan in plans:
            if not self.options.frozen and plan.in_scope:
                self._reuse(plan)
        return plans

    def plan_batches(self, notes: list[Path]) -> Iterator[list[NotePlan]]:
        """The plans in batches that can run on their own, so running starts while the rest is read and a vault
        is never held in memory at once: first every note that names a session (with the session's other
        notes), then each other note alone."""
        solo, named = [], []
        for path in notes:
            try:
                (named if sessions_named(path.read_bytes()) else solo).append(path)
            except OSError:
                solo.append(path)  # read again by plan(), which reports why it cannot be read
        if named:
            yield self.plan(named)
        for path in solo:
            yield self.plan([path])

    def read(self, path: Path) -> NotePlan:
        rel = self.vault.relative(path)
        try:  # read for running: its links are lint's business (a light parse, never cached in the vault)
            parsed: Note | NoteError = read_note(self.vault.root / rel, light=True)
        except NoteError as exc:
            parsed = exc
        if isinstance(parsed, NoteError):
            finding = Finding("unreadable", "error", parsed.line or 1, 1, parsed.message)
            return NotePlan(path, rel, None, findings=self.vault.config.apply([finding]))
        settings, _ = note_settings(parsed.front_matter)
        findings = self.vault.config.apply(block_findings(self.vault, parsed, rel))
        if self.eager and not self.options.frozen and not settings.skip and any(
                b.result is None or not b.result.intact for b in parsed.blocks):
            self.eager()  # e.g. start importing torch while the rest of the vault is read
            self.eager = None
        return NotePlan(path, rel, parsed, settings, findings=findings)

    def replan(self, plan: NotePlan, note: Note, plans: list[NotePlan]) -> NotePlan:
        """The plan of a note that changed on disk during the run, hashed within its sessions as they are."""
        fresh = NotePlan(plan.path, plan.rel, note, note_settings(note.front_matter)[0], in_scope=plan.in_scope,
                         findings=plan.findings)
        self._hash_and_task([fresh if p is plan else replace(p, blocks=[]) for p in plans])
        return fresh

    def _session_members(self, names: set[str]) -> Iterator[str]:
        """Vault notes that hold a block of one of these sessions (a text search first: most notes have none)."""
        for rel in self.vault.files:
            if not rel.endswith(".md") or self.vault.is_excluded(rel) or self.vault.is_template(rel):
                continue
            try:
                data = (self.vault.root / rel).read_bytes()
            except OSError:
                continue
            if sessions_named(data) & names:
                note = self.vault.note(rel)
                if isinstance(note, Note) and any(b.tag.session in names for b in note.blocks):
                    yield rel

    # Hashes and tasks -----------------------------------------------------------------------------------

    def _module_bytes(self, path: str) -> bytes | None:
        """A module file as the run will use it; its state is noted now, so the index records the bytes that
        were hashed, not what is there when the note is written (a save meanwhile must bring it back)."""
        self.module_states[path] = None
        if not self.vault.has_file(path):
            return None
        try:
            info = os.stat(self.vault.root / path)
            data = (self.vault.root / path).read_bytes()
        except OSError:
            return None
        self.module_states[path] = state_of(info, data)
        return data

    def _files_below(self, prefix: str) -> list[str]:
        return [path for path in self.vault.files if path.startswith(prefix)]

    def dependencies(self, plan: NotePlan, figure_names: tuple[str, ...]) -> Dependencies:
        """Besides the note, what its verdict rests on: snippet files (present or not: a new one changes an
        import), its figure files, the notes its formulas come from, and its named sessions."""
        depends = Dependencies()
        note = plan.note
        for path in sorted({path for planned in plan.blocks for path in planned.imports}):
            depends.files[path] = self.module_states.get(path)
        folder = figures.attachment_dir(self.vault, plan.rel)
        for name in figure_names:
            depends.files[(folder / name).relative_to(self.vault.real_root).as_posix()] = file_state(folder / name)
        for block in note.blocks:
            ref = FORMULA_REF.match(block.tag.formula or "")
            if ref and ref["note"]:
                target = self.vault.resolve(ref["note"], plan.rel, wiki=True)
                depends.links.append(["r", ref["note"], True, target])  # another note may become the target
                if target is not None:
                    depends.notes[target] = None  # its hash as used in this run: settled by the index
            if block.tag.session:
                depends.sessions.append(block.tag.session)
        return depends

    def _hash_and_task(self, plans: list[NotePlan]) -> None:
        """Hash every block in session order (plans are in vault path order) and decide what it runs as."""
        last: dict[SessionKey, str] = {}
        folders = _import_folders(plans)
        for plan in plans:
            plan.blocks = []
            if plan.note is None:
                continue
            broken = any(f.rule == "front-matter" for f in plan.findings)
            for number, block in enumerate(plan.note.blocks):
                session = session_of(block, plan.rel, number)
                device = block.tag.device or plan.settings.device or self.options.device or self.vault.config.device
                timeout = (block.tag.timeout or plan.settings.timeout or self.options.timeout
                           or self.vault.config.timeout)
                formula = self.vault.formula(plan.note, plan.rel, block.tag.formula) if block.tag.formula else None
                modules = self.modules.found(block.code, folders[session])
                run_hash = sha(last.get(session, ""), plan.rel, block.code, block.tag.source(), device,
                               f"{timeout:g}", str(self.vault.config.memory_limit_mb), formula or "",
                               *(f"{path}\n{source}" for path, source in modules.sources))
                shown = sha(run_hash, block.id, block.tag.output or "", self.layout.key())[:HASH_CHARS]
                planned = PlannedBlock(plan, block, session, run_hash, shown, None, imports=modules.looked)
                plan.blocks.append(planned)
                static = self._static_result(planned, broken, formula)
                if static is not None:
                    planned.result, planned.origin = static, "static"
                    continue
                last[session] = run_hash
                planned.task = Task(
                    id=block.id, kind=block.tag.kind, code=block.code, cwd=str(plan.path.parent), device=device,
                    timeout=timeout, seed=block.tag.seed, expect=block.tag.expect, formula=formula,
                    formula_id=block.tag.formula, rtol=block.tag.rtol, atol=block.tag.atol,
                )

    def _static_result(self, planned: PlannedBlock, front_matter_broken: bool, formula: str | None
                       ) -> BlockResult | None:
        """The result of a block that cannot run, decided here."""
        block, plan = planned.block, planned.note
        failed = BlockResult(id=block.id, line=block.span.line, kind=block.tag.kind, status="failed",
                             hash=planned.hash)
        if block.tag.errors:
            return replace(failed, error="bad tag: " + "; ".join(block.tag.errors))
        if not block.closed:
            return replace(failed, error="the code fence is never closed")
        if front_matter_broken:
            return replace(failed, status="skipped", error="not run: the note's front matter is broken")
        if plan.settings.skip:
            planned.origin = "note"  # skip: true leaves the note alone
            return replace(failed, status="skipped", error="skipped by front matter (notevault: skip)")
        if block.tag.formula and formula is None:
            return replace(failed, error=f"formula={block.tag.formula}: no display formula with that ^id")
        return None

    # What is already known --------------------------------------------------------------------------------

    def cache_key(self, planned: PlannedBlock) -> str:
        cuda = cuda_present() if planned.task.device != "cpu" else False
        return sha(planned.run_hash, planned.task.device, str(cuda), versions())

    def _reuse(self, plan: NotePlan) -> None:
        """Results that need no run: current ones stored in the note, then the cache (re-rendered from it)."""
        for planned in plan.blocks:
            planned.stale = self.why_not_current(planned)
            if planned.origin == "static":
                if planned.stale is None:
                    planned.origin = "note"
                continue
            if self.options.force or not self.options.write:
                continue  # --force and check run everything
            if planned.stale is None:
                stored = planned.block.result
                planned.result = BlockResult(
                    id=planned.id, line=planned.block.span.line, kind=planned.block.tag.kind, status=stored.status,
                    hash=planned.hash, cached=True, device=stored.device, seconds=stored.seconds or 0.0,
                    error=stored.error)
                planned.origin = "note"
                continue
            cached = self.cache.get(self.cache_key(planned))
            if cached is not None:
                planned.result, planned.origin = replace(cached, cached=True), "cache"

    def why_not_current(self, planned: PlannedBlock) -> str | None:
        """Why the result callout below a block does not hold for the block as it is now (None: it does)."""
        stored = planned.block.result
        if stored is None:
            return "no stored result: run `notevault run` and commit the note"
        if stored.legacy:
            return "written by an older notevault: run `notevault run` to rewrite it"
        if not stored.intact:
            return "the result callout was edited by hand: `notevault run` writes it again"
        if stored.id != planned.id:
            return f"the block's id changed (its result says {stored.id})"
        if stored.hash != planned.hash:
            return ("the block, its options or what it depends on (earlier blocks of its session, the vault's "
                    "modules it imports, its formula, the limits it runs under) changed since its result was written")
        moved = self._moved_line(planned.note, stored)
        if moved:
            return moved
        missing = [name for name in stored.figures if not figures.exists(self.vault, planned.note.rel, name)]
        if missing:
            return f"its figure {missing[0]} is missing"
        if stored.status == "skipped" and planned.task is not None and planned.task.device == "cuda" \
                and cuda_present():
            return "it was skipped for want of CUDA, which this machine has"
        return None

    @staticmethod
    def _moved_line(plan: NotePlan, stored: ResultCallout) -> str | None:
        """A traceback or warning line of this note whose code is no longer on that line."""
        body = stored.body
        for n, line in enumerate(body[:-1]):
            match = FRAME.match(line) or WARNING.match(line)
            if match is None or match["path"] != plan.rel:
                continue
            shown = body[n + 1].strip()
            number = int(match["line"])
            actual = plan.note.line_text(number).strip().lstrip(">").strip() if plan.note else ""
            if shown and shown != actual and not shown.startswith(("^", "~")):
                return f"its traceback names line {number}, where that code no longer is"
        return None

    # Frozen ----------------------------------------------------------------------------------------------

    def frozen(self, plan: NotePlan) -> list[BlockResult]:
        """check --frozen: each block's stored result, or ``stale`` with the reason it is not current."""
        results = []
        for planned in plan.blocks:
            block = planned.block
            stale = self.why_not_current(planned)
            if planned.origin == "static" and (stale is None or planned.result.status == "skipped"):
                results.append(planned.result)
                continue
            base = BlockResult(id=block.id, line=block.span.line, kind=block.tag.kind, status="stale",
                               hash=planned.hash, cached=True)
            if stale is not None:
                results.append(replace(base, cached=False, error=stale))  # nothing stored holds for it
                continue
            stored = block.result
            error = None if stored.status == "passed" else stored.error or f"stored result is {stored.status}"
            results.append(replace(base, status=stored.status, device=stored.device,
                                   seconds=stored.seconds or 0.0, error=error))
        return results


def jobs_of(plans: list[NotePlan], vault: Vault, threads: int) -> list[tuple[Job, list[PlannedBlock]]]:
    """One job per session with something to run: its blocks up to the last that needs running.

    The blocks before that which need no run are replayed, so the namespace is what it would be in a full run.
    """
    sessions: dict[SessionKey, list[PlannedBlock]] = defaultdict(list)
    for plan in plans:
        for planned in plan.blocks:
            if planned.task is not None:
                sessions[planned.session].append(planned)
    jobs = []
    for session, members in sessions.items():
        needed = [i for i, p in enumerate(members) if p.result is None and p.note.in_scope]
        if not needed:
            continue
        chain = members[: needed[-1] + 1]
        tasks = tuple(p.task if i in needed else replace(p.task, replay=True) for i, p in enumerate(chain))
        folders = list(dict.fromkeys(str(p.note.path.parent) for p in members))  # as _import_folders has them
        name = session[1] if session[0] == "session" else f"{chain[0].note.display}:{chain[0].block.span.line}"
        job = Job(name=name, tasks=tasks, import_paths=(str(vault.root / SNIPPETS), *folders),
                  threads=threads, memory_limit_mb=vault.config.memory_limit_mb)
        jobs.append((job, chain))
    return jobs
