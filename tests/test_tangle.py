"""tangle: a note's blocks as a `# %%` script that, run with python, prints what the note's results show."""

from __future__ import annotations

import json
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


def test_tangled_script_reproduces_the_notes_outputs(tmp_path, capsys, monkeypatch):
    root = make_vault(tmp_path / "v", {"notes/t.md": NOTE, "snippets/helper.py": "def double(v):\n    return 2 * v\n"})
    report = execute(Vault(root), [root], RunOptions(write=False))
    blocks = report.notes[0].blocks
    expected = ""
    for block in blocks:
        expected += block.output + (block.value + "\n" if block.value is not None else "")
    monkeypatch.chdir(tmp_path)
    assert main(["tangle", str(root), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out == "out/t.py\n"
    script = (tmp_path / "out" / "t.py").read_text()
    assert "# %% v/notes/t.md:3 setup\n" in script and "# %% v/notes/t.md:12 value\n" in script
    ran = subprocess.run([sys.executable, str(tmp_path / "out" / "t.py")], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    printed = ran.stdout.replace("raised as expected: ZeroDivisionError: division by zero\n", "")
    assert printed == expected
    assert "checked\n" in printed and printed.startswith("x: [")


def test_tangle_format_json_names_each_note_and_its_script(tmp_path, capsys, monkeypatch):
    root = make_vault(tmp_path / "v", {"a.md": "```python run\nprint(1)\n```\n", "b.md": "no blocks\n"})
    monkeypatch.chdir(tmp_path)
    assert main(["tangle", str(root), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"version": 1, "notes": [{"path": "v/a.md", "script": "v/a.py"}]}
