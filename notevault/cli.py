"""The ``notevault`` command: parses arguments, calls the library, maps outcomes to exit statuses."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from rich.console import Console

from . import __version__
from .errors import UsageError
from .report import FORMATS, ProgressDisplay, plural, print_terminal, render
from .results import Report


def _common(parser: argparse.ArgumentParser, *, runs: bool) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="notes or folders of a vault")
    parser.add_argument("--format", choices=FORMATS, default="text", help="report format (default: text)")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the report to FILE")
    if runs:
        parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default device for blocks")
        parser.add_argument("--jobs", type=int, metavar="N", help="notes run in parallel (default: cores)")
        parser.add_argument("--timeout", type=float, metavar="SECONDS", help="default per-block time limit")
        parser.add_argument("--force", action="store_true", help="ignore cached and stored results")


def _git_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--git", action="store_true",
                        help="the vault's files are those git tracks: a link to a file never git-added is broken "
                             "(for pre-commit, which leaves untracked files on disk)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notevault", description="Run the code and check the formulas of Obsidian notes; lint the vault.")
    parser.add_argument("--version", action="version", version=f"notevault {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run tagged blocks and formula checks, write result callouts")
    _common(run, runs=True)
    check = commands.add_parser("check", help="CI: run everything and lint, write nothing")
    _common(check, runs=True)
    check.add_argument("--frozen", action="store_true", help="run nothing: verify the stored results are current")
    check.add_argument("--strict", action="store_true", help="lint warnings fail too")
    _git_option(check)
    watch = commands.add_parser("watch", help="re-run a note's changed blocks each time it is saved")
    watch.add_argument("path", type=Path, metavar="PATH")
    watch.add_argument("--device", choices=("auto", "cpu", "cuda"))
    watch.add_argument("--jobs", type=int, metavar="N")
    watch.add_argument("--timeout", type=float, metavar="SECONDS")
    watch.add_argument("--debounce", type=float, default=0.2, metavar="SECONDS",
                       help="wait this long after the last save before running (default: 0.2)")
    lint = commands.add_parser("lint", help="static checks only: template sections, links, tags")
    _common(lint, runs=False)
    lint.add_argument("--strict", action="store_true", help="warnings fail too")
    _git_option(lint)
    watch.add_argument("--format", choices=("text", "json"), default="text",
                       help="text, or json: one SPEC §7 report per run, each on one line")
    clean = commands.add_parser("clean", help="remove result callouts and their figure files")
    clean.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    clean.add_argument("--format", choices=("text", "json"), default="text")
    tangle = commands.add_parser("tangle", help="export tagged blocks as runnable '# %%%%' scripts")
    tangle.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    tangle.add_argument("--out", type=Path, metavar="DIR", help="folder for the scripts (default: next to notes)")
    tangle.add_argument("--format", choices=("text", "json"), default="text")
    formulas = commands.add_parser("formulas", help="list display formulas and what a check must bind")
    formulas.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    formulas.add_argument("--format", choices=("text", "json"), default="text")
    return parser


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def _report_and_exit_status(report: Report, args: argparse.Namespace, *, strict: bool = False) -> int:
    if args.format == "text" and args.output is None and sys.stdout.isatty():
        print_terminal(report, Console())
    else:
        _emit(render(report, args.format), args.output)
    return 1 if report.failed(strict=strict) else 0


def _run(args: argparse.Namespace, *, write: bool) -> int:
    from .engine import RunOptions, execute
    from .vault import Vault

    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError("--timeout must be a positive number of seconds")
    vault = Vault.of_paths(args.paths, git=getattr(args, "git", False))
    frozen = getattr(args, "frozen", False)
    if frozen and args.force:
        raise UsageError("--frozen runs nothing and --force runs everything: give one of them")
    options = RunOptions(device=args.device, jobs=args.jobs, timeout=args.timeout, force=args.force,
                         write=write, lint=not write, frozen=frozen)
    notes = vault.notes(args.paths, templates=False).notes
    with ProgressDisplay(len(notes), enabled=args.format == "text" or args.output is not None) as progress:
        report = execute(vault, args.paths, options, on_note=progress.note_done)
    return _report_and_exit_status(report, args, strict=getattr(args, "strict", False))


def _lint(args: argparse.Namespace) -> int:
    from .lint import lint_paths
    from .vault import Vault

    report = lint_paths(Vault.of_paths(args.paths, git=args.git), args.paths)
    return _report_and_exit_status(report, args, strict=args.strict)


def _clean(args: argparse.Namespace) -> int:
    from .vault import Vault
    from .writer import clean_notes

    cleaned = clean_notes(Vault.of_paths(args.paths), args.paths)
    if args.format == "json":
        notes = [{"path": c.path, "results_removed": c.results, "figures_removed": c.figures} for c in cleaned]
        print(json.dumps({"version": 1, "notes": notes}, ensure_ascii=False, indent=2))
    else:
        for c in cleaned:
            print(f"cleaned {c.path} ({plural(c.results, 'result')}, {plural(c.figures, 'figure')} removed)")
    return 0


def _watch(args: argparse.Namespace) -> int:
    from .engine import RunOptions
    from .vault import Vault
    from .watch import watch

    vault = Vault.discover(args.path)
    options = RunOptions(device=args.device, jobs=args.jobs, timeout=args.timeout)
    watch(vault, args.path, options, debounce=args.debounce, fmt=args.format)
    return 0


def _tangle(args: argparse.Namespace) -> int:
    from .tangle import tangle_notes
    from .vault import Vault

    written = tangle_notes(Vault.of_paths(args.paths), args.paths, args.out)
    if args.format == "json":
        notes = [{"path": note, "script": script} for note, script in written]
        print(json.dumps({"version": 1, "notes": notes}, ensure_ascii=False, indent=2))
    else:
        for _, script in written:
            print(script)
    return 0


def _formulas(args: argparse.Namespace) -> int:
    from .formula import list_formulas
    from .vault import Vault

    sys.stdout.write(list_formulas(Vault.of_paths(args.paths), args.paths, args.format))
    return 0


COMMANDS = {
    "run": lambda args: _run(args, write=True),
    "check": lambda args: _run(args, write=False),
    "watch": _watch,
    "lint": _lint,
    "clean": _clean,
    "tangle": _tangle,
    "formulas": _formulas,
}


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: workers are stopped, no note is left half-written."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "watch" and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"notevault: error: {exc}", file=sys.stderr)
        return 2
    except _Terminated:
        print("notevault: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("notevault: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
