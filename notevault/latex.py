"""The LaTeX reader of formula checks: tokens, a typed expression tree, the parser and equation splitting (SPEC §3).

FINDINGS: sympy's LaTeX readers silently misread ML notation (``\\gamma`` as Euler's constant, ``\\log`` in base
10, ``QK^T`` without the transpose, ``x^{(i)}`` as a power). A silent misread is worse than an error, so notevault
reads the notation these notes use with its own recursive-descent parser; anything else raises a ``LatexError``
that names the construct. Reading never evaluates and never imports torch: ``notevault formulas`` and ``lint`` use
this module without it, and notevault.formula evaluates the tree.

Indices work like einsum. A letter is an index variable when a sum binds it (``\\sum_j``, ``\\prod_{i=1}^{n}``,
``\\max_i``, ``\\sum x_i``), or when it is free on both sides of the equation: ``i j k l n c`` or a word in a
subscript, any name in ``x^{(i)}``, ``a^{[l]}``, ``PE_{(pos,2i)}``. Any other subscript is part of the name
(``m_t`` → ``m_t``, ``d_k`` → ``d_k``, ``m_{t-1}`` → ``m_prev``). A formula is read as TeX reads it (``\\frac12``
is ½, ``x^10`` is refused, ``X^TX`` is Xᵀ X) and as people write it: ``\\log 2\\pi\\sigma^2`` is the log of the
product, ``\\sigma(z)`` the sigmoid, ``[h, x]`` a concatenation, ``x_1 + \\cdots + x_n`` a sum, ``\\text{where}``
and ``\\quad`` separate equations, a third aligned column with a condition makes a piecewise equation.
"""

from __future__ import annotations

import itertools
import keyword
import re
from dataclasses import dataclass, field, fields, replace

__all__ = [
    "LatexError", "Node", "Equation", "Formula", "Token", "tokenize", "equations", "split_sides", "parse_equation",
    "parse_formula", "symbols", "walk",
]


class LatexError(ValueError):
    """The formula cannot be read or evaluated as written; the message names the LaTeX construct."""


# Tokens --------------------------------------------------------------------------------------------------------

TEXT_COMMANDS = r"text|mathrm|operatorname\*?|textrm|textit|textbf|textsf|textnormal|mbox"
# \text{…}-like commands are one token with their words, so "\text{Effective learning rate}" keeps its spaces.
TEXT_COMMAND = re.compile(rf"^\\(?P<command>{TEXT_COMMANDS})\s*\{{(?P<text>[^{{}}]*)\}}$")
TOKEN = re.compile(
    rf"\\(?:{TEXT_COMMANDS})\s*\{{[^{{}}]*\}}|\\[A-Za-z]+|\\.|\d+(?:\.\d+)?[eE][+-]?\d+|[A-Za-z]+|\d+(?:\.\d+)?"
    r"|\.\d+|\S", re.S)
NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\.\d+")  # 1e-8 is a number, not 1·e − 8
LETTERS = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class Token:
    text: str
    start: int  # offsets into the formula's text, so that messages quote what the user wrote
    end: int


def tokenize(text: str) -> list[Token]:
    """Split LaTeX into tokens. Three or more letters are one name (``Attention``, ``pos``); two upper-case letters
    are one name (``TP``, ``PE_{…}``, ``LN(x)``; a product when the block binds the letters instead), except before
    a superscript (``QK^T`` is Q times K transposed); other letters stand alone (``Wx`` is W times x)."""
    tokens = []
    for match in TOKEN.finditer(text):
        word, start = match.group(), match.start()
        if LETTERS.fullmatch(word) and len(word) < 3 and not _two_letter_name(word, text, match.end()):
            tokens.extend(Token(letter, start + n, start + n + 1) for n, letter in enumerate(word))
        else:
            tokens.append(Token(word, start, match.end()))
    return tokens


def _two_letter_name(word: str, text: str, end: int) -> bool:
    following = text[end:]
    if following[:1] in ("^", "'") or re.match(r"_(?:[A-Za-z0-9]|\{[A-Za-z0-9]\})(?![A-Za-z0-9])", following):
        return False  # QK^T, QW_i^Q: a product of two symbols (PE_{(pos, 2i)}, SS_{res} are names)
    return len(word) == 2 and word.isupper()


# The expression tree -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IndexExpr:
    """An index position ``scale * var + offset + shift… + others``: ``i``, ``2i+1``, ``t+k+1`` (``shift`` names
    bound scalars such as ``t``; ``others`` more index variables, as in ``x_{i+k}``). Sum-bound variables carry a
    ``#n`` suffix so that two ``\\sum_j`` never mix."""

    var: str
    letter: str
    scale: int = 1
    offset: int = 0
    shift: tuple[str, ...] = ()
    others: tuple[tuple[str, int], ...] = ()
    via: str | None = None  # p_{i, y_i}: the position is the integer y_i, read from the tensor y

    @property
    def bound(self) -> bool:
        return "#" in self.var


@dataclass(frozen=True)
class Num:
    value: float
    src: str = ""


@dataclass(frozen=True)
class Const:
    """``e`` (always Euler's number) or ``\\pi`` (the number, unless a check binds ``pi``: a policy in RL notes)."""

    name: str
    src: str = ""


@dataclass(frozen=True)
class Sym:
    """A symbol bound by the check block: its python ``name``, the index variables that label its dimensions
    (``indices`` the last ones, ``sample`` the first, as in ``x^{(i)}``), and ``fallback``, the name that reads
    every free index as part of the name (``x_i``), used when the block binds that instead."""

    name: str
    src: str = ""
    indices: tuple[IndexExpr, ...] = ()
    sample: IndexExpr | None = None
    fallback: str | None = None
    joined: str | None = None  # every subscript as part of the name (b_i for the vector of the b_i)
    letters: tuple[str, ...] = ()  # AB, TP: the product of the letters when the name itself is not bound


@dataclass(frozen=True)
class IndexValue:
    """An index variable used as a number: the ``i`` of ``\\beta^{t-i}``, the ``pos`` of ``\\sin(pos/…)``."""

    var: str
    src: str = ""


@dataclass(frozen=True)
class Call:
    """A built-in function (``\\exp``, ``\\mathrm{ReLU}``, ``\\log_2``); ``written`` is its name as written, the
    python name of the reference when it is a left-hand side."""

    func: str
    args: tuple[Node, ...]
    src: str = ""
    written: str = ""
    base: Node | None = None  # \log_b


@dataclass(frozen=True)
class Apply:
    """A bound name applied to arguments: ``f(x)``, ``P(x)``, ``\\pi_\\theta(a \\mid s)``. ``builtin`` is the
    function it means when the name is not bound to a callable (``\\sigma(z)`` → sigmoid)."""

    target: Sym
    args: tuple[Node, ...]
    src: str = ""
    builtin: str | None = None


@dataclass(frozen=True)
class Prime:
    """``f'(x)``, ``\\sigma'(z)``, ``\\text{tanh'}(x)``: the derivative of a function of one argument, at it."""

    call: Call | Apply
    src: str = ""


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * / odot ("*" is juxtaposition, \cdot and \times: a matrix product when both sides are matrices)
    left: Node
    right: Node
    src: str = ""


@dataclass(frozen=True)
class Neg:
    arg: Node
    src: str = ""


@dataclass(frozen=True)
class Pow:
    base: Node
    exponent: Node
    src: str = ""


@dataclass(frozen=True)
class Transpose:
    arg: Node
    src: str = ""


@dataclass(frozen=True)
class Reduce:
    """``\\sum``, ``\\prod``, ``\\max_i``, ``\\min_i``, ``\\arg\\max_i`` over an index variable; without bounds
    the variable runs over the whole dimension it labels. ``start`` is a literal first index (0 or 1) when one is
    written: it tells whether the formula counts from 0 or from 1."""

    kind: str
    var: str
    letter: str
    lower: Node | None
    upper: Node | None
    body: Node
    src: str = ""
    start: int | None = None


@dataclass(frozen=True)
class Norm:
    arg: Node
    p: float | str | Node = 2.0  # a number, "inf", "fro", or a symbol (\\|x\\|_p)
    src: str = ""


@dataclass(frozen=True)
class Abs:
    arg: Node
    src: str = ""


@dataclass(frozen=True)
class Concat:
    """``[h_{t-1}, x_t]``, ``\\mathrm{Concat}(a, b)``: joined along the last dimension."""

    items: tuple[Node, ...]
    src: str = ""


@dataclass(frozen=True)
class Matrix:
    rows: tuple[tuple[Node, ...], ...]
    src: str = ""


@dataclass(frozen=True)
class Inner:
    left: Node
    right: Node
    src: str = ""


@dataclass(frozen=True)
class Mean:
    """``\\mathbb{E}[X]``: the mean over the first dimension (the samples)."""

    arg: Node
    src: str = ""


@dataclass(frozen=True)
class Deriv:
    """``\\frac{\\partial \\ell}{\\partial \\gamma}``, ``\\frac{dL}{dz}``, ``\\nabla_\\theta L``: evaluated with
    autograd, on the block's own graph when ``num`` was computed from ``wrt``."""

    num: Node
    wrt: Sym
    src: str = ""


@dataclass(frozen=True)
class Compare:
    ops: tuple[str, ...]  # < <= > >= == != between consecutive terms
    terms: tuple[Node, ...]
    src: str = ""


@dataclass(frozen=True)
class Logical:
    op: str  # and | or
    args: tuple[Node, ...]
    src: str = ""


@dataclass(frozen=True)
class Piecewise:
    """``\\begin{cases}``: each value with its condition (``None``: otherwise)."""

    cases: tuple[tuple[Node, Node | None], ...]
    src: str = ""


@dataclass(frozen=True)
class Indicator:
    cond: Node
    src: str = ""


@dataclass(frozen=True)
class Subscripted:
    """An index on an expression: ``\\mathrm{softmax}(z)_i``."""

    arg: Node
    indices: tuple[IndexExpr, ...]
    src: str = ""


Node = (Num | Const | Sym | IndexValue | Call | Apply | Prime | BinOp | Neg | Pow | Transpose | Reduce | Norm | Abs
        | Concat | Matrix | Inner | Mean | Deriv | Compare | Logical | Piecewise | Indicator | Subscripted)


@dataclass(frozen=True)
class Equation:
    """``sides[0] = sides[1] = …``: the first side names the reference. ``condition`` restricts the comparison
    (``…, \\quad x > 0``); ``base`` is 1 when the formula counts indices from 1 (``x_1`` is the first entry)."""

    sides: tuple[Node, ...]
    src: str
    free: tuple[str, ...] = ()
    condition: Node | None = None
    base: int = 0

    @property
    def lhs(self) -> Node:
        return self.sides[0]


@dataclass(frozen=True)
class Formula:
    equations: tuple[Equation, ...]
    src: str


def children(node: Node) -> list[Node]:
    """The sub-expressions of a node, in reading order."""
    found: list[Node] = []
    for f in fields(node):
        _collect_nodes(getattr(node, f.name), found)
    return found


def _collect_nodes(value, found: list) -> None:
    if isinstance(value, _NODE_TYPES):
        found.append(value)
    elif isinstance(value, tuple):
        for item in value:
            _collect_nodes(item, found)


def walk(node: Node):
    """Every node of a tree, parents before children."""
    yield node
    for child in children(node):
        yield from walk(child)


def transform(node, change):
    """Rebuild a tree bottom-up, replacing each node by ``change(node)``."""
    updates = {}
    for f in fields(node):
        value = getattr(node, f.name)
        new = _transform_value(value, change)
        if new is not value:
            updates[f.name] = new
    rebuilt = replace(node, **updates) if updates else node
    return change(rebuilt)


def _transform_value(value, change):
    if isinstance(value, (*_NODE_TYPES, _RawSym, _Ellipsis)):
        return transform(value, change)
    if isinstance(value, tuple) and any(isinstance(v, (tuple, *_NODE_TYPES, _RawSym, _Ellipsis)) for v in value):
        return tuple(_transform_value(v, change) for v in value)
    return value


# Names ---------------------------------------------------------------------------------------------------------

GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta", "iota",
    "kappa", "lambda", "mu", "nu", "xi", "rho", "varrho", "sigma", "varsigma", "tau", "upsilon", "phi", "varphi",
    "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi", "Psi",
    "Omega", "ell", "varpi",
}
ACCENTS = {"hat": "hat", "widehat": "hat", "bar": "bar", "overline": "bar", "tilde": "tilde", "widetilde": "tilde",
           "vec": "vec", "dot": "dot", "ddot": "ddot", "check": "check", "breve": "breve"}
FONTS = {"mathbf", "boldsymbol", "bm", "mathit", "mathsf", "mathtt", "mathcal", "mathscr", "mathfrak", "pmb",
         "mathnormal", "mathrm", "operatorname"}  # transparent: \mathbf{x} is x, \mathcal{L} is L
FREE_LETTERS = frozenset("ijklnc")  # may be free indices; t is a time step and stays a name (m_t, m_{t-1})
SPACES = {"\\,", "\\;", "\\:", "\\!", "\\ ", "\\quad", "\\qquad", "\\left", "\\right", "\\middle", "\\big",
          "\\Big", "\\bigg", "\\Bigg", "\\bigl", "\\bigr", "\\Bigl", "\\Bigr", "\\biggl", "\\biggr", "\\Biggl",
          "\\Biggr", "\\displaystyle", "\\textstyle", "\\limits", "\\nolimits", "\\nonumber", "\\notag", "~",
          "\\hfill", "\\enspace", "\\thinspace"}
# Built-in functions: every accepted spelling → the canonical name notevault.formula evaluates. Spellings are
# case-sensitive on purpose: \mathrm{LN}(x) is a LayerNorm the block binds, not \ln.
FUNCTIONS = {
    **{name: name for name in ("exp", "log", "sin", "cos", "tan", "sinh", "cosh", "tanh", "arcsin", "arccos",
                               "arctan", "erf", "erfc", "sqrt", "abs", "floor", "ceil", "det", "max", "min",
                               "sigmoid", "softmax", "softplus", "relu", "gelu", "silu", "sign", "clip",
                               "logsumexp", "concat")},
    "ln": "log", "Log": "log", "Exp": "exp", "Tanh": "tanh", "Sigmoid": "sigmoid", "sigm": "sigmoid",
    "Softmax": "softmax", "SoftMax": "softmax", "Softplus": "softplus", "SoftPlus": "softplus", "ReLU": "relu",
    "Relu": "relu", "ReLu": "relu", "GELU": "gelu", "Gelu": "gelu", "SiLU": "silu", "Swish": "silu",
    "swish": "silu", "sgn": "sign", "Sign": "sign", "clamp": "clip", "Clip": "clip", "LSE": "logsumexp",
    "LogSumExp": "logsumexp", "Concat": "concat", "tr": "trace", "Tr": "trace", "trace": "trace",
    "logsoftmax": "log_softmax", "LogSoftmax": "log_softmax", "log_softmax": "log_softmax",
}
FUNCTION_COMMANDS = {"exp", "log", "ln", "sin", "cos", "tan", "sinh", "cosh", "tanh", "arcsin", "arccos", "arctan",
                     "det", "max", "min", "sgn"}
