"""Helpers shared by the benchmark scripts: generated vaults, timing, peak memory."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "tests" / "fixtures" / "seeds"
TEMPLATES = REPO / "tests" / "fixtures" / "templates"

SMALL_BLOCKS = [
    "x = torch.randn(64, 32)\nprint(x.mean().item())",
    "w = torch.nn.Linear(32, 16)\ny = w(x)\nprint(y.shape)",
    "bn = torch.nn.BatchNorm1d(16)\nz = bn(y)\nprint(z.std().item())",
    "opt = torch.optim.Adam(w.parameters(), lr=0.01)\nloss = z.pow(2).mean()\nloss.backward()\nopt.step()\n"
    "print(loss.item())",
    "p = torch.softmax(z, dim=-1)\nprint(p.sum(-1)[:3])",
]
HEAVY_BLOCK = ("model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))\n"
               "opt = torch.optim.SGD(model.parameters(), lr=0.01)\n"
               "data, target = torch.randn(256, 32), torch.randn(256, 1)\n"
               "for _ in range(200):\n    opt.zero_grad()\n"
               "    loss = torch.nn.functional.mse_loss(model(data), target)\n"
               "    loss.backward()\n    opt.step()\nprint(round(loss.item(), 4))")


def make_run_vault(root: Path, notes: int, *, heavy: bool = False) -> Path:
    if root.exists():
        shutil.rmtree(root)
    (root / ".obsidian").mkdir(parents=True)
    for n in range(notes):
        blocks = SMALL_BLOCKS + ([HEAVY_BLOCK] if heavy else [])
        body = f"# Note {n}\n\nSome prose about note {n}.\n\n"
        body += "\n\n".join(f"```python run\n{code}\n```" for code in blocks) + "\n"
        (root / f"note{n:03d}.md").write_text(body)
    return root


# A realistic vault ------------------------------------------------------------------------------------------------
# Notes shaped like ../shared/seeds: the study template filled in, Chinese and English prose, inline and display math
# with ^block-ids, callouts, wikilinks to other notes (#Heading and #^block too), pasted images, an untagged
# pseudo-code block, and tagged blocks that share state like notebook cells. Generation writes text directly (no
# torch, no notevault), so 10,000 notes take seconds.

GENERATOR = "realistic-1"  # change when the generated text changes: vaults kept by bench/scale.py --keep are remade
STUDY_TEMPLATE = TEMPLATES / "AI 学习记录模板.md"
AREAS = ("01 基础 Foundations", "02 优化 Optimization", "03 架构 Architectures", "04 训练 Training")
TOPICS = (  # (Chinese, English, tag, area)
    ("批归一化", "Batch Normalization", "batchnorm", 0),
    ("层归一化", "Layer Normalization", "layernorm", 0),
    ("Softmax 与交叉熵", "Softmax and Cross-Entropy", "softmax", 0),
    ("范数与正则化", "Norms and Regularization", "regularization", 0),
    ("Adam 优化器", "Adam Optimizer", "adam", 1),
    ("学习率调度", "Learning Rate Schedules", "lr-schedule", 1),
    ("梯度消失", "Vanishing Gradients", "gradients", 1),
    ("注意力机制", "Attention", "attention", 2),
    ("残差连接", "Residual Connections", "resnet", 2),
    ("卷积", "Convolution", "cnn", 2),
    ("Dropout 正则", "Dropout", "dropout", 3),
    ("权重初始化", "Weight Initialization", "init", 3),
)
ZH_SENTENCES = (
    "{zh}的第一性原理是把问题还原成最基本的数学构件：向量空间、优化目标和概率模型。",
    "训练时使用当前 Batch 的统计量 $\\mu_B, \\sigma_B$，推理时使用全局滑动平均，这就是分布偏移的根源。",
    "从公理出发推演，而不是把公式当成答案：先问它解决了什么痛点，再问它为什么有效。",
    "激活函数进入**饱和区**以后梯度接近 0，深层网络的前几层几乎学不到东西。",
    "把 $x$ 减去均值再除以标准差，相当于把每个特征拉回到同一个尺度上。",
    "可学习参数 $\\gamma, \\beta$ 用来恢复网络的表达能力，防止归一化破坏特征的分布。",
    "注意力的本质是一次加权求和：权重由 $QK^T$ 的相似度经过 softmax 得到。",
    "优化器的一步更新可以写成 "
    "$\\theta_{{t+1}} = \\theta_t - \\eta \\hat{{m}}_t / (\\sqrt{{\\hat{{v}}_t}} + \\epsilon)$。",
    "矩阵乘法的每个元素都是一行与一列的内积，`torch.einsum` 能把这一点写得很清楚。",
    "这里容易误会：{zh}并不是万能的，Batch size 很小时统计量的方差会很大。",
    "==核心结论==：先理解机制，再记住公式，最后才是调参经验。",
    "在 MIL 和 CV pipeline 中，{zh}通常出现在特征提取之后、分类头之前。",
    "如果把 $\\epsilon$ 设得太小，分母接近 0 时会出现数值不稳定。",
    "用一句话总结：{zh}让每一层看到的输入分布更稳定，从而允许更大的学习率。",
    "这个问题暂时放进停放区，等读完原论文再回来补充推导过程。",
)
EN_SENTENCES = (
    "{en} is easiest to understand from first principles: what is being normalized, and over which axis?",
    "During training the statistics come from the current mini-batch; at inference time they come from running "
    "averages, and the gap between the two is where most bugs hide.",
    "The softmax turns arbitrary scores into a probability distribution, so every row sums to one.",
    "A single optimizer step moves the parameters against the gradient, scaled by the learning rate $\\eta$.",
    "Scaled dot-product attention divides by $\\sqrt{{d_k}}$ so that the logits do not grow with the dimension.",
    "Think of the matmul $C = AB$ as a batch of inner products between rows of $A$ and columns of $B$.",
    "The learnable scale and shift let the network undo the normalization when that helps the loss.",
    "Remember that `model.eval()` switches BatchNorm to its running statistics.",
    "In practice {en} interacts with weight decay, warm-up and the batch size, so change one thing at a time.",
    "The derivation below keeps every step explicit, so that a future me can check it line by line.",
    "Key intuition: the gradient flows through the normalization too, not around it.",
    "See the original paper for the full argument; the short version is in the summary at the end.",
)
DISPLAY_MATH = (  # (LaTeX, block id)
    ("\\hat{x} = \\frac{x - \\mu_B}{\\sqrt{\\sigma_B^2 + \\epsilon}}", "bn-norm"),
    ("y = \\gamma \\hat{x} + \\beta", "bn-affine"),
    ("\\mathrm{softmax}(z)_i = \\frac{e^{z_i}}{\\sum_j e^{z_j}}", "softmax"),
    ("\\theta_{t+1} = \\theta_t - \\eta \\frac{\\hat{m}_t}{\\sqrt{\\hat{v}_t} + \\epsilon}", "adam-update"),
    ("\\mathrm{Attention}(Q, K, V) = \\mathrm{softmax}\\left(\\frac{QK^T}{\\sqrt{d_k}}\\right)V", "attention"),
)
CALLOUTS = (("note", ""), ("tip", "-"), ("warning", ""), ("example", "+"), ("abstract", ""), ("question", "-"),
            ("summary", ""), ("danger", ""))
PSEUDO_CODE = """```python
# 伪代码 (pseudo-code): BatchNorm forward during training
for batch in loader:
    mu_B = mean(batch, axis=0)
    var_B = mean((batch - mu_B) ** 2, axis=0)
    x_hat = (batch - mu_B) / sqrt(var_B + eps)
    y = gamma * x_hat + beta
    running_mean = momentum * running_mean + (1 - momentum) * mu_B
```"""
# The five cells of a note, with torch (the run benches) or in plain python (the scale bench: priming 50,000 blocks
# should cost notevault's own overhead, not torch's work). Each cell uses what the cells above it defined.
TORCH_CELLS = (
    """import torch.nn.functional as F
