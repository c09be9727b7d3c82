"""Fence tags: ```` ```python run id=bn device=cuda ```` parsed and validated (SPEC §2)."""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass, field

KINDS = ("run", "check")
PYTHON_WORDS = ("python", "py", "python3")
NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
EXCEPTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
FORMULA_REF = re.compile(r"^(?:(?P<note>[^#]+)#\^)?(?P<id>[A-Za-z0-9-]+)$")
FENCE_INFO = re.compile(rb"(?:```+|~~~+)([^\n]*)")


@dataclass(frozen=True)
class Tag:
    """The validated options of one tagged fence. ``None`` means "use the note/vault default"."""

    kind: str
    id: str | None = None
    device: str | None = None
    timeout: float | None = None
    seed: int = 0
    expect: str | None = None
    session: str | None = None
    isolated: bool = False
    output: str | None = None
    formula: str | None = None
    rtol: float = 1e-5
    atol: float = 1e-6
    errors: tuple[str, ...] = field(default=())

    def source(self) -> str:
        """A canonical text of the options that change what a block produces (part of its hash)."""
        keys = ("kind", "device", "timeout", "seed", "expect", "session", "isolated", "formula", "rtol", "atol")
        return " ".join(f"{k}={getattr(self, k)!r}" for k in keys)


def _integer(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError("must be an integer") from None


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("must be a positive number")
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError("must not be negative")
    return number


def _choice(*allowed: str):
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError("must be one of " + "|".join(allowed))
        return value

    return check


def _matching(pattern: re.Pattern[str], what: str):
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"is not a valid {what}")
        return value

    return check


OPTIONS = {
    "id": _matching(NAME, "name (letters, digits, _ . -)"),
    "device": _choice("cpu", "cuda", "auto"),
    "timeout": _positive_float,
    "seed": _integer,
    "expect": _matching(EXCEPTION_NAME, "exception name"),
    "session": _matching(NAME, "session name"),
    "output": _choice("show", "fold", "hide"),
    "formula": _matching(FORMULA_REF, "formula id (ID or Note#^ID)"),
    "rtol": _non_negative_float,
    "atol": _non_negative_float,
}


def _misspelt_kind(word: str) -> str | None:
    """``Run``, ``runn``, ``chek``: meant as a tag, so an error rather than a block silently never run."""
    close = difflib.get_close_matches(word.lower(), KINDS, n=1, cutoff=0.75) if word.isalpha() else []
    return close[0] if close else None


def parse_info(info: str) -> tuple[str, Tag | None]:
    """Return the fence's language word and its Tag (``None`` when the fence is not tagged for notevault)."""
    words = info.split(None, 2)
    language = words[0] if words else ""
    if language.lower() not in PYTHON_WORDS or len(words) < 2:
        return language, None
    kind = words[1] if words[1] in KINDS else _misspelt_kind(words[1])
    if kind is None:
        return language, None
    values: dict[str, object] = {"kind": kind}
    errors: list[str] = [] if kind == words[1] else [f"'{words[1]}' is not a tag: write '{kind}'"]
    try:
        options = shlex.split(words[2]) if len(words) > 2 else []
    except ValueError as exc:
        return language, Tag(kind=kind, errors=(f"cannot read options: {exc}",))
    for option in options:
        key, has_value, value = option.partition("=")
        if key == "isolated" and not has_value:
            values["isolated"] = True
        elif key not in OPTIONS:
            errors.append(f"unknown option '{key}'" + ("" if has_value else " (options are key=value)"))
        elif not has_value or value == "":
            errors.append(f"option '{key}' needs a value")
        elif key == "formula" and kind != "check":
            errors.append("option 'formula' belongs on a 'check' block")
        else:
            try:
                values[key] = OPTIONS[key](value)
            except ValueError as exc:
                # int()/float() explain themselves in Python's words; ours start with "must" or "is not".
                reason = str(exc) if str(exc).startswith(("must", "is not")) else "must be a number"
                errors.append(f"option {key}={value} {reason}")
    if values.get("isolated") and "session" in values:
        errors.append("'isolated' and 'session=' exclude each other")
    return language, Tag(errors=tuple(errors), **values)  # type: ignore[arg-type]


def sessions_named(text: bytes) -> set[str]:
    """The session names a note's fences give, read without parsing the note: every run of three backticks or
    tildes is taken for a fence opening and its info read by ``parse_info``, so a name is found however the
    tag spells it (``session="s"``) and the result holds every session the parsed note has, and maybe more."""
    names = set()
    for info in FENCE_INFO.findall(text):
        _, tag = parse_info(info.decode("utf-8", errors="replace").strip())
        if tag is not None and tag.session:
            names.add(tag.session)
    return names
