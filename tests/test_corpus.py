"""The formula corpus (tests/formula_corpus.py): every correct formula passes against its torch reference, every
wrong variant fails on the same bindings, and no uncheckable formula passes or is blamed as a numeric mismatch."""

from __future__ import annotations

import pytest
import torch
from formula_corpus import CASES, UNCHECKABLE

from notevault.formula import check_formula, describe

KNOWN_GAPS: dict[str, str] = {}  # correct formulas not read yet (latex → what the error says): none today


def bindings(case):
    torch.manual_seed(0)
    return case.bind()


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.topic}:{c.latex[:50]}")
def test_correct_formula_passes(case):
    outcome = check_formula(case.latex, bindings(case))
    if case.latex in KNOWN_GAPS:
        assert outcome.error is not None and KNOWN_GAPS[case.latex] in outcome.error
        return
    assert outcome.error is None, outcome.error
    assert outcome.max_abs_err is not None and outcome.max_rel_err < 1e-5
    assert describe(case.latex, None, 1).evaluable


WRONG = [(case, wrong) for case in CASES for wrong in case.wrong]


@pytest.mark.parametrize(("case", "wrong"), WRONG, ids=lambda item: getattr(item, "topic", str(item)[:50]))
def test_wrong_variant_fails(case, wrong):
    outcome = check_formula(wrong, bindings(case))
    assert outcome.error is not None


def test_most_wrong_variants_are_numeric_mismatches():
    # a wrong variant that merely errors out says less than a measured difference: most must be measured
    mismatches = sum(check_formula(wrong, bindings(case)).error.startswith("formula mismatch") for case, wrong in WRONG)
    assert mismatches >= 0.9 * len(WRONG)


@pytest.mark.parametrize("latex", UNCHECKABLE, ids=lambda latex: latex[:50])
def test_uncheckable_formula_is_not_evaluable(latex):
    info = describe(latex, None, 1)
    assert (info.evaluable, info.symbols) == (False, ())
    assert info.reason
    outcome = check_formula(latex, {})
    assert outcome.error is not None and not outcome.error.startswith("formula mismatch")
    assert outcome.error == f"cannot evaluate the formula: {info.reason}"


def test_corpus_is_broad():
    topics = {case.topic for case in CASES}
    assert {"activations", "losses", "information", "norms", "optimizers", "schedules", "normalisation",
            "attention", "layers", "probability"} <= topics
    assert len(CASES) + len(UNCHECKABLE) >= 150
    assert sum(bool(case.wrong) for case in CASES) >= 0.8 * len(CASES)
