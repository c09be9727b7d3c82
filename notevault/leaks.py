"""What a note left behind outside its own namespace: may the worker that ran it run another note?

Forking a fresh worker for every note isolates notes completely, but costs ≈30 ms of CPU a note (fork, exit and
copy-on-write faults of a 300 MB process): more than the blocks themselves. So a worker runs note after note, each
in a fresh namespace, for as long as no note changed state that the next one could see. A note leaks when it:

- imports a package the worker did not have, its own or a third party's (the module-level state would be shared;
  the standard library and more of an already loaded package, such as torch's lazily imported parts, are fine),
  leaves a thread or an alarm running, starts a process (it may outlive the note), or loads native code through
  ctypes;
- changes a process-wide setting: torch's default dtype or device, grad mode, threads, determinism, print options
  and backend flags; numpy's error handling and print options; the environment, sys.path, signal handlers,
  warning filters, logging, the recursion limit, a trace or profile function;
- rebinds an attribute of a module or class that is not its own: found in the code (``F.softmax = …``,
  ``setattr``, ``vars(…)[…] =``) and while it runs (an audit hook sees every class attribute set);
- calls an API that registers something process-wide (global module hooks, custom operators, KL rules).

A leak (or a failed block) retires the worker; the next note gets a freshly forked one. ``isolation: process`` in
notevault.yaml forks a fresh worker for every note instead.
"""

from __future__ import annotations

import ast
import logging
import os
import signal
import sys
import threading
import warnings
from types import ModuleType

# Modules whose attributes notes most often reach for; their bindings are compared after each note.
WATCHED_MODULES = ("builtins", "math", "random", "torch", "torch.nn", "torch.nn.functional", "torch.optim",
                   "torch.autograd", "numpy")
PROCESS_EVENTS = {"os.fork", "os.forkpty", "os.system", "os.posix_spawn", "os.spawn", "os.exec", "subprocess.Popen",
                  "os.startfile", "pty.spawn"}