torch.manual_seed({seed})
x = torch.randn({batch}, {features}) * {scale} + {shift}
bn = torch.nn.BatchNorm1d({features}, eps={eps})
h = bn(x)
print(f"mean {{h.mean().item():+.4f}}  std {{h.std(unbiased=False).item():.4f}}")""",
    """W_out = torch.randn({features}, {classes}) / {features} ** 0.5
logits = h @ W_out
p = torch.softmax(logits, dim=-1)
print(p.sum(-1)[:4], p.argmax(-1)[:8].tolist())""",
    """head = torch.nn.Linear({features}, {classes})
opt = torch.optim.{optimizer}(head.parameters(), lr={lr})
target = torch.randint(0, {classes}, ({batch},))
opt.zero_grad()
loss = F.cross_entropy(head(h.detach()), target)
loss.backward()
opt.step()
print("loss", round(loss.item(), 4))""",
    """A = torch.randn({rows}, {features})
C = A @ W_out
manual = (A.unsqueeze(-1) * W_out.unsqueeze(0)).sum(1)
print(C.shape, torch.allclose(C, manual, atol=1e-5))""",
    """d_k = {d_k}
seq = h[:{seq}]
W_q, W_k, W_v = (torch.randn({features}, d_k) / {features} ** 0.5 for _ in range(3))
Q, K, V = seq @ W_q, seq @ W_k, seq @ W_v
attn = torch.softmax(Q @ K.T / d_k ** 0.5, dim=-1)
out = attn @ V
print(out.shape, bool(attn.sum(-1).allclose(torch.ones({seq}))))""",
)
PYTHON_CELLS = (
    """import math
