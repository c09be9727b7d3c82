"""`pytest --notevault`: each tagged block is a test item, run by the same engine."""

from __future__ import annotations

NOTE = """```python run id=good
print("ok")
```

```python run id=broken
raise ValueError("wrong shape")
```

```python run id=gpu device=cuda
torch.ones(1, device=device)
```
"""


def test_blocks_are_test_items(pytester):
    vault = pytester.mkdir("vault")
    (vault / ".obsidian").mkdir()
    (vault / "note.md").write_text(NOTE)
    (vault / "plain.md").write_text("no blocks here\n")
    result = pytester.runpytest_subprocess("--notevault", "vault", "-rA", "-p", "no:cacheprovider")
    import torch

    outcome = {"passed": 1, "failed": 1, "skipped": 1}
    if torch.cuda.is_available():
        outcome = {"passed": 2, "failed": 1}
    result.assert_outcomes(**outcome)
    result.stdout.fnmatch_lines(["*note.md:5 broken*", "ValueError: wrong shape", "*File \"note.md\", line 6*"])
