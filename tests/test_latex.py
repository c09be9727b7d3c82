"""The LaTeX reader: tokens, the tree of a formula, its equations, the names a check binds, and errors that name
the construct. Nothing here evaluates."""

from __future__ import annotations

import subprocess
import sys

import pytest

from notevault.latex import (
    Apply,
    BinOp,
    Call,
    Concat,
    Const,
    Deriv,
    IndexValue,
    LatexError,
    Num,
    Piecewise,
    Pow,
    Prime,
    Reduce,
    Sym,
    Transpose,
    equations,
    parse_equation,
    parse_formula,
    symbols,
    tokenize,
)


def names(latex: str) -> list[str]:
    return symbols(parse_formula(latex))


def rhs(latex: str):
    return parse_equation(latex).sides[1]


def error(latex: str) -> str:
    with pytest.raises(LatexError) as caught:
        parse_formula(latex)
    return str(caught.value)


def test_reading_never_imports_torch():
    code = "import sys, notevault.latex, notevault.formula; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_tokens():
    texts = [t.text for t in tokenize(r"QK^T + TP + \text{Effective rate}(x) + Attention + \frac12 + Wx")]
    assert texts == ["Q", "K", "^", "T", "+", "TP", "+", r"\text{Effective rate}", "(", "x", ")", "+",
                     "Attention", "+", r"\frac", "12", "+", "W", "x"]


@pytest.mark.parametrize(("latex", "expected"), [
    (r"\hat{x} = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}", ["x_hat", "x", "mu", "sigma", "epsilon"]),
    (r"\theta_{t+1} = \theta_t - \alpha \cdot \frac{\hat{m}_t}{\sqrt{\hat{v}_t} + \varepsilon}",
     ["theta_next", "theta_t", "alpha", "m_hat_t", "v_hat_t", "varepsilon"]),
    (r"m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t", ["m_t", "beta_1", "m_prev", "g_t"]),
    (r"r = r_{t+2} + \mu_B^{\text{global}} + G'_t", ["r", "r_t_plus_2", "mu_B_global", "G_prime_t"]),
    (r"\theta^* = V^\theta(s_{t+1})", ["theta_star", "V_theta", "s_next"]),
    (r"\text{Effective learning rate} = \text{TD-Error}", ["Effective_learning_rate", "TD_Error"]),
    (r"W = \lambda + \lambda_1", ["W", "lambda_", "lambda_1"]),
    (r"\mathcal{L} = \ell + p_\theta + \eta_{\min} + L_\delta + x_{\text{adv}}",
     ["L", "ell", "p_theta", "eta_min", "L_delta", "x_adv"]),
    (r"O = W^O h + W_i^Q + \mathbf{x}", ["O", "W_O", "h", "W_i_Q", "x"]),
    (r"\text{Accuracy} = \frac{TP}{TP + FP}", ["Accuracy", "TP", "FP"]),
])
def test_naming_rule(latex, expected):
    assert names(latex) == expected


def test_constants_and_builtins_are_never_names_to_bind():
    assert names(r"y = e^{x} + \pi + \mathrm{erf}(x) + \exp(x) + \sigma(x) + \mathrm{ReLU}(x)") == ["y", "x"]
    assert names(r"\pi(a \mid s) = \pi_\theta(a \mid s)") == ["pi", "pi_theta", "a", "s"]
    assert names(r"\mathrm{ReLU}(x) = \max(0, x)") == ["x"]  # the block may bind ReLU; torch's ReLU otherwise
    assert names(r"\Pr(y = 1 \mid x) = \sigma(w^\top x)") == ["Pr", "w", "x"]


def test_indices_are_bound_by_sums_or_free_on_both_sides():
    assert names(r"\widetilde{v}_i = \sum_{j=1}^{N} A_{ij} v_j") == ["v_tilde", "N", "A", "v"]
    assert names(r"\mathrm{softmax}(z)_i = \frac{e^{z_i}}{\sum_j e^{z_j}}") == ["z"]
    # d_k, W_q: a letter on one side only is part of the name
    assert names(r"A = \frac{QK^T}{\sqrt{d_k}} + W_q") == ["A", "Q", "K", "d_k", "W_q"]
    # t is a time step: m_t, never an index
    assert names(r"m_t = m_{t-1}") == ["m_t", "m_prev"]
    v = parse_equation(r"\widetilde{v}_i = \sum_{j=1}^{N} A_{ij} v_j")
    assert v.free == ("i",)
    assert isinstance(v.lhs, Sym) and [ix.var for ix in v.lhs.indices] == ["i"]
    total = v.sides[1]
    assert isinstance(total, Reduce) and total.var.startswith("j#") and total.start == 1
    assert [ix.var for ix in total.body.left.indices] == ["i", total.var]


