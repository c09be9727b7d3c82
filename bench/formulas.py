"""Formula checks, measured: the seeds' numeric formulas and the corpus of tests/formula_corpus.py.

    python bench/formulas.py

Seeds: of the numeric ``LHS = RHS`` formulas in the user's notes (tests/seed_formulas.py: those that state a relation
a check can test on tensors, not an integral, an expectation over a distribution, an arg min, an inequality …), how
many notevault can evaluate, and how many give the expected verdict against PyTorch references (the ∂ ones by
autograd). Corpus: the share of correct formulas that pass, of wrong variants that fail, and of uncheckable formulas
that are reported as not evaluable (never passed, never blamed as a numeric mismatch). A script that prints figures,
not a timed test.
"""

from __future__ import annotations

import sys
from collections import Counter

import torch
from _common import REPO, emit

sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from conftest import seed  # noqa: E402
from formula_corpus import CASES, UNCHECKABLE  # noqa: E402
from seed_formulas import NOT_READ, SEED_FORMULAS  # noqa: E402

from notevault.formula import check_formula, describe  # noqa: E402
from notevault.note import read_note  # noqa: E402


def seed_latex(note: str, line: int, index: int) -> str:
    return [m for m in read_note(seed(note)).maths if m.line == line][index].latex


def verdict(latex: str, names: dict) -> str:
    error = check_formula(latex, names).error
    return "pass" if error is None else "mismatch" if error.startswith("formula mismatch") else "error"


def seeds() -> None:
    total = len(SEED_FORMULAS) + len(NOT_READ)
    evaluable = expected = derivatives = derivatives_right = 0
    for case in SEED_FORMULAS:
        latex = seed_latex(case.note, case.line, case.index)
        evaluable += describe(latex, None, case.line).evaluable
        torch.manual_seed(0)
        right = verdict(latex, case.bind()) == case.expected
        expected += right
        if "\\partial" in latex or "\\nabla" in latex:
            derivatives += 1
            derivatives_right += right
    unread = [f"{note}:{line} {describe(seed_latex(note, line, index), None, line).reason}"
              for note, line, index in NOT_READ]
    emit("formula checks on the seeds", [
        ("numeric LHS = RHS formulas in the seeds", str(total)),
        ("evaluable by notevault", f"{evaluable} of {total}"),
        ("expected verdict with PyTorch references", f"{expected} of {total}"),
        ("  of which derivatives (∂, ∇) by autograd", f"{derivatives_right} of {derivatives}"),
        ("  expected mismatches (the note's formula is wrong, or overloads a name)",
         str(sum(case.expected == "mismatch" for case in SEED_FORMULAS))),
        *(("  not evaluable", line) for line in unread),
    ])


def corpus() -> None:
    passed, errors = 0, Counter()
    wrong_total = wrong_failed = wrong_mismatch = 0
    for case in CASES:
        torch.manual_seed(0)
        result = verdict(case.latex, case.bind())
        passed += result == "pass"
        if result != "pass":
            errors[result] += 1
        for wrong in case.wrong:
            torch.manual_seed(0)
            result = verdict(wrong, case.bind())
            wrong_total += 1
            wrong_failed += result != "pass"
            wrong_mismatch += result == "mismatch"
    unchecked = [(describe(latex, None, 1), verdict(latex, {})) for latex in UNCHECKABLE]
    never_evaluable = sum(not info.evaluable for info, _ in unchecked)
    never_passed = sum(result == "error" for _, result in unchecked)
    emit("formula checks on the corpus (tests/formula_corpus.py)", [
        ("correct formulas passing", f"{passed} of {len(CASES)} ({passed / len(CASES):.1%})"),
        ("  failing as a mismatch / as an error", f"{errors['mismatch']} / {errors['error']}"),
        ("wrong variants failing", f"{wrong_failed} of {wrong_total} ({wrong_failed / wrong_total:.1%})"),
        ("  of which measured mismatches", str(wrong_mismatch)),
        ("uncheckable formulas reported not evaluable", f"{never_evaluable} of {len(UNCHECKABLE)}"),
        ("  never passed nor blamed as a mismatch", f"{never_passed} of {len(UNCHECKABLE)}"),
    ])


def main() -> None:
    seeds()
    corpus()


if __name__ == "__main__":
    main()
