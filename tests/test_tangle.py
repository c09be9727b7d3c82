"""tangle: a note's blocks as a `# %%` script that, run with python, prints what the note's results show."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from conftest import make_vault

from notevault.cli import main
from notevault.engine import RunOptions, execute
from notevault.vault import Vault

NOTE = """# Tangle me

```python run id=setup seed=3
from helper import double
x = torch.rand(2)
print("x:", x.tolist())
```

Text between blocks.

> [!note] in a callout
> ```python run id=value
> double(x).sum().item()
> ```

```python run id=boom expect=ZeroDivisionError
1 / 0
```

```python check
assert x.shape == (2,)
print("checked")
```
"""


def _printed(report_note) -> str:
    """What a note's results show a block printed, in order (output, then the value of a last expression)."""
    return "".join(b.output + (b.value + "\n" if b.value is not None else "") for b in report_note.blocks)


def _run_script(script, cwd):
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


def test_tangled_script_reproduces_the_notes_outputs(tmp_path, capsys, monkeypatch):
    root = make_vault(tmp_path / "v", {"notes/t.md": NOTE, "snippets/helper.py": "def double(v):\n    return 2 * v\n"})
    report = execute(Vault(root), [root], RunOptions(write=False))
    expected = _printed(report.notes[0])
    monkeypatch.chdir(tmp_path)
    assert main(["tangle", str(root), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out == "out/notes/t.py\n"  # the note's vault path, under --out
    script = (tmp_path / "out" / "notes" / "t.py").read_text()
    assert script.startswith("# Tangled by notevault from notes/t.md: edit the note, not this file.\n")
    assert "# %% notes/t.md:3 setup\n" in script and "# %% notes/t.md:12 value\n" in script
    assert 'print("checked")\n' in script and "_value = print" not in script  # print shows no value
    assert str(tmp_path) not in script  # paths are relative to the script: it runs wherever the tree is copied
    shutil.move(tmp_path / "v", tmp_path / "moved" / "v")
    shutil.move(tmp_path / "out", tmp_path / "moved" / "out")
    printed = _run_script(tmp_path / "moved" / "out" / "notes" / "t.py", cwd="/")
    printed = printed.replace("raised as expected: ZeroDivisionError: division by zero\n", "")
    assert printed == expected
    assert "checked\n" in printed and printed.startswith("x: [")


def test_tangle_never_overwrites_a_file_it_did_not_write(tmp_path, capsys, monkeypatch):
    root = make_vault(tmp_path / "v", {"train.md": "```python run\nprint(1)\n```\n",
                                       "train.py": '# my real training script\nprint("precious")\n',
                                       "eval.md": "```python run\nprint(2)\n```\n"})
    monkeypatch.chdir(tmp_path)
    assert main(["tangle", "v"]) == 1
    assert capsys.readouterr().out == (
        "v/eval.py\n"
        "v/train.py: error: not written: the file exists and notevault did not write it (move it away, or give "
        "--out DIR)\n")
    assert (root / "train.py").read_text() == '# my real training script\nprint("precious")\n'
    assert _run_script(root / "eval.py", cwd=tmp_path) == "2\n"  # the other notes are still tangled


def test_tangle_rewrites_its_own_script(tmp_path, capsys, monkeypatch):
    root = make_vault(tmp_path / "v", {"n.md": "```python run\nprint(1)\n```\n"})
    monkeypatch.chdir(tmp_path)
    assert main(["tangle", "v"]) == 0
    (root / "n.md").write_text("```python run\nprint(3)\n```\n")
    assert main(["tangle", "v"]) == 0
    assert capsys.readouterr().out == "v/n.py\nv/n.py\n"
    assert _run_script(root / "n.py", cwd=tmp_path) == "3\n"


def test_two_notes_of_one_name_get_two_scripts_under_out(tmp_path, capsys, monkeypatch):
    root = make_vault(tmp_path / "v", {"a/train.md": "```python run\nprint('a')\n```\n",
                                       "b/train.md": "```python run\nprint('b')\n```\n"})
    monkeypatch.chdir(tmp_path)
    assert main(["tangle", str(root), "--out", "out"]) == 0
    assert capsys.readouterr().out == "out/a/train.py\nout/b/train.py\n"
    assert _run_script(tmp_path / "out" / "a" / "train.py", cwd=tmp_path) == "a\n"
    assert _run_script(tmp_path / "out" / "b" / "train.py", cwd=tmp_path) == "b\n"


def test_a_session_across_notes_starts_with_the_earlier_notes_blocks(tmp_path, capsys, monkeypatch):
    files = {
        "a.md": "```python run session=s\nx = 41\n```\n\n```python run\nprint('not in the session')\n```\n",
        "sub/b.md": ("# B\n\n```python run session=s\nx += 1\nx\n```\n\n"
                     "```python run\nprint(open('data.txt').read())\n```\n"),
        "sub/data.txt": "next to b\n",
        "z.md": "```python run session=s\nprint('after b: not replayed')\n```\n",
    }
    root = make_vault(tmp_path / "v", files)
    report = execute(Vault(root), [root / "sub" / "b.md"], RunOptions(write=False))
    monkeypatch.chdir(tmp_path)
    assert main(["tangle", "v/sub/b.md"]) == 0
    assert capsys.readouterr().out == "v/sub/b.py\n"
    script = (root / "sub" / "b.py").read_text()
    headers = [line for line in script.splitlines() if line.startswith("# %%")]
    assert headers == ["# %% a.md:1", "# %% sub/b.md:3", "# %% sub/b.md:8"]
    assert _run_script(root / "sub" / "b.py", cwd=tmp_path) == _printed(report.notes[0]) == "42\nnext to b\n\n"


def test_template_notes_are_not_tangled(tmp_path, capsys, monkeypatch):
    root = make_vault(tmp_path / "v", {"Templates/t.md": "```python run\nprint(1)\n```\n"}, templates="Templates")
    monkeypatch.chdir(tmp_path)
    assert main(["tangle", "v"]) == 0
    assert capsys.readouterr().out == ""
    assert not (root / "Templates" / "t.py").exists()


def test_tangle_format_json_names_each_note_its_script_and_any_refusal(tmp_path, capsys, monkeypatch):
    root = make_vault(tmp_path / "v", {"a.md": "```python run\nprint(1)\n```\n", "b.md": "no blocks\n",
                                       "c.md": "```python run\nprint(1)\n```\n"})
    (root / "c.py").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["tangle", str(root), "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out) == {"version": 1, "notes": [
        {"path": "v/a.md", "script": "v/a.py", "error": None},
        {"path": "v/c.md", "script": "v/c.py",
         "error": "not written: something other than a file is there (move it away, or give --out DIR)"}]}
