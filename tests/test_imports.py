"""The vault's modules a block imports: found where its worker looks, followed through their own imports."""

from __future__ import annotations

import pytest
from conftest import make_vault

from notevault.engine import RunOptions, execute
from notevault.imports import VaultModules, imported_names
from notevault.vault import Vault


def statuses(report) -> list[str]:
    return [b.status for n in report.notes for b in n.blocks]


def modules_in(files: dict[str, str]) -> VaultModules:
    def read(path: str) -> bytes | None:
        return files[path].encode() if path in files else None

    return VaultModules(read, lambda prefix: sorted(path for path in files if path.startswith(prefix)))


def test_imported_names_are_every_module_python_would_import():
    code = "import a.b.c\nfrom x import y, z\nfrom m import *\nimport os as o\n"
    assert imported_names(code) == {"a", "a.b", "a.b.c", "x", "x.y", "x.z", "m", "m.*", "os"}


def test_relative_imports_are_read_from_the_package_they_are_in():
    assert imported_names("from . import q\nfrom ..up import w\nfrom .s.t import u", "pkg.sub") == {
        "pkg", "pkg.sub", "pkg.sub.q", "pkg.up", "pkg.up.w", "pkg.sub.s", "pkg.sub.s.t", "pkg.sub.s.t.u"}
    assert imported_names("from . import q") == set()  # a block is no package: Python raises ImportError
    assert imported_names("from .... import q", "a.b") == set()
    assert imported_names("def broken(:\n    import secret") == set()


def test_a_module_is_found_in_snippets_or_the_notes_folder_and_followed():
    found = modules_in({
        "snippets/pkg/__init__.py": "from .core import run\n",
        "snippets/pkg/core.py": "from . import util\nimport helper\n",
        "snippets/pkg/util.py": "X = 1\n",
        "notes/helper.py": "import deep.inner\n",  # a namespace package below snippets/
        "snippets/deep/inner.py": "Y = 2\n",
        "snippets/unused.py": "",
    }).found("from pkg import run\n", ("snippets", "notes"))
    assert [path for path, _ in found.sources] == [  # hashes of their bytes
        "notes/helper.py", "snippets/deep/inner.py", "snippets/pkg/__init__.py", "snippets/pkg/core.py",
        "snippets/pkg/util.py"]
    assert {"notes/pkg.py", "notes/pkg/__init__.py", "snippets/helper.py", "snippets/pkg/run.py"} <= set(found.looked)
    assert found.looked == tuple(sorted(found.looked))


def test_a_module_imported_by_two_names_is_read_once():
    reads = []
    modules = VaultModules(lambda path: reads.append(path) or (b"" if path == "snippets/m.py" else None), list)
    modules.found("import m", ("snippets", ""))
    modules.found("import m\nimport m", ("snippets", ""))
    assert reads.count("snippets/m.py") == 1


@pytest.mark.parametrize(("files", "module", "code"), [
    ({"notes/helper.py": "VALUE = 1\n"}, "notes/helper.py", "import helper\nassert helper.VALUE == 1"),
    ({"snippets/pkg/__init__.py": "", "snippets/pkg/sub.py": "VALUE = 1\n"}, "snippets/pkg/sub.py",
     "from pkg.sub import VALUE\nassert VALUE == 1"),
    ({"snippets/pkg/__init__.py": "from .core import VALUE\n", "snippets/pkg/core.py": "VALUE = 1\n"},
     "snippets/pkg/core.py", "import pkg\nassert pkg.VALUE == 1"),
], ids=["notes-folder", "submodule", "relative-import"])
def test_a_changed_module_makes_the_result_stale(tmp_path, files, module, code):
    root = make_vault(tmp_path, {**files, "notes/n.md": f"```python run\n{code}\n```\n"})
    assert not execute(Vault(root), [root], RunOptions()).failed()
    (root / module).write_text("VALUE = 2\n")
    frozen = execute(Vault(root), [root], RunOptions(write=False, frozen=True))
    assert [b.status for n in frozen.notes for b in n.blocks] == ["stale"]
    again = execute(Vault(root), [root], RunOptions())
    assert [(b.status, b.cached, b.error) for n in again.notes for b in n.blocks] == [
        ("failed", False, "AssertionError")]


def test_a_module_that_appears_in_the_notes_folder_brings_its_block_back(tmp_path):
    """A block that failed to import a helper is stale once the helper is written next to the note."""
    root = make_vault(tmp_path, {"notes/n.md": "```python run\nimport helper\nprint(helper.VALUE)\n```\n"})
    first = execute(Vault(root), [root], RunOptions())
    assert [b.error for n in first.notes for b in n.blocks] == ["ModuleNotFoundError: No module named 'helper'"]
    (root / "notes" / "helper.py").write_text("VALUE = 42\n")
    again = execute(Vault(root), [root], RunOptions())
    assert [(b.status, b.cached) for n in again.notes for b in n.blocks] == [("passed", False)]
    assert "> 42\n" in (root / "notes" / "n.md").read_text()


