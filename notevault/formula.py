"""Formula checks: a display formula, read by notevault.latex, evaluated on the check block's tensors (SPEC §3).

What a note author relies on (README, "Formula checks and the naming rule"):
- Names follow notevault.latex's naming rule. ``e`` is Euler's number, ``\\pi`` is π unless the block binds ``pi``
  (a policy in RL notes), and built-in functions (``\\exp``, ``\\mathrm{erf}``, ``\\mathrm{ReLU}`` …) need no
  binding; ``\\sigma(…)`` is the logistic sigmoid unless ``sigma`` is bound to a function.
- Indices work like einsum. An index labels dimensions of the tensors it subscripts: the last ones (``z_i`` of a
  batch of shape [B, n] is a component), or the first ones when only those agree with its other occurrences
  (``v_j`` of a matrix of row vectors); ``x^{(i)}`` labels the first dimension and a list is indexed by item. A
  sum runs over its bounds, or without bounds over the whole dimension; a free index runs over the dimension it
  labels on both sides. An index that fits nothing, or labels dimensions of different lengths, is an error.
- Tolerance: |formula − reference| ≤ atol · max|reference| + rtol · |reference|, elementwise. Both parts are
  relative to the reference's magnitude, so a likelihood 98% off, or ``L = 0`` against 3e-8, fails.
- Derivatives (``\\partial``, ``d``, ``\\nabla``, ``f'``) are evaluated with torch.autograd: through the block's
  own graph when the numerator was computed from the variable with requires_grad, else on the formula's own
  expression of it.
The formula is evaluated in float64, so only the reference's own rounding counts. torch is imported inside the
functions: the CLI imports this module for ``notevault formulas`` without torch.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .latex import (
    Abs,
    Apply,
    BinOp,
    Call,
    Compare,
    Concat,
    Const,
    Deriv,
    Equation,
    Formula,
    IndexExpr,
    IndexValue,
    Indicator,
    Inner,
    LatexError,
    Logical,
    Matrix,
    Mean,
    Neg,
    Node,
    Norm,
    Num,
    Piecewise,
    Pow,
    Prime,
    Reduce,
    Subscripted,
    Sym,
    Transpose,
    defined_name,
    definitions,
    parse_formula,
    symbols,
    walk,
)

__all__ = ["FormulaError", "Outcome", "FormulaInfo", "check_formula", "describe", "list_formulas"]

CANDIDATES = {  # a Greek letter the block may bind under a usual alternative name
    "varepsilon": ("varepsilon", "epsilon", "eps"), "epsilon": ("epsilon", "eps", "varepsilon"),
    "lambda_": ("lambda_", "lam", "lmbda", "lambda"),  # a dict of bindings may hold the keyword itself
}
MAX_JACOBIAN = 4096  # numerator entries differentiated one by one for an indexed derivative
WRITTEN_T = re.compile(r"\^\s*(?:T|\{\s*T\s*\})$")  # ^T or ^{T}: a transpose, or a power of a bound T
MAX_READINGS = 8  # alternative readings of the indices tried when the preferred one cannot be evaluated


class FormulaError(LatexError):
    """The formula cannot be evaluated on these bindings; the message names the LaTeX construct."""


class ShapeMismatch(FormulaError):
    """The formula's value and the reference have different shapes."""

    def __init__(self, message: str, shapes: tuple[str, str]) -> None:
        super().__init__(message)
        self.shapes = shapes


@dataclass(frozen=True)
class Outcome:
    error: str | None
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    shapes: tuple[str, str] | None = None


# Values --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Value:
    """A tensor whose first dimensions are labelled by index variables (``axes``); the rest are its plain
    dimensions. ``row`` marks a transposed vector, so that ``w^\\top x`` is a dot product."""

    data: object  # torch.Tensor
    axes: tuple[str, ...] = ()
    row: bool = False

    @property
    def plain(self) -> tuple[int, ...]:
        return tuple(self.data.shape[len(self.axes):])


def _expand(value: Value, axes: tuple[str, ...], plain_rank: int):
    """The value's data with ``axes`` in front (size 1 where it has no such axis) and ``plain_rank`` plain dims
    (size-1 dims in front of its own, as broadcasting does)."""
    data, own = value.data, value.axes
    order = [own.index(a) for a in axes if a in own]
    if order != list(range(len(order))):
        data = data.permute(*order, *range(len(own), data.dim()))
    sizes = iter(data.shape[:len(order)])
    shape = [next(sizes) if a in own else 1 for a in axes]
    plain = list(value.plain)
    return data.reshape(shape + [1] * (plain_rank - len(plain)) + plain)


def _union(*values: Value) -> tuple[str, ...]:
    axes: list[str] = []
    for value in values:
        axes.extend(a for a in value.axes if a not in axes)
    return tuple(axes)


def _aligned(*values: Value):
    axes = _union(*values)
    rank = max(len(v.plain) for v in values)
    return axes, [_expand(v, axes, rank) for v in values]


def _elementwise(fn, *values: Value, row: bool | None = None) -> Value:
    axes, datas = _aligned(*values)
    if row is None:
        vectors = [v for v in values if v.plain]
        row = bool(vectors) and all(v.row for v in vectors)
    return Value(fn(*datas), axes, row)


def _check_broadcast(node: Node, *values: Value) -> None:
    import torch

    _, datas = _aligned(*values)
    try:
        torch.broadcast_shapes(*(d.shape for d in datas))
    except RuntimeError:
        shapes = " and ".join(str(list(v.plain)) for v in values)
        raise FormulaError(f"`{node.src}`: shapes {shapes} do not fit elementwise") from None


# Bindings ------------------------------------------------------------------------------------------------------

def _is_function(obj) -> bool:
    import torch

    return callable(obj) and not isinstance(obj, torch.Tensor)


def _as_tensor(obj, what: str):
    """A binding as a float64 tensor on the CPU, where formulas are evaluated (differentiable, so autograd still
    reaches the block's own graph, on whatever device it was built)."""
    import torch

    if isinstance(obj, torch.Tensor):
        tensor = obj
    elif isinstance(obj, bool):
        tensor = torch.tensor(float(obj))
    elif isinstance(obj, (int, float)):
        return torch.tensor(float(obj), dtype=torch.float64)  # as_tensor would round 0.999 to float32
    elif isinstance(obj, (list, tuple)):
        items = [_as_tensor(item, what) for item in obj]
        try:
            tensor = torch.stack(items)
        except RuntimeError:
            raise FormulaError(f"{what} is a list of tensors of different shapes") from None
    else:
        try:
            tensor = torch.as_tensor(obj)
        except (TypeError, ValueError, RuntimeError):
            raise FormulaError(f"{what} is bound to a {type(obj).__name__}, not a tensor or a number") from None
    if tensor.is_complex():
        raise FormulaError(f"{what} is complex")
    if tensor.device.type != "cpu":
        tensor = tensor.cpu()
    return tensor if tensor.dtype == torch.float64 else tensor.to(torch.float64)


@dataclass(frozen=True)
class _Layout:
    """How one occurrence reads its binding: the name, the entries it selects first (``Q(s', a')`` with an
    integer state), and for each index expression the dimension it labels. ``label``: the name is read whole,
    its subscripts part of the name; ``kronecker``: ``\\delta_{ij}`` with no ``delta`` bound."""

    name: str
    dims: tuple[int, ...] = ()
    exprs: tuple[IndexExpr, ...] = ()
    label: bool = False
    select: tuple[tuple[int, int], ...] = ()
    kronecker: bool = False


@dataclass
class _Occurrence:
    node: object
    exprs: tuple[IndexExpr, ...]
    shape: tuple[int, ...]
    name: str
    choices: list[tuple[int, ...]]
    what: str  # the LaTeX, for messages
    select: tuple[tuple[int, int], ...] = ()


# Index resolution ----------------------------------------------------------------------------------------------

