"""The index: unchanged notes are answered without being read; anything their verdict rests on brings them back."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import make_vault

from notevault.engine import RunOptions, execute
from notevault.index import INDEX_FOLDER, Index, file_state
from notevault.vault import Vault


def fence(code: str, tag: str = "python run") -> str:
    return f"```{tag}\n{code}\n```\n"


def run(root, **options):
    """Run the vault; return the notes that were planned (read and parsed), and the report."""
    import notevault.plan as plan

    planned = []
    real_read = plan.Planner.read

    def read(self, path):
        planned.append(self.vault.relative(path))
        return real_read(self, path)

    plan.Planner.read = read
    try:
        report = execute(Vault(root), [root], RunOptions(**options))
    finally:
        plan.Planner.read = real_read
    return sorted(planned), report


def age(root):
    """Make every file look older than the index's racy window (a real vault is edited seconds apart)."""
    old = time.time() - 10
    for path in root.rglob("*"):
        if path.is_file() and ".notevault" not in path.parts:
            os.utime(path, (old, old))
    for index in (root / INDEX_FOLDER).glob("index-*.json"):
        data = json.loads(index.read_text())
        for rel, entry in data["notes"].items():
            entry["stat"] = [entry["stat"][0], (root / rel).stat().st_mtime_ns]
            for given in entry["answers"].values():
                given["files"] = {f: file_state(root / f) for f in given["files"]}
        index.write_text(json.dumps(data))


@pytest.fixture
def vault(tmp_path):
    root = make_vault(tmp_path, {
        "snippets/helper.py": "from inner import SCALE\ndef twice(v):\n    return SCALE * v\n",
        "snippets/inner.py": "SCALE = 2\n",
        "a.md": fence("from helper import twice\nprint(twice(21))"),
        "b.md": fence("print('b')"),
        "s1.md": fence("shared = 1", "python run session=s"),
        "s2.md": fence("print(shared)", "python run session=s"),
    })
    assert run(root)[0] == ["a.md", "b.md", "s1.md", "s2.md"]
    age(root)
    return root


def test_nothing_changed_nothing_is_read(vault):
    planned, report = run(vault)
    assert planned == []
    assert [(n.path.rsplit("/", 1)[-1], [(b.status, b.cached) for b in n.blocks]) for n in report.notes] == [
        ("a.md", [("passed", True)]), ("b.md", [("passed", True)]), ("s1.md", [("passed", True)]),
        ("s2.md", [("passed", True)])]
    frozen_planned, frozen = run(vault, write=False, frozen=True)
    assert frozen_planned == ["a.md", "b.md", "s1.md", "s2.md"]  # a first check --frozen: its own answers
    assert run(vault, write=False, frozen=True)[0] == [] and not frozen.failed()


def test_an_edited_note_is_read_again_and_only_it(vault):
    (vault / "b.md").write_text(fence("print('b, edited')"))
    planned, report = run(vault)
    assert planned == ["b.md"]
    assert "> b, edited" in (vault / "b.md").read_text()


def test_a_touched_note_with_the_same_bytes_is_still_answered(vault):
    os.utime(vault / "b.md")  # saved without a change: a new time, the same content
    old = time.time() - 10
    os.utime(vault / "b.md", (old, old))
    assert run(vault)[0] == []


def test_a_note_saved_just_before_the_index_is_hashed_again(vault):
    text = (vault / "b.md").read_text()
    run(vault)  # index saved now
    (vault / "b.md").write_text(text.replace("print('b')", "print('c')"))  # same size, within the racy window
    stat = (vault / "b.md").stat()
    entry = Index.load(vault, "run", [])
    entry.entries["b.md"]["stat"] = [stat.st_size, stat.st_mtime_ns]  # as if the index had recorded this time
    entry.changed = True
    entry.save()
    assert run(vault)[0] == ["b.md"]


def test_a_snippet_edit_brings_back_the_notes_that_import_it_even_through_another_snippet(vault):
    (vault / "snippets" / "inner.py").write_text("SCALE = 3\n")
    planned, _ = run(vault)
    assert planned == ["a.md"]
    assert "> 63" in (vault / "a.md").read_text()


def test_a_new_snippet_that_shadows_an_import_brings_the_note_back(vault):
    (vault / "b.md").write_text(fence("import colorsys\nprint('b')"))
    run(vault)
    age(vault)
    (vault / "snippets" / "colorsys.py").write_text("print('shadowed')\n")
    assert run(vault)[0] == ["b.md"]


