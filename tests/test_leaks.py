"""Notes share a warm worker only while none of them leaves a trace the next could see (real workers, --jobs 1)."""

from __future__ import annotations

import pytest
from conftest import make_vault

from notevault.engine import RunOptions, execute
from notevault.leaks import code_leaks
from notevault.vault import Vault

ONE_WORKER = RunOptions(write=False, jobs=1)


def fence(code: str) -> str:
    return f"```python run\n{code}\n```\n\n"


def outputs(root, options=ONE_WORKER) -> dict[str, str]:
    report = execute(Vault(root), [root], options)
    return {n.path.rsplit("/", 1)[-1]: "".join(b.output for b in n.blocks) for n in report.notes}


def test_clean_notes_share_a_worker_and_each_gets_a_fresh_namespace(tmp_path):
    root = make_vault(tmp_path, {
        "a.md": fence("import os\nx = 1\nprint(os.getpid())"),
        "b.md": fence("import os\nprint(os.getpid(), 'x' in globals())"),
    })
    seen = outputs(root)
    assert seen["b.md"] == f"{seen['a.md'].strip()} False\n"


def test_isolation_process_forks_a_worker_for_every_note(tmp_path):
    root = make_vault(tmp_path, {"a.md": fence("import os\nprint(os.getpid())"),
                                 "b.md": fence("import os\nprint(os.getpid())"),
                                 "notevault.yaml": "isolation: process\n"})
    seen = outputs(root)
    assert seen["a.md"] != seen["b.md"]


LEAKY = {
    "default dtype": ("torch.set_default_dtype(torch.float64)", "print(torch.get_default_dtype())",
                      "torch.float32\n"),
    "grad mode": ("torch.set_grad_enabled(False)", "print(torch.is_grad_enabled())", "True\n"),
    "module function": ("import torch.nn.functional as F\nF.relu = lambda t: t",
                        "print(torch.nn.functional.relu(torch.tensor([-1.0])))", "tensor([0.])\n"),
    "class attribute": ("def shout(self):\n    return 'hi'\nsetattr(torch.Tensor, 'shout', shout)",
                        "print(hasattr(torch.Tensor, 'shout'))", "False\n"),
    "builtin": ("import builtins\nbuiltins.answer = 42", "import builtins\nprint(hasattr(builtins, 'answer'))",
                "False\n"),
    "environment": ("import os\nos.environ['NV_LEAK'] = '1'", "import os\nprint(os.environ.get('NV_LEAK'))",
                    "None\n"),
    "print options": ("torch.set_printoptions(precision=1)", "print(torch.tensor([0.123456]))",
                      "tensor([0.1235])\n"),
    "snippet module state": ("import counter\ncounter.hits.append(1)", "import counter\nprint(len(counter.hits))",
                             "0\n"),
}


@pytest.mark.parametrize("name", LEAKY)
def test_what_a_note_changes_outside_its_namespace_does_not_reach_the_next_note(tmp_path, name):
    leak, probe, expected = LEAKY[name]
    root = make_vault(tmp_path, {"a.md": fence(leak), "b.md": fence(probe),
                                 "snippets/counter.py": "hits = []\n"})
    assert outputs(root)["b.md"] == expected


def test_a_worker_that_failed_a_block_is_not_reused(tmp_path):
    root = make_vault(tmp_path, {"a.md": fence("import os\nprint(os.getpid())\nraise ValueError"),
                                 "b.md": fence("import os\nprint(os.getpid())")})
    seen = outputs(root)
    assert seen["a.md"] != seen["b.md"]


@pytest.mark.parametrize(("code", "expected"), [
    ("x[0] = 1\nmodel.weight.data[0] = 0\nmodel.bias = None\nmodel.eval()", []),
    ("F.softmax = None", ["sets an attribute of F"]),
    ("torch.backends.cudnn.benchmark = True", ["sets an attribute of torch"]),
    ("Net.layers = 3", ["sets an attribute of Net"]),
    ("setattr(torch, 'x', 1)", ["calls setattr()"]),
    ("torch.nn.modules.module.register_module_forward_hook(print)", ["calls register_module_forward_hook()"]),
    ("exec('y = 1')", ["calls exec()"]),
    ("vars(torch)['x'] = 1", ["calls vars()"]),
])
def test_code_leaks_reads_what_a_block_does_to_objects_it_did_not_make(code, expected):
    import torch

    namespace = {"torch": torch, "F": torch.nn.functional, "Net": type("Net", (), {}), "x": torch.zeros(3),
                 "model": torch.nn.Linear(2, 2)}
    assert code_leaks(code, namespace) == expected