def test_parenthesised_subscripts_and_samples_are_indices():
    equation = parse_equation(r"PE_{(pos,2i+1)} = \cos(pos / 10000^{2i/d_{\text{model}}})")
    assert equation.free == ("i", "pos")
    (pos, odd) = equation.lhs.indices
    assert (pos.var, odd.var, odd.scale, odd.offset) == ("pos", "i", 2, 1)
    assert names(r"\hat{x}^{(i)} = \frac{x^{(i)} - \mu_B}{\sigma_B}") == ["x_hat", "x", "mu_B", "sigma_B"]
    assert names(r"z^{[l]} = W^{[l]} a^{[l-1]} + b^{[l]}") == ["z", "W", "a", "b"]


def test_sums_bounds_and_their_counting():
    assert parse_equation(r"s = \sum_{i=0}^{n-1} x_i").base == 0
    assert parse_equation(r"s = \sum_{i=1}^{n} x_i").base == 1
    upper_only = parse_equation(r"s = \sum_{i}^{n-1} x_i").sides[1]
    assert isinstance(upper_only.lower, Num) and upper_only.lower.value == 0.0
    implicit = parse_equation(r"\bar{x} = \frac{1}{n} \sum x_i").sides[1].right
    assert isinstance(implicit, Reduce) and implicit.letter == "i" and implicit.lower is None
    over_set = parse_equation(r"H = -\sum_{x \in \mathcal{X}} p(x) \log p(x)").sides[1].arg
    assert isinstance(over_set, Reduce) and over_set.letter == "x"
    assert isinstance(over_set.body.left.args[0], IndexValue)


def test_written_out_sums_follow_the_pattern_of_their_terms():
    total = rhs(r"s = x_1 + x_2 + \cdots + x_n")
    assert isinstance(total, Reduce) and total.kind == "sum" and total.start == 1
    assert isinstance(total.body, Sym) and total.body.name == "x"
    returns = rhs(r"A_t = r_t + \gamma r_{t+1} + \gamma^2 r_{t+2} + \cdots")
    assert returns.upper is None and returns.body.right.indices[0].shift == ("t",)
    assert isinstance(rhs(r"g = [g_1, g_2, \ldots, g_N]"), Reduce)
    assert "follows no pattern" in error(r"s = x_1 + y_2 + \cdots + x_n")


def test_misreads_that_are_now_correct_readings():
    ln = rhs(r"y = \mathrm{LN}(x)")
    assert isinstance(ln, Apply) and ln.target.name == "LN"  # a LayerNorm the block binds, not \ln
    half = rhs(r"y = \frac12 x")
    assert isinstance(half.left, BinOp) and (half.left.left.value, half.left.right.value) == (1.0, 2.0)
    log = rhs(r"y = \log 2\pi\sigma^2")
    assert isinstance(log, Call) and log.func == "log" and isinstance(log.args[0], BinOp)  # the log of the product
    dot = rhs(r"y = w^\top x")
    assert isinstance(dot.left, Transpose)
    assert isinstance(rhs(r"y = [h_{t-1}, x_t]"), Concat)
    prime = rhs(r"g = \text{tanh'}(x)")
    assert isinstance(prime, Prime) and prime.call.func == "tanh"
    sigmoid = rhs(r"y = \sigma(2x)")
    assert isinstance(sigmoid, Apply) and sigmoid.builtin == "sigmoid"
    product = parse_formula(r"\frac{d\sigma}{dx} = \sigma(1 - \sigma)").equations[0].sides[1]
    assert isinstance(product, Apply) and product.builtin is None  # \sigma is a value in this formula
    layer = rhs(r"z = a^{[l]}")
    assert isinstance(layer, Sym) and layer.name == "a_l"  # a label, never the power a^l


def test_derivatives_are_read_as_derivatives_never_as_fractions():
    partial = rhs(r"g = \frac{\partial \ell}{\partial \gamma}")
    assert isinstance(partial, Deriv) and (partial.num.name, partial.wrt.name) == ("ell", "gamma")
    d = rhs(r"g = \frac{dL}{dz}")
    assert isinstance(d, Deriv) and (d.num.name, d.wrt.name) == ("L", "z")
    operator = rhs(r"g = \frac{d}{dx} \tanh(x)")
    assert isinstance(operator, Deriv) and isinstance(operator.num, Call)
    nabla = rhs(r"g = \nabla_\theta J(\theta)")
    assert isinstance(nabla, Deriv) and nabla.wrt.name == "theta"
    transposed = rhs(r"s = \nabla_x L^T \delta")
    assert isinstance(transposed, BinOp) and isinstance(transposed.left, Transpose)
    assert not isinstance(rhs(r"y = \frac{d_k}{2}"), Deriv)
    assert "second derivative" in error(r"H = \frac{\partial^2 L}{\partial \theta^2}")