SIGNALS = ("SIGINT", "SIGTERM", "SIGALRM", "SIGCHLD", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGPIPE")
# Calls that change process-wide state no getter shows, by the called attribute's or function's name.
GLOBAL_CALLS = {
    "register_module_forward_hook", "register_module_forward_pre_hook", "register_module_backward_hook",
    "register_module_full_backward_hook", "register_module_full_backward_pre_hook",
    "register_module_buffer_registration_hook", "register_module_module_registration_hook",
    "register_module_parameter_registration_hook", "register_kl", "register_pytree_node", "custom_op",
    "Library", "set_flush_denormal", "add_safe_globals", "settrace", "setprofile", "addaudithook",
    "setswitchinterval", "set_int_max_str_digits",
}
# Builtins that reach past the namespace (only as plain calls: ``model.eval()`` is not ``eval()``).
BUILTIN_CALLS = {"setattr", "delattr", "globals", "exec", "eval", "vars", "__import__"}
PLAIN_CALLS = BUILTIN_CALLS | GLOBAL_CALLS


def settings() -> dict[str, object]:
    """Process-wide settings a note can change through an API, each read through its getter."""
    torch = sys.modules["torch"]
    values: dict[str, object] = {
        "torch default dtype": torch.get_default_dtype(),
        "torch grad mode": torch.is_grad_enabled(),
        "torch inference mode": torch.is_inference_mode_enabled(),
        "torch threads": torch.get_num_threads(),
        "torch interop threads": torch.get_num_interop_threads(),
        "torch deterministic algorithms": (torch.are_deterministic_algorithms_enabled(),
                                           torch.is_deterministic_algorithms_warn_only_enabled()),
        "torch anomaly detection": torch.is_anomaly_enabled(),
        "torch float32 matmul precision": torch.get_float32_matmul_precision(),
        "torch warn always": torch.is_warn_always_enabled(),
        "torch print options": dict(vars(torch._tensor_str.PRINT_OPTS)),
        "torch cudnn flags": (torch.backends.cudnn.enabled, torch.backends.cudnn.benchmark,
                              torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32),
        "environment": dict(os.environ),
        "sys.path": list(sys.path),
        "recursion limit": sys.getrecursionlimit(),
        "trace or profile function": (sys.gettrace(), sys.getprofile()),
        "signal handlers": [signal.getsignal(getattr(signal, name)) for name in SIGNALS if hasattr(signal, name)],
        "alarm": signal.getitimer(signal.ITIMER_REAL),
        "warning filters": list(warnings.filters),
        "logging": (logging.root.level, list(logging.root.handlers), logging.root.manager.disable),
    }
    if hasattr(torch, "get_default_device"):
        values["torch default device"] = torch.get_default_device()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        values["numpy error handling"] = numpy.geterr()
        values["numpy print options"] = numpy.get_printoptions()
    return values


def code_leaks(code: str, namespace: dict) -> list[str]:
    """What a block's source shows it doing to objects it did not make (a conservative reading).

    ``namespace`` is the note's namespace after its last block: an attribute set on a name bound there to a
    module or a class (``F.softmax = …``, ``torch.Tensor.show = …``) reaches past the note.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id in PLAIN_CALLS:
                found.append(f"calls {node.func.id}()")
            elif isinstance(node.func, ast.Attribute) and node.func.attr in GLOBAL_CALLS:
                found.append(f"calls {node.func.attr}()")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                root = _attribute_root(target)
                if root is not None and isinstance(namespace.get(root), (ModuleType, type)):
                    found.append(f"sets an attribute of {root}")
        elif isinstance(node, ast.Attribute) and node.attr in ("__dict__", "__code__", "__globals__"):
            found.append(f"uses {node.attr}")
    return found


def _attribute_root(target: ast.expr) -> str | None:
    """For ``a.b.c = …`` or ``a.b[k] = …``: ``a``; None for a plain name or subscript (``x = …``, ``d[k] = …``)."""
    if not isinstance(target, ast.Attribute) and not (isinstance(target, ast.Subscript)
                                                      and isinstance(target.value, ast.Attribute)):
        return None
    node = target
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


_shared_classes: set[int] = set()


def remember_shared_classes() -> None:
    """In the template, before forking: the classes every worker shares (those module namespaces hold).

    A note setting an attribute on one of them (``torch.Tensor.show = …``) leaks. Classes made later (the note's
    own, namedtuples of a lazily imported module) are not shared. Collected once here, where it costs nothing
    per worker: walking every module in a worker would copy-on-write thousands of pages.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # isinstance() reads __class__, which some deprecated aliases warn on
        for module in list(sys.modules.values()):
            for value in list(getattr(module, "__dict__", {}).values()):
                if isinstance(value, type):
                    _shared_classes.add(id(value))


class StateWatch:
    """Taken in a fresh worker; ``leaks()`` after each note says what that note left behind."""

    def __init__(self) -> None:
        self.modules = set(sys.modules)
        self.bindings = {name: dict(vars(sys.modules[name])) for name in WATCHED_MODULES if name in sys.modules}
        self.settings = settings()
        self.seen: list[str] = []  # what the audit hook saw since the worker started
        sys.addaudithook(self._audit)

    def _benign_import(self, name: str) -> bool:
        """The standard library, and more of a package already loaded (torch imports its parts lazily)."""
        top = name.partition(".")[0]
        return top in sys.stdlib_module_names or (top != name and top in self.modules)

    def _audit(self, event: str, args: tuple) -> None:
        if event in ("object.__setattr__", "object.__delattr__") and id(args[0]) in _shared_classes:
            self.seen.append(f"changes {args[0].__module__}.{args[0].__qualname__}.{args[1]}")
        elif event in PROCESS_EVENTS:
            self.seen.append("starts a process")  # it may outlive the note, even when not our child
        elif event == "ctypes.dlopen":
            self.seen.append("loads native code through ctypes")

    def leaks(self, codes: list[str], namespace: dict) -> list[str]:
        """Reasons this worker must not run another note (empty: it may)."""
        found = [reason for code in codes for reason in code_leaks(code, namespace)] + self.seen
        new_modules = sorted(name for name in set(sys.modules) - self.modules if not self._benign_import(name))
        if new_modules:
            found.append("imports " + ", ".join(new_modules[:3]))
        for module, before in self.bindings.items():
            now = vars(sys.modules[module])
            if len(now) != len(before) or any(now.get(k, now) is not v for k, v in before.items()):
                found.append(f"rebinds names in {module}")
        now = settings()
        found += [f"changes {name}" for name, value in self.settings.items() if now.get(name) != value]
        if threading.active_count() > 1:
            found.append("leaves a thread running")
        return found
