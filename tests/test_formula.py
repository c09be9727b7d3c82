"""Formula checks: formulas as the notes write them, evaluated on real tensors against PyTorch references."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import make_vault, seed
from seed_formulas import NOT_READ, SEED_FORMULAS

from notevault.cli import main
from notevault.formula import check_formula, describe
from notevault.latex import equations
from notevault.note import read_note

D = torch.float64


def seed_formula(prefix: str, line: int, index: int = 0) -> str:
    maths = [m for m in read_note(seed(prefix)).maths if m.line == line]
    return maths[index].latex


def assert_passes(latex, names, **tolerances):
    outcome = check_formula(latex, names, **tolerances)
    assert outcome.error is None, outcome.error
    assert outcome.max_rel_err is not None
    return outcome


def assert_fails(latex, names):
    outcome = check_formula(latex, names)
    assert outcome.error is not None and outcome.error.startswith("formula mismatch"), outcome.error
    assert outcome.max_rel_err > 1e-3  # a real, measured difference, not a rounding error
    return outcome


def error(latex, names) -> str:
    outcome = check_formula(latex, names)
    assert outcome.error is not None and outcome.error.startswith("cannot evaluate the formula: "), outcome.error
    return outcome.error.removeprefix("cannot evaluate the formula: ")


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


# The user's own formulas ---------------------------------------------------------------------------------------

def test_batch_norm_from_seed_000():
    latex = seed_formula("000", 20, 0)
    assert latex == r"\hat{x} = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}"
    x = torch.randn(32, 4) * 3 + 1
    names = dict(x=x, mu=x.mean(0), sigma=x.std(0, unbiased=False), epsilon=1e-5,
                 x_hat=F.batch_norm(x, None, None, training=True, eps=1e-5))
    outcome = assert_passes(latex, names)
    assert outcome.shapes == ("[32, 4]", "[32, 4]")
    assert_fails(latex.replace(r"\sigma^2", r"\sigma"), names)
    affine = seed_formula("000", 20, 1)
    gamma, beta = torch.rand(4) + 0.5, torch.randn(4)
    names = dict(x_hat=names["x_hat"], gamma=gamma, beta=beta,
                 y=F.batch_norm(x, None, None, weight=gamma, bias=beta, training=True, eps=1e-5))
    assert_passes(affine, names)  # \gamma \hat{x}: a vector left of a batch scales it entrywise
    assert_fails(affine.replace("+", "-"), names)


def test_batch_norm_statistics_aligned_from_seed_002():
    latex = seed_formula("002", 513)
    assert latex.startswith(r"\begin{aligned}") and len(equations(latex)) == 4
    x = torch.randn(8, 5).double()
    m, epsilon, gamma, beta = 8, 1e-5, torch.rand(5) + 0.5, torch.randn(5)
    names = dict(x=x, m=m, mu_B=x.mean(0), sigma_B=x.var(0, unbiased=False).sqrt(), epsilon=epsilon,
                 gamma=gamma, beta=beta, x_hat=F.batch_norm(x, None, None, training=True, eps=epsilon),
                 y=F.batch_norm(x, None, None, weight=gamma.double(), bias=beta.double(), training=True, eps=epsilon))
    info = describe(latex, None, 513)
    # \mu_B and \hat{x} are defined by lines of the formula itself: a check may bind them, or not
    assert info.evaluable and info.symbols == ("m", "x", "sigma_B", "varepsilon", "y", "gamma", "beta")
    assert_passes(latex, names)
    wrong = dict(names, mu_B=x.mean(0) + 0.01)
    assert check_formula(latex, wrong).error.startswith("formula mismatch: \\mu_B")
    # without mu_B and x_hat bound, the first and third lines define them for the others
    defined = {k: v for k, v in names.items() if k not in ("mu_B", "x_hat")}
    assert_passes(latex, defined)


def test_batch_norm_backward_from_seed_002_by_autograd():
    m, d, eps = 8, 3, 1e-5
    x = torch.randn(m, d, dtype=D, requires_grad=True)
    gamma = (torch.rand(d, dtype=D) + 0.5).requires_grad_()
    beta = torch.randn(d, dtype=D, requires_grad=True)
    y = F.batch_norm(x, None, None, weight=gamma, bias=beta, training=True, eps=eps)
    ell = (y * torch.randn(m, d, dtype=D)).sum()
    var = x.var(0, unbiased=False).detach()
    names = dict(ell=ell, x=x, y=y, gamma=gamma, beta=beta, m=m, sigma_B=var.sqrt(), varepsilon=eps,
                 x_hat=(x.detach() - x.detach().mean(0)) / (var + eps).sqrt())
    grad_x, grad_gamma = seed_formula("002", 543), seed_formula("002", 551)
    assert describe(grad_x, None, 543).symbols == ("ell", "x", "m", "gamma", "sigma_B", "varepsilon", "y", "x_hat")
    assert_passes(grad_x, names)
    assert_passes(grad_gamma, names)
    assert_fails(grad_gamma.replace(r"\cdot \hat{x}^{(i)}", ""), names)
    assert_fails(grad_x.replace(r"m \cdot \frac", r"\frac"), names)


def test_attention_and_adam_from_the_seeds():
    q, k, v = torch.randn(3, 6, 8).unbind(0)
    attention = seed_formula("001", 14)
    names = dict(Q=q, K=k, V=v, d_k=8, Attention=F.scaled_dot_product_attention(q[None], k[None], v[None])[0])
    assert_passes(attention, names)
    assert_fails(attention.replace(r"{\sqrt{d_k}}", "{d_k}"), names)
    theta, g = torch.randn(5), torch.randn(5)
    w = torch.nn.Parameter(theta.clone())
    adam = torch.optim.Adam([w], lr=0.1)
    w.grad = g.clone()
    adam.step()
    state = adam.state[w]
    names = dict(beta_1=0.9, beta_2=0.999, m_prev=torch.zeros(5), v_prev=torch.zeros(5), g_t=g, m_t=state["exp_avg"],
                 v_t=state["exp_avg_sq"], t=1, m_hat_t=state["exp_avg"] / 0.1, v_hat_t=state["exp_avg_sq"] / 0.001,
                 theta_t=theta, alpha=0.1, varepsilon=1e-8, theta_next=w.detach())
    for line in (253, 262, 268):
        assert_passes(seed_formula("002", line), names)
    assert_fails(seed_formula("002", 268).replace(r"\theta_t -", r"\theta_t +"), names)


@pytest.mark.parametrize("case", SEED_FORMULAS, ids=lambda c: f"{c.note}:{c.line}:{c.index}")
def test_every_numeric_seed_formula_checks(case):
    latex = seed_formula(case.note, case.line, case.index)
    assert describe(latex, None, case.line).evaluable
    outcome = check_formula(latex, case.bind())
    if case.expected == "pass":
        assert outcome.error is None, outcome.error
    else:
        assert outcome.error.startswith("formula mismatch"), outcome.error


def test_the_numeric_seed_formulas_not_read_yet_say_why():
    for note, line, index in NOT_READ:
        info = describe(seed_formula(note, line, index), None, line)
        assert not info.evaluable and "follows no pattern" in info.reason


# Indices -------------------------------------------------------------------------------------------------------

def test_an_index_typo_is_an_error_or_a_mismatch_never_a_pass():
    z = torch.randn(4, 7)
    names = dict(z=z, p=torch.softmax(z, -1))
    assert_passes(r"p_i = \frac{\exp(z_i)}{\sum_j \exp(z_j)}", names)
    assert error(r"p_i = \frac{\exp(z_i)}{\sum_j \exp(z_i)}", names) == (
        r"\sum_j without bounds, but j indexes nothing in \sum_j \exp(z_i)")
    assert_fails(r"p_i = \frac{\exp(z_i)}{\sum_{j=1}^{7} \exp(z_i)}", names)
    q, a, o = torch.randn(5), torch.randn(5), torch.randn(())
    # a free q_j inside \sum_i is the name q_j, which the block did not bind
    assert error(r"o = \sum_i a_i q_j", dict(a=a, q=q, o=o)) == r"missing binding: q_j needs the python name 'q_j'"
    A, v = torch.softmax(torch.randn(5, 5), -1), torch.randn(5, 3)
    assert_fails(r"c_i = \sum_{j=1}^{5} A_{ji} v_j", dict(A=A, v=v, c=A @ v))
    assert_fails(r"c_i = \sum_{j=1}^{5} A_{ij} v_i", dict(A=A, v=v, c=A @ v))
    assert error(r"c_i = \sum_j A_{ij} v_j", dict(A=A, v=v[:4], c=A @ v)) == (
        "the index j labels dimensions of different lengths: 5 in `A_{ij}`, 3 in `v_j`")


def test_sum_bounds_are_respected():
    x = torch.arange(1.0, 7.0, dtype=D)  # 1 … 6
    assert_passes(r"s = \sum_{i=1}^{n} x_i", dict(x=x, n=6, s=21.0))
    assert_passes(r"s = \sum_{i=1}^{n-1} x_i", dict(x=x, n=6, s=15.0))
    assert_passes(r"s = \sum_{i}^{n-1} x_i", dict(x=x, n=6, s=21.0))  # from 0 to n-1: the whole vector
    assert_passes(r"s = \sum_{i=0}^{2} x_i", dict(x=x, s=6.0))  # a sum from 0 counts from 0: x_0 is the first
    assert_passes(r"s = x_0 + \sum_{i=1}^{2} x_i", dict(x=x, x_0=100.0, s=103.0))
    assert error(r"s = \sum_{i=1}^{n} x_i", dict(x=x, n=7, s=0.0)).startswith(
        "the index i runs from 1 to 7 in `\\sum_{i=1}^{n} x_i`, beyond the entries of `x_i`")
    a = torch.randn(4, 6, dtype=D)  # a batch of 4 rows: \sum_{i=1}^{H} walks each row's H entries
    assert_passes(r"\mu = \frac{1}{H} \sum_{i=1}^{H} a_i", dict(a=a, H=6, mu=a.mean(-1)))
    grads = torch.randn(3, 5, dtype=D)  # a stack of 3 gradients: the dimension of length t is the one walked
    assert_passes(r"G_t = \sum_{i=1}^{t} g_i^2", dict(g=grads, t=3, G_t=(grads ** 2).sum(0)))


def test_free_indices_run_over_both_sides():
    h = torch.randn(4, 3, dtype=D)
    encoder = torch.nn.Linear(3, 2).double()
    names = dict(x=h, f=lambda v: encoder(v).detach(), h=encoder(h).detach())
    assert_passes(r"h_i = f(x_i)", names)
    assert error(r"h_i = f(x_j)", names) == "missing binding: h_i needs the python name 'h_i'"  # i: not free
    assert_passes(r"h_i = f(x_i)", dict(x_i=h[0], h_i=encoder(h[0]).detach(), f=names["f"]))  # names x_i, h_i


# Tolerance -----------------------------------------------------------------------------------------------------

def test_tolerance_is_relative_to_the_reference():
    p = torch.full((20,), 0.05, dtype=D)
    assert_passes(r"L = \prod_{i=1}^{n} p_i", dict(p=p, n=20, L=p.prod()))
    tiny = check_formula(r"L = \prod_{i=1}^{n} p_i", dict(p=p, n=20, L=p.prod() * 50))  # the reference 98% off
    assert tiny.error.startswith("formula mismatch") and tiny.max_rel_err == pytest.approx(0.98)
    zero = check_formula("L = 0", dict(L=torch.tensor(3e-8)))
    assert zero.error == ("formula mismatch: L = 0 — max abs err 3e-08, max rel err 1 (rtol=1e-05, atol=1e-06 × "
                          "max|reference|)")
    x = torch.randn(32, 4) * 3 + 1  # float32 references pass at the default tolerances
    assert_passes(r"\hat{x} = \frac{x - \mu}{\sigma}", dict(x=x, mu=x.mean(0), sigma=x.std(0), x_hat=(x - x.mean(0))
                                                             / x.std(0)))
    assert check_formula("y = x", dict(x=torch.tensor([1.0, math.inf]), y=torch.tensor([1.0, 5.0]))).error.startswith(
        "formula mismatch")


# Misreads ------------------------------------------------------------------------------------------------------

def test_misreads_are_read_correctly():
    x = torch.randn(3, 6, dtype=D)
    layer_norm = torch.nn.LayerNorm(6).double()
    assert_passes(r"y = \mathrm{LN}(x)", dict(x=x, LN=lambda v: layer_norm(v).detach(), y=layer_norm(x).detach()))
    t = torch.linspace(-2, 2, 9, dtype=D)
    assert_passes(r"y = \frac12 x^2", dict(x=t, y=t ** 2 / 2))
    assert_passes(r"y = \log 2\pi\sigma^2", dict(sigma=1.5, y=math.log(2 * math.pi * 1.5 ** 2)))
    w, v = torch.randn(5, dtype=D), torch.randn(5, dtype=D)
    assert_passes(r"y = w^\top x", dict(w=w, x=v, y=w @ v))
    assert_passes(r"Y = x x^\top", dict(x=v, Y=torch.outer(v, v)))
    wq = [torch.randn(5, 3, dtype=D) for _ in range(2)]  # W_i^Q: the query projection of head i, not a power
    q = torch.randn(4, 5, dtype=D)
    assert_passes(r"\mathrm{head}_i = Q W_i^Q", dict(Q=q, W_Q=wq, head=[q @ w for w in wq]))
    assert_passes(r"O = W^O h", dict(W_O=torch.eye(2, dtype=D) * 3, h=torch.ones(2, dtype=D), O=torch.full((2,), 3.0)))
    h, xt, wf = torch.randn(4, dtype=D), torch.randn(3, dtype=D), torch.randn(2, 7, dtype=D)
    assert_passes(r"f_t = \sigma(W_f [h_{t-1}, x_t])", dict(W_f=wf, h_prev=h, x_t=xt,
                                                            f_t=torch.sigmoid(wf @ torch.cat([h, xt]))))
    assert_passes(r"g = \text{tanh'}(x)", dict(x=t, g=1 - torch.tanh(t) ** 2))
    assert_fails(r"g = \text{tanh'}(x)", dict(x=t, g=torch.tanh(t)))
    relu = r"\begin{aligned} f(x) &= x & \text{if } x > 0 \\ &= 0 & \text{otherwise} \end{aligned}"
    u = torch.tensor([-1.5, -0.5, 0.5, 2.0], dtype=D)
    assert_passes(relu, dict(x=u, f=torch.relu(u)))
    assert_fails(relu, dict(x=u, f=u))  # the conditions are kept: x is not ReLU(x)
    assert_passes(r"y = \sigma(2x)", dict(x=t, sigma=torch.tensor(3.0), y=torch.sigmoid(2 * t)))


def test_constants_and_usual_functions_need_no_binding():
    x = torch.linspace(-2, 2, 5, dtype=D)
    names = dict(x=x, y=torch.exp(x) * math.pi + torch.erf(x), e=torch.zeros(3))  # a loop variable e stays out
    assert_passes(r"y = e^{x} \pi + \mathrm{erf}(x)", names)
    assert_passes(r"y = \pi(x)", dict(x=x, pi=lambda v: v * 2, y=2 * x))  # \pi bound: a policy
    assert error(r"y = \pi(a \mid s)", dict(a=1, s=2, y=0)).startswith(r"\pi(a \mid s): \pi applied to arguments")
    assert_passes(r"y = \lambda x", dict(x=x, lambda_=0.5, y=0.5 * x))
    assert_passes(r"y = \lambda x", dict(x=x, lam=0.5, y=0.5 * x))


def test_a_built_in_left_side_is_the_blocks_reference():
    x = torch.randn(6, dtype=D)
    assert_passes(r"\mathrm{ReLU}(x) = \max(0, x)", dict(x=x, ReLU=torch.relu(x)))
    assert_fails(r"\mathrm{ReLU}(x) = \max(0, x)", dict(x=x, ReLU=torch.relu(x) + 1))
    assert_fails(r"\tanh(x) = \frac{e^x - e^{-x}}{e^x + e^{-x}}", dict(x=x, tanh=torch.sigmoid(x)))
    assert_passes(r"\tanh(x) = \frac{e^x - e^{-x}}{e^x + e^{-x}}", dict(x=x))  # unbound: torch's tanh is the reference


def test_the_blocks_functions_get_their_own_dtype():
    layer = torch.nn.Linear(3, 2)  # float32 parameters: the formula's float64 arguments are converted for it
    x = torch.randn(4, 3)
    assert_passes(r"y = f(x)", dict(f=layer, x=x, y=layer(x).detach()))
    assert_passes(r"y = f(x)", dict(f=lambda v: layer(v), x=x, y=layer(x).detach()))
    assert_passes(r"g = f'(x)", dict(f=torch.nn.Tanh(), x=x, g=1 - torch.tanh(x) ** 2))


def test_one_tensor_applied_to_different_arguments_is_an_error_not_a_pass():
    p = torch.rand(4, dtype=D)
    message = error(r"P(A \mid B) = \frac{P(B \mid A) P(A)}{P(B)}", dict(P=p))
    assert message.startswith("P is applied to different arguments")


# Derivatives ---------------------------------------------------------------------------------------------------

def test_derivatives_by_autograd():
    w = torch.randn(3, dtype=D, requires_grad=True)
    x, y = torch.randn(8, 3, dtype=D), torch.randn(8, dtype=D)
    names = dict(X=x, y=y, w=w, n=8, L=((x @ w - y) ** 2).mean())
    assert_passes(r"\frac{\partial L}{\partial w} = \frac{2}{n} X^\top (X w - y)", names)
    assert_passes(r"\nabla_w L = \frac{2}{n} X^\top (X w - y)", names)
    assert_passes(r"\frac{dL}{dw} = \frac{2}{n} X^\top (X w - y)", names)
    assert_fails(r"\frac{dL}{dw} = \frac{1}{n} X^\top (X w - y)", names)
    t = torch.linspace(-2, 2, 7, dtype=D)
    assert_passes(r"\frac{d}{dx} \tanh(x) = 1 - \tanh^2(x)", dict(x=t))
    detached = dict(names, w=w.detach(), L=names["L"].detach())
    assert error(r"\frac{\partial L}{\partial w} = X", detached) == (
        r"\frac{\partial L}{\partial w}: L does not depend on w through autograd; in the block, set "
        "requires_grad=True on w before computing it")


# Errors --------------------------------------------------------------------------------------------------------

def test_errors_name_the_construct_never_a_raw_torch_error():
    assert error(r"\hat{x} = \frac{x - \mu_B}{\sigma_B}", dict(x=torch.randn(4, 3), x_hat=torch.randn(4, 3))) == (
        r"missing binding: \mu_B needs the python name 'mu_B'")
    shapes = check_formula(r"y = W x", dict(W=torch.randn(2, 3), x=torch.randn(3), y=torch.randn(3)))
    assert shapes.error == "shape mismatch in y = W x: formula gives [2], reference is [3]"
    assert shapes.shapes == ("[2]", "[3]")
    assert error(r"y = W x", dict(W=torch.randn(2, 3), x=torch.randn(4), y=torch.randn(2))) == (
        "`W x`: shapes [2, 3] and [4] cannot be multiplied (a matrix product)")
    broken = error(r"y = f(x)", dict(x=torch.randn(3), y=torch.randn(3), f=lambda v: v.reshape(7)))
    assert broken.startswith("evaluating `f(x)` failed (RuntimeError: shape '[7]' is invalid")
    assert error(r"\theta = \theta - \alpha g", {}).startswith(r"an update, not an equation: \theta is on both sides")


@pytest.mark.parametrize(("latex", "construct"), [
    (seed_formula("002", 187), r"an integral \int: `\int_{-\infty}^{\infty} P(x) \log \frac{…`"),
    (seed_formula("003", 33), r"\argmin over \theta: an index must be a Latin letter (an optimisation over a "
                              "continuous variable is not evaluated)"),
    (seed_formula("002", 334), r"an asymptotic bound \mathcal{O}(…) is not a value: `\mathcal{O}(\sqrt{T})`"),
])
def test_unsupported_constructs_are_errors_never_passes(latex, construct):
    assert check_formula(latex, {}).error == f"cannot evaluate the formula: {construct}"
    info = describe(latex, None, 1)
    assert (info.evaluable, info.reason, info.symbols) == (False, construct, ())


# Listing and the engine ----------------------------------------------------------------------------------------

def test_describe_lists_exactly_the_names_to_bind():
    assert describe(r"\theta_{t+1} = \theta_t - \alpha \cdot \frac{\hat{m}_t}{\sqrt{\hat{v}_t} + \varepsilon}", "adam",
                    3).symbols == ("theta_next", "theta_t", "alpha", "m_hat_t", "v_hat_t", "varepsilon")
    assert describe(r"y = b + \sum_i c_i \cdot \mathrm{sigmoid}(b_i + \sum_j w_{ij} x_j)", None, 1).symbols == (
        "y", "b", "c", "w", "x")
    assert describe(r"\mathrm{softmax}(z)_i = \frac{\exp(z_i)}{\sum_j \exp(z_j)}", None, 1).symbols == ("z",)
    assert describe(r"g = \text{tanh'}(x) + \pi + e", None, 1).symbols == ("g", "x")


def test_formulas_command_json(tmp_path, capsys):
    root = make_vault(tmp_path, {"n.md": "$$\\hat{x} = \\frac{x - \\mu}{\\sigma}$$\n^bn\n\n$$a = \\int f$$\n"})
    assert main(["formulas", "--format", "json", str(root)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["version"] == 1
    (note,) = data["notes"]
    assert note["formulas"] == [
        {"id": "bn", "line": 1, "latex": "\\hat{x} = \\frac{x - \\mu}{\\sigma}", "evaluable": True,
         "symbols": ["x_hat", "x", "mu", "sigma"], "reason": None},
        {"id": None, "line": 4, "latex": "a = \\int f", "evaluable": False, "symbols": [],
         "reason": "an integral \\int: `\\int f`"},
    ]


def test_formula_check_runs_in_the_worker_and_is_written_back(tmp_path):
    from notevault.engine import RunOptions, execute
    from notevault.vault import Vault

    note = ("$$\\hat{x} = \\frac{x - \\mu}{\\sqrt{\\sigma^2 + \\epsilon}}$$\n^bn-norm\n\n"
            "```python check formula=bn-norm\n"
            "x = torch.randn(32, 4); mu = x.mean(0); sigma = x.std(0, unbiased=False); epsilon = 1e-5\n"
            "x_hat = torch.nn.functional.batch_norm(x, None, None, training=True, eps=epsilon)\n```\n\n"
            "$$y = 2 x$$\n^wrong\n\n```python check formula=wrong\nx = torch.ones(3); y = 3 * x\n```\n\n"
            "$$\\frac{\\partial \\ell}{\\partial w} = 2 w$$\n^grad\n\n```python check formula=grad\n"
            "w = torch.randn(3, requires_grad=True); ell = (w ** 2).sum()\n```\n")
    root = make_vault(tmp_path, {"n.md": note})
    report = execute(Vault(root), [root], RunOptions())
    good, bad, grad = report.notes[0].blocks
    assert good.status == "passed" and good.formula.id == "bn-norm" and good.formula.max_rel_err < 1e-5
    assert bad.status == "failed"
    assert bad.error == ("formula mismatch: y = 2 x — max abs err 1, max rel err 0.333 (rtol=1e-05, atol=1e-06 × "
                         "max|reference|)")
    assert grad.status == "passed", grad.error
    written = (root / "n.md").read_text()
    assert "> formula bn-norm: max abs err" in written and "shapes `[32, 4]` vs `[32, 4]`" in written


# Found by an adversarial review: nothing compared, powers, keepdim -------------------------------------------

def test_condition_that_no_entry_meets_compares_nothing_and_never_passes():
    # `y = 2x, \quad x > 100` on x in [-3, 3]: the restriction leaves no entry to compare. A wrong formula
    # (y is ReLU(x), not 2x) must not pass vacuously: nothing compared is "cannot evaluate", like a formula whose
    # every equation only defines a name.
    x = torch.linspace(-3, 3, 13, dtype=D)
    names = dict(x=x, y=torch.relu(x))
    assert_fails(r"y = 2x, \quad x > 0", names)  # the same wrong formula, where entries are compared
    for latex in (r"y = 2x, \quad x > 100", r"\mathrm{ReLU}(x) = -x, \quad x > 100"):
        error(latex, dict(names))


def test_a_reference_that_is_nan_everywhere_compares_nothing_and_never_passes():
    # x < 0: the block's reference sqrt(x) is NaN in every entry, and so is the (wrong) formula \log x. NaN
    # "matching" NaN is no numerical evidence: with no finite entry compared the check is not evaluable, never a
    # pass. (A finite entry next to a NaN one is still compared as usual.)
    x = -torch.rand(5, dtype=D) - 0.1
    for latex in (r"y = \log x", r"y = \sqrt{x}"):
        error(latex, dict(x=x, y=torch.sqrt(x)))
    xx = torch.tensor([-1.0, 1.0, 4.0], dtype=D)
    assert_passes(r"y = \sqrt{x}", dict(x=xx, y=torch.sqrt(xx)))
    # empty tensors: nothing compared either
    error(r"y = 2x", dict(x=torch.empty(0, dtype=D), y=torch.empty(0, dtype=D)))


def test_fractional_and_integer_powers_of_a_square_matrix_are_matrix_powers():
    # GCN's symmetric normalisation D^{-1/2} A D^{-1/2} (Kipf & Welling): D is the diagonal degree matrix and
    # D^{-1/2} its matrix power. D^{-1} is already read as the inverse, but D^{-1/2} is taken entrywise, so the zero
    # off-diagonal entries become inf and the correct formula is blamed as a mismatch (max abs err inf).
    torch.manual_seed(3)
    A = (torch.rand(5, 5, dtype=D) > 0.5).double()
    A = ((A + A.T) > 0).double() + torch.eye(5, dtype=D)
    degree = A.sum(1)
    A_hat = torch.diag(degree ** -0.5) @ A @ torch.diag(degree ** -0.5)
    assert_passes(r"\hat{A} = D^{-1/2} A D^{-1/2}", dict(A=A, D=torch.diag(degree), A_hat=A_hat))
    # a square matrix that is not diagonal keeps the entrywise reading: Adam's g_t^2 of a square weight's gradient
    G = torch.randn(4, 4, dtype=D)
    assert_passes(r"v = g^2", dict(g=G, v=G * G))
    assert_fails(r"v = g^2", dict(g=G, v=G @ G))


def test_power_T_of_a_scalar_is_a_power_when_the_block_binds_T():
    # Adam's bias correction at step T: \beta_1^T with T = 5 bound by the block is a power, not a transpose of
    # the number \beta_1. Today it is read as a transpose: the correct reference fails as a mismatch and a
    # reference computed with \beta_1 (no power) passes.
    m = torch.randn(5, dtype=D)
    latex = r"\hat{m} = \frac{m}{1 - \beta_1^T}"
    assert_passes(latex, dict(m=m, beta_1=0.9, T=5, m_hat=m / (1 - 0.9 ** 5)))
    assert_fails(latex, dict(m=m, beta_1=0.9, T=5, m_hat=m / (1 - 0.9)))


def test_a_keepdim_reference_is_the_same_values_as_the_reduced_formula():
    # LayerNorm statistics as torch code writes them: mu = z.mean(-1, keepdim=True), so that z - mu broadcasts.
    # The formula \frac{1}{d}\sum_j z_j gives one number per row, [4]; the reference holds the same numbers as
    # [4, 1]. A trailing size-1 axis is not a different value: the correct formula must pass, not be blamed with
    # "shape mismatch", and a wrong one must still fail as a mismatch.
    z = torch.randn(4, 6, dtype=D)
    names = dict(z=z, d=6, mu=z.mean(-1, keepdim=True))
    assert_passes(r"\mu = \frac{1}{d}\sum_{j=1}^{d} z_j", names)
    assert_fails(r"\mu = \frac{1}{d}\sum_{j=1}^{d} z_j^2", names)
    assert_passes(r"Z = \sum_j e^{z_j}", dict(z=z, Z=z.exp().sum(-1, keepdim=True)))