def test_a_module_of_another_folder_is_not_a_dependency(tmp_path):
    """Only snippets/ and the note's own folder are on its worker's path: a helper elsewhere changes nothing."""
    root = make_vault(tmp_path, {"notes/n.md": "```python run\nprint(1)\nimport json\n```\n",
                                 "other/json.py": "raise SystemExit('never imported')\n"})
    assert not execute(Vault(root), [root], RunOptions()).failed()
    (root / "other" / "json.py").write_text("raise SystemExit('still never imported')\n")
    again = execute(Vault(root), [root], RunOptions())
    assert [(b.status, b.cached) for n in again.notes for b in n.blocks] == [("passed", True)]


def test_a_module_too_deep_for_ast_does_not_crash_the_planner(tmp_path):
    """A vault module Python cannot compile (a 5,000-term sum: RecursionError in ast.parse) fails only the block
    that imports it; the planner must not die, and the vault's other notes are still reported."""
    root = make_vault(tmp_path, {"snippets/big.py": "X = " + "+".join(["1"] * 5000) + "\n",
                                 "a.md": "```python run\nimport big\n```\n",
                                 "b.md": "```python run\nprint(2)\n```\n"})
    report = execute(Vault(root), [root], RunOptions())
    assert [(b.status, b.error) for n in report.notes for b in n.blocks] == [
        ("failed", "RecursionError: maximum recursion depth exceeded during compilation"), ("passed", None)]


def test_an_edit_to_a_module_that_is_not_utf8_makes_its_block_stale(tmp_path):
    """A latin-1 module (with its coding line, valid Python) is read with errors='replace': every non-UTF-8 byte
    becomes U+FFFD, so changing one such byte for another leaves the hash as it was and the stale result stands."""
    root = make_vault(tmp_path, {"snippets/word.py": b'# -*- coding: latin-1 -*-\nS = "caf\xe9"\n',
                                 "n.md": '```python check\nfrom word import S\nassert S == "caf\\u00e9", S\n```\n'})
    assert not execute(Vault(root), [root], RunOptions()).failed()
    (root / "snippets" / "word.py").write_bytes(b'# -*- coding: latin-1 -*-\nS = "caf\xe8"\n')
    assert statuses(execute(Vault(root), [root], RunOptions(frozen=True, write=False))) == ["stale"]


def test_star_import_follows_the_submodules_a_package_lists_in_all(tmp_path):
    """``from pkg import *`` imports every submodule named in pkg's ``__all__`` (Python's _handle_fromlist):
    an edit to such a submodule must make the block stale."""
    root = make_vault(tmp_path, {"snippets/pkg/__init__.py": '__all__ = ["sub"]\n',
                                 "snippets/pkg/sub.py": "VALUE = 1\n",
                                 "n.md": "```python check\nfrom pkg import *\nassert sub.VALUE == 1, sub.VALUE\n```\n"})
    assert not execute(Vault(root), [root], RunOptions()).failed()
    (root / "snippets" / "pkg" / "sub.py").write_text("VALUE = 2\n")
    assert statuses(execute(Vault(root), [root], RunOptions(frozen=True, write=False))) == ["stale"]


def test_a_star_import_takes_every_module_and_subpackage_of_the_package():
    found = modules_in({
        "snippets/pkg/__init__.py": "__all__ = ['a', 'sub']\n",
        "snippets/pkg/a.py": "",
        "snippets/pkg/sub/__init__.py": "from . import deep\n",
        "snippets/pkg/sub/deep.py": "",
        "snippets/pkg/sub/other.py": "",  # imported by nothing
        "snippets/pkg/data.json": "{}",
    }).found("from pkg import *", ("snippets",))
    assert [path for path, _ in found.sources] == [
        "snippets/pkg/__init__.py", "snippets/pkg/a.py", "snippets/pkg/sub/__init__.py", "snippets/pkg/sub/deep.py"]


def test_a_module_saved_with_a_utf8_bom_is_followed_through_its_imports(tmp_path):
    """Python imports a module that starts with a UTF-8 BOM (Notepad's habit), but ast.parse of the decoded text
    raises SyntaxError on U+FEFF, so imported_names finds nothing: the modules it imports go unhashed."""
    root = make_vault(tmp_path, {"snippets/helper.py": b"\xef\xbb\xbffrom other import VALUE\n",
                                 "snippets/other.py": "VALUE = 1\n",
                                 "n.md": "```python check\nfrom helper import VALUE\nassert VALUE == 1, VALUE\n```\n"})
    assert not execute(Vault(root), [root], RunOptions()).failed()
    (root / "snippets" / "other.py").write_text("VALUE = 2\n")
    assert statuses(execute(Vault(root), [root], RunOptions(frozen=True, write=False))) == ["stale"]