import random
rng = random.Random({seed})
x = [[rng.gauss({shift}, {scale}) for _ in range(4)] for _ in range(4)]
mu = [sum(col) / 4 for col in zip(*x)]
h = [[v - m for v, m in zip(row, mu)] for row in x]
print("mean", round(sum(map(sum, h)) / 16, 6))""",
    """row = h[0]
top = max(row)
p = [math.exp(v - top) for v in row]
p = [v / sum(p) for v in p]
print("softmax", round(sum(p), 6))""",
    """w = [0.5, -0.25, 0.125, 1.0]
grad = [2 * v for v in w]
w = [v - {lr} * g for v, g in zip(w, grad)]
print("step", [round(v, 4) for v in w])""",
    """C = [[sum(a * b for a, b in zip(r, c)) for c in zip(*h)] for r in h]
print("matmul", len(C), len(C[0]))""",
    """scores = [sum(a * b for a, b in zip(h[0], r)) / 2 for r in h]
weights = [math.exp(s - max(scores)) for s in scores]
out = sum(wt * r[0] for wt, r in zip(weights, h)) / sum(weights)
print("attention", round(out, 4))""",
)
CELL_SECTIONS = (4, 4, 5, 7, 8)  # the template section each of the five cells goes into
OPTIMIZERS = ("SGD", "Adam", "AdamW", "RMSprop")


def _tiny_png() -> bytes:
    """A valid 1×1 grey PNG: pasted images must exist for lint, their content does not matter."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(
        b"IEND", b"")


def _template_sections() -> list[tuple[str, list[str]]]:
    """The study template's ``##`` sections: (title, their lines), read from the fixture the lint bench uses."""
    sections: list[tuple[str, list[str]]] = []
    for line in STUDY_TEMPLATE.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            sections.append((line[3:], []))
        elif sections:
            sections[-1][1].append(line)
    return sections


def realistic_note_name(n: int) -> str:
    """``01 基础 Foundations/00042 批归一化 Batch Normalization`` (vault-relative, without ``.md``)."""
    zh, en, _, area = TOPICS[n % len(TOPICS)]
    return f"{AREAS[area]}/{n:05d} {zh} {en}"