class _Indices:
    """Decides, for one equation, the range of every index variable and the dimension each subscript labels."""

    def __init__(self, evaluation: _Evaluation) -> None:
        self.ev = evaluation
        self.occurrences: list[_Occurrence] = []
        self.fixed: dict[str, tuple[int, int]] = {}  # sums with both bounds
        self.lower_only: dict[str, int] = {}  # written-out sums without a last term
        self.names: dict[str, str] = {}  # variable → the letter as written
        self.where: dict[str, str] = {}  # variable → the LaTeX that binds it
        self.loose: set[str] = set()  # variables met only inside x_{i+k}
        self.readings: list[tuple[tuple[tuple[int, ...], ...], dict]] = []

    def resolve(self, nodes: list) -> int:
        """Collect the occurrences, install the preferred reading, and return how many readings fit."""
        for node in nodes:
            self.collect(node)
        combos = self.feasible()
        if not combos:
            raise FormulaError(self.conflict())
        self.readings = combos
        self.install(0)
        return len(combos)

    def install(self, number: int) -> None:
        import torch

        combo, ranges = self.readings[number]
        for occurrence, dims in zip(self.occurrences, combo, strict=True):
            self.ev.layouts[id(occurrence.node)] = _Layout(occurrence.name, dims, occurrence.exprs,
                                                           select=occurrence.select)
        self.ev.ranges.clear()
        for var, (low, high) in ranges.items():
            self.ev.ranges[var] = torch.arange(low, max(high + 1, low))  # \sum_{i=m}^{1}: no terms

    def variables(self) -> set[str]:
        found = set(self.fixed) | set(self.lower_only) | self.loose
        for occurrence in self.occurrences:
            found.update(ix.var for ix in occurrence.exprs)
        return found

    def collect(self, node) -> None:
        for n in walk(node):
            if isinstance(n, Reduce):
                self.reduction(n)
            elif isinstance(n, Sym) and (n.indices or n.sample is not None):
                self.symbol(n)
            elif isinstance(n, Apply) and any(_index_argument(a) is not None for a in n.args):
                self.table(n)
            elif isinstance(n, Apply) and _indexed_arguments(n):
                self.like_arguments(n)
            elif isinstance(n, Subscripted):
                self.subscripted(n)
            elif isinstance(n, IndexValue):
                self.names.setdefault(n.var, n.src)

    def reduction(self, node: Reduce) -> None:
        self.names[node.var] = node.letter
        self.where[node.var] = node.src
        if node.lower is None:
            return
        low = self.ev.integer(node.lower, f"the lower bound of {node.src}")
        if node.upper is None:
            self.lower_only[node.var] = low
        else:
            self.fixed[node.var] = (low, self.ev.integer(node.upper, f"the upper bound of {node.src}"))

    def symbol(self, node: Sym) -> None:
        exprs = ((node.sample,) if node.sample is not None else ()) + node.indices
        reading = self.ev.index_reading(node, len(exprs))
        if reading is None:
            if node.fallback is not None and self.ev.bound(node.fallback):
                self.ev.layouts[id(node)] = _Layout(node.fallback, label=True)
                return
            if node.name == "delta" and len(node.indices) == 2 and node.sample is None:
                self.ev.layouts[id(node)] = _Layout("delta", exprs=node.indices, kronecker=True)
                return  # \delta_{ij}: the Kronecker delta
            raise FormulaError(self.ev.missing(node))
        name, shape, is_list = reading
        self.add(node, exprs, shape, name, node.sample is not None, is_list, node.src)

    def table(self, node: Apply) -> None:
        """``P(x)`` inside ``\\sum_x``, ``Q(s', a')`` inside ``\\max_{a'}``: a tensor indexed by its arguments,
        one dimension each (an integer argument selects its entry)."""
        target = self.ev.raw(node.target.name)
        if target is None or _is_function(target) or node.target.indices:
            return
        tensor = _as_tensor(target, node.target.src)
        if tensor.dim() < len(node.args):
            raise FormulaError(f"`{node.src}`: {node.target.name} has {tensor.dim()} dimensions for "
                               f"{len(node.args)} arguments")
        select, exprs, dims = [], [], []
        for dim, arg in enumerate(node.args):
            index = _index_argument(arg)
            if index is not None:
                exprs.append(IndexExpr(index.var, index.src))
                dims.append(dim - len(select))
            else:
                number = self.ev.integer_argument(arg)
                if number is None:
                    raise FormulaError(f"`{node.src}`: {arg.src} is not an integer, so it cannot pick an entry "
                                       f"of {node.target.name}")
                select.append((dim, number))
        shape = list(tensor.shape)
        for dim, _ in reversed(select):
            del shape[dim]
        for ix in exprs:
            self.names.setdefault(ix.var, ix.letter)
        self.occurrences.append(_Occurrence(node, tuple(exprs), tuple(shape), node.target.name, [tuple(dims)],
                                            node.src, tuple(select)))

    def like_arguments(self, node: Apply) -> None:
        """``p(x_i \\mid \\theta)`` with p a tensor of values: p is indexed as its argument is (p_i)."""
        target = self.ev.raw(node.target.name)
        if target is None or _is_function(target) or node.target.indices or node.target.sample is not None:
            return
        tensor = _as_tensor(target, node.target.src)
        args = [a for a in node.args if isinstance(a, Sym) and (a.indices or a.sample is not None)]
        exprs = tuple(ix for a in args for ix in ((a.sample,) if a.sample is not None else ()) + a.indices)
        has_sample = args[0].sample is not None
        self.add(node, exprs, tuple(tensor.shape), node.target.name, has_sample, isinstance(target, (list, tuple)),
                 node.src)

    def subscripted(self, node: Subscripted) -> None:
        value = self.ev.evaluate(node.arg)
        if value.axes:
            raise FormulaError(f"`{node.src}`: a subscript on an expression that has its own indices")
        self.ev.cache[id(node)] = value
        self.add(node, node.indices, tuple(value.data.shape), node.src, False, False, node.src)

    def add(self, node, exprs, shape, name, has_sample, is_list, what) -> None:
        rank, start, count = len(shape), int(has_sample), len(exprs) - int(has_sample)
        if rank < len(exprs):
            raise FormulaError(f"`{what}`: {name} has {rank} dimensions for {len(exprs)} indices")
        head = (0,) if has_sample else ()
        trailing = head + tuple(range(rank - count, rank))
        leading = head + tuple(range(start, start + count))
        choices = [leading] if is_list else list(dict.fromkeys([trailing, leading]))
        for ix in exprs:
            self.names.setdefault(ix.var, ix.letter)
            self.loose.update(var for var, _ in ix.others)
        self.occurrences.append(_Occurrence(node, exprs, shape, name, choices, what))

    def feasible(self) -> list:
        """Every reading whose index ranges agree, best first: the last dimensions unless only the first ones
        agree, and for bounded sums the dimension whose length is the number of terms."""
        options = [o.choices for o in self.occurrences]
        if math.prod(len(o) for o in options) > 4096:
            options = [o[:1] for o in options]
        found = []
        for combo in itertools.product(*options):
            ranges = self.ranges(combo)
            if ranges is not None:
                leading = sum(c != o[0] for c, o in zip(combo, options, strict=True))
                found.append(((self.penalty(combo, ranges), leading), combo, ranges))
        found.sort(key=lambda item: item[0])
        return [(combo, ranges) for _, combo, ranges in found]

    def intervals(self, combo) -> dict[str, list[tuple[int, int, int | None, _Occurrence]]]:
        """For each variable, the values each occurrence allows: (low, high, length when read plainly)."""
        found: dict[str, list] = {}
        for occurrence, dims in zip(self.occurrences, combo, strict=True):
            for ix, dim in zip(occurrence.exprs, dims, strict=True):
                if ix.others:
                    continue  # x_{i+k}: checked when it is evaluated
                if ix.via is not None:  # p_{i, y_i}: i walks the entries of y
                    length = len(self.ev.tensor(ix.via, f"{ix.via}_{ix.letter}"))
                    found.setdefault(ix.var, []).append((self.ev.base, length - 1 + self.ev.base, length, occurrence))
                    continue
                size = occurrence.shape[dim]
                shift = ix.offset + sum(self.ev.integer_name(name, occurrence.what) for name in ix.shift)
                low = -((shift - self.ev.base) // ix.scale)  # ceil((base - shift) / scale)
                high = (size - 1 + self.ev.base - shift) // ix.scale
                plain = ix.scale == 1 and ix.offset == 0 and not ix.shift
                found.setdefault(ix.var, []).append((low, high, size if plain else None, occurrence))
        return found

    def ranges(self, combo) -> dict[str, tuple[int, int]] | None:
        intervals = self.intervals(combo)
        ranges = {}
        for var in self.variables():
            allowed = intervals.get(var, [])
            if var in self.fixed:
                low, high = self.fixed[var]
                if high >= low and any(low < a or high > b for a, b, _, _ in allowed):
                    return None
                ranges[var] = (low, high)
                continue
            if not allowed:
                if var in self.lower_only:
                    return None
                continue  # used only as a number or in x_{i+k}: an error when it is evaluated
            if len({size for _, _, size, _ in allowed if size is not None}) > 1:
                return None
            low = max(a for a, _, _, _ in allowed)
            high = min(b for _, b, _, _ in allowed)
            if var in self.lower_only:
                if low > self.lower_only[var]:
                    return None
                low = self.lower_only[var]
            if high < low:
                return None
            ranges[var] = (low, high)
        return ranges

    def penalty(self, combo, ranges) -> int:
        count = 0
        for var, items in self.intervals(combo).items():
            if var in self.fixed:
                low, high = ranges[var]
                count += sum(size is not None and size != high - low + 1 for _, _, size, _ in items)
        return count

    def conflict(self) -> str:
        """Why no reading fits, in the note's own terms, for the reading that comes closest."""
        options = [o.choices for o in self.occurrences]
        combos = list(itertools.product(*options)) if math.prod(len(o) for o in options) <= 4096 else [
            tuple(o[0] for o in options)]
        best = min((self.problems(combo) for combo in combos), key=len)
        return best[0] if best else "the indices do not fit the shapes of the bound tensors"

    def problems(self, combo) -> list[str]:
        """What goes wrong with each variable under one reading."""
        found = []
        intervals = self.intervals(combo)
        for var in sorted(self.variables()):
            letter = self.names.get(var, var)
            items = intervals.get(var, [])
            sizes = [(size, o.what) for _, _, size, o in items if size is not None]
            if len({s for s, _ in sizes}) > 1:
                listed = ", ".join(f"{s} in `{what}`" for s, what in sizes)
                found.append(f"the index {letter} labels dimensions of different lengths: {listed}")
            elif var in self.fixed:
                low, high = self.fixed[var]
                for a, b, _, o in items:
                    if high >= low and (low < a or high > b):
                        found.append(f"the index {letter} runs from {low} to {high} in `{self.where.get(var, '')}`, "
                                     f"beyond the entries of `{o.what}` (values {a} to {b} fit)")
                        break
            elif var in self.lower_only and not items:
                found.append(f"the written-out sum `{self.where.get(var, '')}` indexes nothing it could run over")
            elif items and max(a for a, _, _, _ in items) > min(b for _, b, _, _ in items):
                found.append(f"the index {letter} has no value that fits every tensor it subscripts")
        return found


# Evaluation ----------------------------------------------------------------------------------------------------

class _Checker:
    """One display formula against one check block's namespace."""

    def __init__(self, formula: Formula, namespace: dict) -> None:
        self.formula = formula
        self.namespace = namespace
        defined = definitions(formula)
        self.definitions: dict[str, Equation] = {}
        for equation in formula.equations:
            name = defined_name(equation.lhs)
            if name in defined and not any(c in namespace for c in CANDIDATES.get(name, (name,))):
                self.definitions.setdefault(name, equation)
        self.defined: dict[str, object] = {}
        self.defining: set[str] = set()
        self.device = _binding_device(namespace)  # where the block's tensors live, for its functions
        self.calls: dict[str, set[str]] = {}  # each applied name → the argument lists it is written with
        for equation in formula.equations:
            for side in equation.sides:
                for node in walk(side):
                    if isinstance(node, Apply):
                        args = ", ".join(" ".join(a.src.split()) for a in node.args)
                        self.calls.setdefault(node.target.name, set()).add(f"{node.target.src}({args})")

    def is_definition(self, equation: Equation) -> bool:
        name = defined_name(equation.lhs)
        return name is not None and self.definitions.get(name) is equation

    def define(self, name: str):
        """The tensor a definition equation gives its left side (``\\text{where } a = \\sigma(Wx + b)``)."""
        if name in self.defined:
            return self.defined[name]
        if name in self.defining:
            raise FormulaError(f"{name} is defined in terms of itself")
        self.defining.add(name)
        try:
            equation = self.definitions[name]
            if isinstance(equation.lhs, Apply) and all(isinstance(a, Sym) for a in equation.lhs.args):
                tensor = self.function(equation)
            else:
                evaluation = _Evaluation(self, equation)
                _Indices(evaluation).resolve(list(equation.sides[1:2]))
                value = evaluation.evaluate(equation.sides[1])
                tensor = _place_axes(value, equation.lhs) if isinstance(equation.lhs, Sym) else value.data
        finally:
            self.defining.discard(name)
        self.defined[name] = tensor
        return tensor


    def function(self, equation: Equation):
        """``s(x) = \\frac{1}{1 + e^{-x}}``: a function of its written arguments, for ``s(z)`` and ``s'(x)``."""
        parameters = [a.name for a in equation.lhs.args]

        def defined(*args):
            if len(args) != len(parameters):
                raise FormulaError(f"{equation.lhs.src} takes {len(parameters)} argument(s), not {len(args)}")
            evaluation = _Evaluation(self, equation, dict(zip(parameters, args, strict=True)))
            _Indices(evaluation).resolve(list(equation.sides[1:2]))
            return evaluation.evaluate(equation.sides[1]).data

        return defined


def _binding_device(namespace: dict):
    """The device of the block's tensors when it is not the CPU (None otherwise)."""
    import torch

    for value in namespace.values():
        if isinstance(value, torch.Tensor) and value.device.type != "cpu":
            return value.device
    return None


def _place_axes(value: Value, lhs: Sym):
    """A defined symbol as a tensor laid out as its left side reads it: the sample index first, subscripts last."""
    order = ([lhs.sample.var] if lhs.sample is not None else []) + [ix.var for ix in lhs.indices]
    if set(order) != set(value.axes):
        raise FormulaError(f"the definition of {lhs.src} has indices {sorted(value.axes)}, its left side "
                           f"{sorted(order)}")
    data = value.data
    if not value.axes:
        return data
    plain = len(value.plain)
    k = len(value.axes)
    head = [value.axes.index(lhs.sample.var)] if lhs.sample is not None else []
    tail = [value.axes.index(ix.var) for ix in lhs.indices]
    return data.permute(*head, *range(k, k + plain), *tail)


class _Evaluation:
    """The evaluation of one equation: its index ranges and layouts, then values for its nodes."""

    def __init__(self, checker: _Checker, equation: Equation, overrides: dict | None = None) -> None:
        self.checker = checker
        self.equation = equation
        self.base = equation.base
        self.ranges: dict[str, object] = {}
        self.layouts: dict[int, _Layout] = {}
        self.cache: dict[int, Value] = {}
        self.overrides: dict[str, object] = dict(overrides or {})
        self.scalar_reference = False  # the left side is one number: a · b of two vectors is their dot product
        self.row_batches = False  # W x with x a batch of rows: a last resort, once no reading of the indices fits
        self.handlers = {
            Num: self.number, Const: self.constant, Sym: self.symbol, IndexValue: self.index_value,
            Call: self.call, Apply: self.apply, Prime: self.prime, BinOp: self.binary, Neg: self.negate,
            Pow: self.power, Transpose: self.transpose, Reduce: self.reduce, Norm: self.norm, Abs: self.absolute,
            Concat: self.concat, Matrix: self.matrix, Inner: self.inner, Mean: self.mean, Deriv: self.derivative,
            Compare: self.compare, Logical: self.logical, Piecewise: self.piecewise, Indicator: self.indicator,
            Subscripted: self.subscripted,
        }

    # Bindings ------------------------------------------------------------------------------------------------

    def raw(self, name: str):
        """What the block bound to a name (an alternative name for some Greek letters), or a definition."""
        for candidate in CANDIDATES.get(name, (name,)):
            if candidate in self.overrides:
                return self.overrides[candidate]
            if candidate in self.checker.namespace:
                return self.checker.namespace[candidate]
        if name in self.checker.definitions:
            return self.checker.define(name)
        return None

    def bound(self, name: str) -> bool:
        return self.raw(name) is not None

    def missing(self, node: Sym) -> str:
        if node.indices or node.sample is not None:
            letters = ", ".join(ix.letter for ix in ((node.sample,) if node.sample else ()) + node.indices)
            also = f" (or '{node.joined}')" if node.joined and node.joined != node.name else ""
            return (f"missing binding: {node.src} needs the python name '{node.name}'{also}, a tensor indexed by "
                    f"{letters}")
        return f"missing binding: {node.src} needs the python name '{node.name}'"

    def index_reading(self, node: Sym, count: int):
        """The binding an indexed symbol reads: its base name, else the name with its subscripts (b_i)."""
        import torch

        exprs = ((node.sample,) if node.sample is not None else ()) + node.indices
        # b_i inside \sum_i, with a vector b_i bound (and b a number): b_i is what the index walks; a free x_i with
        # only x_i bound is the name x_i itself (Indices.symbol)
        joined = node.joined if any(ix.bound for ix in exprs) else None
        for name in (joined, node.name):
            if name is None:
                continue
            obj = self.raw(name)
            if obj is None or _is_function(obj):
                continue
            if isinstance(obj, (list, tuple)) and obj and all(_is_function(item) for item in obj):
                return name, (len(obj),), True  # f_t: a list of functions
            tensor = obj if isinstance(obj, torch.Tensor) else _as_tensor(obj, node.src)
            if tensor.dim() >= count:
                return name, tuple(tensor.shape), isinstance(obj, (list, tuple))
        return None

    def integer(self, node: Node, what: str) -> int:
        value = self.evaluate(node)
        if value.axes or value.data.numel() != 1:
            raise FormulaError(f"{what} is not a single number")
        number = float(value.data.reshape(()))
        if not number.is_integer():
            raise FormulaError(f"{what} is {number:g}, not an integer")
        return int(number)

    def integer_argument(self, node: Node) -> int | None:
        """An argument that picks an entry: a bound integer (a state ``s_t``) or an integer literal."""
        import torch

        if isinstance(node, Num) and node.value.is_integer():
            return int(node.value)
        if not isinstance(node, Sym) or node.indices or node.sample is not None:
            return None
        obj = self.raw(node.name)
        if isinstance(obj, bool):
            return None
        if isinstance(obj, int):
            return obj
        if isinstance(obj, torch.Tensor) and obj.numel() == 1 and not obj.is_floating_point() \
                and not obj.is_complex() and obj.dtype != torch.bool:
            return int(obj.reshape(()))
        return None

    def integer_name(self, name: str, what: str) -> int:
        obj = self.raw(name)
        if obj is None:
            raise FormulaError(f"missing binding: the shift {name} in `{what}` needs the python name '{name}'")
        return self.integer(Num(float(_as_tensor(obj, name).reshape(()))), f"{name} in `{what}`")

    def tensor(self, name: str, what: str):
        obj = self.raw(name)
        if obj is None:
            raise FormulaError(f"missing binding: {what} needs the python name '{name}'")
        if _is_function(obj):
            raise FormulaError(f"{what} is bound to a function ({name}); a value is needed here")
        return _as_tensor(obj, what)

    # Evaluation ----------------------------------------------------------------------------------------------

    def evaluate(self, node: Node) -> Value:
        handler = self.handlers[type(node)]
        try:
            return handler(node)
        except LatexError:
            raise
        except Exception as exc:  # a user's function or torch: reported with the LaTeX it was evaluating
            reason = str(exc).splitlines()[0] if str(exc) else ""
            what = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
            raise FormulaError(f"evaluating `{_one_line(node.src)}` failed ({what})") from None

    def number(self, node: Num) -> Value:
        import torch

        return Value(torch.tensor(node.value, dtype=torch.float64))

    def constant(self, node: Const) -> Value:
        import torch

        if node.name == "pi":
            bound = self.raw("pi")
            if bound is not None and not _is_function(bound):
                return Value(_as_tensor(bound, "\\pi"))  # a policy in an RL note
            return Value(torch.tensor(math.pi, dtype=torch.float64))
        return Value(torch.tensor(math.e, dtype=torch.float64))

    def symbol(self, node: Sym) -> Value:
        layout = self.layouts.get(id(node))
        if layout is None:
            obj = self.raw(node.name)
            if obj is None and node.letters and all(self.bound(letter) for letter in node.letters):
                left, right = (self.symbol(Sym(letter, letter)) for letter in node.letters)
                return self.multiply(BinOp("*", Sym(node.letters[0]), Sym(node.letters[1]), node.src), left, right)
            if obj is None:
                raise FormulaError(self.missing(node))
            if _is_function(obj):
                raise FormulaError(f"{node.src} is bound to a function ({node.name}); apply it: {node.src}(…)")
            return Value(_as_tensor(obj, node.src))
        if layout.label:
            return Value(self.tensor(layout.name, node.src))
        if layout.kronecker:
            return self.kronecker(layout)
        return self.gather(self.tensor(layout.name, node.src), layout)

    def kronecker(self, layout: _Layout) -> Value:
        """\\delta_{ij}: 1 where the two indices are equal."""
        import torch

        a, b = (self.index_values(ix) for ix in layout.exprs)
        return _elementwise(lambda x, y: (x == y).to(torch.float64), a, b)

    def index_values(self, ix: IndexExpr) -> Value:
        import torch

        values = self.range_of(ix.var).to(torch.float64) * ix.scale + ix.offset
        return Value(values, (ix.var,))

    def gather(self, tensor, layout: _Layout, leading=()) -> Value:
        """Select, along each labelled dimension, the entries its index expression reaches; dimensions labelled
        by the same variable become one axis (their diagonal). ``leading`` axes are already in front."""
        for dim, number in reversed(layout.select):
            if not -tensor.shape[dim] <= number < tensor.shape[dim]:
                raise FormulaError(f"{layout.name} has no entry {number} along dimension {dim}")
            tensor = tensor.select(dim, number)
        order = list(leading)
        for ix in layout.exprs:
            for var in (ix.var, *(v for v, _ in ix.others)):
                if var not in order:
                    order.append(var)
        index, dims = [], []
        import torch

        for n, var in enumerate(leading):
            index.append(self.positions_view(torch.arange(len(self.ranges[var])), order.index(var), len(order)))
            dims.append(n)
        for ix, dim in zip(layout.exprs, layout.dims, strict=True):
            index.append(self.positions(ix, order, tensor.shape[dim + len(leading)], layout.name))
            dims.append(dim + len(leading))
        moved = tensor.movedim(dims, list(range(len(dims))))
        return Value(moved[tuple(index)], tuple(order))

    def positions(self, ix: IndexExpr, order: list[str], size: int, name: str):
        """The entries an index expression reaches, shaped to broadcast over the variables in ``order``."""
        shift = ix.offset + sum(self.integer_name(n, name) for n in ix.shift) - self.base
        positions = self.positions_view(self.range_of(ix.var) * ix.scale, order.index(ix.var), len(order)) + shift
        if ix.via is not None:  # the entries of an integer tensor, used as they are (0-based, as torch has them)
            table = self.tensor(ix.via, f"{ix.via}_{ix.letter}")
            if bool((table != table.round()).any()):
                raise FormulaError(f"{ix.via}_{ix.letter} picks entries of {name}, but {ix.via} holds non-integers")
            positions = table.round().long()[positions]
        for var, scale in ix.others:
            positions = positions + self.positions_view(self.range_of(var) * scale, order.index(var), len(order))
        if positions.numel() and (int(positions.min()) < 0 or int(positions.max()) >= size):
            raise FormulaError(f"the index {ix.letter} reaches entries {int(positions.min())} to "
                               f"{int(positions.max())} of {name}, which has {size}")
        return positions

    @staticmethod
    def positions_view(positions, at: int, count: int):
        shape = [1] * count
        shape[at] = len(positions)
        return positions.reshape(shape)

    def range_of(self, var: str):
        if var not in self.ranges:
            raise FormulaError(f"cannot tell what the index {var.split('#')[0]} runs over: no bound and no "
                               f"tensor it subscripts")
        return self.ranges[var]

    def index_value(self, node: IndexValue) -> Value:
        import torch

        return Value(self.range_of(node.var).to(torch.float64), (node.var,))

    # Arithmetic ----------------------------------------------------------------------------------------------

    def binary(self, node: BinOp) -> Value:
        import torch

        left, right = self.evaluate(node.left), self.evaluate(node.right)
        if node.op == "*":
            return self.multiply(node, left, right)
        if node.op == "cdot":
            if self.scalar_reference and len(left.plain) == 1 and len(right.plain) == 1 and not left.row:
                return self.matrix_product(node, Value(left.data, left.axes, True), right)  # a · b: a dot product
            return self.multiply(node, left, right)
        _check_broadcast(node, left, right)
        ops = {"+": torch.add, "-": torch.sub, "/": torch.div, "odot": torch.mul}
        return _elementwise(ops[node.op], left, right)

    def multiply(self, node: BinOp, left: Value, right: Value) -> Value:
        """Juxtaposition, ``\\cdot`` and ``\\times``: a matrix product when one side is a matrix (``QK^T``,
        ``W x``), a dot product for ``w^\\top x``, an outer product for ``x y^\\top``, else elementwise."""
        a, b = len(left.plain), len(right.plain)
        # a vector written left of a matrix scales it entrywise (\gamma \hat{x} over a batch); x^\top W is the
        # row-vector product
        entrywise = a == 1 and b >= 2 and not left.row
        if a == 0 or b == 0 or (a == 1 and b == 1 and left.row == right.row) or entrywise:
            _check_broadcast(node, left, right)
            return _elementwise(lambda x, y: x * y, left, right)
        return self.matrix_product(node, left, right)

    def matrix_product(self, node: BinOp, left: Value, right: Value) -> Value:
        axes = _union(left, right)
        x, y = _expand(left, axes, len(left.plain)), _expand(right, axes, len(right.plain))
        k = len(axes)
        x = x.unsqueeze(-2) if len(left.plain) == 1 and (left.row or len(right.plain) > 1) else (
            x.unsqueeze(-1) if len(left.plain) == 1 else x)
        y = y.unsqueeze(-1) if len(right.plain) == 1 and not right.row else (
            y.unsqueeze(-2) if len(right.plain) == 1 else y)
        if x.shape[-1] != y.shape[-2]:
            rows = len(left.plain) == 2 and len(right.plain) == 2 and x.shape[-1] == y.shape[-1]
            if rows and self.row_batches:
                # W x with x a batch of row vectors [B, d] (torch's layout): W applied to each row, x W^T
                return Value((y @ x.transpose(-2, -1)), axes)
            raise FormulaError(f"`{node.src}`: shapes {list(left.plain)} and {list(right.plain)} cannot be "
                               f"multiplied (a matrix product)")
        batch = max(x.dim(), y.dim()) - k - 2
        x = x.reshape(*x.shape[:k], *[1] * (batch - (x.dim() - k - 2)), *x.shape[k:])
        y = y.reshape(*y.shape[:k], *[1] * (batch - (y.dim() - k - 2)), *y.shape[k:])
        out = x @ y
        row = len(left.plain) == 1 and (left.row or len(right.plain) > 1)
        col = len(right.plain) == 1 and not right.row
        if row:
            out = out.squeeze(-2)
        if col:
            out = out.squeeze(-1)
        return Value(out, axes, row and not col and len(right.plain) > 1)

    def negate(self, node: Neg) -> Value:
        value = self.evaluate(node.arg)
        return Value(-value.data, value.axes, value.row)

    def power(self, node: Pow) -> Value:
        import torch

        if self.is_product(node.base):  # \alpha_t (1 - p_t)^\gamma: the power belongs to the parenthesis
            inner = Pow(node.base.args[0], node.exponent, node.src)
            return self.multiply(BinOp("*", node.base.target, inner, node.src), self.evaluate(node.base.target),
                                 self.evaluate(inner))
        exponent = self.evaluate(node.exponent)
        if isinstance(node.base, Const) and node.base.name == "e":
            return Value(torch.exp(exponent.data), exponent.axes)
        base = self.evaluate(node.base)
        if self.is_inverse(node, base, exponent):
            return Value(torch.linalg.inv(base.data), base.axes)
        if _is_diagonal(base) and not exponent.axes and exponent.data.numel() == 1:
            # D^{-1/2}: the power of a diagonal matrix is that of its diagonal, whichever power is meant
            diagonal = torch.diagonal(base.data, dim1=-2, dim2=-1) ** exponent.data.reshape(())
            return Value(torch.diag_embed(diagonal), base.axes)
        _check_broadcast(node, base, exponent)
        return _elementwise(torch.pow, base, exponent, row=base.row)

    def is_product(self, node: Node) -> bool:
        """Is this ``a (b)`` a product rather than a function applied (``a`` bound to a value)?"""
        if not isinstance(node, Apply) or len(node.args) != 1 or node.builtin or id(node) in self.layouts:
            return False
        if isinstance(node.args[0], (Sym, IndexValue)) or _index_argument(node.args[0]) is not None:
            return False
        if _is_sequence(node.args[0]):
            return False
        target = self.raw(node.target.name)
        if target is None and node.target.joined:
            target = self.raw(node.target.joined)
        return target is not None and not _is_function(target) and not self.is_function_list(node.target)

    @staticmethod
    def is_inverse(node: Pow, base: Value, exponent: Value) -> bool:
        """``\\Sigma^{-1}``, ``(X^\\top X)^{-1}``: a square matrix to the power -1 is inverted, unless it is a
        lower-case symbol (``x^{-1}`` of a batch is entrywise)."""
        if isinstance(node.base, Sym) and not node.base.name[:1].isupper() or exponent.axes:
            return False
        if exponent.data.numel() != 1 or float(exponent.data.reshape(())) != -1.0:
            return False
        return len(base.plain) >= 2 and base.plain[-1] == base.plain[-2]

    def transpose(self, node: Transpose) -> Value:
        import torch

        value = self.evaluate(node.arg)
        if not value.plain and WRITTEN_T.search(node.src) and self.bound("T"):
            # \beta_1^T, \gamma^T R with T bound: a scalar has nothing to transpose, so T is its exponent
            return _elementwise(torch.pow, value, self.evaluate(Sym("T", "T")))
        if len(value.plain) >= 2:
            return Value(value.data.transpose(-2, -1), value.axes)
        if len(value.plain) == 1:
            return Value(value.data, value.axes, not value.row)
        return value

    # Functions -----------------------------------------------------------------------------------------------

    def call(self, node: Call) -> Value:
        args = [self.evaluate(a) for a in node.args]
        value = _builtin(node, args)
        if node.base is not None:
            base = self.evaluate(node.base)
            value = _elementwise(lambda x, b: x / b.log(), value, base)
        return value

    def apply(self, node: Apply) -> Value:
        target = self.raw(node.target.name) if not node.target.indices else None
        if node.builtin is not None and not _is_function(target):
            return _builtin(Call(node.builtin, node.args, node.src, node.builtin), [self.evaluate(node.args[0])])
        if id(node) in self.layouts:
            layout = self.layouts[id(node)]
            return self.gather(self.tensor(layout.name, node.target.src), layout)
        if any(isinstance(a, IndexValue) for a in node.args) and not _is_function(target):
            raise FormulaError(f"`{node.src}`: {node.target.src} must be bound to a tensor or a function")
        if node.target.indices or node.target.sample is not None:
            if self.is_function_list(node.target):
                return self.apply_indexed(node)
            if len(node.args) == 1 and not isinstance(node.args[0], Sym):  # y_k (1 - \alpha): a product
                return self.multiply(BinOp("*", node.target, node.args[0], node.src), self.evaluate(node.target),
                                     self.evaluate(node.args[0]))
            return self.evaluate(node.target)  # p_\theta(x): the tensor's values
        if target is None:
            if node.target.name == "pi":
                raise FormulaError(f"{node.src}: \\pi applied to arguments is a policy: bind it as 'pi' (\\pi "
                                   f"alone is the number π)")
            raise FormulaError(self.missing(node.target) + f" (a function, applied in {node.src})")
        if _is_function(target):
            return self.call_function(node, target, [self.evaluate(a) for a in node.args])
        return self.tensor_applied(node, target)

    def call_function(self, node, function, args: list[Value]) -> Value:

        axes = _union(*args) if args else ()
        datas = [_expand(a, axes, len(a.plain)) for a in args]
        result = _call_user_function(function, datas, self.checker.device)
        return Value(_as_tensor(result, f"the result of {node.src}"), axes)

    def is_function_list(self, sym: Sym) -> bool:
        obj = self.raw(sym.name)
        if obj is None and sym.joined:
            obj = self.raw(sym.joined)
        return isinstance(obj, (list, tuple)) and bool(obj) and all(_is_function(item) for item in obj)

    def apply_indexed(self, node: Apply) -> Value:
        """``f_t(\\theta_t)`` inside ``\\sum_t``: a list of functions, each applied to its own arguments."""
        import torch

        sym = node.target
        obj = self.raw(sym.name)
        if obj is None and sym.joined:
            obj = self.raw(sym.joined)
        layout = self.layouts.get(id(sym))
        if not isinstance(obj, (list, tuple)) or layout is None or len(layout.exprs) != 1:
            raise FormulaError(f"{node.src}: {sym.name} must be a list of functions, one per {sym.src} "
                               f"index")
        ix = layout.exprs[0]
        values = self.range_of(ix.var)
        args = [self.evaluate(a) for a in node.args]
        results = []
        for n, value in enumerate(values.tolist()):
            function = obj[value * ix.scale + ix.offset - self.base]
            picked = [Value(a.data.select(a.axes.index(ix.var), n), tuple(x for x in a.axes if x != ix.var))
                      if ix.var in a.axes else a for a in args]
            results.append(self.call_function(node, function, picked))
        axes = _union(*results)
        stacked = torch.stack([_expand(r, axes, len(r.plain)) for r in results])
        return Value(stacked, (ix.var, *axes))

    def tensor_applied(self, node: Apply, target) -> Value:
        """A tensor written as a function: ``P(x)`` names P's values over x; an integer argument picks an entry
        (``V(s_t)``, ``Q(s, a)``), one leading dimension per argument; ``\\beta(1 - x)`` is a product."""
        tensor = _as_tensor(target, node.target.src)
        if len(node.args) == 1 and not isinstance(node.args[0], Sym) and not _is_sequence(node.args[0]):
            return self.multiply(BinOp("*", node.target, node.args[0], node.src), Value(tensor),
                                 self.evaluate(node.args[0]))
        picks = [self.integer_argument(a) for a in node.args]
        if all(p is None for p in picks) or tensor.dim() < len(node.args):
            calls = self.checker.calls.get(node.target.name, set())
            if len(calls) > 1:
                raise FormulaError(f"{node.target.src} is applied to different arguments ({', '.join(sorted(calls))})"
                                   f": one tensor cannot be all of them; bind {node.target.name} as a function")
            return Value(tensor)  # L(\theta, x, y): the value the block computed
        index = tuple(slice(None) if p is None else p for p in picks)
        return Value(tensor[index])

    def prime(self, node: Prime) -> Value:
        """``f'(u)``: the derivative of a function of one argument, elementwise, by autograd."""
        import torch

        argument = self.evaluate(node.call.args[0])
        leaf = argument.data.detach().clone().requires_grad_(True)
        inner = Value(leaf, argument.axes, argument.row)
        call = node.call
        with torch.enable_grad():
            if isinstance(call, Call):
                out = _builtin(call, [inner])
            else:
                function = self.raw(call.target.name)
                if call.builtin is not None and not _is_function(function):
                    out = _builtin(Call(call.builtin, call.args, call.src, call.builtin), [inner])
                elif _is_function(function):
                    out = self.call_function(call, function, [inner])
                else:
                    raise FormulaError(f"{node.src}: {call.target.src} is not bound to a function, so its "
                                       f"derivative cannot be taken")
            grad = _elementwise_derivative(out, leaf, node.src)
        return Value(grad, out.axes)

    # Reductions and structures -------------------------------------------------------------------------------

    def reduce(self, node: Reduce) -> Value:
        import torch

        body = self.evaluate(node.body)
        values = self.range_of(node.var)
        if node.var not in body.axes:  # the summand does not depend on the index: count the terms
            body = Value(body.data.unsqueeze(0).expand(len(values), *body.data.shape), (node.var, *body.axes),
                         body.row)
        at = body.axes.index(node.var)
        rest = tuple(a for a in body.axes if a != node.var)
        data = body.data
        if node.kind == "sum":
            out = data.sum(at)
        elif node.kind == "prod":
            out = data.prod(at)
        elif node.kind in ("max", "min"):
            out = data.amax(at) if node.kind == "max" else data.amin(at)
        elif node.kind in ("argmax", "argmin"):
            positions = data.argmax(at) if node.kind == "argmax" else data.argmin(at)
            out = values.to(torch.float64)[positions]
        elif node.kind == "concat" and body.plain:  # Concat(head_1, …, head_h): joined along the last dimension
            moved = data.movedim(at, data.dim() - 2)
            out = moved.reshape(*moved.shape[:-2], moved.shape[-2] * moved.shape[-1])
        else:  # stack: [g_1, …, g_N] — the index becomes the first plain dimension
            out = data.movedim(at, len(rest))
        return Value(out, rest, body.row)

    def norm(self, node: Norm) -> Value:
        import torch

        value = self.evaluate(node.arg)
        if not value.plain:
            return Value(value.data.abs(), value.axes)
        if node.p == "fro":
            if len(value.plain) < 2:
                raise FormulaError(f"`{node.src}`: a Frobenius norm of a vector")
            return Value(torch.linalg.matrix_norm(value.data, "fro"), value.axes)
        if isinstance(node.p, (int, float)) or node.p == "inf":
            order = math.inf if node.p == "inf" else float(node.p)
            return Value(torch.linalg.vector_norm(value.data, ord=order, dim=-1), value.axes)
        order_value = self.evaluate(node.p)
        if order_value.axes or order_value.data.numel() != 1:
            raise FormulaError(f"`{node.src}`: the order of the norm is not a single number")
        return Value(torch.linalg.vector_norm(value.data, ord=float(order_value.data.reshape(())), dim=-1),
                     value.axes)

    def absolute(self, node: Abs) -> Value:
        """``|x|``; ``|\\Sigma|`` of an upper-case symbol bound to a square matrix is its determinant."""
        import torch

        value = self.evaluate(node.arg)
        square = len(value.plain) >= 2 and value.plain[-1] == value.plain[-2]
        if square and isinstance(node.arg, Sym) and node.arg.name[:1].isupper():
            return Value(torch.linalg.det(value.data), value.axes)
        return Value(value.data.abs(), value.axes, value.row)

    def concat(self, node: Concat) -> Value:
        """``[h_{t-1}, x_t]``: joined along the last dimension (along the only one where the shapes differ, when
        just one does: \\mathrm{Concat}(K_p, K_x) of two sequences)."""
        import torch

        items = [self.evaluate(item) for item in node.items]
        axes = _union(*items)
        rank = max(max(len(i.plain) for i in items), 1)
        datas = [_expand(Value(i.data.unsqueeze(-1), i.axes) if not i.plain else i, axes, rank) for i in items]
        shapes = [d.shape for d in datas]
        differing = [n for n in range(len(axes), len(axes) + rank) if len({s[n] for s in shapes}) > 1]
        dim = differing[0] if len(differing) == 1 else len(axes) + rank - 1
        target = [max(s[n] for s in shapes) for n in range(len(shapes[0]))]
        expanded = []
        for d in datas:
            size = list(target)
            size[dim] = d.shape[dim]
            expanded.append(d.expand(size))
        return Value(torch.cat(expanded, dim), axes)

    def matrix(self, node: Matrix) -> Value:
        import torch

        rows = [[self.evaluate(cell) for cell in row] for row in node.rows]
        cells = [cell for row in rows for cell in row]
        if any(cell.plain for cell in cells):
            raise FormulaError(f"`{node.src}`: a matrix whose entries are not numbers")
        axes = _union(*cells)
        stacked = torch.stack([torch.stack([_expand(c, axes, 0) for c in row], -1) for row in rows], -2)
        if len(node.rows) == 1 or len(node.rows[0]) == 1:
            stacked = stacked.reshape(*stacked.shape[:len(axes)], -1)  # a row or a column: a vector
        return Value(stacked, axes)

    def inner(self, node: Inner) -> Value:
        left, right = self.evaluate(node.left), self.evaluate(node.right)
        _check_broadcast(node, left, right)
        product = _elementwise(lambda x, y: x * y, left, right)
        return Value(product.data.sum(-1), product.axes) if product.plain else product

    def mean(self, node: Mean) -> Value:
        value = self.evaluate(node.arg)
        if not value.plain:
            return value
        return Value(value.data.mean(len(value.axes)), value.axes)

    def subscripted(self, node: Subscripted) -> Value:
        layout = self.layouts[id(node)]
        return self.gather(self.cache[id(node)].data, layout)

    # Conditions ----------------------------------------------------------------------------------------------

    def compare(self, node: Compare) -> Value:
        import torch

        terms = [self.evaluate(t) for t in node.terms]
        ops = {"<": torch.lt, "<=": torch.le, ">": torch.gt, ">=": torch.ge, "==": torch.eq, "!=": torch.ne}
        result = None
        for op, left, right in zip(node.ops, terms, terms[1:], strict=False):
            _check_broadcast(node, left, right)
            part = _elementwise(ops[op], left, right, row=False)
            result = part if result is None else _elementwise(torch.logical_and, result, part, row=False)
        return result

    def logical(self, node: Logical) -> Value:
        import torch

        args = [self.evaluate(a) for a in node.args]
        op = torch.logical_and if node.op == "and" else torch.logical_or
        result = args[0]
        for arg in args[1:]:
            result = _elementwise(op, result, arg, row=False)
        return result

    def indicator(self, node: Indicator) -> Value:
        import torch

        cond = self.evaluate(node.cond)
        return Value(cond.data.to(torch.float64), cond.axes)

    def piecewise(self, node: Piecewise) -> Value:
        import torch

        values = [self.evaluate(value) for value, _ in node.cases]
        conditions = [self.evaluate(cond) if cond is not None else None for _, cond in node.cases]
        everything = [*values, *(c for c in conditions if c is not None)]
        axes, _ = _aligned(*everything)
        rank = max(len(v.plain) for v in everything)
        shape = None
        result, covered = None, None
        for value, cond in reversed(list(zip(values, conditions, strict=True))):
            data = _expand(value, axes, rank)
            if cond is None:
                mask = torch.ones((), dtype=torch.bool)
            else:
                mask = _expand(cond, axes, rank)
            if result is None:
                shape = torch.broadcast_shapes(data.shape, mask.shape)
                result = torch.full(shape, math.nan, dtype=torch.float64)
                covered = torch.zeros(shape, dtype=torch.bool)
            result = torch.where(mask, data, result)
            covered = covered | mask
        if not bool(covered.all()):
            raise FormulaError(f"no case of `{node.src}` applies to some entries (add \\text{{otherwise}})")
        return Value(result, axes)

    # Derivatives ---------------------------------------------------------------------------------------------

    def derivative(self, node: Deriv) -> Value:
        """``\\frac{\\partial \\ell}{\\partial \\gamma}``: autograd through the block's graph when ℓ was computed
        from γ with requires_grad; otherwise the numerator's own expression, re-evaluated on a fresh leaf."""
        import torch

        wrt = node.wrt
        layout = self.layouts.get(id(wrt))
        name = layout.name if layout is not None else wrt.name
        obj = self.raw(name)
        if obj is None:
            raise FormulaError(f"{self.missing(wrt)} (the variable of {node.src})")
        inputs = _graph_inputs(obj)
        with torch.enable_grad():
            diagonal = layout is None
            if inputs is not None:
                out = self.evaluate(node.num)
                if out.data.requires_grad:
                    grad = _jacobian(out, inputs, node.src, diagonal)
                    return self.label_jacobian(node, out, grad, layout)
            leaf = _as_tensor(obj, wrt.src).detach().clone().requires_grad_(True)
            inner = _Evaluation(self.checker, self.equation, {**self.overrides, name: leaf})
            inner.ranges, inner.layouts, inner.cache = self.ranges, self.layouts, self.cache
            function = self.raw(node.num.name) if isinstance(node.num, Sym) else None
            if _is_function(function):  # \frac{df}{dx}: the function applied to its variable
                out = inner.call_function(node.num, function, [Value(leaf)])
            else:
                out = inner.evaluate(node.num)
            if not out.data.requires_grad:
                raise FormulaError(f"{node.src}: {_num_src(node)} does not depend on {wrt.src} through autograd; "
                                   f"in the block, set requires_grad=True on {name} before computing it")
            grad = _jacobian(out, [leaf], node.src, diagonal)
        return self.label_jacobian(node, out, grad, layout)

    def label_jacobian(self, node: Deriv, out: Value, grad, layout: _Layout | None) -> Value:
        """The derivative's tensor (numerator entries × variable entries) with the numerator's index axes and
        the variable's subscripts (``\\partial \\ell / \\partial y^{(i)}`` labels the samples)."""
        grad = grad.detach()
        k = out.data.dim()
        if layout is None:  # a gradient, an elementwise derivative, or a Jacobian [*numerator, *variable]
            return Value(grad, out.axes, out.row if grad.dim() == k else False)
        plain = k - len(out.axes)  # the numerator's plain dimensions come between its axes and the variable's
        shifted = _Layout(layout.name, tuple(d + plain for d in layout.dims), layout.exprs)
        if not out.axes and k == 0:
            return self.gather(grad, layout)
        return self.gather(grad, shifted, leading=out.axes)


def _index_argument(node: Node) -> IndexValue | None:
    """An argument that is an index: ``x`` in ``P(x)`` under ``\\sum_x``, or ``X = x`` in ``P(X = x)``."""
    if isinstance(node, IndexValue):
        return node
    if isinstance(node, Compare) and node.ops == ("==",):
        found = [t for t in node.terms if isinstance(t, IndexValue)]
        return found[0] if len(found) == 1 else None
    return None


def _indexed_arguments(node: Apply) -> bool:
    """Are the arguments indexed symbols, apart from given values (``p(x_i \\mid \\theta)``)?"""
    indexed = [a for a in node.args if isinstance(a, Sym) and (a.indices or a.sample is not None)]
    plain = [a for a in node.args if isinstance(a, Sym) and not a.indices and a.sample is None]
    return bool(indexed) and len(indexed) + len(plain) == len(node.args)


def _call_user_function(function, datas: list, device):
    """Call a function the block bound with the formula's float64 CPU arguments, or as it expects them: a module in
    its parameters' dtype and device, else float32 or the device of the block's tensors when float64 fails."""
    import torch

    parameter = next(function.parameters(), None) if isinstance(function, torch.nn.Module) else None
    if parameter is not None:
        return function(*(d.to(device=parameter.device, dtype=parameter.dtype) for d in datas))
    try:
        return function(*datas)
    except (RuntimeError, TypeError) as first:
        for dtype, target in ((torch.float32, None), (torch.float64, device), (torch.float32, device)):
            if target is None and dtype == torch.float64:
                continue
            try:
                return function(*(d.to(dtype=dtype, device=target or d.device) for d in datas))
            except (RuntimeError, TypeError):
                continue
        raise first


def _is_sequence(node: Node) -> bool:
    return isinstance(node, Reduce) and node.kind == "stack"


def _num_src(node: Deriv) -> str:
    return node.num.src or "the numerator"


def _graph_inputs(obj):
    """The tensors autograd can differentiate with respect to: the binding itself, or each item of a list."""
    import torch

    if isinstance(obj, torch.Tensor):
        return [obj] if obj.requires_grad else None
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(i, torch.Tensor) and i.requires_grad for i in obj):
        return list(obj)
    return None