ARG_WORDS = {"argmax": "argmax", "argmin": "argmin"}
WHERE_WORDS = {"where", "其中", "with", "here", "这里", "其中：", "where:", "s.t."}
OTHERWISE_WORDS = {"otherwise", "else", "o.w.", "other", "elsewhere", "其他", "否则", "其它"}
IF_WORDS = {"if", "when", "若", "如果", "当"}
FOR_WORDS = {"for", "forall", "for all", "对于", "对所有"}
AND_WORDS = {"\\land", "\\wedge", "\\text{and}", "\\text{ and }"}
OR_WORDS = {"\\lor", "\\vee", "\\text{or}", "\\text{ or }"}
RELATIONS = {"<": "<", ">": ">", "\\lt": "<", "\\gt": ">", "\\le": "<=", "\\leq": "<=", "\\leqslant": "<=",
             "\\ge": ">=", "\\geq": ">=", "\\geqslant": ">=", "=": "==", "\\neq": "!=", "\\ne": "!="}
EQUALS = {"=", "\\equiv", "\\coloneqq", "\\triangleq", "\\doteq", "\\eqqcolon"}
ELLIPSES = {"\\cdots", "\\dots", "\\ldots", "\\dotsb", "\\dotsc", "\\dotsm", "\\dotsi"}
NOT_EVALUABLE = {
    "int": "an integral \\int", "iint": "an integral \\iint", "oint": "an integral \\oint", "lim": "a limit \\lim",
    "limsup": "a limit \\limsup", "liminf": "a limit \\liminf", "sup": "a supremum \\sup",
    "inf": "an infimum \\inf", "infty": "infinity \\infty", "partial": "a partial derivative \\partial outside "
    "\\frac{\\partial …}{\\partial …}", "setminus": "a set difference \\setminus", "cup": "a set union \\cup",
    "cap": "a set intersection \\cap", "subset": "a subset \\subset", "subseteq": "a subset \\subseteq",
    "forall": "a quantifier \\forall", "exists": "a quantifier \\exists", "pm": "\\pm (two values)",
    "mp": "\\mp (two values)", "otimes": "a tensor product \\otimes", "oplus": "a direct sum \\oplus",
    "choose": "a binomial coefficient \\choose (write \\binom{n}{k})",
    "underset": "\\underset", "overset": "\\overset", "stackrel": "\\stackrel", "underbrace": "\\underbrace",
    "overbrace": "\\overbrace", "vdots": "a vertical ellipsis \\vdots", "ddots": "a diagonal ellipsis \\ddots",
    "emptyset": "the empty set", "varnothing": "the empty set", "hbar": "\\hbar",
    "circledast": "a convolution", "star": "a convolution \\star", "ast": "a convolution \\ast",
    "mathbb": "\\mathbb",
}
STOPPERS = {  # tokens that end an expression, and what they are when one is left over
    "\\approx": "an approximation (\\approx) is not an equation", "\\simeq": "an approximation (\\simeq)",
    "\\sim": "a distribution (\\sim)", "\\propto": "a proportionality (\\propto) is not an equation",
    "\\leftarrow": "an update (\\leftarrow), not an equation", "\\gets": "an update (\\gets), not an equation",
    "\\Leftarrow": "an implication (\\Leftarrow)", "\\to": "a limit or a map (\\to)",
    "\\rightarrow": "a limit or a map (\\rightarrow)", "\\Rightarrow": "an implication (\\Rightarrow)",
    "\\implies": "an implication (\\implies)", "\\iff": "an equivalence (\\iff)", "\\mapsto": "a map (\\mapsto)",
    "\\in": "set membership (\\in)", "\\notin": "set membership (\\notin)", "&": "'&' outside an aligned environment",
    "\\\\": "a line break '\\\\' inside an expression", "\\ll": "an inequality (\\ll)", "\\gg": "an inequality (\\gg)",
    **{relation: f"an inequality ({relation}) is not an equation" for relation in RELATIONS if relation != "="},
}
CLOSERS = {"\\cdot", "\\times", "\\odot", "\\circ", "\\ast", "\\end", "\\rangle", "\\mid", "\\rVert", "\\rvert",
           "\\rfloor", "\\rceil"}  # operators and closing brackets: they start no factor
READERS = {  # commands read by a method of their own (token, start → Node)
    "frac": "fraction_command", "dfrac": "fraction_command", "tfrac": "fraction_command",
    "cfrac": "fraction_command", "sqrt": "root_command", "lfloor": "floor", "lceil": "floor", "binom": "binomial",
    "sum": "big_operator_command", "prod": "big_operator_command", "max": "extremum", "min": "extremum",
    "arg": "arg_extremum", "pi": "pi", "Delta": "delta", "mathbb": "blackboard_command", "mathcal": "calligraphic",
    "mathbf": "bold", "boldsymbol": "bold", "bm": "bold", "mathop": "operator_name", "nabla": "gradient_command",
    "partial": "partial_command", "langle": "inner_command", "begin": "environment_command",
}
STRAYS = {  # a token that cannot start a value, said in words
    "_": "a subscript with nothing before it", "^": "a superscript with nothing before it",
    "'": "a prime with nothing before it", ")": "an unbalanced ')'", "]": "an unbalanced ']'",
    "}": "an unbalanced '}'", ",": "a comma outside a list or an argument list", "=": "an '=' inside a group",
    "!": "a factorial with nothing before it", "/": "a division with nothing before it",
    "\\rangle": "an unbalanced \\rangle", "\\right": "an unbalanced \\right",
}
TRANSPOSE_MARKS = {"T", "\\top", "\\intercal", "\\mathsf{T}", "\\mathrm{T}", "\\text{T}", "\\mathsf"}
STAR_MARKS = {"*", "\\ast", "\\star"}


def python_name(name: str) -> str:
    """``lambda`` is a Python keyword: ``\\lambda`` is bound as ``lambda_``."""
    return name + "_" if keyword.iskeyword(name) else name


def _text_name(text: str, construct: str) -> str:
    name = re.sub(r"[ \-]+", "_", text.replace("\\_", "_").strip())
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        raise LatexError(f"{construct} is not a symbol or a known function")
    return name


def _plain_text(text: str) -> str:
    """``arg\\,max`` → ``argmax``: the words of a \\text{…} without TeX spacing."""
    return re.sub(r"\\[,;:! ]|\s+", "", text)


# The parser ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Part:
    """One comma-separated piece of a subscript: its text as part of a name, and its reading as indices when it
    can be one (``"ij"`` → ``i``, ``j``)."""

    text: str
    index: tuple[IndexExpr, ...] = ()
    written: str = field(default="", compare=False)  # the LaTeX of the piece: "t+1"


@dataclass(frozen=True)
class _RawSym:
    """A symbol as the parser sees it, before the equation decides which of its subscripts are free indices."""

    base: str
    src: str = ""
    parts: tuple[Part, ...] = ()
    sample: Part | None = None
    suffix: tuple[str, ...] = ()
    plain: bool = True  # no scripts at all: may be an index variable used as a number (pos)
    letters: tuple[str, ...] = ()  # TP: also the product T·P


@dataclass(frozen=True)
class _Ellipsis:
    src: str = ""


@dataclass
class _State:
    """Shared by a parser and the sub-parsers of its groups: the indices bound by the enclosing sums."""

    bound: list[tuple[str, str]] = field(default_factory=list)  # (letter, variable), innermost last
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))
    lhs_letters: set[str] = field(default_factory=set)  # index candidates of the left side, once it is read

    def lookup(self, letter: str) -> str | None:
        for name, var in reversed(self.bound):
            if name == letter:
                return var
        return None


def reading_tokens(text: str) -> list[Token]:
    """The tokens the parser reads: spacing, sizing and \\tag{…}/\\label{…} dropped."""
    tokens, skip = [], 0
    raw = tokenize(text)
    for n, token in enumerate(raw):
        if skip:
            skip -= 1
            continue
        if token.text in ("\\tag", "\\label", "\\tag*") and n + 1 < len(raw) and raw[n + 1].text == "{":
            skip = _group_length(raw, n + 1)
            continue
        if token.text in ("\\left", "\\right", "\\middle") and n + 1 < len(raw) and raw[n + 1].text == ".":
            skip = 1
            continue
        if token.text == "." and [t.text for t in raw[n:n + 3]] == [".", ".", "."]:
            tokens.append(Token("\\dots", token.start, raw[n + 2].end))  # a plain ... is an ellipsis
            skip = 2
            continue
        if token.text == "…":
            tokens.append(Token("\\dots", token.start, token.end))
            continue
        if token.text not in SPACES:
            tokens.append(token)
    return tokens


def _group_length(tokens: list[Token], at: int) -> int:
    depth = 0
    for n in range(at, len(tokens)):
        depth += tokens[n].text == "{"
        depth -= tokens[n].text == "}"
        if depth == 0:
            return n - at + 1
    return len(tokens) - at


