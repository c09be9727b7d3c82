"""Formula checks: formulas as the notes write them, evaluated on real tensors against PyTorch references."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import make_vault, seed

from notevault.cli import main
from notevault.formula import FormulaError, check_formula, describe, equations, parse_equation
from notevault.note import read_note


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
    assert outcome.error is not None and outcome.error.startswith("formula mismatch")
    assert outcome.max_abs_err > 1e-3  # a real, measured difference, not a rounding error
    return outcome


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def test_batch_norm_from_seed_000():
    latex = seed_formula("000", 20, 0)
    assert latex == r"\hat{x} = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}"
    x = torch.randn(32, 4) * 3 + 1
    names = dict(x=x, mu=x.mean(0), sigma=x.std(0, unbiased=False), epsilon=1e-5,
                 x_hat=F.batch_norm(x, None, None, training=True, eps=1e-5))
    outcome = assert_passes(latex, names)
    assert outcome.shapes == ("[32, 4]", "[32, 4]")
    assert_fails(latex.replace(r"\sigma^2", r"\sigma"), names)


def test_batch_norm_affine_from_seed_000():
    latex = seed_formula("000", 20, 1)
    x = torch.randn(16, 3)
    gamma, beta = torch.rand(3) + 0.5, torch.randn(3)
    x_hat = F.batch_norm(x, None, None, training=True)
    names = dict(x_hat=x_hat, gamma=gamma, beta=beta,
                 y=F.batch_norm(x, None, None, weight=gamma, bias=beta, training=True))
    assert_passes(latex, names)
    assert_fails(latex.replace("+", "-"), names)


def test_batch_norm_statistics_aligned_from_seed_002():
    latex = seed_formula("002", 513)
    assert latex.startswith(r"\begin{aligned}") and len(equations(latex)) == 4
    x = torch.randn(8, 5).double()
    m, epsilon, gamma, beta = 8, 1e-5, torch.rand(5) + 0.5, torch.randn(5)
    names = dict(x=x, m=m, mu_B=x.mean(0), sigma_B=x.var(0, unbiased=False).sqrt(), epsilon=epsilon,
                 varepsilon=epsilon, gamma=gamma, beta=beta,
                 x_hat=F.batch_norm(x, None, None, training=True, eps=epsilon),
                 y=F.batch_norm(x, None, None, weight=gamma.double(), bias=beta.double(), training=True, eps=epsilon))
    info = describe(latex, None, 513)
    assert info.evaluable, info.reason
    # each aligned line: x^{(i)} inside the sums indexes the batch
    outcome = check_formula(latex, names)
    assert outcome.error is None, outcome.error
    wrong = dict(names, mu_B=x.mean(0) + 0.01)
    assert check_formula(latex, wrong).error.startswith("formula mismatch: \\mu_B")


def test_attention_from_seed_001():
    latex = seed_formula("001", 14)
    q, k, v = torch.randn(3, 6, 8).unbind(0)
    names = dict(Q=q, K=k, V=v, d_k=8, Attention=F.scaled_dot_product_attention(q[None], k[None], v[None])[0])
    assert_passes(latex, names)
    assert_fails(latex.replace(r"{\sqrt{d_k}}", "{d_k}"), names)


def adam_step(theta, grad, lr=0.1, betas=(0.9, 0.999), eps=1e-8):
    w = torch.nn.Parameter(theta.clone())
    optimizer = torch.optim.Adam([w], lr=lr, betas=betas, eps=eps)
    w.grad = grad.clone()
    optimizer.step()
    return w.detach(), optimizer.state[w]


def test_adam_moments_bias_correction_and_update_from_seed_002():
    theta, g = torch.randn(5), torch.randn(5)
    new_theta, state = adam_step(theta, g)
    beta_1, beta_2 = 0.9, 0.999
    m, v = state["exp_avg"], state["exp_avg_sq"]
    names = dict(beta_1=beta_1, beta_2=beta_2, m_prev=torch.zeros(5), v_prev=torch.zeros(5), g_t=g, m_t=m, v_t=v,
                 t=1, m_hat_t=m / (1 - beta_1), v_hat_t=v / (1 - beta_2), theta_t=theta, alpha=0.1,
                 varepsilon=1e-8, theta_next=new_theta)
    moments, corrected, update = seed_formula("002", 253), seed_formula("002", 262), seed_formula("002", 268)
    for latex in (moments, corrected, update):
        assert_passes(latex, names)
    assert_fails(update.replace(r"\theta_t -", r"\theta_t +"), names)
    assert_fails(corrected.replace(r"1 - \beta_1^t", r"1 + \beta_1^t"), names)


def test_sgd_and_adagrad_from_seed_002():
    theta, g = torch.randn(4), torch.randn(4)
    w = torch.nn.Parameter(theta.clone())
    torch.optim.SGD([w], lr=0.05).zero_grad()
    w.grad = g.clone()
    torch.optim.SGD([w], lr=0.05).step()
    sgd = seed_formula("002", 316)
    assert_passes(sgd, dict(theta_t=theta, alpha=0.05, g_t=g, theta_next=w.detach()))
    w = torch.nn.Parameter(theta.clone())
    adagrad = torch.optim.Adagrad([w], lr=0.05, eps=1e-10)
    w.grad = g.clone()
    adagrad.step()
    latex = seed_formula("002", 382)  # \theta_{t+1, i} = \theta_{t, i} - \frac{\alpha}{\sqrt{G_{t, i}} + …} g_{t,i}
    names = dict(theta_t=theta, alpha=0.05, G_t=g**2, varepsilon=1e-10, g_t=g, theta_next=w.detach())
    assert_passes(latex, names)
    assert_fails(latex.replace(r"\sqrt{G_{t, i}}", "G_{t, i}"), names)


def test_momentum_and_rmsprop_updates():
    theta, g = torch.randn(4), torch.randn(4)
    w = torch.nn.Parameter(theta.clone())
    rms = torch.optim.RMSprop([w], lr=0.01, alpha=0.9, eps=1e-8)
    w.grad = g.clone()
    rms.step()
    latex = (r"\begin{aligned} s_t &= \rho s_{t-1} + (1 - \rho) g_t^2 \\"
             r" \theta_{t+1} &= \theta_t - \frac{\alpha}{\sqrt{s_t} + \epsilon} g_t \end{aligned}")
    names = dict(rho=0.9, s_prev=torch.zeros(4), g_t=g, s_t=rms.state[w]["square_avg"], theta_t=theta, alpha=0.01,
                 epsilon=1e-8, theta_next=w.detach())
    assert_passes(latex, names)
    assert_fails(latex.replace(r"(1 - \rho)", r"\rho"), names)
    w = torch.nn.Parameter(theta.clone())
    sgd = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    w.grad = g.clone()
    sgd.step()
    latex = r"v_t = \mu v_{t-1} + g_t"
    assert_passes(latex, dict(mu=0.9, v_prev=torch.zeros(4), g_t=g, v_t=sgd.state[w]["momentum_buffer"]))


def test_layer_norm_softmax_cross_entropy_and_kl():
    h = torch.randn(2, 5, 8)
    gamma, beta = torch.rand(8) + 0.5, torch.randn(8)
    mu, sigma = h.mean(-1, keepdim=True), h.std(-1, unbiased=False, keepdim=True)
    layer_norm = r"y = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} \odot \gamma + \beta"
    names = dict(x=h, mu=mu, sigma=sigma, epsilon=1e-5, gamma=gamma, beta=beta,
                 y=F.layer_norm(h, (8,), gamma, beta, eps=1e-5))
    assert_passes(layer_norm, names)
    assert_fails(layer_norm.replace(r"\odot \gamma + \beta", r"\odot \beta + \gamma"), names)

    z = torch.randn(4, 7)
    softmax = r"\text{softmax}(z)_i = \frac{\exp(z_i)}{\sum_j \exp(z_j)}"
    assert_passes(softmax, dict(z=z))
    assert_fails(r"p_i = \frac{\exp(z_i)}{\sum_j z_j}", dict(z=z, p=torch.softmax(z, -1)))

    logits, target = torch.randn(6, 5), torch.randint(0, 5, (6,))
    cross_entropy = r"L = -\frac{1}{N} \sum_{n=1}^{N} \sum_{c=1}^{C} y_{nc} \log p_{nc}"
    names = dict(L=F.cross_entropy(logits, target), N=6, C=5, y=F.one_hot(target, 5), p=torch.softmax(logits, -1))
    assert_passes(cross_entropy, names)
    assert_fails(cross_entropy.replace(r"\log p_{nc}", r"p_{nc}"), names)

    p, q = torch.softmax(torch.randn(10), 0), torch.softmax(torch.randn(10), 0)
    kl = r"D_{\mathrm{KL}}(P \,\|\, Q) = \sum_x P(x) \log \frac{P(x)}{Q(x)}"
    names = dict(P=p, Q=q, D_KL=F.kl_div(q.log(), p, reduction="sum"))
    assert_passes(kl, names)
    assert_fails(kl.replace(r"\frac{P(x)}{Q(x)}", r"\frac{Q(x)}{P(x)}"), names)


def test_missing_binding_and_shape_mismatch_name_what_is_wrong():
    x = torch.randn(4, 3)
    missing = check_formula(r"\hat{x} = \frac{x - \mu_B}{\sigma_B}", dict(x=x, x_hat=x))
    assert missing.error == "cannot evaluate the formula: missing binding: \\mu needs the python name 'mu_B'"
    shapes = check_formula(r"y = W x", dict(W=torch.randn(2, 3), x=torch.randn(3), y=torch.randn(3)))
    assert shapes.error == "shape mismatch in y = W x: formula gives [2], reference is [3]"
    assert shapes.shapes == ("[2]", "[3]")


@pytest.mark.parametrize(("latex", "construct"), [
    (seed_formula("002", 187), "integral \\int"),
    (seed_formula("002", 366), "gradient \\nabla"),
    (seed_formula("003", 33), "\\arg max/min"),
    (seed_formula("002", 334), "\\mathcal"),
])
def test_unsupported_constructs_are_errors_never_passes(latex, construct):
    outcome = check_formula(latex, {})
    assert outcome.error == f"cannot evaluate the formula: {construct}"
    info = describe(latex, None, 1)
    assert (info.evaluable, info.reason) == (False, construct)


def test_naming_rule():
    adam = r"\theta_{t+1} = \theta_t - \alpha \cdot \frac{\hat{m}_t}{\sqrt{\hat{v}_t} + \varepsilon}"
    equation = parse_equation(adam)
    info = describe(equation.latex, "adam", 3)
    assert info.symbols == ("theta_next", "theta_t", "alpha", "m_hat_t", "v_hat_t", "varepsilon")
    assert describe(r"m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t", None, 1).symbols == (
        "m_t", "beta_1", "m_prev", "g_t")
    assert describe(r"\bar{x} = \frac{1}{N} \sum_{i=1}^{N} x_i", None, 1).symbols == ("x_bar", "N", "x")
    assert describe(r"\text{Effective learning rate} = \frac{\alpha}{\sqrt{\hat{v}_t} + \varepsilon}", None,
                    1).symbols == ("Effective_learning_rate", "alpha", "v_hat_t", "varepsilon")
    assert describe(r"\mu_B^{\text{global}} = \mu_B", None, 1).symbols == ("mu_B_global", "mu_B")
    assert describe(r"\theta^* = V^\theta(s_{t+1})", None, 1).symbols == ("theta_star", "V_theta", "s_next")
    with pytest.raises(FormulaError):
        parse_equation(r"x = \frac{1}{2")


def test_superscripts_that_are_not_powers():
    x = torch.randn(5, 3)
    # \sigma_B^{2(k)} is the square of the k-th sample, not a power 2k
    names = dict(N=5, s=x, total=(x**2).sum(0))
    assert_passes(r"total = \sum_{k=1}^{N} s^{2(k)}", names)
    assert_fails(r"total = \sum_{k=1}^{N} s^{(k)}", names)


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
         "reason": "integral \\int"},
    ]


def test_formula_check_runs_in_the_worker_and_is_written_back(tmp_path):
    from notevault.engine import RunOptions, execute
    from notevault.vault import Vault

    note = ("$$\\hat{x} = \\frac{x - \\mu}{\\sqrt{\\sigma^2 + \\epsilon}}$$\n^bn-norm\n\n"
            "```python check formula=bn-norm\n"
            "x = torch.randn(32, 4); mu = x.mean(0); sigma = x.std(0, unbiased=False); epsilon = 1e-5\n"
            "x_hat = torch.nn.functional.batch_norm(x, None, None, training=True, eps=epsilon)\n```\n\n"
            "$$y = 2 x$$\n^wrong\n\n```python check formula=wrong\nx = torch.ones(3); y = 3 * x\n```\n")
    root = make_vault(tmp_path, {"n.md": note})
    report = execute(Vault(root), [root], RunOptions())
    good, bad = report.notes[0].blocks
    assert good.status == "passed" and good.formula.id == "bn-norm" and good.formula.max_rel_err < 1e-5
    assert bad.status == "failed"
    assert bad.error == "formula mismatch: y = 2 x — max abs err 1, max rel err 0.333 (rtol=1e-05, atol=1e-06)"
    written = (root / "n.md").read_text()
    assert "> formula bn-norm: max abs err" in written and "shapes `[32, 4]` vs `[32, 4]`" in written