def _jacobian(out: Value, inputs: list, src: str, diagonal: bool):
    """d out / d inputs: a gradient for a scalar; the diagonal when ``out`` depends on each input entry alone
    (``\\frac{d}{dx}\\tanh(x)``); else the full Jacobian [*out, *input]."""
    import torch

    data = out.data
    stack = len(inputs) > 1

    def grads(output, grad_output):
        found = torch.autograd.grad(output, inputs, grad_output, retain_graph=True, allow_unused=True)
        parts = [torch.zeros_like(i) if g is None else g for g, i in zip(found, inputs, strict=True)]
        return (torch.stack(parts) if stack else parts[0]).to(torch.float64).cpu()

    if data.numel() == 1 and not out.axes:
        return grads(data.reshape(()), None)
    shape = tuple(torch.stack([i.detach() for i in inputs]).shape) if stack else tuple(inputs[0].shape)
    if diagonal and tuple(data.shape) == shape:
        ones = grads(data, torch.ones_like(data))
        probe = torch.randn_like(data)
        if torch.allclose(grads(data, probe), ones * probe, rtol=1e-6, atol=1e-9):
            return ones  # diagonal: an elementwise derivative
    if data.numel() > MAX_JACOBIAN:
        raise FormulaError(f"{src}: a Jacobian with {data.numel()} rows is too large to evaluate")
    flat = data.reshape(-1)
    rows = [grads(flat[n], None) for n in range(flat.numel())]
    return torch.stack(rows).reshape(*data.shape, *shape)


