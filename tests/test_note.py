"""The parsed note: every seed whole, exact spans, exact bytes."""

from __future__ import annotations

import pytest
from conftest import SEEDS, seed
from hypothesis import given
from hypothesis import strategies as st

from notevault.errors import NoteError
from notevault.note import LINE_BREAK, parse_note, read_note, split_lines


@pytest.mark.parametrize("path", sorted(SEEDS.glob("*.md")), ids=lambda p: p.name[:3])
def test_every_seed_parses_and_keeps_its_bytes(path):
    note = read_note(path)
    assert note.raw().encode("utf-8") == path.read_bytes()
    assert "".join(note.lines) == note.text


@pytest.mark.parametrize(
    ("prefix", "fences", "maths", "callouts", "headings", "local_images", "remote_images"),
    [
        ("000", 0, 2, 0, 15, 0, 0),
        ("001", 0, 1, 0, 14, 0, 0),
        ("002", 11, 52, 0, 24, 9, 0),
        ("003", 1, 73, 0, 462, 58, 0),
        ("004", 2, 0, 45, 17, 0, 2),
    ],
)
def test_seed_counts(prefix, fences, maths, callouts, headings, local_images, remote_images):
    note = read_note(seed(prefix))
    images = [link for link in note.links if link.kind in ("image", "html-img", "embed")]
    assert len(note.fences) == fences
    assert len(note.maths) == maths
    assert len(note.callouts) == callouts
    assert len(note.headings) == headings
    assert sum(not i.is_remote for i in images) == local_images
    assert sum(i.is_remote for i in images) == remote_images


def test_seed_002_images_lines_and_columns():
    note = read_note(seed("002"))
    images = [(link.kind, link.line, link.col, link.target) for link in note.links]
    assert images[0] == ("image", 223, 1, "./images/image-20250525204419078.png")
    assert ("html-img", 426, 1, "images/image-20250419130150606.png") in images
    for _, line, col, target in images:
        assert target in note.line_text(line)
        assert note.line_text(line)[col - 1] in "!<"


def test_seed_002_fence_spans_and_text():
    note = read_note(seed("002"))
    first = note.fences[0]
    assert (first.language, first.span.line, first.span.end) == ("txt", 17, 25)
    assert note.line_text(first.span.line) == "```txt"
    assert note.line_text(first.span.end) == "```"
    assert [f.language for f in note.fences].count("python") == 8
    assert all(f.closed for f in note.fences)
    assert note.blocks == ()  # untagged python is never run: the seeds hold pseudo-code


def test_seed_002_code_is_not_a_link():
    note = read_note(seed("002"))
    assert "[[1, 2, 3]]" in note.line_text(19)
    assert not any(link.line == 19 for link in note.links)


def test_seed_004_fences_one_and_two_callouts_deep():
    note = read_note(seed("004"))
    outer, inner = note.fences
    assert (outer.span.line, outer.prefix) == (153, "> ")
    assert (inner.span.line, inner.prefix) == (274, "> > ")
    assert outer.code.startswith("from torchvision import transforms\n")
    nested = [c for c in note.callouts if c.depth == 1]
    assert ("note", "**代码示例**", 273) in [(c.type, c.title, c.span.line) for c in nested]
    assert note.callouts[0].type == "abstract" and note.callouts[0].title == "核心纲要"


def test_seed_000_two_formulas_on_one_line():
    note = read_note(seed("000"))
    first, second = note.maths
    assert first.line == second.line == 20
    assert first.latex == r"\hat{x} = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}"
    assert second.latex == r"y = \gamma \hat{x} + \beta"


def test_display_math_block_ids_and_math_after_text():
    note = parse_note("text\n$$\na=b\n$$\n^after-text\n\n$$x=1$$ ^inline\n\n$$\nc=d\n$$\n^own-line\n")
    assert [(m.latex, m.line, m.block_id) for m in note.maths] == [
        ("a=b", 2, "after-text"), ("x=1", 7, "inline"), ("c=d", 9, "own-line")]
    assert {"after-text", "inline", "own-line"} <= note.block_ids


