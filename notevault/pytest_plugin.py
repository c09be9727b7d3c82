"""``pytest --notevault PATH``: each tagged block of each note is a test item, run by the same engine.

A note's blocks run together (they share a namespace), once, when its first item runs; each item then reports
its own block's result. Results come from the same cache as ``notevault run``; nothing is written to the notes.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("notevault")
    group.addoption("--notevault", action="store_true", help="collect tagged blocks of Obsidian notes (*.md)")


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if parent.config.getoption("notevault") and file_path.suffix == ".md":
        return NoteFile.from_parent(parent, path=file_path)
    return None


class BlockFailed(Exception):
    pass


class NoteFile(pytest.File):
    def collect(self):
        from .note import Note
        from .vault import Vault

        self.vault = Vault.discover(self.path)
        note = self.vault.note(self.vault.relative(self.path))
        if not isinstance(note, Note):
            raise BlockFailed(str(note))
        self._results = None
        for block in note.blocks:
            name = block.tag.id or f"L{block.span.line}"
            yield BlockItem.from_parent(self, name=name, line=block.span.line)

    def results(self) -> dict[int, object]:
        if self._results is None:
            from .engine import RunOptions, execute

            report = execute(self.vault, [self.path], RunOptions(write=False))
            self._results = {b.line: b for note in report.notes for b in note.blocks}
        return self._results


class BlockItem(pytest.Item):
    def __init__(self, *, line: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.line = line

    def runtest(self) -> None:
        result = self.parent.results().get(self.line)
        if result is None:
            raise BlockFailed("the block was not run")
        if result.status == "skipped":
            pytest.skip(result.error or "skipped")
        if result.status != "passed":
            raise BlockFailed(result.error or result.status, result.traceback or "")

    def repr_failure(self, excinfo, style=None) -> str:
        if isinstance(excinfo.value, BlockFailed):
            return "\n".join(str(part) for part in excinfo.value.args if part)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, self.line - 1, f"{self.path.name}:{self.line} {self.name}"
