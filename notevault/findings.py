"""A diagnostic about one place in one note: ``path:line:col: severity: message``."""

from __future__ import annotations

from dataclasses import dataclass

SEVERITIES = ("error", "warning", "info")
STOPS_ITS_BLOCK = frozenset({"bad-tag", "unknown-formula", "unclosed-fence"})  # the block on its line cannot run


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    line: int
    col: int
    message: str

    def format(self, path: str) -> str:
        return f"{path}:{self.line}:{self.col}: {self.severity}: {self.message} [{self.rule}]"
