"""What a run is asked to do, and the facts about this machine that shape its answers."""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from functools import lru_cache

from . import __version__


@dataclass(frozen=True)
class RunOptions:
    device: str | None = None  # --device: overrides the vault default, not a block's own device=
    jobs: int | None = None
    timeout: float | None = None
    force: bool = False  # ignore the cache and the results stored in notes
    write: bool = True  # run writes results back; check does not
    lint: bool = False  # check also lints
    frozen: bool = False  # check --frozen: run nothing, compare stored results with the blocks
    remember: bool = True  # keep results in .notevault/ (pytest --notevault leaves the vault as it was)


@lru_cache(maxsize=1)
def versions() -> str:
    from importlib import metadata

    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "none"
    return f"torch={torch_version} notevault={code_version()} python={sys.version_info[:2]}"


@lru_cache(maxsize=1)
def code_version() -> str:
    """notevault's version and the state of its source files: what the index and the cache remember was worked
    out by this code (a development checkout changes its code, not its version)."""
    files = sorted(os.scandir(os.path.dirname(__file__)), key=lambda entry: entry.name)
    states = [f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files if f.name.endswith(".py")]
    return f"{__version__}+{sha(*states)[:12]}"


def cuda_present() -> bool:
    """A cheap guess, without importing torch, that goes into cache keys of blocks that may use CUDA."""
    return os.path.exists("/dev/nvidiactl") and "+cpu" not in versions()


def sha(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