class _Parser:
    def __init__(self, text: str, tokens: list[Token] | None = None, state: _State | None = None) -> None:
        self.text = text
        self.tokens = reading_tokens(text) if tokens is None else tokens
        self.pos = 0
        self.state = state or _State()
        self.in_arguments = False  # inside f(…): "|", "\mid" and "\|" separate arguments (p(x | θ), P \| Q)
        self.in_bars = 0  # inside |…|

    # Reading tokens --------------------------------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> str | None:
        at = self.pos + ahead
        return self.tokens[at].text if at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None:
            raise LatexError(f"the formula ends where {expected or 'more'} was expected: {self.quote_all()}")
        if expected is not None and token != expected:
            raise LatexError(f"expected {expected} but found {token} in {self.quote(self.pos)}")
        self.pos += 1
        return token

    def quote(self, at: int, width: int = 40) -> str:
        """The user's own LaTeX from token ``at`` on (up to ``width`` characters, cut between tokens), to name the
        construct in a message."""
        if not self.tokens:
            return "``"
        at = min(max(at, 0), len(self.tokens) - 1)
        start, end = self.tokens[at].start, self.tokens[at].end
        for token in self.tokens[at + 1:]:
            if token.end - start > width:
                return f"`{self.text[start:end].strip()}…`"
            end = token.end
        return f"`{self.text[start:end].strip()}`"

    def quote_all(self) -> str:
        return f"`{self.text.strip()}`"

    def src(self, start: int) -> str:
        if start >= len(self.tokens) or self.pos <= start:
            return ""
        return self.text[self.tokens[start].start:self.tokens[self.pos - 1].end]

    def group_tokens(self) -> list[Token]:
        """A ``{…}`` group's tokens, or one token. As in TeX, ``\\frac12`` and ``x^23`` take one digit."""
        if self.peek() is None:
            raise LatexError(f"the formula ends where an argument was expected: {self.quote_all()}")
        if self.peek() != "{":
            token = self.tokens[self.pos]
            if token.text[1:] in FONTS | set(ACCENTS) and self.peek(1) == "{":  # \mu_\mathcal{B}
                start = self.pos
                self.pos += 1 + _group_length(self.tokens, self.pos + 1)
                return self.tokens[start:self.pos]
            if (token.text.isdigit() or LETTERS.fullmatch(token.text)) and len(token.text) > 1:
                first = Token(token.text[0], token.start, token.start + 1)  # X^TX: T, then X (as TeX reads it)
                self.tokens[self.pos:self.pos + 1] = [first, Token(token.text[1:], token.start + 1, token.end)]
                self.pos += 1
                return [first]
            self.pos += 1
            return [token]
        start = self.pos
        self.pos += _group_length(self.tokens, self.pos)
        if self.tokens[self.pos - 1].text != "}" or self.pos - start < 2:
            raise LatexError(f"an unclosed group {{ in {self.quote_all()}")
        return self.tokens[start + 1:self.pos - 1]

    def sub_parser(self, tokens: list[Token]) -> _Parser:
        return _Parser(self.text, list(tokens), self.state)

    def sub_expr(self, tokens: list[Token], construct: str = "") -> Node:
        if not tokens:
            raise LatexError(f"an empty group {construct} in {self.quote(self.pos - 1)}".replace("  ", " "))
        return self.sub_parser(tokens).whole()

    def whole(self) -> Node:
        node = self.expr()
        if self.peek() is not None:
            self.fail_leftover()
        return node

    def fail_leftover(self):
        token = self.peek()
        what = STOPPERS.get(token) or STRAYS.get(token)
        if what is None:
            what = f"a stray {token}" if token in ("|", "\\|") else f"cannot read {token}"
        raise LatexError(f"{what}: {self.quote(max(self.pos - 1, 0))}")  # with what comes before it

    # Expressions -----------------------------------------------------------------------------------------------

    def expr(self) -> Node:
        start = self.pos
        items: list[tuple[str, Node]] = []
        op = "+"
        if self.peek() in ("-", "+"):
            op = self.take()
        items.append((op, self.term()))
        while self.peek() in ("+", "-"):
            op = self.take()
            items.append((op, self.term()))
        if len(items) > 1 and any(isinstance(node, _Ellipsis) for _, node in items):
            return self.written_out(items, "sum", start)
        if len(items) == 1 and isinstance(items[0][1], _Ellipsis):
            return items[0][1]  # an item of a written-out sequence: [g_1, g_2, \ldots, g_N]
        node = items[0][1] if items[0][0] == "+" else Neg(items[0][1], self.src(start))
        for op, term in items[1:]:
            node = BinOp(op, node, term, self.src(start))
        return node

    def term(self) -> Node:
        start = self.pos
        factors: list[tuple[str, Node]] = [("*", self.factor())]
        while True:
            token = self.peek()
            if token in ("\\cdot", "\\times", "*", "\\ast"):
                self.take()
                factors.append(("cdot" if token == "\\cdot" else "*", self.factor()))
            elif token == "/":
                self.take()
                factors.append(("/", self.factor()))
            elif token in ("\\odot", "\\circ"):
                self.take()
                factors.append(("odot", self.factor()))
            elif self.starts_factor(token):
                factors.append(("*", self.factor()))
            else:
                break
        if len(factors) > 1 and any(isinstance(node, _Ellipsis) for _, node in factors):
            return self.written_out(factors, "prod", start)
        node = factors[0][1]
        for op, factor in factors[1:]:
            node = BinOp(op, node, factor, self.src(start))
        return node

    def starts_factor(self, token: str | None) -> bool:
        """Can this token begin a factor multiplied by juxtaposition (``QK``, ``2x``, ``\\gamma \\hat{x}``)?"""
        if token is None:
            return False
        if token == "|":
            return not self.in_arguments and not self.in_bars
        if token in ("\\|", "\\Vert", "\\lVert"):
            return not self.in_arguments or self.norm_follows()
        if token in ("(", "[", "{", "\\{", "\\langle", "\\lvert") or NUMBER.fullmatch(token) or token[0].isalpha():
            return True
        if TEXT_COMMAND.match(token):
            return _plain_text(TEXT_COMMAND.match(token)["text"]) not in WHERE_WORDS | OTHERWISE_WORDS | IF_WORDS
        if token in ELLIPSES:
            return True
        return token.startswith("\\") and token[1:].isalpha() and token not in STOPPERS and token not in CLOSERS \
            and token not in AND_WORDS | OR_WORDS

    def norm_follows(self) -> bool:
        """Inside ``f(…)``, is this ``\\|`` the start of a norm (``\\exp(-\\gamma \\|x - y\\|^2)``) rather than a
        separator (``D(P \\| Q)``)? A norm's closing bar follows before the argument list ends."""
        depth, bars = 0, 0
        for n in range(self.pos, len(self.tokens)):
            text = self.tokens[n].text
            if text in ("(", "[", "{", "\\{"):
                depth += 1
            elif text in (")", "]", "}", "\\}"):
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and text in ("\\|", "\\Vert"):
                bars += 1
            elif depth == 0 and text == ",":
                break
        return bars >= 2 and bars % 2 == 0

    def factor(self) -> Node:
        if self.peek() == "-":
            start = self.pos
            self.take()
            return Neg(self.factor(), self.src(start))
        if self.peek() == "+":
            self.take()
        return self.atom()

    def operand(self) -> Node:
        """The argument of an operator written without parentheses: ``\\log 2\\pi\\sigma^2`` is the log of the
        product (TeX convention); a following operator or function starts a new factor (``\\sin x \\cos y``)."""
        start = self.pos
        node = self.factor()
        while self.starts_factor(self.peek()) and not self.starts_operator(self.peek()):
            node = BinOp("*", node, self.factor(), self.src(start))
        return node

    def starts_operator(self, token: str) -> bool:
        if token in ("\\sum", "\\prod", "\\nabla", "\\arg", "\\mathbb") or token in ELLIPSES:
            return True
        if token.startswith("\\") and token[1:] in FUNCTION_COMMANDS:
            return True
        match = TEXT_COMMAND.match(token)
        if match:
            text = _plain_text(match["text"]).rstrip("'")
            return text in FUNCTIONS or text in ARG_WORDS
        return LETTERS.fullmatch(token) is not None and token in FUNCTIONS and len(token) > 2

    # Atoms -----------------------------------------------------------------------------------------------------

    def atom(self) -> Node:
        token = self.peek()
        start = self.pos
        if token is None:
            raise LatexError(f"the formula ends where a value was expected: {self.quote_all()}")
        if token == "(":
            return self.postfix(self.parens(), start)
        if token == "[":
            return self.postfix(self.brackets(), start)
        if token == "{":
            self.take()
            inner = self.grouped(lambda: self.expr())
            self.take("}")
            return self.postfix(inner, start)
        if token == "\\{":
            self.take()
            inner = self.grouped(lambda: self.expr())
            self.take("\\}")
            return self.postfix(inner, start)
        if token in ("|", "\\lvert", "\\vert"):
            return self.postfix(self.absolute(), start)
        if token in ("\\|", "\\Vert", "\\lVert"):
            return self.postfix(self.norm(), start)
        if token in ELLIPSES:
            self.take()
            return _Ellipsis(token)
        if NUMBER.fullmatch(token):
            self.take()
            return self.postfix(Num(float(token), token), start)
        if LETTERS.fullmatch(token):
            return self.letters()
        if TEXT_COMMAND.match(token):
            return self.text_atom()
        if token.startswith("\\"):
            return self.command()
        what = STOPPERS.get(token) or STRAYS.get(token) or f"cannot read {token}"
        raise LatexError(f"{what}: {self.quote(self.pos)}")

    def grouped(self, read):
        """Read inside a group: a ``|`` there closes nothing outside it, and it is no argument list."""
        saved = (self.in_arguments, self.in_bars)
        self.in_arguments, self.in_bars = False, 0
        try:
            return read()
        finally:
            self.in_arguments, self.in_bars = saved

    def parens(self) -> Node:
        start = self.pos
        self.take("(")
        items = self.grouped(lambda: self.items(")"))
        self.take(")")
        if len(items) == 1:
            return items[0]
        if any(isinstance(item, _Ellipsis) for item in items):
            return self.written_out([(",", item) for item in items], "stack", start)
        raise LatexError(f"a tuple {self.src(start)} is not a value (a vector is written [a, b])")

    def brackets(self) -> Node:
        start = self.pos
        self.take("[")
        items = self.grouped(lambda: self.items("]"))
        self.take("]")
        if len(items) == 1:
            return items[0]  # \left[ … \right]: brackets that group
        if any(isinstance(item, _Ellipsis) for item in items):
            return self.written_out([(",", item) for item in items], "stack", start)
        return Concat(tuple(items), self.src(start))

    def items(self, closing: str) -> list[Node]:
        items = [self.expr()]
        while self.peek() == ",":
            self.take()
            items.append(self.expr())
        if self.peek() != closing:
            self.fail_leftover() if self.peek() is not None else self.take(closing)
        return items

    def absolute(self) -> Node:
        start = self.pos
        opening = self.take()
        closing = {"|": "|", "\\lvert": "\\rvert", "\\vert": "\\vert"}[opening]
        if opening == "|" and self.peek() == "|":  # ||x||: a norm written with two bars
            self.take()
            inner = self.grouped(lambda: self.expr())
            self.take("|")
            self.take("|")
            return self.norm_scripts(inner, start)
        saved = (self.in_arguments, self.in_bars)
        self.in_arguments, self.in_bars = False, 1
        try:
            inner = self.expr()
        finally:
            self.in_arguments, self.in_bars = saved
        self.take(closing)
        return Abs(inner, self.src(start))

    def norm(self) -> Node:
        start = self.pos
        opening = self.take()
        closing = {"\\|": "\\|", "\\Vert": "\\Vert", "\\lVert": "\\rVert"}[opening]
        saved = self.in_arguments
        self.in_arguments = True  # so that the closing \| ends the inner expression
        try:
            inner = self.grouped_keep_bars(lambda: self.expr())
        finally:
            self.in_arguments = saved
        self.take(closing)
        return self.norm_scripts(inner, start)

    def grouped_keep_bars(self, read):
        saved = self.in_bars
        self.in_bars = 0
        try:
            return read()
        finally:
            self.in_bars = saved

    def norm_scripts(self, inner: Node, start: int) -> Node:
        p: float | str = 2.0
        if self.peek() == "_":
            self.take()
            group = self.group_tokens()
            text = "".join(t.text for t in group)
            p = {"\\infty": "inf", "F": "fro", "\\mathrm{F}": "fro", "\\text{F}": "fro"}.get(text, text)
            if isinstance(p, str) and p not in ("inf", "fro"):
                p = float(p) if NUMBER.fullmatch(p) else self.sub_expr(group, "in a norm's subscript")
        return Norm(inner, p, self.src(start))

    def postfix(self, node: Node, start: int) -> Node:
        """Scripts after a non-name (``(x - \\mu)^2``, ``\\|x\\|^2``, ``\\mathrm{softmax}(z)_i``)."""
        while self.peek() in ("^", "_", "'", "!"):
            token = self.take()
            if token == "!":
                node = Call("factorial", (node,), self.src(start), "!")
                continue
            if token == "'":
                raise LatexError(f"a prime on an expression: {self.quote(start)}")
            group = self.group_tokens()
            if token == "_":
                parts = self.parts(group)
                indices = tuple(ix for part in parts for ix in part.index)
                if not parts or any(not part.index for part in parts):
                    raise LatexError(f"a subscript on an expression: {self.src(start)}")
                node = Subscripted(node, indices, self.src(start))
            elif self.is_transpose(group):
                node = Transpose(node, self.src(start))
            else:
                node = Pow(node, self.sub_expr(group, "in a superscript"), self.src(start))
        return node

    @staticmethod
    def is_transpose(group: list[Token]) -> bool:
        text = "".join(t.text for t in group)
        return text in TRANSPOSE_MARKS or text in ("\\mathsf{T}", "\\mathsf T", "\\mathrm T")

    # Names -----------------------------------------------------------------------------------------------------

    def letters(self) -> Node:
        start = self.pos
        word = self.take()
        primes = 0
        while self.peek(primes) == "'":
            primes += 1
        if primes and self.state.lookup(word + "'" * primes) is not None:
            self.pos += primes
            return self.postfix(IndexValue(self.state.lookup(word + "'" * primes), word + "'" * primes), start)
        var = self.state.lookup(word)
        if var is not None and self.peek() not in ("_", "^", "'"):
            return self.postfix(IndexValue(var, word), start)  # the i of \beta^{t-i} inside \sum_i
        if word in FUNCTIONS and len(word) > 2 and self.peek() in ("(", "^", "'", "\\left"):
            return self.function(FUNCTIONS[word], word, start)
        if word == "e" and self.peek() not in ("_", "'", "("):
            return self.postfix(Const("e", "e"), start)  # always Euler's number: a loop variable e never leaks in
        pair = tuple(word) if len(word) == 2 and word.isupper() else ()
        return self.name(_RawSym(word, word, letters=pair), start)

    def text_atom(self) -> Node:
        start = self.pos
        token = self.take()
        match = TEXT_COMMAND.match(token)
        text = _plain_text(match["text"])
        prime = text.endswith("'")
        word = text.rstrip("'")
        if word in FUNCTIONS and not (self.peek() == "_" and FUNCTIONS[word] != "log"):
            return self.function(FUNCTIONS[word], word, start, primes=prime)
        if word in ARG_WORDS:
            return self.reduction(ARG_WORDS[word], start)
        if prime:
            raise LatexError(f"{token} is not a known function, so its derivative cannot be evaluated")
        if word in WHERE_WORDS or word in OTHERWISE_WORDS or word in IF_WORDS:
            raise LatexError(f"{token} inside an expression: {self.quote(start)}")
        name = _text_name(match["text"], token)
        return self.name(_RawSym(name, token), start)

    def command(self) -> Node:
        start = self.pos
        token = self.take()
        name = token[1:]
        reader = READERS.get(name)
        if reader is not None:
            return getattr(self, reader)(token, start)
        if name in FUNCTION_COMMANDS:
            return self.function(FUNCTIONS.get(name, "sign" if name == "sgn" else name), name, start)
        if name in GREEK or name == "Pr":
            return self.name(_RawSym(name, token), start)
        if name in ACCENTS:
            return self.accent(ACCENTS[name], start)
        if name in FONTS:
            return self.font(start)
        if name in NOT_EVALUABLE:
            raise LatexError(f"{NOT_EVALUABLE[name]}: {self.quote(start)}")
        if token in STOPPERS:
            raise LatexError(f"{STOPPERS[token]}: {self.quote(start)}")
        raise LatexError(f"unknown command {token}: {self.quote(start)}")

    def fraction_command(self, token: str, start: int) -> Node:
        return self.postfix(self.fraction(start), start)

    def root_command(self, token: str, start: int) -> Node:
        return self.postfix(self.square_root(start), start)

    def big_operator_command(self, token: str, start: int) -> Node:
        return self.big_operator(token[1:], start)

    def blackboard_command(self, token: str, start: int) -> Node:
        return self.blackboard(start)

    def gradient_command(self, token: str, start: int) -> Node:
        return self.gradient(start)

    def partial_command(self, token: str, start: int) -> Node:
        return self.slash_derivative(start)

    def inner_command(self, token: str, start: int) -> Node:
        return self.postfix(self.inner_product(start), start)

    def environment_command(self, token: str, start: int) -> Node:
        return self.postfix(self.environment(start), start)

    def floor(self, token: str, start: int) -> Node:
        closing = "\\rfloor" if token == "\\lfloor" else "\\rceil"
        inner = self.grouped(lambda: self.expr())
        self.take(closing)
        return self.postfix(Call(token[2:], (inner,), self.src(start), token), start)

    def binomial(self, token: str, start: int) -> Node:
        n, k = self.sub_expr(self.group_tokens(), "in \\binom"), self.sub_expr(self.group_tokens(), "in \\binom")
        return self.postfix(Call("binom", (n, k), self.src(start), token), start)

    def extremum(self, token: str, start: int) -> Node:
        if self.peek() == "_":
            return self.reduction(token[1:], start)  # \max_i z_i
        return self.function(token[1:], token[1:], start)  # \max(0, x)

    def arg_extremum(self, token: str, start: int) -> Node:
        following = self.peek()
        if following not in ("\\max", "\\min"):
            raise LatexError(f"\\arg without \\max or \\min: {self.quote(start)}")
        self.take()
        return self.reduction("arg" + following[1:], start)

    def pi(self, token: str, start: int) -> Node:
        if self.peek() in ("_", "'", "("):
            return self.name(_RawSym("pi", token), start)  # \pi_\theta, \pi(a|s): a policy, bound by name
        return self.postfix(Const("pi", token), start)

    def delta(self, token: str, start: int) -> Node:
        following = self.peek() or ""
        if following[1:] in GREEK or LETTERS.fullmatch(following) and len(following) == 1:
            other = self.take().lstrip("\\")  # \Delta\theta, \Delta w: the change, one quantity
            return self.name(_RawSym(f"Delta_{other}", self.src(start), letters=("Delta", other)), start)
        return self.name(_RawSym("Delta", token), start)

    def calligraphic(self, token: str, start: int) -> Node:
        if self.peek() == "{" and self.peek(1) in ("O", "N", "U") and self.peek(2) == "}" and self.peek(3) == "(":
            what = {"O": "an asymptotic bound \\mathcal{O}(…)", "N": "a normal distribution \\mathcal{N}(…)",
                    "U": "a uniform distribution \\mathcal{U}(…)"}[self.peek(1)]
            raise LatexError(f"{what} is not a value: {self.quote(start)}")
        return self.font(start)

    def bold(self, token: str, start: int) -> Node:
        if self.peek() in ("1", "{") and self.is_indicator_one():
            return self.indicator(start)  # \mathbf{1}\{y = k\}
        return self.font(start)

    def operator_name(self, token: str, start: int) -> Node:
        if self.peek() != "{":
            raise LatexError(f"\\mathop without a group: {self.quote(start)}")
        self.tokens[self.pos:self.pos + _group_length(self.tokens, self.pos)] = self.group_tokens_here()
        return self.atom()  # \mathop{\mathrm{argmax}}: the operator inside

    def name(self, raw: _RawSym, start: int) -> Node:
        """Scripts and application of a name: ``\\hat{m}_t``, ``\\sigma^2_B``, ``W_i^Q``, ``V^\\theta(s)``,
        ``f'(x)``, ``x^{(i)}``."""
        sub, sup, primes = self.scripts()
        if primes and self.peek() == "(":
            node = self.apply(replace(raw, src=self.src(start)), start)
            if len(node.args) != 1:
                raise LatexError(f"the derivative of a function of several arguments: {self.src(start)}")
            return self.postfix(Prime(node, self.src(start)), start)
        if primes:
            raw = replace(raw, base=raw.base + "_prime" * primes)
        if sub is not None:
            raw = replace(raw, parts=self.parts(sub), plain=False)
        node: Node | _RawSym = raw
        power = None
        if sup is not None:
            raw = replace(raw, plain=False)
            kind, value = self.superscript(raw, sup)
            if kind == "transpose":
                node = Transpose(replace(raw, src=self.src(start)), self.src(start))
            elif kind == "label":
                raw = replace(raw, suffix=raw.suffix + (value,))
                node = raw
            elif kind == "sample":
                sample, power = value
                raw = replace(raw, sample=sample)
                node = raw
            else:
                power = value
                node = raw
        if isinstance(node, _RawSym):
            node = replace(node, src=self.src(start))
            if power is None and (self.peek() == "(" or self.peek() == "[" and self.single_bracket()):
                node = self.apply(node, start)  # f(x), \mathrm{Var}[X]; W [h, x] is a product with a vector
            if power is not None:
                node = Pow(node, power, self.src(start))
        return self.postfix(node, start)

    def group_tokens_here(self) -> list[Token]:
        """The tokens inside the ``{…}`` group at the current position (``\\mathop{\\mathrm{argmax}}``)."""
        return self.tokens[self.pos + 1:self.pos + _group_length(self.tokens, self.pos) - 1]

    def single_bracket(self) -> bool:
        """Does the ``[`` here hold one expression (``\\mathrm{Var}[X]``) rather than a list (``[h, x]``)?"""
        depth = 0
        for n in range(self.pos, len(self.tokens)):
            text = self.tokens[n].text
            depth += _depth_change(text)
            if depth == 1 and text == ",":
                return False
            if depth == 0:
                return True
        return True

    def scripts(self) -> tuple[list[Token] | None, list[Token] | None, int]:
        sub = sup = None
        primes = 0
        while self.peek() in ("_", "^", "'"):
            token = self.take()
            if token == "'":
                primes += 1
                continue
            if token == "_" and sub is None:
                sub = self.group_tokens()
                self.check_digits(sub, "_")
            elif token == "^" and sup is None:
                group = self.group_tokens()
                if [t.text for t in group] == ["\\prime"]:
                    primes += 1
                    continue
                sup = group
                self.check_digits(sup, "^")
            else:
                raise LatexError(f"a double {'subscript' if token == '_' else 'superscript'}: {self.quote(self.pos)}")
        return sub, sup, primes

    def check_digits(self, group: list[Token], mark: str) -> None:
        """``x^10`` is x¹ followed by 0 in TeX; a silent x¹⁰ would be a misread, so it is an error."""
        token = self.peek()
        if len(group) == 1 and NUMBER.fullmatch(group[0].text) and token is not None and token.isdigit():
            if self.tokens[self.pos].start == group[0].end:
                written = group[0].text + token
                raise LatexError(f"{mark}{written} is {mark}{group[0].text} followed by {token} in TeX: write "
                                 f"{mark}{{{written}}}")

    def superscript(self, raw: _RawSym, group: list[Token]):
        """What a superscript on a name means: a transpose, a label (``W^O``, ``\\theta^*``, ``\\mu^{\\text{g}}``),
        the sample index ``x^{(i)}``, or a power."""
        texts = [t.text for t in group]
        text = "".join(texts)
        if self.is_transpose(group):
            return "transpose", None
        if text in STAR_MARKS:
            return "label", "star"
        if len(texts) == 1 and TEXT_COMMAND.match(texts[0]):
            return "label", _text_name(TEXT_COMMAND.match(texts[0])["text"], texts[0])
        sample = re.fullmatch(r"(\d*)[(\[](.+)[)\]]", text)
        if sample and texts[-1] in (")", "]") and (texts[-1] == ")") == ("(" in texts[:2]):
            opening = texts.index("(" if texts[-1] == ")" else "[")
            inner = group[opening + 1:-1]
            written = "".join(t.text for t in inner)
            part = Part(self.piece_text(inner, text), self.index_exprs(inner, paren=True), written)
            power = Num(float(sample.group(1))) if sample.group(1) else None
            return "sample", (part, power)
        if len(texts) == 1 and len(text) == 1 and text.isupper() and raw.base[:1].isupper():
            return "label", text  # W^O, W^Q: the output and query projections, not powers
        if len(texts) == 1 and texts[0].startswith("\\") and texts[0][1:] in GREEK | {"pi"} and self.peek() == "(":
            return "label", python_name(texts[0][1:])  # V^\theta(s), Q^\pi(s, a): a superscripted name applied
        return "power", self.sub_expr(group, "in a superscript")

    def parts(self, group: list[Token]) -> tuple[Part, ...]:
        """A subscript's comma-separated pieces; ``_{(pos,2i)}`` holds index expressions."""
        texts = [t.text for t in group]
        paren = len(texts) >= 2 and texts[0] == "(" and texts[-1] == ")"
        inner = group[1:-1] if paren else group
        pieces, current, depth = [], [], 0
        for token in inner:
            depth += token.text in ("{", "(")
            depth -= token.text in ("}", ")")
            if token.text == "," and depth == 0:
                pieces.append(current)
                current = []
            else:
                current.append(token)
        pieces.append(current)
        whole = "".join(texts)
        return tuple(self.part(piece, whole, paren) for piece in pieces)

    def part(self, piece: list[Token], whole: str, paren: bool) -> Part:
        written = "".join(t.text for t in piece)
        index = self.index_exprs(piece, paren)
        try:
            text = self.piece_text(piece, whole)
        except LatexError:
            if not index:
                raise
            text = re.sub(r"\W+", "_", written.replace("+", "plus").replace("-", "minus"))  # 2i+1: an index
        return Part(text, index, written)

    def piece_text(self, piece: list[Token], whole: str) -> str:
        """A subscript piece as part of a python name: ``t-1`` → ``prev``, ``\\text{adv}`` → ``adv``."""
        texts = [t.text for t in piece]
        if len(texts) == 3 and LETTERS.fullmatch(texts[0]) and texts[1] in "+-" and texts[2].isdigit():
            if texts[2] == "1":
                return "prev" if texts[1] == "-" else "next"
            return f"{texts[0]}_{'plus' if texts[1] == '+' else 'minus'}_{texts[2]}"
        words = []
        for text in texts:
            match = TEXT_COMMAND.match(text)
            if match:
                words.append(_text_name(match["text"], text))
            elif text.startswith("\\") and text[1:] in GREEK | {"max", "min", "top", "infty", "prime"}:
                words.append(text[1:])
            elif text.startswith("\\") and text[1:] in FONTS and len(texts) > 1:
                continue
            elif LETTERS.fullmatch(text) or text.isdigit():
                words.append(text)
            elif text == "-" and words:
                words.append("_")
            elif text in ("{", "}", "'"):
                words.append("prime" if text == "'" else "")
            elif text == "_" and words:
                words.append("_")  # \pi_{\theta_{old}} → pi_theta_old
            else:
                what = STOPPERS.get(text, f"{text!r}")
                raise LatexError(f"cannot read the subscript _{{{whole}}}: {what}")
        joined = "".join(w if w in ("_", "") else w for w in words)
        if not joined:
            raise LatexError(f"an empty subscript _{{{whole}}}")
        return re.sub(r"_+", "_", "".join(_join_words(words)))

    def index_exprs(self, piece: list[Token], paren: bool) -> tuple[IndexExpr, ...]:
        """The piece read as index positions, when every variable in it can be an index."""
        texts = [t.text for t in piece]
        if not texts:
            return ()
        indirect = [t for t in texts if t not in ("{", "}")]
        if len(indirect) == 3 and indirect[1] == "_" and LETTERS.fullmatch(indirect[0]) and LETTERS.fullmatch(
                indirect[2]):
            var = self.index_var(indirect[2], paren)  # p_{i, y_i}: the entry y_i of the integer tensor y
            return (IndexExpr(var, indirect[2], via=indirect[0]),) if var is not None else ()
        if all(LETTERS.fullmatch(t) for t in texts) and (len(texts) > 1 or len(texts[0]) > 1):
            letters = list(texts[0]) if len(texts) == 1 and not paren else texts
            exprs = [self.index_var(letter, paren) for letter in letters]
            if all(exprs) and len(set(letters)) == len(letters) or len(letters) == 1 and exprs[0]:
                return tuple(IndexExpr(var, letter) for var, letter in zip(exprs, letters, strict=False))
            if len(texts) == 1 and paren and exprs[0] is None:
                return ()
        terms = _affine(texts)
        if terms is None:
            return ()
        offset, shift, variables = 0, [], []
        for coefficient, name in terms:
            var = self.index_var(name, paren) if name is not None else None
            if name is None:
                offset += coefficient
            elif var is not None:
                variables.append((var, name, coefficient))
            elif coefficient == 1 and LETTERS.fullmatch(name):
                shift.append(name)  # t in r_{t+k}: a bound number, not an index
            else:
                return ()
        if not variables or variables[0][2] <= 0:
            return ()
        (var, letter, scale), *rest = variables
        return (IndexExpr(var, letter, scale, offset, tuple(shift), tuple((v, c) for v, _, c in rest)),)

    def index_var(self, letter: str, paren: bool) -> str | None:
        bound = self.state.lookup(letter)
        if bound is not None:
            return bound
        if letter in FREE_LETTERS or (paren or len(letter) > 1) and LETTERS.fullmatch(letter) and letter != "t":
            return letter  # a candidate: it is an index only if it is free on both sides of the equation (pos)
        return None

    def apply(self, raw: _RawSym, start: int) -> Apply:
        args = self.arguments()
        if any(isinstance(a, _Ellipsis) for a in args):  # P(w_1, \dots, w_T): one argument, the sequence
            args = (self.written_out([(",", a) for a in args], "stack", start),)
        elif len(args) == 1 and isinstance(args[0], Reduce) and args[0].kind == "prod" and _is_pattern(args[0]):
            args = (replace(args[0], kind="stack"),)  # P(w_1 w_2 \ldots w_N): the sequence, not its product
        builtin = "sigmoid" if raw.base == "sigma" and not raw.parts and not raw.suffix and len(args) == 1 else None
        return Apply(raw, args, self.src(start), builtin)  # the target stays raw until the equation decides

    def arguments(self) -> tuple[Node, ...]:
        opening = self.take()
        closing = {"(": ")", "[": "]", "\\{": "\\}", "{": "}"}[opening]
        saved = (self.in_arguments, self.in_bars)
        self.in_arguments, self.in_bars = True, 0
        try:
            args = [self.argument()]
            while self.peek() in (",", "|", "\\mid", "\\|", ";", "\\Vert"):
                if self.take() in ("|", "\\mid") and self.peek() in ("|", "\\mid"):
                    self.take()  # P \mid\mid Q, P || Q
                args.append(self.argument())
        finally:
            self.in_arguments, self.in_bars = saved
        if self.peek() != closing:
            self.fail_leftover() if self.peek() is not None else self.take(closing)
        self.take(closing)
        return tuple(args)

    def argument(self) -> Node:
        """One argument; ``P(y = 1 \\mid x)`` holds a comparison."""
        start = self.pos
        node = self.expr()
        if self.peek() in RELATIONS:
            terms, ops = [node], []
            while self.peek() in RELATIONS:
                ops.append(RELATIONS[self.take()])
                terms.append(self.expr())
            node = Compare(tuple(ops), tuple(terms), self.src(start))
        return node

    def accent(self, suffix: str, start: int) -> Node:
        group = self.group_tokens()
        inner = self.sub_parser(group)
        node = inner.atom_name_only()
        if inner.peek() is not None:
            raise LatexError(f"an accent on something that is not a symbol: {self.src(start)}")
        parts = dict(base=f"{node.base}_{suffix}", src=self.src(start))
        return self.name(replace(node, **parts), start)

    def atom_name_only(self) -> _RawSym:
        """The symbol inside an accent or a font: ``\\hat{x}``, ``\\hat{\\mathbf{x}}``, ``\\bar{x_i}``."""
        token = self.peek()
        start = self.pos
        if token is None:
            raise LatexError("an empty accent or font group")
        self.take()
        if LETTERS.fullmatch(token):
            raw = _RawSym(token, token)
        elif token.startswith("\\") and token[1:] in GREEK | {"pi"}:
            raw = _RawSym(token[1:], token)
        elif token.startswith("\\") and token[1:] in FONTS | set(ACCENTS):
            inner = self.sub_parser(self.group_tokens())
            raw = inner.atom_name_only()
            if token[1:] in ACCENTS:
                raw = replace(raw, base=f"{raw.base}_{ACCENTS[token[1:]]}")
        elif TEXT_COMMAND.match(token):
            raw = _RawSym(_text_name(TEXT_COMMAND.match(token)["text"], token), token)
        else:
            raise LatexError(f"an accent or a font on something that is not a symbol: {self.quote(start)}")
        sub, sup, primes = self.scripts()
        if primes:
            raw = replace(raw, base=raw.base + "_prime" * primes)
        if sub is not None:
            raw = replace(raw, parts=self.parts(sub), plain=False)
        if sup is not None:
            raise LatexError(f"a superscript inside an accent: {self.quote(start)}")
        return raw

    def font(self, start: int) -> Node:
        group = self.group_tokens()
        if len(group) == 1 and NUMBER.fullmatch(group[0].text):
            return self.postfix(Num(float(group[0].text), group[0].text), start)
        inner = self.sub_parser(group)
        if len(group) == 1 or inner.is_single_name():
            node = inner.atom_name_only()
            if inner.peek() is None:
                return self.name(replace(node, src=self.src(start)), start)
        return self.postfix(self.sub_expr(group), start)  # \mathbf{W x}: a font around an expression

    def is_single_name(self) -> bool:
        texts = [t.text for t in self.tokens]
        return bool(texts) and (LETTERS.fullmatch(texts[0]) is not None or texts[0].lstrip("\\") in GREEK)

    def blackboard(self, start: int) -> Node:
        letter = "".join(t.text for t in self.group_tokens())
        if letter == "E":
            if self.peek() in ("_", "^"):
                raise LatexError(f"an expectation over a distribution (\\mathbb{{E}}_{{…}}): {self.quote(start)}")
            if self.peek() not in ("[", "\\{", "("):
                raise LatexError(f"\\mathbb{{E}} without brackets: {self.quote(start)}")
            opening = self.take()
            closing = {"[": "]", "\\{": "\\}", "(": ")"}[opening]
            inner = self.grouped(lambda: self.expr())
            self.take(closing)
            return self.postfix(Mean(inner, self.src(start)), start)
        if letter in ("1", "I"):
            return self.indicator(start, taken=True)
        what = {"R": "the set of real numbers \\mathbb{R}", "N": "the natural numbers \\mathbb{N}",
                "Z": "the integers \\mathbb{Z}", "P": "a probability \\mathbb{P}"}.get(letter, f"\\mathbb{{{letter}}}")
        raise LatexError(f"{what} is not a value: {self.quote(start)}")

    def is_indicator_one(self) -> bool:
        if self.peek() == "1":
            return self.peek(1) in ("_", "\\{", "[", "(")
        return self.peek(1) == "1" and self.peek(2) == "}" and self.peek(3) in ("_", "\\{", "[", "(")

    def indicator(self, start: int, taken: bool = False) -> Node:
        if not taken:
            self.group_tokens()
        if self.peek() == "_":
            self.take()
            group = self.group_tokens()
            texts = [t.text for t in group]
            if texts and texts[0] in ("[", "\\{", "(") and len(texts) > 2:
                group = group[1:-1]
            cond = self.sub_parser(group).whole_condition()
        elif self.peek() in ("\\{", "[", "("):
            opening = self.take()
            closing = {"\\{": "\\}", "[": "]", "(": ")"}[opening]
            cond = self.grouped(lambda: self.logical())
            self.take(closing)
        else:
            raise LatexError(f"an indicator without a condition: {self.quote(start)}")
        return self.postfix(Indicator(cond, self.src(start)), start)

    # Operators -------------------------------------------------------------------------------------------------

    def fraction(self, start: int) -> Node:
        numerator, denominator = self.group_tokens(), self.group_tokens()
        kind = _derivative_kind(numerator, denominator)
        if kind is not None:
            return self.derivative(numerator, denominator, kind, start)
        return BinOp("/", self.sub_expr(numerator, "in \\frac"), self.sub_expr(denominator, "in \\frac"),
                     self.src(start))

    def derivative(self, numerator: list[Token], denominator: list[Token], kind: str, start: int) -> Node:
        numerator, denominator = _after_differential(numerator), _after_differential(denominator)
        if numerator and numerator[0].text == "^":
            raise LatexError(f"a second derivative is not evaluated: {self.src(start) or self.quote(start)}")
        wrt = self.sub_parser(denominator)
        variable = wrt.factor() if denominator else None
        if not isinstance(variable, _RawSym) or wrt.peek() is not None:
            if isinstance(variable, Pow):
                raise LatexError(f"a second derivative is not evaluated: {self.src(start)}")
            raise LatexError(f"a derivative with respect to something that is not a symbol: {self.src(start)}")
        if numerator:
            body = self.sub_expr(numerator)
        else:
            body = self.operand()  # \frac{d}{dx} \tanh(x): the operator form
        node = Deriv(body, variable, self.src(start))
        return node

    def slash_derivative(self, start: int) -> Node:
        """``\\partial\\ell/\\partial\\gamma``: a derivative written inline with a slash."""
        numerator = self.factor()
        if self.peek() != "/" or self.peek(1) != "\\partial":
            raise LatexError(f"{NOT_EVALUABLE['partial']}: {self.quote(start)}")
        self.take("/")
        self.take("\\partial")
        variable = self.factor()
        if not isinstance(variable, _RawSym):
            raise LatexError(f"a derivative with respect to something that is not a symbol: {self.src(start)}")
        return self.postfix(Deriv(numerator, variable, self.src(start)), start)

    def gradient(self, start: int) -> Node:
        wrt = None
        if self.peek() == "^":
            raise LatexError(f"a second derivative (\\nabla^2) is not evaluated: {self.quote(start)}")
        if self.peek() == "_":
            self.take()
            inner = self.sub_parser(self.group_tokens())
            wrt = inner.factor()
            if not isinstance(wrt, _RawSym) or inner.peek() is not None:
                raise LatexError(f"a gradient with respect to something that is not a symbol: {self.quote(start)}")
        body = self.gradient_operand()
        transposed = isinstance(body, Transpose)
        if transposed:
            body = body.arg
        if wrt is None:
            if isinstance(body, Apply) and len(body.args) == 1 and isinstance(body.args[0], (_RawSym, Sym)):
                wrt = body.args[0]
            else:
                raise LatexError(f"\\nabla without a variable (write \\nabla_\\theta): {self.src(start)}")
        node: Node = Deriv(body, wrt, self.src(start))
        return Transpose(node, self.src(start)) if transposed else node

    def gradient_operand(self) -> Node:
        """``\\nabla_x \\frac{1}{2}\\|x\\|^2`` takes the product; ``\\nabla_x L^T \\delta`` is (∇L)ᵀ δ: a transposed
        factor ends the operand."""
        start = self.pos
        node = self.factor()
        while not isinstance(node, Transpose) and not (isinstance(node, BinOp) and isinstance(node.right, Transpose)) \
                and self.starts_factor(self.peek()) and not self.starts_operator(self.peek()):
            node = BinOp("*", node, self.factor(), self.src(start))
        if isinstance(node, BinOp) and isinstance(node.right, Transpose):
            return Transpose(BinOp("*", node.left, node.right.arg, node.src), node.src)
        return node

    def square_root(self, start: int) -> Node:
        if self.peek() == "[":
            self.take("[")
            root = self.expr()
            self.take("]")
            radicand = self.sub_expr(self.group_tokens(), "in \\sqrt")
            return Pow(radicand, BinOp("/", Num(1.0), root), self.src(start))
        return Call("sqrt", (self.sub_expr(self.group_tokens(), "in \\sqrt"),), self.src(start), "sqrt")

    def function(self, func: str, written: str, start: int, primes: bool = False) -> Node:
        """A built-in function: ``\\log_2 x``, ``\\tanh^2(x)``, ``\\exp(z_i)``, ``\\max(0, x)``."""
        sub, sup, more_primes = self.scripts()
        primes = primes or bool(more_primes)
        if sub is not None:
            if func in ("max", "min"):
                raise LatexError(f"\\{func} with a subscript and scripts: {self.quote(start)}")
            if func != "log":
                raise LatexError(f"a subscript on {written}: {self.quote(start)}")
        base = self.sub_expr(sub) if sub is not None else None
        power = None
        if sup is not None:
            if [t.text for t in sup] in (["-", "1"], ["-1"]):
                raise LatexError(f"an inverse function {written}^{{-1}}: {self.quote(start)}")
            power = self.sub_expr(sup, "in a superscript")
        if self.peek() in ("(", "\\{") or self.peek() == "[" and func in ("max", "min"):
            args = self.arguments()
        else:
            args = (self.operand(),)
        if any(isinstance(a, _Ellipsis) for a in args):
            if func != "concat":
                raise LatexError(f"an ellipsis among the arguments of {written}: {self.src(start)}")
            node: Node = self.written_out([(",", a) for a in args], "concat", start)
        elif func == "concat":
            node = Concat(args, self.src(start))
        else:
            node = Call(func, args, self.src(start), written, base)
        if primes:
            if len(args) != 1:
                raise LatexError(f"the derivative of {written} of several arguments: {self.src(start)}")
            node = Prime(node, self.src(start))
        if power is not None:
            node = Pow(node, power, self.src(start))
        return self.postfix(node, start)

    def big_operator(self, kind: str, start: int) -> Node:
        sub, sup, _ = self.scripts()
        if sub is None and sup is None:
            return self.implicit_sum(kind, start)
        if sub is None:
            raise LatexError(f"\\{kind} without an index: {self.quote(start)}")
        letters, lower, upper, start_value = self.sum_index(sub, f"\\{kind}", start)
        if sup is not None and upper is not None:
            raise LatexError(f"two upper bounds on \\{kind}: {self.quote(start)}")
        if sup is not None:
            if "\\infty" in [t.text for t in sup]:
                raise LatexError(f"an infinite \\{kind}: {self.quote(start)}")
            upper = self.sub_expr(sup, f"in the bound of \\{kind}")
            if lower is None:  # \sum_i^{n-1}: from 0 when the bound says n-1, else from 1
                start_value = 0 if [t.text for t in sup][-2:] == ["-", "1"] else 1
                lower = Num(float(start_value))
        return self.bound_body(kind, letters, lower, upper, start_value, start, lambda: self.term())

    def implicit_sum(self, kind: str, start: int) -> Node:
        """``\\bar{x} = \\frac{1}{n} \\sum x_i``: the sum runs over the one index letter of its summand that the
        left side does not have."""
        body = self.term()
        letters = sorted(_candidates_in_subscripts(body) - self.state.lhs_letters)
        if len(letters) != 1:
            what = "no index letter" if not letters else "several index letters (" + ", ".join(letters) + ")"
            raise LatexError(f"\\{kind} without an index, and its summand has {what}: write \\{kind}_i "
                             f"({self.src(start)})")
        letter = letters[0]
        var = f"{letter}#{next(self.state.counter)}"
        return Reduce(kind, var, letter, None, None, _bind_letter(body, letter, var), self.src(start))

    def reduction(self, kind: str, start: int) -> Node:
        """``\\max_i z_i``, ``\\min_{j} …``, ``\\arg\\max_i``: over an index variable."""
        sub, sup, _ = self.scripts()
        if sub is None:
            if kind in ("argmax", "argmin"):
                raise LatexError(f"\\arg\\{kind[3:]} without an index: {self.quote(start)}")
            raise LatexError(f"\\{kind} without an index: {self.quote(start)}")
        if sup is not None:
            raise LatexError(f"a superscript on \\{kind}: {self.quote(start)}")
        letters, lower, upper, start_value = self.sum_index(sub, f"\\{kind}", start)
        if lower is not None and upper is None:
            raise LatexError(f"a lower bound without an upper one on \\{kind}: {self.quote(start)}")
        return self.bound_body(kind, letters, lower, upper, start_value, start, lambda: self.operand())

    def bound_body(self, kind, letters, lower, upper, start_value, start, read) -> Node:
        variables = [(letter, f"{letter.replace(chr(39), '_prime')}#{next(self.state.counter)}") for letter in letters]
        self.state.bound.extend(variables)
        try:
            body = read()
        finally:
            del self.state.bound[-len(variables):]
        for letter, var in reversed(variables):
            body = Reduce(kind, var, letter, lower, upper, body, self.src(start), start_value)
        return body

    def sum_index(self, group: list[Token], construct: str, start: int):
        """``i=1`` → (["i"], 1, None, 1); ``i`` → (["i"], None, None, None); ``i,j`` → both; ``1 \\le i \\le n`` →
        (["i"], 1, n, 1)."""
        texts = [t.text for t in group]
        chain = _bounds_chain(group)
        if chain is not None:  # \sum_{1 \le i \le n}
            letter, low, high = chain
            return [letter], self.sub_expr(low), self.sub_expr(high), _literal_start(low)
        if "\\in" in texts:  # \sum_{x \in \mathcal{X}}: the set is the whole dimension x labels
            texts = texts[:texts.index("\\in")]
        if "=" in texts:
            at = texts.index("=")
            names, bound = texts[:at], group[at + 1:]
        else:
            names, bound = texts, []
        letters: list[str] = []
        for text in names:
            if text == "'" and letters:
                letters[-1] += "'"  # \max_{a'}
            elif text != ",":
                letters.append(text)
        for text in texts:
            if text in STOPPERS or text in ("\\sim", "\\neq", "\\ne", ":"):
                raise LatexError(f"{construct} over a set or a condition ({text}): {self.quote(start)}")
        if not letters or any(not LETTERS.fullmatch(letter.rstrip("'")) for letter in letters):
            what = " ".join(names)
            raise LatexError(f"{construct} over {what}: an index must be a Latin letter (an optimisation over "
                             f"a continuous variable is not evaluated)")
        lower = start_value = None
        if bound:
            lower = self.sub_expr(bound, f"in the bound of {construct}")
            start_value = _literal_start(bound)
        return letters, lower, None, start_value

    def inner_product(self, start: int) -> Node:
        saved = self.in_arguments
        self.in_arguments = True
        try:
            left = self.grouped_keep_bars(lambda: self.expr())
            self.take(",")
            right = self.grouped_keep_bars(lambda: self.expr())
        finally:
            self.in_arguments = saved
        self.take("\\rangle")
        return Inner(left, right, self.src(start))

    def environment(self, start: int) -> Node:
        name = "".join(t.text for t in self.group_tokens())
        if name == "cases":
            return self.cases(start)
        if name in ("bmatrix", "pmatrix", "matrix", "Bmatrix"):
            return self.matrix(name, start)
        raise LatexError(f"the environment \\begin{{{name}}} inside an expression: {self.quote(start)}")

    def rows(self, name: str) -> list[list[list[Token]]]:
        rows, row, cell, depth = [], [], [], 0
        while True:
            token = self.tokens[self.pos] if self.pos < len(self.tokens) else None
            if token is None:
                raise LatexError(f"\\begin{{{name}}} without \\end{{{name}}}")
            self.pos += 1
            if token.text == "\\begin":
                depth += 1
            if token.text == "\\end":
                if depth == 0:
                    self.group_tokens()
                    row.append(cell)
                    rows.append(row)
                    return [r for r in rows if any(c for c in r)]
                depth -= 1
            if depth == 0 and token.text == "&":
                row.append(cell)
                cell = []
            elif depth == 0 and token.text == "\\\\":
                row.append(cell)
                rows.append(row)
                row, cell = [], []
            else:
                cell.append(token)

    def cases(self, start: int) -> Node:
        cases = []
        for row in self.rows("cases"):
            if len(row) > 2:
                raise LatexError(f"a \\begin{{cases}} row with more than two cells: {self.quote(start)}")
            value_tokens = row[0]
            if value_tokens and value_tokens[-1].text == ",":
                value_tokens = value_tokens[:-1]
            value = self.sub_expr(value_tokens, "in \\begin{cases}")
            condition = self.sub_parser(row[1]).whole_condition() if len(row) > 1 else None
            cases.append((value, condition))
        if not cases:
            raise LatexError("an empty \\begin{cases}")
        return Piecewise(tuple(cases), self.src(start))

    def matrix(self, name: str, start: int) -> Node:
        rows = tuple(tuple(self.sub_expr(cell, f"in \\begin{{{name}}}") for cell in row) for row in self.rows(name))
        widths = {len(row) for row in rows}
        if len(widths) != 1:
            raise LatexError(f"the rows of \\begin{{{name}}} have different lengths: {self.quote(start)}")
        return Matrix(rows, self.src(start))

    # Conditions ------------------------------------------------------------------------------------------------

    def whole_condition(self) -> Node | None:
        """A case's condition: ``x > 0``, ``\\text{if } |x| \\le \\delta``, ``\\text{otherwise}``."""
        while self.peek() is not None and (self.peek() == "," or (_text_word(self.peek()) or "").strip() in
                                           IF_WORDS | FOR_WORDS):
            self.take()
        if self.peek() is None or _text_word(self.peek()) in OTHERWISE_WORDS:
            if self.peek() is not None:
                self.take()
            if self.peek() is not None:
                self.fail_leftover()
            return None
        node = self.logical()
        if self.peek() is not None:
            self.fail_leftover()
        return node

    def logical(self) -> Node:
        start = self.pos
        node = self.comparison()
        while self.peek() in AND_WORDS or self.peek() in OR_WORDS or self.peek() == ",":
            op = "or" if self.take() in OR_WORDS else "and"
            node = Logical(op, (node, self.comparison()), self.src(start))
        return node

    def comparison(self) -> Node:
        start = self.pos
        terms, ops = [self.expr()], []
        while self.peek() in RELATIONS:
            ops.append(RELATIONS[self.take()])
            terms.append(self.expr())
        if not ops:
            raise LatexError(f"a condition without a comparison: {self.quote(start)}")
        return Compare(tuple(ops), tuple(terms), self.src(start))

    # Written-out sums ------------------------------------------------------------------------------------------

    def written_out(self, items: list[tuple[str, Node]], kind: str, start: int) -> Node:
        """``x_1 + x_2 + \\cdots + x_n``, ``r_t + \\gamma r_{t+1} + \\gamma^2 r_{t+2} + \\cdots``,
        ``[g_1, g_2, \\ldots, g_N]``: the terms written before the ellipsis fix the pattern."""
        src = self.src(start)
        try:
            return _written_out(items, kind, self.state, src)
        except _NoPattern as exc:
            what = {"sum": "sum", "prod": "product"}.get(kind, "sequence")
            raise LatexError(f"the written-out {what} `{_short(src)}` follows no pattern notevault can read ({exc})"
                             ) from None


