"""Imported once by the worker template (the forkserver) so each forked note starts with torch warm.

FINDINGS: import torch, torch.optim and torch._dynamo before forking (the first optimizer imports dynamo,
≈1 s), and warm up with ONE thread: a multi-threaded op before fork can deadlock children in libgomp.
Nothing here may touch CUDA (a forked child could not use it).
"""

import gc
import os

os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402
import torch._dynamo  # noqa: E402, F401
import torch.optim  # noqa: E402

try:  # numpy is optional for torch, but notes use it and seeding wants it
    import numpy  # noqa: F401
except ImportError:  # pragma: no cover
    pass

# multiprocessing prepares each forked worker like a spawned one: it runs the `notevault` script again as
# __mp_main__. With the CLI (and rich) imported here once, that re-run costs microseconds, not ≈50 ms a note.
from notevault import cli, formula, worker  # noqa: E402, F401

torch.set_num_threads(1)
_x = torch.randn(8, 4, requires_grad=True)
_opt = torch.optim.Adam([_x], lr=0.1)
torch.nn.functional.batch_norm(_x, None, None, training=True).sum().backward()
_opt.step()
del _x, _opt

# Everything imported so far lives as long as the template: keep the garbage collector away from it, so forked
# workers do not copy those pages just by collecting (copy-on-write faults are most of a fork's cost).
gc.freeze()
