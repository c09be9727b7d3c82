"""Static checks: unfilled template sections, broken links and embeds, bad fence tags (SPEC §5)."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .config import note_settings, setting_lines
from .errors import NoteError
from .findings import Finding
from .index import Dependencies, Index
from .note import Note
from .results import NoteReport, Report
from .vault import Vault, display_path

RULE_LINE = re.compile(r"^(?:-{3,}|\*{3,}|_{3,})$")
# "* 背景：" or "- Key Definition 1:" — a label waiting for text after its colon.
FIELD_LABEL = re.compile(r"^[*+-][ \t]+(?P<label>[^：:]+?)[ \t]*[：:][ \t]*(?P<rest>.*)$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True)
class TemplateSection:
    title: str
    lines: frozenset[str]  # the template's own text in this section, stripped
    labels: frozenset[str]  # field labels ("背景")


@dataclass(frozen=True)
class Template:
    name: str
    sections: tuple[TemplateSection, ...]

    @classmethod
    def from_note(cls, note: Note) -> Template:
        headings = list(note.headings)
        if sum(1 for h in headings if h.level == 1) == 1 and headings and headings[0].level == 1:
            headings = headings[1:]  # a lone H1 is the template's title, not a section to fill
        sections = []
        for heading in headings:
            body = [note.line_text(n + 1).strip() for n in range(heading.span.start + 1, heading.span.end)]
            labels = {m["label"].strip() for line in body if (m := FIELD_LABEL.match(line))}
            sections.append(TemplateSection(heading.title, frozenset(line for line in body if line), frozenset(labels)))
        return cls(note.path.stem, tuple(sections))


def _normal(title: str) -> str:
    return " ".join(title.split())


def match_template(note: Note, templates: list[Template]) -> Template | None:
    """The template whose section headings the note shares most (at least half of them, and two)."""
    titles = {_normal(h.title) for h in note.headings}
    best, best_share = None, 0.0
    for template in templates:
        if not template.sections:
            continue
        shared = sum(1 for s in template.sections if _normal(s.title) in titles)
        share = shared / len(template.sections)
        if shared >= 2 and share >= 0.5 and share > best_share:
            best, best_share = template, share
    return best


def template_findings(note: Note, template: Template) -> list[Finding]:
    """Unfilled, missing sections and empty fields of a note made from ``template``."""
    findings = []
    by_title = {}
    for heading in note.headings:
        by_title.setdefault(_normal(heading.title), heading)
    for section in template.sections:
        heading = by_title.get(_normal(section.title))
        if heading is None:
            findings.append(
                Finding("missing-section", "warning", 1, 1, f"template section '{section.title}' is missing")
            )
            continue
        filled, empty_fields = False, []
        for n in range(heading.span.start + 1, heading.span.end):
            line = note.line_text(n + 1).strip()
            if not line or RULE_LINE.match(line):
                continue
            label = FIELD_LABEL.match(line)
            if label and label["label"].strip() in section.labels and not label["rest"].strip():
                empty_fields.append((n + 1, label["label"].strip()))
            elif line not in section.lines:
                filled = True
        if not filled:
            findings.append(
                Finding("unfilled-section", "warning", heading.span.line, 1,
                        f"section '{section.title}' holds only the template's text")
            )
        else:
            findings.extend(
                Finding("empty-field", "info", line, 1, f"field '{label}' in '{section.title}' is empty")
                for line, label in empty_fields
            )
    return findings


def block_findings(vault: Vault, note: Note, rel: str) -> list[Finding]:
    """What keeps a note's blocks from running as written: broken front matter, unclosed fences, bad tags,
    unknown formulas, duplicate ids. ``run`` reports these; ``lint`` reports them with the rest."""
    findings = list(note.problems)
    findings.extend(setting_findings(note))
    seen: dict[str, int] = {}
    for block in note.blocks:
        for error in block.tag.errors:
            findings.append(Finding("bad-tag", "error", block.span.line, 1,
                                    f"bad tag on ```{block.fence.info}: {error}"))
        if block.tag.formula and vault.formula(note, rel, block.tag.formula) is None:
            findings.append(Finding("unknown-formula", "error", block.span.line, 1,
                                    f"formula={block.tag.formula}: no display formula with that ^id"))
        if block.id in seen:
            findings.append(Finding("duplicate-id", "error", block.span.line, 1,
                                    f"id {block.id} is also the id of the block at line {seen[block.id]}"))
        seen.setdefault(block.id, block.span.line)
    return findings


FRONT_MATTER_END = re.compile(r"^-{3,}[ \t]*$")


def setting_findings(note: Note) -> list[Finding]:
    """Problems with the note's ``notevault:`` settings, each at the line of the key at fault."""
    _, problems = note_settings(note.front_matter)
    if not problems:
        return []
    # The YAML between the opening --- (line 1) and the closing one; its first line is the note's line 2.
    end = next((n for n in range(1, len(note.lines)) if FRONT_MATTER_END.match(note.line_text(n + 1))), 1)
    lines = setting_lines("".join(note.lines[1:end]))
    return [Finding("front-matter", "error", 1 + lines.get(p.key, lines.get(None, 0)), 1, p.message)
            for p in problems]