def _elementwise_derivative(out: Value, leaf, src: str):
    import torch

    data = out.data
    if tuple(data.shape) != tuple(leaf.shape):
        raise FormulaError(f"{src}: the function does not act entry by entry, so its derivative is a Jacobian")
    ones = torch.autograd.grad(data, leaf, torch.ones_like(data), retain_graph=True, allow_unused=True)[0]
    if ones is None:
        return torch.zeros_like(leaf)
    probe = torch.randn_like(data)
    check = torch.autograd.grad(data, leaf, probe, retain_graph=True)[0]
    if not torch.allclose(check, ones * probe, rtol=1e-6, atol=1e-9):
        raise FormulaError(f"{src}: the function mixes entries (like softmax), so its derivative is a Jacobian, "
                           f"not a value per entry")
    return ones


# Built-in functions --------------------------------------------------------------------------------------------

def _builtin(node: Call, args: list[Value]) -> Value:
    """A built-in function of notevault.latex.FUNCTIONS, on evaluated arguments."""
    evaluate = _builtins().get(node.func)
    if evaluate is None:
        raise FormulaError(f"`{node.src}`: the function {node.written} is not evaluated")
    return evaluate(node, args)


_BUILTINS: dict = {}


def _builtins() -> dict:
    """Canonical name → evaluation, built on first use (torch is imported then, not when the CLI loads this)."""
    if _BUILTINS:
        return _BUILTINS
    import torch
    import torch.nn.functional as F

    entrywise = {"exp": torch.exp, "log": torch.log, "sin": torch.sin, "cos": torch.cos, "tan": torch.tan,
                 "sinh": torch.sinh, "cosh": torch.cosh, "tanh": torch.tanh, "arcsin": torch.asin,
                 "arccos": torch.acos, "arctan": torch.atan, "erf": torch.erf, "erfc": torch.erfc, "sqrt": torch.sqrt,
                 "abs": torch.abs, "floor": torch.floor, "ceil": torch.ceil, "sigmoid": torch.sigmoid,
                 "relu": torch.relu, "gelu": F.gelu, "silu": F.silu, "softplus": F.softplus, "sign": torch.sign,
                 "factorial": lambda x: torch.exp(torch.lgamma(x + 1))}
    along = {"softmax": lambda x: torch.softmax(x, -1), "log_softmax": lambda x: torch.log_softmax(x, -1),
             "logsumexp": lambda x: torch.logsumexp(x, -1)}
    _BUILTINS.update({name: _entrywise(function) for name, function in entrywise.items()})
    _BUILTINS.update({name: _along_vector(function) for name, function in along.items()})
    _BUILTINS.update(max=_extremum(torch.maximum, torch.amax), min=_extremum(torch.minimum, torch.amin),
                     clip=_clip, binom=_binomial, det=_matrix(torch.linalg.det),
                     trace=_matrix(lambda m: m.diagonal(dim1=-2, dim2=-1).sum(-1)))
    return _BUILTINS