def _prose(rng: random.Random, zh: str, en: str, sentences: int = 2) -> str:
    chinese = " ".join(rng.choice(ZH_SENTENCES) for _ in range(sentences)).format(zh=zh, en=en)
    english = " ".join(rng.choice(EN_SENTENCES) for _ in range(max(1, sentences - 1))).format(zh=zh, en=en)
    return chinese + "\n\n" + english if rng.random() < 0.7 else english + "\n" + chinese


def _callout(rng: random.Random, zh: str, en: str) -> str:
    kind, fold = rng.choice(CALLOUTS)
    body = _prose(rng, zh, en, 2).replace("\n\n", "\n").split("\n")
    return "\n".join([f"> [!{kind}]{fold} {zh}：要点 ({en})", *(f"> {line}" for line in body)])


def _display_math(index: int) -> str:
    latex, block_id = DISPLAY_MATH[index]
    return f"$$\n{latex}\n$$\n^{block_id}"


def _cell_values(rng: random.Random, n: int, seed: int) -> dict:
    batch = rng.choice((16, 24, 32))
    return {"seed": seed * 100_003 + n, "batch": batch, "features": rng.choice((8, 12, 16)),
            "classes": rng.choice((3, 5, 10)), "scale": rng.choice((0.5, 2, 3)), "shift": rng.choice((-1, 0, 5)),
            "eps": rng.choice(("1e-5", "1e-3")), "optimizer": rng.choice(OPTIMIZERS),
            "lr": rng.choice((0.1, 0.01, 0.001)), "rows": rng.choice((4, 6, 8)), "d_k": rng.choice((4, 8)),
            "seq": rng.choice((4, 6, 8))}


def realistic_cells(n: int, *, blocks: int = 5, seed: int = 0, cheap: bool = False) -> list[str]:
    """The code of note ``n``'s tagged blocks, in order (what the floor executes for that note)."""
    rng = random.Random(f"cells:{seed}:{n}")
    values = _cell_values(rng, n, seed)
    cells = PYTHON_CELLS if cheap else TORCH_CELLS
    return [cells[k % len(cells)].format(**values) for k in range(blocks)]


def _links(rng: random.Random, n: int, notes: int) -> list[str]:
    """Wikilinks to other generated notes: plain, with an alias, to a heading, to a ^block-id."""
    if notes < 2:
        return []
    others = [m for m in (rng.randrange(notes) for _ in range(4)) if m != n] or [(n + 1) % notes]
    name = [realistic_note_name(m).split("/", 1)[1] for m in others]
    heading = rng.choice(("4. 数学与公式推导（Math & Derivation）", "9. 潜在的陷阱与误区（Pitfalls）"))
    links = [f"[[{name[0]}]]", f"[[{name[-1]}#{heading}]]", f"[[{name[0]}#^{rng.choice(DISPLAY_MATH)[1]}]]"]
    if len(name) > 2:
        links.append(f"[[{name[1]}|{TOPICS[others[1] % len(TOPICS)][1]}]]")
    return links


