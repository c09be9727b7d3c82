"""``pytest --notevault PATH``: the notes ``notevault check`` checks, as test items with check's outcomes.

Each tagged block is an item named by its id (``Block.id``, as run and check report it) at its line in the note,
and each note has a ``lint`` item that fails when the note has a lint error (an unreadable note is that one
failing item), so pytest fails exactly when ``check`` does. Blocks run as ``check`` runs them: every block fresh
(no result stored in the note or cached is reused), nothing written into the notes.

A note's blocks share one namespace, so they run together, once, when the first of its items runs. Under
pytest-xdist a note's items may go to different workers: the first to need the note runs it under a file lock
and leaves the results in the session's temp folder for the others, so each block still runs once.

Collected: ``.md`` files inside a vault (a folder with ``.obsidian/`` at or above them), or under a path named on
the command line (or in ``testpaths``); never in a dot-folder, the templates folder or ``exclude:`` of
``notevault.yaml``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from pathlib import Path

import pytest

from .errors import ConfigError, NoteError, NotevaultError
from .results import BlockResult
from .vault import Vault, display_path, find_root, ignored

_VAULTS = pytest.StashKey[dict]()  # vault root -> its Vault, or the ConfigError that stops it
_LINTERS = pytest.StashKey[dict]()  # vault root -> its Linter (which reads the templates once)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("notevault")
    group.addoption("--notevault", action="store_true",
                    help="collect the tagged blocks of Obsidian notes (*.md) as tests, run as `notevault check` "
                         "runs them")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_VAULTS] = {}
    config.stash[_LINTERS] = {}


def _vault(config: pytest.Config, root: Path) -> Vault | ConfigError:
    vaults = config.stash[_VAULTS]
    if root not in vaults:
        try:
            vaults[root] = Vault(root)
        except ConfigError as exc:
            vaults[root] = exc
    return vaults[root]


def _named(config: pytest.Config, path: Path) -> bool:
    """Is ``path`` at or under a path given on the command line (or in ``testpaths``)?"""
    if config.args_source == pytest.Config.ArgsSource.INVOCATION_DIR:
        return False
    given = [Path(config.invocation_params.dir, arg.split("::")[0]).absolute() for arg in config.args]
    return any(path.is_relative_to(folder) for folder in given)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> NoteFile | None:
    config = parent.config
    if not config.getoption("notevault") or file_path.suffix != ".md":
        return None
    path = file_path.absolute()
    root = find_root(path)
    if not (root / ".obsidian").is_dir() and not _named(config, path):
        return None  # a README or a docs page outside any vault
    rel = path.relative_to(root).as_posix()
    vault = _vault(config, root)
    if any(ignored(part) for part in rel.split("/")):
        return None
    if isinstance(vault, Vault) and (vault.is_excluded(rel) or vault.is_template(rel)):
        return None
    return NoteFile.from_parent(parent, path=file_path)


class BlockFailed(Exception):
    pass


class NoteFile(pytest.File):
    """A note: its blocks' items, then its lint item; runs the note once for all its block items."""

    def collect(self):
        root = find_root(self.path.absolute())
        self.rel = self.path.absolute().relative_to(root).as_posix()
        self._results: list[BlockResult] | None = None
        vault = _vault(self.config, root)
        if isinstance(vault, ConfigError):
            yield LintItem.from_parent(self, name="lint", line=1, problem=str(vault))
            return
        self.vault = vault
        note = vault.note(self.rel)
        if not isinstance(note, NoteError):
            for index, block in enumerate(note.blocks):
                yield BlockItem.from_parent(self, name=block.id, line=block.span.line, index=index)
        yield LintItem.from_parent(self, name="lint", line=1, problem=None)

    def results(self) -> list[BlockResult]:
        """The note's block results, run once per session (by whichever xdist worker needs them first)."""
        if self._results is None:
            shared = _shared_folder(self.config)
            if shared is None:
                self._results = self._run()
            else:
                self._results = _once(shared / hashlib.sha256(str(self.path).encode()).hexdigest()[:16], self._run)
        return self._results

    def _run(self) -> list[BlockResult]:
        from .engine import RunOptions, execute

        report = execute(self.vault, [self.path], RunOptions(write=False, remember=False))
        shown = display_path(self.path)
        return next((n.blocks for n in report.notes if n.path == shown), [])


def _shared_folder(config: pytest.Config) -> Path | None:
    """Where the xdist workers of one session leave notes' results for each other; None without xdist."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return None
    # xdist gives each worker a basetemp inside the session's own, which pytest cleans up like any other.
    base = Path(config.option.basetemp).parent if config.option.basetemp else Path(tempfile.gettempdir())
    folder = base / f"notevault-{workerinput['testrunuid']}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _once(stem: Path, run) -> list[BlockResult]:
    """``run()``'s results, computed by the first process to ask and read from a file by the others."""
    done = stem.with_suffix(".json")
    with open(stem.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        if done.exists():
            return [BlockResult.from_json(item) for item in json.loads(done.read_text(encoding="utf-8"))]
        results = run()
        temp = done.with_suffix(".tmp")
        temp.write_text(json.dumps([r.to_json() for r in results]), encoding="utf-8")
        os.replace(temp, done)
        return results


class BlockItem(pytest.Item):
    def __init__(self, *, line: int, index: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.line, self.index = line, index

    def runtest(self) -> None:
        try:
            results = self.parent.results()
        except NotevaultError as exc:  # e.g. torch missing: the reason in one line, as the CLI gives it
            raise BlockFailed(str(exc)) from None
        result = results[self.index] if self.index < len(results) else None
        if result is None or result.id != self.name:
            raise BlockFailed("the note changed while pytest ran: run pytest again")
        if result.status == "skipped":
            pytest.skip(result.error or "skipped")
        if result.status != "passed":
            raise BlockFailed(result.error or result.status, result.traceback or "")

    def repr_failure(self, excinfo, style=None) -> str:
        if isinstance(excinfo.value, BlockFailed):
            return "\n".join(str(part) for part in excinfo.value.args if part)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, self.line - 1, f"{self.parent.rel}:{self.line} {self.name}"


class LintItem(pytest.Item):
    """Fails when the note has a lint error, as ``check`` does (warnings are shown, not failed)."""

    def __init__(self, *, line: int, problem: str | None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.line, self.problem = line, problem

    def runtest(self) -> None:
        from .lint import Linter

        if self.problem is not None:
            raise BlockFailed(self.problem)
        parent: NoteFile = self.parent
        linters = self.config.stash[_LINTERS]
        if parent.vault.root not in linters:
            linters[parent.vault.root] = Linter(parent.vault)
        errors = [f for f in linters[parent.vault.root].lint(self.path) if f.severity == "error"]
        if errors:
            raise BlockFailed("\n".join(f.format(parent.rel) for f in errors))

    repr_failure = BlockItem.repr_failure

    def reportinfo(self):
        return self.path, self.line - 1, f"{self.parent.rel} lint"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A skipped block is reported at its line in the note, not at the line of this module that skipped it."""
    outcome = yield
    report = outcome.get_result()
    if isinstance(item, BlockItem) and report.skipped and isinstance(report.longrepr, tuple):
        report.longrepr = (str(item.path), item.line, report.longrepr[2])
