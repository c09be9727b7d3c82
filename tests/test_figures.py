"""Figure files: unique names, a signature only notevault's own files carry, deletion only when unused."""

from __future__ import annotations

import zlib

from conftest import make_vault

from notevault import figures
from notevault.vault import Vault

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + bytes(13) + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00IEND"


def test_names_differ_by_note_path_block_id_occurrence_and_index():
    names = {figures.name_for("a/Loss.md", "plot", 1, 0), figures.name_for("b/Loss.md", "plot", 1, 0),
             figures.name_for("Loss curve.md", "plot", 1, 0), figures.name_for("Loss-curve.md", "plot", 1, 0),
             figures.name_for("a/Loss.md", "plot", 2, 0), figures.name_for("a/Loss.md", "plot", 1, 1)}
    assert len(names) == 6
    assert figures.name_for("a/Loss.md", "../..", 1, 0).startswith("Loss-block-1-")  # nothing escapes the folder


def test_a_signed_png_is_still_a_valid_png_and_names_its_file():
    signed = figures.sign(PNG, "n-plot-1-abc123.png")
    length = int.from_bytes(signed[33:37], "big")
    chunk_type, data = signed[37:41], signed[41:41 + length]
    crc = int.from_bytes(signed[41 + length:45 + length], "big")
    assert chunk_type == b"tEXt" and data.startswith(b"notevault\x00") and crc == zlib.crc32(chunk_type + data)
    assert signed[:33] == PNG[:33] and signed[45 + length:] == PNG[33:]


def test_only_signed_unused_files_are_removed(tmp_path):
    root = make_vault(tmp_path, {"n.md": "no embeds\n", "other.md": "![[kept.png]]\n"})
    vault = Vault(root)
    figures.write(vault, "n.md", {"gone.png": PNG, "kept.png": PNG})
    (root / "mine.png").write_bytes(PNG)  # the user's: same bytes, no signature
    (root / "renamed.png").write_bytes((root / "gone.png").read_bytes())  # signed for another name
    removed = figures.remove_unused(vault, "n.md", ["gone.png", "kept.png", "mine.png", "renamed.png"])
    assert removed == ["gone.png"]
    assert sorted(p.name for p in root.glob("*.png")) == ["kept.png", "mine.png", "renamed.png"]
