"""The ``notevault`` command: parses arguments, calls the library, renders, maps outcomes to exit statuses."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import textwrap
import threading
from pathlib import Path
from typing import NoReturn

from . import __version__
from .config import VAULT_KEYS
from .errors import UsageError
from .report import (
    FORMATS,
    LISTING_FORMATS,
    STARTING,
    ProgressDisplay,
    print_terminal,
    render,
    render_cleaned,
    render_formulas,
    render_tangled,
)
from .results import Report
from .tags import OPTIONS

DEVICES = ("auto", "cpu", "cuda")
EPILOG = "\n\n".join([
    "exit status:\n"
    "  0  success\n"
    "  1  a block failed, a stored result is stale, lint found an error, or tangle refused to overwrite a file\n"
    "  2  usage or configuration error (one line on stderr)",
    textwrap.fill(
        "A fenced block runs when it is tagged after its language: ```python run``` (shows what it prints) or "
        "```python check``` (passes when it raises nothing; with formula=ID, compares with the display formula "
        f"^ID). Options follow the tag: {' '.join(f'{name}=…' for name in OPTIONS)} isolated.", 100),
    textwrap.fill(
        f"Settings: notevault.yaml at the vault root (the folder holding .obsidian/) takes {', '.join(VAULT_KEYS)}; "
        "a note's front matter takes notevault: {skip: true, device: cuda, timeout: 120}.", 100),
])


class Parser(argparse.ArgumentParser):
    """A usage error is one line, plus where to read more (argparse would print its whole usage block first)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)  # `lint --out` must not be taken for --output
        super().__init__(*args, **kwargs)
        self.commands: dict[str, Parser] = {}

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"notevault: error: {message} (see {self.prog} --help)\n")  # one line

    def command(self, commands: argparse._SubParsersAction, name: str, summary: str, description: str,
                exits: str) -> Parser:
        parser = commands.add_parser(name, help=summary, description=description,
                                     epilog=f"exit status: {exits}; 2 usage or configuration error")
        self.commands[name] = parser
        return parser


def _positive(kind: type, what: str):
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a positive {what}, not '{text}'") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be a positive {what}, not '{text}'")
        return value

    return convert


def _non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not '{text}'")
    return value


def _paths(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="notes (.md) or folders of one vault; a folder means every note in it")


def _run_options(parser: argparse.ArgumentParser, *, force: bool = True) -> None:
    parser.add_argument("--device", choices=DEVICES,
                        help="device for blocks that name none (default: the vault's, else auto: cuda if present)")
    parser.add_argument("--jobs", type=_positive(int, "integer"), metavar="N",
                        help="notes run in parallel (default: the vault's jobs, else the number of cores)")
    parser.add_argument("--timeout", type=_positive(float, "number of seconds"), metavar="SECONDS",
                        help="time limit per block that sets none (default: the vault's, else 30)")
    if force:
        parser.add_argument("--force", action="store_true",
                            help="run every block again, ignoring results stored in notes and cached")


def _report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="text",
                        help="text (default; a progress bar and a table on a terminal), json (one report), "
                             "junit (XML for CI test viewers) or github (Actions annotations)")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the report to FILE, not to stdout")


def _listing_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=LISTING_FORMATS, default="text", help="text (default) or json")


def _git_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--git", action="store_true",
                        help="the vault's files are those git tracks: a link to a file never git-added is broken "
                             "(for pre-commit, which leaves untracked files on disk)")