def _is_pattern(node: Reduce) -> bool:
    return any(e in node.src for e in ELLIPSES) or "..." in node.src or "…" in node.src


def _literal_start(tokens: list[Token]) -> int | None:
    """A sum written from 0 counts from 0; from a literal 1 or more, from 1."""
    texts = [t.text for t in tokens]
    if len(texts) == 1 and texts[0].isdigit():
        return 0 if texts[0] == "0" else 1
    return None


def _bounds_chain(group: list[Token]):
    """``1 \\le i \\le n`` → ("i", [1], [n]); ``0 \\le i < n`` → ("i", [0], [n, -, 1])."""
    texts = [t.text for t in group]
    relations = [n for n, t in enumerate(texts) if t in ("<", "\\le", "\\leq", "\\lt")]
    if len(relations) != 2 or relations[1] != relations[0] + 2 or not LETTERS.fullmatch(texts[relations[0] + 1]):
        return None
    low, high = group[:relations[0]], group[relations[1] + 1:]
    if not low or not high:
        return None
    if texts[relations[0]] in ("<", "\\lt"):
        low = [*low, Token("+", 0, 0), Token("1", 0, 0)]
    if texts[relations[1]] in ("<", "\\lt"):
        high = [*high, Token("-", 0, 0), Token("1", 0, 0)]
    return texts[relations[0] + 1], low, high


