"""Settings: notevault.yaml, a note's ``notevault:`` front matter and Obsidian's app.json, each error at its line."""

from __future__ import annotations

import json

import pytest
from conftest import make_vault

from notevault.cli import main
from notevault.config import Config, load_config
from notevault.errors import ConfigError


@pytest.mark.parametrize(("text", "error"), [
    ("device: cpu\nrules: [a, b\n",
     "2: not valid YAML: while parsing a flow sequence, expected ',' or ']', but got '<stream end>'"),
    ("device: cpu\n  jobs: 2\n", "2: not valid YAML: mapping values are not allowed here"),
    ("device: 'cpu\n", "1: not valid YAML: while scanning a quoted scalar, found unexpected end of stream"),
    ("jobs: 2\n---\njobs: 3\n",
     "2: not valid YAML: expected a single document in the stream, but found another document"),
    ("timeout: 10\ndevice: cpu\ntimeout: 20\n", "3: duplicate key 'timeout' (first at line 1)"),
    ("rules:\n  bad-tag: warning\n  bad-tag: 'off'\n", "3: duplicate key 'bad-tag' (first at line 2)"),
    ("device: cpu\ntimeout: soon\n", "2: timeout: must be a positive number"),
    ("device: cpu\n\ncolour: red\n",
     "3: unknown key 'colour' (known: device, timeout, jobs, fold_lines, max_output_lines, memory_limit_mb, "
     "rules, exclude)"),
    ("rules:\n  bad-tag: loud\n", "1: rules: rule 'bad-tag': severity must be error|warning|info|off"),
    ("- device\n", "1: settings must be a mapping of keys to values"),
])
def test_a_bad_settings_file_names_its_line(tmp_path, text, error):
    (tmp_path / "notevault.yaml").write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / "notevault.yaml")
    assert str(raised.value) == f"{tmp_path / 'notevault.yaml'}:{error}"


def test_settings_are_read_once_with_their_values(tmp_path):
    (tmp_path / "notevault.yaml").write_text("timeout: 5\nexclude: ['drafts/*']\nrules:\n  bad-tag: warning\n")
    config = load_config(tmp_path / "notevault.yaml")
    assert (config.timeout, config.exclude, config.rules["bad-tag"]) == (5.0, ("drafts/*",), "warning")
    (tmp_path / "notevault.yaml").write_text("# only a comment\n")
    assert load_config(tmp_path / "notevault.yaml") == Config()


def test_a_settings_error_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    root = make_vault(tmp_path / "v", {"n.md": "text\n", "notevault.yaml": "jobs: 2\njobs: 3\n"})
    monkeypatch.chdir(tmp_path)
    assert main(["lint", "v"]) == 2
    assert capsys.readouterr().err == f"notevault: error: {root}/notevault.yaml:2: duplicate key 'jobs' (first at " \
                                      "line 1)\n"


FRONT_MATTER = """---
title: Adam
notevault:
  skip: maybe
  device: gpu

  colour: red
---

```python run
print(1)
```
"""


def test_wrong_note_settings_are_reported_at_their_keys_lines(tmp_path, capsys, monkeypatch):
    make_vault(tmp_path / "v", {"n.md": FRONT_MATTER, "flow.md": "---\ntags: [a]\nnotevault: {timeout: -1}\n---\n",
                                "scalar.md": "---\n\nnotevault: yes\n---\n"})
    monkeypatch.chdir(tmp_path / "v")
    assert main(["lint", "--format", "json", "."]) == 1
    notes = json.loads(capsys.readouterr().out)["notes"]
    found = {n["path"]: [(f["line"], f["message"]) for f in n["lint"]] for n in notes}
    assert found == {
        "flow.md": [(3, "notevault setting timeout: must be a positive number")],
        "n.md": [(4, "notevault setting skip: must be true or false"),
                 (5, "notevault setting device: must be one of auto|cpu|cuda"),
                 (7, "unknown notevault setting 'colour' (known: skip, device, timeout)")],
        "scalar.md": [(3, "front matter 'notevault' must be a mapping (skip, device, timeout)")],
    }


def test_use_markdown_links_must_be_a_boolean(tmp_path, capsys):
    root = make_vault(tmp_path / "v", {"n.md": "text\n"}, app={"useMarkdownLinks": "no"})
    assert main(["lint", str(root)]) == 2
    assert capsys.readouterr().err == (f"notevault: error: {root}/.obsidian/app.json: useMarkdownLinks must be true "
                                       "or false, not \"no\"\n")
    (root / ".obsidian" / "app.json").write_text(json.dumps({"useMarkdownLinks": True}))
    assert main(["lint", str(root)]) == 0