def realistic_note(n: int, notes: int, *, blocks: int = 5, seed: int = 0, cheap: bool = False) -> str:
    """The text of generated note ``n`` of a vault of ``notes``.

    Deliberate lint findings, as in a real vault: every 50th note (n % 50 == 7) links a note not written yet
    (broken-link error), n % 50 == 23 leaves "11. 停放区" as the template wrote it (unfilled-section warning), and
    n % 100 == 42 embeds a remote image (remote-link info). Everything else lints clean.
    """
    rng = random.Random(f"note:{seed}:{n}")
    zh, en, tag, _ = TOPICS[n % len(TOPICS)]
    stem = f"{n:05d}"
    cells = realistic_cells(n, blocks=blocks, seed=seed, cheap=cheap)
    extra: dict[int, list[str]] = {i: [] for i in range(13)}
    extra[0] += [_prose(rng, zh, en, 2)]
    extra[1] += [_prose(rng, zh, en), _display_math(0), _display_math(1)]
    extra[2] += [_prose(rng, zh, en), "相关笔记 (related): " + " · ".join(_links(rng, n, notes))]
    extra[3] += [_prose(rng, zh, en), PSEUDO_CODE, _callout(rng, zh, en)]
    extra[4] += [_display_math(2), _prose(rng, zh, en, 2), _display_math(3)]
    extra[5] += [_prose(rng, zh, en), _callout(rng, zh, en)]
    extra[6] += [_prose(rng, zh, en, 2), "对比 (compare): " + " · ".join(_links(rng, n, notes))]
    extra[8] += [_display_math(4), _prose(rng, zh, en, 2)]
    extra[9] += [_callout(rng, zh, en), _prose(rng, zh, en)]
    extra[10] += [f"![[{stem}-mechanism.png]]", f"![机制图 mechanism](../images/{stem}-mechanism.png)"]
    extra[12] += [_prose(rng, zh, en), _callout(rng, zh, en)]
    for k, code in enumerate(cells):
        section = CELL_SECTIONS[k % len(CELL_SECTIONS)]
        extra[section] += [_prose(rng, zh, en, 1), f"```python run\n{code}\n```"]
    if n % 50 == 7:
        extra[6].append(f"下一步 (to write): [[待整理 {zh} 的变体 {stem}]]")
    if n % 100 == 42:
        extra[10].append("![remote](https://i.imgur.com/KzG5ebY.png)")
    month, day = 1 + n % 12, 1 + n % 28
    parts = [f"---\ntags: [学习笔记, deep-learning, {tag}]\ndate: 2025-{month:02d}-{day:02d}\n"
             f"aliases: [\"{en} {n}\", \"{zh}笔记 {n}\"]\n---",
             f"# AI 学习记录：{zh}（{en}）· {n}"]
    for number, (title, lines) in enumerate(_template_sections()):
        unfilled = n % 50 == 23 and number == 11
        filled = [line if unfilled else _fill_field(line, rng, zh, en) for line in lines]
        body = "\n".join(line for line in filled if line != "---").strip()  # we add the rules ourselves
        content = [] if unfilled else extra[number]
        parts.append("\n\n".join([f"## {title}", body, *content]) + "\n\n---")
    return "\n\n".join(parts) + "\n"


FIELD = re.compile(r"^\* (?P<label>[^：]+)：$")


def _fill_field(line: str, rng: random.Random, zh: str, en: str) -> str:
    """``* 背景：`` → ``* 背景：`` and a sentence, as a user fills the template in."""
    if FIELD.match(line):
        return f"{line}{rng.choice(ZH_SENTENCES).format(zh=zh, en=en)}"
    return line


def make_realistic_vault(root: Path, notes: int, *, blocks: int = 5, seed: int = 0, cheap: bool = False) -> Path:
    """A vault of ``notes`` notes like ../shared/seeds, each with ``blocks`` tagged blocks sharing state.

    Deterministic for a given ``seed``. ``cheap`` writes the blocks in plain python (no torch work), for the
    scale bench. Layout: ``.obsidian/`` (attachments in ``images/``, templates in ``Templates/``), the study
    template, one folder per area, one pasted PNG per note in ``images/``.
    """
    if root.exists():
        shutil.rmtree(root)
    (root / ".obsidian").mkdir(parents=True)
    (root / ".obsidian" / "app.json").write_text('{"attachmentFolderPath": "images"}')
    (root / ".obsidian" / "templates.json").write_text('{"folder": "Templates"}')
    (root / "Templates").mkdir()
    shutil.copy(STUDY_TEMPLATE, root / "Templates" / STUDY_TEMPLATE.name)
    for area in AREAS:
        (root / area).mkdir()
    (root / "images").mkdir()
    png = _tiny_png()
    for n in range(notes):
        text = realistic_note(n, notes, blocks=blocks, seed=seed, cheap=cheap)
        (root / f"{realistic_note_name(n)}.md").write_text(text, encoding="utf-8")
        (root / "images" / f"{n:05d}-mechanism.png").write_bytes(png)
    return root