def _bind_letter(body, letter: str, var: str):
    """Make a free candidate letter of a summand the sum's own variable."""

    def change(node):
        if isinstance(node, _RawSym):
            if node.plain and not node.parts and node.sample is None and not node.suffix and node.base == letter:
                return IndexValue(var, letter)
            parts = tuple(_rebind_part(p, letter, var) for p in node.parts)
            sample = None if node.sample is None else _rebind_part(node.sample, letter, var)
            return replace(node, parts=parts, sample=sample)
        return node

    return transform(body, change)


def _rebind_part(part: Part, letter: str, var: str) -> Part:
    exprs = tuple(replace(ix, var=var) if ix.var == letter else ix for ix in part.index)
    return replace(part, index=exprs)


def _join_words(words: list[str]) -> list[str]:
    out: list[str] = []
    for word in words:
        if not word:
            continue
        if out and out[-1] != "_" and word != "_" and (len(word) > 1 or len(out[-1]) > 1) and not (
                out[-1].isdigit() and word.isdigit()):
            out.append("_")
        out.append(word)
    return out


def _text_word(token: str | None) -> str | None:
    match = TEXT_COMMAND.match(token or "")
    return _plain_text(match["text"]) if match else token


def _affine(texts: list[str]) -> list[tuple[int, str | None]] | None:
    """``2i+1`` → [(2, "i"), (1, None)]; ``t+k+1`` → [(1, "t"), (1, "k"), (1, None)]; None if not a sum of
    terms (a coefficient, a letter or a word)."""
    terms: list[tuple[int, str | None]] = []
    sign, at = 1, 0
    expect_term = True
    while at < len(texts):
        text = texts[at]
        if text in ("+", "-") and (not expect_term or not terms and text == "-"):
            sign = -1 if text == "-" else 1
            expect_term = True
            at += 1
            continue
        if not expect_term:
            return None
        if text.isdigit() and at + 1 < len(texts) and LETTERS.fullmatch(texts[at + 1]):
            terms.append((sign * int(text), texts[at + 1]))
            at += 2
        elif text.isdigit():
            terms.append((sign * int(text), None))
            at += 1
        elif LETTERS.fullmatch(text):
            terms.append((sign, text))
            at += 1
        else:
            return None
        sign, expect_term = 1, False
    return terms if terms and not expect_term else None