def _entrywise(function):
    def evaluate(node: Call, args: list[Value]) -> Value:
        _arity(node, args, 1)
        return Value(function(args[0].data), args[0].axes, args[0].row)
    return evaluate


def _along_vector(function):
    """softmax and friends act along the last dimension; ``\\mathrm{softmax}(x_i)`` along its one index."""
    def evaluate(node: Call, args: list[Value]) -> Value:
        _arity(node, args, 1)
        value = args[0]
        if not value.plain and len(value.axes) != 1:
            raise FormulaError(f"`{node.src}`: {node.written} of a single number (it acts along a vector)")
        return Value(function(value.data), value.axes)
    return evaluate


def _extremum(pairwise, reduce):
    """``\\max(0, x)`` entrywise; ``\\max(x)`` of a vector, over its last dimension."""
    def evaluate(node: Call, args: list[Value]) -> Value:
        if len(args) == 1:
            if not args[0].plain:
                raise FormulaError(f"`{node.src}`: \\{node.func} of a single number")
            return Value(reduce(args[0].data, -1), args[0].axes)
        result = args[0]
        for arg in args[1:]:
            _check_broadcast(node, result, arg)
            result = _elementwise(pairwise, result, arg)
        return result
    return evaluate


def _clip(node: Call, args: list[Value]) -> Value:
    import torch

    _arity(node, args, 3)
    return _elementwise(lambda x, low, high: torch.minimum(torch.maximum(x, low), high), *args)


