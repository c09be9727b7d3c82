"""What a run produces: one BlockResult per tagged block, gathered per note into a Report.

Plain data, so the worker can send it, the cache can store it, and the writer and reporter can read it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import asdict, dataclass, field, fields

from .findings import Finding

STATUSES = ("passed", "failed", "skipped", "stale")


@dataclass(frozen=True)
class FormulaResult:
    id: str | None
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    shapes: tuple[str, str] | None = None  # (computed from the formula, reference)


@dataclass(frozen=True)
class BlockResult:
    id: str
    line: int
    kind: str  # run | check
    status: str  # passed | failed | skipped | stale
    hash: str  # what its callout's marker says: the block's inputs and how it is shown (see plan.py)
    cached: bool = False
    device: str | None = None
    seconds: float = 0.0
    error: str | None = None  # one line: why it failed or was skipped
    output: str = ""  # stdout and stderr, in the order written
    value: str | None = None  # repr of a last bare expression
    traceback: str | None = None
    figures: tuple[bytes, ...] = ()  # PNG files
    formula: FormulaResult | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        data["figures"] = [base64.b64encode(png).decode("ascii") for png in self.figures]
        return data

    @classmethod
    def from_json(cls, data: dict) -> BlockResult:
        """Read back what ``to_json`` wrote (from the cache or a worker), checking every field's type."""
        if not isinstance(data, dict):
            raise TypeError("a block result is a JSON object")
        data = dict(data)
        try:
            data["figures"] = tuple(base64.b64decode(png, validate=True) for png in data.get("figures", ()))
        except binascii.Error as exc:
            raise ValueError(f"figure is not base64: {exc}") from None
        if data.get("formula") is not None:
            formula = dict(data["formula"])
            if formula.get("shapes") is not None:
                formula["shapes"] = tuple(formula["shapes"])
            data["formula"] = FormulaResult(**formula)
            _check_types(data["formula"], FORMULA_TYPES)
        result = cls(**data)
        _check_types(result, RESULT_TYPES)
        return result


RESULT_TYPES = {
    "id": str, "line": int, "kind": str, "status": str, "hash": str, "cached": bool, "device": (str, type(None)),
    "seconds": (int, float), "error": (str, type(None)), "output": str, "value": (str, type(None)),
    "traceback": (str, type(None)), "figures": tuple, "formula": (FormulaResult, type(None)),
}
FORMULA_TYPES = {"id": (str, type(None)), "max_abs_err": (int, float, type(None)),
                 "max_rel_err": (int, float, type(None)), "shapes": (tuple, type(None))}


def _check_types(value: object, types: dict[str, type | tuple[type, ...]]) -> None:
    for f in fields(value):  # type: ignore[arg-type]
        item = getattr(value, f.name)
        if not isinstance(item, types[f.name]) or (isinstance(item, bool) and types[f.name] is not bool):
            raise TypeError(f"{f.name} has the wrong type ({type(item).__name__})")


@dataclass
class NoteReport:
    path: str  # as the user gave it, relative to the current folder
    blocks: list[BlockResult] = field(default_factory=list)
    lint: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. results dropped because the note changed
    seen: str | None = None  # sha256 of the note's bytes as notevault left them (written, or read and kept)


def note_answer(note: NoteReport) -> dict:
    """What the index keeps of a note's report: what a report shows of its blocks, and its findings."""
    def shown(b: BlockResult) -> list:
        formula = [b.formula.id, b.formula.max_abs_err, b.formula.max_rel_err] if b.formula else None
        return [b.id, b.line, b.kind, b.status, b.hash, b.device, b.seconds, b.error, formula]

    return {"blocks": [shown(b) for b in note.blocks],
            "lint": [[f.rule, f.severity, f.line, f.col, f.message] for f in note.lint]}


def report_from_answer(path: str, answer: dict) -> NoteReport:
    """A note's report rebuilt from the index, every block but a stale one marked as coming from what was stored."""
    blocks = []
    for block_id, line, kind, status, block_hash, device, seconds, error, formula in answer["blocks"]:
        blocks.append(BlockResult(id=block_id, line=line, kind=kind, status=status, hash=block_hash,
                                  cached=status != "stale",
                                  device=device, seconds=seconds, error=error,
                                  formula=FormulaResult(*formula) if formula else None))
    return NoteReport(path, blocks, [Finding(*f) for f in answer["lint"]])


@dataclass
class Report:
    notes: list[NoteReport] = field(default_factory=list)
    seconds: float = 0.0
    linted: bool = False  # lint ran (lint, check): its counts are the vault's findings, not only run problems

    def count(self, status: str) -> int:
        return sum(1 for n in self.notes for b in n.blocks if b.status == status)

    def lint_count(self, severity: str) -> int:
        return sum(1 for n in self.notes for f in n.lint if f.severity == severity)

    def summary(self) -> dict:
        return {
            "notes": len(self.notes),
            "blocks": sum(len(n.blocks) for n in self.notes),
            "passed": self.count("passed"),
            "failed": self.count("failed"),
            "skipped": self.count("skipped"),
            "cached": sum(1 for n in self.notes for b in n.blocks if b.cached),
            "stale": self.count("stale"),
            "lint_errors": self.lint_count("error"),
            "lint_warnings": self.lint_count("warning"),
            "seconds": round(self.seconds, 3),
        }

    def failed(self, *, strict: bool = False) -> bool:
        """Exit status 1? Any failed or stale block, any lint error (or warning with ``strict``)."""
        if self.count("failed") or self.count("stale") or self.lint_count("error"):
            return True
        return strict and self.lint_count("warning") > 0
