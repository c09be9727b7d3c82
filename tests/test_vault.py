"""The vault: root discovery, Obsidian settings, notevault.yaml, links resolved the way Obsidian does."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import make_vault

from notevault.cli import main
from notevault.errors import ConfigError
from notevault.vault import Vault, find_root


def test_root_is_nearest_folder_with_obsidian(tmp_path):
    root = make_vault(tmp_path / "v", {"notes/deep/a.md": "x"})
    assert find_root(root / "notes" / "deep" / "a.md") == root.resolve()
    assert find_root(root / "notes") == root.resolve()
    plain = tmp_path / "plain"
    plain.mkdir()
    assert find_root(plain) == plain.resolve()


def test_dot_folders_are_not_part_of_the_vault(tmp_path):
    root = make_vault(tmp_path, {"a.md": "", ".trash/b.md": "", ".git/c.md": "", ".notevault/d.md": "",
                                 ".venv/lib/site-packages/pkg/README.md": "[x](./license.txt)", ".hidden.md": "",
                                 "sub/e.md": "", "sub/.cache/f.md": ""})
    vault = Vault(root)
    assert [vault.relative(p) for p in vault.notes([root]).notes] == ["a.md", "sub/e.md"]
    assert not any(f.startswith(".") or "/." in f for f in vault.files)


def test_obsidian_settings_with_defaults(tmp_path):
    vault = Vault(make_vault(tmp_path, {}, app={}))
    assert vault.settings.attachment_folder == "/"
    assert vault.attachment_folder("x/n.md") == ""
    vault = Vault(make_vault(tmp_path, {}, app={"attachmentFolderPath": "./"}))
    assert vault.attachment_folder("x/n.md") == "x"
    vault = Vault(make_vault(tmp_path, {}, app={"attachmentFolderPath": "./assets"}))
    assert vault.attachment_folder("x/n.md") == "x/assets"
    vault = Vault(make_vault(tmp_path, {}, app={"attachmentFolderPath": "Media/img", "useMarkdownLinks": True},
                             templates="Templates"))
    assert vault.attachment_folder("x/n.md") == "Media/img"
    assert vault.settings.use_markdown_links and vault.settings.templates_folder == "Templates"


def test_link_resolution(tmp_path):
    root = make_vault(tmp_path, {
        "notes/BN.md": "", "notes/images/a.png": "", "Other.md": "", "assets/pic.png": "", "deep/x/Other.md": "",
        "notes/My Note.md": "",
    }, app={"attachmentFolderPath": "assets"})
    vault = Vault(root)
    assert vault.resolve("images/a.png", "notes/BN.md", wiki=False) == "notes/images/a.png"
    assert vault.resolve("./images/a.png", "notes/BN.md", wiki=False) == "notes/images/a.png"
    assert vault.resolve("notes/images/a.png", "Other.md", wiki=False) == "notes/images/a.png"  # vault-absolute
    assert vault.resolve("pic.png", "notes/BN.md", wiki=True) == "assets/pic.png"  # by name, anywhere
    assert vault.resolve("Other", "notes/BN.md", wiki=True) == "Other.md"  # shortest path wins
    assert vault.resolve("x/Other", "notes/BN.md", wiki=True) == "deep/x/Other.md"  # path suffix
    assert vault.resolve("My Note", "Other.md", wiki=True) == "notes/My Note.md"
    assert vault.resolve("../../etc/passwd", "notes/BN.md", wiki=False) is None
    assert vault.resolve("images/missing.png", "notes/BN.md", wiki=False) is None
    assert vault.suggest("img/a.png", "Other.md") == "notes/images/a.png"


@pytest.mark.parametrize(("text", "message"), [
    ("devise: cuda\n", "notevault.yaml:1: unknown key 'devise'"),
    ("timeout: 30\ndevice: tpu\n", "notevault.yaml:2: device: must be one of auto|cpu|cuda"),
    ("rules:\n  broken-links: off\n", "notevault.yaml:1: rules: unknown rule 'broken-links'"),
    ("jobs: 0\n", "notevault.yaml:1: jobs: must be a positive integer"),
    ("[1, 2]\n", "notevault.yaml:1: settings must be a mapping"),
])
def test_bad_notevault_yaml_names_file_line_and_key(tmp_path, text, message):
    root = make_vault(tmp_path, {"notevault.yaml": text})
    with pytest.raises(ConfigError) as error:
        Vault(root)
    assert str(error.value).replace(str(root) + "/", "").startswith(message)


def test_notevault_yaml_values(tmp_path):
    root = make_vault(tmp_path, {"notevault.yaml": "device: cpu\ntimeout: 5\nrules:\n  unfilled-section: error\n"})
    config = Vault(root).config
    assert (config.device, config.timeout, config.severity("unfilled-section"), config.severity("broken-link")) == (
        "cpu", 5.0, "error", "error")


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_with_git_the_index_holds_the_files_git_tracks(tmp_path, capsys):
    root = make_vault(tmp_path / "v", {"a.md": "![[img.png]] ![[kept.png]]", "kept.png": "", "img.png": "",
                                       "sub/b.md": "", "gone.md": "", ".trash/t.md": ""})
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "a.md", "kept.png", "sub/b.md", "gone.md", ".trash/t.md",
                    ".obsidian/app.json"], check=True)
    (root / "gone.md").unlink()  # tracked, deleted on disk: not a file of the vault either
    assert Vault(root, git=True).files == ["a.md", "kept.png", "sub/b.md"]
    assert main(["lint", "--git", str(root)]) == 1  # img.png is on disk but never added
    assert capsys.readouterr().out.splitlines()[0].endswith("a.md:1:1: error: broken embed: 'img.png' not found "
                                                            "[broken-link]")
    assert main(["lint", str(root)]) == 0


def test_git_outside_a_repository_is_a_usage_error(tmp_path, capsys, monkeypatch):
    root = make_vault(tmp_path / "v", {"a.md": ""})
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # no repository above the test's folder counts
    assert main(["lint", "--git", str(root)]) == 2
    assert capsys.readouterr().err.startswith("notevault: error: --git: cannot list the files git tracks in ")


def test_paths_in_two_vaults_are_a_usage_error_never_dropped(tmp_path, capsys):
    from notevault.cli import main

    make_vault(tmp_path / "one", {"a.md": "# a\n"})
    make_vault(tmp_path / "two", {"b.md": "[[missing]]\n"})
    assert main(["lint", str(tmp_path / "one"), str(tmp_path / "two" / "b.md")]) == 2
    assert "is in another vault" in capsys.readouterr().err


def test_a_symlink_to_outside_named_on_the_command_line_is_refused(tmp_path):
    from notevault.cli import main

    outside = tmp_path / "out"
    outside.mkdir()
    (outside / "x.md").write_text("```python run\nprint(1)\n```\n")
    root = make_vault(tmp_path / "V", {})
    (root / "link.md").symlink_to("../out/x.md")
    assert main(["run", str(root / "link.md")]) == 0
    assert (outside / "x.md").read_text() == "```python run\nprint(1)\n```\n"
    assert sorted(p.name for p in outside.iterdir()) == ["x.md"]  # no .notevault/ next to it either
