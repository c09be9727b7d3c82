"""Formula checks: the note's own LaTeX parsed and evaluated on torch tensors (SPEC §3).

FINDINGS: sympy's LaTeX readers silently misread ML notation (``\\gamma`` as Euler's constant, ``\\log`` in base
10, ``QK^T`` without the transpose, ``x^{(i)}`` as a power). A silent misread is worse than an error, so this
module reads the notation these notes use with a small recursive-descent parser and evaluates it straight into
torch; anything else is an error that names the construct.

Naming rule (how a LaTeX symbol becomes the python name a check block binds):
- Greek letters by name: ``\\mu`` → ``mu``; ``\\varepsilon`` → ``varepsilon``, else ``epsilon``, else ``eps``.
- Accents become suffixes: ``\\hat{x}`` → ``x_hat``, ``\\bar{x}`` → ``x_bar``, ``\\tilde``/``\\widetilde`` → ``_tilde``.
- Subscripts are joined with ``_``: ``\\mu_B`` → ``mu_B``, ``\\hat{m}_t`` → ``m_hat_t``, ``W_{q}`` → ``W_q``;
  ``_{t-1}`` → ``_prev`` and ``_{t+1}`` → ``_next`` (``m_{t-1}`` → ``m_prev``); ``\\text{Var}_i`` → ``Var_i``.
- Font commands are transparent: ``\\mathbf{x}`` → ``x``.
- A prime is ``_prime``: ``G'`` → ``G_prime``.
Inside ``\\sum_{i=1}^{m}`` (and ``\\prod``) a subscript or ``^{(i)}`` naming the index selects along dim 0
(outside such a sum, ``\\hat{x}^{(i)}`` means every sample at once):
``x^{(i)}`` → ``x[i-1]``, ``A_{ij}`` → ``A[i-1, j-1]``. A sum without bounds (``\\sum_j e^{z_j}``, ``\\sum_x P(x)``)
reduces the last dimension; a free single-letter subscript reads elementwise (``z_i`` → ``z`` when ``z_i`` is unbound).
``^T`` is a transpose (of the last two dims); ``\\mathbb{E}[X]`` is the mean over dim 0; ``\\log`` is natural.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta", "iota",
    "kappa", "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi", "varphi", "chi", "psi",
    "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Phi", "Psi", "Omega",
}
ACCENTS = {"hat": "hat", "widehat": "hat", "bar": "bar", "overline": "bar", "tilde": "tilde",
           "widetilde": "tilde", "vec": "vec", "dot": "dot"}
FONTS = {"mathbf", "boldsymbol", "mathit", "bm", "mathsf", "mathtt"}  # transparent: \mathbf{x} is x
SPACES = {",", ";", ":", "!", "quad", "qquad", " ", "left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr",
          "Bigl", "Bigr", "displaystyle", "limits"}
FUNCTIONS = {
    "exp": "exp", "log": "log", "ln": "log", "sin": "sin", "cos": "cos", "tanh": "tanh", "sqrt": "sqrt",
    "softmax": "softmax", "sigmoid": "sigmoid", "relu": "relu", "max": "max", "min": "min", "mean": "mean",
    "abs": "abs", "sign": "sign", "tanh'": "tanh",
}
UNSUPPORTED = {
    "int": "integral \\int", "partial": "partial derivative \\partial", "nabla": "gradient \\nabla",
    "arg": "\\arg max/min", "mathcal": "\\mathcal", "sim": "\\sim (a distribution)", "setminus": "set difference",
    "cup": "set union", "cap": "set intersection", "langle": "inner product \\langle…\\rangle",
    "cdots": "ellipsis \\cdots", "dots": "ellipsis \\dots", "ldots": "ellipsis \\ldots", "vdots": "ellipsis",
    "begin": "environment", "underset": "\\underset", "approx": "\\approx", "mid": "conditional \\mid",
    "leq": "inequality", "geq": "inequality", "le": "inequality", "ge": "inequality", "neq": "inequality",
    "in": "set membership \\in", "to": "limit \\to", "infty": "infinity", "lim": "limit", "mathbb": "\\mathbb",
}
# A run of three or more letters is one name ("Attention", "Loss"); shorter runs are juxtaposed symbols ("QK").
# \text{…}-like commands are one token with their words, so "\text{Effective learning rate}" keeps its spaces.
TEXT_COMMAND = re.compile(r"^\\(?P<command>text|mathrm|operatorname|textrm|textit|textbf)\{(?P<text>[^{}]*)\}$")
TOKEN = re.compile(
    r"\\(?:text|mathrm|operatorname|textrm|textit|textbf)\{[^{}]*\}|\\[A-Za-z]+|\\.|[A-Za-z]{3,}|[A-Za-z]"
    r"|\d+(?:\.\d+)?|\S"
)
ARGUMENT_SEPARATORS = (",", "\\|", "|", ";")


class FormulaError(Exception):
    """The formula cannot be evaluated: names the LaTeX construct or the missing binding."""


# The expression tree -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Sym:
    base: str  # python name without subscript: "m_hat"
    sub: tuple[str, ...] = ()  # subscript parts: ("t",) or ("i", "j")
    sample: str | None = None  # x^{(i)}
    latex: str = ""

    def name(self) -> str:
        return "_".join((self.base, *self.sub)) if self.sub else self.base


@dataclass(frozen=True)
class Op:
    op: str  # + - * / pow matmul-or-mul odot neg transpose
    args: tuple


@dataclass(frozen=True)
class Call:
    func: str  # a known function, or a bound name applied to arguments
    args: tuple
    sym: Sym | None = None


@dataclass(frozen=True)
class Reduce:
    kind: str  # sum | prod
    index: str
    lower: object | None
    upper: object | None
    body: object


@dataclass(frozen=True)
class Norm:
    arg: object
    p: object | None


@dataclass(frozen=True)
class Equation:
    lhs: object
    rhs: tuple
    latex: str


# The parser ----------------------------------------------------------------------------------------------------

class _Parser:
    def __init__(self, latex: str) -> None:
        self.tokens = [t for t in TOKEN.findall(latex) if t[1:] not in SPACES or not t.startswith("\\")]
        self.pos = 0
        self.in_arguments = 0  # inside f(…): "\|" and "|" separate arguments (P \| Q, p(x | θ))

    def peek(self, ahead: int = 0) -> str | None:
        at = self.pos + ahead
        return self.tokens[at] if at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise FormulaError(f"expected {expected or 'more'} but found {token or 'the end'}")
        self.pos += 1
        return token

    def group_text(self) -> str:
        """The raw tokens of a ``{…}`` group (or a single token) as text."""
        if self.peek() != "{":
            return self.take()
        self.take("{")
        depth, parts = 1, []
        while True:
            token = self.take()
            depth += token == "{"
            depth -= token == "}"
            if depth == 0:
                return "".join(parts)
            parts.append(token)

    def group(self):
        if self.peek() == "{":
            self.take("{")
            node = self.expr()
            self.take("}")
            return node
        return self.atom()

    def expr(self):
        node = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            node = Op(op, (node, self.term()))
        return node

    def term(self):
        node = self.unary()
        while True:
            token = self.peek()
            if token in ("\\cdot", "\\times", "*"):
                self.take()
                node = Op("mul", (node, self.unary()))
            elif token == "/":
                self.take()
                node = Op("/", (node, self.unary()))
            elif token == "\\odot":
                self.take()
                node = Op("odot", (node, self.unary()))
            elif token is not None and self._starts_atom(token):
                node = Op("mul", (node, self.postfix()))
            else:
                return node

    def _starts_atom(self, token: str) -> bool:
        """Can this token begin a factor multiplied by juxtaposition (``QK``, ``2x``, ``\\gamma \\hat{x}``)?"""
        if token == "\\|":
            return not self.in_arguments
        if token in ("(", "{") or re.match(r"^[A-Za-z0-9]", token):
            return True
        return token.startswith("\\") and token not in ("\\cdot", "\\times", "\\odot", "\\\\")

    def unary(self):
        if self.peek() == "-":
            self.take()
            return Op("neg", (self.unary(),))
        if self.peek() == "+":
            self.take()
        return self.postfix()

    def postfix(self):
        node = self.atom()
        while self.peek() in ("^", "_", "'"):
            token = self.take()
            if token == "'":
                node = _rename(node, "prime")
            elif token == "_":
                node = _subscript(node, self.group_text())
            else:
                node = self._power(node)
        if isinstance(node, Sym) and self.peek() == "(":  # f(x), P(x), \sigma(z), f_t(\theta_t)
            return Call("apply", self._arguments(), node)
        return node

    def _is_transpose(self) -> bool:
        if self.peek() in ("T", "\\top"):
            return True
        return self.peek() == "{" and self.peek(1) in ("T", "\\top") and self.peek(2) == "}"

    def _power(self, node):
        if self.peek() == "*":  # \theta^*: an optimum, named theta_star
            self.take()
            return _label(node, "star")
        if self._is_transpose():
            self.group_text()
            return Op("transpose", (node,))
        if self.peek() == "{" and (self.peek(1) == "(" or (self.peek(2) == "(" and self.peek(1).isdigit())):
            text = self.group_text()
            match = re.fullmatch(r"(\d*)\((\w+)\)", text)  # x^{(i)}: sample i; \sigma^{2(k)}: its square
            if match and isinstance(node, Sym):
                sample = Sym(node.base, node.sub, match.group(2), node.latex)
                return Op("pow", (sample, Num(float(match.group(1))))) if match.group(1) else sample
            raise FormulaError(f"superscript {{{text}}}")
        if self.peek() == "{" and self.peek(2) == "}" and TEXT_COMMAND.match(self.peek(1) or ""):
            label = TEXT_COMMAND.match(self.group_text())["text"]
            return _label(node, re.sub(r"[ -]+", "_", label.strip()))  # \mu_B^{\text{global}}: a label
        exponent = self.group()
        if isinstance(node, Sym) and isinstance(exponent, Sym) and self.peek() == "(":
            return _label(node, exponent.name())  # V^\theta(s): a superscripted name applied, not a power
        return Op("pow", (node, exponent))

    def atom(self):
        token = self.take()
        if token in ("(", "["):
            closing = ")" if token == "(" else "]"
            items = [self.expr()]
            while self.peek() == ",":
                self.take()
                items.append(self.expr())
            self.take(closing)
            return items[0] if len(items) == 1 else Op("stack", tuple(items))
        if token == "{":
            node = self.expr()
            self.take("}")
            return node
        if token == "\\|":
            inner = self.expr()
            self.take("\\|")
            p = None
            if self.peek() == "_":
                self.take()
                p = self.group()
            return Norm(inner, p)
        if re.fullmatch(r"\d+(?:\.\d+)?", token):
            return Num(float(token))
        if re.fullmatch(r"[A-Za-z]+", token):
            return Sym(token, latex=token)
        if TEXT_COMMAND.match(token):
            return self._text(token)
        if token.startswith("\\"):
            return self._command(token[1:])
        raise FormulaError(f"unexpected '{token}'")

    def _text(self, token: str):
        """``\\text{softmax}(…)`` is a function; ``\\text{Var}``, ``\\mathrm{TD-Error}`` are names."""
        match = TEXT_COMMAND.match(token)
        text = match["text"].strip()
        if text.lower() in FUNCTIONS and self.peek() in ("(", "{"):
            return Call(FUNCTIONS[text.lower()], self._arguments())
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(?:[ -][A-Za-z0-9]+)*", text):
            raise FormulaError(f"\\{match['command']}{{{text}}} is not a symbol or a known function")
        return Sym(re.sub(r"[ -]+", "_", text), latex=token)

    def _command(self, name: str):
        if name == "frac":
            return Op("/", (self.group(), self.group()))
        if name == "sqrt":
            if self.peek() == "[":
                self.take("[")
                root = self.expr()
                self.take("]")
                return Op("pow", (self.group(), Op("/", (Num(1.0), root))))
            return Call("sqrt", (self.group(),))
        if name in ("sum", "prod"):
            return self._reduce(name)
        if name in GREEK:
            return Sym(name, latex="\\" + name)
        if name in ACCENTS:
            inner = self.group()
            return _rename(inner, ACCENTS[name])
        if name == "mathbb":
            letter = self.group_text()
            if letter == "E":
                if self.peek() == "_":
                    raise FormulaError("\\mathbb{E}_{…}: an expectation over a distribution")
                self.take("[") if self.peek() == "[" else None
                inner = self.expr()
                self.take("]")
                return Call("expectation", (inner,))
            raise FormulaError(f"\\mathbb{{{letter}}}")
        if name in FONTS:
            return self.group()
        if name in FUNCTIONS:
            if self.peek() == "_":  # \max_i …
                raise FormulaError(f"\\{name} with a subscript")
            if self.peek() in ("(", "["):
                return Call(FUNCTIONS[name], self._arguments())
            return Call(FUNCTIONS[name], (self.postfix(),))
        if name in UNSUPPORTED:
            raise FormulaError(UNSUPPORTED[name])
        raise FormulaError(f"\\{name}")

    def _arguments(self) -> tuple:
        opening = self.take()
        closing = {"(": ")", "[": "]", "{": "}"}[opening]
        self.in_arguments += 1
        args = [self.expr()]
        while self.peek() in ARGUMENT_SEPARATORS:
            self.take()
            args.append(self.expr())
        self.in_arguments -= 1
        self.take(closing)
        return tuple(args)

    def _reduce(self, kind: str):
        if self.peek() != "_":
            raise FormulaError(f"\\{kind} without an index")
        self.take("_")
        text = self.group_text()
        match = re.fullmatch(r"([A-Za-z])(?:=(.+))?", text)
        if not match:
            raise FormulaError(f"\\{kind}_{{{text}}}")
        index, lower, upper = match.group(1), None, None
        if match.group(2) is not None:
            lower = _Parser(match.group(2)).whole()
        if self.peek() == "^":
            self.take("^")
            upper = self.group()
        body = self.term()
        return Reduce(kind, index, lower, upper, body)

    def whole(self):
        node = self.expr()
        if self.peek() is not None:
            raise FormulaError(f"'{self.peek()}' where the expression should end")
        return node


def _rename(node, suffix: str):
    if isinstance(node, Sym):
        return Sym(f"{node.base}_{suffix}", node.sub, node.sample, node.latex)
    if isinstance(node, Call) and node.sym is not None:
        return Call(node.func, node.args, _rename(node.sym, suffix))
    raise FormulaError(f"an accent on something that is not a symbol ({suffix})")


def _label(node, label: str):
    """A superscript that names rather than raises: ``\\mu_B^{\\text{global}}`` → ``mu_B_global``."""
    if isinstance(node, Sym):
        return Sym(node.base, node.sub + (label,), node.sample, node.latex)
    return _rename(node, label)


def _subscript(node, text: str):
    if not isinstance(node, Sym):
        if isinstance(node, Call) and node.sym is not None:
            return Call(node.func, node.args, _subscript(node.sym, text))
        if re.fullmatch(r"\{?[a-z]\}?", text):
            return node  # softmax(z)_i: a free component index, read elementwise
        raise FormulaError(f"subscript _{{{text}}} on an expression")
    clean = re.sub(r"\\(?:text|mathrm|mathbf)|[{} ]", "", text)
    parts = tuple(_subscript_part(part) for part in clean.split(","))
    return Sym(node.base, node.sub + parts, node.sample, node.latex)


def _subscript_part(part: str) -> str:
    """``t-1`` → ``prev``, ``t+1`` → ``next``, ``t+2`` → ``t_plus_2``, ``non-robust`` → ``non_robust``."""
    if re.fullmatch(r"[A-Za-z]-1", part):
        return "prev"
    if re.fullmatch(r"[A-Za-z]\+1", part):
        return "next"
    match = re.fullmatch(r"([A-Za-z])([+-])(\d+)", part)
    if match:
        return f"{match[1]}_{'plus' if match[2] == '+' else 'minus'}_{match[3]}"
    if re.fullmatch(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*", part):
        return part.replace("-", "_")
    raise FormulaError(f"subscript _{{{part}}}")


# Splitting a display formula into equations -------------------------------------------------------------------

def equations(latex: str) -> list[str]:
    """The ``LHS = RHS`` equations in a display formula: aligned lines, ``, \\quad``-separated pairs."""
    text = latex.strip()
    aligned = re.fullmatch(r"\\begin\{(aligned|align\*?|split|gathered)\}(.*)\\end\{\1\}", text, re.S)
    lines = re.split(r"\\\\", aligned.group(2)) if aligned else [text]
    result: list[str] = []
    for line in lines:
        if aligned:
            cells = line.split("&")
            line = "".join(cells[:2]) if len(cells) > 2 else "".join(cells)  # a 3rd column is a comment
        for part in re.split(r",\s*\\q?quad", line):
            part = part.strip().rstrip(",.").strip()
            if not part:
                continue
            if part.startswith("=") and result:
                lhs = result[-1].split("=", 1)[0]
                part = lhs + part
            result.append(part)
    return result


def split_sides(equation: str) -> list[str]:
    """Split at top-level ``=`` signs."""
    sides, depth, current = [], 0, []
    for token in TOKEN.findall(equation):
        depth += token in ("{", "(", "[")
        depth -= token in ("}", ")", "]")
        if token == "=" and depth == 0:
            sides.append("".join(_spaced(current)))
            current = []
        else:
            current.append(token)
    sides.append("".join(_spaced(current)))
    return sides


def _spaced(tokens: list[str]) -> list[str]:
    # Re-joining tokens must not glue a command to the next letter: "\mu x" must not become "\mux".
    out = []
    for token in tokens:
        if out and out[-1].startswith("\\") and out[-1][1:].isalpha() and token[:1].isalpha():
            out.append(" ")
        out.append(token)
    return out


def parse_equation(equation: str) -> Equation:
    sides = split_sides(equation)
    if len(sides) < 2:
        raise FormulaError("not an equation (no '=')")
    lhs = _Parser(sides[0]).whole()
    rhs = tuple(_Parser(side).whole() for side in sides[1:])
    return Equation(lhs, rhs, equation)


def symbols(node, found: list[str] | None = None, bound: frozenset[str] = frozenset()) -> list[str]:
    """The python names an expression needs, in reading order."""
    found = [] if found is None else found
    if isinstance(node, Sym):
        name = node.base if set(node.sub) & bound else node.name()
        if name not in found and node.base not in bound:
            found.append(name)
    elif isinstance(node, Op):
        for arg in node.args:
            symbols(arg, found, bound)
    elif isinstance(node, Call):
        if node.sym is not None:
            symbols(node.sym, found, bound)
        for arg in node.args:
            symbols(arg, found, bound)
    elif isinstance(node, Reduce):
        for part in (node.lower, node.upper):
            if part is not None:
                symbols(part, found, bound)
        symbols(node.body, found, bound | {node.index})
    elif isinstance(node, Norm):
        symbols(node.arg, found, bound)
    elif isinstance(node, Equation):
        symbols(node.lhs, found, bound)
        for side in node.rhs:
            symbols(side, found, bound)
    return found


# Evaluation ----------------------------------------------------------------------------------------------------

CANDIDATES = {"varepsilon": ("varepsilon", "epsilon", "eps"), "epsilon": ("epsilon", "eps", "varepsilon")}


@dataclass
class _Scope:
    namespace: dict
    indices: dict[str, int] = field(default_factory=dict)
    reduced: dict[str, bool] = field(default_factory=dict)  # \sum_x without bounds: whole-dimension


def _lookup(sym: Sym, scope: _Scope):
    import torch

    index_parts, name_parts = [], []
    for part in sym.sub:
        if part in scope.reduced:
            continue  # x_i under \sum_i without bounds: the whole dimension
        if part and all(letter in scope.indices for letter in part):
            index_parts.extend(part)  # A_{ij} inside sums over i and j
        else:
            name_parts.append(part)
    base_name = "_".join((sym.base, *name_parts)) if name_parts else sym.base
    if sym.base in scope.indices and not sym.sub:
        return torch.tensor(float(scope.indices[sym.base]), dtype=torch.float64)
    candidates = [base_name]
    for greek, alternatives in CANDIDATES.items():
        if base_name == greek or base_name.startswith(greek + "_"):
            candidates = [base_name.replace(greek, alt, 1) for alt in alternatives]
    value = next((scope.namespace[c] for c in candidates if c in scope.namespace), None)
    parts = list(name_parts)
    while value is None and parts and len(parts[-1]) == 1 and parts[-1].islower():
        # z_i with i free (not a bound sum index): the whole tensor, elementwise ("softmax(z)_i = …")
        parts.pop()
        value = scope.namespace.get("_".join((sym.base, *parts)))
    if value is None:
        raise FormulaError(f"missing binding: {sym.latex or sym.base} needs the python name '{candidates[0]}'")
    value = _as_tensor(value)
    selectors = list(index_parts)
    if sym.sample is not None and sym.sample in scope.indices:
        selectors.insert(0, sym.sample)  # outside a sum over it, x^{(i)} reads the whole batch, elementwise
    if selectors:
        value = value[tuple(scope.indices[s] - 1 for s in selectors)]
    return value


def _as_tensor(value):
    import torch

    if callable(value) and not isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.tensor(float(value), dtype=torch.float64)  # as_tensor would round 0.999 to float32
    tensor = torch.as_tensor(value)
    if tensor.is_floating_point() and tensor.dtype != torch.float64:
        tensor = tensor.to(torch.float64)  # evaluate the formula in float64: its own rounding stays out
    elif not tensor.is_floating_point() and not tensor.is_complex():
        tensor = tensor.to(torch.float64)
    return tensor


def _multiply(a, b):
    import torch

    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dim() >= 2 and b.dim() >= 2:
        return a @ b
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dim() >= 2 and b.dim() == 1:
        return a @ b
    return a * b


def _evaluate(node, scope: _Scope):
    import torch

    if isinstance(node, Num):
        return torch.tensor(node.value, dtype=torch.float64)
    if isinstance(node, Sym):
        return _lookup(node, scope)
    if isinstance(node, Op):
        args = [_evaluate(a, scope) for a in node.args]
        op = node.op
        if op == "+":
            return args[0] + args[1]
        if op == "-":
            return args[0] - args[1]
        if op == "neg":
            return -args[0]
        if op == "/":
            return args[0] / args[1]
        if op == "odot":
            return args[0] * args[1]
        if op == "mul":
            return _multiply(args[0], args[1])
        if op == "pow":
            return args[0] ** args[1]
        if op == "stack":
            return torch.stack(torch.broadcast_tensors(*args), dim=-1)
        if op == "transpose":
            return args[0].transpose(-2, -1) if args[0].dim() >= 2 else args[0]
    if isinstance(node, Call):
        return _call(node, scope)
    if isinstance(node, Reduce):
        return _reduce(node, scope)
    if isinstance(node, Norm):
        value = _evaluate(node.arg, scope)
        p = float(_evaluate(node.p, scope)) if node.p is not None else 2.0
        return torch.linalg.vector_norm(value, ord=p, dim=-1)
    raise FormulaError(f"cannot evaluate {type(node).__name__}")


def _call(node: Call, scope: _Scope):
    import torch

    if node.func == "apply":
        if node.sym.base == "sigma" and not node.sym.sub and "sigma" not in scope.namespace and len(node.args) == 1:
            return torch.sigmoid(_evaluate(node.args[0], scope))  # \sigma(z), no sigma bound: the logistic
        target = _lookup(node.sym, scope)
        if callable(target) and not isinstance(target, torch.Tensor):
            return _as_tensor(target(*(_evaluate(a, scope) for a in node.args)))
        if all(isinstance(a, Sym) for a in node.args):
            return target  # P(x) with P a tensor: the function's values over its support
        if len(node.args) == 1:
            return _multiply(target, _evaluate(node.args[0], scope))  # \beta (1 - x): a product after all
        raise FormulaError(f"{node.sym.latex or node.sym.base}(…) needs a callable")
    args = [_evaluate(a, scope) for a in node.args]
    func = node.func
    simple = {"exp": torch.exp, "log": torch.log, "sin": torch.sin, "cos": torch.cos, "tanh": torch.tanh,
              "sqrt": torch.sqrt, "sigmoid": torch.sigmoid, "relu": torch.relu, "abs": torch.abs,
              "sign": torch.sign}
    if func in simple:
        return simple[func](args[0])
    if func == "softmax":
        return torch.softmax(args[0], dim=-1)
    if func == "expectation":
        return args[0].mean(0) if args[0].dim() else args[0]
    if func == "mean":
        return args[0].mean()
    if func in ("max", "min"):
        if len(args) == 2:
            return torch.maximum(args[0], args[1]) if func == "max" else torch.minimum(args[0], args[1])
        return args[0].max() if func == "max" else args[0].min()
    raise FormulaError(f"function {func}")


def _reduce(node: Reduce, scope: _Scope):
    import torch

    if node.lower is None:  # \sum_j e^{z_j}, \sum_x P(x) …: over the last dimension at once
        inner = _Scope(scope.namespace, dict(scope.indices), {**scope.reduced, node.index: True})
        value = _evaluate(node.body, inner)
        keep = value.dim() >= 2  # so a denominator broadcasts against a batch of vectors
        return value.sum(-1, keepdim=keep) if node.kind == "sum" else value.prod(-1, keepdim=keep)
    lower = int(_evaluate(node.lower, scope))
    upper = int(_evaluate(node.upper, scope)) if node.upper is not None else None
    if upper is None:
        raise FormulaError(f"\\{node.kind} without an upper bound")
    total = None
    for i in range(lower, upper + 1):
        inner = _Scope(scope.namespace, {**scope.indices, node.index: i}, scope.reduced)
        value = _evaluate(node.body, inner)
        total = value if total is None else (total + value if node.kind == "sum" else total * value)
    if total is None:
        return torch.tensor(0.0 if node.kind == "sum" else 1.0, dtype=torch.float64)
    return total


# Checking ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    error: str | None
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    shapes: tuple[str, str] | None = None


def _reference(lhs, scope: _Scope):
    """The left-hand side names the reference a check block computed (``\\hat{x}`` → ``x_hat``)."""
    import torch

    if isinstance(lhs, Call) and lhs.sym is not None:
        value = _lookup(lhs.sym, scope)
        if isinstance(value, torch.Tensor):
            return value
        return _call(lhs, scope)
    return _evaluate(lhs, scope)


def check_formula(latex: str, namespace: dict, *, rtol: float = 1e-5, atol: float = 1e-6) -> Outcome:
    """Evaluate every equation of a display formula with the block's names and compare with its left side."""
    import torch

    worst_abs, worst_rel, shapes = 0.0, 0.0, None
    try:
        parsed = [parse_equation(eq) for eq in equations(latex)]
    except FormulaError as exc:
        return Outcome(f"cannot evaluate the formula: {exc}")
    for equation in parsed:
        scope = _Scope(namespace)
        try:
            reference = _reference(equation.lhs, scope)
            for side in equation.rhs:
                value = _evaluate(side, scope)
                if tuple(value.shape) != tuple(reference.shape):
                    return Outcome(f"shape mismatch in {equation.latex}: formula gives {list(value.shape)}, "
                                   f"reference is {list(reference.shape)}",
                                   shapes=(str(list(value.shape)), str(list(reference.shape))))
                difference = (value - reference.to(value.dtype)).abs()
                abs_err = float(difference.max()) if difference.numel() else 0.0
                rel_err = float((difference / reference.abs().to(value.dtype).clamp_min(1e-30)).max()) \
                    if difference.numel() else 0.0
                worst_abs, worst_rel = max(worst_abs, abs_err), max(worst_rel, rel_err)
                shapes = (str(list(value.shape)), str(list(reference.shape)))
                close = torch.allclose(value, reference.to(value.dtype), rtol=rtol, atol=atol)
                if not close:
                    return Outcome(f"formula mismatch: {equation.latex} — max abs err {abs_err:.3g}, "
                                   f"max rel err {rel_err:.3g} (rtol={rtol:g}, atol={atol:g})",
                                   abs_err, rel_err, shapes)
        except FormulaError as exc:
            return Outcome(f"cannot evaluate the formula: {exc}")
        except (RuntimeError, TypeError, ValueError, IndexError) as exc:
            return Outcome(f"evaluating {equation.latex} failed: {exc}")
    return Outcome(None, worst_abs, worst_rel, shapes)


# Listing -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FormulaInfo:
    id: str | None
    line: int
    latex: str
    evaluable: bool
    symbols: tuple[str, ...]
    reason: str | None


def describe(latex: str, block_id: str | None, line: int) -> FormulaInfo:
    """Whether notevault can evaluate a display formula, and the python names a check must bind."""
    try:
        if latex.lstrip().startswith("="):
            raise FormulaError("continues the formula above it (starts with '=')")
        parts = equations(latex)
        if not parts:
            raise FormulaError("empty formula")
        names: list[str] = []
        for equation in parts:
            symbols(parse_equation(equation), names)
        return FormulaInfo(block_id, line, latex, True, tuple(names), None)
    except FormulaError as exc:
        return FormulaInfo(block_id, line, latex, False, (), str(exc))


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