def _binomial(node: Call, args: list[Value]) -> Value:
    import torch

    _arity(node, args, 2)
    return _elementwise(lambda n, k: torch.exp(torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)),
                        *args)


def _matrix(function):
    def evaluate(node: Call, args: list[Value]) -> Value:
        _arity(node, args, 1)
        if len(args[0].plain) < 2:
            raise FormulaError(f"`{node.src}`: {node.written} of something that is not a matrix")
        return Value(function(args[0].data), args[0].axes)
    return evaluate


def _arity(node: Call, args: list, count: int) -> None:
    if len(args) != count:
        raise FormulaError(f"`{node.src}`: {node.written} takes {count} argument{'s' if count > 1 else ''}, "
                           f"not {len(args)}")


# Checking ------------------------------------------------------------------------------------------------------

@dataclass
class _Worst:
    abs_err: float = 0.0
    rel_err: float = 0.0
    shapes: tuple[str, str] | None = None
    checked: int = 0


def check_formula(latex: str, namespace: dict, *, rtol: float = 1e-5, atol: float = 1e-6) -> Outcome:
    """Evaluate every equation of a display formula with the block's names and compare it with its left side."""
    try:
        formula = parse_formula(latex)
    except LatexError as exc:
        return Outcome(f"cannot evaluate the formula: {exc}")
    except Exception as exc:  # a defect of the reader: reported on the formula, never as a raw traceback
        return Outcome(f"cannot evaluate the formula: notevault could not read it ({type(exc).__name__}: {exc})")
    checker = _Checker(formula, namespace)
    worst = _Worst()
    for equation in formula.equations:
        if checker.is_definition(equation):
            continue
        try:
            mismatch = _check_equation(checker, equation, rtol, atol, worst)
        except ShapeMismatch as exc:
            return Outcome(str(exc), shapes=exc.shapes)
        except LatexError as exc:
            return Outcome(f"cannot evaluate the formula: {exc}")
        except Exception as exc:  # a defect of notevault's evaluation, named with the equation it was on
            return Outcome(f"cannot evaluate the formula: notevault failed on `{_one_line(equation.src)}` "
                           f"({type(exc).__name__}: {exc})")
        if mismatch is not None:
            return mismatch
    if not worst.checked:
        return Outcome("cannot evaluate the formula: every equation defines a name the block did not bind, so "
                       "nothing is compared")
    return Outcome(None, worst.abs_err, worst.rel_err, worst.shapes)