def build_parser() -> Parser:
    parser = Parser(prog="notevault", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                    description="Run the code and check the formulas of Obsidian notes; lint the vault.")
    parser.add_argument("--version", action="version", version=f"notevault {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = parser.command(
        commands, "run", "run tagged blocks and formula checks, write result callouts",
        "Run the tagged blocks and formula checks of the notes and write each result into its note, as a callout "
        "below the block. A block whose stored result is current, or whose result is cached, does not run again.",
        "0 every block passed; 1 a block failed")
    _paths(run)
    _run_options(run)
    _report_options(run)

    check = parser.command(
        commands, "check", "CI: run every block and lint, write nothing",
        "For CI: run every block again and lint the notes, writing nothing into them. With --frozen, run "
        "nothing: check that the result stored below each block is current.",
        "0 clean; 1 a block failed, a stored result is stale or missing, or lint found an error (with --strict, "
        "a warning)")
    _paths(check)
    _run_options(check, force=False)
    which = check.add_mutually_exclusive_group()
    which.add_argument("--force", action="store_true",
                       help="accepted for scripts written for run: check runs every block anyway")
    which.add_argument("--frozen", action="store_true", help="run nothing: verify the stored results are current")
    check.add_argument("--strict", action="store_true", help="lint warnings fail too")
    _git_option(check)
    _report_options(check)

    watch = parser.command(
        commands, "watch", "re-run what each save makes stale",
        "Bring the notes under PATH up to date, then, each time a file of the vault is saved, re-run the blocks "
        "whose results it made stale: the note's edited blocks, and in any note under PATH the blocks resting on "
        "it (a module they import, an earlier note of their session, the note of their formula, the settings), "
        "until Ctrl-C.",
        "0 on Ctrl-C")
    watch.add_argument("path", type=Path, metavar="PATH", help="a note (.md) or a folder of notes to watch")
    _run_options(watch, force=False)
    watch.add_argument("--debounce", type=_non_negative_seconds, default=0.2, metavar="SECONDS",
                       help="wait this long after the last save before running (default: 0.2)")
    watch.add_argument("--format", choices=LISTING_FORMATS, default="text",
                       help="text (default), or json: one report per run, as run --format json gives, each on "
                            "one line")

    lint = parser.command(
        commands, "lint", "static checks only: template sections, links, tags",
        "Static checks, nothing runs: template sections left unfilled, broken links and embeds, bad block tags, "
        "unclosed fences, unknown formulas, duplicate block ids. notevault.yaml's rules: sets each rule's "
        "severity.",
        "0 no error (with --strict, no warning either); 1 otherwise")
    _paths(lint)
    lint.add_argument("--strict", action="store_true", help="warnings fail too")
    _git_option(lint)
    _report_options(lint)

    clean = parser.command(
        commands, "clean", "remove result callouts and their figure files",
        "Remove every result callout notevault wrote, and the figure files only those callouts used. Your own "
        "text, callouts and images are left as they are.",
        "0")
    _paths(clean)
    _listing_format(clean)

    tangle = parser.command(
        commands, "tangle", "export tagged blocks as runnable '# %%%%' scripts",
        "Export each note's runnable blocks as a Python script in the '# %%' cell format (VS Code, Jupyter, "
        "jupytext), each cell headed by its note and line; running it prints what the note's results show. A "
        "file tangle did not write is never overwritten.",
        "0; 1 a script was not written (a file of yours is in its place)")
    _paths(tangle)
    tangle.add_argument("--out", type=Path, metavar="DIR",
                        help="write DIR/<the note's vault path>.py (default: <note>.py next to each note)")
    _listing_format(tangle)

    formulas = parser.command(
        commands, "formulas", "list display formulas and what a check must bind",
        "List every display formula of the notes: its ^id, its line, whether notevault can evaluate it, and the "
        "python names a 'python check formula=ID' block must bind.",
        "0")
    _paths(formulas)
    _listing_format(formulas)
    return parser


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def _report_and_exit_status(report: Report, args: argparse.Namespace, *, strict: bool = False) -> int:
    if args.format == "text" and args.output is None and sys.stdout.isatty():
        from rich.console import Console

        print_terminal(report, Console())
    else:
        _emit(render(report, args.format), args.output)
    return 1 if report.failed(strict=strict) else 0


def _run(args: argparse.Namespace, *, write: bool) -> int:
    from .engine import RunOptions, execute
    from .vault import Vault

    vault = Vault.of_paths(args.paths, git=getattr(args, "git", False))
    frozen = getattr(args, "frozen", False)
    options = RunOptions(device=args.device, jobs=args.jobs, timeout=args.timeout, force=args.force,
                         write=write, lint=not write, frozen=frozen)
    notes = vault.notes(args.paths, templates=False).notes
    with ProgressDisplay(len(notes), enabled=args.format == "text" or args.output is not None) as progress:
        if not frozen:
            progress.status(STARTING)  # the first finished note replaces it (the engine could say it sooner)
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

    sys.stdout.write(render_cleaned(clean_notes(Vault.of_paths(args.paths), args.paths), args.format))
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

    tangled = tangle_notes(Vault.of_paths(args.paths), args.paths, args.out)
    sys.stdout.write(render_tangled(tangled, args.format))
    return 1 if any(t.refused for t in tangled) else 0


def _formulas(args: argparse.Namespace) -> int:
    from .formula import list_formulas
    from .vault import Vault

    sys.stdout.write(render_formulas(list_formulas(Vault.of_paths(args.paths), args.paths), args.format))
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


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line, or exit 2 with one line (an option of another command is named by its own command)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _stdout_closed() -> int:
    """The reader of our output (``head``, ``less``) went away: stop quietly, as a pipeline's tools do."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's last flush at exit does not fail again
    return 128 + signal.SIGPIPE


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(argv)
    except SystemExit as done:  # --help, --version, or a usage error, already printed
        return done.code if isinstance(done.code, int) else 2
    if args.command != "watch" and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        status = COMMANDS[args.command](args)
        sys.stdout.flush()
        return status
    except UsageError as exc:
        print(f"notevault: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _stdout_closed()
    except _Terminated:
        print("notevault: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("notevault: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
