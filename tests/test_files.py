"""Writing the user's files: atomic, never over an edit made meanwhile, the user's file mode, no litter."""

from __future__ import annotations

import os
import time

import pytest

from notevault.files import Changed, new_file_mode, read_source, writable, write_atomic


def test_a_write_keeps_the_mode_and_a_new_file_gets_the_umask(tmp_path):
    note = tmp_path / "n.md"
    note.write_text("old")
    os.chmod(note, 0o640)
    write_atomic(note, "new")
    assert note.read_text() == "new" and note.stat().st_mode & 0o777 == 0o640
    figure = tmp_path / "f.png"
    write_atomic(figure, b"png")
    assert figure.stat().st_mode & 0o777 == new_file_mode() == 0o666 & ~_umask()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_an_edit_saved_before_the_rename_wins(tmp_path):
    note = tmp_path / "n.md"
    note.write_text("as read")
    expected = note.read_bytes()
    note.write_text("saved by the editor meanwhile")
    with pytest.raises(Changed):
        write_atomic(note, "with results", expected=expected)
    assert note.read_text() == "saved by the editor meanwhile"
    assert [p.name for p in tmp_path.iterdir()] == ["n.md"]  # no temp file left behind


def test_what_was_written_is_described_by_size_time_and_hash(tmp_path):
    note = tmp_path / "n.md"
    written = write_atomic(note, "text\n")
    data, read = read_source(note)
    assert data == b"text\n" and written == read


def test_temp_files_left_by_a_killed_run_are_removed_by_a_later_write(tmp_path):
    import notevault.files as files

    files._swept.discard(str(tmp_path))
    old = tmp_path / ".notevault-a.md.dead.tmp"
    fresh = tmp_path / ".notevault-b.md.busy.tmp"  # may belong to a run going on now
    theirs = tmp_path / ".my-editor.tmp"
    for path in (old, fresh, theirs):
        path.write_text("x")
    stale = time.time() - 3600
    os.utime(old, (stale, stale))
    os.utime(theirs, (stale, stale))
    write_atomic(tmp_path / "n.md", "note")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".my-editor.tmp", ".notevault-b.md.busy.tmp", "n.md"]


def test_a_note_made_read_only_is_not_writable_even_for_root(tmp_path):
    note = tmp_path / "n.md"
    note.write_text("x")
    assert writable(note)
    os.chmod(note, 0o444)
    assert not writable(note)