def make_big_note(path: Path, blocks: int) -> Path:
    """One note with ``blocks`` tagged blocks and no ``id=`` (the planning case of issue 14), in plain python.

    Makes ``path.parent`` a vault root (with ``.obsidian/``) when it is not inside one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not any((folder / ".obsidian").is_dir() for folder in (path.parent, *path.parent.parents)):
        (path.parent / ".obsidian").mkdir()
    parts = ["---\ntags: [stress, 学习笔记]\n---", f"# {blocks} 个小块：累加 (a running sum, {blocks} cells)",
             "```python run\nacc = 0\nprint(acc)\n```"]
    for k in range(1, blocks):
        if k % 100 == 0:
            parts.append(f"## 第 {k // 100} 部分 (part {k // 100})")
        parts.append(f"第 {k} 步 (step {k})：把 $k = {k}$ 加到 `acc` 上。")
        parts.append(f"```python run\nacc += {k}\nprint(acc)\n```")
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return path


TAGGED_FENCE = re.compile(r"^```python run[^\n]*\n(.*?)\n```$", re.S | re.M)


def tagged_blocks(text: str) -> list[str]:
    """The code of the tagged blocks of a generated note (they are well-formed: no notevault parser needed)."""
    return TAGGED_FENCE.findall(text)


# The floor: one python process that imports torch once and exec()s every block, a fresh namespace per note (no
# isolation, no capture, no write-back). Its argument is a JSON file: a list of paths of JSON lists of block code.
FLOOR = r"""
import sys, json, torch
for path in json.load(open(sys.argv[1])):
    namespace = {"torch": torch}
    for code in json.load(open(path)):
        exec(compile(code, path, "exec"), namespace)
"""


def write_floor(work: Path, notes: list[list[str]]) -> tuple[Path, Path]:
    """The floor script and its argument for ``notes`` (each a list of block code), written under ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    files = []
    for n, blocks in enumerate(notes):
        target = work / f"note{n:05d}.json"
        target.write_text(json.dumps(blocks))
        files.append(str(target))
    (work / "all.json").write_text(json.dumps(files))
    (work / "floor.py").write_text(FLOOR)
    return work / "floor.py", work / "all.json"


def blocks_of(path: Path) -> list[str]:
    """The code of a note's tagged blocks (what the floor and the peers execute)."""
    sys.path.insert(0, str(REPO))
    from notevault.note import read_note

    return [b.code for b in read_note(path).blocks]


def _tree_rss(root: int) -> list[int]:
    """RSS (kB) of ``root`` and every process below it, read from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    sizes = []
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]))
        except OSError:
            continue
    return sizes


def timed(command: list[str], *, cwd: Path | None = None, env: dict | None = None) -> tuple[float, float]:
    """Wall seconds, and the peak RSS (MB) of the largest single process in the command's process tree."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while process.poll() is None:
        peak = max([peak, *_tree_rss(process.pid)])
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    return seconds, peak / 1024


# Whole-process-tree usage ---------------------------------------------------------------------------------------
# The command runs inside a small python launcher (the same interpreter, as `python -m notevault` would), which at
# exit writes getrusage() of itself (the CLI process) and of everything below it that ended. With ``reap``, the
# launcher is a child subreaper, so workers orphaned when their template exits are reaped by it and counted too.

LAUNCHER = r"""
import atexit, json, os, resource, runpy, sys
out, reap, kind, target = sys.argv[1:5]
sys.argv = [target, *sys.argv[5:]]

def report():
    if reap == "1":
        while True:
            try:
                os.wait()
            except ChildProcessError:
                break
    own, below = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    fields = {"cpu": own.ru_utime + own.ru_stime, "below_cpu": below.ru_utime + below.ru_stime,
              "faults": own.ru_minflt, "below_faults": below.ru_minflt,
              "peak_kb": own.ru_maxrss, "below_peak_kb": below.ru_maxrss}
    with open(out, "w") as handle:
        json.dump(fields, handle)

atexit.register(report)  # registered first, so it runs last: after notevault's own exit handlers
if reap == "1":
    import ctypes
    ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
if kind == "module":
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    runpy.run_path(target, run_name="__main__")
"""