def _check_equation(checker: _Checker, equation: Equation, rtol: float, atol: float, worst: _Worst):
    import torch

    evaluation = _Evaluation(checker, equation)
    lhs = _reference_node(evaluation, equation.lhs)
    compared = _evaluate_equation(evaluation, equation, lhs)
    for ref, val, where in compared:
        with torch.no_grad():
            abs_err, rel_err, close = _difference(ref, val, where, rtol, atol)
        shapes = (_shape(val, evaluation, lhs), _shape(ref, evaluation, lhs))
        worst.abs_err, worst.rel_err = max(worst.abs_err, abs_err), max(worst.rel_err, rel_err)
        worst.shapes, worst.checked = shapes, worst.checked + 1
        if not close:
            return Outcome(f"formula mismatch: {_one_line(equation.src)} — max abs err {abs_err:.3g}, max rel err "
                           f"{rel_err:.3g} (rtol={rtol:g}, atol={atol:g} × max|reference|)", abs_err, rel_err,
                           shapes)
    return None


def _evaluate_equation(evaluation: _Evaluation, equation: Equation, lhs: Node) -> list:
    """Reference and formula values, under the preferred reading of the indices; when a reading cannot be
    evaluated (shapes that do not multiply), the next one that fits the index ranges is tried."""
    nodes = [lhs, *equation.sides[1:], *([equation.condition] if equation.condition is not None else [])]
    indices = _Indices(evaluation)
    count = indices.resolve(nodes)
    first_error = None
    attempts = [(number, rows) for rows in (False, True) for number in range(min(count, MAX_READINGS))]
    for number, rows in attempts:
        indices.install(number)
        evaluation.row_batches = rows
        try:
            reference = evaluation.evaluate(lhs)
            evaluation.scalar_reference = not reference.plain  # one number (per index): e_{ij} = q_i · k_j
            mask = evaluation.evaluate(equation.condition) if equation.condition is not None else None
            return [_comparable(equation, reference, evaluation.evaluate(side), mask) for side in equation.sides[1:]]
        except FormulaError as exc:
            first_error = first_error or exc
    raise first_error


