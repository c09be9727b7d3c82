"""Formula coverage: of the seeds' display formulas of the form LHS = RHS, the share notevault can evaluate.

    python bench/formulas.py

Formulas that no numerical check can evaluate as written (derivatives, gradients, integrals, arg max/min,
asymptotics, set algebra, distributions under E_{x~p}, ellipses, matrices with \\vdots) are listed by reason and
also left out of a second figure, "of the computable ones".
"""

from __future__ import annotations

import sys
from collections import Counter

from _common import REPO, SEEDS, emit

sys.path.insert(0, str(REPO))

from notevault.formula import describe, split_sides  # noqa: E402
from notevault.note import read_note  # noqa: E402

NOT_COMPUTABLE = ("partial derivative", "gradient", "integral", "arg max", "\\mathcal", "set ", "ellipsis",
                  "environment", "\\underset", "\\sim", "inner product", "continues the formula", "\\min with",
                  "is not a symbol", "expectation over")


def main() -> None:
    total = evaluable = computable = 0
    reasons: Counter[str] = Counter()
    unevaluated = []
    for path in sorted(SEEDS.glob("*.md")):
        for math in read_note(path).maths:
            sides = [side for side in split_sides(math.latex.split("\\\\")[0]) if side.strip()]
            info = describe(math.latex, math.block_id, math.line)
            if len(sides) < 2 and not info.evaluable:
                continue  # not of the form LHS = RHS
            total += 1
            if info.evaluable:
                evaluable += 1
                computable += 1
                continue
            reasons[info.reason] += 1
            if not any(word in info.reason for word in NOT_COMPUTABLE):
                computable += 1
                unevaluated.append(f"{path.name[:3]}:{math.line} {info.reason}")
    rows = [
        ("display formulas of the form LHS = RHS", str(total)),
        ("evaluable by notevault", f"{evaluable} ({evaluable / total:.0%})"),
        ("evaluable, of the numerically computable ones",
         f"{evaluable} of {computable} ({evaluable / computable:.0%})"),
    ]
    rows += [(f"  not evaluable: {reason}", str(count)) for reason, count in reasons.most_common()]
    rows += [("  computable but not evaluated", line) for line in unevaluated]
    emit("formula coverage on the seeds", rows)


if __name__ == "__main__":
    main()