def test_equations_of_a_display_formula():
    aligned = r"\begin{aligned} m_t &= \beta_1 m_{t-1} \\ v_t &= \beta_2 v_{t-1} &\text{(方差)} \end{aligned}"
    assert equations(aligned) == [r"m_t = \beta_1 m_{t-1}", r"v_t = \beta_2 v_{t-1}"]
    assert equations(r"\hat{m}_t = a, \quad \hat{v}_t = b") == [r"\hat{m}_t = a", r"\hat{v}_t = b"]
    assert equations(r"Q = XW^Q, K = XW^K") == [r"Q = XW^Q", r"K = XW^K"]
    assert equations(r"y = b + c^T a \quad\quad \text{其中} \quad a = \sigma(Wx)") == [r"y = b + c^T a",
                                                                                       r"a = \sigma(Wx)"]
    assert equations(r"L = \frac12 (y - \hat{y})^2 \quad (\text{MSE}) \tag{3}") == [r"L = \frac12 (y - \hat{y})^2"]
    assert equations(r"W \in \mathbb{R}^{d \times k}, \quad y = Wx") == ["y = Wx"]
    assert equations(r"y := x \equiv z") == [r"y = x \equiv z"]
    assert [side.name for side in parse_formula(r"y := x \equiv z").equations[0].sides] == ["y", "x", "z"]


def test_conditions_are_kept():
    piecewise = r"\begin{aligned} f(x) &= x & \text{if } x > 0 \\ &= 0 & \text{otherwise} \end{aligned}"
    (text,) = equations(piecewise)
    equation = parse_equation(text)
    assert isinstance(equation.sides[1], Piecewise)
    (value, condition), (zero, otherwise) = equation.sides[1].cases
    assert condition.ops == (">",) and otherwise is None
    inline = parse_formula(r"\frac{d}{dx}\mathrm{ReLU}(x) = 1, \quad x > 0").equations[0]
    assert inline.condition is not None and inline.condition.ops == (">",)
    cases = rhs(r"y = \begin{cases} x & |x| \le \delta \\ \delta & \text{otherwise} \end{cases}")
    assert isinstance(cases, Piecewise) and cases.cases[0][1].ops == ("<=",)


def test_where_clauses_define_names_the_check_need_not_bind():
    assert names(r"y = b + c^T a \quad \text{where} \quad a = \sigma(W x)") == ["y", "b", "c", "W", "x"]
    rms = r"\bar{a}_i = \frac{a_i}{\mathrm{RMS}(a)} g_i, \quad \mathrm{RMS}(a) = \sqrt{\frac1n \sum_i a_i^2}"
    assert names(rms) == ["a_bar", "a", "g", "n"]
    bn = (r"\begin{aligned} \mu_B &= \frac{1}{m} \sum_{i=1}^{m} x^{(i)} \\ \hat{x}^{(i)} &= x^{(i)} - \mu_B "
          r"\end{aligned}")
    assert names(bn) == ["m", "x", "x_hat"]  # \mu_B is defined by the first line; \hat{x} is the reference


@pytest.mark.parametrize(("latex", "message"), [
    (r"x = \frac{1}{2", r"an unclosed group { in `\frac{1}{2`"),
    (r"y = _i", "a subscript with nothing before it: `_i`"),
    (r"y = x )", "an unbalanced ')': `x )`"),
    (r"y = (a, b)", "a tuple (a, b) is not a value (a vector is written [a, b])"),
    (r"y = \int_0^1 f(x) dx", r"an integral \int: `\int_0^1 f(x) dx`"),
    (r"y = x \approx z", r"an approximation (\approx) is not an equation: `x \approx z`"),
    (r"\theta \leftarrow \theta - \eta g",
     r"an update (\leftarrow), not an equation: `\theta \leftarrow \theta - \eta g`"),
    (r"x^10 = y", "^10 is ^1 followed by 0 in TeX: write ^{10}"),
    (r"y = \foo{x}", r"unknown command \foo: `\foo{x}`"),
    (r"y = \sum_j \exp(z_i)", r"\sum_j without bounds, but j indexes nothing in \sum_j \exp(z_i)"),
    (r"y = \mathbb{R}", r"the set of real numbers \mathbb{R} is not a value: `\mathbb{R}`"),
    (r"y = \sum_{i=1}^{\infty} a_i", r"an infinite \sum: `\sum_{i=1}^{\infty} a_i`"),
    (r"\theta = \theta - \alpha g", r"an update, not an equation: \theta is on both sides of "
     r"`\theta = \theta - \alpha g` (write \theta_{t+1} = … \theta_t …)"),
    (r"\theta^* = \arg\min_\theta L(\theta)", r"\argmin over \theta: an index must be a Latin letter (an "
     "optimisation over a continuous variable is not evaluated)"),
    (r"T(n) = \mathcal{O}(n^2)", r"an asymptotic bound \mathcal{O}(…) is not a value: `\mathcal{O}(n^2)`"),
    (r"\frac{1}{\sqrt{v_t}}", r"not an equation (no =): `\frac{1}{\sqrt{v_t}}`"),
    (r"y = \mathbb{E}_{x \sim p}[f(x)]", r"an expectation over a distribution (\mathbb{E}_{…}): "
     r"`\mathbb{E}_{x \sim p}[f(x)]`"),
])
def test_errors_name_the_construct(latex, message):
    assert error(latex) == message


def test_tree_node_types():
    equation = parse_equation(r"y = e^{x} + \pi")
    pow_e, pi = equation.sides[1].left, equation.sides[1].right
    assert isinstance(pow_e, Pow) and pow_e.base == Const("e", "e") and pi == Const("pi", r"\pi")
