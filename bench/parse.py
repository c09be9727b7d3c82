"""Parse throughput (MB/s) of notevault's Note parser against bare markdown-it-py with the same plugins.

    python bench/parse.py
"""

from __future__ import annotations

import gc
import sys
import time

from _common import REPO, SEEDS, emit

sys.path.insert(0, str(REPO))

from markdown_it import MarkdownIt  # noqa: E402
from mdit_py_plugins.dollarmath import dollarmath_plugin  # noqa: E402
from mdit_py_plugins.front_matter import front_matter_plugin  # noqa: E402

from notevault.note import parse_note  # noqa: E402


def bare() -> MarkdownIt:
    md = MarkdownIt("commonmark").enable("table")
    md.use(front_matter_plugin).use(dollarmath_plugin, allow_labels=False, double_inline=True)
    return md


def throughput(texts: list[str], parse, rounds: int = 7) -> float:
    size = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        for text in texts:
            parse(text)
        best = min(best, time.perf_counter() - start)
    return size / best


def generated_vault(notes: int = 1000) -> list[str]:
    seeds = [p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.md")) if p.stat().st_size < 100_000]
    texts = []
    for n in range(notes):
        base = seeds[n % len(seeds)]
        texts.append(f"# Generated {n}\n\n[[note{(n + 1) % notes}]] ![[img{n}.png]]\n\n" + base[: 4000 + (n % 7) * 500])
    return texts


def main() -> None:
    md = bare()
    rows = []
    seeds = [p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.md"))]
    for label, texts in (("seeds (5 notes, 429 KB)", seeds), ("generated vault (1,000 notes)", generated_vault())):
        theirs = throughput(texts, md.parse)  # alternate, so both see the same machine state
        ours = throughput(texts, parse_note)
        theirs = max(theirs, throughput(texts, md.parse))
        ours = max(ours, throughput(texts, parse_note))
        rows.append((label, f"notevault {ours:.2f} MB/s, bare markdown-it-py {theirs:.2f} MB/s, "
                            f"ratio {ours / theirs:.2f}×"))
    emit("parse throughput", rows)


if __name__ == "__main__":
    main()
