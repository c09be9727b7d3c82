"""The result callout's format: titles read back, checksums that find where notevault's lines end."""

from __future__ import annotations

from notevault.callout import code_span, content_sum, intact_length, marker_line, read_title, title_line


def test_a_title_is_read_back_as_it_was_written():
    title = title_line("bn-demo", "failed", device="cpu", seconds=0.25, error="ValueError: x `y` [[z]]", folded=True)
    assert title == "[!failure]- bn-demo · failed · cpu · 0.25 s · ``ValueError: x `y` [[z]]``"
    read = read_title(title)
    assert (read.id, read.status, read.folded, read.device, read.seconds, read.error) == (
        "bn-demo", "failed", True, "cpu", 0.25, "ValueError: x `y` [[z]]")
    assert read_title("[!success] x · failed") is None  # a type that contradicts its status is not ours
    assert read_title("[!note] my own callout") is None


def test_code_spans_hold_any_text_literally():
    assert code_span("plain") == "`plain`"
    assert code_span("has `ticks`") == "`` has `ticks` ``"  # CommonMark drops one space on each side
    assert code_span("``double") == "``` ``double ```"


def test_the_checksum_finds_where_notevaults_lines_end():
    lines = ["[!success] L1 · passed · cpu · 0.01 s", "", "```text", "1", "```"]
    lines[1] = marker_line("L1", "abc", content_sum([lines[0], *lines[2:]]), separator=False)
    assert intact_length(lines, content_sum([lines[0], *lines[2:]])) == 5
    assert intact_length(lines + ["the user's own line"], content_sum([lines[0], *lines[2:]])) == 5
    edited = [*lines[:3], "999", lines[4]]
    assert intact_length(edited, content_sum([lines[0], *lines[2:]])) is None
