"""notevault's own settings: ``notevault.yaml`` at the vault root and ``notevault:`` in a note's front matter."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import ConfigError
from .findings import SEVERITIES, Finding

RULES = {
    "broken-link": "error",
    "bad-tag": "error",
    "duplicate-id": "error",
    "unknown-formula": "error",
    "unclosed-fence": "error",
    "front-matter": "error",
    "unreadable": "error",
    "outside-vault": "warning",
    "unfilled-section": "warning",
    "missing-section": "warning",
    "empty-field": "info",
    "remote-link": "info",
}
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Config:
    device: str = "auto"
    timeout: float = 30.0
    jobs: int | None = None  # None: the number of cores
    fold_lines: int = 20  # longer output is folded
    max_output_lines: int = 200  # longer output is cut with "… N more lines"
    memory_limit_mb: int | None = 8192  # per worker (address space); None: unlimited
    rules: dict[str, str] = field(default_factory=lambda: dict(RULES))
    exclude: tuple[str, ...] = ()

    def severity(self, rule: str) -> str:
        return self.rules.get(rule, "error")

    def apply(self, findings: list[Finding]) -> list[Finding]:
        """Findings with this vault's severities (``off`` drops them), sorted by place."""
        kept = [replace(f, severity=self.severity(f.rule)) for f in findings if self.severity(f.rule) != "off"]
        return sorted(kept, key=lambda f: (f.line, f.col, f.rule))


def _positive_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _positive_number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError("must be a positive number")
    return float(value)


def _device(value: object) -> str:
    if value not in DEVICES:
        raise ValueError("must be one of " + "|".join(DEVICES))
    return str(value)


def _memory(value: object) -> int | None:
    return None if value is None else _positive_int(value)


def _rules(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError("must map rule names to error|warning|info|off")
    rules = dict(RULES)
    for rule, severity in value.items():
        if rule not in RULES:
            raise ValueError(f"unknown rule '{rule}' (rules: {', '.join(RULES)})")
        if severity not in (*SEVERITIES, "off"):
            raise ValueError(f"rule '{rule}': severity must be error|warning|info|off")
        rules[rule] = severity
    return rules


def _globs(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of glob patterns")
    return tuple(value)


VAULT_KEYS = {
    "device": _device,
    "timeout": _positive_number,
    "jobs": _positive_int,
    "fold_lines": _positive_int,
    "max_output_lines": _positive_int,
    "memory_limit_mb": _memory,
    "rules": _rules,
    "exclude": _globs,
}


def load_config(path: Path) -> Config:
    """Read ``notevault.yaml``; a missing file means defaults, a bad key or value is a ConfigError."""
    if not path.exists():
        return Config()
    import yaml  # only a vault with settings pays for it

    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read settings: {exc}".splitlines()[0], path) from None
    if root is None:
        return Config()
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError("settings must be a mapping of keys to values", path, 1)
    values = {}
    data = yaml.safe_load(text)
    for key_node, _ in root.value:
        key, line = key_node.value, key_node.start_mark.line + 1
        if key not in VAULT_KEYS:
            raise ConfigError(f"unknown key '{key}' (known: {', '.join(VAULT_KEYS)})", path, line)
        try:
            values[key] = VAULT_KEYS[key](data[key])
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}", path, line) from None
    return replace(Config(), **values)


@dataclass(frozen=True)
class NoteSettings:
    """``notevault: {skip: true, device: cuda, timeout: 120}`` in a note's front matter."""

    skip: bool = False
    device: str | None = None
    timeout: float | None = None


NOTE_KEYS = {"skip": bool, "device": _device, "timeout": _positive_number}


def note_settings(front_matter: dict) -> tuple[NoteSettings, list[str]]:
    """Read a note's ``notevault:`` settings; return them and the problems found (as messages)."""
    raw = front_matter.get("notevault")
    if raw is None:
        return NoteSettings(), []
    if not isinstance(raw, dict):
        return NoteSettings(), ["front matter 'notevault' must be a mapping (skip, device, timeout)"]
    values, problems = {}, []
    for key, value in raw.items():
        if key not in NOTE_KEYS:
            problems.append(f"unknown notevault setting '{key}' (known: {', '.join(NOTE_KEYS)})")
            continue
        try:
            if key == "skip" and not isinstance(value, bool):
                raise ValueError("must be true or false")
            values[key] = NOTE_KEYS[key](value)
        except ValueError as exc:
            problems.append(f"notevault setting {key}: {exc}")
    return NoteSettings(**values), problems
