"""Planning: what a block's result depends on, sessions across notes, and when a stored result is current."""

from __future__ import annotations

from conftest import make_vault

from notevault.callout import Layout
from notevault.engine import RunOptions, execute
from notevault.plan import Planner, jobs_of
from notevault.vault import Vault


def fence(code: str, tag: str = "python run") -> str:
    return f"```{tag}\n{code}\n```\n"


def plans(root, *paths, **options):
    vault = Vault(root)
    return Planner(vault, RunOptions(**options), Layout()).plan([root / p for p in paths])


def hashes(root, *paths):
    return {(p.rel, b.id): b.run_hash for p in plans(root, *paths) for b in p.blocks}


def run(root, *paths, **options):
    report = execute(Vault(root), [root / p for p in paths] or [root], RunOptions(**options))
    return {(n.path.rsplit("/", 1)[-1], b.id): b for n in report.notes for b in n.blocks}


SESSION_A = fence("model = torch.nn.Linear(4, 32)", "python run session=toy")
SESSION_B = fence("ln = torch.nn.LayerNorm(32)\nprint(ln(model(torch.ones(2, 4))).shape)", "python run session=toy")


def test_a_session_block_hash_covers_earlier_blocks_in_other_notes(tmp_path):
    root = make_vault(tmp_path, {"A.md": SESSION_A, "B.md": SESSION_B, "C.md": fence("print(1)")})
    before = hashes(root, "A.md", "B.md", "C.md")
    (root / "A.md").write_text(SESSION_A.replace("32", "64"))
    after = hashes(root, "A.md", "B.md", "C.md")
    assert after["A.md", "L1"] != before["A.md", "L1"] and after["B.md", "L1"] != before["B.md", "L1"]
    assert after["C.md", "L1"] == before["C.md", "L1"]


def test_editing_an_earlier_note_of_a_session_reruns_the_later_one(tmp_path):
    root = make_vault(tmp_path, {"A.md": SESSION_A, "B.md": SESSION_B})
    assert run(root)["B.md", "L1"].output == "torch.Size([2, 32])\n"
    (root / "A.md").write_text((root / "A.md").read_text().replace("Linear(4, 32)", "Linear(4, 64)"))
    frozen = run(root, write=False, frozen=True)
    assert frozen["B.md", "L1"].status == "stale"  # its session changed before it
    rerun = run(root)
    assert rerun["B.md", "L1"].status == "failed" and not rerun["B.md", "L1"].cached
    assert "got input of size[2, 64]" in rerun["B.md", "L1"].error
    assert "[!failure]" in (root / "B.md").read_text()


def test_running_one_note_of_a_session_replays_the_notes_before_it_without_writing_them(tmp_path):
    root = make_vault(tmp_path, {"A.md": SESSION_A, "B.md": SESSION_B})
    result = run(root, "B.md")
    assert list(result) == [("B.md", "L1")]
    assert (result["B.md", "L1"].status, result["B.md", "L1"].output) == ("passed", "torch.Size([2, 32])\n")
    assert (root / "A.md").read_text() == SESSION_A  # replayed, not written
    assert not run(root, "B.md", write=False, frozen=True)["B.md", "L1"].error


def test_a_session_runs_its_notes_in_vault_path_order(tmp_path):
    root = make_vault(tmp_path, {"B define.md": fence("shared = 41", "python run session=s"),
                                 "A use.md": fence("print(shared + 1)", "python run session=s")})
    result = run(root, write=False)
    assert result["A use.md", "L1"].error == "NameError: name 'shared' is not defined"  # "A use.md" sorts first
    root2 = make_vault(tmp_path / "ordered", {"1 define.md": fence("shared = 41", "python run session=s"),
                                              "2 use.md": fence("print(shared + 1)", "python run session=s")})
    assert run(root2, write=False)["2 use.md", "L1"].output == "42\n"


def test_results_are_matched_by_identity_not_by_line_and_id(tmp_path):
    root = make_vault(tmp_path, {"a.md": fence("print('A'); raise ValueError", "python run session=s"),
                                 "b.md": fence("print('B')", "python run session=s")})
    first = run(root)
    assert (first["a.md", "L1"].status, first["b.md", "L1"].status) == ("failed", "passed")
    checked = run(root, write=False)
    assert (checked["a.md", "L1"].status, checked["a.md", "L1"].output) == ("failed", "A\n")
    assert (checked["b.md", "L1"].status, checked["b.md", "L1"].output) == ("passed", "B\n")


def test_a_block_reads_files_from_its_own_notes_folder_and_never_shares_their_result(tmp_path):
    code = fence('print(open("config.txt").read().strip())')
    root = make_vault(tmp_path, {"a/config.txt": "lr=0.1 (A)\n", "b/config.txt": "lr=0.9 (B)\n",
                                 "a/exp.md": code, "b/exp.md": code})
    run(root)
    assert hashes(root, "a/exp.md")["a/exp.md", "L1"] != hashes(root, "b/exp.md")["b/exp.md", "L1"]
    from notevault.writer import clean_notes

    clean_notes(Vault(root), [root])
    run(root)  # results from the cache now
    assert "> lr=0.1 (A)" in (root / "a" / "exp.md").read_text()
    assert "> lr=0.9 (B)" in (root / "b" / "exp.md").read_text()


def test_a_syntax_error_names_the_notes_line(tmp_path):
    root = make_vault(tmp_path, {"n.md": "a\nb\n\n```python run\nx = 1\ny = (\n```\n"})
    block = run(root, write=False)["n.md", "L4"]
    assert block.error == "SyntaxError: '(' was never closed (n.md, line 6)"
    assert 'File "n.md", line 6' in block.traceback


def test_only_the_blocks_that_changed_and_those_after_them_run(tmp_path):
    note = fence("a = 1", "python run id=one") + fence("b = a + 1", "python run id=two") + \
        fence("print(b)", "python run id=three") + fence("print('own')", "python run id=own isolated")
    root = make_vault(tmp_path, {"n.md": note})
    run(root)
    (root / "n.md").write_text((root / "n.md").read_text().replace("b = a + 1", "b = a + 2"))
    (plan,) = plans(root, "n.md")
    assert [(b.id, b.origin) for b in plan.blocks] == [("one", "note"), ("two", "run"), ("three", "run"),
                                                       ("own", "note")]
    ((job, chain),) = jobs_of([plan], Vault(root), threads=1)
    assert [(p.id, t.replay) for p, t in zip(chain, job.tasks, strict=True)] == [
        ("one", True), ("two", False), ("three", False)]
