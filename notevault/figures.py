"""Figure files: where a note's figures go, what they are called, how the note links them, and when one may go.

A figure's name is unique to its note and block (``<note>-<id>-<n>-<tag>.png``, the tag hashed from the note's
vault path, the block id and which block of that id it is), so two notes or two blocks never share a file. Each
PNG carries a ``notevault`` text chunk, notevault's signature for that file name: a file is deleted only when it
carries that signature and no result callout anywhere in the vault still embeds it, so the user's own images
(``architecture.png``, a pasted screenshot) are never touched.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import struct
import zlib
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from .files import write_atomic
from .vault import Vault

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_KEY = b"notevault"
UNSAFE = re.compile(r"[^\w.-]+")


def name_for(note_rel: str, block_id: str, occurrence: int, index: int) -> str:
    """The file name of figure ``index`` of the ``occurrence``-th block with this id in the note."""
    stem = UNSAFE.sub("-", PurePosixPath(note_rel).stem).strip(".-") or "note"
    block = UNSAFE.sub("-", block_id).strip(".-") or "block"
    tag = hashlib.sha256(f"{note_rel}\0{block_id}\0{occurrence}".encode()).hexdigest()[:6]
    return f"{stem}-{block}-{index + 1}-{tag}.png"


def _signature(name: str) -> bytes:
    return hashlib.sha256(f"notevault figure\0{name}".encode()).hexdigest()[:32].encode("ascii")


def sign(png: bytes, name: str) -> bytes:
    """The PNG with a ``notevault`` text chunk right after its header chunk."""
    if not png.startswith(PNG_SIGNATURE) or len(png) < 33:
        return png  # not a PNG we can sign: written, but never deleted
    data = TEXT_KEY + b"\0" + _signature(name)
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    header_end = 8 + 8 + 13 + 4  # signature, IHDR length+type, IHDR data, CRC
    return png[:header_end] + chunk + png[header_end:]


def signed(path: Path, name: str) -> bool:
    """Did notevault write this file under this name?"""
    try:
        with open(path, "rb") as handle:
            head = handle.read(256)
    except OSError:
        return False
    return head.startswith(PNG_SIGNATURE) and b"tEXt" + TEXT_KEY + b"\0" + _signature(name) in head


def attachment_dir(vault: Vault, note_rel: str) -> Path:
    """Where a note's figures go: the Obsidian attachment folder, or the vault root if that points outside."""
    folder = (vault.root / vault.attachment_folder(note_rel)).resolve()
    return folder if folder.is_relative_to(vault.real_root) else vault.real_root


def exists(vault: Vault, note_rel: str, name: str) -> bool:
    path = attachment_dir(vault, note_rel) / name
    if not vault.git:
        return path.is_file()
    return path.is_relative_to(vault.real_root) and vault.has_file(path.relative_to(vault.real_root).as_posix())


def link_style(vault: Vault) -> str:
    """How figures are linked, as it goes into every callout's hash."""
    settings = vault.settings
    if not settings.use_markdown_links:
        return "wiki"
    return f"markdown/{settings.new_link_format}/{settings.attachment_folder}"


def embed(vault: Vault, note_rel: str, name: str) -> str:
    """The embed line for a figure, as Obsidian would write a new link (useMarkdownLinks, newLinkFormat)."""
    settings = vault.settings
    if not settings.use_markdown_links:
        return f"![[{name}]]"
    if settings.new_link_format == "shortest":
        return f"![]({quote(name)})"  # names are unique in the vault: the name alone resolves
    folder = attachment_dir(vault, note_rel).relative_to(vault.real_root).as_posix()  # "." is the root
    if settings.new_link_format == "relative":
        folder = posixpath.relpath(folder, posixpath.dirname(note_rel) or ".")
    prefix = "" if folder == "." else folder + "/"
    return f"![]({quote(prefix + name)})"


def write(vault: Vault, note_rel: str, figures: dict[str, bytes]) -> None:
    folder = attachment_dir(vault, note_rel)
    for name, png in figures.items():
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / name, sign(png, name))


def remove_unused(vault: Vault, note_rel: str, names: list[str]) -> list[str]:
    """Delete the figures notevault wrote under these names that no note of the vault embeds any more."""
    folder = attachment_dir(vault, note_rel)
    candidates = [n for n in dict.fromkeys(names) if signed(folder / n, n)]
    if not candidates:
        return []
    still = _embedded_anywhere(vault, candidates)
    removed = []
    for name in candidates:
        if name not in still:
            (folder / name).unlink(missing_ok=True)
            removed.append(name)
    return removed


def _embedded_anywhere(vault: Vault, names: list[str]) -> set[str]:
    """Which of these names some note of the vault still mentions (as written, or percent-encoded)."""
    needles = {name: (name.encode("utf-8"), quote(name).encode("utf-8")) for name in names}
    found: set[str] = set()
    for folder, dirs, files in os.walk(vault.root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for file in files:
            if not file.endswith(".md"):
                continue
            try:
                data = Path(folder, file).read_bytes()
            except OSError:
                continue
            found.update(name for name, forms in needles.items() if name not in found and any(f in data for f in forms))
            if len(found) == len(names):
                return found
    return found
