"""What crosses the process boundary: frames the CLI checks field by field, and placeholders resolved to lines."""

from __future__ import annotations

import json

import pytest

from notevault.jobs import Done, Finished, Job, ProtocolError, Started, Task, decode, filename_of, frame, locate
from notevault.results import BlockResult

JOB = Job("n", (Task("a", "run", "x = 1", "/tmp", "cpu", 5.0), Task("b", "run", "y = 2", "/tmp", "cpu", 5.0)))
RESULT = BlockResult(id="", line=0, kind="run", status="passed", hash="", output="hi\n")


def payload(message: dict) -> bytes:
    return frame(message)[4:]


def test_well_formed_messages_are_read():
    assert decode(payload({"kind": "start", "task": 1, "device": "cpu"}), JOB) == Started(1, "cpu")
    assert decode(payload({"kind": "result", "task": 0, "result": RESULT.to_json()}), JOB) == Finished(0, RESULT)
    assert decode(payload({"kind": "done"}), JOB) == Done()


@pytest.mark.parametrize("bad", [
    b"\x00\xff garbage", b"[1, 2]", b'{"kind": "start"}', b'{"kind": "start", "task": 2, "device": "cpu"}',
    b'{"kind": "start", "task": true, "device": "cpu"}', b'{"kind": "what", "task": 0}',
    json.dumps({"kind": "result", "task": 0, "result": {**RESULT.to_json(), "status": "great"}}).encode(),
    json.dumps({"kind": "result", "task": 0, "result": {**RESULT.to_json(), "line": "12"}}).encode(),
    json.dumps({"kind": "result", "task": 0, "result": {**RESULT.to_json(), "figures": ["not base64!"]}}).encode(),
    json.dumps({"kind": "result", "task": 0, "result": {**RESULT.to_json(), "evil": 1}}).encode(),
])
def test_anything_else_is_a_protocol_error_never_a_crash(bad):
    with pytest.raises(ProtocolError):
        decode(bad, JOB)


def test_placeholders_become_the_notes_path_and_lines():
    where = {0: ("notes/a.md", 10), 1: ("notes/b.md", 40)}.get
    text = (f'  File "{filename_of(0)}", line 2, in <module>\n'
            f"{filename_of(1)}:3: UserWarning: careful\n"
            f"SyntaxError: '(' was never closed ({filename_of(0)}, line 4)")
    assert locate(text, where) == ('  File "notes/a.md", line 12, in <module>\n'
                                   "notes/b.md:43: UserWarning: careful\n"
                                   "SyntaxError: '(' was never closed (notes/a.md, line 14)")
    assert locate(None, where) is None and locate("plain", where) == "plain"