def test_links_of_every_form():
    text = ("![a](img%20one.png) ![b](<my img.png>) ![[pic.png|300]]\n"
            "[[Other note#Heading|alias]] [[Other#^blk]] <img src=\"x.png\">\n"
            "`![c](in-code.png)` %% [[hidden]] %%\n")
    note = parse_note(text)
    got = [(k.kind, k.target, k.fragment, k.line, k.col) for k in note.links]
    assert got == [
        ("image", "img one.png", None, 1, 1),
        ("image", "my img.png", None, 1, 21),
        ("embed", "pic.png", None, 1, 40),
        ("wikilink", "Other note", "Heading", 2, 1),
        ("wikilink", "Other", "^blk", 2, 30),
        ("html-img", "x.png", None, 2, 45),
    ]
    assert [c.text for c in note.comments] == [" [[hidden]] "]


def test_crlf_bom_and_no_final_newline_keep_exact_bytes(tmp_path):
    data = "\ufeff---\r\ntitle: x\r\n---\r\n# Head\r\n\r\n```python run\r\nprint(1)\r\n```".encode()
    path = tmp_path / "n.md"
    path.write_bytes(data)
    note = read_note(path)
    assert note.bom and note.front_matter == {"title": "x"}
    assert note.raw().encode("utf-8") == data
    assert [h.title for h in note.headings] == ["Head"]
    assert note.blocks[0].span.line == 6 and note.blocks[0].code == "print(1)\n"


def test_split_lines_follows_markdown_it_not_splitlines():
    text = "a\x0cb\u2028c\r\nd\re\n"
    assert split_lines(text) == ["a\x0cb\u2028c\r\n", "d\r", "e\n"]


def test_unclosed_fence_is_reported_with_its_line():
    note = parse_note("# x\n\n```python run\nprint(1)\n")
    assert not note.blocks[0].closed
    assert [(p.rule, p.line) for p in note.problems] == [("unclosed-fence", 3)]


def test_broken_front_matter_names_the_line():
    note = parse_note("---\ntitle: [unclosed\nx: 1\n---\nbody\n")
    # YAML notices the unclosed [ at "x: 1", file line 3 (line 2 of the YAML, after the opening ---).
    assert [(p.rule, p.line) for p in note.problems] == [("front-matter", 3)]
    assert "broken YAML front matter: expected ',' or ']'" in note.problems[0].message
    assert note.front_matter == {}


def test_invalid_utf8_and_binary_files_raise_with_line(tmp_path):
    bad = tmp_path / "bad.md"
    bad.write_bytes(b"ok\nfine\n\xff\xfe broken\n")
    with pytest.raises(NoteError) as error:
        read_note(bad)
    assert error.value.line == 3 and "not valid UTF-8" in str(error.value)
    binary = tmp_path / "image.md"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    with pytest.raises(NoteError, match="binary file"):
        read_note(binary)


def test_ten_megabyte_note_parses(tmp_path):
    chunk = read_note(seed("002")).text
    big = tmp_path / "big.md"
    big.write_text(chunk * (10_000_000 // len(chunk.encode()) + 1), encoding="utf-8")
    note = read_note(big)
    assert len(note.fences) % 11 == 0 and len(note.fences) >= 11 * 400


@given(st.text(alphabet=st.sampled_from(list("ab \t#>`$[]!\r\n\x0c\x85\u2028\u00e9中")), max_size=60))
def test_split_lines_fast_path_agrees_with_markdown_its_rule(text):
    lines = split_lines(text)
    assert "".join(lines) == text
    assert all(len(LINE_BREAK.findall(line)) <= 1 for line in lines)
    assert len(lines) == len(LINE_BREAK.findall(text)) + (0 if not text or LINE_BREAK.match(text[-1]) else 1)