def _derivative_kind(numerator: list[Token], denominator: list[Token]) -> str | None:
    first = [t.text for t in numerator[:2]]
    below = [t.text for t in denominator[:2]]
    if first[:1] == ["\\partial"] and below[:1] == ["\\partial"]:
        return "partial"
    if _is_differential(first, whole=True) and _is_differential(below, whole=False):
        return "d"
    return None


def _is_differential(texts: list[str], whole: bool) -> bool:
    if not texts:
        return False
    head = texts[0]
    if head in ("\\mathrm{d}", "\\text{d}", "\\operatorname{d}"):
        return True
    if head == "d":
        following = texts[1] if len(texts) > 1 else None
        if following is None:
            return whole  # \frac{d}{dx}
        return following not in ("_", "^", "'")
    return LETTERS.fullmatch(head) is not None and len(head) > 2 and head[0] == "d" and head[1].isupper()


def _after_differential(tokens: list[Token]) -> list[Token]:
    head = tokens[0]
    if LETTERS.fullmatch(head.text) and len(head.text) > 2 and head.text[0] == "d":
        return [Token(head.text[1:], head.start + 1, head.end), *tokens[1:]]  # dLoss → d, Loss
    return tokens[1:]


# Written-out sums: the pattern of the terms before the ellipsis --------------------------------------------

class _NoPattern(Exception):
    pass


@dataclass(frozen=True)
class _Slot:
    """A place where consecutive terms differ by a constant step: ``x_1, x_2`` or ``\\gamma, \\gamma^2``."""

    first: int
    step: int
    name: str | None = None  # the name before the number in a subscript such as t+1


def _written_out(items, kind, state: _State, src: str) -> Node:
    ops = {op for op, _ in items[1:]} | ({items[0][0]} if kind == "sum" else set())
    allowed = {"sum": {"+"}, "prod": {"*", "cdot"}, "stack": {","}, "concat": {","}}[kind]
    if not ops <= allowed:
        raise _NoPattern("the terms are not all joined by " + " ".join(sorted(allowed)))
    terms = [node for _, node in items]
    at = [n for n, term in enumerate(terms) if isinstance(term, _Ellipsis)]
    if len(at) != 1:
        raise _NoPattern("more than one ellipsis")
    before, after = terms[:at[0]], terms[at[0] + 1:]
    if len(after) > 1:
        raise _NoPattern("more than one term after the ellipsis")
    last = after[0] if after else None
    if len(before) >= 2:
        template = _merge(before[-2], before[-1])
        k0 = len(before) - 2
    elif len(before) == 1 and last is not None:
        template = _merge_to_last(before[0], last)  # x_1 + \cdots + x_n: one term and the last, step 1
        k0 = 0
    else:
        raise _NoPattern("write at least two terms before the ellipsis")
    for n, term in enumerate(before):
        if not _same(_instantiate(template, n - k0), term):
            raise _NoPattern(f"term {n + 1} does not follow the others")
    letter = "k"
    var = f"{letter}#{next(state.counter)}"
    upper = _last_index(template, last, k0) if last is not None else None
    body = _symbolic(template, var)
    start = _first_subscript(template, k0)
    reduce_kind = kind
    body = _with_src(_shift_var(body, var, -k0), src)
    return Reduce(reduce_kind, var, letter, Num(0.0), upper, body, src, start)


def _with_src(node, src: str):
    """Pieces made from the pattern quote the whole written-out sum in messages."""
    return transform(node, lambda n: replace(n, src=src) if hasattr(n, "src") and not n.src else n)


def _merge(a, b):
    """A template of two consecutive terms: equal everywhere but at integer slots."""
    if isinstance(a, _Slot) or isinstance(b, _Slot):
        raise _NoPattern("nested patterns")
    if type(a) is not type(b):
        if isinstance(b, Pow) and _same(a, b.base) and isinstance(b.exponent, Num):
            return _merge(Pow(a, Num(1.0)), b)  # \gamma then \gamma^2
        if isinstance(a, Pow) and _same(a.base, b) and isinstance(a.exponent, Num):
            return _merge(a, Pow(b, Num(1.0)))
        raise _NoPattern("the terms differ in form")
    if isinstance(a, Num):
        if a.value == b.value:
            return a
        if a.value.is_integer() and b.value.is_integer():
            return _Slot(int(a.value), int(b.value - a.value))
        raise _NoPattern("non-integer steps")
    if isinstance(a, _RawSym):
        if (a.base, a.suffix, len(a.parts)) != (b.base, b.suffix, len(b.parts)):
            raise _NoPattern("the symbols differ")
        parts = tuple(_merge_part(p, q) for p, q in zip(a.parts, b.parts, strict=False))
        sample = None if a.sample is None and b.sample is None else _merge_part(a.sample, b.sample)
        return replace(a, parts=parts, sample=sample, src="")
    if isinstance(a, tuple):
        if len(a) != len(b):
            raise _NoPattern("different numbers of arguments")
        return tuple(_merge(x, y) for x, y in zip(a, b, strict=False))
    if not isinstance(a, (*_NODE_TYPES, _Ellipsis)):
        if a != b:
            raise _NoPattern("the terms differ")
        return a
    updates = {}
    for f in fields(a):
        if f.name == "src":
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, (*_NODE_TYPES, _RawSym, tuple)) or isinstance(y, (*_NODE_TYPES, _RawSym, tuple)):
            updates[f.name] = _merge(x, y) if x is not None or y is not None else None
        elif x != y:
            raise _NoPattern("the terms differ")
    return replace(a, **updates, src="")


def _merge_part(p: Part | None, q: Part | None):
    if p is None or q is None:
        raise _NoPattern("the subscripts differ")
    if p == q:
        return p
    x, y = _numbered(p.written), _numbered(q.written)
    if x is None or y is None or x[0] != y[0]:
        raise _NoPattern(f"subscripts {p.written} and {q.written}")
    return _Slot(x[1], y[1] - x[1], x[0])


def _numbered(written: str) -> tuple[str | None, int] | None:
    """``3`` → (None, 3); ``t`` → ("t", 0); ``t+2`` → ("t", 2)."""
    if written.isdigit():
        return None, int(written)
    match = re.fullmatch(r"([A-Za-z]+)(?:([+-])(\d+))?", written)
    if match:
        return match[1], int(match[3] or 0) * (-1 if match[2] == "-" else 1)
    return None


def _merge_to_last(a, b):
    if isinstance(a, _RawSym) and isinstance(b, _RawSym):
        if (a.base, a.suffix, len(a.parts)) != (b.base, b.suffix, len(b.parts)):
            raise _NoPattern("the symbols differ")
        parts = tuple(p if p == q else _unit_slot(p) for p, q in zip(a.parts, b.parts, strict=False))
        sample = a.sample if a.sample is None or a.sample == b.sample else _unit_slot(a.sample)
        return replace(a, parts=parts, sample=sample, src="")
    if type(a) is not type(b):
        raise _NoPattern("the terms differ in form")
    if isinstance(a, tuple):
        return tuple(_merge_to_last(x, y) for x, y in zip(a, b, strict=False))
    if isinstance(a, Num):
        if a.value != b.value:
            raise _NoPattern("a number changes between the first and the last term")
        return a
    if not isinstance(a, (*_NODE_TYPES,)):
        return a
    updates = {f.name: _merge_to_last(getattr(a, f.name), getattr(b, f.name)) for f in fields(a)
               if f.name != "src" and isinstance(getattr(a, f.name), (*_NODE_TYPES, _RawSym, tuple))}
    return replace(a, **updates, src="")