def test_a_deleted_figure_makes_its_note_current_no_more(tmp_path):
    root = make_vault(tmp_path, {"p.md": fence("import matplotlib.pyplot as plt\nplt.plot([1, 2])")})
    run(root)
    age(root)
    (figure,) = root.glob("*.png")
    figure.unlink()
    planned, report = run(root)
    assert planned == ["p.md"] and figure.exists()  # re-rendered from the cache, the file written again


def test_a_session_member_edit_brings_back_the_whole_session(vault):
    (vault / "s1.md").write_text(fence("shared = 2", "python run session=s"))
    planned, report = run(vault)
    assert planned == ["s1.md", "s2.md"]
    assert "> 2" in (vault / "s2.md").read_text()


def test_a_new_note_joining_a_session_brings_it_back(vault):
    (vault / "s0.md").write_text(fence("shared = 5", "python run session=s"))
    planned, _ = run(vault)
    assert planned == ["s0.md", "s1.md", "s2.md"]


def test_a_note_joining_a_session_with_a_quoted_name_brings_it_back(vault):
    """``session="s"`` is session s to the tag parser, so it must be to the index and the planner too."""
    (vault / "s15.md").write_text(fence("shared = 7", 'python run session="s"'))
    planned, _ = run(vault)
    assert planned == ["s1.md", "s15.md", "s2.md"] and "> 7" in (vault / "s2.md").read_text()
    execute(Vault(vault), [vault / "s2.md"], RunOptions(force=True))  # one note of the session: replayed before it
    assert "> 7" in (vault / "s2.md").read_text()


def test_an_answer_holds_only_for_what_it_rested_on_when_it_was_given(vault):
    """A later question recorded on a changed note must not make an older answer about another look current."""
    (vault / "s1.md").write_text(fence("shared = 3", "python run session=s"))
    assert run(vault, write=False, frozen=True)[0] == ["a.md", "b.md", "s1.md", "s2.md"]  # records s1's new sha
    planned, _ = run(vault)
    assert planned == ["s1.md", "s2.md"] and "> 3" in (vault / "s2.md").read_text()
    (vault / "s9.md").write_text(fence("shared = 4", "python run session=s"))
    run(vault, write=False, frozen=True)  # a new file: check --frozen also lints, so it asks about every note
    assert run(vault)[0] == ["s1.md", "s2.md", "s9.md"]  # s9 joined after the run answers were given


def test_settings_and_options_are_part_of_the_question(vault):
    (vault / "notevault.yaml").write_text("timeout: 12\n")
    assert run(vault)[0] == ["a.md", "b.md", "s1.md", "s2.md"]
    assert run(vault, timeout=5)[0] == ["a.md", "b.md", "s1.md", "s2.md"]
    assert run(vault, force=True)[0] == ["a.md", "b.md", "s1.md", "s2.md"]