@dataclass(frozen=True)
class Usage:
    """What one command cost: wall time from outside, CPU, minor page faults and peak RSS from getrusage()."""

    seconds: float  # wall, interpreter start-up included; the time limit when it was killed
    returncode: int | None  # None: killed at the time limit
    cpu: float = 0.0  # user + system seconds of the command's own process
    below_cpu: float = 0.0  # of every process below it that ended (template, workers)
    faults: int = 0  # minor page faults of the command's own process
    below_faults: int = 0
    peak_mb: float = 0.0  # peak RSS of the command's own process
    below_peak_mb: float = 0.0  # the largest of the processes below it

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    @property
    def tree_cpu(self) -> float:
        return self.cpu + self.below_cpu

    @property
    def tree_faults(self) -> int:
        return self.faults + self.below_faults


def usage_of(target: str, args: list[str], *, timeout: float, module: bool = True, reap: bool = False,
             cwd: Path | None = None, env: dict | None = None, on_line=None) -> Usage:
    """Run ``python -m target args`` (or the script ``target``) and measure it; kill it after ``timeout`` s.

    ``on_line`` is called with each line the command writes to stderr (progress); otherwise output is dropped.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "usage.json"
        command = [sys.executable, "-c", LAUNCHER, str(out), "1" if reap else "0", "module" if module else "path",
                   target, *args]
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, start_new_session=True,
                                   stderr=subprocess.PIPE if on_line else subprocess.DEVNULL, text=bool(on_line))
        reader = _follow(process.stderr, on_line) if on_line else None
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(process)
            returncode = None
        finally:
            if reader:
                reader.join(timeout=5)
        seconds = time.perf_counter() - start if returncode is not None else timeout
        if not out.exists():
            return Usage(seconds, returncode)
        fields = json.loads(out.read_text())
    return Usage(seconds, returncode, fields["cpu"], fields["below_cpu"], fields["faults"], fields["below_faults"],
                 fields["peak_kb"] / 1024, fields["below_peak_kb"] / 1024)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM first: notevault stops like on Ctrl-C and the launcher still reports what was used so far (peak
    memory of a killed 10,000-note run is a figure too); then SIGKILL to the launcher's group, template included."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def notevault(*args: str, timeout: float, reap: bool = False, on_line=None) -> Usage:
    """``python -m notevault ARGS…``, measured as a user runs it."""
    return usage_of("notevault", list(args), timeout=timeout, reap=reap, on_line=on_line)


def _follow(stream, on_line) -> threading.Thread:
    def read() -> None:
        for line in stream:
            on_line(line)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def median_of(runs: int, measure) -> tuple[float, float]:
    results = [measure() for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def in_rounds(runs: int, **measures) -> dict[str, list]:
    """Every result of each measure, taken in rounds (A B C, A B C, …): result ``i`` of each is from round ``i``.

    This machine drifts by ±20% over minutes; measuring in rounds keeps the drift out of the ratios.
    """
    samples: dict[str, list] = {name: [] for name in measures}
    for _ in range(runs):
        for name, measure in measures.items():
            samples[name].append(measure())
    return samples


def interleaved(runs: int, **measures) -> dict[str, tuple[float, float]]:
    """Median seconds and peak MB of each measure (returning (seconds, MB)), taken in rounds (see in_rounds)."""
    return {name: (statistics.median(s for s, _ in results), max(mb for _, mb in results))
            for name, results in in_rounds(runs, **measures).items()}


def emit(name: str, rows: list[tuple[str, str]]) -> None:
    """Print a figure table, and leave it as JSON for bench/all."""
    print(f"\n## {name}")
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    out = os.environ.get("NOTEVAULT_BENCH_JSON")
    if out:
        with open(out, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"name": name, "rows": rows}, ensure_ascii=False) + "\n")
