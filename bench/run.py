"""`notevault run` against the floor and peers, on generated vaults of N notes × 5 small torch blocks.

    python bench/run.py                       # 20 and 100 notes, plus the variant with one heavier training block
    python bench/run.py --notes 20            # one size only
    python bench/run.py --vault realistic     # notes like the seeds (see make_realistic_vault), no heavy variant

Two vault kinds: `simple` (a heading, a line of prose, five blocks) and `realistic` (the filled study template:
front matter, Chinese and English prose, math, callouts, links, images, five torch blocks sharing state).

The floor is one python process that imports torch once and exec()s every block (a fresh namespace per note):
no isolation, no capture, no write-back. Peers run when installed: pytest-markdown-docs, and a Jupyter kernel per
note through jupytext --execute.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import FLOOR, emit, interleaved, make_realistic_vault, make_run_vault, median_of, timed

ONE_NOTE = r"""
import sys, json, torch
namespace = {"torch": torch}
for code in json.load(open(sys.argv[1])):
    exec(compile(code, sys.argv[1], "exec"), namespace)
"""


def block_files(vault: Path, work: Path) -> list[str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from notevault.note import read_note

    files = []
    for n, note in enumerate(notes_of(vault)):
        target = work / f"note{n:05d}.json"
        target.write_text(json.dumps([b.code for b in read_note(note).blocks]))
        files.append(str(target))
    return files


def notes_of(vault: Path) -> list[Path]:
    """The vault's notes, in every folder, without the study template."""
    return sorted(p for p in vault.rglob("*.md") if "Templates" not in p.relative_to(vault).parts)


def make_vault(kind: str, root: Path, notes: int, heavy: bool) -> Path:
    if kind == "realistic":
        return make_realistic_vault(root, notes)
    return make_run_vault(root, notes, heavy=heavy)


def as_plain_python(note: Path) -> str:
    """The note's text with its untagged pseudo-code fenced as text: the peers would run every python fence."""
    return note.read_text(encoding="utf-8").replace("```python\n", "```text\n")


def measure(notes: int, heavy: bool, runs: int, kind: str = "simple") -> list[tuple[str, str]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        template = make_vault(kind, tmp_path / "template", notes, heavy)
        work = tmp_path / "blocks"
        work.mkdir()
        files = block_files(template, work)
        (work / "all.json").write_text(json.dumps(files))
        floor_script, one_script = work / "floor.py", work / "one.py"
        floor_script.write_text(FLOOR)
        one_script.write_text(ONE_NOTE)

        def floor():
            return timed([sys.executable, str(floor_script), str(work / "all.json")])

        def cold():
            vault = tmp_path / "cold"
            if vault.exists():
                shutil.rmtree(vault)
            shutil.copytree(template, vault)
            return timed([sys.executable, "-m", "notevault", "run", str(vault)])

        measured = interleaved(runs, floor=floor, cold=cold)
        (floor_s, floor_mb), (cold_s, cold_mb) = measured["floor"], measured["cold"]
        rows.append(("floor: one process, torch once, exec()", f"{floor_s:.2f} s, peak {floor_mb:.0f} MB"))
        rows.append(("notevault run, cold (no cache, no results; a fresh process per note)",
                     f"{cold_s:.2f} s ({cold_s / floor_s:.2f}× the floor), peak per process {cold_mb:.0f} MB "
                     f"({cold_mb / floor_mb:.2f}×)"))

        def per_note():
            import time

            start = time.perf_counter()
            peak = 0.0
            for f in files:
                peak = max(peak, timed([sys.executable, str(one_script), f])[1])
            return time.perf_counter() - start, peak

        if notes <= 20:
            s, mb = median_of(1, per_note)
            rows.append(("one process per note", f"{s:.2f} s ({s / floor_s:.1f}×), peak {mb:.0f} MB"))

        cached_s, _ = median_of(runs, lambda: timed([sys.executable, "-m", "notevault", "run", str(tmp_path / "cold")]))
        rows.append(("notevault run, everything current", f"{cached_s:.2f} s"))
        check_s, _ = median_of(runs, lambda: timed([sys.executable, "-m", "notevault", "check",
                                                     str(tmp_path / "cold")]))
        rows.append(("notevault check (cache in .notevault/)", f"{check_s:.2f} s"))

        if importlib.util.find_spec("pytest_markdown_docs"):
            peer = tmp_path / "peer"
            shutil.copytree(template, peer)
            for note in notes_of(peer):  # its own syntax: the first fence imports torch, the rest continue it
                text = as_plain_python(note).replace("```python run\n", "```python continuation\n")
                note.write_text(text.replace("```python continuation\n", "```python\nimport torch\n", 1))
            s, mb = median_of(runs, lambda: timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                                   "--markdown-docs", str(peer)]))
            rows.append(("pytest-markdown-docs (one process, no isolation)",
                         f"{s:.2f} s ({s / floor_s:.2f}×), peak {mb:.0f} MB"))
        else:
            rows.append(("pytest-markdown-docs", "not installed (pip install pytest-markdown-docs)"))
        if notes > 20:
            rows.append(("Jupyter kernel per note", "skipped above 20 notes (≈5 s a note)"))
        elif shutil.which("jupytext") and importlib.util.find_spec("ipykernel"):
            peer = tmp_path / "nb"
            shutil.copytree(template, peer)
            for note in notes_of(peer):
                note.write_text(as_plain_python(note).replace("```python run\n", "```python\nimport torch\n"))

            def jupyter():
                import time

                start = time.perf_counter()
                for note in notes_of(peer):
                    subprocess.run(["jupytext", "--to", "ipynb", "--execute", str(note)], check=False,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                return time.perf_counter() - start, 0.0

            s, _ = median_of(1, jupyter)
            rows.append(("Jupyter kernel per note (jupytext --execute)", f"{s:.2f} s ({s / floor_s:.1f}×)"))
        else:
            rows.append(("Jupyter kernel per note",
                         "not installed (pip install jupytext ipykernel nbconvert, then ipykernel install)"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notes", type=int, action="append")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--vault", choices=("simple", "realistic"), default="simple",
                        help="simple: five blocks and a line of prose; realistic: notes like the seeds")
    args = parser.parse_args()
    what = "notes × 5 small torch blocks" if args.vault == "simple" else "realistic notes, 5 torch blocks each"
    for notes in args.notes or [20, 100]:
        emit(f"run: {notes} {what} (median of {args.runs}, taken in rounds)",
             measure(notes, False, args.runs, args.vault))
    if args.vault == "simple":  # the training-loop variant exists for the simple vault only
        emit("run: 20 notes × (5 small + 1 training loop of 200 steps)", measure(20, True, args.runs))


if __name__ == "__main__":
    main()