@pytest.mark.parametrize("damage", ["delete", "garbage", "torn", "foreign"])
def test_a_lost_or_damaged_index_costs_time_never_correctness(vault, damage):
    index = vault / INDEX_FOLDER / "index-run.json"
    before = {p.name: p.read_bytes() for p in vault.glob("*.md")}
    if damage == "delete":
        index.unlink()
    elif damage == "garbage":
        index.write_bytes(b"\x00\xff not json")
    elif damage == "torn":
        index.write_bytes(index.read_bytes()[: index.stat().st_size // 2])
    else:
        index.write_text(json.dumps({"format": 99, "notes": {"a.md": "nonsense"}}))
    planned, report = run(vault)
    assert planned == ["a.md", "b.md", "s1.md", "s2.md"]
    assert not report.failed() and {p.name: p.read_bytes() for p in vault.glob("*.md")} == before
    assert json.loads(index.read_text())["format"] == 2  # written afresh


def test_an_index_entry_with_the_wrong_shape_is_ignored(vault):
    index = vault / INDEX_FOLDER / "index-run.json"
    data = json.loads(index.read_text())
    data["notes"]["b.md"] = {"sha": 1}
    index.write_text(json.dumps(data))
    planned, report = run(vault)
    assert "b.md" in planned and not report.failed()


def test_a_copied_vault_is_judged_by_content_not_by_time(vault, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(vault, copy, copy_function=shutil.copy)  # new times everywhere, the same bytes
    assert run(copy)[0] == []


def lint(root):
    """Lint the vault; return the notes that were read, and the findings by note."""
    import notevault.note as note_module
    from notevault.lint import lint_paths

    read = []
    real = note_module.read_note

    def reading(path):
        read.append(path.relative_to(root).as_posix())
        return real(path)

    note_module.read_note = reading
    try:
        report = lint_paths(Vault(root), [root])
    finally:
        note_module.read_note = real
    return sorted(read), {n.path.rsplit("/", 1)[-1]: [f.message for f in n.lint] for n in report.notes}


@pytest.fixture
def linked(tmp_path):
    root = make_vault(tmp_path, {
        "a.md": "# A\n\n![plot](img/plot.png)\n\nsee [[b#Results]] and [[b#^key]]\n",
        "b.md": "# B\n\n## Results\n\nvalue ^key\n",
        "Templates/t.md": "# T\n\n## 1. Topic\n\n* 背景：\n\n## 2. Notes\n\ntext\n",
        "c.md": "# C\n\n## 1. Topic\n\n* 背景：filled\n\n## 2. Notes\n\ntext\n",
    }, templates="Templates")
    first = lint(root)
    assert first[1]["a.md"] == ["broken image: 'img/plot.png' not found"]
    age(root)
    return root


def test_lint_reads_nothing_when_nothing_changed(linked):
    assert lint(linked)[0] == []


def test_a_new_file_that_a_link_names_changes_its_answer_without_reading_other_notes(linked):
    (linked / "img").mkdir()
    (linked / "img" / "plot.png").write_bytes(b"png")
    read, findings = lint(linked)
    assert findings["a.md"] == []
    assert "c.md" not in read  # its links still resolve as they did: answered, not read (a.md reads b.md)


def test_a_heading_gone_from_a_linked_note_is_seen(linked):
    (linked / "b.md").write_text("# B\n\n## Other\n\nvalue ^key\n")
    read, findings = lint(linked)
    assert "broken heading link: no heading 'Results' in 'b.md'" in findings["a.md"]
    assert "c.md" not in read


def test_a_changed_template_relints_every_note(linked):
    template = linked / "Templates" / "t.md"
    template.write_text(template.read_text() + "\n## 3. New\n\nx\n")
    read, findings = lint(linked)
    assert "template section '3. New' is missing" in findings["c.md"]
    assert set(read) >= {"a.md", "b.md", "c.md"}


def test_a_new_note_that_a_formula_reference_now_resolves_to_brings_the_note_back(tmp_path):
    # formula=Other#^f resolves to sub/Other.md; a new Other.md at the root is what Obsidian (and the planner) now
    # resolves it to. The index recorded only sub/Other.md, so run answers the old pass without planning.
    root = make_vault(tmp_path, {"sub/Other.md": "$$y = 2 x$$\n^f\n",
                                 "n.md": fence("x = torch.arange(4.0); y = 2 * x", "python check formula=Other#^f")})
    _, report = run(root)
    assert report.notes[0].blocks[0].status == "passed"
    age(root)
    (root / "Other.md").write_text("$$y = 3 x$$\n^f\n")
    read, report = run(root)
    statuses = {n.path.rsplit("/", 1)[-1]: [b.status for b in n.blocks] for n in report.notes}
    assert statuses["n.md"] == ["failed"]
    assert "n.md" in read


def test_answers_given_by_other_code_are_not_trusted(vault):
    """A development checkout changes notevault's code without its version: what the index remembers was
    worked out by the code of its time, so a change to any of notevault's modules sets it aside."""
    import notevault.options as options

    module = Path(options.__file__).parent / "imports.py"
    saved = module.stat()
    try:
        os.utime(module, ns=(saved.st_atime_ns, saved.st_mtime_ns + 1_000_000_000))
        options.code_version.cache_clear()
        assert run(vault)[0] == ["a.md", "b.md", "s1.md", "s2.md"]
    finally:
        os.utime(module, ns=(saved.st_atime_ns, saved.st_mtime_ns))
        options.code_version.cache_clear()
    assert run(vault)[0] == ["a.md", "b.md", "s1.md", "s2.md"]  # one code's answers at a time: the index stays small


def test_a_new_submodule_that_a_star_import_now_loads_brings_the_note_back(tmp_path):
    """``from pkg import *`` with __all__ naming a submodule not written yet fails; writing it must bring the note
    back, though the answer was given when the file did not exist."""
    root = make_vault(tmp_path, {
        "snippets/pkg/__init__.py": '__all__ = ["a", "b"]\n',
        "snippets/pkg/a.py": "X = 1\n",
        "n.md": fence("from pkg import *\nprint(a.X, b.Y)"),
    })
    run(root)
    age(root)
    (root / "snippets" / "pkg" / "b.py").write_text("Y = 2\n")
    planned, report = run(root)
    assert planned == ["n.md"]
    assert not report.failed()