class Linter:
    """Lints notes of one vault; parses each template and linked note once.

    With an index, a note whose content, templates and link targets are as they were is answered without
    being read: its verdict rests on the answers the vault gave to its links (re-asked only when the vault's
    set of files changed) and on the notes it links into (their headings and block ids).
    """

    def __init__(self, vault: Vault, index: Index | None = None) -> None:
        self.vault = vault
        self.index = index
        self._templates: list[Template] | None = None
        self.question = "lint:" + _digest(vault.settings_digest,
                                          *(_file_digest(path) for path in vault.templates()))

    def templates(self) -> list[Template]:
        if self._templates is None:
            self._templates = []
            for path in self.vault.templates():
                note = self.vault.note(self.vault.relative(path))
                if isinstance(note, Note):
                    self._templates.append(Template.from_note(note))
        return self._templates

    def lint(self, path: Path, parsed: Note | None = None) -> list[Finding]:
        """All findings for one note, with the vault's severities applied, sorted by place. ``parsed``: the
        note as the caller already read it."""
        rel = self.vault.relative(path)
        answer = self.index.answer(rel, self.question) if self.index is not None else None
        if answer is not None and (answer["files"] == self.vault.files_digest[:32]
                                   or self.vault.still_answers(answer["lookups"], rel)):
            return [Finding(*f) for f in answer["findings"]]
        templates = self.templates()  # parsed before the look-ups are recorded: the question covers them
        self.vault.lookups = lookups = []
        try:
            note = parsed if parsed is not None and not parsed.light else self.vault.note(rel)
            if isinstance(note, NoteError):
                raw = [Finding("unreadable", "error", note.line or 1, 1, note.message)]
            else:
                raw = self.findings(note, rel, templates)
        finally:
            self.vault.lookups = None
        findings = self.vault.config.apply(raw)
        if self.index is not None and isinstance(note, Note) and note.source is not None:
            read = {lookup[1] for lookup in lookups if lookup[0] == "note" and lookup[1] != rel}
            answer = {"findings": [[f.rule, f.severity, f.line, f.col, f.message] for f in findings],
                      "files": self.vault.files_digest[:32], "lookups": self.vault.answers_given(lookups, rel)}
            self.index.record(rel, note.source, self.question, answer, Dependencies(notes=dict.fromkeys(read)))
        if not self.vault.is_template(rel):
            self.vault.forget(rel)  # linted: its text is no longer needed
        return findings

    def findings(self, note: Note, rel: str, templates: list[Template] | None = None) -> list[Finding]:
        findings = block_findings(self.vault, note, rel)
        findings.extend(self._link_findings(note, rel))
        if not self.vault.is_template(rel):
            template = match_template(note, self.templates() if templates is None else templates)
            if template is not None:
                findings.extend(template_findings(note, template))
        return findings

    def _link_findings(self, note: Note, rel: str) -> list[Finding]:
        findings = []
        for link in note.links:
            if link.is_remote:
                if link.kind != "link":
                    findings.append(Finding("remote-link", "info", link.line, link.col,
                                            f"remote image not checked: {link.target}"))
                continue
            if SCHEME.match(link.target) or (link.kind == "link" and not link.target):
                continue
            wiki = link.kind in ("wikilink", "embed")
            found = self.vault.resolve(link.target, rel, wiki=wiki)
            if found is None:
                message = f"broken {_describe(link.kind)}: '{link.target}' not found"
                suggestion = self.vault.suggest(link.target, rel)
                if suggestion:
                    message += f"; did you mean '{suggestion}'?"
                findings.append(Finding("broken-link", "error", link.line, link.col, message))
            elif link.fragment and found.endswith(".md"):
                problem = self._fragment_problem(found, link.fragment)
                if problem:
                    findings.append(Finding("broken-link", "error", link.line, link.col, problem))
        return findings

    def _fragment_problem(self, target_rel: str, fragment: str) -> str | None:
        anchors = self.vault.anchors(target_rel)
        if anchors is None:
            return None
        headings, block_ids = anchors
        if fragment.startswith("^"):
            if fragment[1:] not in block_ids:
                return f"broken block link: no ^{fragment[1:]} in '{target_rel}'"
            return None
        wanted = _normal(fragment.split("#")[-1])
        if not any(_normal(title) == wanted for title in headings):
            return f"broken heading link: no heading '{wanted}' in '{target_rel}'"
        return None


def _describe(kind: str) -> str:
    return {"image": "image", "html-img": "<img>", "embed": "embed", "wikilink": "link", "link": "link"}[kind]



def lint_paths(vault: Vault, paths: list[Path]) -> Report:
    """``notevault lint``: findings for every note under ``paths``."""
    started = time.perf_counter()
    index = Index.load(vault.root, "lint", [f for f in vault.files if f.endswith(".md")])
    linter = Linter(vault, index)
    selection = vault.notes(paths)
    notes = [NoteReport(display_path(path), lint=linter.lint(path)) for path in selection.notes]
    index.save()
    return Report(notes + outside_reports(vault, selection.outside), time.perf_counter() - started, linted=True)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _file_digest(path: Path) -> str:
    try:
        return path.as_posix() + ":" + hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return path.as_posix() + ":absent"


def outside_reports(vault: Vault, outside: list[Path]) -> list[NoteReport]:
    """A report for each note left out because it is a symbolic link to a file outside the vault."""
    message = "a symbolic link to a file outside the vault: not read, nothing written"
    finding = Finding("outside-vault", "warning", 1, 1, message)
    return [NoteReport(display_path(path), lint=vault.config.apply([finding])) for path in outside]