def _unit_slot(part: Part) -> _Slot:
    numbered = _numbered(part.written)
    if numbered is None:
        raise _NoPattern(f"subscript {part.written}")
    return _Slot(numbered[1], 1, numbered[0])


def _instantiate(template, k: int):
    """The template's term number ``k`` (0: the first of the two terms it was made from)."""
    if isinstance(template, _Slot):
        return Num(float(template.first + template.step * k))
    if isinstance(template, tuple):
        return tuple(_instantiate(t, k) for t in template)
    if isinstance(template, _RawSym):
        parts = tuple(_part_at(p, k) for p in template.parts)
        sample = None if template.sample is None else _part_at(template.sample, k)
        return replace(template, parts=parts, sample=sample)
    if isinstance(template, Part) or not isinstance(template, _NODE_TYPES):
        return template
    updates = {}
    for f in fields(template):
        value = getattr(template, f.name)
        if isinstance(value, _Slot):
            updates[f.name] = _instantiate(value, k)
        elif isinstance(value, (*_NODE_TYPES, _RawSym, tuple)):
            updates[f.name] = _instantiate(value, k)
    return _simplify(replace(template, **updates))


def _part_at(part, k: int) -> Part:
    if not isinstance(part, _Slot):
        return part
    value = part.first + part.step * k
    if part.name is None:
        return Part(str(value), (), str(value))
    if value == 0:
        return Part(part.name, (), part.name)
    sign = "+" if value > 0 else "-"
    text = {1: "next", -1: "prev"}.get(value, f"{part.name}_{'plus' if value > 0 else 'minus'}_{abs(value)}")
    return Part(text, (), f"{part.name}{sign}{abs(value)}")


def _simplify(node):
    """``x^1`` → x, ``x^0`` → 1, ``1 \\cdot x`` → x: ``r_t`` is term 0 of the pattern ``\\gamma^k r_{t+k}``."""
    if isinstance(node, Pow) and isinstance(node.exponent, Num):
        if node.exponent.value == 1:
            return node.base
        if node.exponent.value == 0:
            return Num(1.0)
    if isinstance(node, BinOp) and node.op == "*":
        if isinstance(node.left, Num) and node.left.value == 1.0:
            return node.right
        if isinstance(node.right, Num) and node.right.value == 1.0:
            return node.left
    return node


def _same(a, b) -> bool:
    """Structural equality, ignoring where each piece was written."""
    return _strip(a) == _strip(b)


def _strip(node):
    if isinstance(node, tuple):
        return tuple(_strip(n) for n in node)
    if isinstance(node, (*_NODE_TYPES, _RawSym)):
        updates = {f.name: _strip(getattr(node, f.name)) for f in fields(node) if f.name != "src"}
        if isinstance(node, _RawSym):
            updates["plain"] = True
        return replace(node, **updates, **({"src": ""} if "src" in {f.name for f in fields(node)} else {}))
    return node


