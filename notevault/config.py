"""notevault's own settings: ``notevault.yaml`` at the vault root and ``notevault:`` in a note's front matter."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError
from .findings import SEVERITIES, Finding

if TYPE_CHECKING:  # yaml is imported where a file is parsed: a vault without settings never loads it
    import yaml

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
    """Read ``notevault.yaml``; a missing file means defaults; bad YAML, a duplicate or unknown key or a bad
    value is a ConfigError that names its line."""
    if not path.exists():
        return Config()
    import yaml  # only a vault with settings pays for it

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read settings: {exc}", path) from None
    root, data = _parse_yaml(text, path)
    if root is None:
        return Config()
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError("settings must be a mapping of keys to values", path, root.start_mark.line + 1)
    values = {}
    for key_node, _ in root.value:
        key, line = key_node.value, key_node.start_mark.line + 1
        if key not in VAULT_KEYS:
            raise ConfigError(f"unknown key '{key}' (known: {', '.join(VAULT_KEYS)})", path, line)
        try:
            values[key] = VAULT_KEYS[key](data[key])
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}", path, line) from None
    return replace(Config(), **values)


def _parse_yaml(text: str, path: Path) -> tuple[yaml.Node | None, object]:
    """The YAML document's node tree (for lines) and its value, from one parse."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            _reject_duplicate_keys(root, path)
        return root, loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(f"not valid YAML: {', '.join(p for p in (exc.context, exc.problem) if p)}", path,
                          _error_line(exc, text)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", path) from None
    finally:
        loader.dispose()


def _error_line(exc: yaml.MarkedYAMLError, text: str) -> int | None:
    """Where the YAML goes wrong; for something left open at the end (a quote, a bracket), where it opens."""
    mark = exc.problem_mark
    if exc.context_mark is not None and (mark is None or mark.index >= len(text.rstrip())):
        mark = exc.context_mark
    return mark.line + 1 if mark is not None else None


def _reject_duplicate_keys(node: yaml.Node, path: Path) -> None:
    """PyYAML keeps the last of two equal keys silently; a setting given twice is a mistake to point at."""
    import yaml

    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _reject_duplicate_keys(item, path)
    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[object, int] = {}
    for key, value in node.value:
        line = key.start_mark.line + 1
        name = key.value if isinstance(key, yaml.ScalarNode) else None
        if name is not None and name in seen:
            raise ConfigError(f"duplicate key '{name}' (first at line {seen[name]})", path, line)
        if name is not None:
            seen[name] = line
        _reject_duplicate_keys(value, path)


@dataclass(frozen=True)
class NoteSettings:
    """``notevault: {skip: true, device: cuda, timeout: 120}`` in a note's front matter."""

    skip: bool = False
    device: str | None = None
    timeout: float | None = None


NOTE_KEYS = {"skip": bool, "device": _device, "timeout": _positive_number}


@dataclass(frozen=True)
class SettingProblem:
    key: str | None  # the setting at fault; None: the ``notevault:`` key itself
    message: str


def note_settings(front_matter: dict) -> tuple[NoteSettings, list[SettingProblem]]:
    """Read a note's ``notevault:`` settings; return them and the problems found."""
    raw = front_matter.get("notevault")
    if raw is None:
        return NoteSettings(), []
    if not isinstance(raw, dict):
        return NoteSettings(), [SettingProblem(None, "front matter 'notevault' must be a mapping (skip, device, "
                                                     "timeout)")]
    values, problems = {}, []
    for key, value in raw.items():
        if key not in NOTE_KEYS:
            problems.append(SettingProblem(key, f"unknown notevault setting '{key}' (known: {', '.join(NOTE_KEYS)})"))
            continue
        try:
            if key == "skip" and not isinstance(value, bool):
                raise ValueError("must be true or false")
            values[key] = NOTE_KEYS[key](value)
        except ValueError as exc:
            problems.append(SettingProblem(key, f"notevault setting {key}: {exc}"))
    return NoteSettings(**values), problems


def setting_lines(front_matter_yaml: str) -> dict[str | None, int]:
    """1-based lines, within the front matter's YAML, of the ``notevault:`` key (under None) and of its keys."""
    import yaml

    try:
        root = yaml.compose(front_matter_yaml, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    if not isinstance(root, yaml.MappingNode):
        return {}
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "notevault":
            lines: dict[str | None, int] = {None: key.start_mark.line + 1}
            if isinstance(value, yaml.MappingNode):
                lines.update((k.value, k.start_mark.line + 1) for k, _ in value.value if isinstance(k, yaml.ScalarNode))
            return lines
    return {}