def _shape(data, evaluation: _Evaluation, lhs: Node) -> str:
    """A compared tensor's shape as the reference has it: its index axes back in the dimensions they label."""
    layout = evaluation.layouts.get(id(lhs))
    plain_gather = layout is not None and layout.exprs and not (layout.select or layout.label or layout.kronecker)
    if plain_gather and len({ix.var for ix in layout.exprs}) == len(layout.exprs) and not any(
            ix.others or ix.via for ix in layout.exprs):
        data = data.movedim(list(range(len(layout.dims))), list(layout.dims))
    return str(list(data.shape))


def _reference_node(evaluation: _Evaluation, lhs: Node) -> Node:
    """The left side names the block's reference: ``\\mathrm{ReLU}(x)`` is the tensor the block bound to ReLU
    (torch's own ReLU of x when it bound none); ``Attention(Q, K, V)`` is the tensor Attention."""
    if isinstance(lhs, Call) and lhs.written:
        for name in (lhs.written, lhs.func):
            if _is_tensor_binding(evaluation.raw(name)):
                arg = lhs.args[0] if len(lhs.args) == 1 else None
                if isinstance(arg, Sym) and (arg.indices or arg.sample is not None):
                    return Sym(name, lhs.src, arg.indices, arg.sample)  # \mathrm{Softmax}(x_i): component i
                return Sym(name, lhs.src)
    if isinstance(lhs, Subscripted) and isinstance(lhs.arg, Call):
        for name in (lhs.arg.written, lhs.arg.func):
            if _is_tensor_binding(evaluation.raw(name)):
                return Sym(name, lhs.src, lhs.indices)
    if isinstance(lhs, Apply) and not lhs.target.indices and _is_tensor_binding(evaluation.raw(lhs.target.name)):
        return lhs.target
    if isinstance(lhs, Subscripted) and isinstance(lhs.arg, Apply) and not lhs.arg.target.indices:
        target = lhs.arg.target
        if _is_tensor_binding(evaluation.raw(target.name)):
            return Sym(target.name, lhs.src, lhs.indices)  # \sigma(z)_j = …: component j of the block's sigma
    return lhs


def _is_diagonal(value: Value) -> bool:
    """A square matrix (n > 1) whose entries off the diagonal are all zero."""
    import torch

    if len(value.plain) < 2 or value.plain[-1] != value.plain[-2] or value.plain[-1] < 2:
        return False
    data = value.data
    eye = torch.eye(data.shape[-1], dtype=torch.bool, device=data.device)
    return bool((data.masked_fill(eye, 0) == 0).all())


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(size for size in shape if size != 1)


def _is_tensor_binding(obj) -> bool:
    return obj is not None and not _is_function(obj)


def _comparable(equation: Equation, reference: Value, value: Value, mask: Value | None):
    """Reference and formula value as tensors of one shape, with the formula's index axes put in the
    reference's order."""
    import torch

    extra = [a for a in value.axes if a not in reference.axes]
    if extra:
        raise FormulaError(f"in {_one_line(equation.src)}, the index {extra[0].split('#')[0]} is free on the right "
                           f"side but not on the left")
    ref = reference.data.detach()
    plain = value.plain if value.plain else reference.plain
    if (value.plain and tuple(value.plain) != tuple(reference.plain) and not reference.axes
            and _squeezed(value.plain) == _squeezed(reference.plain)):
        ref, plain = ref.reshape(value.plain), value.plain  # keepdim=True: [B, 1] holds the values [B] does
    elif value.plain and tuple(value.plain) != tuple(reference.plain):
        shapes = (str(list(value.plain)), str(list(reference.plain)))
        raise ShapeMismatch(f"shape mismatch in {_one_line(equation.src)}: formula gives {shapes[0]}, reference is "
                            f"{shapes[1]}", shapes)
    val = _expand(value, reference.axes, len(plain)).detach()
    val = val.expand(ref.shape) if val.shape != ref.shape else val
    where = None
    if mask is not None:
        where = _expand(mask, reference.axes, len(plain)).expand(ref.shape).to(torch.bool)
    return ref, val, where


def _difference(ref, val, where, rtol: float, atol: float) -> tuple[float, float, bool]:
    """The tolerance rule: |val − ref| ≤ atol·max|ref| + rtol·|ref| elementwise (a reference that is exactly zero
    everywhere has scale 1)."""
    import torch

    if where is not None:
        ref, val = ref[where], val[where]
        if ref.numel() == 0:
            raise FormulaError("no entry meets the formula's condition, so nothing is compared")
    if ref.numel() == 0:
        raise FormulaError("the reference is empty, so nothing is compared")
    if bool(torch.isnan(ref).all()):
        raise FormulaError("the reference is NaN everywhere, so nothing is compared")
    finite = torch.isfinite(ref)
    scale = float(ref[finite].abs().max()) if bool(finite.any()) else 0.0
    scale = scale if scale > 0 else 1.0
    # an infinite (or NaN) reference entry is matched only by the same value: rtol · ∞ would accept anything
    exact = ~finite & ((ref == val) | torch.isnan(ref) & torch.isnan(val))
    off = torch.where(exact, torch.zeros_like(ref), torch.full_like(ref, math.inf))
    diff = torch.where(finite, (val - ref).abs(), off)
    diff = torch.where(torch.isnan(diff), torch.full_like(diff, math.inf), diff)
    allowed = torch.where(finite, atol * scale + rtol * ref.abs(), torch.zeros_like(ref))
    close = bool((diff <= allowed).all())
    abs_err = float(diff.max())
    return abs_err, abs_err / scale, close


def _one_line(text: str) -> str:
    return " ".join(text.split())


# Listing -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FormulaInfo:
    id: str | None
    line: int
    latex: str
    evaluable: bool
    symbols: tuple[str, ...]
    reason: str | None = field(default=None)


def describe(latex: str, block_id: str | None, line: int) -> FormulaInfo:
    """Whether notevault can evaluate a display formula, and exactly the python names a check must bind."""
    if latex.lstrip().startswith("="):
        return FormulaInfo(block_id, line, latex, False, (), "continues the formula above it (starts with '=')")
    try:
        formula = parse_formula(latex)
        names = tuple(symbols(formula))
    except LatexError as exc:
        return FormulaInfo(block_id, line, latex, False, (), str(exc))
    except Exception as exc:  # a defect of the reader must not stop `notevault formulas` or `lint`
        return FormulaInfo(block_id, line, latex, False, (), f"notevault could not read it ({type(exc).__name__})")
    return FormulaInfo(block_id, line, latex, True, names, None)


@dataclass(frozen=True)
class NoteFormulas:
    path: str  # as shown to the user, relative to the current folder
    formulas: tuple[FormulaInfo, ...]


def list_formulas(vault, paths: list[Path]) -> list[NoteFormulas]:
    """``notevault formulas``: every display formula of the notes under ``paths`` (report.py renders them)."""
    from .note import Note
    from .vault import display_path

    notes = []
    for path in vault.notes(paths).notes:
        note = vault.note(vault.relative(path))
        if isinstance(note, Note):
            notes.append(NoteFormulas(display_path(path), tuple(describe(m.latex, m.block_id, m.line)
                                                                for m in note.maths)))
    return notes