def _last_index(template, last, k0: int) -> Node:
    """The ellipsis ends at ``last``: the number of the last term, as a (symbolic) count from the first."""
    found: list[tuple[_Slot, object]] = []
    _pair_slots(template, last, found)
    if not found:
        raise _NoPattern("the last term does not differ from the pattern")
    candidates = set()
    for slot, value in found:
        if isinstance(value, int):
            steps = value - slot.first
            if steps % slot.step:
                raise _NoPattern("the last term is not on the pattern's steps")
            candidates.add(("", steps // slot.step))
        else:
            name, offset = value
            if slot.step != 1:
                raise _NoPattern("a symbolic last term with a step other than 1")
            candidates.add((name, offset - slot.first))
    if len(candidates) != 1:
        raise _NoPattern("the last term's subscripts disagree")
    name, offset = candidates.pop()
    count = Num(float(offset + k0)) if not name else BinOp("+", _RawSym(name, name), Num(float(offset + k0)))
    return count


def _pair_slots(template, last, found: list) -> None:
    if isinstance(template, _Slot):
        if isinstance(last, Num) and last.value.is_integer():
            found.append((template, int(last.value)))
        elif isinstance(last, Part):
            found.append((template, _symbolic_subscript(last.written, template)))
        elif isinstance(last, _RawSym) and not last.parts and template.name is None:
            found.append((template, (last.base, 0)))
        elif isinstance(last, BinOp) and isinstance(last.left, _RawSym) and isinstance(last.right, Num):
            sign = 1 if last.op == "+" else -1
            found.append((template, (last.left.base, sign * int(last.right.value))))
        else:
            raise _NoPattern("cannot read the last term's index")
        return
    if isinstance(template, tuple):
        if not isinstance(last, tuple) or len(last) != len(template):
            raise _NoPattern("the last term differs in form")
        for t, v in zip(template, last, strict=False):
            _pair_slots(t, v, found)
        return
    if isinstance(template, _RawSym):
        if not isinstance(last, _RawSym) or len(last.parts) != len(template.parts):
            raise _NoPattern("the last term differs in form")
        for t, v in zip(template.parts, last.parts, strict=False):
            _pair_slots(t, v, found)
        if template.sample is not None:
            _pair_slots(template.sample, last.sample, found)
        return
    if isinstance(template, Part) or not isinstance(template, _NODE_TYPES):
        return
    if isinstance(template, Pow) and not isinstance(last, Pow):
        last = Pow(last, Num(1.0))
    if type(last) is not type(template):
        raise _NoPattern("the last term differs in form")
    for f in fields(template):
        if f.name != "src":
            _pair_slots(getattr(template, f.name), getattr(last, f.name), found)


def _symbolic_subscript(written: str, slot: _Slot):
    """The last term's subscript: a number, a name (``N``) or a name and a number (``t+N`` is not read)."""
    if written.isdigit():
        return int(written)
    match = re.fullmatch(r"([A-Za-z]+)(?:([+-])(\d+))?", written)
    if match is None or slot.name is not None and match[1] != slot.name:
        raise _NoPattern(f"cannot read the last subscript {written}")
    offset = int(match[3] or 0) * (-1 if match[2] == "-" else 1)
    if slot.name is not None:
        raise _NoPattern("an ellipsis ending at a shifted subscript (t+N)")
    return match[1], offset


def _symbolic(template, var: str):
    """The template with each slot written in terms of the index variable: ``x_{k}``, ``\\gamma^{k}``."""
    if isinstance(template, _Slot):
        return _affine_node(template, var)
    if isinstance(template, tuple):
        return tuple(_symbolic(t, var) for t in template)
    if isinstance(template, _RawSym):
        parts = tuple(_index_part(p, var) for p in template.parts)
        sample = None if template.sample is None else _index_part(template.sample, var)
        return replace(template, parts=parts, sample=sample, plain=False)
    if isinstance(template, Part) or not isinstance(template, _NODE_TYPES):
        return template
    updates = {f.name: _symbolic(getattr(template, f.name), var) for f in fields(template)
               if isinstance(getattr(template, f.name), (_Slot, *_NODE_TYPES, _RawSym, tuple))}
    return replace(template, **updates)


def _affine_node(slot: _Slot, var: str) -> Node:
    value: Node = IndexValue(var, "k")
    if slot.step != 1:
        value = BinOp("*", Num(float(slot.step)), value)
    if slot.first:
        value = BinOp("+", value, Num(float(slot.first)))
    return value


def _index_part(part, var: str) -> Part:
    if not isinstance(part, _Slot):
        return part
    shift = (part.name,) if part.name else ()
    return Part(f"k{part.first}", (IndexExpr(var, "k", part.step, part.first, shift),))


def _shift_var(body, var: str, by: int):
    """Renumber the variable so that it runs from 0 at the first written term."""
    if by == 0:
        return body

    def change(node):
        if isinstance(node, IndexValue) and node.var == var:
            return BinOp("+", node, Num(float(by)))
        if isinstance(node, _RawSym):
            parts = tuple(_shift_part(p, var, by) for p in node.parts)
            sample = None if node.sample is None else _shift_part(node.sample, var, by)
            return replace(node, parts=parts, sample=sample)
        return node

    return transform(body, change)


def _shift_part(part: Part, var: str, by: int) -> Part:
    exprs = tuple(replace(ix, offset=ix.offset + ix.scale * by) if ix.var == var else ix for ix in part.index)
    return replace(part, index=exprs)


def _first_subscript(template, k0: int) -> int | None:
    """The first written subscript number of a digit slot (``x_1`` → 1): tells 0- from 1-based counting."""
    slots: list[_Slot] = []

    def collect(node):
        if isinstance(node, _Slot):
            if node.name is None:
                slots.append(node)
        elif isinstance(node, tuple):
            for n in node:
                collect(n)
        elif isinstance(node, _RawSym):
            for p in (*node.parts, node.sample):
                if isinstance(p, _Slot):
                    collect(p)
        elif isinstance(node, _NODE_TYPES):
            for f in fields(node):
                collect(getattr(node, f.name))

    collect(template)
    firsts = {slot.first - slot.step * k0 for slot in slots if isinstance(slot, _Slot)}
    return firsts.pop() if len(firsts) == 1 and firsts <= {0, 1} else None


# Equations -----------------------------------------------------------------------------------------------------

def parse_equation(text: str) -> Equation:
    """One ``LHS = RHS (= …)`` equation, with its indices decided."""
    condition_text = None
    if "\x00" in text:  # equations() appends an inline condition after a NUL
        text, condition_text = text.split("\x00", 1)
    sides = split_sides(text)
    if len(sides) < 2:
        relation = next((STOPPERS[t.text] for t in tokenize(text) if t.text in STOPPERS and t.text != "&"), None)
        raise LatexError(f"{relation or 'not an equation (no =)'}: `{_short(text)}`")
    if any(not side.strip() for side in sides):
        raise LatexError(f"an empty side in `{_short(text)}`")
    state = _State()
    raw = []
    for side in sides:
        raw.append(_Parser(side, state=state).whole())
        if len(raw) == 1:
            state.lhs_letters = _candidates_in_subscripts(raw[0])
    condition = _Parser(condition_text, state=state).whole_condition() if condition_text else None
    free = _free_indices(raw, condition)
    final = tuple(_finalize(side, free) for side in raw)
    final_condition = _finalize(condition, free) if condition is not None else None
    equation = Equation(final, text.strip(), tuple(sorted(free)), final_condition, _base(final))
    _check_indices(equation)
    _check_not_update(equation)
    return equation


def _check_not_update(equation: Equation) -> None:
    """``\\theta = \\theta - \\alpha \\nabla J``: the left side is the old and the new value at once, an update
    written with ``=``, not an equation that holds."""
    lhs = equation.lhs
    if not isinstance(lhs, Sym) or lhs.indices or lhs.sample is not None:
        return
    for side in equation.sides[1:]:
        if side == lhs or not isinstance(side, Sym) and _uses_value(side, lhs.name):
            raise LatexError(f"an update, not an equation: {lhs.src} is on both sides of `{_short(equation.src)}` "
                             f"(write {lhs.src}_{{t+1}} = … {lhs.src}_t …)")


def _uses_value(node, name: str) -> bool:
    """Is ``name`` used as a value in ``node`` (not as a derivative's variable or a function's argument)?"""
    if isinstance(node, Sym):
        return node.name == name and not node.indices and node.sample is None
    if isinstance(node, Deriv):
        return _uses_value(node.num, name) and not (isinstance(node.num, Apply) and node.wrt.name == name)
    if isinstance(node, Apply):
        return False
    return any(_uses_value(child, name) for child in children(node))


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= 60 else flat[:59] + "…"


def parse_formula(latex: str) -> Formula:
    """Every equation of a display formula (aligned lines, ``\\quad``-separated, ``\\text{where}`` clauses)."""
    parts = equations(latex)
    if not parts:
        raise LatexError("not an equation: nothing but text or annotations")
    parsed = tuple(parse_equation(part) for part in parts)
    if any(_plain_sigma(side) for equation in parsed for side in equation.sides):
        parsed = tuple(replace(eq, sides=tuple(transform(side, _no_sigmoid) for side in eq.sides)) for eq in parsed)
    return Formula(parsed, latex)


def _plain_sigma(node) -> bool:
    """Does the formula use ``\\sigma`` as a value (``\\frac{d\\sigma}{dx} = \\sigma(1 - \\sigma)``)?"""
    targets = {id(n.target) for n in walk(node) if isinstance(n, Apply)}
    return any(isinstance(n, Sym) and n.name == "sigma" and id(n) not in targets for n in walk(node))


def _no_sigmoid(node):
    return replace(node, builtin=None) if isinstance(node, Apply) and node.builtin == "sigmoid" else node


def _free_indices(sides: list, condition) -> frozenset[str]:
    """Index candidates that appear on the left side and on a right side: einsum's free indices."""
    per_side = [_candidates(side) for side in sides]
    lhs = _candidates_in_subscripts(sides[0])
    others = set().union(*per_side[1:]) if len(per_side) > 1 else set()
    return frozenset(lhs & others)


def _candidates(node) -> set[str]:
    """Index candidates used in a side: in subscripts, or as a number (the ``pos`` of ``\\sin(pos/…)``)."""
    found: set[str] = set()

    def visit(n):
        if isinstance(n, _RawSym):
            if n.plain and not n.parts and n.sample is None and not n.suffix:
                found.add(n.base)
            for part in (*n.parts, n.sample):
                if part is not None:
                    found.update(ix.var for ix in part.index if not ix.bound)
        if isinstance(n, Subscripted):
            found.update(ix.var for ix in n.indices if not ix.bound)
        return n

    transform(node, visit)
    return found


def _candidates_in_subscripts(node) -> set[str]:
    found: set[str] = set()

    def visit(n):
        if isinstance(n, _RawSym):
            for part in (*n.parts, n.sample):
                if part is not None:
                    found.update(ix.var for ix in part.index if not ix.bound)
        if isinstance(n, Subscripted):
            found.update(ix.var for ix in n.indices if not ix.bound)
        return n

    transform(node, visit)
    return found


def _finalize(node, free: frozenset[str]):
    def change(n):
        if isinstance(n, _Ellipsis):
            raise LatexError(f"an ellipsis {n.src} outside a written-out sum or list")
        if isinstance(n, _RawSym):
            return _final_sym(n, free)
        if isinstance(n, Subscripted):
            if any(not ix.bound and ix.var not in free for ix in n.indices):
                raise LatexError(f"a subscript on an expression whose index is not free on both sides: {n.src}")
        if isinstance(n, Apply) and isinstance(n.target, IndexValue):
            raise LatexError(f"an index variable applied as a function: {n.src}")
        return n

    return transform(node, change)


def _final_sym(raw: _RawSym, free: frozenset[str]) -> Sym | IndexValue:
    if raw.plain and not raw.parts and raw.sample is None and not raw.suffix and raw.base in free:
        return IndexValue(raw.base, raw.src)

    def active(part: Part | None) -> bool:
        return part is not None and bool(part.index) and all(ix.bound or ix.var in free for ix in part.index)

    names = [part.text for part in raw.parts if not active(part)]
    indices = tuple(ix for part in raw.parts if active(part) for ix in part.index)
    sample = raw.sample.index[0] if active(raw.sample) and len(raw.sample.index) == 1 else None
    if raw.sample is not None and sample is None:
        names.append(raw.sample.text)
    name = python_name("_".join((raw.base, *names, *raw.suffix)))
    every = [part.text for part in raw.parts] + ([raw.sample.text] if raw.sample is not None else [])
    all_free = (indices or sample) and not any(ix.bound for ix in (*indices, *([sample] if sample else [])))
    fallback = python_name("_".join((raw.base, *every, *raw.suffix))) if all_free else None
    joined = python_name("_".join((raw.base, *every, *raw.suffix))) if indices or sample else None
    if not name.isidentifier():
        raise LatexError(f"{raw.src} does not make a python name ({name})")
    letters = raw.letters if raw.plain and not raw.parts and not raw.suffix else ()
    return Sym(name, raw.src, indices, sample, fallback, joined, letters)


def _base(sides) -> int:
    """1 when the formula counts from 1 (a sum from 1, ``x_1`` first in a written-out sum), else 0."""
    starts = {node.start for side in sides for node in walk(side) if isinstance(node, Reduce)} - {None}
    if 0 in starts:
        return 0
    return 1 if 1 in starts else 0


def _check_indices(equation: Equation) -> None:
    """Static index rules: a sum without bounds must index something in its summand; bounds may not use another
    index (a triangular sum is not vectorised)."""
    for side in (*equation.sides, *([equation.condition] if equation.condition else [])):
        for node in walk(side):
            if isinstance(node, Reduce):
                for bound in (node.lower, node.upper):
                    if bound is not None and _index_uses(bound):
                        raise LatexError(f"a bound of \\{node.kind} that depends on another index: {node.src}")
                if (node.upper is None or node.lower is None) and not _indexes(node.body, node.var):
                    what = "\\" + node.kind if node.kind in ("sum", "prod", "max", "min") else node.src
                    raise LatexError(f"{what}_{node.letter} without bounds, but {node.letter} indexes nothing in "
                                     f"{node.src}")


def _index_uses(node) -> bool:
    return any(isinstance(n, IndexValue) or isinstance(n, Sym) and (n.indices or n.sample) for n in walk(node))


def _indexes(node, var: str) -> bool:
    """Does ``var`` label a dimension somewhere in ``node`` (``x_j``, ``P(x)``, ``x^{(j)}``)?"""
    for n in walk(node):
        if isinstance(n, Sym) and any(ix.var == var for ix in (*n.indices, *([n.sample] if n.sample else []))):
            return True
        if isinstance(n, Subscripted) and any(ix.var == var for ix in n.indices):
            return True
        if isinstance(n, Apply) and any(
                isinstance(a, IndexValue) and a.var == var
                or isinstance(a, Compare) and any(isinstance(t, IndexValue) and t.var == var for t in a.terms)
                for a in n.args):
            return True
        if isinstance(n, Deriv) and (n.wrt.sample and n.wrt.sample.var == var or any(
                ix.var == var for ix in n.wrt.indices)):
            return True
    return False


# Splitting a display formula into equations -------------------------------------------------------------------

ALIGNED = re.compile(r"\\begin\{(aligned|align\*?|split|gathered|gather\*?|eqnarray\*?|alignat\*?|equation\*?)\}"
                     r"(?:\{\d+\})?(.*)\\end\{\1\}", re.S)
SEPARATORS = {"\\quad", "\\qquad"}
LABEL_PREFIX = re.compile(  # \text{GroupNorm}: …, \text{模型:} …
    r"^\\(?:text|mathrm|textbf)\{[^{}]*\}\s*[:：]\s*|^\\(?:text|mathrm|textbf)\{[^{}]*[:：]\s*\}\s*")


def equations(latex: str) -> list[str]:
    """The ``LHS = RHS`` equations of a display formula: aligned lines (a third column holding a condition makes
    the lines one piecewise equation), ``\\quad``-separated parts, ``\\text{where}`` clauses. A part that is
    only text or an annotation (``x \\in \\mathbb{R}^d``) is left out; an inline condition (``…, \\quad x > 0``)
    restricts the equation before it."""
    text = latex.strip()
    aligned = ALIGNED.fullmatch(text)
    lines = _split_top(aligned.group(2) if aligned else text, "\\\\")
    result: list[list] = []  # [lhs, [(rhs, condition)], inline condition]
    for line in lines:
        cells = _split_top(line, "&")
        condition = None
        if len(cells) > 2:
            extra = "".join(cells[2:]).strip()
            condition = extra if _is_condition(extra) else None  # otherwise a comment: \text{(方差)}
            line = cells[0] + cells[1]
        else:
            line = "".join(cells)
        for part in _split_parts(line):
            _add_part(result, part, condition)
    return [_equation_text(entry) for entry in result]


def _add_part(result: list, part: str, condition: str | None) -> None:
    part = LABEL_PREFIX.sub("", part.strip()).rstrip(",.;").strip()  # \text{GroupNorm}: x = …
    if not part:
        return
    if part.startswith("=") and result:  # &= …: one more right side (or case) of the line above
        result[-1][1].append((part[1:].strip(), condition))
        return
    if _is_condition(part) and result:
        result[-1][2] = part  # …, \quad x > 0
        return
    if _is_annotation(part):
        return
    at = _first_equals(part)
    if at is None:
        result.append([None, [(part, condition)], None])  # parse_equation will say it is not an equation
    else:
        lhs, rhs = part[:at[0]].strip(), part[at[1]:].strip()
        result.append([lhs, [(rhs, condition)], None])


def _first_equals(part: str) -> tuple[int, int] | None:
    """Where the first top-level ``=`` (or ``:=``) starts and ends."""
    depth = 0
    tokens = tokenize(part)
    for n, token in enumerate(tokens):
        depth += _depth_change(token.text)
        if depth == 0 and _is_equals(tokens, n):
            end = tokens[n + 1].end if token.text == ":" else token.end
            return token.start, end
    return None


def _equation_text(entry: list) -> str:
    lhs, pieces, inline = entry
    if lhs is None:
        text = pieces[0][0]
    elif any(condition is not None for _, condition in pieces):
        otherwise = "\\text{otherwise}"
        rows = " \\\\ ".join(f"{value} & {condition or otherwise}" for value, condition in pieces)
        text = f"{lhs} = \\begin{{cases}} {rows} \\end{{cases}}"
    else:
        text = " = ".join([lhs, *(value for value, _ in pieces)])
    return text if inline is None else f"{text}\x00{inline}"


def _split_parts(line: str) -> list[str]:
    """Split a line at ``,\\quad``/``\\qquad``, top-level commas before another equation, and where-words."""
    tokens = tokenize(line)
    parts, start, depth = [], 0, 0
    for n, token in enumerate(tokens):
        depth += _depth_change(token.text)
        if depth != 0:
            continue
        word = _text_word(token.text)
        is_where = token.text != word and word is not None and word.strip() in WHERE_WORDS
        if token.text in SEPARATORS or is_where or token.text == "," and _equation_follows(tokens, n):
            parts.append(line[start:token.start])
            start = token.end
    parts.append(line[start:])
    return [p for p in parts if p.strip()]


def _equation_follows(tokens: list[Token], at: int) -> bool:
    """Does an equation, a condition or an annotation follow this top-level comma (before the next one)?"""
    depth = 0
    first = _text_word(tokens[at + 1].text).strip() if at + 1 < len(tokens) else ""
    if first in FOR_WORDS | IF_WORDS | OTHERWISE_WORDS:
        return True
    for n in range(at + 1, len(tokens)):
        text = tokens[n].text
        depth += _depth_change(text)
        if depth == 0 and text == ",":
            return False
        if depth == 0 and (_is_equals(tokens, n) or text in SEPARATORS or text in ("\\sim", "\\in")):
            return True
    return False


def _depth_change(text: str) -> int:
    if text in ("{", "(", "[", "\\{", "\\begin", "\\langle", "\\lVert"):
        return 1
    if text in ("}", ")", "]", "\\}", "\\end", "\\rangle", "\\rVert"):
        return -1
    return 0


def _is_equals(tokens: list[Token], n: int) -> bool:
    text = tokens[n].text
    if text in EQUALS:
        return not (text == "=" and n > 0 and tokens[n - 1].text == ":")
    return text == ":" and n + 1 < len(tokens) and tokens[n + 1].text == "="


def _split_top(text: str, separator: str) -> list[str]:
    """Split at a separator outside braces and nested environments."""
    pieces, start, depth = [], 0, 0
    for token in tokenize(text):
        depth += {"{": 1, "}": -1, "\\begin": 1, "\\end": -1}.get(token.text, 0)
        if token.text == separator and depth == 0:
            pieces.append(text[start:token.start])
            start = token.end
    pieces.append(text[start:])
    return pieces


def split_sides(equation: str) -> list[str]:
    """Split at top-level ``=`` (and ``:=``, ``\\equiv``, ``\\triangleq``)."""
    tokens = tokenize(equation)
    sides, depth, start, skip = [], 0, 0, False
    for n, token in enumerate(tokens):
        if skip:
            skip = False
            start = token.end
            continue
        depth += _depth_change(token.text)
        if depth == 0 and _is_equals(tokens, n):
            sides.append(equation[start:token.start])
            if token.text == ":":
                skip = True
            start = token.end
    sides.append(equation[start:])
    return [side.strip() for side in sides]


def _is_condition(text: str) -> bool:
    """``x > 0``, ``\\text{if } x \\le 0``, ``\\text{otherwise}``: a case's condition, not an equation."""
    tokens = tokenize(text)
    if not tokens:
        return False
    first = _text_word(tokens[0].text)
    if first is not None and first.strip() in IF_WORDS | OTHERWISE_WORDS:
        return True
    depth = 0
    for token in tokens:
        depth += _depth_change(token.text)
        if depth == 0 and token.text in RELATIONS and token.text != "=":
            return True
    return False


def _is_annotation(text: str) -> bool:
    """A part that states no value: only text (``\\text{(MSE)}``), membership (``W \\in \\mathbb{R}^{n}``), a
    distribution (``\\epsilon \\sim \\mathcal{N}(0, I)``) or a range (``\\text{for } j = 1, \\dots, K``)."""
    tokens = [t for t in reading_tokens(text) if t.text not in ("(", ")")]
    if tokens and all(TEXT_COMMAND.match(t.text) for t in tokens):
        return True
    first = _text_word(tokens[0].text).strip() if tokens else ""
    if first in FOR_WORDS or tokens and tokens[0].text == "\\forall":
        return True
    depth, marks = 0, False
    for token in tokens:
        depth += _depth_change(token.text)
        marks = marks or depth == 0 and token.text in ("\\in", "\\forall", "\\sim")  # not inside \mathbb{E}_{…}
    return marks and not any(t.text in EQUALS for t in tokens)


# The names a check binds ---------------------------------------------------------------------------------------

def symbols(formula: Formula) -> list[str]:
    """The python names a check block must bind, in reading order: no constants, no built-in functions, no index
    variables, no name that another equation of the formula defines (``\\text{where}``, aligned lines), no built-in
    function on the left (the block may bind ``ReLU`` for ``\\mathrm{ReLU}(x)``; torch's ReLU is the reference
    otherwise), and no argument of a left side's function unless it is used elsewhere (``\\Pr(y = 1 \\mid x)``)."""
    defined = definitions(formula)
    found: list[str] = []
    for equation in formula.equations:
        lhs = equation.lhs
        # a built-in function on the left (\mathrm{ReLU}(x)) may name the block's reference, or be torch's own
        # function: either way nothing the check must bind
        skip = {id(a) for a in lhs.args} if isinstance(lhs, Apply) else set()
        for side in (*equation.sides, *([equation.condition] if equation.condition is not None else [])):
            for name in _names(side, skip):
                if name not in defined:
                    _add(found, name)
    return found


def _names(node, skip: set[int]) -> list[str]:
    """The names bound by the block that a tree reads (a built-in ``\\sigma(…)`` reads none)."""
    if id(node) in skip:
        return []
    if isinstance(node, Sym):
        return [node.name]
    if isinstance(node, Apply) and node.builtin is not None:
        return [name for arg in node.args for name in _names(arg, skip)]
    return [name for child in children(node) for name in _names(child, skip)]


def _add(found: list[str], name: str) -> None:
    if name not in found:
        found.append(name)


def definitions(formula: Formula) -> set[str]:
    """Names that one equation's left side defines and another equation uses: bound by the formula itself
    (``y = b + c^\\top a \\quad \\text{where} \\quad a = \\sigma(Wx + b)``, ``\\mathrm{RMS}(a) = …``)."""
    lhs_names = {}
    for n, equation in enumerate(formula.equations):
        name = defined_name(equation.lhs)
        if name is not None:
            lhs_names.setdefault(name, n)
    used: set[str] = set()
    for n, equation in enumerate(formula.equations):
        for side in equation.sides[1:]:
            for node in walk(side):
                name = node.target.name if isinstance(node, Apply) else node.name if isinstance(node, Sym) else None
                if name is not None and lhs_names.get(name, n) != n:
                    used.add(name)
    return used


def defined_name(lhs: Node) -> str | None:
    """The name a left side defines: a symbol, or a function written with its arguments (``\\mathrm{RMS}(a)``)."""
    if isinstance(lhs, Sym):
        return lhs.name
    if isinstance(lhs, Apply) and not lhs.target.indices and lhs.target.sample is None and lhs.builtin is None:
        return lhs.target.name
    return None


_NODE_TYPES = (Num, Const, Sym, IndexValue, Call, Apply, Prime, BinOp, Neg, Pow, Transpose, Reduce, Norm, Abs,
               Concat, Matrix, Inner, Mean, Deriv, Compare, Logical, Piecewise, Indicator, Subscripted)
